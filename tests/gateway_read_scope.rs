//! Every read path tells a caller only what it takes part in: an authorisation matrix of every
//! role (police, social service, care provider, prosecutor, coordinator, a DPO of each kind, the
//! supervisor) against Explain, SubjectReport, GetEntries and SearchEntries, over real mutual TLS.
//! What each caller may see is worked out here from the parties' organisations, independently of
//! the gateway's scope code, and every entry, opening and answer it gets is checked against that.

mod common;

use common::*;
use ketenpoort::proto::v1 as pb;
use prost::Message;
use tonic::Code;

const POLICE: &str = "pz-gent";
const OTHER_POLICE: &str = "pz-aalst";
const CAW: &str = "caw-oost-vlaanderen";
const OCMW: &str = "ocmw-gent";
const FJC: &str = "fjc-oost-vlaanderen";
const CASE_ID: &str = "ifg-2026-001";

/// One caller of each role, and a DPO of each kind of organisation.
const CALLERS: [&str; 14] = [
    POLICE,
    OTHER_POLICE,
    CAW,
    OCMW,
    "cgg-eclips",
    "parket-oost-vlaanderen",
    FJC,
    "dpo-pz-gent",
    "dpo-pz-aalst",
    "dpo-caw-oost-vlaanderen",
    "dpo-ocmw-gent",
    "dpo-cgg-eclips",
    "dpo-fjc-oost-vlaanderen",
    "coc",
];

/// The organisation a party belongs to (as `policies/parties.toml` says): a DPO's is the one it
/// is the DPO of; every other party here is its own organisation.
fn organisation(party: &str) -> &str {
    party.strip_prefix("dpo-").unwrap_or(party)
}

fn is_dpo(party: &str) -> bool {
    party.starts_with("dpo-")
}

/// Whether `caller` may see `entry` in full, and which consulted holders may be opened to it.
fn may_see(caller: &str, entry: &pb::AuditEntry, opened: &[pb::ConsultedDisclosure]) -> bool {
    if caller == "coc" {
        return true;
    }
    if !is_dpo(caller) {
        return false;
    }
    let own = |p: &str| !p.is_empty() && organisation(p) == organisation(caller);
    let operational = entry.requester_party.is_empty()
        && entry.counterpart_party.is_empty()
        && entry.subject_pseudonym.is_empty()
        && entry.subject_pseudonyms.is_empty()
        && entry.consulted_commitments.is_empty();
    operational
        || own(&entry.requester_party)
        || own(&entry.counterpart_party)
        || (!opened.is_empty() && opened.iter().all(|d| own(&d.party)))
}

/// Checks every opening `caller` got: only its own organisation's holders (the supervisor: any).
fn check_openings(caller: &str, opened: &[pb::ConsultedDisclosure], path: &str) {
    for d in opened {
        assert!(
            caller == "coc" || organisation(&d.party) == organisation(caller),
            "{path}: {caller} got the opening of {}",
            d.party
        );
    }
}

/// Traffic about subjects 11 and 12 between different organisations: CAW registers 11 and the
/// Ghent police look it up; the FJC opens a case on 11 with Ghent police and CAW; the OCMW
/// registers 12 and the Aalst police look it up and ask the OCMW for context inside a case.
async fn traffic(gw: &TestGateway) {
    gw.register(CAW, 11).await;
    gw.exchange(POLICE)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(11),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup 11");
    gw.grounds(FJC)
        .await
        .open_case(req(pb::OpenCaseRequest {
            case_id: CASE_ID.into(),
            purpose: "intrafamily-violence".into(),
            participants: vec![POLICE.into(), CAW.into()],
            subjects: vec![pb::Subject {
                number: subject_number(11),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("case");
    gw.register(OCMW, 12).await;
    gw.exchange(OTHER_POLICE)
        .await
        .lookup(req(pb::LookupRequest {
            subject: subject(12),
            purpose: "protection-integrity".into(),
            justification: String::new(),
        }))
        .await
        .expect("lookup 12");
}

fn entry_of(leaf: &pb::LogLeaf) -> Option<pb::AuditEntry> {
    match &leaf.content {
        Some(pb::log_leaf::Content::Entry(bytes)) => {
            Some(pb::AuditEntry::decode(bytes.as_slice()).expect("entry decodes"))
        }
        _ => None,
    }
}

#[tokio::test]
async fn get_entries_and_search_show_each_role_only_its_scope() {
    let gw = TestGateway::start().await;
    // As `ketenpoort serve` does on start: the policy load is the log's first entry.
    assert!(
        ketenpoort::grpc::record_policy_load(&gw.gateway, &policies_dir())
            .await
            .expect("policy load recorded")
    );
    traffic(&gw).await;
    let size = gw.gateway.log().size();
    let mut in_scope_seen = std::collections::HashMap::new();
    for caller in CALLERS {
        let mut audit = gw.audit(caller).await;
        let leaves = audit
            .get_entries(req(pb::GetEntriesRequest {
                start: 0,
                count: u32::try_from(size).expect("small log"),
            }))
            .await
            .expect("GetEntries answers every caller")
            .into_inner()
            .leaves;
        assert_eq!(
            leaves.len() as u64,
            size,
            "{caller}: one position per entry"
        );
        let mut shown = 0;
        for leaf in &leaves {
            check_openings(caller, &leaf.consulted, "GetEntries");
            if let Some(entry) = entry_of(leaf) {
                assert!(
                    may_see(caller, &entry, &leaf.consulted),
                    "GetEntries disclosed entry {} ({}) to {caller}",
                    leaf.index,
                    entry.operation
                );
                shown += 1;
            }
        }
        in_scope_seen.insert(caller, shown);
        // The operational entries (the policy load at start) are for every auditor, as the
        // Audit service's contract says, and for no one else.
        let first = entry_of(&leaves[0]);
        if is_dpo(caller) || caller == "coc" {
            let first = first.expect("an auditor sees the policy load");
            assert_eq!(first.operation, "PolicyLoad");
            assert_eq!(first.event, pb::AuditEvent::PolicyLoad as i32);
        } else {
            assert!(first.is_none(), "{caller} sees the policy load");
        }

        for (what, request) in [
            (
                "subject 11",
                pb::SearchEntriesRequest {
                    subject: subject(11),
                    ..Default::default()
                },
            ),
            (
                "subject 12",
                pb::SearchEntriesRequest {
                    subject: subject(12),
                    ..Default::default()
                },
            ),
            (
                "party CAW",
                pb::SearchEntriesRequest {
                    party: CAW.into(),
                    ..Default::default()
                },
            ),
            (
                "party OCMW",
                pb::SearchEntriesRequest {
                    party: OCMW.into(),
                    ..Default::default()
                },
            ),
        ] {
            let found = audit
                .search_entries(req(request))
                .await
                .expect("SearchEntries answers every caller")
                .into_inner()
                .entries;
            for leaf in &found {
                check_openings(caller, &leaf.consulted, "SearchEntries");
                let entry = entry_of(leaf).unwrap_or_else(|| {
                    panic!("SearchEntries({what}) gave {caller} a hash-only leaf")
                });
                assert!(
                    may_see(caller, &entry, &leaf.consulted),
                    "SearchEntries({what}) disclosed entry {} ({}) to {caller}",
                    leaf.index,
                    entry.operation
                );
            }
            if !is_dpo(caller) && caller != "coc" {
                assert!(found.is_empty(), "{caller} found entries by {what}");
            }
        }
    }
    // The matrix can fail the other way too: the ones who may see something do.
    assert_eq!(
        in_scope_seen["coc"] as u64, size,
        "the supervisor sees everything"
    );
    for dpo in [
        "dpo-pz-gent",
        "dpo-pz-aalst",
        "dpo-caw-oost-vlaanderen",
        "dpo-ocmw-gent",
    ] {
        assert!(
            in_scope_seen[dpo] >= 1,
            "{dpo} sees its own organisation's entries"
        );
    }
    for party in [POLICE, CAW, "parket-oost-vlaanderen", FJC] {
        assert_eq!(in_scope_seen[party], 0, "{party} is no auditor");
    }
    gw.stop().await;
}

async fn subject_report(
    gw: &TestGateway,
    caller: &str,
    seq: u32,
    access_request: &str,
) -> Result<pb::SubjectReportResponse, tonic::Status> {
    gw.audit(caller)
        .await
        .subject_report(req(pb::SubjectReportRequest {
            subject: subject(seq),
            access_request: access_request.into(),
        }))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn subject_reports_are_for_auditors_logged_and_scoped() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    for caller in CALLERS {
        // Without an access request there is no report, and nothing is logged.
        let before = gw.gateway.log().size();
        let status = subject_report(&gw, caller, 11, "")
            .await
            .expect_err("an access request is required");
        assert_eq!(status.code(), Code::InvalidArgument, "{caller}");
        let status = subject_report(&gw, caller, 11, "Jan Janssens, 12 Kerkstraat")
            .await
            .expect_err("a reference, not a name");
        assert_eq!(status.code(), Code::InvalidArgument, "{caller}");
        assert_eq!(gw.gateway.log().size(), before, "bad input is not logged");

        let answer = subject_report(&gw, caller, 11, "AR-2026-0011").await;
        assert_eq!(
            gw.gateway.log().size(),
            before + 1,
            "every SubjectReport call is one audit entry ({caller})"
        );
        if !is_dpo(caller) && caller != "coc" {
            let status = answer.expect_err("only auditors and the supervisor");
            assert_eq!(status.code(), Code::PermissionDenied, "{caller}");
            assert_eq!(reason(&status), "ROLE_REQUIRED");
            continue;
        }
        let report = answer.expect("an auditor gets a report");
        for line in &report.lines {
            let entry = line.entry.as_ref().expect("line entry");
            check_openings(caller, &line.consulted, "SubjectReport");
            assert!(
                may_see(caller, entry, &line.consulted),
                "SubjectReport disclosed entry {} ({}) to {caller}",
                line.index,
                entry.operation
            );
            assert!(
                !line.controller.is_empty(),
                "line {} has a controller",
                line.index
            );
            if entry.operation == "SubjectReport" && entry.requester_party == caller {
                assert_eq!(
                    line.controller,
                    organisation(caller),
                    "a DPO's reads are its organisation's"
                );
            }
            let regime = pb::AccessRegime::try_from(line.regime).expect("known regime");
            let expected = if line.controller.starts_with("pz-") {
                pb::AccessRegime::LedIndirectCoc
            } else if line.controller.starts_with("parket-") {
                pb::AccessRegime::LedJudicial
            } else {
                pb::AccessRegime::GdprDirect
            };
            assert_eq!(
                regime, expected,
                "line {} ({})",
                line.index, line.controller
            );
        }
        // The report's own entry is in the log, names the access request and the subject.
        let own = gw
            .gateway
            .log()
            .decoded_entry(report.audit_index)
            .expect("the report's entry");
        assert_eq!(own.operation, "SubjectReport");
        assert_eq!(own.requester_party, caller);
        assert!(
            own.detail.contains("access_request=AR-2026-0011"),
            "{}",
            own.detail
        );
        assert_eq!(
            hex::encode(&own.subject_pseudonym),
            report.subject_pseudonym
        );
    }

    // The supervisor sees the whole picture; a DPO its own part only.
    let full = subject_report(&gw, "coc", 11, "COC-1").await.expect("coc");
    let ops: Vec<&str> = full
        .lines
        .iter()
        .filter_map(|l| l.entry.as_ref())
        .map(|e| e.operation.as_str())
        .collect();
    for op in ["RegisterReference", "Lookup", "LookupConsulted", "OpenCase"] {
        assert!(
            ops.contains(&op),
            "the supervisor's report has {op}: {ops:?}"
        );
    }
    let caw_dpo = subject_report(&gw, "dpo-caw-oost-vlaanderen", 11, "CAW-1")
        .await
        .expect("caw dpo");
    let consulted = caw_dpo
        .lines
        .iter()
        .find(|l| {
            l.entry
                .as_ref()
                .is_some_and(|e| e.operation == "LookupConsulted")
        })
        .expect("the CAW's DPO sees that its reference was consulted");
    assert_eq!(consulted.controller, CAW);
    assert_eq!(consulted.consulted.len(), 1);
    // Its earlier report is a line of this one, and the CAW is the controller of that read.
    let earlier = caw_dpo
        .lines
        .iter()
        .find(|l| {
            l.entry
                .as_ref()
                .is_some_and(|e| e.operation == "SubjectReport")
        })
        .expect("the DPO's earlier report is about the person too");
    assert_eq!(earlier.controller, CAW);
    assert_eq!(earlier.regime, pb::AccessRegime::GdprDirect as i32);
    let police_dpo = subject_report(&gw, "dpo-pz-gent", 11, "PZ-2")
        .await
        .expect("report");
    let earlier = police_dpo
        .lines
        .iter()
        .find(|l| {
            l.entry
                .as_ref()
                .is_some_and(|e| e.operation == "SubjectReport")
        })
        .expect("the police DPO's earlier report");
    assert_eq!(earlier.controller, POLICE);
    assert_eq!(earlier.regime, pb::AccessRegime::LedIndirectCoc as i32);

    // A DPO whose organisation never touched the person learns nothing, not even that others
    // did: its first report on subject 12 (known to the OCMW and the Aalst police) looks exactly
    // like its first report on someone nobody knows.
    let known_elsewhere = subject_report(&gw, "dpo-cgg-eclips", 12, "AR-1")
        .await
        .expect("report");
    let unknown = subject_report(&gw, "dpo-cgg-eclips", 97, "AR-1")
        .await
        .expect("report");
    assert!(known_elsewhere.lines.is_empty());
    assert_eq!(known_elsewhere.lines, unknown.lines);
    assert_eq!(
        known_elsewhere.encoded_len(),
        unknown.encoded_len(),
        "same size whether or not others know the person"
    );
    gw.stop().await;
}

fn explain_request(requester: &str, counterpart: &str, seq: Option<u32>) -> pb::ExplainRequest {
    pb::ExplainRequest {
        kind: "request".into(),
        requester: requester.into(),
        counterpart: counterpart.into(),
        purpose: "intrafamily-violence".into(),
        subject: seq.and_then(subject),
        fields: vec![ask("safety.risk_level")],
        ..Default::default()
    }
}

#[tokio::test]
async fn explain_with_a_subject_is_only_for_the_two_parties() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    for caller in CALLERS {
        let mut policies = gw.policies(caller).await;
        // A hypothetical without a subject: anyone may ask about any two parties.
        let hypothetical = policies
            .explain(req(explain_request(POLICE, CAW, None)))
            .await
            .unwrap_or_else(|s| panic!("{caller}: a hypothetical is answered: {s:?}"))
            .into_inner();
        assert!(hypothetical.decision.is_some());

        // With subject 11 (Ghent police and CAW share a case about it): only those two.
        let before = gw.gateway.log().size();
        let answer = policies
            .explain(req(explain_request(POLICE, CAW, Some(11))))
            .await;
        assert_eq!(
            gw.gateway.log().size(),
            before + 1,
            "a dry run with a subject is logged, answered or not ({caller})"
        );
        let entry = gw.gateway.log().decoded_entry(before).expect("entry");
        assert_eq!(entry.operation, "Explain");
        assert_eq!(entry.requester_party, caller);
        match caller {
            POLICE | CAW => {
                let answer = answer
                    .expect("the requester and the holder may ask")
                    .into_inner();
                let decision = answer.decision.expect("decision");
                assert_eq!(decision.verdict, pb::Verdict::Allow as i32, "{caller}");
                assert!(decision.ground_refs.iter().any(|g| g.contains(CASE_ID)));
            }
            _ => {
                let status = answer.expect_err("a third party may not ask about the person");
                assert_eq!(status.code(), Code::PermissionDenied, "{caller}");
                assert_eq!(reason(&status), "NOT_A_PARTY");
                assert!(!status.message().contains(CASE_ID));
                assert_eq!(entry.verdict, pb::Verdict::Deny as i32);
            }
        }
        // Naming another requester with the caller as neither party is refused the same way
        // whether or not the person is known (12 is, 98 is not), before anything is looked up.
        if caller != OTHER_POLICE && caller != OCMW {
            let known = policies
                .explain(req(explain_request(OTHER_POLICE, OCMW, Some(12))))
                .await
                .expect_err("not the caller's exchange");
            let unknown = policies
                .explain(req(explain_request(OTHER_POLICE, OCMW, Some(98))))
                .await
                .expect_err("not the caller's exchange");
            assert_eq!(known.code(), unknown.code());
            assert_eq!(known.message(), unknown.message());
            assert_eq!(reason(&known), reason(&unknown));
        }
    }

    // The requester's own dry run weighs only the grounds it takes part in: a case about the same
    // person between other parties is never named, counted or hinted at.
    gw.grounds(FJC)
        .await
        .open_case(req(pb::OpenCaseRequest {
            case_id: "ifg-2026-777".into(),
            purpose: "intrafamily-violence".into(),
            participants: vec![OTHER_POLICE.into(), OCMW.into()],
            subjects: vec![pb::Subject {
                number: subject_number(11),
            }],
            agreement: "casusoverleg-ifg".into(),
            instrument: "pk-ovl-fjc-2023-01".into(),
        }))
        .await
        .expect("second case");
    for (caller, requester, counterpart) in [(POLICE, POLICE, CAW), (CAW, POLICE, CAW)] {
        let answer = gw
            .policies(caller)
            .await
            .explain(req(explain_request(requester, counterpart, Some(11))))
            .await
            .expect("own exchange")
            .into_inner();
        let text = format!("{answer:?}");
        assert!(
            !text.contains("ifg-2026-777"),
            "{caller} learnt of another case: {text}"
        );
        let decision = answer.decision.expect("decision");
        assert_eq!(decision.ground_refs, vec![format!("case:{CASE_ID}")]);
    }
    gw.stop().await;
}
