//! The exchange use cases, without transport: the reference directory, the request flow, the push
//! flow, grounds, audit reads and policy explanations.
//!
//! Every use case follows the same path (DESIGN.md, "The way one exchange travels"): validate and
//! pseudonymise the input, load the grounds for the subject, decide with the policy, minimise what
//! is released, and write the audit entry together with the state change in one durable append.
//! Only then does it answer, with the receipt. Refusals are appended too.
//!
//! The use cases take and return the prost messages of the wire contract: they are plain data, so
//! the tonic layer stays a thin shell of authentication and status mapping.

mod audit_read;
mod convert;
mod directory;
mod entry;
mod error;
mod explain;
mod grounds;
mod ids;
mod locks;
mod policy_load;
mod push;
mod request;
mod review;
mod subject;
mod subject_cache;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::AuditLog;
use crate::identity::SubjectKey;
use crate::policy::PolicySet;
use crate::release::ReleaseKey;
use crate::store::{PayloadKeys, Store};

pub use error::{ExchangeError, Violation};
pub use policy_load::CurrentPolicy;
pub use review::{text_commitment, weighing_text};
pub use sweep::SweepReport;

/// The authenticated caller of a use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The party, from its verified client certificate.
    pub party: String,
    /// The staff member inside the party, as the party names them.
    pub actor: String,
    /// The caller's trace id, copied into audit entries; may be empty.
    pub trace_id: String,
}

/// The source of "now"; injected so that tests can pin time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Whether `party` has one of `roles` in `policy` (the request's snapshot).
fn has_role(policy: &PolicySet, party: &str, roles: &[&str]) -> bool {
    policy
        .party(party)
        .is_some_and(|p| p.roles.iter().any(|r| roles.contains(&r.as_str())))
}

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Lifetimes in the flows.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a request ticket stays pending.
    pub ticket_ttl: Duration,
    /// How long a released payload is kept when the decision sets no retention obligation.
    pub default_retention: Duration,
    /// Longest wait a `GetResult` may ask for.
    pub max_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ticket_ttl: Duration::from_secs(14 * 86_400),
            default_retention: Duration::from_secs(30 * 86_400),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The gateway's use cases over one policy set, audit log and key set. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    policy: CurrentPolicy,
    log: AuditLog,
    store: Store,
    subjects: SubjectKey,
    release_key: ReleaseKey,
    clock: Clock,
    settings: Settings,
    locks: locks::Stripes,
    /// Whether a retention sweep ran in this process (the first one scans every record).
    swept_once: std::sync::atomic::AtomicBool,
    /// Grounds of recently seen subjects, valid until the next change of a case or consent.
    grounds: subject_cache::SubjectCache<crate::policy::Grounds>,
    /// References of recently looked-up subjects, valid until the next change of a reference.
    references: subject_cache::SubjectCache<Vec<crate::store::ReferenceRecord>>,
    /// Bumped after every ticket change, so `GetResult` can wait without polling.
    ticket_changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway deciding with `policy`, logging to `log`, pseudonymising with `subjects`,
    /// transforming released values with `release_key` and sealing payloads under keys in
    /// `payload_keys` (which `log` must sync first, see [`crate::audit::AuditConfig::sync_first`]).
    pub fn new(
        policy: Arc<PolicySet>,
        log: AuditLog,
        subjects: SubjectKey,
        release_key: ReleaseKey,
        payload_keys: Arc<PayloadKeys>,
        clock: Clock,
        settings: Settings,
    ) -> Self {
        let (ticket_changes, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                store: Store::new(log.clone(), payload_keys),
                policy: CurrentPolicy::new(policy),
                log,
                subjects,
                release_key,
                clock,
                settings,
                locks: locks::Stripes::new(),
                grounds: subject_cache::SubjectCache::default(),
                references: subject_cache::SubjectCache::default(),
                swept_once: std::sync::atomic::AtomicBool::new(false),
                ticket_changes,
            }),
        }
    }

    /// The policy set in force now (a reload swaps it for the requests that follow).
    pub fn policy(&self) -> Arc<PolicySet> {
        self.inner.policy.get()
    }

    /// The audit log.
    pub fn log(&self) -> &AuditLog {
        &self.inner.log
    }

    fn now(&self) -> OffsetDateTime {
        (self.inner.clock)()
    }

    fn notify_ticket_change(&self) {
        self.inner
            .ticket_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }
}
