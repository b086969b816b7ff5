//! The loaded policy model: what the files say, with ids resolved and checked.

use time::OffsetDateTime;

use super::request::ExchangeKind;
use super::transform::{FieldType, Transform};

/// A party of the network, identified by its certificate's SAN URI `urn:ketenpoort:party:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// The party id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// Role ids from the vocabulary.
    pub roles: Vec<String>,
    /// The organisation whose DPO audits this party.
    pub organisation: String,
    /// A functional contact point, never a person.
    pub contact_point: String,
    /// The auditor party a `notify` obligation goes to, if any.
    pub dpo: Option<String>,
    /// Fields that are more sensitive at this holder than the catalogue says (at a
    /// mental-health centre the care context is health data, and so is a bare hit).
    pub raised: Vec<RaisedSensitivity>,
}

/// `raise_sensitivity` of a party: these fields are at least `to` at this holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedSensitivity {
    /// Field ids, or `prefix.*` for every field under a prefix.
    pub fields: Vec<String>,
    /// The sensitivity they have at this holder.
    pub to: Sensitivity,
}

impl RaisedSensitivity {
    /// Whether `field` is covered by one of the patterns.
    pub fn covers(&self, field: &str) -> bool {
        self.fields.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => field.starts_with(prefix),
            None => p == field,
        })
    }
}

/// A role from the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role id.
    pub id: String,
    /// A human title.
    pub title: String,
}

/// A purpose in the purpose tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    /// The purpose id.
    pub id: String,
    /// A human title.
    pub title: String,
    /// The parent purpose, if not a root.
    pub parent: Option<String>,
    /// An optional W3C DPV IRI.
    pub dpv: Option<String>,
}

/// A legal basis an agreement rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalBasis {
    /// The legal basis id.
    pub id: String,
    /// A human title.
    pub title: String,
    /// The legal citation, e.g. `Strafwetboek art. 458ter`.
    pub citation: Option<String>,
    /// The sensitive categories (GDPR art. 9, art. 10) a release may rest on this basis for.
    pub allows: Vec<Sensitivity>,
}

/// How sensitive a field is under the GDPR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sensitivity {
    /// Ordinary personal data.
    Ordinary,
    /// A special category (GDPR art. 9).
    Special,
    /// Criminal-offence data (GDPR art. 10).
    Judicial,
}

impl Sensitivity {
    /// The catalogue spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Ordinary => "ordinary",
            Sensitivity::Special => "special",
            Sensitivity::Judicial => "judicial",
        }
    }

    /// Parses the catalogue spelling.
    pub fn parse(s: &str) -> Option<Sensitivity> {
        [Self::Ordinary, Self::Special, Self::Judicial]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A field of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// The dotted field id, e.g. `subject.birth_date`.
    pub id: String,
    /// A human title.
    pub title: Option<String>,
    /// The value type.
    pub ty: FieldType,
    /// The GDPR sensitivity.
    pub sensitivity: Sensitivity,
    /// The transforms the catalogue allows (without `drop`, which is always allowed).
    pub transforms: Vec<Transform>,
    /// The allowed values of an enum field.
    pub values: Vec<String>,
}

/// A validity window: `from` inclusive, `until` exclusive; open-ended when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// The first instant inside the window.
    pub from: Option<OffsetDateTime>,
    /// The first instant after the window.
    pub until: Option<OffsetDateTime>,
}

impl Window {
    /// Whether `now` lies inside the window.
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        self.from.is_none_or(|f| f <= now) && self.until.is_none_or(|u| now < u)
    }

    /// The intersection of two windows.
    pub fn intersect(&self, other: &Window) -> Window {
        Window {
            from: match (self.from, other.from) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            until: match (self.until, other.until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Whether no instant lies inside the window.
    pub fn is_empty(&self) -> bool {
        matches!((self.from, self.until), (Some(f), Some(u)) if f >= u)
    }
}

/// Permit or forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Effect {
    /// Allows the listed releases.
    Permit,
    /// Removes fields or denies the exchange; beats every permit.
    Forbid,
}

impl Effect {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        }
    }
}

/// A party selector as written: parties or roles, `any`, or (counterpart only) `same_organisation`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    /// Matches any party.
    pub any: bool,
    /// Matches a counterpart of the requester's organisation.
    pub same_organisation: bool,
    /// Party ids matched.
    pub parties: Vec<String>,
    /// Role ids matched.
    pub roles: Vec<String>,
}

impl Selector {
    /// Whether the selector matches `party` (ignoring `same_organisation`, which needs the requester).
    pub fn matches_party(&self, party: &Party) -> bool {
        self.any
            || self.parties.contains(&party.id)
            || party.roles.iter().any(|r| self.roles.contains(r))
    }
}

/// The closed set of conditions a rule can require.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conditions {
    /// An open case consultation of this agreement, for the purpose, with both parties and the subject.
    pub case: bool,
    /// A valid consent of the subject for this purpose and recipient.
    pub consent: bool,
    /// For a minor, that consent includes a parent's (youth-care decree: the capable minor and,
    /// where required, the parents).
    pub parental_consent: bool,
    /// A written justification of at least this many characters.
    pub urgency: Option<u32>,
    /// And of at least this many words: a justification must have substance.
    pub min_words: Option<u32>,
    /// Legal elements: catalogue fields the exchange must supply with a valid value.
    pub elements: Vec<String>,
    /// The holder must write its own weighing (necessity) when it answers.
    pub holder_weighing: bool,
}

/// The kind of legal instrument a case consultation is set up by (art. 458ter §1 Sw.).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstrumentKind {
    /// A federal law.
    Law,
    /// A decree of a community or region.
    Decree,
    /// An ordinance of the Brussels region.
    Ordinance,
    /// A reasoned authorisation of the procureur des Konings.
    ProsecutorAuthorisation,
}

impl InstrumentKind {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentKind::Law => "law",
            InstrumentKind::Decree => "decree",
            InstrumentKind::Ordinance => "ordinance",
            InstrumentKind::ProsecutorAuthorisation => "prosecutor-authorisation",
        }
    }

    /// Parses the policy spelling.
    pub fn parse(s: &str) -> Option<InstrumentKind> {
        [
            Self::Law,
            Self::Decree,
            Self::Ordinance,
            Self::ProsecutorAuthorisation,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A legal instrument that sets up case consultations under an agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    /// The instrument id, named by `OpenCase`.
    pub id: String,
    /// Law, decree, ordinance or the procureur's authorisation.
    pub kind: InstrumentKind,
    /// The official reference (publication, decision number).
    pub reference: String,
    /// A human title.
    pub title: Option<String>,
}

/// How an agreement's 458ter case consultations are set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseConsultation {
    /// Purposes a case may be opened for (each covers its descendants).
    pub purposes: Vec<String>,
    /// Who may open a case.
    pub openers: Selector,
    /// A case lapses this many days after it opened.
    pub max_days: u32,
    /// The use restriction that goes with every release through such a case (art. 458ter §2).
    pub use_restriction: Option<String>,
    /// The instruments a case may rest on, sorted by id.
    pub instruments: Vec<Instrument>,
}

/// A ceiling: no rule of the agreement releases `field` to such a recipient above `form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// The receiving parties it binds.
    pub recipient: Selector,
    /// The catalogue field.
    pub field: String,
    /// The most revealing form any rule may release it in to them.
    pub form: Transform,
    /// Free text for the DPO.
    pub description: Option<String>,
}

/// One entry of a permit's release list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The catalogue field id.
    pub field: String,
    /// The most revealing form the rule allows.
    pub form: Transform,
}

/// Obligations a permit attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObligationSpec {
    /// Keep released payloads at most this many days.
    pub retention_days: Option<u32>,
    /// Flag the audit entry for the auditors.
    pub review: bool,
    /// Notify the holder's DPO.
    pub notify: bool,
}

/// A rule of an agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule id, unique inside its agreement.
    pub id: String,
    /// Permit or forbid.
    pub effect: Effect,
    /// The exchange kinds it matches.
    pub kinds: Vec<ExchangeKind>,
    /// Who calls.
    pub requester: Selector,
    /// The holder asked or the recipient.
    pub counterpart: Selector,
    /// Purpose ids (each matches its descendants); empty with `any_purpose`.
    pub purposes: Vec<String>,
    /// `purposes = ["*"]`: every purpose.
    pub any_purpose: bool,
    /// The rule's own window (the agreement's window applies too).
    pub validity: Window,
    /// Free text for the DPO.
    pub description: Option<String>,
    /// Conditions that must all hold.
    pub conditions: Conditions,
    /// Permit only: what it releases.
    pub release: Vec<Release>,
    /// Forbid only: the fields it removes; `None` forbids the whole exchange.
    pub forbidden_fields: Option<Vec<String>>,
    /// Permit only: obligations.
    pub obligations: ObligationSpec,
}

/// A cooperation agreement or legal ground with its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The agreement id.
    pub id: String,
    /// A human title.
    pub title: String,
    /// The owning party id.
    pub owner: String,
    /// Legal basis ids, at least one.
    pub legal_basis: Vec<String>,
    /// The agreement's window.
    pub validity: Window,
    /// Free text for the DPO.
    pub description: Option<String>,
    /// How its case consultations are set up, if its rules use the `case` condition.
    pub case_consultation: Option<CaseConsultation>,
    /// Minimisation ceilings that hold across its rules.
    pub ceilings: Vec<Ceiling>,
    /// Its legal text provides for the reference directory: a holder may register a reference
    /// on it, found by the lookups its rules allow.
    pub provides_findability: bool,
    /// The rules, sorted by id.
    pub rules: Vec<Rule>,
}
