//! Policy dry runs and the agreement listing: what the policy would decide, and why.

use std::sync::Arc;

use crate::policy::{ExchangeKind, ExchangeRequest, Grounds};
use crate::proto::v1::{
    Agreement, AuditEvent, ExplainRequest, ExplainResponse, ListAgreementsResponse,
};

use super::convert::{from_timestamp, timestamp};
use super::directory::hex_bytes;
use super::entry::{decision_message, record_decision};
use super::request::{field_requests, justification};
use super::{Caller, ExchangeError, Gateway};

impl Gateway {
    /// Explains a hypothetical exchange. Without a subject, the decision assumes no grounds. With a
    /// subject, the recorded cases and consents are used, and the dry run is logged, because it
    /// shows whether grounds exist for that person.
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
        let grounds = match &subject {
            Some(s) => self.grounds_for(s)?,
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
