//! The four Ketenpoort services as tonic handlers: take the authenticated caller from the request
//! extensions, check the message against its limits, call the use case, map its error to a
//! status. Nothing else happens here.

use tonic::{Request, Response, Status};

use crate::exchange::{Caller, Gateway};
use crate::grpc::auth::take_caller;
use crate::grpc::validate::{self, Validate};
use crate::proto::v1 as pb;

/// The tonic implementation of every Ketenpoort service, over one [`Gateway`].
#[derive(Debug, Clone)]
pub struct Services {
    gateway: Gateway,
}

impl Services {
    /// Handlers over `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// The authenticated caller of `request`, once its message is within its limits
    /// (docs/wire-limits.md): bad input is refused here, before any use case runs.
    fn admit<T: Validate>(&self, request: &mut Request<T>) -> Result<Caller, Status> {
        let caller = take_caller(request)?;
        validate::request(request.get_ref(), &self.gateway.policy())?;
        Ok(caller)
    }
}

/// Runs an async use case for the authenticated caller.
macro_rules! handle {
    ($self:ident, $request:ident, $method:ident) => {{
        let mut $request = $request;
        let caller = $self.admit(&mut $request)?;
        $self
            .gateway
            .$method(&caller, $request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }};
}

/// Runs a synchronous use case for the authenticated caller.
macro_rules! handle_sync {
    ($self:ident, $request:ident, $method:ident) => {{
        let mut $request = $request;
        let caller = $self.admit(&mut $request)?;
        $self
            .gateway
            .$method(&caller, $request.into_inner())
            .map(Response::new)
            .map_err(Status::from)
    }};
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for Services {
    async fn register_reference(
        &self,
        request: Request<pb::RegisterReferenceRequest>,
    ) -> Result<Response<pb::RegisterReferenceResponse>, Status> {
        handle!(self, request, register_reference)
    }

    async fn withdraw_reference(
        &self,
        request: Request<pb::WithdrawReferenceRequest>,
    ) -> Result<Response<pb::WithdrawReferenceResponse>, Status> {
        handle!(self, request, withdraw_reference)
    }

    async fn lookup(
        &self,
        request: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupResponse>, Status> {
        handle!(self, request, lookup)
    }

    async fn request_context(
        &self,
        request: Request<pb::RequestContextRequest>,
    ) -> Result<Response<pb::RequestContextResponse>, Status> {
        handle!(self, request, request_context)
    }

    async fn list_incoming(
        &self,
        request: Request<pb::ListIncomingRequest>,
    ) -> Result<Response<pb::ListIncomingResponse>, Status> {
        handle_sync!(self, request, list_incoming)
    }

    async fn respond(
        &self,
        request: Request<pb::RespondRequest>,
    ) -> Result<Response<pb::RespondResponse>, Status> {
        handle!(self, request, respond)
    }

    async fn decline(
        &self,
        request: Request<pb::DeclineRequest>,
    ) -> Result<Response<pb::DeclineResponse>, Status> {
        handle!(self, request, decline)
    }

    async fn get_result(
        &self,
        request: Request<pb::GetResultRequest>,
    ) -> Result<Response<pb::GetResultResponse>, Status> {
        handle!(self, request, get_result)
    }

    async fn share(
        &self,
        request: Request<pb::ShareRequest>,
    ) -> Result<Response<pb::ShareResponse>, Status> {
        handle!(self, request, share)
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        handle_sync!(self, request, list_inbox)
    }

    async fn acknowledge(
        &self,
        request: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        handle!(self, request, acknowledge)
    }
}

#[tonic::async_trait]
impl pb::grounds_server::Grounds for Services {
    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::OpenCaseResponse>, Status> {
        handle!(self, request, open_case)
    }

    async fn close_case(
        &self,
        request: Request<pb::CloseCaseRequest>,
    ) -> Result<Response<pb::CloseCaseResponse>, Status> {
        handle!(self, request, close_case)
    }

    async fn record_consent(
        &self,
        request: Request<pb::RecordConsentRequest>,
    ) -> Result<Response<pb::RecordConsentResponse>, Status> {
        handle!(self, request, record_consent)
    }

    async fn renew_case(
        &self,
        request: Request<pb::RenewCaseRequest>,
    ) -> Result<Response<pb::RenewCaseResponse>, Status> {
        handle!(self, request, renew_case)
    }

    async fn revoke_consent(
        &self,
        request: Request<pb::RevokeConsentRequest>,
    ) -> Result<Response<pb::RevokeConsentResponse>, Status> {
        handle!(self, request, revoke_consent)
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for Services {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let mut request = request;
        self.admit(&mut request)?;
        self.gateway
            .get_checkpoint()
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let mut request = request;
        self.admit(&mut request)?;
        self.gateway
            .get_inclusion_proof(request.into_inner())
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let mut request = request;
        self.admit(&mut request)?;
        self.gateway
            .get_consistency_proof(request.into_inner())
            .map(Response::new)
            .map_err(Status::from)
    }

    async fn get_entries(
        &self,
        request: Request<pb::GetEntriesRequest>,
    ) -> Result<Response<pb::GetEntriesResponse>, Status> {
        handle!(self, request, get_entries)
    }

    async fn search_entries(
        &self,
        request: Request<pb::SearchEntriesRequest>,
    ) -> Result<Response<pb::SearchEntriesResponse>, Status> {
        handle!(self, request, search_entries)
    }

    async fn subject_report(
        &self,
        request: Request<pb::SubjectReportRequest>,
    ) -> Result<Response<pb::SubjectReportResponse>, Status> {
        handle!(self, request, subject_report)
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        handle!(self, request, list_reviews)
    }

    async fn record_review(
        &self,
        request: Request<pb::RecordReviewRequest>,
    ) -> Result<Response<pb::RecordReviewResponse>, Status> {
        handle!(self, request, record_review)
    }
}

#[tonic::async_trait]
impl pb::policies_server::Policies for Services {
    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        handle!(self, request, explain)
    }

    async fn list_agreements(
        &self,
        request: Request<pb::ListAgreementsRequest>,
    ) -> Result<Response<pb::ListAgreementsResponse>, Status> {
        let mut request = request;
        self.admit(&mut request)?;
        Ok(Response::new(self.gateway.list_agreements()))
    }
}
