//! Black-box tests of the generic client: the library (`ketenpoort::client`) and the
//! `ketenpoort call` command against a real gateway over mutual TLS on 127.0.0.1.

mod common;

use std::process::Output;

use common::*;
use ketenpoort::client::{
    CallContext, ClientTls, RpcCatalog, call_unary, connect, message_from_json, message_to_json,
    status_to_json,
};
use serde_json::Value;
use tonic::Code;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";

fn actor() -> CallContext {
    CallContext {
        actor: Some("agent-0042".into()),
        ..CallContext::default()
    }
}

/// Calls `rpc` as `party` through the library, returning the JSON response or the JSON error.
async fn call(
    gw: &TestGateway,
    party: &str,
    rpc: &str,
    json: &str,
    context: &CallContext,
) -> Result<Value, (Code, Value)> {
    let catalog = RpcCatalog::new().expect("catalog");
    let method = catalog.find(rpc).expect("rpc exists");
    let request = message_from_json(&method.input(), json).expect("valid json");
    let tls = ClientTls::from_pki_dir(&gw.pki, party).expect("party identity");
    let channel = connect(&format!("https://127.0.0.1:{}", gw.addr.port()), &tls)
        .await
        .expect("connects over mutual TLS");
    call_unary(channel, &method, request, context)
        .await
        .map(|response| message_to_json(&response, false))
        .map_err(|status| (status.code(), status_to_json(&status)))
}

#[tokio::test]
async fn library_calls_health_policies_and_exchange_rpcs() {
    let gw = TestGateway::start().await;

    let health = call(&gw, POLICE, "Health/Check", "{}", &CallContext::default())
        .await
        .expect("health check");
    assert_eq!(health["status"], "SERVING");

    let agreements = call(&gw, POLICE, "ListAgreements", "{}", &actor())
        .await
        .expect("list agreements");
    let list = agreements["agreements"]
        .as_array()
        .expect("agreements array");
    assert!(!list.is_empty(), "{agreements}");

    let consent = format!(
        r#"{{"subject":{{"number":"{}"}},"purpose":"protection-integrity","recipients":["{POLICE}"],"evidence":"form T-7","expireTime":"2026-09-01T00:00:00Z","givenBy":"CONSENT_GIVER_SUBJECT","informationVersion":"folder v1","minor":"MINOR_CAPACITY_ADULT"}}"#,
        subject_number(7)
    );
    let consented = call(&gw, CAW, "RecordConsent", &consent, &actor())
        .await
        .expect("consent to be findable");
    let consent_id = consented["consentId"].as_str().expect("consent id");
    let subject = format!(
        r#"{{"subject":{{"number":"{}"}},"ground":{{"consentId":"{consent_id}"}}}}"#,
        subject_number(7)
    );
    let registered = call(&gw, CAW, "RegisterReference", &subject, &actor())
        .await
        .expect("register");
    assert_eq!(
        registered["subjectPseudonym"].as_str().map(str::len),
        Some(64)
    );
    let lookup = format!(
        r#"{{"subject":{{"number":"{}"}},"purpose":"protection-integrity"}}"#,
        subject_number(7)
    );
    let found = call(
        &gw,
        POLICE,
        "ketenpoort.v1.Exchange/Lookup",
        &lookup,
        &actor(),
    )
    .await
    .expect("lookup");
    assert_eq!(found["hits"][0]["holder"], CAW);
    assert!(found["receipt"]["proof"].as_str().is_some());
    gw.stop().await;
}

#[tokio::test]
async fn errors_carry_code_reason_and_field_violations() {
    let gw = TestGateway::start().await;
    let bad = "85073003329";
    let json = format!(r#"{{"subject":{{"number":"{bad}"}},"purpose":"protection-integrity"}}"#);
    let (code, error) = call(&gw, POLICE, "Lookup", &json, &actor())
        .await
        .expect_err("bad check digits");
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert_eq!(error["error_info"]["domain"], "ketenpoort.eu");
    assert_eq!(
        error["bad_request"]["field_violations"][0]["field"],
        "subject.number"
    );
    assert!(!error.to_string().contains(bad), "no subject number echoed");

    let (code, error) = call(&gw, POLICE, "ListAgreements", "{}", &CallContext::default())
        .await
        .expect_err("no actor");
    assert_eq!(code, Code::InvalidArgument);
    assert_eq!(
        error["bad_request"]["field_violations"][0]["field"],
        "ketenpoort-actor"
    );

    let refused = format!(
        r#"{{"subject":{{"number":"{}"}},"purpose":"criminal-investigation"}}"#,
        subject_number(8)
    );
    let (code, error) = call(&gw, POLICE, "Lookup", &refused, &actor())
        .await
        .expect_err("policy refuses");
    assert_eq!(code, Code::PermissionDenied);
    assert!(
        error["error_info"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    gw.stop().await;
}

/// Runs the `ketenpoort` binary with `args` off the async runtime, so the in-process gateway keeps
/// serving meanwhile.
async fn ketenpoort(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
            .args(&args)
            .output()
            .expect("runs ketenpoort")
    })
    .await
    .expect("join")
}

fn call_args(gw: &TestGateway, rpc: &str, data: &str, actor: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "call".into(),
        rpc.into(),
        "--as".into(),
        POLICE.into(),
        "--pki".into(),
        gw.pki.display().to_string(),
        "--addr".into(),
        format!("https://127.0.0.1:{}", gw.addr.port()),
        "--data".into(),
        data.into(),
    ];
    if let Some(actor) = actor {
        args.extend(["--actor".into(), actor.into()]);
    }
    args
}

#[tokio::test]
async fn call_command_prints_json_and_json_errors() {
    let gw = TestGateway::start().await;

    let out = ketenpoort(call_args(&gw, "Health/Check", "{}", None)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["status"], "SERVING");

    let data_file = gw.data.join("list.json");
    std::fs::write(&data_file, "{}").expect("write request file");
    let out = ketenpoort(call_args(
        &gw,
        "Policies/ListAgreements",
        &format!("@{}", data_file.display()),
        Some("agent-0042"),
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(json["agreements"].as_array().is_some_and(|a| !a.is_empty()));

    let bad = r#"{"subject":{"number":"85073003329"},"purpose":"protection-integrity"}"#;
    let out = ketenpoort(call_args(&gw, "Lookup", bad, Some("agent-0042"))).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let error: Value = serde_json::from_slice(&out.stderr).expect("stderr is JSON");
    assert_eq!(error["code"], "INVALID_ARGUMENT");
    assert_eq!(
        error["bad_request"]["field_violations"][0]["field"],
        "subject.number"
    );

    // A local mistake (a typo in the request) never reaches the gateway and says where it is.
    let out = ketenpoort(call_args(&gw, "Lookup", r#"{"purpos":"x"}"#, Some("a"))).await;
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).expect("stderr is JSON");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("purpos"))
    );
    gw.stop().await;
}

#[test]
fn list_shows_every_rpc_with_its_request_skeleton() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketenpoort"))
        .args(["call", "--list"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let catalog = RpcCatalog::new().expect("catalog");
    assert_eq!(text.lines().count(), catalog.methods().len());
    assert!(text.contains("/ketenpoort.v1.Exchange/RequestContext {"));
    assert!(text.contains("/grpc.health.v1.Health/Check {\"service\":\"string\"}"));
}

#[tokio::test]
async fn connector_refuses_a_gateway_outside_its_ca() {
    let gw = TestGateway::start().await;
    let address = format!("https://127.0.0.1:{}", gw.addr.port());
    let good = ClientTls::from_pki_dir(&gw.pki, POLICE).expect("identity");
    assert!(connect(&address, &good).await.is_ok());

    // Same party id, same certificate, but trusting another CA: the server is not ours.
    let other = tempfile::tempdir().expect("temp dir");
    ketenpoort::identity::DevPki::init(other.path(), &[POLICE], &[] as &[&str]).expect("pki");
    let (cert, key) = ketenpoort::client::tls::party_paths(&gw.pki, POLICE);
    let wrong_root = ClientTls::from_files(&cert, &key, &other.path().join("ca.pem")).expect("id");
    let error = connect(&address, &wrong_root)
        .await
        .expect_err("server certificate not trusted");
    assert!(matches!(
        error,
        ketenpoort::client::ClientError::Connect { .. }
    ));

    // A name the server certificate does not carry is refused too.
    let wrong_name = good.with_server_name("gateway.invalid");
    assert!(connect(&address, &wrong_name).await.is_err());
    gw.stop().await;
}

#[tokio::test]
async fn connector_and_actor_interceptor_serve_generated_clients() {
    use ketenpoort::client::{ActorInterceptor, Connector};
    use ketenpoort::proto::v1 as pb;

    let gw = TestGateway::start().await;
    let connector = Connector::new(format!("https://127.0.0.1:{}", gw.addr.port()), &gw.pki);
    let channel = connector.channel(POLICE).await.expect("connects");
    let interceptor = ActorInterceptor::new("agent-0042").expect("ascii actor");
    let mut policies =
        pb::policies_client::PoliciesClient::with_interceptor(channel.clone(), interceptor);
    let agreements = policies
        .list_agreements(pb::ListAgreementsRequest::default())
        .await
        .expect("actor sent by the interceptor")
        .into_inner();
    assert!(!agreements.agreements.is_empty());

    // Without the interceptor the same call lacks the actor.
    let status = pb::policies_client::PoliciesClient::new(channel)
        .list_agreements(pb::ListAgreementsRequest::default())
        .await
        .expect_err("no actor");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(connector.channel("no-such-party").await.is_err());
    gw.stop().await;
}
