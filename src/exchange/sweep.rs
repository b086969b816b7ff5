//! Retention: pending tickets expire, and payloads whose retention obligation has ended are deleted
//! even when nobody fetched them. Each removal is an audit append like any other state change.

use crate::policy::ExchangeKind;
use crate::proto::v1::{AuditEntry, AuditEvent, TicketState};
use crate::store::{self, SignalRecord, TicketRecord};

use super::directory::hex_bytes;
use super::{Caller, ExchangeError, Gateway};

/// The caller named in entries the gateway writes on its own behalf.
fn gateway_caller() -> Caller {
    Caller {
        party: String::new(),
        actor: "ketenpoort-retention".to_owned(),
        trace_id: String::new(),
    }
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Pending tickets that expired unanswered.
    pub tickets_expired: usize,
    /// Answers deleted unfetched because their retention ended.
    pub answers_deleted: usize,
    /// Signals deleted unacknowledged because their retention ended.
    pub signals_deleted: usize,
}

impl Gateway {
    fn retention_entry(
        &self,
        kind: ExchangeKind,
        requester: &str,
        counterpart: &str,
        subject: &str,
        exchange_id: &str,
        reason: &str,
    ) -> AuditEntry {
        let mut entry = self.entry(&gateway_caller(), "Expire", AuditEvent::Exchange);
        entry.exchange_id = exchange_id.to_owned();
        entry.exchange_kind = kind.as_str().to_owned();
        entry.requester_party = requester.to_owned();
        entry.counterpart_party = counterpart.to_owned();
        entry.subject_pseudonym = hex_bytes(subject);
        entry.reason_code = reason.to_owned();
        entry
    }

    /// Expires overdue tickets and deletes payloads past their retention, one audit append each.
    pub async fn sweep_expired(&self) -> Result<SweepReport, ExchangeError> {
        let mut report = SweepReport::default();
        let now = self.now().unix_timestamp();
        let pending = TicketState::Pending as i32;
        let answered = TicketState::Answered as i32;
        let overdue = |t: &TicketRecord| {
            (t.state == pending && t.expires <= now)
                || (t.state == answered && t.retain_until <= now)
        };
        let candidates: Vec<String> = self
            .inner
            .store
            .scan::<TicketRecord>(store::TICKETS_PREFIX)?
            .into_iter()
            .filter(overdue)
            .map(|t| t.id)
            .collect();
        for id in candidates {
            let _guard = self.inner.locks.lock(&id).await;
            // Re-read under the lock: the holder or requester may have acted meanwhile.
            let Some(mut ticket) = self
                .inner
                .store
                .get::<TicketRecord>(&store::ticket_key(&id))?
            else {
                continue;
            };
            if !overdue(&ticket) {
                continue;
            }
            let was_pending = ticket.state == pending;
            let reason = if was_pending {
                "TICKET_EXPIRED"
            } else {
                "RETENTION_ENDED"
            };
            let entry = self.retention_entry(
                ExchangeKind::Request,
                &ticket.requester,
                &ticket.holder,
                &ticket.subject,
                &ticket.id,
                reason,
            );
            ticket.state = TicketState::Expired as i32;
            ticket.released.clear();
            ticket.salt.clear();
            let mut changes = vec![store::put(store::ticket_key(&ticket.id), &ticket)];
            if was_pending {
                changes.push(store::delete(store::incoming_key(
                    &ticket.holder,
                    &ticket.id,
                )));
                report.tickets_expired += 1;
            } else {
                report.answers_deleted += 1;
            }
            self.commit(&entry, changes).await?;
            self.notify_ticket_change();
        }

        let signals: Vec<SignalRecord> = self
            .inner
            .store
            .scan::<SignalRecord>(store::SIGNALS_PREFIX)?
            .into_iter()
            .filter(|s| s.retain_until <= now)
            .collect();
        for signal in signals {
            let _guard = self.inner.locks.lock(&signal.id).await;
            let key = store::signal_key(&signal.id);
            if self.inner.store.get::<SignalRecord>(&key)?.is_none() {
                continue;
            }
            let entry = self.retention_entry(
                ExchangeKind::Share,
                &signal.sender,
                &signal.recipient,
                &signal.subject,
                &signal.id,
                "RETENTION_ENDED",
            );
            let changes = vec![
                store::delete(key),
                store::delete(store::inbox_key(&signal.recipient, &signal.id)),
            ];
            self.commit(&entry, changes).await?;
            report.signals_deleted += 1;
        }
        Ok(report)
    }
}
