//! Who is calling: the party from the verified client certificate, the actor from the request
//! metadata, and a per-party rate limit.
//!
//! This runs as a tonic interceptor in front of every Ketenpoort service (not health or reflection),
//! so handlers find an authenticated [`Caller`] in the request extensions and never look at TLS.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::service::Interceptor;
use tonic::{Code, Request, Status};

use crate::exchange::{Caller, CurrentPolicy, Violation};
use crate::grpc::status::{invalid_argument, with_reason};
use crate::identity::peer::party_id_from_cert_der;

/// Metadata key naming the staff member inside the calling party.
pub const ACTOR_METADATA: &str = "ketenpoort-actor";
/// Optional metadata key with the caller's trace id, copied into audit entries.
pub const TRACE_METADATA: &str = "ketenpoort-trace-id";
/// Longest accepted actor or trace id, in bytes.
const MAX_ID_LEN: usize = 128;
/// Most client certificates whose party is remembered; when full the memory starts over.
const MAX_KNOWN_CERTIFICATES: usize = 1_024;

/// The party named by each recently seen client certificate (its DER bytes). Parsing the X.509
/// certificate on every call cost more than the rest of authentication; a certificate's bytes
/// always name the same party, and TLS has verified the chain before any call gets here.
#[derive(Default)]
struct KnownCertificates(Mutex<HashMap<Vec<u8>, String>>);

impl KnownCertificates {
    fn party(&self, der: &[u8]) -> Result<String, crate::identity::peer::PeerError> {
        if let Some(party) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(der) {
            return Ok(party.clone());
        }
        let party = party_id_from_cert_der(der)?;
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_KNOWN_CERTIFICATES {
            known.clear();
        }
        known.insert(der.to_vec(), party.clone());
        Ok(party)
    }
}

/// The interceptor: authenticates the party, reads the actor, applies the rate limit.
#[derive(Clone)]
pub struct Authenticator {
    policy: CurrentPolicy,
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    certificates: Arc<KnownCertificates>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for the parties of the policy set in force, each allowed `per_second`
    /// calls with `burst`.
    pub fn new(policy: CurrentPolicy, per_second: u32, burst: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            policy,
            limiter: Arc::new(RateLimiter::keyed(quota)),
            certificates: Arc::default(),
        }
    }

    fn authenticate(&self, request: &Request<()>) -> Result<Caller, Status> {
        let certs = request.peer_certs().ok_or_else(|| {
            with_reason(
                Code::Unauthenticated,
                "no client certificate",
                "NO_CLIENT_CERTIFICATE",
            )
        })?;
        let end_entity = certs.first().ok_or_else(|| {
            with_reason(
                Code::Unauthenticated,
                "no client certificate",
                "NO_CLIENT_CERTIFICATE",
            )
        })?;
        let party = self
            .certificates
            .party(end_entity.as_ref())
            .map_err(|error| {
                with_reason(
                    Code::Unauthenticated,
                    error.to_string(),
                    "NO_PARTY_IDENTITY",
                )
            })?;
        if self.policy.get().party(&party).is_none() {
            tracing::info!(%party, "certificate names a party unknown to the policy");
            return Err(with_reason(
                Code::Unauthenticated,
                "the certificate names a party that is not in the network",
                "UNKNOWN_PARTY",
            ));
        }
        if self.limiter.check_key(&party).is_err() {
            return Err(with_reason(
                Code::ResourceExhausted,
                "rate limit exceeded for this party",
                "RATE_LIMITED",
            ));
        }
        let actor = metadata_id(request, ACTOR_METADATA)?.ok_or_else(|| {
            invalid_argument(&[Violation::new(
                ACTOR_METADATA,
                "the metadata must name the actor (staff member) making the call",
            )])
        })?;
        let trace_id = metadata_id(request, TRACE_METADATA)?.unwrap_or_default();
        Ok(Caller {
            party,
            actor,
            trace_id,
        })
    }
}

/// Reads an identifier from metadata: printable ASCII, at most [`MAX_ID_LEN`] bytes, not blank.
fn metadata_id(request: &Request<()>, key: &str) -> Result<Option<String>, Status> {
    let Some(value) = request.metadata().get(key) else {
        return Ok(None);
    };
    let bad = |description: &str| invalid_argument(&[Violation::new(key, description)]);
    let text = value
        .to_str()
        .map_err(|_| bad("must be printable ASCII"))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_ID_LEN {
        return Err(bad("must be at most 128 characters"));
    }
    if !text.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        return Err(bad("must be printable ASCII"));
    }
    Ok(Some(text.to_owned()))
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.authenticate(&request)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The authenticated caller of a request; present on every request that passed the interceptor.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(no_caller)
}

/// Takes the authenticated caller out of a request the handler consumes anyway (no copy).
pub fn take_caller<T>(request: &mut Request<T>) -> Result<Caller, Status> {
    request
        .extensions_mut()
        .remove::<Caller>()
        .ok_or_else(no_caller)
}

fn no_caller() -> Status {
    // Only reachable if a service was mounted without the interceptor: fail closed.
    with_reason(Code::Unauthenticated, "unauthenticated", "NO_CALLER")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_for(party: &str) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::URI(
            format!("urn:ketenpoort:party:{party}").try_into().unwrap(),
        ));
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn known_certificates_name_their_own_party_and_refuse_garbage() {
        let known = KnownCertificates::default();
        let police = cert_for("pz-gent");
        let caw = cert_for("caw-oost-vlaanderen");
        for _ in 0..2 {
            assert_eq!(known.party(&police).unwrap(), "pz-gent");
            assert_eq!(known.party(&caw).unwrap(), "caw-oost-vlaanderen");
        }
        assert!(known.party(b"not a certificate").is_err());
        assert_eq!(
            known.0.lock().unwrap().len(),
            2,
            "failures are not remembered"
        );
    }
}
