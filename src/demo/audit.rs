//! Act 7: the auditors. The supervisor (COC) verifies, offline and against the verifier key pinned
//! out of band, every signed checkpoint and every receipt handed out during the story, recomputes
//! the tree from the entries, and checks that every checkpoint is consistent with the last one. The
//! DPO of the CGG sees only entries naming the CGG (the rest as leaf hashes) and can still
//! recompute the tree. Then a subject-access report for Lotte.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use prost::Message;

use crate::audit::consulted;
use crate::audit::hash::{Frontier, Hash, check_tree, leaf_hash};
use crate::audit::{AuditError, Checkpoint, Receipt, Verifier};
use crate::proto::v1 as pb;

use super::cast::{COC, DPO_CAW, DPO_CGG};
use super::narrate::{allowed, psn};
use super::{DemoError, DemoSummary, Story};

/// Entries fetched per GetEntries call (the server's maximum).
const PAGE: u64 = 1_000;

fn verify_error(what: impl Into<String>) -> impl FnOnce(AuditError) -> DemoError {
    let what = what.into();
    move |source| DemoError::Verify { what, source }
}

fn bad(what: &str, why: &str) -> DemoError {
    DemoError::Verify {
        what: what.to_owned(),
        source: AuditError::BadProof(why.to_owned()),
    }
}

/// A short base64 form of a root hash.
fn short_root(root: &Hash) -> String {
    let full = B64.encode(root);
    format!("{}...", full.get(..12).unwrap_or_default())
}

/// What one party could see of the log up to a checkpoint.
struct View {
    /// Decoded entries in scope, by index, with the consulted holders the party was shown
    /// (each opening checked against the entry's commitments).
    entries: Vec<(u64, pb::AuditEntry, Vec<String>)>,
    /// Positions shown only as a leaf hash.
    hashes_only: u64,
}

/// Fetches a signed checkpoint as `party` and verifies it against the pinned key.
async fn checkpoint(
    story: &mut Story<'_>,
    party: &str,
    verifier: &Verifier,
) -> Result<(Checkpoint, String), DemoError> {
    let step = format!("7. {party} GetCheckpoint");
    let mut audit = story.wire.audit(party).await?;
    let got = allowed(
        &step,
        audit.get_checkpoint(pb::GetCheckpointRequest {}).await,
    )?;
    if !got.verifier_keys.contains(&story.pinned_key) {
        return Err(bad(
            &step,
            "the gateway does not publish the pinned verifier key",
        ));
    }
    let opened = Checkpoint::open(&got.checkpoint, std::slice::from_ref(verifier))
        .map_err(verify_error(format!("{step} signature")))?;
    Ok((opened, got.checkpoint))
}

/// Fetches every position up to `checkpoint` as `party`, recomputes the tree and compares its root.
async fn view(
    story: &mut Story<'_>,
    party: &str,
    checkpoint: &Checkpoint,
) -> Result<View, DemoError> {
    let step = format!("7. {party} GetEntries");
    let mut audit = story.wire.audit(party).await?;
    let mut frontier = Frontier::new();
    let mut view = View {
        entries: Vec::new(),
        hashes_only: 0,
    };
    while frontier.size() < checkpoint.size {
        let count = (checkpoint.size - frontier.size()).min(PAGE);
        let page = allowed(
            &step,
            audit
                .get_entries(pb::GetEntriesRequest {
                    start: frontier.size(),
                    count: u32::try_from(count).unwrap_or(1_000),
                })
                .await,
        )?;
        if page.leaves.is_empty() {
            return Err(bad(&step, "the log ended before the checkpoint's size"));
        }
        for leaf in page.leaves {
            if leaf.index != frontier.size() {
                return Err(bad(&step, "positions out of order"));
            }
            let hash = match leaf.content {
                Some(pb::log_leaf::Content::Entry(bytes)) => {
                    let entry = pb::AuditEntry::decode(bytes.as_slice())
                        .map_err(|_| bad(&step, "an entry does not decode"))?;
                    let consulted = opened(&step, &entry, &leaf.consulted)?;
                    view.entries.push((leaf.index, entry, consulted));
                    leaf_hash(&bytes)
                }
                Some(pb::log_leaf::Content::LeafHash(bytes)) => {
                    view.hashes_only += 1;
                    bytes
                        .try_into()
                        .map_err(|_| bad(&step, "a leaf hash is not 32 bytes"))?
                }
                None => return Err(bad(&step, "an empty position")),
            };
            frontier.push(hash);
            if frontier.size() == checkpoint.size {
                break;
            }
        }
    }
    if frontier.root() != checkpoint.root {
        return Err(bad(
            &step,
            "the recomputed root differs from the signed checkpoint",
        ));
    }
    Ok(view)
}

/// The consulted holders whose openings check out against `entry`'s commitments.
fn opened(
    step: &str,
    entry: &pb::AuditEntry,
    disclosures: &[pb::ConsultedDisclosure],
) -> Result<Vec<String>, DemoError> {
    disclosures
        .iter()
        .map(|d| {
            if consulted::discloses(entry, &d.party, &d.salt) {
                Ok(d.party.clone())
            } else {
                Err(bad(
                    step,
                    "a consulted-holder opening does not match its entry",
                ))
            }
        })
        .collect()
}

/// One entry in a line, with the consulted holders the reader was shown.
fn entry_line(index: u64, e: &pb::AuditEntry, consulted: &[String]) -> String {
    let verdict = match (
        pb::AuditEvent::try_from(e.event),
        pb::Verdict::try_from(e.verdict),
    ) {
        (Ok(pb::AuditEvent::Grounds), _) => "ground recorded".to_owned(),
        (Ok(pb::AuditEvent::AuditAccess), _) => format!("audit read {}", e.detail),
        (_, Ok(pb::Verdict::Allow)) => format!("allow {}", e.reason_code),
        (_, Ok(pb::Verdict::Deny)) => format!("DENY {}", e.reason_code),
        _ => e.reason_code.clone(),
    };
    let time = e
        .time
        .as_ref()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t.seconds).ok())
        .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
        .unwrap_or_default();
    let counterpart = if !e.consulted_commitments.is_empty() {
        // The holders a lookup consulted, as far as the reader may open them; the entry names
        // no requester (see its `detail`).
        format!(
            "{} consulted {} (of {} commitments)",
            e.detail,
            consulted.join(","),
            e.consulted_commitments.len()
        )
    } else if e.counterpart_party.is_empty() || e.counterpart_party == e.requester_party {
        String::new()
    } else {
        format!(" -> {}", e.counterpart_party)
    };
    format!(
        "#{index:<3} {time}  {:<17} {}{counterpart}  {verdict}",
        e.operation, e.requester_party
    )
}

/// Plays act 7 and sums the story up.
/// The CAW's DPO reviews the necessity answer of act 6: she opens the commitments to the police's
/// justification and the CAW's weighing, records that the release was justified, and the queue
/// empties.
async fn record_a_review(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.clock.set(16, 35);
    let step = "7. dpo-caw ListReviews";
    story.say.step(
        DPO_CAW,
        "ListReviews",
        "the CAW's DPO opens her review queue",
    )?;
    let mut audit = story.wire.audit(DPO_CAW).await?;
    let queue = allowed(
        step,
        audit.list_reviews(pb::ListReviewsRequest::default()).await,
    )?;
    let Some(item) = queue
        .items
        .iter()
        .find(|i| i.reasons.iter().any(|r| r == "necessity"))
    else {
        return Err(bad(step, "the necessity answer is not in the queue"));
    };
    story.say.detail(
        "pending",
        &format!(
            "{} item(s); exchange {} flagged for {}",
            queue.items.len(),
            item.exchange_id,
            item.reasons.join(", ")
        ),
    )?;
    // The texts open the commitments in the signed entries: the gateway cannot swap them.
    let weighing = item
        .weighing
        .as_ref()
        .ok_or_else(|| bad(step, "the CAW's weighing is not in the item"))?;
    let justification =
        crate::exchange::text_commitment(&item.justification_salt, item.justification.as_bytes());
    let weighed = crate::exchange::text_commitment(
        &item.weighing_salt,
        &crate::exchange::weighing_text(weighing),
    );
    let entries: Vec<pb::AuditEntry> = item
        .entries
        .iter()
        .filter_map(|leaf| match &leaf.content {
            Some(pb::log_leaf::Content::Entry(bytes)) => {
                prost::Message::decode(bytes.as_slice()).ok()
            }
            _ => None,
        })
        .collect();
    let opens = |c: &[u8; 32], pick: fn(&pb::AuditEntry) -> &[u8]| {
        entries.iter().any(|e| pick(e) == c.as_slice())
    };
    if !opens(&justification, |e| &e.justification_commitment)
        || !opens(&weighed, |e| &e.weighing_commitment)
    {
        return Err(bad(step, "the texts do not open the entries' commitments"));
    }
    story.say.wrap("police", &item.justification)?;
    story.say.wrap("weighing", &weighing.danger)?;
    story.say.detail(
        "checked",
        "both texts open the salted commitments in the signed entries",
    )?;

    story.clock.set(16, 40);
    let step = "7. dpo-caw RecordReview";
    story.say.step(
        DPO_CAW,
        "RecordReview",
        "justified: a real danger, no other way left, only what helped find him",
    )?;
    let recorded = allowed(
        step,
        audit
            .record_review(pb::RecordReviewRequest {
                exchange_id: item.exchange_id.clone(),
                outcome: pb::ReviewOutcome::Justified as i32,
                note: "Noodtoestand terecht ingeroepen; vrijgave beperkt tot wat nodig was."
                    .to_owned(),
            })
            .await,
    )?;
    let exchange_id = item.exchange_id.clone();
    story.receipt(step, recorded.receipt)?;
    let after = allowed(
        step,
        audit.list_reviews(pb::ListReviewsRequest::default()).await,
    )?;
    if after.items.iter().any(|i| i.exchange_id == exchange_id) {
        return Err(bad(step, "the reviewed exchange is still in the queue"));
    }
    story.say.detail(
        "queue",
        &format!(
            "{} item(s) left; the review is entry #{} of the log",
            after.items.len(),
            story.receipts.last().map_or(0, |r| r.index)
        ),
    )?;
    Ok(())
}

pub(crate) async fn play(story: &mut Story<'_>) -> Result<DemoSummary, DemoError> {
    story.say.act(
        7,
        "The auditors: verify, scope, and a subject-access report",
        &[
            "The supervisory body (COC) checks the log without trusting the gateway: it pins the",
            "gateway's verifier key out of band, verifies every signed checkpoint and every receipt the",
            "parties received, recomputes the tree and checks that the log only grew. A DPO sees only",
            "the entries of their own organisation; the rest are leaf hashes, enough to recompute it.",
        ],
    )?;
    let verifier = Verifier::parse(&story.pinned_key).map_err(verify_error("the pinned key"))?;
    let mut checkpoints: BTreeMap<u64, Checkpoint> = BTreeMap::new();

    story.clock.set(16, 0);
    story.say.step(
        COC,
        "GetCheckpoint",
        "the latest signed checkpoint, checked against the pinned key",
    )?;
    let (story_end, _) = checkpoint(story, COC, &verifier).await?;
    story.say.detail(
        "checkpoint",
        &format!(
            "{}, size {}, root {}: signature valid",
            story_end.origin,
            story_end.size,
            short_root(&story_end.root)
        ),
    )?;
    checkpoints.insert(story_end.size, story_end.clone());

    story.say.step(
        COC,
        "(offline)",
        "verify every receipt handed out in the story",
    )?;
    for (i, r) in story.receipts.iter().enumerate() {
        let receipt = Receipt {
            index: r.index,
            entry: r.entry.clone(),
            proof: r.proof.clone(),
        };
        let verified = receipt
            .verify(&story.pinned_key)
            .map_err(verify_error(format!("receipt {i} (entry #{})", r.index)))?;
        checkpoints.insert(verified.checkpoint.size, verified.checkpoint);
    }
    let receipts_verified = story.receipts.len();
    story.say.detail(
        "receipts",
        &format!(
            "{receipts_verified} of {receipts_verified} verified: signed checkpoint + inclusion proof"
        ),
    )?;
    story.say.detail(
        "checkpoints",
        &format!(
            "{} distinct signed checkpoints seen, sizes {} to {}",
            checkpoints.len(),
            checkpoints.keys().next().copied().unwrap_or(0),
            story_end.size
        ),
    )?;

    story.say.step(
        COC,
        "GetEntries",
        &format!("positions 0..{}: recompute the tree", story_end.size),
    )?;
    let all = view(story, COC, &story_end).await?;
    let exchanges: Vec<&pb::AuditEntry> = all
        .entries
        .iter()
        .map(|(_, e, _)| e)
        .filter(|e| e.event == pb::AuditEvent::Exchange as i32)
        .collect();
    let refused = exchanges
        .iter()
        .filter(|e| e.verdict == pb::Verdict::Deny as i32)
        .count() as u64;
    let review = exchanges
        .iter()
        .filter(|e| e.obligations.as_ref().is_some_and(|o| o.review))
        .count();
    story.say.detail(
        "entries",
        &format!(
            "{} of {} in scope (the supervisor sees everything); root matches the checkpoint",
            all.entries.len(),
            story_end.size
        ),
    )?;
    story.say.detail(
        "exchanges",
        &format!(
            "{} decided, {refused} refused, {review} flagged for review",
            exchanges.len()
        ),
    )?;
    if all.hashes_only != 0 || refused == 0 {
        return Err(bad(
            "7. coc GetEntries",
            "the supervisor's view is incomplete",
        ));
    }

    story.clock.set(16, 30);
    story.say.step(
        DPO_CGG,
        "GetEntries",
        "the CGG's DPO reads the log: only entries naming cgg-eclips",
    )?;
    let (dpo_checkpoint, _) = checkpoint(story, DPO_CGG, &verifier).await?;
    let dpo = view(story, DPO_CGG, &dpo_checkpoint).await?;
    checkpoints.insert(dpo_checkpoint.size, dpo_checkpoint.clone());
    story.say.detail(
        "scope",
        &format!(
            "{} entries in scope, {} as leaf hashes only; root recomputed, matches checkpoint {}",
            dpo.entries.len(),
            dpo.hashes_only,
            dpo_checkpoint.size
        ),
    )?;
    let mut label = "sees";
    for (index, entry, consulted) in &dpo.entries {
        story
            .say
            .detail(label, &entry_line(*index, entry, consulted))?;
        label = "";
    }
    // An entry names the CGG as requester, counterpart, or a holder a lookup consulted.
    // And it is shown no other consulted holder.
    let outside = dpo.entries.iter().any(|(_, e, consulted)| {
        (e.requester_party != super::cast::CGG
            && e.counterpart_party != super::cast::CGG
            && !consulted.iter().any(|p| p == super::cast::CGG))
            || consulted.iter().any(|p| p != super::cast::CGG)
    });
    if outside || dpo.hashes_only == 0 || dpo.entries.is_empty() {
        return Err(bad(
            "7. dpo-cgg-eclips GetEntries",
            "the DPO's scope is not limited to the CGG",
        ));
    }

    record_a_review(story).await?;

    story.clock.set(16, 45);
    let lotte = story.people.lotte.clone();
    story.say.step(
        COC,
        "SubjectReport",
        &format!(
            "{} asks who exchanged what about her (GDPR art. 15, LED art. 14 and 17, through the COC)",
            lotte.name
        ),
    )?;
    let mut audit = story.wire.audit(COC).await?;
    let report = allowed(
        "7. coc SubjectReport",
        audit
            .subject_report(pb::SubjectReportRequest {
                subject: lotte.subject(),
                access_request: "COC-AR-2026-0042".into(),
            })
            .await,
    )?;
    story
        .say
        .detail("subject", &psn(&report.subject_pseudonym))?;
    let mut label = "report";
    for line in &report.lines {
        let Some(entry) = &line.entry else { continue };
        let consulted = opened("7. coc SubjectReport", entry, &line.consulted)?;
        story
            .say
            .detail(label, &entry_line(line.index, entry, &consulted))?;
        label = "";
        let fields: Vec<String> = entry
            .released_fields
            .iter()
            .map(|f| format!("{}:{}", f.field, f.form))
            .collect();
        if !fields.is_empty() {
            story.say.sublist(&fields)?;
        }
    }
    if report.lines.is_empty() {
        return Err(bad("7. coc SubjectReport", "no lines about Lotte"));
    }

    story.clock.set(17, 0);
    story.say.step(
        COC,
        "GetCheckpoint + GetConsistencyProof",
        "the log only grew: every checkpoint seen is a prefix of the last",
    )?;
    let (last, _) = checkpoint(story, COC, &verifier).await?;
    let mut audit = story.wire.audit(COC).await?;
    for (size, earlier) in &checkpoints {
        if *size == last.size {
            if earlier.root != last.root {
                return Err(bad("7. consistency", "two roots for one tree size"));
            }
            continue;
        }
        let proof = allowed(
            "7. coc GetConsistencyProof",
            audit
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    old_size: *size,
                    new_size: last.size,
                })
                .await,
        )?;
        let hashes: Vec<Hash> = proof
            .hashes
            .into_iter()
            .map(|h| h.try_into())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("7. consistency", "a proof hash is not 32 bytes"))?;
        if !check_tree(&hashes, last.size, &last.root, *size, &earlier.root) {
            return Err(bad(
                "7. consistency",
                &format!(
                    "checkpoint {size} is not a prefix of checkpoint {}",
                    last.size
                ),
            ));
        }
    }
    let first = checkpoints.keys().next().copied().unwrap_or(0);
    story.say.detail(
        "consistent",
        &format!(
            "first checkpoint (size {first}) -> last (size {}), and all {} checkpoints seen",
            last.size,
            checkpoints.len()
        ),
    )?;

    story.say.detail(
        "parties",
        &format!(
            "{} parties called the gateway, each over mutual TLS with its own certificate",
            story.wire.parties_connected()
        ),
    )?;

    Ok(DemoSummary {
        exchanges: exchanges.len() as u64,
        refused,
        log_size: last.size,
        receipts_verified,
        pki: Default::default(),
        verifier_key: String::new(),
    })
}
