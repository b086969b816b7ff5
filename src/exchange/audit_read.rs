//! Audit reads, scoped per auditor by the policy's `audit` kind.
//!
//! An entry is in the caller's scope when the policy allows kind `audit`, purpose
//! `audit-supervision`, field `audit.entry`, against either party the entry names; the supervisor
//! sees everything. Out-of-scope positions come back as leaf hashes only, so anyone can still
//! recompute the tree. Reads that return entries are themselves appended to the log.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use crate::audit::consulted::ConsultedKey;
use crate::audit::{AuditError, SearchQuery, hash};
use crate::policy::{ExchangeKind, ExchangeRequest, FieldRequest, Grounds, PolicySet};
use crate::proto::v1::{
    AuditEntry, AuditEvent, ConsultedDisclosure, GetCheckpointResponse, GetConsistencyProofRequest,
    GetConsistencyProofResponse, GetEntriesRequest, GetEntriesResponse, GetInclusionProofRequest,
    GetInclusionProofResponse, LogLeaf, ReviewState, SearchEntriesRequest, SearchEntriesResponse,
    SubjectReportLine, SubjectReportRequest, SubjectReportResponse, Verdict, log_leaf,
};

use super::convert::from_timestamp;
use super::{Caller, ExchangeError, Gateway, has_role};
use crate::proto::v1::AccessRegime;
use time::OffsetDateTime;

/// The purpose of every audit read.
const AUDIT_PURPOSE: &str = "audit-supervision";
/// The catalogue field that stands for an entry.
const AUDIT_FIELD: &str = "audit.entry";
/// Roles that see every entry.
const SUPERVISOR_ROLES: [&str; 1] = ["supervisor"];
/// Roles that may see entries naming no party (operational events without personal data).
const AUDITOR_ROLES: [&str; 2] = ["auditor", "supervisor"];
/// Default and largest page of entries.
const DEFAULT_ENTRIES: u64 = 100;
const MAX_ENTRIES: u64 = 1_000;

fn log_error(error: AuditError) -> ExchangeError {
    match error {
        AuditError::OutOfRange { .. } => {
            ExchangeError::invalid("index", "beyond the log's current size")
        }
        other => ExchangeError::Internal(other.to_string()),
    }
}

/// The caller's audit scope under one policy snapshot, with decisions cached per named party
/// for one request.
struct Scope<'a> {
    policy: Arc<PolicySet>,
    now: OffsetDateTime,
    caller: &'a Caller,
    everything: bool,
    auditor: bool,
    parties: HashMap<String, bool>,
}

/// The role of the public prosecutor's parties.
const PROSECUTOR_ROLE: &str = "prosecutor";
/// A SubjectReport's access-request reference. The wire edge has checked its length and
/// characters (`grpc::limits::ACCESS_REQUEST`: a register reference, never a name); a report
/// without one is refused here too, so no report is ever logged without the request it answers.
fn access_request(reference: &str) -> Result<&str, ExchangeError> {
    if reference.is_empty() {
        return Err(ExchangeError::invalid(
            "access_request",
            "required: the reference of the subject's access request",
        ));
    }
    Ok(reference)
}

/// The party whose processing `entry` records: the party that made the call, or for a
/// lookup's consulted-holder entry (which names no requester) the consulted holder the caller may
/// see, when exactly one is opened to it.
fn controller_of(entry: &AuditEntry, consulted: &[ConsultedDisclosure]) -> String {
    if !entry.requester_party.is_empty() {
        return entry.requester_party.clone();
    }
    match consulted {
        [one] => one.party.clone(),
        _ => entry.counterpart_party.clone(),
    }
}

/// The organisation that is the controller for `party` (a DPO's party answers for its
/// organisation), and how a data subject exercises the access right against it: through the COC
/// for the police (LED, Title 2 of the Law of 30 July 2018), through the judicial authority for
/// the public prosecutor, directly (GDPR art. 15) for everyone else.
fn controller_and_regime(policy: &PolicySet, party: &str) -> (String, AccessRegime) {
    let Some(p) = policy.party(party) else {
        return (party.to_owned(), AccessRegime::Unspecified);
    };
    let organisation = if p.organisation.is_empty() {
        p
    } else {
        policy.party(&p.organisation).unwrap_or(p)
    };
    let has = |role: &str| organisation.roles.iter().any(|r| r == role);
    let regime = if has(crate::policy::POLICE_ROLE) {
        AccessRegime::LedIndirectCoc
    } else if has(PROSECUTOR_ROLE) {
        AccessRegime::LedJudicial
    } else {
        AccessRegime::GdprDirect
    };
    (organisation.id.clone(), regime)
}

impl<'a> Scope<'a> {
    fn new(gateway: &Gateway, caller: &'a Caller) -> Self {
        let policy = gateway.policy();
        Self {
            everything: has_role(&policy, &caller.party, &SUPERVISOR_ROLES),
            auditor: has_role(&policy, &caller.party, &AUDITOR_ROLES),
            policy,
            now: gateway.now(),
            caller,
            parties: HashMap::new(),
        }
    }

    fn party_in_scope(&mut self, party: &str) -> bool {
        if let Some(known) = self.parties.get(party) {
            return *known;
        }
        let request = ExchangeRequest {
            kind: ExchangeKind::Audit,
            requester: self.caller.party.clone(),
            counterpart: party.to_owned(),
            purpose: AUDIT_PURPOSE.to_owned(),
            subject: String::new(),
            fields: vec![FieldRequest {
                field: AUDIT_FIELD.to_owned(),
                form: None,
            }],
            justification: None,
            elements: Vec::new(),
        };
        let allowed = self
            .policy
            .decide(&request, &Grounds::default(), self.now)
            .is_allowed();
        self.parties.insert(party.to_owned(), allowed);
        allowed
    }

    /// Whether the caller sees `entry`, and if so the openings of its consulted-holder
    /// commitments that the caller may have (`None`: only its leaf hash).
    fn sees(
        &mut self,
        entry: &AuditEntry,
        key: Option<&ConsultedKey>,
    ) -> Option<Vec<ConsultedDisclosure>> {
        // The holders a lookup consulted are named parties too: their auditors see the lookups
        // that hit their references, each with its own opening only.
        // The entry's sealed list names them (each checked against its commitments), so no
        // party needs trying.
        let mut consulted = Vec::new();
        if let Some(key) = key {
            for (party, salt) in key.openings(entry) {
                if self.everything || self.party_in_scope(&party) {
                    consulted.push(ConsultedDisclosure {
                        salt: salt.to_vec(),
                        party,
                    });
                }
            }
        }
        if self.everything || !consulted.is_empty() {
            return Some(consulted);
        }
        let named: Vec<&String> = [&entry.requester_party, &entry.counterpart_party]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        let visible = if named.is_empty() {
            // Operational events are for every auditor; an event about a subject that names no
            // party (a lookup whose consulted holders are outside the caller's scope, or that
            // consulted none) only for the supervisor.
            let about_subject =
                !entry.subject_pseudonym.is_empty() || !entry.subject_pseudonyms.is_empty();
            self.auditor && !about_subject
        } else {
            named.into_iter().any(|p| self.party_in_scope(p))
        };
        visible.then_some(consulted)
    }
}

impl Gateway {
    /// The tree size of the latest signed checkpoint (its second line).
    fn checkpoint_size(&self, checkpoint: &str) -> Result<u64, ExchangeError> {
        checkpoint
            .lines()
            .nth(1)
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| ExchangeError::Internal("checkpoint has no tree size".into()))
    }

    fn latest(&self) -> Result<(String, u64), ExchangeError> {
        let checkpoint = self.inner.log.checkpoint().map_err(log_error)?;
        let size = self.checkpoint_size(&checkpoint)?;
        Ok((checkpoint, size))
    }

    /// The latest signed checkpoint and the verifier keys.
    pub fn get_checkpoint(&self) -> Result<GetCheckpointResponse, ExchangeError> {
        let (checkpoint, tree_size) = self.latest()?;
        Ok(GetCheckpointResponse {
            checkpoint,
            verifier_keys: self.inner.log.verifier_keys(),
            tree_size,
        })
    }

    /// An inclusion proof; proofs reveal only hashes, so they are not scoped.
    pub fn get_inclusion_proof(
        &self,
        request: GetInclusionProofRequest,
    ) -> Result<GetInclusionProofResponse, ExchangeError> {
        let (_, latest) = self.latest()?;
        let tree_size = if request.tree_size == 0 {
            latest
        } else {
            request.tree_size
        };
        if tree_size > latest {
            return Err(ExchangeError::invalid(
                "tree_size",
                "beyond the latest checkpoint",
            ));
        }
        if request.index >= tree_size {
            return Err(ExchangeError::invalid("index", "not inside the tree"));
        }
        let hashes = self
            .inner
            .log
            .prove_inclusion(request.index, tree_size)
            .map_err(log_error)?;
        let leaf = self.inner.log.leaf_hash(request.index).map_err(log_error)?;
        Ok(GetInclusionProofResponse {
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
            tree_size,
            leaf_hash: leaf.to_vec(),
        })
    }

    /// A consistency proof between two tree sizes.
    pub fn get_consistency_proof(
        &self,
        request: GetConsistencyProofRequest,
    ) -> Result<GetConsistencyProofResponse, ExchangeError> {
        let (_, latest) = self.latest()?;
        let new_size = if request.new_size == 0 {
            latest
        } else {
            request.new_size
        };
        if new_size > latest {
            return Err(ExchangeError::invalid(
                "new_size",
                "beyond the latest checkpoint",
            ));
        }
        if request.old_size > new_size {
            return Err(ExchangeError::invalid("old_size", "larger than new_size"));
        }
        let hashes = self
            .inner
            .log
            .prove_consistency(request.old_size, new_size)
            .map_err(log_error)?;
        Ok(GetConsistencyProofResponse {
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
            new_size,
        })
    }

    /// A leaf as the scope allows: the entry, or only its hash.
    fn scoped_leaf(
        &self,
        scope: &mut Scope<'_>,
        index: u64,
    ) -> Result<(LogLeaf, bool), ExchangeError> {
        let bytes = self.inner.log.entry(index).map_err(log_error)?;
        let entry = AuditEntry::decode(bytes.as_slice())
            .map_err(|_| ExchangeError::Internal(format!("entry {index} does not decode")))?;
        let seen = scope.sees(&entry, self.inner.log.consulted_key());
        let visible = seen.is_some();
        let (content, consulted) = match seen {
            Some(consulted) => (log_leaf::Content::Entry(bytes), consulted),
            None => (
                log_leaf::Content::LeafHash(hash::leaf_hash(&bytes).to_vec()),
                Vec::new(),
            ),
        };
        Ok((
            LogLeaf {
                index,
                content: Some(content),
                consulted,
            },
            visible,
        ))
    }

    /// The entries of one exchange in the caller's scope, by ascending index.
    pub(crate) fn exchange_leaves(
        &self,
        caller: &Caller,
        exchange_id: &str,
    ) -> Result<Vec<LogLeaf>, ExchangeError> {
        let mut scope = Scope::new(self, caller);
        let mut query = SearchQuery {
            exchange_id: Some(exchange_id.to_owned()),
            limit: MAX_ENTRIES as usize,
            ..SearchQuery::default()
        };
        let mut out = Vec::new();
        loop {
            let found = self.inner.log.search(&query).map_err(log_error)?;
            for index in &found {
                let (leaf, visible) = self.scoped_leaf(&mut scope, *index)?;
                if visible {
                    out.push(leaf);
                }
                query.after = Some(*index);
            }
            if found.len() < query.limit {
                return Ok(out);
            }
        }
    }

    /// Logs an audit read that returned entries: who read, how many, which operation.
    pub(crate) async fn log_read(
        &self,
        policy: &PolicySet,
        caller: &Caller,
        operation: &str,
        shown: usize,
        subject: Option<Vec<u8>>,
    ) -> Result<(), ExchangeError> {
        if shown == 0 {
            return Ok(());
        }
        let mut entry = self.entry(policy, caller, operation, AuditEvent::AuditAccess);
        entry.purpose = AUDIT_PURPOSE.to_owned();
        entry.verdict = Verdict::Allow as i32;
        entry.reason_code = "AUDIT_READ".to_owned();
        entry.subject_pseudonym = subject.unwrap_or_default();
        entry.detail = format!("entries_shown={shown}");
        self.commit(&entry, Vec::new()).await.map(|_| ())
    }

    /// A range of the log: entries in scope, leaf hashes for the rest.
    pub async fn get_entries(
        &self,
        caller: &Caller,
        request: GetEntriesRequest,
    ) -> Result<GetEntriesResponse, ExchangeError> {
        let (_, size) = self.latest()?;
        let count = match u64::from(request.count) {
            0 => DEFAULT_ENTRIES,
            n => n.min(MAX_ENTRIES),
        };
        let end = request.start.saturating_add(count).min(size);
        let mut scope = Scope::new(self, caller);
        let mut leaves = Vec::new();
        let mut shown = 0;
        for index in request.start..end {
            let (leaf, visible) = self.scoped_leaf(&mut scope, index)?;
            shown += usize::from(visible);
            leaves.push(leaf);
        }
        self.log_read(&scope.policy, caller, "GetEntries", shown, None)
            .await?;
        Ok(GetEntriesResponse { leaves })
    }

    /// Entries in scope that match every filter.
    pub async fn search_entries(
        &self,
        caller: &Caller,
        request: SearchEntriesRequest,
    ) -> Result<SearchEntriesResponse, ExchangeError> {
        let subject = match request.subject.as_ref() {
            Some(s) if !s.number.is_empty() => {
                Some(self.pseudonymise(Some(s), "subject")?.as_bytes().to_vec())
            }
            _ => None,
        };
        let after = if request.page_token.is_empty() {
            None
        } else {
            Some(
                request
                    .page_token
                    .parse::<u64>()
                    .map_err(|_| ExchangeError::invalid("page_token", "not a page token"))?,
            )
        };
        let limit = match usize::try_from(request.page_size) {
            Ok(0) | Err(_) => DEFAULT_ENTRIES as usize,
            Ok(n) => n.min(MAX_ENTRIES as usize),
        };
        let time = request.time.as_ref();
        let mut query = SearchQuery {
            party: Some(request.party.clone()).filter(|p| !p.is_empty()),
            subject_pseudonym: subject.clone(),
            exchange_id: Some(request.exchange_id.clone()).filter(|e| !e.is_empty()),
            agreement: Some(request.agreement.clone()).filter(|a| !a.is_empty()),
            verdict: Verdict::try_from(request.verdict)
                .ok()
                .filter(|v| *v != Verdict::Unspecified),
            event: None,
            time_from: time
                .and_then(|t| t.start_time.as_ref())
                .and_then(from_timestamp)
                .map(|t| t.unix_timestamp()),
            time_until: time
                .and_then(|t| t.end_time.as_ref())
                .and_then(from_timestamp)
                .map(|t| t.unix_timestamp()),
            after,
            limit,
        };
        // The exchanges in the caller's own review queue (pending) or reviewed by it.
        let review_filter: Option<std::collections::HashSet<String>> =
            match ReviewState::try_from(request.review_state).unwrap_or(ReviewState::Unspecified) {
                ReviewState::Unspecified => None,
                state => {
                    let prefix = if state == ReviewState::Pending {
                        crate::store::review_queue_prefix(&caller.party)
                    } else {
                        crate::store::review_done_prefix(&caller.party)
                    };
                    Some(self.inner.store.ids_under(&prefix)?.into_iter().collect())
                }
            };
        let mut scope = Scope::new(self, caller);
        let mut entries = Vec::new();
        let mut next_page_token = String::new();
        // Out-of-scope matches are skipped; keep searching until the page is full or the log ends.
        'pages: loop {
            let found = self.inner.log.search(&query).map_err(log_error)?;
            let exhausted = found.len() < limit;
            for index in &found {
                query.after = Some(*index);
                if let Some(ids) = &review_filter {
                    let entry = self.inner.log.decoded_entry(*index).map_err(log_error)?;
                    if !ids.contains(&entry.exchange_id) {
                        continue;
                    }
                }
                let (leaf, visible) = self.scoped_leaf(&mut scope, *index)?;
                if visible {
                    entries.push(leaf);
                    if entries.len() == limit {
                        next_page_token = index.to_string();
                        break 'pages;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        self.log_read(
            &scope.policy,
            caller,
            "SearchEntries",
            entries.len(),
            subject,
        )
        .await?;
        Ok(SearchEntriesResponse {
            entries,
            next_page_token,
        })
    }

    /// Every entry about one subject in the caller's scope, to answer that person's access
    /// request (GDPR art. 15, LED art. 14 and 17). Only auditors and the supervisor may ask, naming
    /// the access request; every call is logged, a refused one and one that finds nothing too.
    /// Nothing in the answer counts or hints at entries outside the caller's scope.
    pub async fn subject_report(
        &self,
        caller: &Caller,
        request: SubjectReportRequest,
    ) -> Result<SubjectReportResponse, ExchangeError> {
        let pseudonym = self.pseudonymise(request.subject.as_ref(), "subject")?;
        let access_request = access_request(&request.access_request)?;
        let mut scope = Scope::new(self, caller);
        // The report's own entry: who asked about whom, for which access request.
        let policy = scope.policy.clone();
        let report_entry = |verdict: Verdict, reason: &str, detail: String| {
            let mut entry = self.entry(&policy, caller, "SubjectReport", AuditEvent::AuditAccess);
            entry.purpose = AUDIT_PURPOSE.to_owned();
            entry.verdict = verdict as i32;
            entry.reason_code = reason.to_owned();
            entry.subject_pseudonym = pseudonym.as_bytes().to_vec();
            entry.detail = detail;
            entry
        };
        if !scope.auditor {
            let entry = report_entry(
                Verdict::Deny,
                "ROLE_REQUIRED",
                format!("access_request={access_request}"),
            );
            self.commit(&entry, Vec::new()).await?;
            return Err(ExchangeError::NotAllowed {
                reason: "ROLE_REQUIRED".into(),
            });
        }
        let mut query = SearchQuery {
            subject_pseudonym: Some(pseudonym.as_bytes().to_vec()),
            limit: MAX_ENTRIES as usize,
            ..SearchQuery::default()
        };
        let mut lines = Vec::new();
        loop {
            let found = self.inner.log.search(&query).map_err(log_error)?;
            for index in &found {
                let bytes = self.inner.log.entry(*index).map_err(log_error)?;
                let entry = AuditEntry::decode(bytes.as_slice()).map_err(|_| {
                    ExchangeError::Internal(format!("entry {index} does not decode"))
                })?;
                if let Some(consulted) = scope.sees(&entry, self.inner.log.consulted_key()) {
                    let (controller, regime) =
                        controller_and_regime(&scope.policy, &controller_of(&entry, &consulted));
                    lines.push(SubjectReportLine {
                        index: *index,
                        entry: Some(entry),
                        consulted,
                        controller,
                        regime: regime as i32,
                    });
                }
                query.after = Some(*index);
            }
            if found.len() < query.limit {
                break;
            }
        }
        let entry = report_entry(
            Verdict::Allow,
            "AUDIT_READ",
            format!(
                "entries_shown={};access_request={access_request}",
                lines.len()
            ),
        );
        let receipt = self.commit(&entry, Vec::new()).await?;
        Ok(SubjectReportResponse {
            subject_pseudonym: pseudonym.to_hex(),
            lines,
            audit_index: receipt.index,
        })
    }
}
