//! The policy set in force, swapped atomically on reload, and the POLICY_LOAD audit entry that
//! records every set the gateway starts deciding with.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::audit::StateChange;
use crate::policy::PolicySet;
use crate::proto::v1::AuditEvent;

use super::{Caller, ExchangeError, Gateway};

/// State key holding the digest of the last recorded policy load, written in the same append as
/// its entry, so a restart with an unchanged set does not log it again.
pub(crate) const POLICY_DIGEST_KEY: &[u8] = b"s/policy/digest";

/// The actor named in entries the gateway writes on its own behalf.
const GATEWAY_ACTOR: &str = "ketenpoort-gateway";

/// The policy set in force, shared by the use cases and the authenticator. Every request reads the
/// current set once; a reload replaces it for the requests that start afterwards.
#[derive(Clone)]
pub struct CurrentPolicy(Arc<RwLock<Arc<PolicySet>>>);

impl std::fmt::Debug for CurrentPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentPolicy").finish_non_exhaustive()
    }
}

impl CurrentPolicy {
    /// A handle starting with `set` in force.
    pub fn new(set: Arc<PolicySet>) -> Self {
        Self(Arc::new(RwLock::new(set)))
    }

    /// The set in force now.
    pub fn get(&self) -> Arc<PolicySet> {
        // A poisoned lock only means a reader panicked; the Arc inside is still whole.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, set: Arc<PolicySet>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = set;
    }
}

impl Gateway {
    /// The shared handle on the policy set in force (the authenticator reads parties through it).
    pub fn current_policy(&self) -> &CurrentPolicy {
        &self.inner.policy
    }

    /// Puts `set`, loaded from `dir`, in force: first appends a POLICY_LOAD entry (policy digest,
    /// directory and agreement count) unless the last recorded load had the same digest, then swaps
    /// the set. If the entry cannot be written the old set stays in force. Returns whether an
    /// entry was appended.
    pub async fn install_policy(
        &self,
        set: Arc<PolicySet>,
        dir: &Path,
    ) -> Result<bool, ExchangeError> {
        // Installs are serialised, so two reloads cannot interleave their check and append.
        let _guard = self.inner.locks.lock(POLICY_DIGEST_KEY).await;
        let digest = set.digest();
        let recorded = self
            .inner
            .log
            .state_get(POLICY_DIGEST_KEY)
            .map_err(|e| ExchangeError::Internal(e.to_string()))?;
        let append = recorded.as_deref() != Some(digest.as_slice());
        if append {
            let caller = Caller {
                party: String::new(),
                actor: GATEWAY_ACTOR.to_owned(),
                trace_id: String::new(),
            };
            let mut entry = self.entry(&set, &caller, "PolicyLoad", AuditEvent::PolicyLoad);
            entry.policy_digest = digest.to_vec();
            entry.detail = format!(
                "policy dir {}, {} agreements",
                dir.display(),
                set.agreements().count()
            );
            let change = StateChange {
                key: POLICY_DIGEST_KEY.to_vec(),
                value: Some(digest.to_vec()),
            };
            self.commit(&entry, vec![change]).await?;
        }
        self.inner.policy.replace(set);
        Ok(append)
    }
}
