//! Helpers for audit entries: encoding, decoding and a JSON view for people.

use prost::Message;
use serde_json::{Value, json};

use super::error::AuditError;
use crate::proto::v1::{AuditEntry, AuditEvent, Verdict};

/// The current entry format version.
pub const ENTRY_VERSION: u32 = 1;

/// Encodes an entry as the Merkle leaf bytes.
pub fn encode(entry: &AuditEntry) -> Vec<u8> {
    entry.encode_to_vec()
}

/// Decodes leaf bytes stored at `index`.
pub fn decode(index: u64, bytes: &[u8]) -> Result<AuditEntry, AuditError> {
    AuditEntry::decode(bytes).map_err(|source| AuditError::Decode { index, source })
}

/// The current time as a protobuf timestamp, for `AuditEntry::time`.
pub fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

/// A JSON rendering of an entry, with bytes in hex and enums by name.
pub fn to_json(entry: &AuditEntry) -> Value {
    let time = entry.time.as_ref().map(|t| {
        time::OffsetDateTime::from_unix_timestamp(t.seconds)
            .ok()
            .and_then(|d| {
                d.replace_nanosecond(t.nanos.clamp(0, 999_999_999) as u32)
                    .ok()
            })
            .and_then(|d| {
                d.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{}s", t.seconds))
    });
    let event = AuditEvent::try_from(entry.event)
        .map(|e| e.as_str_name().to_owned())
        .unwrap_or_else(|_| entry.event.to_string());
    let verdict = Verdict::try_from(entry.verdict)
        .map(|v| v.as_str_name().to_owned())
        .unwrap_or_else(|_| entry.verdict.to_string());
    json!({
        "version": entry.version,
        "time": time,
        "event": event,
        "operation": entry.operation,
        "exchange_id": entry.exchange_id,
        "exchange_kind": entry.exchange_kind,
        "requester_party": entry.requester_party,
        "actor": entry.actor,
        "counterpart_party": entry.counterpart_party,
        "subject_pseudonym": hex::encode(&entry.subject_pseudonym),
        "purpose": entry.purpose,
        "legal_bases": entry.legal_bases,
        "rules": entry.rules.iter().map(|r| json!({
            "agreement": r.agreement, "rule": r.rule, "effect": r.effect
        })).collect::<Vec<_>>(),
        "policy_digest": hex::encode(&entry.policy_digest),
        "verdict": verdict,
        "reason_code": entry.reason_code,
        "released_fields": entry.released_fields.iter().map(|f| json!({
            "field": f.field, "form": f.form
        })).collect::<Vec<_>>(),
        "payload_commitment": hex::encode(&entry.payload_commitment),
        "ground_refs": entry.ground_refs,
        "trace_id": entry.trace_id,
        "obligations": entry.obligations.as_ref().map(|o| json!({
            "retention_days": o.retention_days, "review": o.review, "notify": o.notify
        })),
        "detail": entry.detail,
        "consulted_commitments": entry.consulted_commitments.iter().map(hex::encode).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips_and_renders() {
        let entry = AuditEntry {
            version: ENTRY_VERSION,
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            event: AuditEvent::Exchange as i32,
            exchange_id: "x-1".into(),
            verdict: Verdict::Deny as i32,
            subject_pseudonym: vec![0xab, 0xcd],
            ..Default::default()
        };
        let bytes = encode(&entry);
        assert_eq!(decode(0, &bytes).unwrap(), entry);
        assert!(
            decode(3, b"\xff\xff")
                .unwrap_err()
                .to_string()
                .contains("entry 3")
        );
        let j = to_json(&entry);
        assert_eq!(j["verdict"], "VERDICT_DENY");
        assert_eq!(j["subject_pseudonym"], "abcd");
        assert_eq!(j["time"], "2023-11-14T22:13:20Z");
    }
}
