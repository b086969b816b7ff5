//! Conversions between wire values and the domain's typed values and times.

use std::collections::BTreeMap;

use time::{Date, Month, OffsetDateTime};

use crate::proto::v1::{self as pb, field_value::Kind};
use crate::release::{Address, Projection, Record, ReleasedValue, Value};

use super::{ExchangeError, Violation};

/// A protobuf timestamp of `t`.
pub(crate) fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: i32::try_from(t.nanosecond()).unwrap_or(0),
    }
}

/// The time of a protobuf timestamp, if it is in range.
pub(crate) fn from_timestamp(t: &prost_types::Timestamp) -> Option<OffsetDateTime> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

fn date(d: &pb::Date) -> Option<Date> {
    let month = Month::try_from(u8::try_from(d.month).ok()?).ok()?;
    Date::from_calendar_date(d.year, month, u8::try_from(d.day).ok()?).ok()
}

fn date_message(d: Date) -> pb::Date {
    pb::Date {
        year: d.year(),
        month: i32::from(u8::from(d.month())),
        day: i32::from(d.day()),
    }
}

fn address(a: &pb::Address) -> Address {
    Address {
        street: a.street.clone(),
        house_number: a.house_number.clone(),
        postcode: a.postcode.clone(),
        municipality: a.municipality.clone(),
    }
}

fn address_message(a: &Address) -> pb::Address {
    pb::Address {
        street: a.street.clone(),
        house_number: a.house_number.clone(),
        postcode: a.postcode.clone(),
        municipality: a.municipality.clone(),
    }
}

/// Turns supplied fields into a typed record. A field named twice, a missing value or an invalid
/// date is a field violation; whether a value fits the catalogue is the projection's business
/// (a value of the wrong type is stripped, not released).
/// Who gave a consent, from its wire number; `None` for an unspecified or unknown one.
pub(crate) fn consent_giver(n: i32) -> Option<crate::policy::ConsentGiver> {
    use crate::policy::ConsentGiver as G;
    match pb::ConsentGiver::try_from(n).ok()? {
        pb::ConsentGiver::Unspecified => None,
        pb::ConsentGiver::Subject => Some(G::Subject),
        pb::ConsentGiver::Parent => Some(G::Parent),
        pb::ConsentGiver::Guardian => Some(G::Guardian),
        pb::ConsentGiver::LegalRepresentative => Some(G::LegalRepresentative),
    }
}

/// A subject's capacity to consent, from its wire number; `None` for an unspecified one.
pub(crate) fn capacity(n: i32) -> Option<crate::policy::Capacity> {
    use crate::policy::Capacity as C;
    match pb::MinorCapacity::try_from(n).ok()? {
        pb::MinorCapacity::Unspecified => None,
        pb::MinorCapacity::Adult => Some(C::Adult),
        pb::MinorCapacity::PresumedCapable => Some(C::PresumedCapable),
        pb::MinorCapacity::AssessedCapable => Some(C::AssessedCapable),
        pb::MinorCapacity::NotCapable => Some(C::NotCapable),
    }
}

/// The legal elements a record supplies, as the policy reads them: each enum value and flag of
/// the record, as text (`true`/`false` for a flag).
pub(crate) fn elements(record: &Record) -> Vec<(String, String)> {
    record
        .0
        .iter()
        .filter_map(|(field, value)| match value {
            Value::Enum(v) => Some((field.clone(), v.clone())),
            Value::Flag(b) => Some((field.clone(), b.to_string())),
            _ => None,
        })
        .collect()
}

pub(crate) fn record(fields: &[pb::FieldEntry], path: &str) -> Result<Record, ExchangeError> {
    let mut violations = Vec::new();
    let mut map = BTreeMap::new();
    for (i, entry) in fields.iter().enumerate() {
        let at = |what: &str| format!("{path}[{i}].{what}");
        if entry.field.trim().is_empty() {
            violations.push(Violation::new(
                at("field"),
                "a catalogue field id is required",
            ));
            continue;
        }
        let value = match entry.value.as_ref().and_then(|v| v.kind.as_ref()) {
            None => {
                violations.push(Violation::new(at("value"), "a value is required"));
                continue;
            }
            Some(Kind::Text(t)) => Value::Text(t.clone()),
            Some(Kind::Date(d)) => match date(d) {
                Some(d) => Value::Date(d),
                None => {
                    violations.push(Violation::new(at("value.date"), "not a calendar date"));
                    continue;
                }
            },
            Some(Kind::Integer(n)) => Value::Integer(*n),
            Some(Kind::Flag(b)) => Value::Flag(*b),
            Some(Kind::EnumValue(e)) => Value::Enum(e.clone()),
            Some(Kind::Address(a)) => Value::Address(address(a)),
        };
        if map.insert(entry.field.clone(), value).is_some() {
            violations.push(Violation::new(at("field"), "field supplied twice"));
        }
    }
    if violations.is_empty() {
        Ok(Record(map))
    } else {
        Err(ExchangeError::InvalidArgument(violations))
    }
}

/// The wire form of a released value.
fn released_value(v: &ReleasedValue) -> pb::FieldValue {
    let kind = match v {
        ReleasedValue::Text(t) => Kind::Text(t.clone()),
        ReleasedValue::Date(d) => Kind::Date(date_message(*d)),
        ReleasedValue::Integer(n) => Kind::Integer(*n),
        ReleasedValue::Flag(b) => Kind::Flag(*b),
        ReleasedValue::Enum(e) => Kind::EnumValue(e.clone()),
        ReleasedValue::Address(a) => Kind::Address(address_message(a)),
    };
    pb::FieldValue { kind: Some(kind) }
}

/// The released fields of a projection, as the recipient receives them.
pub(crate) fn released_fields(projection: &Projection) -> Vec<pb::ReleasedFieldValue> {
    projection
        .released
        .iter()
        .map(|(field, (form, value))| pb::ReleasedFieldValue {
            field: field.clone(),
            form: form.as_str().to_owned(),
            value: Some(released_value(value)),
        })
        .collect()
}

/// Names and forms of the released fields, for the audit entry (never the values).
pub(crate) fn released_names(projection: &Projection) -> Vec<pb::ReleasedField> {
    projection
        .released
        .iter()
        .map(|(field, (form, _))| pb::ReleasedField {
            field: field.clone(),
            form: form.as_str().to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(field: &str, kind: Kind) -> pb::FieldEntry {
        pb::FieldEntry {
            field: field.into(),
            value: Some(pb::FieldValue { kind: Some(kind) }),
        }
    }

    #[test]
    fn record_types_values_and_rejects_duplicates() {
        let fields = [
            entry(
                "subject.birth_date",
                Kind::Date(pb::Date {
                    year: 1985,
                    month: 7,
                    day: 30,
                }),
            ),
            entry("safety.risk_level", Kind::EnumValue("high".into())),
        ];
        let record = record(&fields, "fields").expect("valid record");
        assert_eq!(record.0.len(), 2);
        assert!(matches!(record.0["subject.birth_date"], Value::Date(_)));

        let twice = [
            entry("a.b", Kind::Flag(true)),
            entry("a.b", Kind::Flag(false)),
        ];
        let ExchangeError::InvalidArgument(v) = super::record(&twice, "fields").expect_err("dup")
        else {
            panic!("expected invalid argument");
        };
        assert_eq!(v[0].field, "fields[1].field");
    }

    #[test]
    fn impossible_date_is_a_violation() {
        let fields = [entry(
            "subject.birth_date",
            Kind::Date(pb::Date {
                year: 2025,
                month: 2,
                day: 30,
            }),
        )];
        assert!(record(&fields, "fields").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp(1_765_000_000).expect("valid");
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(
            from_timestamp(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
    }
}
