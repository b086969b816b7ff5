//! Black-box tests of authentication and the standard services: certificates refused in the TLS
//! handshake (none, another CA, expired, not yet valid, not for client auth), an unknown party, a missing actor, the per-party rate limit, health and reflection.

mod common;

use common::*;
use ketenpoort::grpc::tls::HandshakeRefusal;
use ketenpoort::identity::{CertificateFlaw, DevPki, PemPair, unrelated_client};
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

/// A client the server must refuse during the TLS handshake: either connecting fails, or the
/// first call fails in the client's transport. Either way no gRPC status of ours reaches it (no
/// `ErrorInfo`), and the refusal is counted under `expected`.
async fn assert_refused_at_handshake(
    gw: &TestGateway,
    identity: Option<(String, String)>,
    expected: HandshakeRefusal,
) {
    let before = gw.handshakes.refused(expected);
    if let Ok(channel) = gw.channel_with(identity, &gw.ca_pem()).await {
        let mut client = pb::policies_client::PoliciesClient::new(channel);
        let status = client
            .list_agreements(agreements())
            .await
            .expect_err("refused");
        assert_ne!(status.code(), Code::Ok);
        assert!(
            status.get_error_details().error_info().is_none(),
            "{expected:?}: the gateway answered with a status: {status:?}"
        );
    }
    // The server counts the refusal when its side of the handshake ends, which may be just
    // after the client gave up: wait for it, but not forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.handshakes.refused(expected) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "{expected:?} not counted: {:?}",
            gw.handshakes.counts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn pair(pem: PemPair) -> Option<(String, String)> {
    Some((pem.cert_pem, pem.key_pem))
}

#[tokio::test]
async fn bad_client_certificates_are_refused_in_the_handshake_and_counted() {
    let gw = TestGateway::start().await;
    let pki = DevPki::open(&gw.pki).expect("dev PKI");
    let impostor = unrelated_client("pz-gent").expect("unrelated CA");
    assert_refused_at_handshake(&gw, None, HandshakeRefusal::NoCertificate).await;
    assert_refused_at_handshake(&gw, pair(impostor.client), HandshakeRefusal::UnknownIssuer).await;
    for (flaw, refusal) in [
        (CertificateFlaw::Expired, HandshakeRefusal::Expired),
        (CertificateFlaw::NotYetValid, HandshakeRefusal::NotYetValid),
        (
            CertificateFlaw::NotForClientAuth,
            HandshakeRefusal::NotForClientAuth,
        ),
    ] {
        let cert = pki
            .issue_flawed_client("pz-gent", flaw)
            .expect("flawed client certificate");
        assert_refused_at_handshake(&gw, pair(cert), refusal).await;
    }
    // A valid client still gets in, and was never counted.
    let mut policies = gw.policies("pz-gent").await;
    policies
        .list_agreements(agreements())
        .await
        .expect("served");
    assert_eq!(gw.handshakes.total(), 5, "{:?}", gw.handshakes.counts());
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
