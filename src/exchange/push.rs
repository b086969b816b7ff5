//! The push flow: a sender shares a signal or referral with a recipient, minimised to what the
//! policy allows; the recipient lists its inbox and acknowledges, which deletes the payload and
//! destroys its key.

use crate::policy::{ExchangeKind, ExchangeRequest, FieldRequest};
use crate::proto::v1::{
    AcknowledgeRequest, AcknowledgeResponse, AuditEvent, ListInboxRequest, ListInboxResponse,
    ShareRequest, ShareResponse, Signal,
};
use crate::store::{self, Payload, SignalRecord};

use super::convert::{self, timestamp};
use super::directory::hex_bytes;
use super::entry::{decision_message, record_decision, use_restriction_text};
use super::request::{field_requests, justification, page_size};
use super::subject::from_unix;
use super::sweep::signal_due_key;
use super::{Caller, ExchangeError, Gateway, ids};

impl Gateway {
    /// Shares a signal: decides, strips what is not allowed, and puts it in the recipient's inbox.
    pub async fn share(
        &self,
        caller: &Caller,
        request: ShareRequest,
    ) -> Result<ShareResponse, ExchangeError> {
        let subject = self
            .pseudonymise(request.subject.as_ref(), "subject")?
            .to_hex();
        if request.recipient.trim().is_empty() {
            return Err(ExchangeError::invalid(
                "recipient",
                "the recipient party is required",
            ));
        }
        let record = convert::record(&request.fields, "fields")?;
        if record.0.is_empty() {
            return Err(ExchangeError::invalid("fields", "share at least one field"));
        }
        let forms = field_requests(&request.forms, "forms")?;
        let fields: Vec<FieldRequest> = record
            .0
            .keys()
            .map(|field| FieldRequest {
                field: field.clone(),
                form: forms
                    .iter()
                    .find(|f| &f.field == field)
                    .and_then(|f| f.form),
            })
            .collect();
        let policy = self.policy();
        let justification = justification(&request.justification, policy.max_justification())?;
        let now = self.now();
        let signal_id = ids::new_id("g", now)?;
        let exchange = ExchangeRequest {
            kind: ExchangeKind::Share,
            requester: caller.party.clone(),
            counterpart: request.recipient.clone(),
            purpose: request.purpose.clone(),
            subject: subject.clone(),
            fields,
            justification: justification.clone(),
            elements: convert::elements(&record),
        };
        let decision = policy.decide(&exchange, &*self.grounds_for(&subject)?, now);
        let mut entry = self.entry(&policy, caller, "Share", AuditEvent::Exchange);
        entry.exchange_id = signal_id.clone();
        entry.exchange_kind = ExchangeKind::Share.as_str().to_owned();
        entry.counterpart_party = request.recipient.clone();
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.purpose = request.purpose.clone();
        if !decision.is_allowed() {
            return Err(self.refuse(entry, &decision).await);
        }
        record_decision(&mut entry, &decision);
        let projection = self.project(&record, &decision, &request.recipient, now);
        let salt = ids::salt()?;
        let released = convert::released_fields(&projection);
        entry.released_fields = convert::released_names(&projection);
        entry.payload_commitment = projection.commitment(&salt).to_vec();
        let mut signal = SignalRecord {
            id: signal_id.clone(),
            sender: caller.party.clone(),
            actor: caller.actor.clone(),
            recipient: request.recipient.clone(),
            purpose: request.purpose.clone(),
            subject,
            salt: salt.to_vec(),
            created: now.unix_timestamp(),
            retain_until: (now + self.retention(&decision)).unix_timestamp(),
            use_restriction: use_restriction_text(&decision),
            ..SignalRecord::default()
        };
        self.inner.store.seal(
            &mut signal,
            &Payload {
                justification: justification.unwrap_or_default(),
                released,
            },
        )?;
        let mut changes = vec![
            store::put(store::signal_key(&signal_id), &signal),
            store::mark(store::inbox_key(&request.recipient, &signal_id)),
            store::mark(signal_due_key(&signal)),
        ];
        // The sender holds what it shares: its DPO reviews.
        changes.extend(self.review_changes(&policy, &decision, &caller.party, &signal_id));
        let receipt = self.commit_sealed(&entry, changes).await?;
        Ok(ShareResponse {
            signal_id,
            decision: Some(decision_message(&decision)),
            stripped_fields: projection.stripped.clone(),
            receipt: Some(receipt),
        })
    }

    /// The unacknowledged signals for the caller whose retention has not ended, oldest first.
    pub fn list_inbox(
        &self,
        caller: &Caller,
        request: ListInboxRequest,
    ) -> Result<ListInboxResponse, ExchangeError> {
        let limit = page_size(request.page_size);
        let now = self.now().unix_timestamp();
        let store = &self.inner.store;
        let mut signals: Vec<Signal> = Vec::new();
        let mut next_page_token = String::new();
        for id in store.ids_under(&store::inbox_prefix(&caller.party))? {
            if !request.page_token.is_empty() && id.as_str() <= request.page_token.as_str() {
                continue;
            }
            let Some(signal) = store.get::<SignalRecord>(&store::signal_key(&id))? else {
                continue;
            };
            if signal.retain_until <= now {
                continue;
            }
            if signals.len() == limit {
                next_page_token = signals
                    .last()
                    .map(|s| s.signal_id.clone())
                    .unwrap_or_default();
                break;
            }
            let Payload {
                justification,
                released,
            } = store.payload(&signal)?;
            signals.push(Signal {
                signal_id: signal.id.clone(),
                sender: signal.sender.clone(),
                actor: signal.actor.clone(),
                purpose: signal.purpose.clone(),
                subject_pseudonym: signal.subject.clone(),
                released,
                commitment_salt: signal.salt.clone(),
                create_time: Some(timestamp(from_unix(signal.created)?)),
                expire_time: Some(timestamp(from_unix(signal.retain_until)?)),
                justification,
                use_restriction: signal.use_restriction.clone(),
            });
        }
        Ok(ListInboxResponse {
            signals,
            next_page_token,
        })
    }

    /// The recipient confirms a signal; its payload is deleted in the same append.
    pub async fn acknowledge(
        &self,
        caller: &Caller,
        request: AcknowledgeRequest,
    ) -> Result<AcknowledgeResponse, ExchangeError> {
        if !ids::is_well_formed(&request.signal_id) {
            return Err(ExchangeError::invalid("signal_id", "not a signal id"));
        }
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&request.signal_id).await;
        let signal = self
            .inner
            .store
            .get::<SignalRecord>(&store::signal_key(&request.signal_id))?
            .filter(|s| s.recipient == caller.party)
            .ok_or(ExchangeError::NotFound { kind: "signal" })?;
        let mut entry = self.entry(&policy, caller, "Acknowledge", AuditEvent::Exchange);
        entry.exchange_id = signal.id.clone();
        entry.exchange_kind = ExchangeKind::Share.as_str().to_owned();
        entry.requester_party = signal.sender.clone();
        entry.counterpart_party = signal.recipient.clone();
        entry.subject_pseudonym = hex_bytes(&signal.subject)?;
        entry.purpose = signal.purpose.clone();
        entry.reason_code = "ACKNOWLEDGED".into();
        entry.detail = format!("performed by {}", caller.party);
        let changes = vec![
            store::delete(store::signal_key(&signal.id)),
            store::delete(store::inbox_key(&signal.recipient, &signal.id)),
            store::delete(signal_due_key(&signal)),
        ];
        let shred = store::payload::key_of(&signal);
        let receipt = self.commit_purge(&entry, changes, shred).await?;
        Ok(AcknowledgeResponse {
            receipt: Some(receipt),
        })
    }
}
