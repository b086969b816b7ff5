//! Policy dry runs and the agreement listing: what the policy would decide, and why.

use std::sync::Arc;

use crate::policy::{ExchangeKind, ExchangeRequest, Grounds};
use crate::proto::v1::{
    Agreement, AuditEvent, ExplainRequest, ExplainResponse, ListAgreementsResponse, Verdict,
};

use super::convert::{from_timestamp, timestamp};
use super::directory::hex_bytes;
use super::entry::{decision_message, record_decision};
use super::request::{field_requests, justification};
use super::{Caller, ExchangeError, Gateway};

/// The reason a dry run with a subject is refused to a caller that is neither its requester nor
/// the holder asked.
const NOT_A_PARTY: &str = "NOT_A_PARTY";

/// The grounds a dry run may weigh: the cases the caller takes part in and the consents given
/// to one of the exchange's two parties. These are the only ones the decision can rest on, so the
/// answer is the same; dropping the rest keeps everything else about the person out of it.
fn own_grounds(all: &Grounds, caller: &str, requester: &str, counterpart: &str) -> Grounds {
    Grounds {
        cases: all
            .cases
            .iter()
            .filter(|c| c.participants.iter().any(|p| p == caller))
            .cloned()
            .collect(),
        consents: all
            .consents
            .iter()
            .filter(|c| {
                c.recipients
                    .iter()
                    .any(|r| r == requester || r == counterpart)
            })
            .cloned()
            .collect(),
    }
}

impl Gateway {
    /// Explains a hypothetical exchange. Without a subject, the decision assumes no grounds, and
    /// anyone may ask about any two parties. With a subject, only the requester or the holder asked
    /// may ask; the recorded cases and consents it takes part in are used, and the dry run is
    /// logged, because it shows whether grounds exist for that person (a refused one is logged
    /// too).
    pub async fn explain(
        &self,
        caller: &Caller,
        request: ExplainRequest,
    ) -> Result<ExplainResponse, ExchangeError> {
        let policy = self.policy();
        let kind = ExchangeKind::parse(&request.kind).ok_or_else(|| {
            ExchangeError::invalid("kind", "one of lookup, request, share, audit")
        })?;
        let fields = field_requests(&request.fields, "fields")?;
        let elements =
            super::convert::elements(&super::convert::record(&request.elements, "elements")?);
        let justification = justification(&request.justification, policy.max_justification())?;
        let now = match request.time.as_ref() {
            None => self.now(),
            Some(t) => from_timestamp(t)
                .ok_or_else(|| ExchangeError::invalid("time", "not a valid time"))?,
        };
        let requester = if request.requester.is_empty() {
            caller.party.clone()
        } else {
            request.requester.clone()
        };
        let subject = match request.subject.as_ref() {
            Some(s) if !s.number.is_empty() => {
                Some(self.pseudonymise(Some(s), "subject")?.to_hex())
            }
            _ => None,
        };
        // With a subject, the dry run reads that person's recorded grounds: only for an exchange
        // the caller takes part in, as its requester or as the holder asked. Anyone else could
        // otherwise learn whether two other parties share a case or a consent about the person.
        if let Some(subject) = &subject {
            let own = requester == caller.party
                || (matches!(kind, ExchangeKind::Lookup | ExchangeKind::Request)
                    && request.counterpart == caller.party);
            if !own {
                let mut entry = self.entry(&policy, caller, "Explain", AuditEvent::AuditAccess);
                entry.exchange_kind = kind.as_str().to_owned();
                entry.subject_pseudonym = hex_bytes(subject)?;
                entry.purpose = request.purpose.clone();
                entry.verdict = Verdict::Deny as i32;
                entry.reason_code = NOT_A_PARTY.to_owned();
                self.commit(&entry, Vec::new()).await?;
                return Err(ExchangeError::NotAllowed {
                    reason: NOT_A_PARTY.into(),
                });
            }
        }
        let grounds = match &subject {
            Some(s) => Arc::new(own_grounds(
                self.grounds_for(s)?.as_ref(),
                &caller.party,
                &requester,
                &request.counterpart,
            )),
            None => Arc::new(Grounds::default()),
        };
        let exchange = ExchangeRequest {
            kind,
            requester: requester.clone(),
            counterpart: request.counterpart.clone(),
            purpose: request.purpose.clone(),
            subject: subject.clone().unwrap_or_default(),
            fields,
            justification,
            elements,
        };
        let explanation = policy.explain(&exchange, &grounds, now);
        if let Some(subject) = &subject {
            let mut entry = self.entry(&policy, caller, "Explain", AuditEvent::AuditAccess);
            entry.exchange_kind = kind.as_str().to_owned();
            entry.counterpart_party = request.counterpart.clone();
            entry.subject_pseudonym = hex_bytes(subject)?;
            entry.purpose = request.purpose.clone();
            record_decision(&mut entry, &explanation.decision);
            entry.released_fields.clear();
            entry.detail = format!("dry run for requester {requester}");
            self.commit(&entry, Vec::new()).await?;
        }
        Ok(ExplainResponse {
            decision: Some(decision_message(&explanation.decision)),
            trace: explanation.to_string(),
        })
    }

    /// The agreements of the policy in force.
    pub fn list_agreements(&self) -> ListAgreementsResponse {
        let policy = self.policy();
        ListAgreementsResponse {
            agreements: policy
                .agreements()
                .map(|a| Agreement {
                    id: a.id.clone(),
                    title: a.title.clone(),
                    owner: a.owner.clone(),
                    legal_bases: a.legal_basis.clone(),
                    valid_from: a.validity.from.map(timestamp),
                    valid_until: a.validity.until.map(timestamp),
                    description: a.description.clone().unwrap_or_default(),
                    rules: a.rules.iter().map(|r| r.id.clone()).collect(),
                })
                .collect(),
            policy_digest: hex::encode(policy.digest()),
        }
    }
}
