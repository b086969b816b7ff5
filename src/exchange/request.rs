//! The request flow: a requester asks a holder for case context; the holder answers or declines;
//! the requester fetches the minimised answer once.
//!
//! Ticket states: pending → answered → delivered, pending → declined, pending → expired (no answer
//! in time, or the grounds lapsed before the answer), answered → expired (retention ended). Every
//! transition is one audit append under the ticket's lock.

use std::time::Duration;

use crate::policy::{Decision, ExchangeKind, ExchangeRequest, FieldRequest, PolicySet, Transform};
use crate::proto::v1::{
    AuditEvent, DeclineReason, DeclineRequest, DeclineResponse, GetResultRequest,
    GetResultResponse, IncomingRequest, ListIncomingRequest, ListIncomingResponse,
    ReleasedFieldValue, RequestContextRequest, RequestContextResponse, RespondRequest,
    RespondResponse, TicketState,
};
use crate::store::{self, AskedField, Payload, ReferenceRecord, TicketRecord};

use super::convert::{self, timestamp};
use super::directory::hex_bytes;
use super::entry::{record_decision, refusal};
use super::subject::from_unix;
use super::sweep::{ticket_due_changes, ticket_due_now};
use super::{Caller, ExchangeError, Gateway, ids};

/// Default and largest page of a listing.
pub(crate) const DEFAULT_PAGE: usize = 50;
/// Largest page of a listing.
pub(crate) const MAX_PAGE: usize = 500;

/// The page size a listing request asks for, bounded.
pub(crate) fn page_size(asked: i32) -> usize {
    match usize::try_from(asked) {
        Ok(0) | Err(_) => DEFAULT_PAGE,
        Ok(n) => n.min(MAX_PAGE),
    }
}

/// Parses the requested fields (`field`, optional `form`).
pub(crate) fn field_requests(
    fields: &[crate::proto::v1::FieldRequest],
    path: &str,
) -> Result<Vec<FieldRequest>, ExchangeError> {
    let mut violations = Vec::new();
    let mut parsed = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.field.trim().is_empty() {
            violations.push(super::Violation::new(
                format!("{path}[{i}].field"),
                "a catalogue field id is required",
            ));
            continue;
        }
        let form = if f.form.is_empty() {
            None
        } else {
            match f.form.parse::<Transform>() {
                Ok(t) => Some(t),
                Err(e) => {
                    violations.push(super::Violation::new(
                        format!("{path}[{i}].form"),
                        e.to_string(),
                    ));
                    continue;
                }
            }
        };
        parsed.push(FieldRequest {
            field: f.field.clone(),
            form,
        });
    }
    if violations.is_empty() {
        Ok(parsed)
    } else {
        Err(ExchangeError::InvalidArgument(violations))
    }
}

/// Trims a justification and checks it against the policy's bound (`[limits]
/// max_justification`, in characters); empty means none.
pub(crate) fn justification(text: &str, max: usize) -> Result<Option<String>, ExchangeError> {
    let text = text.trim();
    if text.chars().count() > max {
        return Err(ExchangeError::invalid(
            "justification",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
}

/// The fields a ticket asked for, as the policy reads them. A stored form that does not parse
/// is an error, never "no form": no form asks for everything allowed, which would widen the ask.
fn asked_fields(ticket: &TicketRecord) -> Result<Vec<FieldRequest>, ExchangeError> {
    ticket
        .asked
        .iter()
        .map(|a| {
            let form = if a.form.is_empty() {
                None
            } else {
                Some(a.form.parse::<Transform>().map_err(|_| {
                    ExchangeError::Internal(format!(
                        "ticket {} stores an unknown form for {}",
                        ticket.id, a.field
                    ))
                })?)
            };
            Ok(FieldRequest {
                field: a.field.clone(),
                form,
            })
        })
        .collect()
}

impl Gateway {
    /// Decides a request for case context and, when allowed, opens a ticket for the holder.
    pub async fn request_context(
        &self,
        caller: &Caller,
        request: RequestContextRequest,
    ) -> Result<RequestContextResponse, ExchangeError> {
        let subject = self
            .pseudonymise(request.subject.as_ref(), "subject")?
            .to_hex();
        let fields = field_requests(&request.fields, "fields")?;
        if fields.is_empty() {
            return Err(ExchangeError::invalid(
                "fields",
                "ask for at least one field",
            ));
        }
        if request.holder.trim().is_empty() {
            return Err(ExchangeError::invalid(
                "holder",
                "the holder party is required",
            ));
        }
        let policy = self.policy();
        let justification = justification(&request.justification, policy.max_justification())?;
        let now = self.now();
        let ticket_id = ids::new_id("t", now)?;
        let exchange = ExchangeRequest {
            kind: ExchangeKind::Request,
            requester: caller.party.clone(),
            counterpart: request.holder.clone(),
            purpose: request.purpose.clone(),
            subject: subject.clone(),
            fields: fields.clone(),
            justification: justification.clone(),
            elements: Vec::new(),
        };
        let decision = policy.decide(&exchange, &*self.grounds_for(&subject)?, now);

        let mut entry = self.entry(&policy, caller, "RequestContext", AuditEvent::Exchange);
        entry.exchange_id = ticket_id.clone();
        entry.exchange_kind = ExchangeKind::Request.as_str().to_owned();
        entry.counterpart_party = request.holder.clone();
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.purpose = request.purpose.clone();
        if !decision.is_allowed() {
            return Err(self.refuse(entry, &decision).await);
        }
        record_decision(&mut entry, &decision);

        let expires = now + self.inner.settings.ticket_ttl;
        let justification = justification.unwrap_or_default();
        let mut ticket = TicketRecord {
            id: ticket_id.clone(),
            requester: caller.party.clone(),
            actor: caller.actor.clone(),
            holder: request.holder.clone(),
            purpose: request.purpose.clone(),
            subject,
            asked: fields
                .iter()
                .map(|f| AskedField {
                    field: f.field.clone(),
                    form: f.form.map(|t| t.as_str().to_owned()).unwrap_or_default(),
                })
                .collect(),
            grants: super::entry::wire_grants(&decision),
            state: TicketState::Pending as i32,
            created: now.unix_timestamp(),
            expires: expires.unix_timestamp(),
            trace_id: caller.trace_id.clone(),
            weighing_required: decision.obligations.weighing,
            ..TicketRecord::default()
        };
        // The justification travels to the holder: sealed under the ticket's own key, which the
        // answer is sealed under too.
        self.inner.store.seal(
            &mut ticket,
            &Payload {
                justification: justification.clone(),
                released: Vec::new(),
            },
        )?;
        let mut changes = vec![
            store::put(store::ticket_key(&ticket_id), &ticket),
            store::mark(store::incoming_key(&request.holder, &ticket_id)),
        ];
        changes.extend(ticket_due_changes(None, &ticket));
        if decision.obligations.weighing {
            // Necessity: the justification is committed to in the entry and kept, with its salt,
            // for the holder's DPO and the supervisor.
            let salt = ids::salt()?;
            entry.justification_commitment =
                super::review::text_commitment(&salt, justification.as_bytes()).to_vec();
            let texts = store::NecessityRecord {
                exchange_id: ticket_id.clone(),
                holder: request.holder.clone(),
                justification,
                justification_salt: salt.to_vec(),
                ..store::NecessityRecord::default()
            };
            changes.push(store::put(store::necessity_key(&ticket_id), &texts));
        }
        changes.extend(self.review_changes(&policy, &decision, &request.holder, &ticket_id));
        let receipt = self.commit_sealed(&entry, changes).await?;
        self.notify_ticket_change();
        Ok(RequestContextResponse {
            ticket_id,
            decision: Some(super::entry::decision_message(&decision)),
            receipt: Some(receipt),
        })
    }

    /// The pending requests addressed to the caller, oldest first.
    pub fn list_incoming(
        &self,
        caller: &Caller,
        request: ListIncomingRequest,
    ) -> Result<ListIncomingResponse, ExchangeError> {
        let limit = page_size(request.page_size);
        let now = self.now().unix_timestamp();
        let store = &self.inner.store;
        let mut requests = Vec::new();
        let mut next_page_token = String::new();
        for id in store.ids_under(&store::incoming_prefix(&caller.party))? {
            if !request.page_token.is_empty() && id.as_str() <= request.page_token.as_str() {
                continue;
            }
            let Some(ticket) = store.get::<TicketRecord>(&store::ticket_key(&id))? else {
                continue;
            };
            if ticket.state != TicketState::Pending as i32 || ticket.expires <= now {
                continue;
            }
            if requests.len() == limit {
                next_page_token = requests
                    .last()
                    .map(|r: &IncomingRequest| r.ticket_id.clone())
                    .unwrap_or_default();
                break;
            }
            let holder_reference = store
                .get::<ReferenceRecord>(&store::reference_key(&ticket.subject, &caller.party))?
                .map(|r| r.holder_reference)
                .unwrap_or_default();
            let justification = store.payload(&ticket)?.justification;
            requests.push(IncomingRequest {
                ticket_id: ticket.id.clone(),
                requester: ticket.requester.clone(),
                actor: ticket.actor.clone(),
                purpose: ticket.purpose.clone(),
                subject_pseudonym: ticket.subject.clone(),
                holder_reference,
                fields: ticket.grants.clone(),
                justification,
                create_time: Some(timestamp(from_unix(ticket.created)?)),
                expire_time: Some(timestamp(from_unix(ticket.expires)?)),
                weighing_required: ticket.weighing_required,
            });
        }
        Ok(ListIncomingResponse {
            requests,
            next_page_token,
        })
    }

    /// Loads a ticket for its holder (`as_holder`) or requester; another party gets NOT_FOUND, so a
    /// ticket id reveals nothing to a party it does not concern.
    fn ticket_for(
        &self,
        caller: &Caller,
        id: &str,
        as_holder: bool,
    ) -> Result<TicketRecord, ExchangeError> {
        if !ids::is_well_formed(id) {
            return Err(ExchangeError::invalid("ticket_id", "not a ticket id"));
        }
        let ticket = self
            .inner
            .store
            .get::<TicketRecord>(&store::ticket_key(id))?
            .ok_or(ExchangeError::NotFound { kind: "ticket" })?;
        let party = if as_holder {
            &ticket.holder
        } else {
            &ticket.requester
        };
        if *party != caller.party {
            return Err(ExchangeError::NotFound { kind: "ticket" });
        }
        Ok(ticket)
    }

    fn pending_or_error(&self, ticket: &TicketRecord) -> Result<(), ExchangeError> {
        if ticket.state != TicketState::Pending as i32 {
            return Err(ExchangeError::Precondition {
                reason: "TICKET_NOT_PENDING".into(),
            });
        }
        if ticket.expires <= self.now().unix_timestamp() {
            return Err(ExchangeError::Precondition {
                reason: "TICKET_EXPIRED".into(),
            });
        }
        Ok(())
    }

    fn ticket_entry(
        &self,
        policy: &PolicySet,
        caller: &Caller,
        operation: &str,
        ticket: &TicketRecord,
    ) -> Result<crate::proto::v1::AuditEntry, ExchangeError> {
        let mut entry = self.entry(policy, caller, operation, AuditEvent::Exchange);
        entry.exchange_id = ticket.id.clone();
        entry.exchange_kind = ExchangeKind::Request.as_str().to_owned();
        // The requester of the exchange stays the requester, whoever performs this step.
        entry.requester_party = ticket.requester.clone();
        entry.counterpart_party = ticket.holder.clone();
        entry.subject_pseudonym = hex_bytes(&ticket.subject)?;
        entry.purpose = ticket.purpose.clone();
        if caller.party != ticket.requester {
            entry.detail = format!("performed by {}", caller.party);
        }
        Ok(entry)
    }

    /// The holder answers a pending request. The decision is taken again now (grounds may have
    /// lapsed since the request), and everything it does not allow is stripped from the answer.
    pub async fn respond(
        &self,
        caller: &Caller,
        request: RespondRequest,
    ) -> Result<RespondResponse, ExchangeError> {
        let record = convert::record(&request.fields, "fields")?;
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&request.ticket_id).await;
        let mut ticket = self.ticket_for(caller, &request.ticket_id, true)?;
        self.pending_or_error(&ticket)?;
        let mut payload = self.inner.store.payload(&ticket)?;
        let now = self.now();
        let exchange = ExchangeRequest {
            kind: ExchangeKind::Request,
            requester: ticket.requester.clone(),
            counterpart: ticket.holder.clone(),
            purpose: ticket.purpose.clone(),
            subject: ticket.subject.clone(),
            fields: asked_fields(&ticket)?,
            justification: Some(payload.justification.clone()).filter(|j| !j.is_empty()),
            elements: Vec::new(),
        };
        let decision = policy.decide(&exchange, &*self.grounds_for(&ticket.subject)?, now);
        let mut entry = self.ticket_entry(&policy, caller, "Respond", &ticket)?;
        let due_before = ticket_due_now(&ticket);
        if !decision.is_allowed() {
            // The grounds lapsed: the ticket can no longer be answered. Log and close it.
            record_decision(&mut entry, &decision);
            entry.released_fields.clear();
            ticket.state = TicketState::Expired as i32;
            let shred = store::payload::purge(&mut ticket);
            let mut changes = vec![
                store::put(store::ticket_key(&ticket.id), &ticket),
                store::delete(store::incoming_key(&ticket.holder, &ticket.id)),
            ];
            changes.extend(ticket_due_changes(due_before, &ticket));
            let receipt = self.commit_purge(&entry, changes, shred).await?;
            self.notify_ticket_change();
            return Err(refusal(&decision, receipt.index));
        }
        record_decision(&mut entry, &decision);
        // Necessity: the holder decides and writes why; without its weighing nothing is released
        // and the ticket stays pending, so the holder can answer again with one.
        let mut texts = None;
        if decision.obligations.weighing {
            let weighing = super::review::check_weighing(&policy, request.weighing.as_ref())?;
            let mut record = self
                .inner
                .store
                .get::<store::NecessityRecord>(&store::necessity_key(&ticket.id))?
                .unwrap_or_else(|| store::NecessityRecord {
                    exchange_id: ticket.id.clone(),
                    holder: ticket.holder.clone(),
                    ..store::NecessityRecord::default()
                });
            let salt = ids::salt()?;
            entry.weighing_commitment =
                super::review::text_commitment(&salt, &super::review::weighing_text(&weighing))
                    .to_vec();
            record.danger = weighing.danger;
            record.no_other_way = weighing.no_other_way;
            record.proportionality = weighing.proportionality;
            record.weighing_salt = salt.to_vec();
            texts = Some(record);
        }
        let projection = self.project(&record, &decision, &ticket.requester, now);
        let salt = ids::salt()?;
        let released = convert::released_fields(&projection);
        entry.released_fields = convert::released_names(&projection);
        entry.payload_commitment = projection.commitment(&salt).to_vec();
        let retention = self.retention(&decision);
        ticket.state = TicketState::Answered as i32;
        payload.released = released.clone();
        self.inner.store.seal(&mut ticket, &payload)?;
        ticket.salt = salt.to_vec();
        ticket.retain_until = (now + retention).unix_timestamp();
        ticket.use_restriction = super::entry::use_restriction_text(&decision);
        let mut changes = vec![
            store::put(store::ticket_key(&ticket.id), &ticket),
            store::delete(store::incoming_key(&ticket.holder, &ticket.id)),
        ];
        changes.extend(ticket_due_changes(due_before, &ticket));
        if let Some(texts) = &texts {
            changes.push(store::put(store::necessity_key(&ticket.id), texts));
        }
        changes.extend(self.review_changes(&policy, &decision, &ticket.holder, &ticket.id));
        let receipt = self.commit_sealed(&entry, changes).await?;
        self.notify_ticket_change();
        Ok(RespondResponse {
            released,
            stripped_fields: projection.stripped.clone(),
            receipt: Some(receipt),
        })
    }

    /// How long a released payload may be kept: the decision's obligation, else the default.
    pub(crate) fn retention(&self, decision: &Decision) -> Duration {
        decision
            .obligations
            .retention_days
            .map(|d| Duration::from_secs(u64::from(d) * 86_400))
            .unwrap_or(self.inner.settings.default_retention)
    }

    /// The holder declines a pending request.
    pub async fn decline(
        &self,
        caller: &Caller,
        request: DeclineRequest,
    ) -> Result<DeclineResponse, ExchangeError> {
        let reason = DeclineReason::try_from(request.reason)
            .ok()
            .filter(|r| *r != DeclineReason::Unspecified)
            .ok_or_else(|| ExchangeError::invalid("reason", "a decline reason is required"))?;
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&request.ticket_id).await;
        let mut ticket = self.ticket_for(caller, &request.ticket_id, true)?;
        self.pending_or_error(&ticket)?;
        let mut entry = self.ticket_entry(&policy, caller, "Decline", &ticket)?;
        let due_before = ticket_due_now(&ticket);
        entry.reason_code = format!(
            "DECLINED_{}",
            reason.as_str_name().trim_start_matches("DECLINE_REASON_")
        );
        ticket.state = TicketState::Declined as i32;
        ticket.decline_reason = reason as i32;
        let shred = store::payload::purge(&mut ticket);
        let mut changes = vec![
            store::put(store::ticket_key(&ticket.id), &ticket),
            store::delete(store::incoming_key(&ticket.holder, &ticket.id)),
        ];
        changes.extend(ticket_due_changes(due_before, &ticket));
        let receipt = self.commit_purge(&entry, changes, shred).await?;
        self.notify_ticket_change();
        Ok(DeclineResponse {
            receipt: Some(receipt),
        })
    }

    /// The requester's view of a ticket; an answer is handed over once and then deleted.
    pub async fn get_result(
        &self,
        caller: &Caller,
        request: GetResultRequest,
    ) -> Result<GetResultResponse, ExchangeError> {
        let wait = match request.wait {
            None => Duration::ZERO,
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                return Err(ExchangeError::invalid("wait", "must not be negative"));
            }
            Some(d) => {
                Duration::new(d.seconds as u64, d.nanos as u32).min(self.inner.settings.max_wait)
            }
        };
        let mut changes = self.inner.ticket_changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let mut ticket = self.ticket_for(caller, &request.ticket_id, false)?;
        while ticket.state == TicketState::Pending as i32
            && ticket.expires > self.now().unix_timestamp()
        {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => ticket = self.ticket_for(caller, &request.ticket_id, false)?,
                // Deadline reached, or the gateway is shutting down.
                _ => break,
            }
        }
        if ticket.state != TicketState::Answered as i32 {
            return Ok(self.ticket_view(&ticket));
        }

        let _guard = self.inner.locks.lock(&request.ticket_id).await;
        let mut ticket = self.ticket_for(caller, &request.ticket_id, false)?;
        if ticket.state != TicketState::Answered as i32 {
            return Ok(self.ticket_view(&ticket));
        }
        let now = self.now();
        let policy = self.policy();
        let mut entry = self.ticket_entry(&policy, caller, "GetResult", &ticket)?;
        let due_before = ticket_due_now(&ticket);
        if ticket.retain_until <= now.unix_timestamp() {
            // Retention ended before the requester came: the payload is gone.
            entry.reason_code = "RETENTION_ENDED".into();
            ticket.state = TicketState::Expired as i32;
            ticket.salt.clear();
            let shred = store::payload::purge(&mut ticket);
            let mut changes = vec![store::put(store::ticket_key(&ticket.id), &ticket)];
            changes.extend(ticket_due_changes(due_before, &ticket));
            self.commit_purge(&entry, changes, shred).await?;
            return Ok(self.ticket_view(&ticket));
        }
        let released: Vec<ReleasedFieldValue> = self.inner.store.payload(&ticket)?.released;
        entry.released_fields = released
            .iter()
            .map(|r| crate::proto::v1::ReleasedField {
                field: r.field.clone(),
                form: r.form.clone(),
            })
            .collect();
        let salt = std::mem::take(&mut ticket.salt);
        entry.verdict = crate::proto::v1::Verdict::Allow as i32;
        entry.reason_code = "DELIVERED".into();
        ticket.state = TicketState::Delivered as i32;
        let shred = store::payload::purge(&mut ticket);
        let mut changes = vec![store::put(store::ticket_key(&ticket.id), &ticket)];
        changes.extend(ticket_due_changes(due_before, &ticket));
        let receipt = self.commit_purge(&entry, changes, shred).await?;
        Ok(GetResultResponse {
            state: TicketState::Answered as i32,
            released,
            commitment_salt: salt,
            decline_reason: 0,
            receipt: Some(receipt),
            use_restriction: ticket.use_restriction.clone(),
        })
    }

    fn ticket_view(&self, ticket: &TicketRecord) -> GetResultResponse {
        let expired = ticket.state == TicketState::Pending as i32
            && ticket.expires <= self.now().unix_timestamp();
        GetResultResponse {
            state: if expired {
                TicketState::Expired as i32
            } else {
                ticket.state
            },
            decline_reason: ticket.decline_reason,
            ..GetResultResponse::default()
        }
    }

    /// Projects a supplied record onto a decision for `recipient`.
    pub(crate) fn project(
        &self,
        record: &crate::release::Record,
        decision: &Decision,
        recipient: &str,
        now: time::OffsetDateTime,
    ) -> crate::release::Projection {
        let ctx = crate::release::ReleaseContext {
            key: &self.inner.release_key,
            recipient,
            now,
        };
        crate::release::project(record, decision, &ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(page_size(0), DEFAULT_PAGE);
        assert_eq!(page_size(-3), DEFAULT_PAGE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(1_000_000), MAX_PAGE);
    }

    #[test]
    fn justification_is_trimmed_and_bounded() {
        assert_eq!(justification("  ", 20).expect("ok"), None);
        assert_eq!(
            justification(" acute danger ", 20).expect("ok").as_deref(),
            Some("acute danger")
        );
        assert!(justification(&"é".repeat(20), 20).is_ok());
        assert!(justification(&"é".repeat(21), 20).is_err());
    }

    #[test]
    fn field_requests_parse_forms_and_report_each_bad_one() {
        let ok = field_requests(
            &[
                crate::proto::v1::FieldRequest {
                    field: "subject.birth_date".into(),
                    form: "year".into(),
                },
                crate::proto::v1::FieldRequest {
                    field: "subject.name".into(),
                    form: String::new(),
                },
            ],
            "fields",
        )
        .expect("valid");
        assert_eq!(ok[0].form, Some(Transform::Year));
        assert_eq!(ok[1].form, None);

        let Err(ExchangeError::InvalidArgument(violations)) = field_requests(
            &[
                crate::proto::v1::FieldRequest {
                    field: String::new(),
                    form: String::new(),
                },
                crate::proto::v1::FieldRequest {
                    field: "subject.name".into(),
                    form: "shout".into(),
                },
            ],
            "fields",
        ) else {
            panic!("expected violations");
        };
        let paths: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(paths, ["fields[0].field", "fields[1].form"]);
    }
}
