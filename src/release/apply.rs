//! Applying one transform to one typed value.

use time::{Date, OffsetDateTime};

use super::key::ReleaseKey;
use super::value::{ReleasedValue, Value};
use crate::policy::Transform;

/// What a pseudonym is bound to: the agreement that allowed it, the recipient and the field.
pub(crate) struct Binding<'a> {
    pub key: &'a ReleaseKey,
    pub agreement: &'a str,
    pub recipient: &'a str,
    pub field: &'a str,
}

/// Whole years from `birth` to `on`.
fn age_on(birth: Date, on: Date) -> i64 {
    let mut age = i64::from(on.year()) - i64::from(birth.year());
    if (u8::from(on.month()), on.day()) < (u8::from(birth.month()), birth.day()) {
        age -= 1;
    }
    age
}

/// The ten-year band of an age: `0-9` … `70-79`, `80+`.
pub(crate) fn age_band(age: i64) -> Option<String> {
    match age {
        a if a < 0 => None,
        a if a >= 80 => Some("80+".to_owned()),
        a => {
            let lo = a / 10 * 10;
            Some(format!("{lo}-{}", lo + 9))
        }
    }
}

/// The first letter of every word, upper-cased, each followed by a dot: `J. D.`.
pub(crate) fn initials(text: &str) -> String {
    text.split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `form` to `value`; `None` when the form does not apply to the value's type
/// (the field is then stripped) or the form is `drop`.
pub(crate) fn apply(
    value: &Value,
    form: Transform,
    now: OffsetDateTime,
    bind: &Binding<'_>,
) -> Option<ReleasedValue> {
    use Transform as T;
    let text = |s: String| Some(ReleasedValue::Text(s));
    match (form, value) {
        (T::Drop, _) => None,
        (T::Presence, _) => Some(ReleasedValue::Flag(true)),
        (T::Keep, Value::Text(s)) => text(s.clone()),
        (T::Keep, Value::Date(d)) => Some(ReleasedValue::Date(*d)),
        (T::Keep, Value::Integer(i)) => Some(ReleasedValue::Integer(*i)),
        (T::Keep, Value::Flag(b)) => Some(ReleasedValue::Flag(*b)),
        (T::Keep, Value::Enum(s)) => Some(ReleasedValue::Enum(s.clone())),
        (T::Keep, Value::Address(a)) => Some(ReleasedValue::Address(a.clone())),
        (T::YearMonth, Value::Date(d)) => {
            text(format!("{:04}-{:02}", d.year(), u8::from(d.month())))
        }
        (T::Year, Value::Date(d)) => text(format!("{:04}", d.year())),
        (T::AgeBand, Value::Date(d)) => age_band(age_on(*d, now.date())).map(ReleasedValue::Text),
        (T::AgeBand, Value::Integer(i)) => age_band(*i).map(ReleasedValue::Text),
        (T::Postcode, Value::Address(a)) => text(a.postcode.clone()),
        (T::Municipality, Value::Address(a)) => text(a.municipality.clone()),
        (T::Initials, Value::Text(s)) => text(initials(s)),
        (T::Pseudonym, Value::Text(s)) => {
            text(
                bind.key
                    .pseudonym(bind.agreement, bind.recipient, bind.field, s.as_bytes()),
            )
        }
        (T::Pseudonym, Value::Integer(i)) => text(bind.key.pseudonym(
            bind.agreement,
            bind.recipient,
            bind.field,
            i.to_string().as_bytes(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn bands_and_initials() {
        assert_eq!(age_band(0).as_deref(), Some("0-9"));
        assert_eq!(age_band(19).as_deref(), Some("10-19"));
        assert_eq!(age_band(80).as_deref(), Some("80+"));
        assert_eq!(age_band(-1), None);
        assert_eq!(initials("jan  de Smet"), "J. D. S.");
        assert_eq!(age_on(date!(2000 - 03 - 15), date!(2026 - 03 - 14)), 25);
        assert_eq!(age_on(date!(2000 - 03 - 15), date!(2026 - 03 - 15)), 26);
    }

    #[test]
    fn forms_apply_only_to_their_types() {
        let key = ReleaseKey::new(&[1; 32]);
        let b = Binding {
            key: &key,
            agreement: "a",
            recipient: "r",
            field: "f",
        };
        let now = datetime!(2026-03-15 10:00 UTC);
        let d = Value::Date(date!(1990 - 07 - 04));
        assert_eq!(
            apply(&d, Transform::YearMonth, now, &b),
            Some(ReleasedValue::Text("1990-07".into()))
        );
        assert_eq!(
            apply(&d, Transform::AgeBand, now, &b),
            Some(ReleasedValue::Text("30-39".into()))
        );
        assert_eq!(apply(&Value::Flag(true), Transform::Year, now, &b), None);
        assert_eq!(
            apply(&Value::Text("x".into()), Transform::Pseudonym, now, &b),
            Some(ReleasedValue::Text(key.pseudonym("a", "r", "f", b"x")))
        );
    }
}
