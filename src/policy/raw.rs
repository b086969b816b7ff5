//! The file format as serde sees it: spans kept for diagnostics, unknown keys rejected.
//!
//! Each `[[party]]`, `[[rule]]`, `[[case]]`… is deserialized on its own, so one bad entry is
//! reported and the rest of the file is still checked.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::value::{Datetime, Offset};

use super::diagnostic::{Problem, SourceFile};

/// `[[party]]` in parties.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParty {
    pub id: Spanned<String>,
    pub name: String,
    pub roles: Vec<Spanned<String>>,
    pub organisation: Spanned<String>,
    pub contact_point: String,
    pub dpo: Option<Spanned<String>>,
    #[serde(default)]
    pub raise_sensitivity: Vec<Spanned<RawRaise>>,
}

/// One entry of `raise_sensitivity` in parties.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRaise {
    pub fields: Vec<Spanned<String>>,
    pub to: Spanned<String>,
}

/// `[limits]` in vocabulary.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_justification: Option<u32>,
}

/// `[[role]]` in vocabulary.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub id: Spanned<String>,
    pub title: String,
}

/// `[[purpose]]` in vocabulary.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPurpose {
    pub id: Spanned<String>,
    pub title: String,
    pub parent: Option<Spanned<String>>,
    pub dpv: Option<String>,
}

/// `[[legal_basis]]` in vocabulary.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLegalBasis {
    pub id: Spanned<String>,
    pub title: String,
    pub citation: Option<String>,
    #[serde(default)]
    pub allows: Vec<Spanned<String>>,
}

/// `[[field]]` in catalogue.toml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawField {
    pub id: Spanned<String>,
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub ty: Spanned<String>,
    pub sensitivity: Spanned<String>,
    pub transforms: Vec<Spanned<String>>,
    pub values: Option<Spanned<Vec<String>>>,
}

/// The top of an agreement file, without its rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgreement {
    pub id: Spanned<String>,
    pub title: String,
    pub owner: Spanned<String>,
    pub legal_basis: Spanned<Vec<Spanned<String>>>,
    pub valid_from: Spanned<Datetime>,
    pub valid_until: Option<Spanned<Datetime>>,
    pub description: Option<String>,
    pub case_consultation: Option<Spanned<RawCaseConsultation>>,
    pub provides_findability: Option<bool>,
    #[serde(default)]
    pub ceiling: Vec<Spanned<RawCeiling>>,
}

/// `[case_consultation]` of an agreement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCaseConsultation {
    pub purposes: Spanned<Vec<Spanned<String>>>,
    pub openers: Spanned<RawSelector>,
    pub max_days: Spanned<u32>,
    pub use_restriction: Option<String>,
    #[serde(default)]
    pub instrument: Vec<Spanned<RawInstrument>>,
}

/// `[[case_consultation.instrument]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstrument {
    pub id: Spanned<String>,
    pub kind: Spanned<String>,
    pub reference: Spanned<String>,
    pub title: Option<String>,
}

/// `[[ceiling]]` of an agreement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCeiling {
    pub recipient: Spanned<RawSelector>,
    pub field: Spanned<String>,
    pub form: Spanned<String>,
    pub description: Option<String>,
}

/// A party selector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSelector {
    pub parties: Option<Vec<Spanned<String>>>,
    pub roles: Option<Vec<Spanned<String>>>,
    pub any: Option<bool>,
    pub same_organisation: Option<bool>,
}

/// `urgency = { min_justification = N, min_words = W }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUrgency {
    pub min_justification: u32,
    pub min_words: Option<u32>,
}

/// `[rule.conditions]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConditions {
    pub case: Option<bool>,
    pub consent: Option<bool>,
    pub parental_consent: Option<bool>,
    pub urgency: Option<RawUrgency>,
    pub elements: Option<Vec<Spanned<String>>>,
    pub holder_weighing: Option<bool>,
}

/// `[[rule.release]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelease {
    pub field: Spanned<String>,
    pub form: Spanned<String>,
}

/// `[rule.obligations]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObligations {
    pub retention_days: Option<u32>,
    pub review: Option<bool>,
    pub notify: Option<bool>,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub id: Spanned<String>,
    pub effect: Spanned<String>,
    pub kinds: Spanned<Vec<Spanned<String>>>,
    pub requester: Spanned<RawSelector>,
    pub counterpart: Spanned<RawSelector>,
    pub purposes: Spanned<Vec<Spanned<String>>>,
    pub valid_from: Option<Spanned<Datetime>>,
    pub valid_until: Option<Spanned<Datetime>>,
    pub description: Option<String>,
    pub conditions: Option<RawConditions>,
    pub release: Option<Vec<Spanned<RawRelease>>>,
    pub fields: Option<Vec<Spanned<String>>>,
    pub obligations: Option<Spanned<RawObligations>>,
}

/// `[case.request]` in a fixture.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequest {
    pub kind: Spanned<String>,
    pub requester: String,
    pub counterpart: String,
    pub purpose: String,
    pub subject: String,
    #[serde(default)]
    pub fields: Vec<Spanned<String>>,
    pub justification: Option<String>,
    #[serde(default)]
    pub elements: BTreeMap<String, String>,
}

/// `[[case.grounds.case]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCaseGround {
    pub id: String,
    pub agreement: String,
    pub instrument: String,
    pub participants: Vec<String>,
    pub subjects: Vec<String>,
    pub purpose: String,
    pub opened: Spanned<Datetime>,
    pub closed: Option<Spanned<Datetime>>,
    pub ends: Option<Spanned<Datetime>>,
    pub renewed: Option<Spanned<Datetime>>,
}

/// `[[case.grounds.consent]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsentGround {
    pub id: String,
    pub subject: String,
    pub purpose: String,
    pub recipients: Vec<String>,
    pub given: Spanned<Datetime>,
    pub expires: Spanned<Datetime>,
    pub revoked: Option<Spanned<Datetime>>,
    pub evidence: String,
    pub given_by: Option<Spanned<String>>,
    pub minor: Option<Spanned<String>>,
    pub parents_also: Option<bool>,
}

/// `[case.grounds]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrounds {
    #[serde(default)]
    pub case: Vec<RawCaseGround>,
    #[serde(default)]
    pub consent: Vec<RawConsentGround>,
}

/// `[case.expect]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    pub decision: Spanned<String>,
    pub reason: Option<Spanned<String>>,
    pub fields: Option<BTreeMap<String, String>>,
    pub rules: Option<Vec<String>>,
    pub obligations: Option<RawExpectedObligations>,
    pub missing: Option<String>,
}

/// `expect.obligations` in fixtures.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpectedObligations {
    pub retention_days: Option<u32>,
    pub review: Option<bool>,
    pub notify: Option<bool>,
    pub use_restriction: Option<bool>,
    pub weighing: Option<bool>,
}

/// `[[case]]` in a fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCase {
    /// Required in fixtures; a request file for `policy explain` may leave it out.
    pub name: Option<String>,
    /// Required in fixtures; a request file may leave it out.
    pub now: Option<Spanned<Datetime>>,
    pub request: RawRequest,
    #[serde(default)]
    pub grounds: RawGrounds,
    /// Required in fixtures; a request file may leave it out.
    pub expect: Option<RawExpect>,
}

/// A parsed file: its top-level table, consumed key by key.
pub(crate) struct Document<'a> {
    file: &'a SourceFile,
    table: DeTable<'a>,
    span: Range<usize>,
}

impl<'a> Document<'a> {
    /// Parses a file, reporting every syntax error; `None` when it does not parse.
    pub fn parse(file: &'a SourceFile, problems: &mut Vec<Problem>) -> Option<Document<'a>> {
        let (table, errors) = DeTable::parse_recoverable(&file.text);
        if !errors.is_empty() {
            for e in errors {
                let span = e.span().unwrap_or(0..0);
                problems.push(Problem::at(
                    file,
                    span,
                    format!("TOML syntax: {}", e.message().trim()),
                    Some("fix the TOML syntax; dates are written 2026-01-31 without quotes".into()),
                ));
            }
            return None;
        }
        let span = table.span();
        Some(Document {
            file,
            table: table.into_inner(),
            span,
        })
    }

    /// Whether the document has a top-level key.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Removes and deserializes an array of tables (`[[key]]`), one entry at a time.
    pub fn take_items<T: DeserializeOwned>(
        &mut self,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Vec<Spanned<T>> {
        let Some(value) = self.table.remove(key) else {
            return Vec::new();
        };
        let span = value.span();
        match value.into_inner() {
            DeValue::Array(items) => items
                .into_iter()
                .filter_map(|item| self.deserialize(item, problems))
                .collect(),
            _ => {
                problems.push(Problem::at(
                    self.file,
                    span,
                    format!("`{key}` must be an array of tables"),
                    Some(format!("write each entry as a [[{key}]] table")),
                ));
                Vec::new()
            }
        }
    }

    /// Removes and deserializes one table (`[key]`).
    pub fn take_table<T: DeserializeOwned>(
        &mut self,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Spanned<T>> {
        let value = self.table.remove(key)?;
        self.deserialize(value, problems)
    }

    /// Deserializes what is left of the document as one value.
    pub fn take_rest<T: DeserializeOwned>(self, problems: &mut Vec<Problem>) -> Option<T> {
        let whole = Spanned::new(self.span.clone(), DeValue::Table(self.table));
        deserialize_value(self.file, whole, problems).map(Spanned::into_inner)
    }

    /// Reports every key left over as unknown.
    pub fn reject_rest(self, allowed: &[&str], problems: &mut Vec<Problem>) {
        for (k, _) in self.table.iter() {
            problems.push(Problem::at(
                self.file,
                k.span(),
                format!("unknown key `{}`", k.get_ref()),
                Some(format!("this file may only hold: {}", allowed.join(", "))),
            ));
        }
    }

    fn deserialize<T: DeserializeOwned>(
        &self,
        item: Spanned<DeValue<'a>>,
        problems: &mut Vec<Problem>,
    ) -> Option<Spanned<T>> {
        deserialize_value(self.file, item, problems)
    }
}

fn deserialize_value<T: DeserializeOwned>(
    file: &SourceFile,
    item: Spanned<DeValue<'_>>,
    problems: &mut Vec<Problem>,
) -> Option<Spanned<T>> {
    let span = item.span();
    match T::deserialize(ValueDeserializer::from(item)) {
        Ok(v) => Some(Spanned::new(span, v)),
        Err(e) => {
            let message = e.message().trim().to_owned();
            let hint = if message.starts_with("unknown field") {
                Some("remove the key or fix its spelling; unknown keys are rejected".to_owned())
            } else if message.contains("datetime") {
                Some("write dates as 2026-01-31 or 2026-01-31T10:00:00Z, without quotes".to_owned())
            } else if message.starts_with("missing field") {
                Some("add the required key".to_owned())
            } else {
                None
            };
            let at = unknown_key_span(file, &message, span.clone())
                .or(e.span())
                .unwrap_or(span);
            problems.push(Problem::at(file, at, message, hint));
            None
        }
    }
}

/// serde reports an unknown key at its table; point at the key itself instead.
fn unknown_key_span(
    file: &SourceFile,
    message: &str,
    within: Range<usize>,
) -> Option<Range<usize>> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let text = file.text.get(within.clone())?;
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let start = from + i;
        let end = start + key.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '{' || c == ',' || c == '.');
        let after_ok = text[end..].trim_start_matches([' ', '\t']).starts_with('=');
        if before_ok && after_ok {
            return Some(within.start + start..within.start + end);
        }
        from = end;
    }
    None
}

/// Which end of a window a TOML date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// A date means 00:00:00 of that day.
    Start,
    /// A date means the end of that day: the window closes at 00:00:00 of the next day.
    End,
}

/// Converts a TOML date or date-time to a UTC instant; a local date-time is taken as UTC.
pub(crate) fn instant(dt: &Datetime, bound: Bound) -> Result<OffsetDateTime, String> {
    let Some(d) = dt.date else {
        return Err("a time without a date is not an instant".to_owned());
    };
    let month = Month::try_from(d.month).map_err(|_| format!("month {} is invalid", d.month))?;
    let date = Date::from_calendar_date(i32::from(d.year), month, d.day)
        .map_err(|e| format!("invalid date: {e}"))?;
    match dt.time {
        None => {
            let start = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
            Ok(match bound {
                Bound::Start => start,
                Bound::End => start + Duration::days(1),
            })
        }
        Some(t) => {
            let time = Time::from_hms_nano(
                t.hour,
                t.minute,
                t.second.unwrap_or(0),
                t.nanosecond.unwrap_or(0),
            )
            .map_err(|e| format!("invalid time: {e}"))?;
            let offset = match dt.offset {
                None | Some(Offset::Z) => UtcOffset::UTC,
                Some(Offset::Custom { minutes }) => {
                    UtcOffset::from_whole_seconds(i32::from(minutes) * 60)
                        .map_err(|e| format!("invalid offset: {e}"))?
                }
            };
            Ok(PrimitiveDateTime::new(date, time)
                .assume_offset(offset)
                .to_offset(UtcOffset::UTC))
        }
    }
}

/// Converts a spanned date, reporting a malformed one.
pub(crate) fn spanned_instant(
    file: &SourceFile,
    dt: &Spanned<Datetime>,
    bound: Bound,
    problems: &mut Vec<Problem>,
) -> Option<OffsetDateTime> {
    match instant(dt.get_ref(), bound) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(Problem::at(
                file,
                dt.span(),
                format!("malformed date: {e}"),
                Some("write dates as 2026-01-31 or 2026-01-31T10:00:00Z".to_owned()),
            ));
            None
        }
    }
}
