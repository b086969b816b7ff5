//! Reviews: the exchanges a decision flags (review, notify, necessity, special categories) enter
//! the review queues of the holder's DPO and of the supervisor; a reviewer lists its queue and
//! records an outcome, which is itself an audit entry.
//!
//! The queue is operational state, committed atomically with the flagged exchange's entry. The
//! texts of a necessity exchange (the requester's justification, the holder's weighing) are kept
//! beside it for those two reviewers only; the entries carry salted commitments to them.

use ring::digest::{Context, SHA256};

use crate::audit::StateChange;
use crate::policy::{Decision, PolicySet};
use crate::proto::v1::{
    AuditEntry, AuditEvent, ListReviewsRequest, ListReviewsResponse, RecordReviewRequest,
    RecordReviewResponse, ReviewItem, ReviewOutcome, Verdict, Weighing,
};
use crate::store::{self, NecessityRecord, ReviewQueueRecord, ReviewRecord};

use super::request::page_size;
use super::{Caller, ExchangeError, Gateway, Violation, has_role, ids};

/// Roles that review: each organisation's DPO and the supervisor.
const REVIEWER_ROLES: [&str; 2] = ["auditor", "supervisor"];
/// The role that reviews every flagged exchange.
const SUPERVISOR_ROLE: &str = "supervisor";
/// Shortest part of a weighing, in characters, and its fewest words.
const MIN_WEIGHING_CHARS: usize = 20;
const MIN_WEIGHING_WORDS: usize = 3;

/// The domain-separated commitment to a text kept for reviewers.
pub fn text_commitment(salt: &[u8], text: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(b"ketenpoort/text-commitment/v1");
    c.update(&[0]);
    c.update(salt);
    c.update(text);
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The committed text of a weighing: each part length-prefixed, so no two weighings share it.
pub fn weighing_text(w: &Weighing) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [&w.danger, &w.no_other_way, &w.proportionality] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Checks a holder's weighing: every part written, with substance, within the policy's bound.
pub(crate) fn check_weighing(
    policy: &PolicySet,
    weighing: Option<&Weighing>,
) -> Result<Weighing, ExchangeError> {
    let Some(w) = weighing else {
        return Err(ExchangeError::invalid(
            "weighing",
            "this answer rests on necessity: write your own weighing (the danger, why no other way is left, why the release is proportionate)",
        ));
    };
    let mut violations = Vec::new();
    let max = policy.max_justification();
    let trimmed = Weighing {
        danger: w.danger.trim().to_owned(),
        no_other_way: w.no_other_way.trim().to_owned(),
        proportionality: w.proportionality.trim().to_owned(),
    };
    for (name, text) in [
        ("weighing.danger", &trimmed.danger),
        ("weighing.no_other_way", &trimmed.no_other_way),
        ("weighing.proportionality", &trimmed.proportionality),
    ] {
        let s = crate::policy::substance(text);
        if s.chars > max {
            violations.push(Violation::new(
                name,
                format!("must be at most {max} characters"),
            ));
        } else if s.chars < MIN_WEIGHING_CHARS || s.words < MIN_WEIGHING_WORDS || s.degenerate {
            violations.push(Violation::new(
                name,
                format!(
                    "write it out: at least {MIN_WEIGHING_CHARS} characters and {MIN_WEIGHING_WORDS} words"
                ),
            ));
        } else if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            violations.push(Violation::new(name, "control characters are not allowed"));
        }
    }
    if violations.is_empty() {
        Ok(trimmed)
    } else {
        Err(ExchangeError::InvalidArgument(violations))
    }
}

/// Why a decision flags its exchange for review, if it does.
fn reasons(decision: &Decision) -> Vec<String> {
    let o = &decision.obligations;
    [
        (o.review, "review"),
        (o.notify, "notify"),
        (o.weighing, "necessity"),
        (o.special_category && o.review, "special-category"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, r)| r.to_owned())
    .collect()
}

impl Gateway {
    /// The state changes that put a flagged exchange in its reviewers' queues: the DPO of
    /// `holder` for every flag, and the supervisor for a review or a necessity. None for an
    /// exchange nothing flags.
    pub(crate) fn review_changes(
        &self,
        policy: &PolicySet,
        decision: &Decision,
        holder: &str,
        exchange_id: &str,
    ) -> Vec<StateChange> {
        let reasons = reasons(decision);
        if reasons.is_empty() {
            return Vec::new();
        }
        let mut reviewers: Vec<String> = Vec::new();
        if let Some(dpo) = policy.party(holder).and_then(|p| p.dpo.clone()) {
            reviewers.push(dpo);
        }
        if decision.obligations.review || decision.obligations.weighing {
            reviewers.extend(
                policy
                    .parties()
                    .filter(|p| p.roles.iter().any(|r| r == SUPERVISOR_ROLE))
                    .map(|p| p.id.clone()),
            );
        }
        reviewers.sort();
        reviewers.dedup();
        let item = ReviewQueueRecord {
            exchange_id: exchange_id.to_owned(),
            reasons,
            flagged: self.now().unix_timestamp(),
        };
        reviewers
            .iter()
            .map(|r| store::put(store::review_queue_key(r, exchange_id), &item))
            .collect()
    }

    /// The flagged exchanges awaiting the caller's review, oldest first.
    pub async fn list_reviews(
        &self,
        caller: &Caller,
        request: ListReviewsRequest,
    ) -> Result<ListReviewsResponse, ExchangeError> {
        let policy = self.policy();
        if !has_role(&policy, &caller.party, &REVIEWER_ROLES) {
            return Err(ExchangeError::NotAllowed {
                reason: "ROLE_REQUIRED".into(),
            });
        }
        let limit = page_size(request.page_size);
        let store = &self.inner.store;
        let mut ids = store.ids_under(&store::review_queue_prefix(&caller.party))?;
        ids.sort();
        let mut items = Vec::new();
        let mut next_page_token = String::new();
        let mut shown = 0;
        for id in ids
            .into_iter()
            .filter(|id| request.page_token.is_empty() || *id > request.page_token)
        {
            if items.len() == limit {
                next_page_token = items
                    .last()
                    .map(|i: &ReviewItem| i.exchange_id.clone())
                    .unwrap_or_default();
                break;
            }
            let Some(queued) =
                store.get::<ReviewQueueRecord>(&store::review_queue_key(&caller.party, &id))?
            else {
                continue;
            };
            let entries = self.exchange_leaves(caller, &id)?;
            shown += entries.len();
            let texts = store.get::<NecessityRecord>(&store::necessity_key(&id))?;
            let mut item = ReviewItem {
                exchange_id: id,
                reasons: queued.reasons,
                entries,
                ..ReviewItem::default()
            };
            if let Some(t) = texts {
                item.justification = t.justification;
                item.justification_salt = t.justification_salt;
                if !t.weighing_salt.is_empty() {
                    item.weighing = Some(Weighing {
                        danger: t.danger,
                        no_other_way: t.no_other_way,
                        proportionality: t.proportionality,
                    });
                    item.weighing_salt = t.weighing_salt;
                }
            }
            items.push(item);
        }
        self.log_read(&policy, caller, "ListReviews", shown, None)
            .await?;
        Ok(ListReviewsResponse {
            items,
            next_page_token,
        })
    }

    /// Records the caller's review of an exchange in its queue; the review is an audit entry.
    pub async fn record_review(
        &self,
        caller: &Caller,
        request: RecordReviewRequest,
    ) -> Result<RecordReviewResponse, ExchangeError> {
        let policy = self.policy();
        if !has_role(&policy, &caller.party, &REVIEWER_ROLES) {
            return Err(ExchangeError::NotAllowed {
                reason: "ROLE_REQUIRED".into(),
            });
        }
        let mut violations = Vec::new();
        if !ids::is_well_formed(&request.exchange_id) {
            violations.push(Violation::new("exchange_id", "not an exchange id"));
        }
        let outcome = ReviewOutcome::try_from(request.outcome)
            .ok()
            .filter(|o| *o != ReviewOutcome::Unspecified);
        if outcome.is_none() {
            violations.push(Violation::new(
                "outcome",
                "say whether the exchange was justified or unjustified",
            ));
        }
        let note = request.note.trim().to_owned();
        let max = policy.max_justification();
        if note.chars().count() > max {
            violations.push(Violation::new(
                "note",
                format!("must be at most {max} characters"),
            ));
        } else if note
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            violations.push(Violation::new("note", "control characters are not allowed"));
        }
        let (Some(outcome), true) = (outcome, violations.is_empty()) else {
            return Err(ExchangeError::InvalidArgument(violations));
        };
        let queue_key = store::review_queue_key(&caller.party, &request.exchange_id);
        let _guard = self.inner.locks.lock(&queue_key).await;
        if self
            .inner
            .store
            .get::<ReviewQueueRecord>(&queue_key)?
            .is_none()
        {
            // Not in this reviewer's queue: the answer is the same whether the exchange exists.
            return Err(ExchangeError::NotFound { kind: "review" });
        }
        let now = self.now();
        let salt = ids::salt()?;
        let mut entry: AuditEntry = self.entry(&policy, caller, "RecordReview", AuditEvent::Review);
        entry.exchange_id = request.exchange_id.clone();
        entry.purpose = "audit-supervision".to_owned();
        entry.verdict = Verdict::Allow as i32;
        entry.reason_code = "REVIEWED".to_owned();
        entry.review_outcome = outcome as i32;
        entry.payload_commitment = text_commitment(&salt, note.as_bytes()).to_vec();
        let record = ReviewRecord {
            exchange_id: request.exchange_id.clone(),
            outcome: outcome as i32,
            note,
            salt: salt.to_vec(),
            recorded: now.unix_timestamp(),
        };
        let changes = vec![
            store::delete(queue_key),
            store::put(
                store::review_done_key(&caller.party, &request.exchange_id),
                &record,
            ),
        ];
        let receipt = self.commit(&entry, changes).await?;
        Ok(RecordReviewResponse {
            receipt: Some(receipt),
        })
    }
}
