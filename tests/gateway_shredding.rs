//! Black-box tests of payloads at rest: a payload (the released fields and the justification
//! that travels with them) is stored sealed under a key of its own, and once it is delivered,
//! acknowledged, declined or expired its key is destroyed, so that nothing in any file of the
//! data directory reads as the payload any more, whatever sled or the log's files keep of it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ketenpoort::proto::v1 as pb;
use tonic::Code;

const POLICE: &str = "pz-gent";
const CAW: &str = "caw-oost-vlaanderen";
const OCMW: &str = "ocmw-gent";
const FJC: &str = "fjc-oost-vlaanderen";

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .expect("read file")
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// Checks that the search finds `control` under `data`, and none of `needles`.
fn assert_only_control_readable(data: &Path, control: &str, needles: &[&str], when: &str) {
    assert!(
        !files_containing(data, control).is_empty(),
        "{when}: the search finds what the state keeps in clear"
    );
    for needle in needles {
        let found = files_containing(data, needle);
        assert!(
            found.is_empty(),
            "{when}: {needle:?} is readable in {found:?}"
        );
    }
}

/// The FJC opens a case about subject `seq` with the police and the CAW.
async fn open_case(gw: &TestGateway, seq: u32) {
    gw.grounds(FJC)
        .await
        .open_case(req(pb::OpenCaseRequest {
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into()],
            subjects: vec![pb::Subject {
                number: subject_number(seq),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
            ..Default::default()
        }))
        .await
        .expect("case opens");
}

/// The police ask the CAW for subject `seq`'s name, with `justification`; returns the ticket.
async fn ask_name(gw: &TestGateway, seq: u32, justification: &str) -> String {
    gw.exchange(POLICE)
        .await
        .request_context(req(pb::RequestContextRequest {
            subject: subject(seq),
            holder: CAW.into(),
            purpose: "intrafamily-violence".into(),
            fields: vec![ask("subject.name")],
            justification: justification.into(),
        }))
        .await
        .expect("request inside the case")
        .into_inner()
        .ticket_id
}

/// The CAW answers `ticket` with `name`.
async fn answer(gw: &TestGateway, ticket: &str, name: &str) {
    let answered = gw
        .exchange(CAW)
        .await
        .respond(req(pb::RespondRequest {
            weighing: None,
            ticket_id: ticket.into(),
            fields: vec![text("subject.name", name)],
        }))
        .await
        .expect("respond")
        .into_inner();
    assert_eq!(answered.released.len(), 1);
}

/// The police fetch `ticket`.
async fn fetch(gw: &TestGateway, ticket: &str) -> Result<pb::GetResultResponse, tonic::Status> {
    gw.exchange(POLICE)
        .await
        .get_result(req(pb::GetResultRequest {
            ticket_id: ticket.into(),
            wait: None,
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// The police record subject `seq`'s consent to a referral to the OCMW.
async fn referral_consent(gw: &TestGateway, seq: u32) {
    gw.grounds(POLICE)
        .await
        .record_consent(req(consent_request(seq, "referral-assistance", &[OCMW])))
        .await
        .expect("consent recorded");
}

/// The police refer subject `seq` to the OCMW with `name`, `phone` and `justification`;
/// returns the signal.
async fn refer(gw: &TestGateway, seq: u32, name: &str, phone: &str, justification: &str) -> String {
    gw.exchange(POLICE)
        .await
        .share(req(pb::ShareRequest {
            subject: subject(seq),
            recipient: OCMW.into(),
            purpose: "referral-assistance".into(),
            fields: vec![
                text("subject.name", name),
                text("referral.contact_phone", phone),
            ],
            justification: justification.into(),
            forms: vec![],
        }))
        .await
        .expect("share with consent")
        .into_inner()
        .signal_id
}

/// The OCMW's inbox.
async fn inbox(gw: &TestGateway) -> Result<Vec<pb::Signal>, tonic::Status> {
    gw.exchange(OCMW)
        .await
        .list_inbox(req(pb::ListInboxRequest::default()))
        .await
        .map(|r| r.into_inner().signals)
}

/// The text of field `field` among `released`.
fn released_text(released: &[pb::ReleasedFieldValue], field: &str) -> Option<String> {
    released
        .iter()
        .find(|r| r.field == field)
        .and_then(|r| r.value.as_ref())
        .and_then(|v| match &v.kind {
            Some(pb::field_value::Kind::Text(t)) => Some(t.clone()),
            _ => None,
        })
}

#[tokio::test]
async fn purged_payloads_leave_no_readable_byte_in_the_data_directory() {
    let (clock, reader) = ManualClock::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let data_for_gw = data.clone();
    let gw = TestGateway::start_at(reader, move |c| c.data_dir = data_for_gw).await;

    // Stored in clear by design (a holder's own file reference): proves the search finds what
    // is there.
    let control = "CTRL-file-reference-7731";
    gw.exchange(CAW)
        .await
        .register_reference(req(pb::RegisterReferenceRequest {
            subject: subject(71),
            holder_reference: control.into(),
            ground: Some(consent_ground(&gw.findable(CAW, 71).await)),
        }))
        .await
        .expect("register");

    let mut purged = Vec::new();
    for seq in [71, 72, 73, 74] {
        open_case(&gw, seq).await;
    }
    // Request, answer, delivery.
    let delivered = ask_name(&gw, 71, "SHRED-justification-delivered-ticket").await;
    answer(&gw, &delivered, "SHRED-name-delivered-ticket").await;
    let result = fetch(&gw, &delivered).await.expect("result");
    assert_eq!(
        released_text(&result.released, "subject.name").as_deref(),
        Some("SHRED-name-delivered-ticket")
    );
    purged.extend([
        "SHRED-justification-delivered-ticket",
        "SHRED-name-delivered-ticket",
    ]);
    // Request, decline.
    let declined = ask_name(&gw, 72, "SHRED-justification-declined-ticket").await;
    gw.exchange(CAW)
        .await
        .decline(req(pb::DeclineRequest {
            ticket_id: declined,
            reason: pb::DeclineReason::NothingToAdd as i32,
        }))
        .await
        .expect("decline");
    purged.push("SHRED-justification-declined-ticket");
    // Request, answer, never fetched: deleted when its retention (90 days) ends.
    let unfetched = ask_name(&gw, 73, "SHRED-justification-unfetched-ticket").await;
    answer(&gw, &unfetched, "SHRED-name-unfetched-ticket").await;
    purged.extend([
        "SHRED-justification-unfetched-ticket",
        "SHRED-name-unfetched-ticket",
    ]);
    // Request never answered: expires (14 days).
    ask_name(&gw, 74, "SHRED-justification-unanswered-ticket").await;
    purged.push("SHRED-justification-unanswered-ticket");

    // Share, list, acknowledge.
    referral_consent(&gw, 75).await;
    let acknowledged = refer(
        &gw,
        75,
        "SHRED-name-acknowledged-signal",
        "SHRED-phone-acknowledged-signal",
        "SHRED-justification-acknowledged-signal",
    )
    .await;
    let listed = inbox(&gw).await.expect("inbox");
    let signal = listed
        .iter()
        .find(|s| s.signal_id == acknowledged)
        .expect("listed");
    assert_eq!(
        signal.justification,
        "SHRED-justification-acknowledged-signal"
    );
    assert_eq!(
        released_text(&signal.released, "referral.contact_phone").as_deref(),
        Some("SHRED-phone-acknowledged-signal")
    );
    gw.exchange(OCMW)
        .await
        .acknowledge(req(pb::AcknowledgeRequest {
            signal_id: acknowledged,
        }))
        .await
        .expect("acknowledge");
    purged.extend([
        "SHRED-name-acknowledged-signal",
        "SHRED-phone-acknowledged-signal",
        "SHRED-justification-acknowledged-signal",
    ]);
    // Share, never acknowledged: deleted when its retention (30 days) ends.
    referral_consent(&gw, 76).await;
    refer(
        &gw,
        76,
        "SHRED-name-expired-signal",
        "SHRED-phone-expired-signal",
        "SHRED-justification-expired-signal",
    )
    .await;
    purged.extend([
        "SHRED-name-expired-signal",
        "SHRED-phone-expired-signal",
        "SHRED-justification-expired-signal",
    ]);

    clock.advance_days(91);
    let swept = gw.gateway.sweep_expired().await.expect("sweep");
    assert_eq!(
        (
            swept.tickets_expired,
            swept.answers_deleted,
            swept.signals_deleted
        ),
        (1, 1, 1),
        "{swept:?}"
    );
    assert_eq!(
        fetch(&gw, &unfetched).await.expect("state").state,
        pb::TicketState::Expired as i32
    );

    // Still pending at the stop.
    referral_consent(&gw, 77).await;
    let pending = [
        "SHRED-name-pending-signal",
        "SHRED-phone-pending-signal",
        "SHRED-justification-pending-signal",
    ];
    let pending_id = refer(&gw, 77, pending[0], pending[1], pending[2]).await;

    // While the gateway runs (the log's commits files hold the recent state changes whole), and
    // after it stopped (sled holds the state, and old values for a while).
    let needles: Vec<&str> = purged.iter().chain(&pending).copied().collect();
    assert_only_control_readable(&data, control, &needles, "running");
    gw.stop().await;
    assert_only_control_readable(&data, control, &needles, "stopped");

    // The pending payload is on disk all the same, sealed: a restart opens it.
    let second = TestGateway::start_with(move |c| c.data_dir = data).await;
    let listed = inbox(&second).await.expect("inbox after restart");
    let signal = listed
        .iter()
        .find(|s| s.signal_id == pending_id)
        .expect("the pending signal is still there");
    assert_eq!(signal.justification, pending[2]);
    assert_eq!(
        released_text(&signal.released, "subject.name").as_deref(),
        Some(pending[0])
    );
    assert_eq!(
        released_text(&signal.released, "referral.contact_phone").as_deref(),
        Some(pending[1])
    );
    second.stop().await;
}

#[tokio::test]
async fn a_pending_answer_and_signal_survive_a_restart_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let data_for_first = data.clone();
    let first = TestGateway::start_with(move |c| c.data_dir = data_for_first).await;
    open_case(&first, 81).await;
    let ticket = ask_name(&first, 81, "context for the safety plan").await;
    answer(&first, &ticket, "Marie Peeters").await;
    referral_consent(&first, 82).await;
    let signal_id = refer(
        &first,
        82,
        "Jan Janssens",
        "+32 470 12 34 56",
        "met at the station",
    )
    .await;
    first.stop().await;

    let second = TestGateway::start_with(move |c| c.data_dir = data).await;
    let result = fetch(&second, &ticket).await.expect("result after restart");
    assert_eq!(result.state, pb::TicketState::Answered as i32);
    assert_eq!(
        released_text(&result.released, "subject.name").as_deref(),
        Some("Marie Peeters")
    );
    verify_receipt(&second, result.receipt.as_ref().expect("receipt"));
    let again = fetch(&second, &ticket).await.expect("state");
    assert_eq!(again.state, pb::TicketState::Delivered as i32);
    assert!(again.released.is_empty(), "delivered once");

    let listed = inbox(&second).await.expect("inbox after restart");
    let signal = listed
        .iter()
        .find(|s| s.signal_id == signal_id)
        .expect("listed");
    assert_eq!(signal.justification, "met at the station");
    assert_eq!(
        released_text(&signal.released, "referral.contact_phone").as_deref(),
        Some("+32 470 12 34 56")
    );
    second.stop().await;
}

/// Damages the payload key file in `data` with `damage`, then checks that the pending answer
/// and signal made before are refused with a clear error, and the gateway goes on serving.
async fn with_damaged_key_file(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("var");
    let data_for_first = data.clone();
    let first = TestGateway::start_with(move |c| c.data_dir = data_for_first).await;
    open_case(&first, 91).await;
    let ticket = ask_name(&first, 91, "").await;
    answer(&first, &ticket, "Marie Peeters").await;
    referral_consent(&first, 92).await;
    refer(&first, 92, "Jan Janssens", "+32 470 12 34 56", "").await;
    first.stop().await;

    damage(&data.join("payload.keys"));

    let second = TestGateway::start_with(move |c| c.data_dir = data).await;
    let refused = fetch(&second, &ticket)
        .await
        .expect_err("unreadable answer");
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert_eq!(reason(&refused), "PAYLOAD_UNREADABLE");
    assert!(refused.message().contains(&ticket), "{}", refused.message());
    let refused = inbox(&second).await.expect_err("unreadable signal");
    assert_eq!(refused.code(), Code::DataLoss, "{refused:?}");
    assert_eq!(reason(&refused), "PAYLOAD_UNREADABLE");
    // New exchanges get new keys and work.
    open_case(&second, 93).await;
    let fresh = ask_name(&second, 93, "").await;
    answer(&second, &fresh, "Els Claes").await;
    let result = fetch(&second, &fresh).await.expect("fresh result");
    assert_eq!(
        released_text(&result.released, "subject.name").as_deref(),
        Some("Els Claes")
    );
    second.stop().await;
}

#[tokio::test]
async fn a_lost_key_file_makes_the_payloads_unreadable_with_a_clear_error() {
    with_damaged_key_file(|keys| std::fs::remove_file(keys).expect("remove the key file")).await;
}

#[tokio::test]
async fn an_altered_key_file_makes_the_payloads_unreadable_with_a_clear_error() {
    with_damaged_key_file(|keys| {
        let mut bytes = std::fs::read(keys).expect("key file");
        let slot = 128;
        let mut altered = 0;
        for at in (slot..bytes.len()).step_by(slot) {
            if bytes[at] == 1 {
                // A byte of the key itself.
                bytes[at + 80] ^= 0x5a;
                altered += 1;
            }
        }
        assert_eq!(altered, 2, "one key per pending payload");
        std::fs::write(keys, bytes).expect("write the key file");
    })
    .await;
}
