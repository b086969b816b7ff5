//! Black-box tests of authentication and the standard services: the wrong CA, no certificate, an
//! unknown party, a missing actor, the per-party rate limit, health and reflection.

mod common;

use common::*;
use ketenpoort::identity::{DevPki, unrelated_client};
use ketenpoort::proto::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

fn agreements() -> tonic::Request<pb::ListAgreementsRequest> {
    req(pb::ListAgreementsRequest {})
}

#[tokio::test]
async fn known_party_with_actor_is_served() {
    let gw = TestGateway::start().await;
    let mut policies = gw.policies("pz-gent").await;
    let list = policies
        .list_agreements(agreements())
        .await
        .expect("served")
        .into_inner();
    assert!(!list.agreements.is_empty());
    assert_eq!(list.policy_digest.len(), 64);
    gw.stop().await;
}

/// A channel the server must refuse: either the handshake fails or the first call does.
async fn assert_refused(channel: Result<tonic::transport::Channel, tonic::transport::Error>) {
    let Ok(channel) = channel else {
        return;
    };
    let mut client = pb::policies_client::PoliciesClient::new(channel);
    let status = client
        .list_agreements(agreements())
        .await
        .expect_err("refused");
    assert_ne!(status.code(), Code::Ok);
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let gw = TestGateway::start().await;
    let impostor = unrelated_client("pz-gent").expect("unrelated CA");
    let channel = gw
        .channel_with(
            Some((
                impostor.client.cert_pem.clone(),
                impostor.client.key_pem.clone(),
            )),
            &gw.ca_pem(),
        )
        .await;
    assert_refused(channel).await;
    gw.stop().await;
}

#[tokio::test]
async fn missing_client_certificate_is_refused() {
    let gw = TestGateway::start().await;
    let channel = gw.channel_with(None, &gw.ca_pem()).await;
    assert_refused(channel).await;
    gw.stop().await;
}

#[tokio::test]
async fn party_unknown_to_the_policy_is_unauthenticated() {
    let gw = TestGateway::start().await;
    let pki = DevPki::open(&gw.pki).expect("pki");
    let stranger = pki.issue_client("not-in-network").expect("issue");
    let channel = gw
        .channel_with(Some((stranger.cert_pem, stranger.key_pem)), &gw.ca_pem())
        .await
        .expect("TLS accepts the CA's certificate");
    let mut client = pb::policies_client::PoliciesClient::new(channel);
    let status = client
        .list_agreements(agreements())
        .await
        .expect_err("unknown party");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "UNKNOWN_PARTY");
    gw.stop().await;
}

#[tokio::test]
async fn missing_actor_is_invalid_argument() {
    let gw = TestGateway::start().await;
    let mut client = gw.policies("pz-gent").await;
    let status = client
        .list_agreements(tonic::Request::new(pb::ListAgreementsRequest {}))
        .await
        .expect_err("no actor");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations[0].field, "ketenpoort-actor");
    gw.stop().await;
}

#[tokio::test]
async fn rate_limit_is_per_party() {
    let gw = TestGateway::start_with(|c| {
        c.limits.requests_per_second = 1;
        c.limits.burst = 2;
    })
    .await;
    let mut police = gw.policies("pz-gent").await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(match police.list_agreements(agreements()).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        });
    }
    assert_eq!(codes[..2], [Code::Ok, Code::Ok]);
    assert_eq!(codes[2], Code::ResourceExhausted);
    // Another party has its own bucket.
    let mut caw = gw.policies("caw-oost-vlaanderen").await;
    caw.list_agreements(agreements()).await.expect("own bucket");
    gw.stop().await;
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let gw = TestGateway::start().await;
    let mut health = HealthClient::new(gw.channel("pz-gent").await);
    for service in ["", "ketenpoort.v1.Exchange"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
    }
    gw.stop().await;
}

#[tokio::test]
async fn reflection_lists_our_services_and_health() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let gw = TestGateway::start().await;
    let mut client = ServerReflectionClient::new(gw.channel("pz-gent").await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("stream")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "ketenpoort.v1.Exchange",
        "ketenpoort.v1.Grounds",
        "ketenpoort.v1.Audit",
        "ketenpoort.v1.Policies",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing in {names:?}"
        );
    }
    gw.stop().await;
}
