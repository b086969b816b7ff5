//! The effect of a policy change: who gains or loses which field, for which purpose.
//!
//! Both sets are evaluated over every kind × requester × counterpart × purpose × field
//! (the union of both sets' ids), one field per request, with every ground satisfied (an open
//! case, a valid consent, a long justification), so a DPO sees the effect of the text change.

use std::collections::BTreeSet;
use std::fmt;

use time::{Duration, OffsetDateTime};

use super::request::{
    ALL_KINDS, CaseGround, ConsentGround, ExchangeKind, ExchangeRequest, FieldRequest, Grounds,
};
use super::set::PolicySet;
use super::transform::{FieldType, Transform};

/// One change of access.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessChange {
    /// The exchange kind.
    pub kind: ExchangeKind,
    /// The requester.
    pub requester: String,
    /// The counterpart.
    pub counterpart: String,
    /// The purpose.
    pub purpose: String,
    /// The field.
    pub field: String,
    /// The form under the old set (`None`: not released).
    pub old: Option<Transform>,
    /// The form under the new set (`None`: not released).
    pub new: Option<Transform>,
}

impl fmt::Display for AccessChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = format!(
            "{} {} → {} for {}: {}",
            self.kind, self.requester, self.counterpart, self.purpose, self.field
        );
        match (self.old, self.new) {
            (None, Some(n)) => write!(f, "+ {who} as {n}"),
            (Some(o), None) => write!(f, "- {who} (was {o})"),
            (Some(o), Some(n)) => write!(f, "~ {who}: {o} → {n}"),
            (None, None) => write!(f, "= {who}"),
        }
    }
}

/// Grounds that satisfy every case and consent condition for one exchange: a case opened a day
/// ago under each agreement that has case consultations, and a consent given long ago.
pub fn satisfied_grounds(set: &PolicySet, req: &ExchangeRequest, now: OffsetDateTime) -> Grounds {
    let long_ago = now - Duration::days(36_500);
    Grounds {
        cases: set
            .agreements()
            .filter_map(|a| {
                let cc = a.case_consultation.as_ref()?;
                Some(CaseGround {
                    id: format!("assumed-{}", a.id),
                    agreement: a.id.clone(),
                    instrument: cc.instruments.first()?.id.clone(),
                    participants: vec![req.requester.clone(), req.counterpart.clone()],
                    subjects: vec![req.subject.clone()],
                    purpose: req.purpose.clone(),
                    opened: now - Duration::days(1),
                    closed: None,
                    ends: None,
                    renewed: None,
                })
            })
            .collect(),
        consents: vec![ConsentGround {
            id: "assumed".to_owned(),
            subject: req.subject.clone(),
            purpose: req.purpose.clone(),
            recipients: vec![req.recipient().to_owned()],
            given: long_ago,
            expires: now + Duration::days(36_500),
            revoked: None,
            evidence: "assumed".to_owned(),
            given_by: super::request::ConsentGiver::Subject,
            capacity: super::request::Capacity::Adult,
            parents_also: false,
        }],
    }
}

/// Every legal element a rule of `set` can require, with a valid value: the first value of an
/// enum, `true` for a flag.
pub fn satisfied_elements(set: &PolicySet) -> Vec<(String, String)> {
    set.fields()
        .filter_map(|f| match f.ty {
            FieldType::Enum => Some((f.id.clone(), f.values.first()?.clone())),
            FieldType::Flag => Some((f.id.clone(), "true".to_owned())),
            _ => None,
        })
        .collect()
}

/// A justification that satisfies every urgency condition up to `max` characters.
pub fn satisfied_justification(max: usize) -> String {
    let mut text = String::new();
    let mut i = 0u32;
    while text.chars().count() + 12 < max {
        // Distinct words, so that neither one word nor one character dominates.
        let word: String = format!("{i:x}")
            .chars()
            .map(|c| char::from(b'g' + c.to_digit(16).map_or(0, |d| d as u8)))
            .collect();
        text.push_str("reden");
        text.push_str(&word);
        text.push(' ');
        i += 1;
    }
    text.trim_end().to_owned()
}

fn form(set: &PolicySet, req: &ExchangeRequest, now: OffsetDateTime) -> Option<Transform> {
    set.field(&req.fields[0].field)?;
    let d = set.decide(req, &satisfied_grounds(set, req, now), now);
    d.fields.first().map(|g| g.form)
}

/// Every access that differs between `old` and `new` at time `now`, sorted.
pub fn diff(old: &PolicySet, new: &PolicySet, now: OffsetDateTime) -> Vec<AccessChange> {
    let ids = |f: &dyn Fn(&PolicySet) -> Vec<String>| -> Vec<String> {
        let mut s: BTreeSet<String> = f(old).into_iter().collect();
        s.extend(f(new));
        s.into_iter().collect()
    };
    let parties = ids(&|s| s.parties().map(|p| p.id.clone()).collect());
    let purposes = ids(&|s| s.purposes().map(|p| p.id.clone()).collect());
    let fields = ids(&|s| s.fields().map(|p| p.id.clone()).collect());
    let mut out = Vec::new();
    // Long enough for any urgency condition a set is likely to set, short enough to read fast.
    let justification = Some(satisfied_justification(
        old.max_justification()
            .min(new.max_justification())
            .min(1_200),
    ));
    let elements = satisfied_elements(old)
        .into_iter()
        .chain(satisfied_elements(new))
        .collect::<Vec<_>>();
    for kind in ALL_KINDS {
        for requester in &parties {
            for counterpart in &parties {
                for purpose in &purposes {
                    for field in &fields {
                        let req = ExchangeRequest {
                            kind,
                            requester: requester.clone(),
                            counterpart: counterpart.clone(),
                            purpose: purpose.clone(),
                            subject: "assumed-subject".to_owned(),
                            fields: vec![FieldRequest {
                                field: field.clone(),
                                form: None,
                            }],
                            justification: justification.clone(),
                            elements: elements.clone(),
                        };
                        let (a, b) = (form(old, &req, now), form(new, &req, now));
                        if a != b {
                            out.push(AccessChange {
                                kind,
                                requester: requester.clone(),
                                counterpart: counterpart.clone(),
                                purpose: purpose.clone(),
                                field: field.clone(),
                                old: a,
                                new: b,
                            });
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out
}
