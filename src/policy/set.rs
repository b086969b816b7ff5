//! The compiled, immutable policy set that the gateway holds in an `Arc`.

use std::path::Path;

use super::bits::Bits;
use super::compile::CompiledRule;
use super::decision::UseRestriction;
use super::diagnostic::{LoadError, Problem, SourceFile};
use super::idmap::IdMap;
use super::index::DecisionIndex;
use super::model::{Agreement, FieldDef, LegalBasis, Party, Purpose, Role, Sensitivity};

/// A compiled policy set: checked, indexed and digested. `Send + Sync`, never mutated.
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) parties: Vec<Party>,
    pub(crate) party_ix: IdMap,
    /// `org_mates[p]`: the parties of `p`'s organisation (including `p`).
    pub(crate) org_mates: Vec<Bits>,
    pub(crate) roles: Vec<Role>,
    pub(crate) purposes: Vec<Purpose>,
    pub(crate) purpose_ix: IdMap,
    /// `ancestors[p]`: `p` and every ancestor of `p`.
    pub(crate) ancestors: Vec<Bits>,
    pub(crate) legal_bases: Vec<LegalBasis>,
    pub(crate) fields: Vec<FieldDef>,
    pub(crate) field_ix: IdMap,
    pub(crate) agreements: Vec<Agreement>,
    /// Every rule, sorted by (agreement id, rule id): the canonical order.
    pub(crate) rules: Vec<CompiledRule>,
    /// Candidate rules per (kind, requester, counterpart) and per-rule facts for `decide`.
    pub(crate) index: DecisionIndex,
    pub(crate) digest: [u8; 32],
    pub(crate) warnings: Vec<Problem>,
    /// The longest justification (or weighing) accepted, in characters.
    pub(crate) max_justification: u32,
    /// `sensitivity[p * fields + f]`: field `f`'s sensitivity when party `p` holds it.
    pub(crate) sensitivity: Vec<Sensitivity>,
    /// The parties with the police role.
    pub(crate) police: Bits,
    /// Per agreement: the use restriction of its case consultations.
    pub(crate) use_restrictions: Vec<Option<UseRestriction>>,
}

impl PolicySet {
    /// Loads, checks and compiles the policy set in `dir`; every problem is reported, and a
    /// set with any error never loads.
    pub fn load(dir: &Path) -> Result<PolicySet, LoadError> {
        let files = super::load::read_dir(dir)?;
        PolicySet::from_sources(&dir.display().to_string(), files)
    }

    /// Loads a policy set from in-memory files named like the directory layout
    /// (`parties.toml`, `vocabulary.toml`, `catalogue.toml`, anything else is an agreement).
    pub fn from_sources(label: &str, files: Vec<SourceFile>) -> Result<PolicySet, LoadError> {
        let err = |problems| LoadError {
            dir: label.to_owned(),
            problems,
        };
        let (model, mut problems) = super::load::build(&files);
        match super::compile::compile(model, &files) {
            Ok(set) if problems.is_empty() => Ok(set),
            Ok(_) => Err(err(problems)),
            Err(more) => {
                problems.extend(more);
                Err(err(problems))
            }
        }
    }

    /// The SHA-256 digest of the canonical compiled form, independent of file and rule order.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The digest in lower-case hex.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Warnings found while compiling (overlapping permits).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// A party by id.
    pub fn party(&self, id: &str) -> Option<&Party> {
        self.party_ix.get(id).map(|i| &self.parties[i])
    }

    /// Every party, sorted by id.
    pub fn parties(&self) -> impl Iterator<Item = &Party> {
        self.parties.iter()
    }

    /// Every role, sorted by id.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.iter()
    }

    /// Every agreement, sorted by id.
    pub fn agreements(&self) -> impl Iterator<Item = &Agreement> {
        self.agreements.iter()
    }

    /// An agreement by id.
    pub fn agreement(&self, id: &str) -> Option<&Agreement> {
        self.agreements.iter().find(|a| a.id == id)
    }

    /// A catalogue field by id.
    pub fn field(&self, id: &str) -> Option<&FieldDef> {
        self.field_ix.get(id).map(|i| &self.fields[i])
    }

    /// Every catalogue field, sorted by id.
    pub fn fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter()
    }

    /// A purpose by id.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purpose_ix.get(id).map(|i| &self.purposes[i])
    }

    /// Every purpose, sorted by id.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.purposes.iter()
    }

    /// A legal basis by id.
    pub fn legal_basis(&self, id: &str) -> Option<&LegalBasis> {
        self.legal_bases.iter().find(|l| l.id == id)
    }

    /// Every legal basis, sorted by id.
    pub fn legal_bases(&self) -> impl Iterator<Item = &LegalBasis> {
        self.legal_bases.iter()
    }

    /// Whether `purpose` is `ancestor` or one of its descendants (both must be known).
    pub fn purpose_within(&self, purpose: &str, ancestor: &str) -> bool {
        match (self.purpose_ix.get(purpose), self.purpose_ix.get(ancestor)) {
            (Some(p), Some(a)) => self.ancestors[p].contains(a),
            _ => false,
        }
    }

    /// The longest justification or weighing accepted, in characters (`[limits]`).
    pub fn max_justification(&self) -> usize {
        self.max_justification as usize
    }

    /// How sensitive `field` is when `holder` holds it (the catalogue's sensitivity, raised where
    /// the holder raises it); `None` for an unknown party or field.
    pub fn sensitivity_at(&self, holder: &str, field: &str) -> Option<Sensitivity> {
        let (p, f) = (self.party_ix.get(holder)?, self.field_ix.get(field)?);
        self.sensitivity.get(p * self.fields.len() + f).copied()
    }

    /// The number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn policy_set_is_send_and_sync() {
        assert_send_sync::<PolicySet>();
        assert_send_sync::<LoadError>();
    }
}
