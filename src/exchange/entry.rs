//! Building audit entries and appending them, for allowed and refused exchanges alike.

use crate::audit::StateChange;
use crate::policy::{Decision, Effect, PolicySet, Verdict};
use crate::proto::v1::{self as pb, AuditEntry, AuditEvent, Receipt};
use crate::store::Shred;

use super::{Caller, ExchangeError, Gateway};

/// Format version of the entries this gateway writes.
const ENTRY_VERSION: u32 = 1;

/// The wire form of a policy rule reference.
pub(crate) fn rule_ref(rule: &crate::policy::RuleRef) -> pb::RuleRef {
    pb::RuleRef {
        agreement: rule.agreement.to_string(),
        rule: rule.rule.to_string(),
        effect: match rule.effect {
            Effect::Permit => "permit".to_owned(),
            Effect::Forbid => "forbid".to_owned(),
        },
    }
}

/// The wire form of a verdict.
pub(crate) fn verdict(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Allow => pb::Verdict::Allow,
        Verdict::Deny => pb::Verdict::Deny,
    }
}

/// The wire form of a decision's grants: the one encoding a grant has outside the policy engine
/// (the decision on the wire, a ticket's grants at rest and in the holder's listing).
pub(crate) fn wire_grants(decision: &Decision) -> Vec<pb::FieldGrant> {
    decision
        .fields
        .iter()
        .map(|g| pb::FieldGrant {
            field: g.field.clone(),
            form: g.form.as_str().to_owned(),
            rule: Some(rule_ref(&g.rule)),
        })
        .collect()
}

/// The wire form of a decision (no data, only what was decided and why).
pub(crate) fn decision_message(decision: &Decision) -> pb::Decision {
    pb::Decision {
        verdict: verdict(decision.verdict) as i32,
        reason_code: decision.reason.as_str().to_owned(),
        matched_rules: decision.matched.iter().map(rule_ref).collect(),
        fields: wire_grants(decision),
        obligations: Some(obligations(decision)),
        legal_bases: decision.legal_bases.clone(),
        ground_refs: decision.ground_refs.clone(),
        policy_digest: decision.policy_digest.to_vec(),
    }
}

fn obligations(decision: &Decision) -> pb::Obligations {
    pb::Obligations {
        retention_days: decision.obligations.retention_days.unwrap_or(0),
        review: decision.obligations.review,
        notify: decision.obligations.notify,
        weighing: decision.obligations.weighing,
        special_category: decision.obligations.special_category,
    }
}

/// The text of the use restriction that binds a release, or empty.
pub(crate) fn use_restriction_text(decision: &Decision) -> String {
    decision
        .use_restriction
        .as_ref()
        .map(|u| u.text.to_string())
        .unwrap_or_default()
}

/// Copies a decision into an entry: verdict, reason, rules, bases, grounds, obligations and the
/// names and forms of the fields it allows (the values are added, as a commitment, by the caller).
pub(crate) fn record_decision(entry: &mut AuditEntry, decision: &Decision) {
    entry.verdict = verdict(decision.verdict) as i32;
    entry.reason_code = decision.reason.as_str().to_owned();
    entry.rules = decision.matched.iter().map(rule_ref).collect();
    entry.legal_bases = decision.legal_bases.clone();
    entry.ground_refs = decision.ground_refs.clone();
    entry.policy_digest = decision.policy_digest.to_vec();
    entry.obligations = Some(obligations(decision));
    entry.use_restriction = decision
        .use_restriction
        .as_ref()
        .map(|u| u.agreement.to_string())
        .unwrap_or_default();
    entry.released_fields = decision
        .fields
        .iter()
        .map(|g| pb::ReleasedField {
            field: g.field.clone(),
            form: g.form.as_str().to_owned(),
        })
        .collect();
}

impl Gateway {
    /// A new entry for `caller` doing `operation`, stamped with the clock and the digest of
    /// `policy`, the one snapshot of the policy set the request decides with.
    pub(crate) fn entry(
        &self,
        policy: &PolicySet,
        caller: &Caller,
        operation: &str,
        event: AuditEvent,
    ) -> AuditEntry {
        let now = self.now();
        AuditEntry {
            version: ENTRY_VERSION,
            time: Some(super::convert::timestamp(now)),
            event: event as i32,
            operation: operation.to_owned(),
            requester_party: caller.party.clone(),
            actor: caller.actor.clone(),
            trace_id: caller.trace_id.clone(),
            policy_digest: policy.digest().to_vec(),
            ..AuditEntry::default()
        }
    }

    /// Appends `entry` with its state `changes` in one durable write and returns the receipt.
    pub(crate) async fn commit(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
    ) -> Result<Receipt, ExchangeError> {
        let receipt = self
            .inner
            .log
            .append(entry, changes)
            .await
            .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        Ok(wire_receipt(receipt))
    }

    /// Commits, as [`Gateway::commit`] does, changes that store a sealed payload: a key handed
    /// out fresh (no spare was ready) is synced in the group commit before the commit is written,
    /// so no record on disk names a key that a crash could still lose. If the key file cannot be
    /// synced, nothing is committed.
    pub(crate) async fn commit_sealed(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
    ) -> Result<Receipt, ExchangeError> {
        let receipt = self
            .inner
            .log
            .append_after_sync(entry, changes)
            .await
            .map_err(|e| match e {
                crate::audit::AuditError::SyncFirst(cause) => ExchangeError::KeysUnavailable(cause),
                e => ExchangeError::Unavailable(e.to_string()),
            })?;
        Ok(wire_receipt(receipt))
    }

    /// Commits changes that drop a payload, then destroys its key (`shred`): only once the
    /// commit is durable, when no state the gateway keeps names the ciphertext any more. A key
    /// that cannot be destroyed is logged and left to the reclaim on the next start; the commit
    /// stands. A failed commit destroys nothing (its outcome is unknown).
    pub(crate) async fn commit_purge(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
        shred: Option<Shred>,
    ) -> Result<Receipt, ExchangeError> {
        let receipt = self.commit(entry, changes).await?;
        if let Some(shred) = shred {
            self.shred(shred).await;
        }
        Ok(receipt)
    }

    /// Destroys a purged payload's key, off the async workers (it syncs the key file).
    async fn shred(&self, shred: Shred) {
        let store = self.inner.store.clone();
        let owner = shred.owner().clone();
        let error = match tokio::task::spawn_blocking(move || store.shred(&shred)).await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the destruction panicked".to_owned(),
        };
        tracing::error!(
            %owner,
            %error,
            "the key of a purged payload could not be destroyed; it is reclaimed on the next start"
        );
    }

    /// Commits `entry` and, right after it in the same commit, its `LookupConsulted` entry
    /// `consulted_entry`: commits to `consulted` in that one (see [`crate::audit::consulted`]),
    /// indexed under those parties. The two are durable together or not at all. Returns
    /// `entry`'s receipt; the consulted entry has none, as it goes to no party.
    pub(crate) async fn commit_with_consulted(
        &self,
        entry: &AuditEntry,
        consulted_entry: &mut AuditEntry,
        consulted: &[String],
        changes: Vec<StateChange>,
    ) -> Result<Receipt, ExchangeError> {
        let log = &self.inner.log;
        let key = log.consulted_key().ok_or_else(|| {
            ExchangeError::Internal("the audit log has no consulted-holder key".into())
        })?;
        consulted_entry.consulted_commitments =
            key.commitments(&consulted_entry.exchange_id, consulted);
        consulted_entry.consulted_sealed = key.seal(&consulted_entry.exchange_id, consulted);
        let receipt = log
            .append_with_consulted(entry, changes, consulted_entry, consulted)
            .await
            .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        Ok(wire_receipt(receipt))
    }

    /// Logs a refusal and returns the error to give the caller: FAILED_PRECONDITION for a missing
    /// case or consent, PERMISSION_DENIED otherwise. If the refusal cannot be logged, the caller
    /// gets UNAVAILABLE instead (fail closed).
    pub(crate) async fn refuse(&self, entry: AuditEntry, decision: &Decision) -> ExchangeError {
        let mut entry = entry;
        record_decision(&mut entry, decision);
        // A refusal releases nothing, so it must not list fields.
        entry.released_fields.clear();
        if let Some(missing) = &decision.missing_element {
            entry.detail = format!("missing={missing}");
        }
        match self.commit(&entry, Vec::new()).await {
            Ok(receipt) => refusal(decision, receipt.index),
            Err(error) => error,
        }
    }
}

/// The receipt as the wire carries it.
fn wire_receipt(receipt: crate::audit::Receipt) -> Receipt {
    Receipt {
        index: receipt.index,
        entry: receipt.entry,
        proof: receipt.proof,
    }
}

/// The error for a refused decision, after it has been logged at `audit_index`.
pub(crate) fn refusal(decision: &Decision, audit_index: u64) -> ExchangeError {
    ExchangeError::Refused {
        reason: decision.reason.as_str().to_owned(),
        missing_ground: decision.reason.is_missing_ground(),
        audit_index,
        missing_element: decision.missing_element.clone(),
    }
}
