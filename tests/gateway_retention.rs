//! Black-box tests of retention: unanswered tickets expire, and payloads are deleted when their
//! retention obligation ends, fetched or not. The clock is advanced by hand, never slept on.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use pb::field_value::Kind;

async fn case_and_ticket(gw: &TestGateway, seq: u32) -> String {
    let mut fjc = gw.grounds("fjc-oost-vlaanderen").await;
    fjc.open_case(req(pb::OpenCaseRequest {
        purpose: "intrafamily-violence".into(),
        participants: vec!["pz-gent".into(), "caw-oost-vlaanderen".into()],
        subjects: vec![pb::Subject {
            number: subject_number(seq),
        }],
        agreement: "casusoverleg-ifg".into(),
        instrument: "pk-ovl-fjc-2023-01".into(),
        ..Default::default()
    }))
    .await
    .expect("case");
    let mut police = gw.exchange("pz-gent").await;
    police
        .request_context(req(pb::RequestContextRequest {
            subject: subject(seq),
            holder: "caw-oost-vlaanderen".into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.birth_date")],
            justification: String::new(),
        }))
        .await
        .expect("request")
        .into_inner()
        .ticket_id
}

async fn state(gw: &TestGateway, ticket: &str) -> i32 {
    let mut police = gw.exchange("pz-gent").await;
    police
        .get_result(req(pb::GetResultRequest {
            ticket_id: ticket.into(),
            wait: None,
        }))
        .await
        .expect("result")
        .into_inner()
        .state
}

#[tokio::test]
async fn unanswered_ticket_expires_and_leaves_the_holders_list() {
    let (clock, reader) = ManualClock::start();
    let gw = TestGateway::start_at(reader, |_| {}).await;
    let ticket = case_and_ticket(&gw, 21).await;
    clock.advance_days(15);
    let report = gw.gateway.sweep_expired().await.expect("sweep");
    assert_eq!(report.tickets_expired, 1);
    assert_eq!(state(&gw, &ticket).await, pb::TicketState::Expired as i32);
    let mut caw = gw.exchange("caw-oost-vlaanderen").await;
    let incoming = caw
        .list_incoming(req(pb::ListIncomingRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(incoming.requests.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn unfetched_answer_is_deleted_when_retention_ends() {
    let (clock, reader) = ManualClock::start();
    let gw = TestGateway::start_at(reader, |_| {}).await;
    let ticket = case_and_ticket(&gw, 22).await;
    let mut caw = gw.exchange("caw-oost-vlaanderen").await;
    caw.respond(req(pb::RespondRequest {
        weighing: None,
        ticket_id: ticket.clone(),
        fields: vec![value_entry(
            "subject.birth_date",
            Kind::Date(pb::Date {
                year: 1985,
                month: 7,
                day: 30,
            }),
        )],
    }))
    .await
    .expect("respond");
    // Within retention the sweep leaves it alone.
    clock.advance_days(10);
    assert_eq!(
        gw.gateway
            .sweep_expired()
            .await
            .expect("sweep")
            .answers_deleted,
        0
    );
    // The casusoverleg agreement keeps payloads 90 days.
    clock.advance_days(81);
    assert_eq!(
        gw.gateway
            .sweep_expired()
            .await
            .expect("sweep")
            .answers_deleted,
        1
    );
    assert_eq!(state(&gw, &ticket).await, pb::TicketState::Expired as i32);
    gw.stop().await;
}

#[tokio::test]
async fn later_sweeps_find_overdue_tickets_through_the_expiry_index() {
    let (clock, reader) = ManualClock::start();
    let gw = TestGateway::start_at(reader, |_| {}).await;
    // The first sweep of a process scans every record; the ones after it read the expiry index.
    gw.gateway.sweep_expired().await.expect("first sweep");
    let expiring = case_and_ticket(&gw, 23).await;
    let answered = case_and_ticket(&gw, 24).await;
    let mut caw = gw.exchange("caw-oost-vlaanderen").await;
    caw.decline(req(pb::DeclineRequest {
        ticket_id: answered.clone(),
        reason: pb::DeclineReason::NothingToAdd as i32,
    }))
    .await
    .expect("decline");
    assert_eq!(
        gw.gateway.sweep_expired().await.expect("sweep"),
        Default::default(),
        "nothing is due yet"
    );
    clock.advance_days(15);
    let report = gw.gateway.sweep_expired().await.expect("sweep");
    assert_eq!(
        report.tickets_expired, 1,
        "only the pending ticket, not the declined one"
    );
    assert_eq!(state(&gw, &expiring).await, pb::TicketState::Expired as i32);
    assert_eq!(
        state(&gw, &answered).await,
        pb::TicketState::Declined as i32
    );
    // Swept once, it leaves the index.
    assert_eq!(
        gw.gateway.sweep_expired().await.expect("sweep"),
        Default::default()
    );
    gw.stop().await;
}
