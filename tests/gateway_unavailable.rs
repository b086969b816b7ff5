//! Fail closed: when the audit log refuses appends, nothing is released (UNAVAILABLE) and health
//! turns NOT_SERVING.

mod common;

use std::time::Duration;

use common::*;
use ketenpoort::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

#[tokio::test]
async fn closed_audit_log_means_unavailable_and_not_serving() {
    let gw = TestGateway::start().await;
    let mut health = HealthClient::new(gw.channel("pz-gent").await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "ketenpoort.v1.Exchange".into(),
        })
        .await
        .expect("watch")
        .into_inner();

    let consent = gw.findable("caw-oost-vlaanderen", 31).await;
    gw.gateway.log().shutdown().await;

    let mut caw = gw.exchange("caw-oost-vlaanderen").await;
    let status = caw
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(31),
            holder_reference: String::new(),
            ground: Some(consent_ground(&consent)),
        }))
        .await
        .expect_err("nothing without the audit log");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "AUDIT_UNAVAILABLE");

    let saw_not_serving = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(update) = watch.message().await.expect("stream") {
            if update.status == ServingStatus::NotServing as i32 {
                return true;
            }
        }
        false
    })
    .await
    .expect("health changes before the deadline");
    assert!(saw_not_serving);
    drop(watch);
    drop(health);
    drop(caw);
    gw.stop().await;
}
