//! Which references a lookup may find: registering a reference is itself the holder's disclosure
//! that it knows the subject (art. 458 Sw.), so it rests on a ground of its own, and a lookup
//! finds a reference only when that ground covers the lookup's requester and purpose.

use time::OffsetDateTime;

use super::decision::Decision;
use super::request::{ExchangeRequest, Grounds};
use super::set::PolicySet;

/// The ground a holder registered a reference on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReferenceGround {
    /// The subject's consent to be findable (a consent id).
    Consent(String),
    /// An open case consultation with the holder as participant (a case id).
    Case(String),
    /// An agreement whose legal text provides for the reference directory (an agreement id).
    Agreement(String),
}

impl ReferenceGround {
    /// The stored kind: `consent`, `case` or `agreement`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReferenceGround::Consent(_) => "consent",
            ReferenceGround::Case(_) => "case",
            ReferenceGround::Agreement(_) => "agreement",
        }
    }

    /// The consent, case or agreement id.
    pub fn id(&self) -> &str {
        match self {
            ReferenceGround::Consent(id)
            | ReferenceGround::Case(id)
            | ReferenceGround::Agreement(id) => id,
        }
    }

    /// From its stored kind and id; `None` for anything else (a reference without a ground).
    pub fn from_stored(kind: &str, id: &str) -> Option<ReferenceGround> {
        match kind {
            "consent" => Some(ReferenceGround::Consent(id.to_owned())),
            "case" => Some(ReferenceGround::Case(id.to_owned())),
            "agreement" => Some(ReferenceGround::Agreement(id.to_owned())),
            _ => None,
        }
    }
}

impl PolicySet {
    /// Whether a reference registered on `ground` may be found by the lookup `req` (its
    /// counterpart is the holder), given the subject's `grounds` and the lookup's `decision`
    /// against that holder:
    /// - a consent: valid now, of this subject, for the lookup's purpose or one above it, naming
    ///   the requester as a recipient, given by the right person;
    /// - a case: open now and not lapsed, of this subject, for the lookup's purpose or one above
    ///   it, with the requester and the holder as participants;
    /// - an agreement: one that provides for the directory, one of whose rules allowed the lookup.
    pub fn finds(
        &self,
        ground: &ReferenceGround,
        req: &ExchangeRequest,
        grounds: &Grounds,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> bool {
        let Some(purpose) = self.purpose_ix.get(&req.purpose) else {
            return false;
        };
        let above = |p: &str| {
            self.purpose_ix
                .get(p)
                .is_some_and(|p| self.ancestors[purpose].contains(p))
        };
        match ground {
            ReferenceGround::Consent(id) => grounds.consents.iter().any(|k| {
                k.id == *id
                    && k.subject == req.subject
                    && above(&k.purpose)
                    && k.recipients.contains(&req.requester)
                    && k.given <= now
                    && now < k.expires
                    && k.revoked.is_none_or(|rv| now < rv)
                    && k.lawfully_given()
            }),
            ReferenceGround::Case(id) => grounds.cases.iter().any(|k| {
                let lapse = self
                    .agreement(&k.agreement)
                    .and_then(|a| a.case_consultation.as_ref())
                    .map(|cc| k.running_since() + time::Duration::days(i64::from(cc.max_days)));
                let instrument = self
                    .agreement(&k.agreement)
                    .and_then(|a| a.case_consultation.as_ref())
                    .is_some_and(|cc| cc.instruments.iter().any(|i| i.id == k.instrument));
                k.id == *id
                    && instrument
                    && lapse.is_some_and(|l| now < l)
                    && k.opened <= now
                    && k.closed.is_none_or(|cl| now < cl)
                    && k.ends.is_none_or(|e| now < e)
                    && above(&k.purpose)
                    && k.subjects.contains(&req.subject)
                    && k.participants.contains(&req.requester)
                    && k.participants.contains(&req.counterpart)
            }),
            ReferenceGround::Agreement(id) => {
                self.agreement(id).is_some_and(|a| a.provides_findability)
                    && decision.is_allowed()
                    && decision
                        .matched
                        .iter()
                        .any(|r| r.effect == super::model::Effect::Permit && *r.agreement == **id)
            }
        }
    }
}
