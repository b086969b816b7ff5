//! The policy engine: model → load (diagnostics with file:line:column) → compile (index) →
//! decide, explain, digest and diff. The file format and the semantics are in
//! docs/policy-format.md; this module is its only implementation.

mod bits;
mod compile;
mod decide;
mod decision;
mod diagnostic;
mod diff;
mod digest;
mod explain;
mod findable;
mod fixture;
pub mod generate;
mod idmap;
mod index;
mod lawful;
mod load;
mod model;
mod raw;
#[cfg(test)]
mod reference;
mod request;
mod set;
mod transform;

pub(crate) use compile::POLICE_ROLE;
pub use decide::Check;
pub use decision::{
    ALL_REASONS, Decision, FieldGrant, Obligations, ReasonCode, RuleRef, UseRestriction, Verdict,
};
pub use diagnostic::{LoadError, Problem, SourceFile};
pub use diff::{AccessChange, diff, satisfied_grounds};
pub use explain::{Explanation, RuleTrace};
pub use findable::ReferenceGround;
pub use fixture::{
    Expectation, ExpectedObligations, Fixture, RequestCase, load_fixtures, parse_fixtures,
    parse_requests,
};
pub use model::{
    Agreement, CaseConsultation, Ceiling, Conditions, Effect, FieldDef, Instrument, InstrumentKind,
    LegalBasis, ObligationSpec, Party, Purpose, RaisedSensitivity, Release, Role, Rule, Selector,
    Sensitivity, Window,
};
pub use request::{
    ALL_KINDS, Capacity, CaseGround, ConsentGiver, ConsentGround, ExchangeKind, ExchangeRequest,
    FieldRequest, Grounds, Substance, lawful_consent, substance,
};
pub use set::PolicySet;
pub use transform::{ALL_FIELD_TYPES, ALL_TRANSFORMS, FieldType, Transform, UnknownTransform};
