//! A synthetic policy set of any size, for benchmarks and property tests.
//!
//! The content is drawn from a seeded generator; a second seed only changes the *order* in
//! which parties, fields, agreements and rules are written, so two sets with the same content
//! seed must decide identically and have one digest.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::macros::datetime;

use super::diagnostic::SourceFile;
use super::request::{ExchangeRequest, FieldRequest, Grounds};
use super::set::PolicySet;
use super::transform::{FieldType, Transform};

/// A small deterministic generator (SplitMix64), so fixtures need no RNG dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

const ROLES: [&str; 5] = [
    "police",
    "social-service",
    "care-provider",
    "prosecutor",
    "coordinator",
];
const PARTIES: usize = 60;
const ROOTS: usize = 5;
const CHILDREN: usize = 3;
const FIELDS: usize = 40;
const RULES_PER_AGREEMENT: usize = 10;

fn field_type(i: usize) -> FieldType {
    [
        FieldType::Date,
        FieldType::Address,
        FieldType::Text,
        FieldType::Integer,
        FieldType::Enum,
        FieldType::Flag,
    ][i % 6]
}

/// The forms a generated rule may release for field `i`: one chain of the type's order, so
/// forms of one field are always comparable and the set loads.
fn field_forms(i: usize) -> Vec<Transform> {
    use Transform::*;
    match field_type(i) {
        FieldType::Date => vec![Keep, YearMonth, Year, AgeBand, Presence],
        FieldType::Address => vec![Keep, Postcode, Municipality, Presence],
        FieldType::Text if i.is_multiple_of(4) => vec![Keep, Initials, Presence],
        FieldType::Text => vec![Keep, Pseudonym, Presence],
        FieldType::Integer if i % 4 == 1 => vec![Keep, AgeBand, Presence],
        FieldType::Integer => vec![Keep, Pseudonym, Presence],
        FieldType::Enum | FieldType::Flag => vec![Keep, Presence],
    }
}

fn purpose_ids() -> Vec<String> {
    let mut v = Vec::new();
    for r in 0..ROOTS {
        v.push(format!("purpose-{r}"));
        for c in 0..CHILDREN {
            v.push(format!("purpose-{r}-{c}"));
        }
    }
    v
}

/// Generates a set with `rules` rules (rounded up to whole agreements of ten rules).
pub fn generate(rules: usize, content_seed: u64, order_seed: u64) -> Vec<SourceFile> {
    let mut rng = Rng::new(content_seed);
    let mut order = Rng::new(order_seed);

    let mut parties: Vec<String> = (0..PARTIES)
        .map(|i| {
            format!(
                "[[party]]\nid = \"party-{i}\"\nname = \"Party {i}\"\nroles = [\"{}\"]\norganisation = \"org-{}\"\ncontact_point = \"desk {i}\"\n",
                ROLES[i % ROLES.len()],
                i / 2
            )
        })
        .collect();
    order.shuffle(&mut parties);

    let mut vocab: Vec<String> = ROLES
        .iter()
        .map(|r| format!("[[role]]\nid = \"{r}\"\ntitle = \"{r}\"\n"))
        .collect();
    for r in 0..ROOTS {
        vocab.push(format!(
            "[[purpose]]\nid = \"purpose-{r}\"\ntitle = \"root {r}\"\n"
        ));
        for c in 0..CHILDREN {
            vocab.push(format!(
                "[[purpose]]\nid = \"purpose-{r}-{c}\"\nparent = \"purpose-{r}\"\ntitle = \"child {r}.{c}\"\n"
            ));
        }
    }
    vocab.push("[[legal_basis]]\nid = \"basis-a\"\ntitle = \"A\"\n".to_owned());
    vocab.push("[[legal_basis]]\nid = \"basis-b\"\ntitle = \"B\"\n".to_owned());
    order.shuffle(&mut vocab);

    let mut catalogue: Vec<String> = (0..FIELDS)
        .map(|i| {
            let ty = field_type(i);
            let forms: Vec<String> = field_forms(i).iter().map(|t| format!("\"{t}\"")).collect();
            let values = if ty == FieldType::Enum {
                "values = [\"a\", \"b\", \"c\"]\n"
            } else {
                ""
            };
            format!(
                "[[field]]\nid = \"f.field_{i}\"\ntype = \"{ty}\"\nsensitivity = \"ordinary\"\ntransforms = [{}]\n{values}",
                forms.join(", ")
            )
        })
        .collect();
    order.shuffle(&mut catalogue);

    let purposes = purpose_ids();
    let kinds = ["lookup", "request", "share", "audit"];
    let mut files = vec![
        SourceFile::new("parties.toml", parties.join("\n")),
        SourceFile::new("vocabulary.toml", vocab.join("\n")),
        SourceFile::new("catalogue.toml", catalogue.join("\n")),
    ];
    let agreements = rules.div_ceil(RULES_PER_AGREEMENT);
    for a in 0..agreements {
        let mut rule_texts = Vec::new();
        for r in 0..RULES_PER_AGREEMENT {
            let mut t = String::new();
            let forbid = rng.below(10) == 0;
            let _ = writeln!(t, "[[rule]]\nid = \"rule-{r}\"");
            let _ = writeln!(
                t,
                "effect = \"{}\"",
                if forbid { "forbid" } else { "permit" }
            );
            let k1 = rng.below(4);
            let k2 = rng.below(4);
            let _ = writeln!(t, "kinds = [\"{}\", \"{}\"]", kinds[k1], kinds[k2]);
            let _ = writeln!(t, "requester = {}", selector(&mut rng, false));
            let _ = writeln!(t, "counterpart = {}", selector(&mut rng, true));
            let p = &purposes[rng.below(purposes.len())];
            let _ = writeln!(t, "purposes = [\"{p}\"]");
            if rng.below(4) == 0 {
                let _ = writeln!(t, "valid_from = 2025-0{}-01", 1 + rng.below(9));
            }
            if forbid {
                if rng.below(2) == 0 {
                    let _ = writeln!(t, "fields = [\"f.field_{}\"]", rng.below(FIELDS));
                }
            } else {
                match rng.below(6) {
                    0 => t.push_str("conditions = { case = true }\n"),
                    1 => t.push_str("conditions = { consent = true }\n"),
                    2 => t.push_str("conditions = { urgency = { min_justification = 20 } }\n"),
                    _ => {}
                }
                if rng.below(3) == 0 {
                    let _ = writeln!(
                        t,
                        "obligations = {{ retention_days = {}, review = {} }}",
                        7 + rng.below(90),
                        rng.below(2) == 0
                    );
                }
                let mut chosen: Vec<usize> = Vec::new();
                for _ in 0..2 + rng.below(4) {
                    let f = rng.below(FIELDS);
                    if !chosen.contains(&f) {
                        chosen.push(f);
                    }
                }
                for f in chosen {
                    let forms = field_forms(f);
                    let form = forms[rng.below(forms.len())];
                    let _ = writeln!(
                        t,
                        "[[rule.release]]\nfield = \"f.field_{f}\"\nform = \"{form}\""
                    );
                }
            }
            rule_texts.push(t);
        }
        order.shuffle(&mut rule_texts);
        let basis = if a % 2 == 0 { "basis-a" } else { "basis-b" };
        let until = if a % 3 == 0 {
            "valid_until = 2027-12-31\n"
        } else {
            ""
        };
        // Every agreement may hold case rules, so every one declares its case consultations.
        let cases = format!(
            "[case_consultation]\npurposes = [\"{}\"]\nopeners = {{ any = true }}\nmax_days = 3650\n\n[[case_consultation.instrument]]\nid = \"instrument-{a}\"\nkind = \"decree\"\nreference = \"Decree {a}\"\n",
            purposes[0]
        );
        let text = format!(
            "id = \"agreement-{a}\"\ntitle = \"Agreement {a}\"\nowner = \"party-{}\"\nlegal_basis = [\"{basis}\"]\nvalid_from = 2025-01-01\n{until}\n{}\n{cases}",
            a % PARTIES,
            rule_texts.join("\n")
        );
        files.push(SourceFile::new(
            format!("agreements/{:08x}.toml", order.next_u64() as u32),
            text,
        ));
    }
    order.shuffle(&mut files);
    files
}

fn selector(rng: &mut Rng, counterpart: bool) -> String {
    match rng.below(if counterpart { 5 } else { 4 }) {
        0 | 1 => {
            let n = 1 + rng.below(3);
            let ps: Vec<String> = (0..n)
                .map(|_| format!("\"party-{}\"", rng.below(PARTIES)))
                .collect();
            format!("{{ parties = [{}] }}", ps.join(", "))
        }
        2 => format!("{{ roles = [\"{}\"] }}", ROLES[rng.below(ROLES.len())]),
        3 if counterpart => "{ any = true }".to_owned(),
        4 => "{ same_organisation = true }".to_owned(),
        _ => format!(
            "{{ roles = [\"{}\"], parties = [\"party-{}\"] }}",
            ROLES[rng.below(ROLES.len())],
            rng.below(PARTIES)
        ),
    }
}

/// A fixed decision time inside every generated window.
pub const GENERATED_NOW: OffsetDateTime = datetime!(2026-06-15 12:00 UTC);

/// `n` random requests against a set: mostly aimed at a rule (its kind, parties, purpose and
/// fields, grounds satisfied), some at random, so both allows and denies are exercised.
pub fn sample_requests(set: &PolicySet, n: usize, seed: u64) -> Vec<(ExchangeRequest, Grounds)> {
    let mut rng = Rng::new(seed);
    let parties: Vec<&str> = set.parties().map(|p| p.id.as_str()).collect();
    let purposes: Vec<&str> = set.purposes().map(|p| p.id.as_str()).collect();
    let fields: Vec<&str> = set.fields().map(|f| f.id.as_str()).collect();
    let rules: Vec<(&super::model::Agreement, &super::model::Rule)> = set
        .agreements()
        .flat_map(|a| a.rules.iter().map(move |r| (a, r)))
        .collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut aimed: Option<&str> = None;
        let mut req = ExchangeRequest {
            kind: super::request::ALL_KINDS[rng.below(4)],
            requester: parties[rng.below(parties.len())].to_owned(),
            counterpart: parties[rng.below(parties.len())].to_owned(),
            purpose: purposes[rng.below(purposes.len())].to_owned(),
            subject: "subject-1".to_owned(),
            fields: (0..1 + rng.below(4))
                .map(|_| FieldRequest {
                    field: fields[rng.below(fields.len())].to_owned(),
                    form: None,
                })
                .collect(),
            justification: Some("an urgent and well documented reason".to_owned()),
            elements: Vec::new(),
        };
        if rng.below(4) != 0 && !rules.is_empty() {
            let (agreement, rule) = rules[rng.below(rules.len())];
            aimed = Some(agreement.id.as_str());
            req.kind = rule.kinds[rng.below(rule.kinds.len())];
            let matching: Vec<&str> = set
                .parties()
                .filter(|p| rule.requester.matches_party(p))
                .map(|p| p.id.as_str())
                .collect();
            if let Some(p) = matching.get(rng.below(matching.len().max(1))) {
                req.requester = (*p).to_owned();
            }
            let cps: Vec<&str> = set
                .parties()
                .filter(|p| {
                    if rule.counterpart.same_organisation {
                        set.party(&req.requester)
                            .is_some_and(|r| r.organisation == p.organisation)
                    } else {
                        rule.counterpart.matches_party(p)
                    }
                })
                .map(|p| p.id.as_str())
                .collect();
            if let Some(c) = cps.get(rng.below(cps.len().max(1))) {
                req.counterpart = (*c).to_owned();
            }
            if let Some(p) = rule.purposes.first() {
                req.purpose = p.clone();
            }
            if !rule.release.is_empty() {
                req.fields = rule
                    .release
                    .iter()
                    .map(|r| FieldRequest {
                        field: r.field.clone(),
                        form: None,
                    })
                    .collect();
            }
        }
        req.elements = super::diff::satisfied_elements(set);
        // As for a real subject, the grounds hold a case of the one consultation the request is
        // aimed at (if any), not one of every agreement's.
        let mut grounds = super::diff::satisfied_grounds(set, &req, GENERATED_NOW);
        grounds
            .cases
            .retain(|c| aimed.is_some_and(|a| c.agreement == a));
        out.push((req, grounds));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_set_loads_and_allows_some_requests() {
        let set = PolicySet::from_sources("generated", generate(1000, 1, 2))
            .unwrap_or_else(|e| panic!("{:#?}", e.problems));
        assert_eq!(set.rule_count(), 1000);
        let reqs = sample_requests(&set, 500, 3);
        let allowed = reqs
            .iter()
            .filter(|(r, g)| set.decide(r, g, GENERATED_NOW).is_allowed())
            .count();
        assert!(allowed > 50 && allowed < 500, "{allowed} of 500 allowed");
    }

    #[test]
    fn order_seed_changes_text_but_not_digest() {
        let a = PolicySet::from_sources("a", generate(100, 5, 1)).map(|s| s.digest());
        let b = PolicySet::from_sources("b", generate(100, 5, 2)).map(|s| s.digest());
        assert_ne!(generate(100, 5, 1)[0].text, generate(100, 5, 2)[0].text);
        assert!(a.is_ok());
        assert_eq!(a.ok(), b.ok());
    }
}
