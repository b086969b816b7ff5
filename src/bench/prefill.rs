//! Filling the benchmark gateway's audit log before the measurement, so that memory and speed
//! are measured with a log of realistic size (the DESIGN target is 1M entries).
//!
//! The entries are synthetic exchanges of realistic size and spread (parties, subjects as
//! pseudonyms, rules, released field names), appended through the gateway's own log handle, so
//! they take the same group-commit path as real ones. They carry no personal data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::audit::{AuditError, AuditLog};
use crate::proto::v1::{AuditEntry, AuditEvent, Obligations, ReleasedField, RuleRef, Verdict};

/// Concurrent appenders: enough for full group commits.
const APPENDERS: u64 = 512;

/// One synthetic exchange entry of realistic size (about 350 bytes encoded), numbered `n`;
/// also the entry of `benches/audit.rs`.
pub fn synthetic_entry(n: u64) -> AuditEntry {
    AuditEntry {
        version: crate::audit::entry::ENTRY_VERSION,
        time: Some(crate::audit::entry::now()),
        event: AuditEvent::Exchange as i32,
        operation: "RequestContext".into(),
        exchange_id: format!("prefill-{n:012}"),
        exchange_kind: "request".into(),
        requester_party: ["pz-gent", "pz-aalst"][(n % 2) as usize].into(),
        actor: format!("agent-{}", n % 113),
        counterpart_party: ["ocmw-gent", "caw-oost-vlaanderen", "cgg-eclips"][(n % 3) as usize]
            .into(),
        subject_pseudonym: ring::digest::digest(&ring::digest::SHA256, &(n % 50_000).to_be_bytes())
            .as_ref()
            .to_vec(),
        purpose: "intrafamily-violence".into(),
        legal_bases: vec!["sw-458ter".into()],
        rules: vec![RuleRef {
            agreement: "casusoverleg-ifg".into(),
            rule: "context-for-case".into(),
            effect: "permit".into(),
        }],
        policy_digest: vec![0x42; 32],
        verdict: Verdict::Allow as i32,
        reason_code: "PERMITTED".into(),
        released_fields: vec![
            ReleasedField {
                field: "birth_date".into(),
                form: "year".into(),
            },
            ReleasedField {
                field: "address".into(),
                form: "municipality".into(),
            },
        ],
        payload_commitment: vec![0x17; 32],
        ground_refs: vec![format!("case:{}", n % 977)],
        trace_id: format!("{n:032x}"),
        obligations: Some(Obligations {
            weighing: false,
            special_category: false,
            retention_days: 30,
            review: false,
            notify: true,
        }),
        ..Default::default()
    }
}

/// Appends `count` synthetic entries to `log`, calling `progress` with the number done now and
/// then (every 100,000).
pub async fn prefill(
    log: &AuditLog,
    count: u64,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<(), AuditError> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..APPENDERS.min(count.max(1)) {
        let (log, next, progress) = (log.clone(), next.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, AuditError>(());
                }
                log.append(&synthetic_entry(n), Vec::new()).await?;
                if (n + 1).is_multiple_of(100_000) {
                    progress(n + 1);
                }
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|_| AuditError::Internal("a prefill task panicked"))??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn prefills_exactly_the_count() {
        let dir = tempfile::tempdir().unwrap();
        let origin = "prefill.ketenpoort.test/audit";
        let signer = crate::audit::Signer::generate(origin).unwrap();
        let log = AuditLog::open(
            crate::audit::AuditConfig::new(dir.path().join("audit"), origin),
            vec![signer],
        )
        .unwrap();
        prefill(&log, 1_234, Arc::new(|_| {})).await.unwrap();
        assert_eq!(log.size(), 1_234);
        let last = log.decoded_entry(1_233).unwrap();
        assert!(last.exchange_id.starts_with("prefill-"));
        let size = prost::Message::encoded_len(&synthetic_entry(999_999));
        assert!((250..500).contains(&size), "{size} bytes");
        log.shutdown().await;
    }
}
