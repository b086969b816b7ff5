//! What is asked (the exchange request) and the dynamic facts rules refer to (grounds).

use std::fmt;

use time::OffsetDateTime;

use super::transform::Transform;

/// The kind of exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExchangeKind {
    /// Who knows this subject: hit/no-hit, holder, contact point.
    Lookup,
    /// Ask a holder for case context.
    Request,
    /// Push a signal or referral to a recipient.
    Share,
    /// An auditor reading the log.
    Audit,
}

/// Every exchange kind, in index order.
pub const ALL_KINDS: [ExchangeKind; 4] = [
    ExchangeKind::Lookup,
    ExchangeKind::Request,
    ExchangeKind::Share,
    ExchangeKind::Audit,
];

impl ExchangeKind {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Lookup => "lookup",
            ExchangeKind::Request => "request",
            ExchangeKind::Share => "share",
            ExchangeKind::Audit => "audit",
        }
    }

    /// Parses the policy spelling.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// A dense index for tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One requested field, optionally in a less revealing form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequest {
    /// The catalogue field id.
    pub field: String,
    /// The requested form; `None` asks for whatever the policy allows.
    pub form: Option<Transform>,
}

impl FieldRequest {
    /// Parses `field` or `field:form`.
    pub fn parse(s: &str) -> Result<FieldRequest, super::transform::UnknownTransform> {
        match s.split_once(':') {
            Some((field, form)) => Ok(FieldRequest {
                field: field.to_owned(),
                form: Some(form.parse()?),
            }),
            None => Ok(FieldRequest {
                field: s.to_owned(),
                form: None,
            }),
        }
    }
}

/// A hypothetical or real exchange to decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeRequest {
    /// The kind of exchange.
    pub kind: ExchangeKind,
    /// The calling party.
    pub requester: String,
    /// The holder asked, or the recipient of a share.
    pub counterpart: String,
    /// The purpose id.
    pub purpose: String,
    /// An opaque subject key (e.g. a hex pseudonym), matched against grounds.
    pub subject: String,
    /// The requested fields.
    pub fields: Vec<FieldRequest>,
    /// A written justification (for urgency conditions).
    pub justification: Option<String>,
    /// Legal elements supplied with the exchange: (catalogue field id, value as text).
    pub elements: Vec<(String, String)>,
}

impl ExchangeRequest {
    /// The party that receives the data: the requester, except for `share`.
    pub fn recipient(&self) -> &str {
        match self.kind {
            ExchangeKind::Share => &self.counterpart,
            _ => &self.requester,
        }
    }
}

/// An open (or closed) 458ter case consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseGround {
    /// The case id.
    pub id: String,
    /// The agreement it was opened under.
    pub agreement: String,
    /// The agreement's instrument it rests on.
    pub instrument: String,
    /// Participating party ids.
    pub participants: Vec<String>,
    /// Subject keys in the case.
    pub subjects: Vec<String>,
    /// The case purpose id.
    pub purpose: String,
    /// When it was opened (inclusive).
    pub opened: OffsetDateTime,
    /// When it was closed (exclusive), if closed.
    pub closed: Option<OffsetDateTime>,
    /// When it lapses (exclusive) unless renewed, if recorded; the agreement's `max_days` from
    /// its opening (or last renewal) bounds it in any case.
    pub ends: Option<OffsetDateTime>,
    /// When it was last renewed, if it was.
    pub renewed: Option<OffsetDateTime>,
}

impl CaseGround {
    /// The instant from which the agreement's `max_days` runs: the last renewal, or the opening.
    pub fn running_since(&self) -> OffsetDateTime {
        self.renewed.unwrap_or(self.opened)
    }
}

/// A consent of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentGround {
    /// The consent id.
    pub id: String,
    /// The subject key.
    pub subject: String,
    /// The purpose consented to (covers its descendants).
    pub purpose: String,
    /// Recipient party ids.
    pub recipients: Vec<String>,
    /// When it was given (inclusive).
    pub given: OffsetDateTime,
    /// The first instant it no longer holds (exclusive).
    pub expires: OffsetDateTime,
    /// When it was revoked, if it was (it no longer holds from then on).
    pub revoked: Option<OffsetDateTime>,
    /// A reference to the evidence, e.g. a signed form number.
    pub evidence: String,
    /// Who gave it.
    pub given_by: ConsentGiver,
    /// Whether the subject is a minor, and capable of consenting alone.
    pub capacity: Capacity,
    /// For a minor who consented personally: a parent (or guardian) consented too.
    pub parents_also: bool,
}

/// Who gave a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsentGiver {
    /// The subject.
    #[default]
    Subject,
    /// A parent with parental authority.
    Parent,
    /// A guardian.
    Guardian,
    /// A legal representative.
    LegalRepresentative,
}

/// Whether the subject of a consent is a minor, and capable of consenting alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Capacity {
    /// An adult.
    #[default]
    Adult,
    /// A minor of 12 or older, presumed capable by the youth-care decree.
    PresumedCapable,
    /// A younger minor assessed as capable of a reasonable judgement.
    AssessedCapable,
    /// A minor who cannot consent alone.
    NotCapable,
}

impl ConsentGiver {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentGiver::Subject => "subject",
            ConsentGiver::Parent => "parent",
            ConsentGiver::Guardian => "guardian",
            ConsentGiver::LegalRepresentative => "legal-representative",
        }
    }

    /// Parses the policy spelling.
    pub fn parse(s: &str) -> Option<ConsentGiver> {
        [
            Self::Subject,
            Self::Parent,
            Self::Guardian,
            Self::LegalRepresentative,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

impl Capacity {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Capacity::Adult => "adult",
            Capacity::PresumedCapable => "minor-presumed-capable",
            Capacity::AssessedCapable => "minor-assessed-capable",
            Capacity::NotCapable => "minor-not-capable",
        }
    }

    /// Parses the policy spelling.
    pub fn parse(s: &str) -> Option<Capacity> {
        [
            Self::Adult,
            Self::PresumedCapable,
            Self::AssessedCapable,
            Self::NotCapable,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl ConsentGround {
    /// Whether the right person gave it: an adult, or a capable minor, consents personally (an
    /// adult may also be represented by a legal representative); for a minor who cannot consent
    /// alone, a parent, guardian or legal representative consents.
    pub fn lawfully_given(&self) -> bool {
        lawful_consent(self.given_by, self.capacity)
    }

    /// Whether a parent's consent is part of it, as some rules require for a minor: a minor's
    /// consent given by a parent, guardian or legal representative, or a capable minor's own
    /// consent with a parent's beside it. An adult's consent needs none.
    pub fn includes_parents(&self) -> bool {
        self.capacity == Capacity::Adult
            || self.given_by != ConsentGiver::Subject
            || self.parents_also
    }
}

/// Whether `given_by` may consent for a subject of `capacity` (see
/// [`ConsentGround::lawfully_given`]).
pub fn lawful_consent(given_by: ConsentGiver, capacity: Capacity) -> bool {
    use ConsentGiver as G;
    match capacity {
        Capacity::Adult => matches!(given_by, G::Subject | G::LegalRepresentative),
        Capacity::PresumedCapable | Capacity::AssessedCapable => given_by == G::Subject,
        Capacity::NotCapable => given_by != G::Subject,
    }
}

/// The grounds known for one exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grounds {
    /// Case consultations.
    pub cases: Vec<CaseGround>,
    /// Consents.
    pub consents: Vec<ConsentGround>,
}

/// What the urgency condition reads of a written justification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Substance {
    /// Unicode scalar values after trimming.
    pub chars: usize,
    /// Words: runs of two or more letters.
    pub words: usize,
    /// Not a text at all: one character makes up more than half of it, or one word is
    /// repeated for most of it.
    pub degenerate: bool,
}

impl Substance {
    /// Reads a justification; `None` is an empty one.
    pub fn of(text: Option<&str>) -> Substance {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0100_0000_01b3;
        let text = text.unwrap_or("").trim();
        let mut chars = 0usize;
        let mut ascii = [0u32; 128];
        let mut other: smallvec::SmallVec<[(char, u32); 8]> = smallvec::SmallVec::new();
        let mut visible = 0u32;
        // Each word (a run of two or more letters) as a 64-bit FNV-1a hash of its lower-case
        // letters: distinct words are then counted with one small sort, without strings.
        let mut words: smallvec::SmallVec<[u64; 64]> = smallvec::SmallVec::new();
        let mut word = FNV_OFFSET;
        let mut letters = 0usize;
        for c in text.chars() {
            chars += 1;
            let lower = if c.is_ascii() {
                c.to_ascii_lowercase()
            } else {
                c.to_lowercase().next().unwrap_or(c)
            };
            if !c.is_whitespace() {
                visible += 1;
                if lower.is_ascii() {
                    ascii[lower as usize] += 1;
                } else if let Some(e) = other.iter_mut().find(|(x, _)| *x == lower) {
                    e.1 += 1;
                } else {
                    other.push((lower, 1));
                }
            }
            if c.is_alphabetic() {
                word = (word ^ u64::from(u32::from(lower))).wrapping_mul(FNV_PRIME);
                letters += 1;
            } else {
                if letters >= 2 {
                    words.push(word);
                }
                word = FNV_OFFSET;
                letters = 0;
            }
        }
        if letters >= 2 {
            words.push(word);
        }
        let most = ascii
            .iter()
            .copied()
            .chain(other.iter().map(|(_, n)| *n))
            .max()
            .unwrap_or(0);
        let count = words.len();
        let repeated = count >= 4 && {
            words.sort_unstable();
            words.dedup();
            words.len() * 2 < count
        };
        let degenerate = (visible > 0 && most * 2 > visible) || repeated;
        Substance {
            chars,
            words: count,
            degenerate,
        }
    }
}

/// How much substance a written text has: its length, its words, and whether it is degenerate.
pub fn substance(text: &str) -> Substance {
    Substance::of(Some(text))
}

#[cfg(test)]
mod substance_tests {
    use super::Substance;

    #[test]
    fn a_run_of_one_character_or_one_word_has_no_substance() {
        let run = "x".repeat(200);
        assert!(Substance::of(Some(&run)).degenerate);
        let spaced = "a ".repeat(100);
        assert!(Substance::of(Some(&spaced)).degenerate);
        let word = "gevaar ".repeat(30);
        assert!(Substance::of(Some(&word)).degenerate);
        let real = "Ernstig en dreigend gevaar: de moeder meldt dat de partner gisteren met een mes dreigde, \
                    de kinderen zijn thuis en wij kunnen haar niet zelf beschermen.";
        let s = Substance::of(Some(real));
        assert!(!s.degenerate, "{s:?}");
        assert!(s.words >= 20, "{s:?}");
        assert_eq!(Substance::of(None), Substance::default());
        assert_eq!(Substance::of(Some("   ")).chars, 0);
    }
}
