//! Release forms (transforms), field types and the per-type order of revealingness.

use std::fmt;
use std::str::FromStr;

/// A form in which a field can be released; `Keep` reveals most, `Drop` nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// The value as supplied.
    Keep,
    /// A date reduced to `YYYY-MM`.
    YearMonth,
    /// A date reduced to `YYYY`.
    Year,
    /// A ten-year age band computed at the decision time.
    AgeBand,
    /// The postcode of an address.
    Postcode,
    /// The municipality of an address.
    Municipality,
    /// The initials of a text, `J. D.`.
    Initials,
    /// A keyed pseudonym, unlinkable across agreements and recipients.
    Pseudonym,
    /// Only whether a value exists.
    Presence,
    /// Nothing is released.
    Drop,
}

/// Every transform, in a fixed order (used for generation and iteration).
pub const ALL_TRANSFORMS: [Transform; 10] = [
    Transform::Keep,
    Transform::YearMonth,
    Transform::Year,
    Transform::AgeBand,
    Transform::Postcode,
    Transform::Municipality,
    Transform::Initials,
    Transform::Pseudonym,
    Transform::Presence,
    Transform::Drop,
];

impl Transform {
    /// The spelling used in policy files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Transform::Keep => "keep",
            Transform::YearMonth => "year_month",
            Transform::Year => "year",
            Transform::AgeBand => "age_band",
            Transform::Postcode => "postcode",
            Transform::Municipality => "municipality",
            Transform::Initials => "initials",
            Transform::Pseudonym => "pseudonym",
            Transform::Presence => "presence",
            Transform::Drop => "drop",
        }
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transform name that is not one of the closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transform `{0}`")]
pub struct UnknownTransform(pub String);

impl FromStr for Transform {
    type Err = UnknownTransform;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_TRANSFORMS
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTransform(s.to_owned()))
    }
}

/// The type of a catalogue field; it decides which transforms apply and how they are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldType {
    /// Free text.
    Text,
    /// A calendar date.
    Date,
    /// A whole number.
    Integer,
    /// A yes/no flag.
    Flag,
    /// One of a fixed list of values.
    Enum,
    /// A postal address.
    Address,
}

/// Every field type.
pub const ALL_FIELD_TYPES: [FieldType; 6] = [
    FieldType::Text,
    FieldType::Date,
    FieldType::Integer,
    FieldType::Flag,
    FieldType::Enum,
    FieldType::Address,
];

impl FieldType {
    /// The spelling used in catalogue.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Integer => "integer",
            FieldType::Flag => "flag",
            FieldType::Enum => "enum",
            FieldType::Address => "address",
        }
    }

    /// Parses the catalogue spelling.
    pub fn parse(s: &str) -> Option<FieldType> {
        ALL_FIELD_TYPES.iter().copied().find(|t| t.as_str() == s)
    }

    /// The chains of the type's order, each from most to least revealing; two forms are
    /// comparable exactly when one chain holds both.
    fn chains(self) -> &'static [&'static [Transform]] {
        use Transform::*;
        match self {
            FieldType::Date => &[&[Keep, YearMonth, Year, AgeBand, Presence, Drop]],
            FieldType::Address => &[&[Keep, Postcode, Municipality, Presence, Drop]],
            FieldType::Text => &[
                &[Keep, Initials, Presence, Drop],
                &[Keep, Pseudonym, Presence, Drop],
            ],
            FieldType::Integer => &[
                &[Keep, AgeBand, Presence, Drop],
                &[Keep, Pseudonym, Presence, Drop],
            ],
            FieldType::Enum | FieldType::Flag => &[&[Keep, Presence, Drop]],
        }
    }

    /// Whether this type supports the transform at all.
    pub fn supports(self, t: Transform) -> bool {
        self.chains().iter().any(|c| c.contains(&t))
    }

    /// The transforms this type supports, most revealing first.
    pub fn supported(self) -> Vec<Transform> {
        ALL_TRANSFORMS
            .into_iter()
            .filter(|t| self.supports(*t))
            .collect()
    }

    /// `Some(true)` when `a` reveals at least as much as `b`, `Some(false)` when strictly less,
    /// `None` when the two cannot be ordered (or one is not a form of this type).
    pub fn at_least(self, a: Transform, b: Transform) -> Option<bool> {
        for chain in self.chains() {
            let (Some(ia), Some(ib)) = (
                chain.iter().position(|t| *t == a),
                chain.iter().position(|t| *t == b),
            ) else {
                continue;
            };
            return Some(ia <= ib);
        }
        None
    }

    /// Whether `a` and `b` can be ordered for this type.
    pub fn comparable(self, a: Transform, b: Transform) -> bool {
        self.at_least(a, b).is_some()
    }

    /// The most revealing form below both `a` and `b` among `allowed` (plus `drop`, always allowed).
    pub fn meet(self, a: Transform, b: Transform, allowed: &[Transform]) -> Transform {
        let mut best = Transform::Drop;
        for t in ALL_TRANSFORMS {
            let ok = (t == Transform::Drop || allowed.contains(&t))
                && self.at_least(a, t) == Some(true)
                && self.at_least(b, t) == Some(true);
            // Candidates below both form a chain for every type, so "more revealing" is total here.
            if ok && self.at_least(t, best) == Some(true) {
                best = t;
            }
        }
        best
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transform::*;

    #[test]
    fn transforms_round_trip_through_strings() {
        for t in ALL_TRANSFORMS {
            assert_eq!(t.as_str().parse::<Transform>(), Ok(t));
        }
        assert!("shuffle".parse::<Transform>().is_err());
    }

    #[test]
    fn orders_follow_the_format_table() {
        assert_eq!(FieldType::Date.at_least(Keep, Year), Some(true));
        assert_eq!(FieldType::Date.at_least(AgeBand, YearMonth), Some(false));
        assert_eq!(FieldType::Text.at_least(Initials, Pseudonym), None);
        assert_eq!(FieldType::Integer.at_least(AgeBand, Pseudonym), None);
        assert_eq!(
            FieldType::Address.at_least(Postcode, Municipality),
            Some(true)
        );
        assert!(!FieldType::Flag.supports(Year));
        assert!(FieldType::Integer.supports(AgeBand));
    }

    #[test]
    fn meet_is_the_most_revealing_common_lower_bound() {
        let all = FieldType::Text.supported();
        assert_eq!(FieldType::Text.meet(Initials, Pseudonym, &all), Presence);
        assert_eq!(
            FieldType::Text.meet(Initials, Pseudonym, &[Initials, Pseudonym]),
            Drop
        );
        assert_eq!(
            FieldType::Date.meet(Keep, Year, &FieldType::Date.supported()),
            Year
        );
    }
}
