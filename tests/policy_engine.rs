//! Black-box tests of decide, explain, diff and release on the engine's mini policy set.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use ketenpoort::policy::{
    CaseGround, Check, ExchangeKind, ExchangeRequest, FieldRequest, FieldType, Grounds, PolicySet,
    ReasonCode, SourceFile, Transform, diff,
};
use ketenpoort::release::{
    Address, Record, ReleaseContext, ReleaseKey, ReleasedValue, Value, project,
};
use time::OffsetDateTime;
use time::macros::{date, datetime};

const NOW: OffsetDateTime = datetime!(2026-03-15 10:00 UTC);

fn set() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        PolicySet::load(Path::new("tests/data/policy-mini")).expect("mini set loads")
    })
}

fn request(
    kind: ExchangeKind,
    from: &str,
    to: &str,
    purpose: &str,
    fields: &[&str],
) -> ExchangeRequest {
    ExchangeRequest {
        kind,
        requester: from.into(),
        counterpart: to.into(),
        purpose: purpose.into(),
        subject: "s1".into(),
        fields: fields
            .iter()
            .map(|f| FieldRequest::parse(f).expect("field spec"))
            .collect(),
        justification: None,
        elements: Vec::new(),
    }
}

fn case(parties: &[&str]) -> Grounds {
    Grounds {
        cases: vec![CaseGround {
            id: "ifg-1".into(),
            agreement: "casusoverleg".into(),
            instrument: "pk-ov-1".into(),
            participants: parties.iter().map(|p| p.to_string()).collect(),
            subjects: vec!["s1".into()],
            purpose: "intrafamily-violence".into(),
            opened: datetime!(2026-01-01 0:00 UTC),
            closed: None,
            ends: None,
            renewed: None,
        }],
        consents: vec![],
    }
}

#[test]
fn an_allow_carries_rules_forms_obligations_bases_and_grounds() {
    let req = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &[
            "subject.birth_date",
            "subject.name:pseudonym",
            "care.involvement",
        ],
    );
    let d = set().decide(&req, &case(&["pz-gent", "caw-ov"]), NOW);
    assert_eq!(d.reason, ReasonCode::Permitted);
    let by = d.grant("subject.birth_date").expect("birth date released");
    assert_eq!(
        (by.form, by.rule.to_string().as_str()),
        (Transform::YearMonth, "casusoverleg/police-asks-caw-more")
    );
    // pseudonym asked where initials are allowed: the most revealing form below both.
    assert_eq!(
        d.grant("subject.name").map(|g| g.form),
        Some(Transform::Presence)
    );
    assert_eq!(
        d.grant("care.involvement").map(|g| g.form),
        Some(Transform::Keep)
    );
    assert_eq!(d.obligations.retention_days, Some(30));
    assert_eq!(d.legal_bases, vec!["sw-458ter".to_string()]);
    assert_eq!(d.ground_refs, vec!["case:ifg-1".to_string()]);
    assert_eq!(d.policy_digest, set().digest());
}

#[test]
fn malformed_requests_fail_closed() {
    let g = case(&["pz-gent", "caw-ov"]);
    let unknown = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &["subject.shoe_size"],
    );
    assert_eq!(
        set().decide(&unknown, &g, NOW).reason,
        ReasonCode::EvaluationError
    );
    let bad_form = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &["subject.birth_date:postcode"],
    );
    assert_eq!(
        set().decide(&bad_form, &g, NOW).reason,
        ReasonCode::EvaluationError
    );
}

#[test]
fn the_case_must_hold_both_parties_and_the_subject() {
    let req = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &["subject.birth_date"],
    );
    let mut g = case(&["pz-gent", "cgg-eclips"]);
    assert_eq!(set().decide(&req, &g, NOW).reason, ReasonCode::CaseRequired);
    g.cases[0].participants.push("caw-ov".into());
    g.cases[0].subjects = vec!["s2".into()];
    assert_eq!(set().decide(&req, &g, NOW).reason, ReasonCode::CaseRequired);
    g.cases[0].subjects.push("s1".into());
    assert!(set().decide(&req, &g, NOW).is_allowed());
    g.cases[0].opened = NOW + time::Duration::seconds(1);
    assert_eq!(set().decide(&req, &g, NOW).reason, ReasonCode::CaseRequired);
}

#[test]
fn explain_names_the_first_failed_check_per_rule() {
    let req = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &["subject.birth_date"],
    );
    let e = set().explain(&req, &Grounds::default(), NOW);
    let failed: BTreeMap<String, Option<Check>> = e
        .rules
        .iter()
        .map(|t| (t.rule.to_string(), t.failed))
        .collect();
    assert_eq!(failed["casusoverleg/police-asks-care"], Some(Check::Case));
    assert_eq!(failed["lookup/police-lookup"], Some(Check::Kind));
    assert_eq!(failed["referral/police-refers"], Some(Check::Kind));
    assert_eq!(failed["audit-scope/supervisor-all"], Some(Check::Kind));
    assert_eq!(e.rules.len(), set().rule_count());
    assert_eq!(e.decision, set().decide(&req, &Grounds::default(), NOW));
    let text = e.to_string();
    assert!(
        text.contains("✗ permit casusoverleg/police-asks-care: case:"),
        "{text}"
    );
    assert!(text.contains("decision: deny (CASE_REQUIRED)"), "{text}");
}

#[test]
fn project_releases_only_granted_forms_and_strips_the_rest() {
    let req = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &[
            "subject.birth_date",
            "subject.address",
            "subject.name",
            "care.involvement",
        ],
    );
    let d = set().decide(&req, &case(&["pz-gent", "caw-ov"]), NOW);
    let mut rec = BTreeMap::new();
    rec.insert(
        "subject.birth_date".to_string(),
        Value::Date(date!(1990 - 07 - 04)),
    );
    rec.insert(
        "subject.address".to_string(),
        Value::Address(Address {
            street: "Veldstraat".into(),
            house_number: "1".into(),
            postcode: "9000".into(),
            municipality: "Gent".into(),
        }),
    );
    rec.insert(
        "subject.name".to_string(),
        Value::Text("jan de smet".into()),
    );
    rec.insert("care.involvement".to_string(), Value::Flag(true)); // wrong type: an enum field
    rec.insert("health.diagnosis".to_string(), Value::Text("secret".into())); // not granted
    let key = ReleaseKey::new(&[9; 32]);
    let ctx = ReleaseContext {
        key: &key,
        recipient: "pz-gent",
        now: NOW,
    };
    let p = project(&Record(rec), &d, &ctx);
    let got: BTreeMap<&str, String> = p
        .released
        .iter()
        .map(|(k, (_, v))| (k.as_str(), v.to_string()))
        .collect();
    assert_eq!(got["subject.birth_date"], "1990-07");
    assert_eq!(got["subject.address"], "Gent");
    assert_eq!(got["subject.name"], "J. D. S.");
    assert_eq!(
        p.stripped,
        vec![
            "care.involvement".to_string(),
            "health.diagnosis".to_string()
        ]
    );
    let debug = format!("{p:?}");
    assert!(
        !debug.contains("Gent") && !debug.contains("secret"),
        "{debug}"
    );
    // The commitment binds salt and values.
    let c1 = p.commitment(&[1; 32]);
    assert_ne!(c1, p.commitment(&[2; 32]));
    let mut q = p.clone();
    q.released.insert(
        "subject.name".into(),
        (Transform::Initials, ReleasedValue::Text("J. D.".into())),
    );
    assert_ne!(c1, q.commitment(&[1; 32]));
    assert_eq!(c1, p.clone().commitment(&[1; 32]));
}

#[test]
fn a_denial_projects_nothing() {
    let req = request(
        ExchangeKind::Request,
        "pz-gent",
        "caw-ov",
        "intrafamily-violence",
        &["subject.name"],
    );
    let d = set().decide(&req, &Grounds::default(), NOW);
    let mut rec = BTreeMap::new();
    rec.insert("subject.name".to_string(), Value::Text("x".into()));
    let key = ReleaseKey::new(&[9; 32]);
    let p = project(
        &Record(rec),
        &d,
        &ReleaseContext {
            key: &key,
            recipient: "pz-gent",
            now: NOW,
        },
    );
    assert!(p.released.is_empty());
    assert_eq!(p.stripped, vec!["subject.name".to_string()]);
}

#[test]
fn diff_shows_gained_lost_and_changed_access() {
    let dir = Path::new("tests/data/policy-mini");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read mini file");
    let files = |casus: String| {
        let mut v = vec![
            SourceFile::new("parties.toml", read("parties.toml")),
            SourceFile::new("vocabulary.toml", read("vocabulary.toml")),
            SourceFile::new("catalogue.toml", read("catalogue.toml")),
            SourceFile::new("agreements/casusoverleg.toml", casus),
        ];
        v.push(SourceFile::new(
            "agreements/lookup.toml",
            read("agreements/lookup.toml"),
        ));
        v
    };
    let old_text = read("agreements/casusoverleg.toml");
    let new_text = old_text
        .replacen("form = \"year_month\"", "form = \"keep\"", 1)
        .replacen(
            "field = \"care.involvement\"\nform = \"keep\"",
            "field = \"care.involvement\"\nform = \"presence\"",
            1,
        );
    let old = PolicySet::from_sources("old", files(old_text)).expect("old loads");
    let new = PolicySet::from_sources("new", files(new_text)).expect("new loads");
    let changes = diff(&old, &new, NOW);
    let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    assert!(lines.contains(&"~ request pz-gent → caw-ov for intrafamily-violence: subject.birth_date: year_month → keep".to_string()), "{lines:#?}");
    assert!(lines.contains(&"~ request pz-gent → cgg-eclips for intrafamily-violence: care.involvement: keep → presence".to_string()), "{lines:#?}");
    assert!(diff(&old, &old, NOW).is_empty());
    assert_eq!(
        FieldType::Date.at_least(Transform::Keep, Transform::YearMonth),
        Some(true)
    );
}
