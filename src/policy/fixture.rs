//! Policy fixtures (`tests/*.toml`): a request, grounds, a pinned time and the expected
//! decision. `ketenpoort policy test` and the test suite run them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use time::OffsetDateTime;

use super::decision::{Decision, Verdict};
use super::diagnostic::{LoadError, Problem, SourceFile};
use super::model::Effect;
use super::raw::{Bound, Document, RawCase, instant};
use super::request::{
    Capacity, CaseGround, ConsentGiver, ConsentGround, ExchangeKind, ExchangeRequest, FieldRequest,
    Grounds,
};
use super::set::PolicySet;

/// What a fixture expects; absent parts are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The reason code, if pinned.
    pub reason: Option<String>,
    /// The exact released fields and forms, if pinned.
    pub fields: Option<BTreeMap<String, String>>,
    /// Exactly these permits matched (`agreement/rule`), if pinned.
    pub rules: Option<Vec<String>>,
    /// Pinned obligations: retention days, review, notify (each optional).
    pub obligations: Option<ExpectedObligations>,
    /// The legal element an `ELEMENT_MISSING` refusal names, if pinned.
    pub missing: Option<String>,
}

/// Pinned obligations; each part is checked only when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedObligations {
    /// `Some(x)`: the retention must be `x` (`Some(None)` is not expressible in TOML).
    pub retention_days: Option<u32>,
    /// The review flag.
    pub review: Option<bool>,
    /// The notify flag.
    pub notify: Option<bool>,
    /// Whether the decision carries a use restriction (art. 458ter §2).
    pub use_restriction: Option<bool>,
    /// Whether the holder must write a weighing (necessity).
    pub weighing: Option<bool>,
}

/// One fixture case.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The case name.
    pub name: String,
    /// `file:line:column` of the case.
    pub location: String,
    /// The pinned decision time.
    pub now: OffsetDateTime,
    /// The request.
    pub request: ExchangeRequest,
    /// The grounds.
    pub grounds: Grounds,
    /// The expected outcome.
    pub expect: Expectation,
}

/// Reads every `*.toml` under `dir` (sorted by name) as fixture files.
pub fn load_fixtures(dir: &Path) -> Result<Vec<Fixture>, LoadError> {
    let label = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        dir: label.clone(),
        problems: vec![Problem::general(
            &label,
            format!("cannot read fixtures: {e}"),
        )],
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(t) => files.push(SourceFile::new(p.display().to_string(), t)),
            Err(e) => problems.push(Problem::general(p.display().to_string(), e.to_string())),
        }
    }
    let mut out = Vec::new();
    for f in &files {
        out.extend(parse_fixtures(f, &mut problems));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(LoadError {
            dir: label,
            problems,
        })
    }
}

/// A request to explain (`policy explain --request FILE`): a fixture case whose `name`, `now`
/// and `[case.expect]` may be left out.
#[derive(Debug, Clone)]
pub struct RequestCase {
    /// `file:line:column` of the case.
    pub location: String,
    /// The case's `now`, if it pins one.
    pub now: Option<OffsetDateTime>,
    /// The request.
    pub request: ExchangeRequest,
    /// The grounds.
    pub grounds: Grounds,
}

/// A case as parsed, before the fixture-only keys are required.
struct ParsedCase {
    name: Option<String>,
    location: String,
    now: Option<OffsetDateTime>,
    request: ExchangeRequest,
    grounds: Grounds,
    expect: Option<Expectation>,
}

/// Parses the cases of one fixture file, reporting problems.
pub fn parse_fixtures(f: &SourceFile, problems: &mut Vec<Problem>) -> Vec<Fixture> {
    parse_cases(f, problems, true)
        .into_iter()
        .filter_map(|c| {
            Some(Fixture {
                name: c.name?,
                location: c.location,
                now: c.now?,
                request: c.request,
                grounds: c.grounds,
                expect: c.expect?,
            })
        })
        .collect()
}

/// Parses a request file for `policy explain`: fixture cases in which `name`, `now` and
/// `[case.expect]` are optional. Problems point into the file exactly as written.
pub fn parse_requests(f: &SourceFile, problems: &mut Vec<Problem>) -> Vec<RequestCase> {
    parse_cases(f, problems, false)
        .into_iter()
        .map(|c| RequestCase {
            location: c.location,
            now: c.now,
            request: c.request,
            grounds: c.grounds,
        })
        .collect()
}

/// Parses `[[case]]` tables; `fixture` requires `name`, `now` and `[case.expect]`.
fn parse_cases(f: &SourceFile, problems: &mut Vec<Problem>, fixture: bool) -> Vec<ParsedCase> {
    let Some(mut doc) = Document::parse(f, problems) else {
        return Vec::new();
    };
    let cases = doc.take_items::<RawCase>("case", problems);
    doc.reject_rest(&["[[case]]"], problems);
    let mut out = Vec::new();
    for c in cases {
        let span = c.span();
        let c = c.into_inner();
        if fixture {
            let missing = [
                ("name", c.name.is_none()),
                ("now", c.now.is_none()),
                ("expect", c.expect.is_none()),
            ]
            .into_iter()
            .find(|(_, absent)| *absent);
            if let Some((key, _)) = missing {
                problems.push(Problem::at(
                    f,
                    span,
                    format!("missing field `{key}`"),
                    Some("add the required key".to_owned()),
                ));
                continue;
            }
        }
        let before = problems.len();
        let mut time = |d: &toml::Spanned<toml::value::Datetime>, b: Bound| {
            instant(d.get_ref(), b).unwrap_or_else(|e| {
                problems.push(Problem::at(
                    f,
                    d.span(),
                    format!("malformed date: {e}"),
                    None,
                ));
                OffsetDateTime::UNIX_EPOCH
            })
        };
        let now = c.now.as_ref().map(|d| time(d, Bound::Start));
        let grounds = Grounds {
            cases: c
                .grounds
                .case
                .iter()
                .map(|g| CaseGround {
                    id: g.id.clone(),
                    agreement: g.agreement.clone(),
                    instrument: g.instrument.clone(),
                    participants: g.participants.clone(),
                    subjects: g.subjects.clone(),
                    purpose: g.purpose.clone(),
                    opened: time(&g.opened, Bound::Start),
                    closed: g.closed.as_ref().map(|d| time(d, Bound::End)),
                    ends: g.ends.as_ref().map(|d| time(d, Bound::End)),
                    renewed: g.renewed.as_ref().map(|d| time(d, Bound::Start)),
                })
                .collect(),
            consents: c
                .grounds
                .consent
                .iter()
                .map(|g| ConsentGround {
                    id: g.id.clone(),
                    subject: g.subject.clone(),
                    purpose: g.purpose.clone(),
                    recipients: g.recipients.clone(),
                    given: time(&g.given, Bound::Start),
                    expires: time(&g.expires, Bound::End),
                    revoked: g.revoked.as_ref().map(|d| time(d, Bound::Start)),
                    evidence: g.evidence.clone(),
                    given_by: g
                        .given_by
                        .as_ref()
                        .and_then(|s| ConsentGiver::parse(s.get_ref()))
                        .unwrap_or_default(),
                    capacity: g
                        .minor
                        .as_ref()
                        .and_then(|s| Capacity::parse(s.get_ref()))
                        .unwrap_or_default(),
                    parents_also: g.parents_also == Some(true),
                })
                .collect(),
        };
        for g in &c.grounds.consent {
            if let Some(x) = &g.given_by
                && ConsentGiver::parse(x.get_ref()).is_none()
            {
                problems.push(Problem::at(
                    f,
                    x.span(),
                    format!("unknown consent giver `{}`", x.get_ref()),
                    Some("use subject, parent, guardian or legal-representative".to_owned()),
                ));
            }
            if let Some(x) = &g.minor
                && Capacity::parse(x.get_ref()).is_none()
            {
                problems.push(Problem::at(
                    f,
                    x.span(),
                    format!("unknown capacity `{}`", x.get_ref()),
                    Some("use adult, minor-presumed-capable, minor-assessed-capable or minor-not-capable".to_owned()),
                ));
            }
        }
        let kind = ExchangeKind::parse(c.request.kind.get_ref()).unwrap_or_else(|| {
            problems.push(Problem::at(
                f,
                c.request.kind.span(),
                format!("unknown exchange kind `{}`", c.request.kind.get_ref()),
                Some("use lookup, request, share or audit".to_owned()),
            ));
            ExchangeKind::Lookup
        });
        let mut fields = Vec::new();
        for s in &c.request.fields {
            match FieldRequest::parse(s.get_ref()) {
                Ok(fr) => fields.push(fr),
                Err(e) => problems.push(Problem::at(f, s.span(), e.to_string(), None)),
            }
        }
        let expect = c.expect.map(|e| {
            let verdict = match e.decision.get_ref().as_str() {
                "allow" => Verdict::Allow,
                "deny" => Verdict::Deny,
                other => {
                    problems.push(Problem::at(
                        f,
                        e.decision.span(),
                        format!("expect.decision must be allow or deny, not `{other}`"),
                        None,
                    ));
                    Verdict::Deny
                }
            };
            if let Some(r) = &e.reason
                && super::decision::ReasonCode::parse(r.get_ref()).is_none()
            {
                problems.push(Problem::at(
                    f,
                    r.span(),
                    format!("unknown reason code `{}`", r.get_ref()),
                    None,
                ));
            }
            Expectation {
                verdict,
                reason: e.reason.map(|r| r.into_inner()),
                fields: e.fields,
                rules: e.rules,
                obligations: e.obligations.map(|o| ExpectedObligations {
                    retention_days: o.retention_days,
                    review: o.review,
                    notify: o.notify,
                    use_restriction: o.use_restriction,
                    weighing: o.weighing,
                }),
                missing: e.missing,
            }
        });
        if problems.len() > before {
            continue;
        }
        let (line, col) = f.line_col(span.start);
        out.push(ParsedCase {
            name: c.name,
            location: format!("{}:{line}:{col}", f.name),
            now,
            request: ExchangeRequest {
                kind,
                requester: c.request.requester,
                counterpart: c.request.counterpart,
                purpose: c.request.purpose,
                subject: c.request.subject,
                fields,
                justification: c.request.justification,
                elements: c.request.elements.into_iter().collect(),
            },
            grounds,
            expect,
        });
    }
    out
}

impl Fixture {
    /// Runs the case; on failure returns a diff of expected and actual, one line per mismatch.
    pub fn check(&self, set: &PolicySet) -> Result<Decision, String> {
        let d = set.decide(&self.request, &self.grounds, self.now);
        let mut diff = String::new();
        let e = &self.expect;
        if d.verdict != e.verdict {
            let _ = writeln!(
                diff,
                "  decision: - {} + {}",
                e.verdict.as_str(),
                d.verdict.as_str()
            );
        }
        if let Some(r) = &e.reason
            && r != d.reason.as_str()
        {
            let _ = writeln!(diff, "  reason:   - {r} + {}", d.reason);
        }
        if let Some(fields) = &e.fields {
            let actual: BTreeMap<String, String> = d
                .fields
                .iter()
                .map(|g| (g.field.clone(), g.form.as_str().to_owned()))
                .collect();
            for (k, v) in fields {
                match actual.get(k) {
                    Some(a) if a == v => {}
                    Some(a) => {
                        let _ = writeln!(diff, "  field {k}: - {v} + {a}");
                    }
                    None => {
                        let _ = writeln!(diff, "  field {k}: - {v} + (not released)");
                    }
                }
            }
            for (k, a) in &actual {
                if !fields.contains_key(k) {
                    let _ = writeln!(diff, "  field {k}: - (not expected) + {a}");
                }
            }
        }
        if let Some(rules) = &e.rules {
            let mut want = rules.clone();
            want.sort();
            let mut got: Vec<String> = d
                .matched
                .iter()
                .filter(|r| r.effect == Effect::Permit)
                .map(|r| r.to_string())
                .collect();
            got.sort();
            if want != got {
                let _ = writeln!(
                    diff,
                    "  rules: - [{}] + [{}]",
                    want.join(", "),
                    got.join(", ")
                );
            }
        }
        if let Some(m) = &e.missing
            && Some(m) != d.missing_element.as_ref()
        {
            let got = d.missing_element.as_deref().unwrap_or("(none)");
            let _ = writeln!(diff, "  missing: - {m} + {got}");
        }
        if let Some(x) = e.obligations {
            let (review, notify) = (x.review, x.notify);
            let o = &d.obligations;
            if let Some(u) = x.use_restriction
                && u != d.use_restriction.is_some()
            {
                let _ = writeln!(
                    diff,
                    "  use_restriction: - {u} + {}",
                    d.use_restriction.is_some()
                );
            }
            if x.weighing.is_some_and(|w| w != o.weighing) {
                let _ = writeln!(diff, "  weighing: - {:?} + {}", x.weighing, o.weighing);
            }
            if x.retention_days.is_some() && x.retention_days != o.retention_days {
                let _ = writeln!(
                    diff,
                    "  retention_days: - {:?} + {:?}",
                    x.retention_days, o.retention_days
                );
            }
            if review.is_some_and(|r| r != o.review) {
                let _ = writeln!(diff, "  review: - {review:?} + {}", o.review);
            }
            if notify.is_some_and(|n| n != o.notify) {
                let _ = writeln!(diff, "  notify: - {notify:?} + {}", o.notify);
            }
        }
        if diff.is_empty() { Ok(d) } else { Err(diff) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: &str = "[[case]]\n[case.request]\nkind = \"lookup\"\nrequester = \"a\"\ncounterpart = \"b\"\npurpose = \"p\"\nsubject = \"s\"\nfields = [\"f\"]\n";

    #[test]
    fn a_fixture_needs_name_now_and_expect_but_a_request_file_does_not() {
        let f = SourceFile::new("req.toml", CASE);
        let mut problems = Vec::new();
        assert!(parse_fixtures(&f, &mut problems).is_empty());
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("missing field `name`"));

        let mut problems = Vec::new();
        let reqs = parse_requests(&f, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].now, reqs[0].location.as_str()),
            (None, "req.toml:1:1")
        );
        assert_eq!(reqs[0].request.fields[0].field, "f");
    }

    #[test]
    fn a_request_file_keeps_its_now() {
        let text = CASE.replace("[[case]]\n", "[[case]]\nnow = 2026-03-15T10:00:00Z\n");
        let mut problems = Vec::new();
        let reqs = parse_requests(&SourceFile::new("req.toml", text), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            reqs[0].now,
            Some(time::macros::datetime!(2026-03-15 10:00 UTC))
        );
    }
}
