//! The reference directory: holders register that they know a subject; police and partners look up
//! who knows a subject, as far as the policy lets them learn it.

use std::sync::Arc;

use std::collections::BTreeMap;

use crate::policy::{
    Decision, ExchangeKind, ExchangeRequest, FieldRequest, ReasonCode, ReferenceGround, Transform,
};
use crate::proto::v1::reference_ground;
use crate::proto::v1::{
    AuditEvent, LookupHit, LookupRequest, LookupResponse, RegisterReferenceRequest,
    RegisterReferenceResponse, WithdrawReferenceRequest, WithdrawReferenceResponse,
};
use crate::release::{Record, ReleasedValue, Value};
use crate::store::{self, ReferenceRecord};

use super::entry::record_decision;
use super::{Caller, ExchangeError, Gateway, ids};

/// Catalogue fields a lookup asks for: whether there is a hit, who the holder is, and how to reach it.
const LOOKUP_FIELDS: [&str; 3] = [
    "reference.hit",
    "reference.holder",
    "reference.contact_point",
];

/// Longest holder reference accepted.
const MAX_HOLDER_REFERENCE: usize = 128;

/// Order in which refusal reasons are reported when every holder is refused: the one closest to
/// success first, as in the policy engine's own choice of reason.
const REASON_PREFERENCE: [ReasonCode; 7] = [
    ReasonCode::JustificationRequired,
    ReasonCode::ElementMissing,
    ReasonCode::ConsentRequired,
    ReasonCode::CaseRequired,
    ReasonCode::OutsideValidity,
    ReasonCode::Forbidden,
    ReasonCode::NothingReleasable,
];

impl Gateway {
    /// Registers (or replaces) the caller's reference to a subject.
    pub async fn register_reference(
        &self,
        caller: &Caller,
        request: RegisterReferenceRequest,
    ) -> Result<RegisterReferenceResponse, ExchangeError> {
        let subject = self
            .pseudonymise(request.subject.as_ref(), "subject")?
            .to_hex();
        let holder_reference = request.holder_reference.trim().to_owned();
        if holder_reference.chars().count() > MAX_HOLDER_REFERENCE {
            return Err(ExchangeError::invalid(
                "holder_reference",
                "must be at most 128 characters",
            ));
        }
        let ground = match request.ground.and_then(|g| g.ground) {
            None => {
                return Err(ExchangeError::invalid(
                    "ground",
                    "name the ground that lets you disclose that you know the subject: the subject's consent to be findable, an open case, or an agreement that provides for the directory",
                ));
            }
            Some(reference_ground::Ground::ConsentId(id)) => ReferenceGround::Consent(id),
            Some(reference_ground::Ground::CaseId(id)) => ReferenceGround::Case(id),
            Some(reference_ground::Ground::Agreement(id)) => ReferenceGround::Agreement(id),
        };
        let key = store::reference_key(&subject, &caller.party);
        let policy = self.policy();
        let now = self.now();
        self.check_reference_ground(&policy, caller, &subject, &ground, now)?;
        let _guard = self.inner.locks.lock(&key).await;
        let record = ReferenceRecord {
            holder: caller.party.clone(),
            holder_reference,
            registered: now.unix_timestamp(),
            ground_kind: ground.kind().to_owned(),
            ground_id: ground.id().to_owned(),
        };
        let mut entry = self.entry(&policy, caller, "RegisterReference", AuditEvent::Grounds);
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.counterpart_party = caller.party.clone();
        entry.ground_refs = vec![format!("{}:{}", ground.kind(), ground.id())];
        let committed = self.commit(&entry, vec![store::put(key, &record)]).await;
        // Also after a failed append: its change may still have reached the store.
        self.inner.references.invalidate();
        let receipt = committed?;
        Ok(RegisterReferenceResponse {
            subject_pseudonym: subject,
            receipt: Some(receipt),
        })
    }

    /// Withdraws the caller's reference to a subject; withdrawing an absent reference is logged and
    /// succeeds, so the answer never says whether one existed.
    pub async fn withdraw_reference(
        &self,
        caller: &Caller,
        request: WithdrawReferenceRequest,
    ) -> Result<WithdrawReferenceResponse, ExchangeError> {
        let subject = self
            .pseudonymise(request.subject.as_ref(), "subject")?
            .to_hex();
        let key = store::reference_key(&subject, &caller.party);
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&key).await;
        let mut entry = self.entry(&policy, caller, "WithdrawReference", AuditEvent::Grounds);
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.counterpart_party = caller.party.clone();
        let committed = self.commit(&entry, vec![store::delete(key)]).await;
        self.inner.references.invalidate();
        let receipt = committed?;
        Ok(WithdrawReferenceResponse {
            receipt: Some(receipt),
        })
    }

    /// Who knows the subject, as far as the policy allows the caller to learn.
    ///
    /// The caller is refused only when the policy allows it a lookup against no party at all for
    /// this purpose: that depends on the policy and the grounds, never on the directory. Otherwise
    /// the answer lists the holders that registered the subject and that the caller may learn
    /// about; a holder it may not learn about is indistinguishable from one that knows nothing.
    pub async fn lookup(
        &self,
        caller: &Caller,
        request: LookupRequest,
    ) -> Result<LookupResponse, ExchangeError> {
        let subject = self
            .pseudonymise(request.subject.as_ref(), "subject")?
            .to_hex();
        let now = self.now();
        let lookup_id = ids::new_id("l", now)?;
        let grounds = self.grounds_for(&subject)?;
        let policy = self.policy();
        let fields: Vec<FieldRequest> = LOOKUP_FIELDS
            .iter()
            .filter(|f| policy.field(f).is_some())
            .map(|f| FieldRequest {
                field: (*f).to_owned(),
                form: None,
            })
            .collect();
        let justification =
            super::request::justification(&request.justification, policy.max_justification())?;
        // One request, decided against each candidate holder in turn: only the counterpart
        // changes, so it is rewritten in place rather than the whole request built again.
        let mut exchange = ExchangeRequest {
            kind: ExchangeKind::Lookup,
            requester: caller.party.clone(),
            counterpart: String::new(),
            purpose: request.purpose.clone(),
            subject: subject.clone(),
            fields,
            justification,
            elements: Vec::new(),
        };
        let decide = |exchange: &mut ExchangeRequest, holder: &str| -> Decision {
            exchange.counterpart.clear();
            exchange.counterpart.push_str(holder);
            policy.decide(exchange, &grounds, now)
        };

        let mut entry = self.entry(&policy, caller, "Lookup", AuditEvent::Exchange);
        entry.exchange_id = lookup_id.clone();
        entry.exchange_kind = ExchangeKind::Lookup.as_str().to_owned();
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.purpose = request.purpose.clone();

        // Whether any lookup at all is allowed: evaluated over every party, not over the holders
        // that registered the subject, so the outcome cannot depend on the directory.
        let mut best_refusal: Option<Decision> = None;
        let mut any_allowed = false;
        for party in policy.parties().filter(|p| p.id != caller.party) {
            let decision = decide(&mut exchange, &party.id);
            if decision.is_allowed() {
                any_allowed = true;
                break;
            }
            let better = match &best_refusal {
                None => true,
                Some(best) => preference(decision.reason) < preference(best.reason),
            };
            if better {
                best_refusal = Some(decision);
            }
        }
        if !any_allowed {
            let decision = match best_refusal {
                Some(d) => d,
                // A network of one party: decide against the caller itself for a reasoned refusal.
                None => decide(&mut exchange, &caller.party),
            };
            return Err(self.refuse(entry, &decision).await);
        }

        let mut hits = Vec::new();
        let mut combined: Option<Decision> = None;
        let mut holders = Vec::new();
        let mut consulted = Vec::new();
        let mut anonymous_hit = false;
        let mut flags = Vec::new();
        for reference in self.references_of(&subject)?.iter() {
            consulted.push(reference.holder.clone());
            let decision = decide(&mut exchange, &reference.holder);
            if !decision.is_allowed() {
                continue;
            }
            // The holder disclosed that it knows the subject only on the ground it registered:
            // a reference whose ground does not cover this requester and purpose is not found.
            let covered =
                ReferenceGround::from_stored(&reference.ground_kind, &reference.ground_id)
                    .is_some_and(|g| policy.finds(&g, &exchange, &grounds, &decision, now));
            if !covered {
                continue;
            }
            let Some(holder) = policy.party(&reference.holder) else {
                continue;
            };
            // What the directory knows of this holder, released like any other record: only the
            // granted fields, each in its granted form.
            let record = Record(BTreeMap::from([
                ("reference.hit".to_owned(), Value::Flag(true)),
                (
                    "reference.holder".to_owned(),
                    Value::Text(holder.id.clone()),
                ),
                (
                    "reference.contact_point".to_owned(),
                    Value::Text(holder.contact_point.clone()),
                ),
            ]));
            let projection = self.project(&record, &decision, &caller.party, now);
            let released = |f: &str| projection.released.get(f);
            if !matches!(
                released("reference.hit"),
                Some((_, ReleasedValue::Flag(true)))
            ) {
                continue;
            }
            flags.extend(self.review_changes(&policy, &decision, &holder.id, &lookup_id));
            let hit = match released("reference.holder") {
                Some((Transform::Keep, _)) => LookupHit {
                    holder: holder.id.clone(),
                    holder_name: holder.name.clone(),
                    contact_point: match released("reference.contact_point") {
                        Some((Transform::Keep, v)) => v.to_string(),
                        _ => String::new(),
                    },
                },
                // Hit only (or the holder only as whether it exists): who holds the subject is
                // itself sensitive (being known at a mental-health centre is health data), so
                // neither the holder nor how many such holders there are is revealed: one
                // anonymous hit stands for all of them. The entry goes back to the caller inside
                // its receipt, so nothing of these holders' decisions goes into it either: no
                // rule, basis, ground or obligation, which would tell one holder from another.
                _ => {
                    anonymous_hit = true;
                    continue;
                }
            };
            hits.push(hit);
            holders.push(holder.id.clone());
            merge_decision(&mut combined, decision);
        }
        // Last, so that its place among the named hits (sorted by holder) says nothing either.
        if anonymous_hit {
            hits.push(LookupHit::default());
        }
        match &combined {
            Some(decision) => record_decision(&mut entry, decision),
            None => {
                entry.verdict = crate::proto::v1::Verdict::Allow as i32;
                entry.reason_code = ReasonCode::Permitted.as_str().to_owned();
            }
        }
        // An anonymous hit is recorded in the caller's entry the same way whoever produced it:
        // the bare hit, released as is. Which holders and rules produced it is for their
        // auditors and the supervisor: the consulted entry commits to the holders, and the
        // policy digest, time and purpose in both entries let each decision be re-run.
        if anonymous_hit
            && !entry
                .released_fields
                .iter()
                .any(|f| f.field == "reference.hit")
        {
            entry.released_fields.push(crate::proto::v1::ReleasedField {
                field: "reference.hit".to_owned(),
                form: Transform::Keep.as_str().to_owned(),
            });
        }
        // Party ids, not personal data: which holders the caller learnt about.
        entry.detail = format!("hits={}", holders.join(","));
        if anonymous_hit {
            entry.detail.push_str(";anonymous-hit");
        }
        // The holders consulted go in a second entry, which names no requester and is never
        // returned to it: the requester's receipt carries the first entry, so naming them there
        // would tell it who knows the subject. Written for every allowed lookup, even one that
        // consulted nobody, so the number of entries says nothing either. The holders are only
        // committed to, so that each holder's auditor can open its own name and no other.
        let mut consulted_entry =
            self.entry(&policy, caller, "LookupConsulted", AuditEvent::Exchange);
        consulted_entry.requester_party.clear();
        consulted_entry.exchange_id = lookup_id.clone();
        consulted_entry.exchange_kind = entry.exchange_kind.clone();
        consulted_entry.subject_pseudonym = entry.subject_pseudonym.clone();
        consulted_entry.purpose = entry.purpose.clone();
        consulted_entry.verdict = entry.verdict;
        consulted_entry.reason_code = entry.reason_code.clone();
        consulted_entry.policy_digest = entry.policy_digest.clone();
        // For the holders' auditors: who asked (a party id, not personal data).
        consulted_entry.detail = format!("requester={}", caller.party);
        // One append: both entries go into the same commit, durable together or not at all.
        // The review queues of the flagged holders' DPOs go with the same commit; the queue items
        // name only the lookup, never the subject or the other holders.
        flags.sort_by(|a, b| a.key.cmp(&b.key));
        flags.dedup_by(|a, b| a.key == b.key);
        let receipt = self
            .commit_with_consulted(&entry, &mut consulted_entry, &consulted, flags)
            .await?;
        Ok(LookupResponse {
            lookup_id,
            hits,
            receipt: Some(receipt),
        })
    }
}

impl Gateway {
    /// Checks that a reference's ground exists and is the caller's to rest on: a consent it
    /// recorded for this subject that still holds, an open case with it as participant and the
    /// subject in it, or an agreement that provides for the directory. Anything else is the same
    /// FAILED_PRECONDITION, whether the consent or case exists or not.
    fn check_reference_ground(
        &self,
        policy: &crate::policy::PolicySet,
        caller: &Caller,
        subject: &str,
        ground: &ReferenceGround,
        now: time::OffsetDateTime,
    ) -> Result<(), ExchangeError> {
        let invalid = || ExchangeError::Precondition {
            reason: "REFERENCE_GROUND_INVALID".into(),
        };
        if !ids::is_well_formed(ground.id()) {
            return Err(ExchangeError::invalid(
                "ground",
                "not a consent, case or agreement id",
            ));
        }
        let now_s = now.unix_timestamp();
        let store = &self.inner.store;
        let ok = match ground {
            ReferenceGround::Consent(id) => store
                .get::<crate::store::ConsentRecord>(&store::consent_key(id))?
                .is_some_and(|c| {
                    c.recorder == caller.party
                        && c.subject == subject
                        && c.given <= now_s
                        && now_s < c.expires
                        && c.revoked.is_none()
                }),
            ReferenceGround::Case(id) => store
                .get::<crate::store::CaseRecord>(&store::case_key(id))?
                .is_some_and(|c| {
                    c.participants.contains(&caller.party)
                        && c.subjects.iter().any(|s| s == subject)
                        && c.closed.is_none()
                        && now_s < c.ends
                }),
            ReferenceGround::Agreement(id) => {
                policy.agreement(id).is_some_and(|a| a.provides_findability)
            }
        };
        if ok { Ok(()) } else { Err(invalid()) }
    }

    /// The references registered for `subject`, from the cache while no reference changed since
    /// they were read.
    fn references_of(&self, subject: &str) -> Result<Arc<Vec<ReferenceRecord>>, ExchangeError> {
        let cache = &self.inner.references;
        if let Some(references) = cache.get(subject) {
            return Ok(references);
        }
        let generation = cache.generation();
        let references = Arc::new(
            self.inner
                .store
                .scan::<ReferenceRecord>(&store::references_prefix(subject))?,
        );
        cache.insert(subject, generation, references.clone());
        Ok(references)
    }
}

fn preference(reason: ReasonCode) -> usize {
    REASON_PREFERENCE
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(REASON_PREFERENCE.len())
}

/// Accumulates the allowed decisions of several holders into one for the audit entry.
fn merge_decision(into: &mut Option<Decision>, decision: Decision) {
    match into {
        None => *into = Some(decision),
        Some(acc) => {
            for rule in decision.matched {
                if !acc.matched.contains(&rule) {
                    acc.matched.push(rule);
                }
            }
            for basis in decision.legal_bases {
                if !acc.legal_bases.contains(&basis) {
                    acc.legal_bases.push(basis);
                }
            }
            for ground in decision.ground_refs {
                if !acc.ground_refs.contains(&ground) {
                    acc.ground_refs.push(ground);
                }
            }
            for grant in decision.fields {
                if acc.grant(&grant.field).is_none() {
                    acc.fields.push(grant);
                }
            }
            // Several holders' obligations: the strictest retention is the one recorded.
            acc.obligations.retention_days = match (
                acc.obligations.retention_days,
                decision.obligations.retention_days,
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            acc.obligations.review |= decision.obligations.review;
            acc.obligations.notify |= decision.obligations.notify;
            acc.obligations.weighing |= decision.obligations.weighing;
            acc.obligations.special_category |= decision.obligations.special_category;
        }
    }
}

/// The bytes of a hex pseudonym we produced ourselves. One that does not decode is an error,
/// never an empty subject in an audit entry.
pub(crate) fn hex_bytes(hex_text: &str) -> Result<Vec<u8>, ExchangeError> {
    hex::decode(hex_text)
        .map_err(|_| ExchangeError::Internal("a stored subject pseudonym does not decode".into()))
}
