//! The checks of each request message, field by field in the order of the wire contract, so the
//! first violation listed is the first bad field of the message.

use super::{Check, Validate};
use crate::grpc::limits;
use crate::policy::ExchangeKind;
use crate::proto::v1 as pb;

/// Requests without a string or repeated field to check.
macro_rules! nothing_to_check {
    ($($message:ty),* $(,)?) => {
        $(impl Validate for $message {
            fn validate(&self, _check: &mut Check<'_>) {}
        })*
    };
}

nothing_to_check!(
    pb::GetCheckpointRequest,
    pb::GetInclusionProofRequest,
    pb::GetConsistencyProofRequest,
    pb::GetEntriesRequest,
    pb::ListAgreementsRequest,
);

// Exchange.

impl Validate for pb::RegisterReferenceRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.text(
            "holder_reference",
            &self.holder_reference,
            limits::HOLDER_REFERENCE,
        );
        use pb::reference_ground::Ground;
        match self.ground.as_ref().and_then(|g| g.ground.as_ref()) {
            None => c.push(
                "ground",
                "name the ground that lets you disclose that you know the subject",
            ),
            Some(Ground::ConsentId(id)) => {
                c.required("ground.consent_id", id, limits::GATEWAY_ID);
            }
            Some(Ground::CaseId(id)) => {
                c.required("ground.case_id", id, limits::GATEWAY_ID);
            }
            Some(Ground::Agreement(id)) => {
                c.required("ground.agreement", id, limits::POLICY_ID);
            }
        }
    }
}

impl Validate for pb::WithdrawReferenceRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
    }
}

impl Validate for pb::LookupRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.purpose("purpose", &self.purpose);
        c.justification("justification", &self.justification);
    }
}

impl Validate for pb::RequestContextRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.party("holder", &self.holder);
        c.purpose("purpose", &self.purpose);
        c.field_requests("fields", &self.fields, 1);
        c.justification("justification", &self.justification);
    }
}

impl Validate for pb::ListIncomingRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.text("page_token", &self.page_token, limits::GATEWAY_ID);
    }
}

impl Validate for pb::RespondRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("ticket_id", &self.ticket_id, limits::GATEWAY_ID);
        c.field_entries("fields", &self.fields, 0);
        if let Some(w) = &self.weighing {
            c.justification("weighing.danger", &w.danger);
            c.justification("weighing.no_other_way", &w.no_other_way);
            c.justification("weighing.proportionality", &w.proportionality);
        }
    }
}

impl Validate for pb::DeclineRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("ticket_id", &self.ticket_id, limits::GATEWAY_ID);
        c.enumeration::<pb::DeclineReason>("reason", self.reason, true);
    }
}

impl Validate for pb::GetResultRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("ticket_id", &self.ticket_id, limits::GATEWAY_ID);
        c.duration("wait", self.wait.as_ref());
    }
}

impl Validate for pb::ShareRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.party("recipient", &self.recipient);
        c.purpose("purpose", &self.purpose);
        c.field_entries("fields", &self.fields, 1);
        c.justification("justification", &self.justification);
        c.field_requests("forms", &self.forms, 0);
    }
}

impl Validate for pb::ListInboxRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.text("page_token", &self.page_token, limits::GATEWAY_ID);
    }
}

impl Validate for pb::AcknowledgeRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("signal_id", &self.signal_id, limits::GATEWAY_ID);
    }
}

// Grounds.

impl Validate for pb::OpenCaseRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.text("case_id", &self.case_id, limits::GATEWAY_ID);
        c.purpose("purpose", &self.purpose);
        if c.count(
            "participants",
            self.participants.len(),
            1,
            limits::MAX_PARTIES,
        ) {
            for (i, p) in self.participants.iter().enumerate() {
                c.party(format_args!("participants[{i}]"), p);
            }
        }
        if c.count(
            "subjects",
            self.subjects.len(),
            1,
            limits::MAX_CASE_SUBJECTS,
        ) {
            for (i, s) in self.subjects.iter().enumerate() {
                c.subject(&format!("subjects[{i}]"), Some(s), true);
            }
        }
        c.required("agreement", &self.agreement, limits::POLICY_ID);
        c.required("instrument", &self.instrument, limits::POLICY_ID);
    }
}

impl Validate for pb::CloseCaseRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("case_id", &self.case_id, limits::GATEWAY_ID);
    }
}

impl Validate for pb::RenewCaseRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("case_id", &self.case_id, limits::GATEWAY_ID);
    }
}

impl Validate for pb::RecordConsentRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.purpose("purpose", &self.purpose);
        if c.count("recipients", self.recipients.len(), 1, limits::MAX_PARTIES) {
            for (i, p) in self.recipients.iter().enumerate() {
                c.party(format_args!("recipients[{i}]"), p);
            }
        }
        c.required("evidence", &self.evidence, limits::REFERENCE);
        c.timestamp("give_time", self.give_time.as_ref());
        c.timestamp("expire_time", self.expire_time.as_ref());
        c.enumeration::<pb::ConsentGiver>("given_by", self.given_by, false);
        c.required(
            "information_version",
            &self.information_version,
            limits::REFERENCE,
        );
        c.enumeration::<pb::MinorCapacity>("minor", self.minor, false);
    }
}

impl Validate for pb::RevokeConsentRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("consent_id", &self.consent_id, limits::GATEWAY_ID);
        c.subject("subject", self.subject.as_ref(), false);
    }
}

// Audit.

impl Validate for pb::ListReviewsRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.text("page_token", &self.page_token, limits::GATEWAY_ID);
    }
}

impl Validate for pb::RecordReviewRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.required("exchange_id", &self.exchange_id, limits::GATEWAY_ID);
        c.enumeration::<pb::ReviewOutcome>("outcome", self.outcome, false);
        c.justification("note", &self.note);
    }
}

impl Validate for pb::SearchEntriesRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.text("party", &self.party, limits::POLICY_ID);
        c.subject("subject", self.subject.as_ref(), false);
        c.text("exchange_id", &self.exchange_id, limits::EXCHANGE_REF);
        if let Some(t) = &self.time {
            c.timestamp("time.start_time", t.start_time.as_ref());
            c.timestamp("time.end_time", t.end_time.as_ref());
        }
        c.enumeration::<pb::Verdict>("verdict", self.verdict, false);
        c.text("agreement", &self.agreement, limits::POLICY_ID);
        c.text("page_token", &self.page_token, limits::AUDIT_PAGE_TOKEN);
        c.enumeration::<pb::ReviewState>("review_state", self.review_state, false);
    }
}

impl Validate for pb::SubjectReportRequest {
    fn validate(&self, c: &mut Check<'_>) {
        c.subject("subject", self.subject.as_ref(), true);
        c.required(
            "access_request",
            &self.access_request,
            limits::ACCESS_REQUEST,
        );
    }
}

// Policies.

impl Validate for pb::ExplainRequest {
    fn validate(&self, c: &mut Check<'_>) {
        if c.required("kind", &self.kind, limits::FORM) && ExchangeKind::parse(&self.kind).is_none()
        {
            c.push("kind", "one of lookup, request, share, audit");
        }
        if !self.requester.is_empty() {
            c.party("requester", &self.requester);
        }
        c.party("counterpart", &self.counterpart);
        c.purpose("purpose", &self.purpose);
        c.subject("subject", self.subject.as_ref(), false);
        c.field_requests("fields", &self.fields, 0);
        c.justification("justification", &self.justification);
        c.timestamp("time", self.time.as_ref());
        c.field_entries("elements", &self.elements, 0);
    }
}
