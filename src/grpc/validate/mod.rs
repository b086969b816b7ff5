//! Validation at the wire edge: every request is checked against its documented limits
//! ([`crate::grpc::limits`], docs/wire-limits.md) before a use case sees it, so bad input is
//! refused with INVALID_ARGUMENT before any policy evaluation, store read or audit append, and
//! changes nothing.
//!
//! Repeated fields are counted before their elements are looked at, so a request with 100,000
//! of anything costs one comparison. Only the first few violations are kept, with a count of
//! the rest, so the error stays small whatever the input.
//!
//! What needs the policy (a purpose of the vocabulary, a field of the catalogue, a form the
//! field's type supports, the justification bound) is checked against the snapshot in force;
//! everything that needs the stored state (whether a ticket exists, whether a party may) stays
//! with the use cases.

mod requests;

use std::fmt::Display;

use prost_types::{Duration, Timestamp};
use tonic::Status;

use crate::exchange::Violation;
use crate::grpc::limits::{self, Text};
use crate::grpc::status;
use crate::identity::SubjectNumber;
use crate::policy::{PolicySet, Transform};
use crate::proto::v1 as pb;

/// A request message whose fields can be checked against their limits.
pub trait Validate {
    /// Records every problem of `self` in `check`.
    fn validate(&self, check: &mut Check<'_>);
}

/// Checks `request` against its limits and the policy `policy`: `Ok` when it may go to its use
/// case, else the INVALID_ARGUMENT refusal.
pub fn request<T: Validate>(request: &T, policy: &PolicySet) -> Result<(), Status> {
    let mut check = Check::new(policy);
    request.validate(&mut check);
    check.into_result()
}

/// The path `parent.name` of a field, built only when a violation names it.
#[derive(Debug, Clone, Copy)]
struct At<'s>(&'s str, &'s str);

impl Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The violations found in one request (the first few, and how many in all).
#[derive(Debug)]
pub struct Check<'a> {
    policy: &'a PolicySet,
    violations: Vec<Violation>,
    total: usize,
    /// How many violations are kept (all are counted).
    keep: usize,
}

impl<'a> Check<'a> {
    /// An empty check against `policy`.
    pub fn new(policy: &'a PolicySet) -> Self {
        Self {
            policy,
            violations: Vec::new(),
            total: 0,
            keep: limits::MAX_REPORTED_VIOLATIONS,
        }
    }

    /// `Ok` without violations, else the INVALID_ARGUMENT refusal listing them.
    pub fn into_result(self) -> Result<(), Status> {
        if self.total == 0 {
            return Ok(());
        }
        Err(status::bad_input(
            status::INVALID_ARGUMENT_REASON,
            &format!(
                "invalid request: {}",
                self.violations
                    .iter()
                    .take(3)
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            &self.violations,
            self.total,
        ))
    }

    /// The field paths of the violations kept (for tests).
    pub fn fields(&self) -> Vec<&str> {
        self.violations.iter().map(|v| v.field.as_str()).collect()
    }

    /// Records that `field` is wrong; only the first few are kept, all are counted.
    fn push(&mut self, field: impl Display, description: impl Into<String>) {
        self.total += 1;
        if self.violations.len() < self.keep {
            self.violations
                .push(Violation::new(field.to_string(), description.into()));
        }
    }

    /// Checks an optional string's length and characters; `true` when it is within them.
    fn text(&mut self, field: impl Display, value: &str, limit: Text) -> bool {
        let mut chars = 0usize;
        let mut bad_char = false;
        for c in value.chars() {
            chars += 1;
            bad_char |= !limit.class.allows(c);
        }
        if chars > limit.max_chars {
            self.push(
                field,
                format!("must be at most {} characters", limit.max_chars),
            );
            false
        } else if bad_char {
            self.push(field, limit.class.refusal());
            false
        } else {
            true
        }
    }

    /// Checks a required string: not blank, and within its limits.
    fn required(&mut self, field: impl Display, value: &str, limit: Text) -> bool {
        if value.trim().is_empty() {
            self.push(field, "required");
            false
        } else {
            self.text(field, value, limit)
        }
    }

    /// Checks a repeated field's count before anything else is looked at: `true` when its
    /// elements may be checked.
    fn count(&mut self, field: impl Display, len: usize, min: usize, max: usize) -> bool {
        if len > max {
            self.push(field, format!("at most {max} items, not {len}"));
            false
        } else if len < min {
            self.push(
                field,
                format!("at least {min} item{}", if min == 1 { "" } else { "s" }),
            );
            false
        } else {
            true
        }
    }

    /// A required purpose of the policy vocabulary (the same refusal in every RPC).
    fn purpose(&mut self, field: impl Display, value: &str) {
        if value.is_empty() {
            self.push(field, "a purpose from the policy vocabulary is required");
        } else if self.text(&field, value, limits::POLICY_ID)
            && self.policy.purpose(value).is_none()
        {
            self.push(field, "not a purpose of the policy vocabulary");
        }
    }

    /// A required party of the policy (whether it may take part is the policy's question).
    fn party(&mut self, field: impl Display, value: &str) {
        if self.required(&field, value, limits::POLICY_ID) && self.policy.party(value).is_none() {
            self.push(field, "not a party of the network");
        }
    }

    /// A justification: within its wire limit and the policy's `max_justification`.
    fn justification(&mut self, field: impl Display, value: &str) {
        if self.text(&field, value, limits::JUSTIFICATION) {
            let max = self.policy.max_justification();
            if value.trim().chars().count() > max {
                self.push(field, format!("must be at most {max} characters"));
            }
        }
    }

    /// A required catalogue field id; returns its definition when it is one.
    fn catalogue_field(
        &mut self,
        field: impl Display,
        value: &str,
    ) -> Option<&'a crate::policy::FieldDef> {
        if value.trim().is_empty() {
            self.push(field, "a catalogue field id is required");
            return None;
        }
        if !self.text(&field, value, limits::POLICY_ID) {
            return None;
        }
        let def = self.policy.field(value);
        if def.is_none() {
            self.push(field, "not a field of the catalogue");
        }
        def
    }

    /// A requested field: a catalogue field, and optionally a form its type supports.
    fn field_request(&mut self, at: &str, request: &pb::FieldRequest) {
        let def = self.catalogue_field(At(at, "field"), &request.field);
        if request.form.is_empty() {
            return;
        }
        let field = At(at, "form");
        if !self.text(field, &request.form, limits::FORM) {
            return;
        }
        match request.form.parse::<Transform>() {
            Err(e) => self.push(field, e.to_string()),
            Ok(form) => {
                if let Some(def) = def
                    && !def.ty.supports(form)
                {
                    self.push(
                        field,
                        format!("a {} field has no form {}", def.ty.as_str(), form.as_str()),
                    );
                }
            }
        }
    }

    /// Requested fields (`fields` of RequestContext and Explain, `forms` of Share).
    fn field_requests(&mut self, at: &str, requests: &[pb::FieldRequest], min: usize) {
        if self.count(at, requests.len(), min, limits::MAX_FIELDS) {
            for (i, r) in requests.iter().enumerate() {
                self.field_request(&format!("{at}[{i}]"), r);
            }
        }
    }

    /// Supplied fields with their values (Respond, Share, Explain's elements).
    fn field_entries(&mut self, at: &str, entries: &[pb::FieldEntry], min: usize) {
        if !self.count(at, entries.len(), min, limits::MAX_FIELDS) {
            return;
        }
        for (i, entry) in entries.iter().enumerate() {
            let here = format!("{at}[{i}]");
            let at = here.as_str();
            self.catalogue_field(At(at, "field"), &entry.field);
            let Some(kind) = entry.value.as_ref().and_then(|v| v.kind.as_ref()) else {
                self.push(At(at, "value"), "a value is required");
                continue;
            };
            use pb::field_value::Kind;
            match kind {
                Kind::Text(t) => {
                    self.text(At(at, "value.text"), t, limits::FIELD_TEXT);
                }
                Kind::EnumValue(e) => {
                    self.required(At(at, "value.enum_value"), e, limits::POLICY_ID);
                }
                Kind::Date(d) => {
                    if calendar_date(d).is_none() {
                        self.push(At(at, "value.date"), "not a calendar date");
                    }
                }
                Kind::Address(a) => {
                    for (name, value, limit) in [
                        ("value.address.street", &a.street, limits::ADDRESS_LINE),
                        (
                            "value.address.house_number",
                            &a.house_number,
                            limits::ADDRESS_SHORT,
                        ),
                        ("value.address.postcode", &a.postcode, limits::ADDRESS_SHORT),
                        (
                            "value.address.municipality",
                            &a.municipality,
                            limits::ADDRESS_LINE,
                        ),
                    ] {
                        self.text(At(at, name), value, limit);
                    }
                }
                Kind::Integer(_) | Kind::Flag(_) => {}
            }
        }
    }

    /// A subject: required or not, a well-formed national register or BIS number.
    fn subject(&mut self, at: &str, subject: Option<&pb::Subject>, required: bool) {
        let number = subject.map(|s| s.number.as_str()).unwrap_or_default();
        let field = At(at, "number");
        if number.trim().is_empty() {
            if required {
                self.push(field, "a national register or BIS number is required");
            }
            return;
        }
        if self.text(field, number, limits::SUBJECT_NUMBER)
            && let Err(e) = SubjectNumber::parse(number)
        {
            self.push(field, e.to_string());
        }
    }

    /// An optional time: when present, a valid one.
    fn timestamp(&mut self, field: impl Display, time: Option<&Timestamp>) {
        if let Some(t) = time {
            let valid = (0..1_000_000_000).contains(&t.nanos)
                && time::OffsetDateTime::from_unix_timestamp(t.seconds).is_ok();
            if !valid {
                self.push(field, "not a valid time");
            }
        }
    }

    /// An optional duration: when present, not negative and well-formed.
    fn duration(&mut self, field: impl Display, duration: Option<&Duration>) {
        if let Some(d) = duration
            && (d.seconds < 0 || !(0..1_000_000_000).contains(&d.nanos))
        {
            self.push(field, "must not be negative");
        }
    }

    /// An enumeration's wire number: a value it declares, and not the unspecified one when
    /// `required`.
    fn enumeration<E: TryFrom<i32>>(&mut self, field: impl Display, value: i32, required: bool) {
        if E::try_from(value).is_err() {
            self.push(field, "not a value of the enumeration");
        } else if required && value == 0 {
            self.push(field, "required");
        }
    }
}

/// The calendar date of a wire date, if it is one.
fn calendar_date(d: &pb::Date) -> Option<time::Date> {
    let month = time::Month::try_from(u8::try_from(d.month).ok()?).ok()?;
    time::Date::from_calendar_date(d.year, month, u8::try_from(d.day).ok()?).ok()
}

#[cfg(test)]
mod tests;
