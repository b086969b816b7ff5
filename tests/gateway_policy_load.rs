//! Policy loads are audit events: the set the gateway starts with is recorded once (not again when
//! unchanged), a reload (what SIGHUP calls) refuses a broken set and keeps the old one, and a good
//! set is recorded and then decides the next request.

mod common;

use common::*;
use ketenpoort::grpc::{self, LaunchError};
use ketenpoort::proto::v1 as pb;
use prost::Message;
use tonic::Code;

fn last_entry(gw: &TestGateway) -> pb::AuditEntry {
    let size = gw.gateway.log().size();
    let bytes = gw.gateway.log().entry(size - 1).expect("last entry");
    pb::AuditEntry::decode(bytes.as_slice()).expect("decodes")
}

async fn police_lookup(gw: &TestGateway) -> Result<pb::LookupResponse, tonic::Status> {
    gw.exchange("pz-gent")
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(31),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn policy_loads_are_recorded_and_reloads_swap_only_good_sets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let for_config = policies.clone();
    let gw = TestGateway::start_with(move |c| c.policies = for_config).await;

    // Start: the set in force is recorded with its digest, directory and agreement count.
    assert!(
        grpc::record_policy_load(&gw.gateway, &policies)
            .await
            .expect("recorded")
    );
    let first = gw.gateway.policy();
    let entry = last_entry(&gw);
    assert_eq!(entry.event, pb::AuditEvent::PolicyLoad as i32);
    assert_eq!(entry.policy_digest, first.digest().to_vec());
    assert!(entry.detail.contains(&policies.display().to_string()));
    let count = first.agreements().count();
    assert!(entry.detail.contains(&format!("{count} agreements")));
    assert!(entry.requester_party.is_empty(), "no party did this");

    // The same set again (a restart without change) adds nothing.
    let size = gw.gateway.log().size();
    assert!(
        !grpc::record_policy_load(&gw.gateway, &policies)
            .await
            .expect("checked")
    );
    assert_eq!(gw.gateway.log().size(), size);
    assert!(police_lookup(&gw).await.is_ok(), "lookups allowed");

    // A broken set is refused whole: no entry, the old set stays and still decides.
    let broken = policies.join("agreements").join("kapot.toml");
    std::fs::write(&broken, "id = [unclosed").expect("write broken agreement");
    let size = gw.gateway.log().size();
    let error = grpc::reload_policies(&gw.gateway, &policies)
        .await
        .expect_err("broken set refused");
    assert!(matches!(error, LaunchError::Policy { .. }), "{error}");
    assert_eq!(gw.gateway.log().size(), size);
    assert_eq!(gw.gateway.policy().digest(), first.digest());
    assert!(police_lookup(&gw).await.is_ok(), "old set still in force");

    // A good new set without the lookup agreement: recorded, then in force for the next call.
    std::fs::remove_file(&broken).expect("remove broken");
    for lookups in ["referentie-opvraging.toml", "referentie-gezondheid.toml"] {
        std::fs::remove_file(policies.join("agreements").join(lookups)).expect("remove agreement");
    }
    assert!(
        grpc::reload_policies(&gw.gateway, &policies)
            .await
            .expect("good set loads")
    );
    let second = gw.gateway.policy();
    assert_ne!(second.digest(), first.digest());
    let entry = last_entry(&gw);
    assert_eq!(entry.event, pb::AuditEvent::PolicyLoad as i32);
    assert_eq!(entry.policy_digest, second.digest().to_vec());
    assert!(entry.detail.contains(&format!("{} agreements", count - 2)));
    let status = police_lookup(&gw)
        .await
        .expect_err("no lookup agreement any more");
    assert_eq!(status.code(), Code::PermissionDenied);
    // The refusal was decided, and logged, under the new set.
    assert_eq!(last_entry(&gw).policy_digest, second.digest().to_vec());
    gw.stop().await;
}

/// The digest of the last recorded load survives a restart, so an unchanged set is not logged
/// again, and a changed one is.
#[tokio::test]
async fn restart_records_a_policy_load_only_when_the_set_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let data = dir.path().join("var");
    let start = |policies: std::path::PathBuf, data: std::path::PathBuf| {
        TestGateway::start_with(move |c| {
            c.policies = policies;
            c.data_dir = data;
        })
    };
    let gw = start(policies.clone(), data.clone()).await;
    assert!(
        grpc::record_policy_load(&gw.gateway, &policies)
            .await
            .expect("recorded")
    );
    gw.stop().await;

    let gw = start(policies.clone(), data.clone()).await;
    assert!(
        !grpc::record_policy_load(&gw.gateway, &policies)
            .await
            .expect("checked")
    );
    gw.stop().await;

    std::fs::remove_file(
        policies
            .join("agreements")
            .join("noodtoestand-vermissing.toml"),
    )
    .expect("remove agreement");
    let gw = start(policies.clone(), data.clone()).await;
    assert!(
        grpc::record_policy_load(&gw.gateway, &policies)
            .await
            .expect("recorded")
    );
    assert_eq!(last_entry(&gw).event, pb::AuditEvent::PolicyLoad as i32);
    gw.stop().await;
}
