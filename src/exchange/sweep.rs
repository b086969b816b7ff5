//! Retention: pending tickets expire, and payloads whose retention obligation has ended are deleted
//! even when nobody fetched them, and their keys destroyed. Each removal is an audit append like
//! any other state change.
//!
//! What is due when is kept in an expiry index under `s/m/ex/`, ordered by due time and written
//! in the same append as the ticket or signal it points to, so a sweep reads only what is overdue
//! instead of every ticket. The index is memory-only, rebuilt from the records on start (see
//! [`Gateway::rebuild_indexes`]). The first sweep of a process still scans everything.

use std::sync::atomic::Ordering;

use crate::audit::StateChange;
use crate::policy::{ExchangeKind, PolicySet};
use crate::proto::v1::{AuditEntry, AuditEvent, TicketState};
use crate::store::{self, SealedRecord, SignalRecord, TicketRecord};

/// Prefix of the expiry index: `s/m/ex/<16 hex due time>/<kind>/<id>`, empty values.
const DUE_PREFIX: &[u8] = b"s/m/ex/";
/// Kind letters in expiry keys.
const DUE_TICKET: char = 't';
const DUE_SIGNAL: char = 'g';

/// The expiry key of record `id` of `kind`, due at Unix second `due`. The time is stored with its
/// sign bit flipped, in fixed-width hex, so that key order is time order.
fn due_key(due: i64, kind: char, id: &str) -> Vec<u8> {
    format!("s/m/ex/{:016x}/{kind}/{id}", (due as u64) ^ (1 << 63)).into_bytes()
}

/// The due time, kind and id in an expiry key.
fn parse_due_key(key: &[u8]) -> Option<(i64, char, String)> {
    let rest = std::str::from_utf8(key.strip_prefix(DUE_PREFIX)?).ok()?;
    let (time, rest) = rest.split_once('/')?;
    let (kind, id) = rest.split_once('/')?;
    let due = (u64::from_str_radix(time, 16).ok()? ^ (1 << 63)) as i64;
    let mut kind_chars = kind.chars();
    let kind = kind_chars.next().filter(|_| kind_chars.next().is_none())?;
    Some((due, kind, id.to_owned()))
}

/// When a ticket next needs the sweep: a pending one when it expires, an answered one when its
/// retention ends; in any other state, never.
fn ticket_due_key(ticket: &TicketRecord) -> Option<Vec<u8>> {
    let due = if ticket.state == TicketState::Pending as i32 {
        ticket.expires
    } else if ticket.state == TicketState::Answered as i32 {
        ticket.retain_until
    } else {
        return None;
    };
    Some(due_key(due, DUE_TICKET, &ticket.id))
}

/// The expiry index changes for a ticket moving from `before` (its due key before the change,
/// `None` for a new ticket) to `after`.
pub(crate) fn ticket_due_changes(
    before: Option<Vec<u8>>,
    after: &TicketRecord,
) -> Vec<StateChange> {
    let after = ticket_due_key(after);
    if before == after {
        return Vec::new();
    }
    let mut changes = Vec::with_capacity(2);
    if let Some(key) = before {
        changes.push(store::delete(key));
    }
    if let Some(key) = after {
        changes.push(store::mark(key));
    }
    changes
}

/// The due key a ticket has now, to pass to [`ticket_due_changes`] before changing it.
pub(crate) fn ticket_due_now(ticket: &TicketRecord) -> Option<Vec<u8>> {
    ticket_due_key(ticket)
}

/// The expiry key of a signal: due when its retention ends, until it is acknowledged.
pub(crate) fn signal_due_key(signal: &SignalRecord) -> Vec<u8> {
    due_key(signal.retain_until, DUE_SIGNAL, &signal.id)
}

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
    #[allow(clippy::too_many_arguments)]
    fn retention_entry(
        &self,
        policy: &PolicySet,
        kind: ExchangeKind,
        requester: &str,
        counterpart: &str,
        subject: &str,
        exchange_id: &str,
        reason: &str,
    ) -> Result<AuditEntry, ExchangeError> {
        let mut entry = self.entry(policy, &gateway_caller(), "Expire", AuditEvent::Exchange);
        entry.exchange_id = exchange_id.to_owned();
        entry.exchange_kind = kind.as_str().to_owned();
        entry.requester_party = requester.to_owned();
        entry.counterpart_party = counterpart.to_owned();
        entry.subject_pseudonym = hex_bytes(subject)?;
        entry.reason_code = reason.to_owned();
        Ok(entry)
    }

    /// Expires overdue tickets and deletes payloads past their retention, one audit append each.
    pub async fn sweep_expired(&self) -> Result<SweepReport, ExchangeError> {
        let mut report = SweepReport::default();
        let now = self.now().unix_timestamp();
        let policy = self.policy();
        let pending = TicketState::Pending as i32;
        let answered = TicketState::Answered as i32;
        let overdue = |t: &TicketRecord| {
            (t.state == pending && t.expires <= now)
                || (t.state == answered && t.retain_until <= now)
        };
        let (tickets, signals) = if self.inner.swept_once.swap(true, Ordering::AcqRel) {
            self.overdue_in_index(now)?
        } else {
            self.overdue_by_full_scan(now, &overdue)?
        };
        for id in tickets {
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
            let due_before = ticket_due_now(&ticket);
            let was_pending = ticket.state == pending;
            let reason = if was_pending {
                "TICKET_EXPIRED"
            } else {
                "RETENTION_ENDED"
            };
            let entry = self.retention_entry(
                &policy,
                ExchangeKind::Request,
                &ticket.requester,
                &ticket.holder,
                &ticket.subject,
                &ticket.id,
                reason,
            )?;
            ticket.state = TicketState::Expired as i32;
            ticket.salt.clear();
            let shred = store::payload::purge(&mut ticket);
            let mut changes = vec![store::put(store::ticket_key(&ticket.id), &ticket)];
            changes.extend(ticket_due_changes(due_before, &ticket));
            if was_pending {
                changes.push(store::delete(store::incoming_key(
                    &ticket.holder,
                    &ticket.id,
                )));
                report.tickets_expired += 1;
            } else {
                report.answers_deleted += 1;
            }
            self.commit_purge(&entry, changes, shred).await?;
            self.notify_ticket_change();
        }

        for id in signals {
            let _guard = self.inner.locks.lock(&id).await;
            let key = store::signal_key(&id);
            let Some(signal) = self.inner.store.get::<SignalRecord>(&key)? else {
                continue;
            };
            if signal.retain_until > now {
                continue;
            }
            let entry = self.retention_entry(
                &policy,
                ExchangeKind::Share,
                &signal.sender,
                &signal.recipient,
                &signal.subject,
                &signal.id,
                "RETENTION_ENDED",
            )?;
            let changes = vec![
                store::delete(key),
                store::delete(store::inbox_key(&signal.recipient, &signal.id)),
                store::delete(signal_due_key(&signal)),
            ];
            self.commit_purge(&entry, changes, store::payload::key_of(&signal))
                .await?;
            report.signals_deleted += 1;
        }
        Ok(report)
    }

    /// Rebuilds the memory-only indexes over the records (a holder's pending requests, a
    /// recipient's inbox, the expiry index) from the tickets and signals, as each exchange
    /// keeps them, and zeroes the payload keys no record names (see
    /// [`store::Store::reclaim_keys`]): run once after the log is opened, before serving.
    /// Returns how many index keys. First removes the sled copies of these indexes that earlier
    /// versions kept.
    pub fn rebuild_indexes(&self) -> Result<usize, ExchangeError> {
        let removed = self
            .inner
            .log
            .remove_obsolete_state(store::OBSOLETE_PREFIXES)
            .map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed the sled index keys an earlier version kept (now in memory)"
            );
        }
        let store = &self.inner.store;
        let mut keys = Vec::new();
        let mut key_slots = Vec::new();
        for ticket in store.scan::<TicketRecord>(store::TICKETS_PREFIX)? {
            if ticket.state == TicketState::Pending as i32 {
                keys.push(store::incoming_key(&ticket.holder, &ticket.id));
            }
            keys.extend(ticket_due_key(&ticket));
            key_slots.push((ticket.key_slot, ticket.owner()));
        }
        for signal in store.scan::<SignalRecord>(store::SIGNALS_PREFIX)? {
            keys.push(store::inbox_key(&signal.recipient, &signal.id));
            keys.push(signal_due_key(&signal));
            key_slots.push((signal.key_slot, signal.owner()));
        }
        let reclaimed = store.reclaim_keys(key_slots)?;
        if reclaimed.orphans > 0 {
            tracing::info!(
                zeroed = reclaimed.orphans,
                "payload keys no record names (left by a crash) were destroyed"
            );
        }
        if reclaimed.missing > 0 {
            tracing::warn!(
                payloads = reclaimed.missing,
                "stored payloads whose keys are missing or damaged are unreadable (was the payload key file lost or altered?)"
            );
        }
        self.inner
            .log
            .rebuild_memory(keys.into_iter().map(|k| (k, Vec::new())))
            .map_err(|e| ExchangeError::Unavailable(e.to_string()))
    }

    /// The ids of the tickets and signals the expiry index says are due by `now`: reads the
    /// index in time order and stops at the first key that is not yet due.
    fn overdue_in_index(&self, now: i64) -> Result<(Vec<String>, Vec<String>), ExchangeError> {
        let mut tickets = Vec::new();
        let mut signals = Vec::new();
        for item in self.inner.log.state_scan_prefix(DUE_PREFIX) {
            let (key, _) = item.map_err(|e| ExchangeError::Unavailable(e.to_string()))?;
            let Some((due, kind, id)) = parse_due_key(&key) else {
                continue;
            };
            if due > now {
                break;
            }
            match kind {
                DUE_TICKET => tickets.push(id),
                DUE_SIGNAL => signals.push(id),
                _ => {}
            }
        }
        Ok((tickets, signals))
    }

    /// The ids of every overdue ticket and signal, by reading them all.
    fn overdue_by_full_scan(
        &self,
        now: i64,
        overdue: &dyn Fn(&TicketRecord) -> bool,
    ) -> Result<(Vec<String>, Vec<String>), ExchangeError> {
        let store = &self.inner.store;
        let tickets = store
            .scan::<TicketRecord>(store::TICKETS_PREFIX)?
            .into_iter()
            .filter(|t| overdue(t))
            .map(|t| t.id)
            .collect();
        let signals = store
            .scan::<SignalRecord>(store::SIGNALS_PREFIX)?
            .into_iter()
            .filter(|s| s.retain_until <= now)
            .map(|s| s.id)
            .collect();
        Ok((tickets, signals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_sort_by_time_and_parse_back() {
        let early = due_key(-5, DUE_TICKET, "t-1");
        let late = due_key(1_700_000_000, DUE_SIGNAL, "g-2");
        let later = due_key(1_700_000_001, DUE_TICKET, "t-0");
        assert!(early < late && late < later);
        assert!(early.starts_with(DUE_PREFIX));
        assert_eq!(
            parse_due_key(&early),
            Some((-5, DUE_TICKET, "t-1".to_owned()))
        );
        assert_eq!(
            parse_due_key(&late),
            Some((1_700_000_000, DUE_SIGNAL, "g-2".to_owned()))
        );
        assert_eq!(parse_due_key(b"s/m/ex/zz/t/x"), None);
    }

    #[test]
    fn a_ticket_moves_in_the_index_with_its_state() {
        let mut ticket = TicketRecord {
            id: "t-1".into(),
            state: TicketState::Pending as i32,
            expires: 100,
            retain_until: 0,
            ..TicketRecord::default()
        };
        let created = ticket_due_changes(None, &ticket);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].key, due_key(100, DUE_TICKET, "t-1"));
        assert!(created[0].value.is_some());

        let before = ticket_due_now(&ticket);
        ticket.state = TicketState::Answered as i32;
        ticket.retain_until = 500;
        let answered = ticket_due_changes(before, &ticket);
        assert_eq!(answered.len(), 2);
        assert!(answered[0].value.is_none(), "the pending key goes");
        assert_eq!(answered[1].key, due_key(500, DUE_TICKET, "t-1"));

        let before = ticket_due_now(&ticket);
        ticket.state = TicketState::Delivered as i32;
        let delivered = ticket_due_changes(before, &ticket);
        assert_eq!(delivered.len(), 1);
        assert!(delivered[0].value.is_none());
        assert!(ticket_due_changes(None, &ticket).is_empty());
    }
}
