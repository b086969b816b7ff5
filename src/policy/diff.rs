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
use super::transform::Transform;

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

/// Grounds that satisfy every case and consent condition for one exchange.
pub fn satisfied_grounds(req: &ExchangeRequest, now: OffsetDateTime) -> Grounds {
    let long_ago = now - Duration::days(36_500);
    Grounds {
        cases: vec![CaseGround {
            id: "assumed".to_owned(),
            participants: vec![req.requester.clone(), req.counterpart.clone()],
            subjects: vec![req.subject.clone()],
            purpose: req.purpose.clone(),
            opened: long_ago,
            closed: None,
        }],
        consents: vec![ConsentGround {
            id: "assumed".to_owned(),
            subject: req.subject.clone(),
            purpose: req.purpose.clone(),
            recipients: vec![req.recipient().to_owned()],
            given: long_ago,
            expires: now + Duration::days(36_500),
            revoked: None,
            evidence: "assumed".to_owned(),
        }],
    }
}

fn form(set: &PolicySet, req: &ExchangeRequest, now: OffsetDateTime) -> Option<Transform> {
    set.field(&req.fields[0].field)?;
    let d = set.decide(req, &satisfied_grounds(req, now), now);
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
    let justification = Some("x".repeat(10_000));
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
