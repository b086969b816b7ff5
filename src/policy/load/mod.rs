//! Loading: files → checked model, collecting every problem before giving up.

use std::collections::{HashMap, HashSet};

mod agreement;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::diagnostic::{LoadError, Problem, SourceFile};
use super::model::{
    Agreement, FieldDef, LegalBasis, Party, Purpose, RaisedSensitivity, Role, Sensitivity,
};
use super::raw::{Document, RawField, RawLegalBasis, RawLimits, RawParty, RawPurpose, RawRole};

/// The longest justification accepted when vocabulary.toml sets no `[limits]`.
pub(crate) const DEFAULT_MAX_JUSTIFICATION: u32 = 4_000;
use super::transform::{FieldType, Transform};

/// Where a rule came from, for diagnostics found after loading.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub file: usize,
    pub span: Range<usize>,
    pub release_spans: Vec<Range<usize>>,
}

/// The checked model of a policy set, in canonical order (every list sorted by id).
#[derive(Debug)]
pub(crate) struct Model {
    pub parties: Vec<Party>,
    pub roles: Vec<Role>,
    pub purposes: Vec<Purpose>,
    pub legal_bases: Vec<LegalBasis>,
    pub fields: Vec<FieldDef>,
    pub agreements: Vec<Agreement>,
    /// `origins[a][r]` is where rule `r` of agreement `a` is written.
    pub origins: Vec<Vec<Origin>>,
    /// The longest justification accepted, in characters.
    pub max_justification: u32,
}

/// Reads `parties.toml`, `vocabulary.toml`, `catalogue.toml` and `agreements/*.toml` under `dir`.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for name in ["parties.toml", "vocabulary.toml", "catalogue.toml"] {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(SourceFile::new(path.display().to_string(), text)),
            Err(e) => problems.push(Problem::general(
                path.display().to_string(),
                format!("cannot read {name}: {e}"),
            )),
        }
    }
    let adir = dir.join("agreements");
    match std::fs::read_dir(&adir) {
        Ok(entries) => {
            let mut paths: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            paths.sort();
            for path in paths {
                match std::fs::read_to_string(&path) {
                    Ok(text) => files.push(SourceFile::new(path.display().to_string(), text)),
                    Err(e) => problems.push(Problem::general(
                        path.display().to_string(),
                        format!("cannot read agreement: {e}"),
                    )),
                }
            }
        }
        Err(e) => problems.push(Problem::general(
            adir.display().to_string(),
            format!("cannot read the agreements directory: {e}"),
        )),
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(LoadError {
            dir: dir.display().to_string(),
            problems,
        })
    }
}

fn is_kebab(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_field_id(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Builds the model from source files named `parties.toml`, `vocabulary.toml`, `catalogue.toml`
/// and anything else (taken as an agreement). The model is built even with problems, so
/// compile-time checks can report theirs too; it must not be used when problems are returned.
pub(crate) fn build(files: &[SourceFile]) -> (Model, Vec<Problem>) {
    let mut b = Builder::default();
    let kind_of = |f: &SourceFile| {
        Path::new(&f.name)
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let mut seen = HashSet::new();
    for name in ["parties.toml", "vocabulary.toml", "catalogue.toml"] {
        if let Some(i) = files.iter().position(|f| kind_of(f) == name) {
            seen.insert(i);
            match name {
                "parties.toml" => b.parties(&files[i]),
                "vocabulary.toml" => b.vocabulary(&files[i]),
                _ => b.catalogue(&files[i]),
            }
        } else {
            b.problems
                .push(Problem::general(name, format!("{name} is missing")));
        }
    }
    b.check_parties();
    b.check_purpose_tree();
    for (i, f) in files.iter().enumerate() {
        if !seen.contains(&i) {
            b.agreement(i, f);
        }
    }
    b.finish()
}

#[derive(Default)]
struct Builder<'f> {
    problems: Vec<Problem>,
    parties: Vec<(Party, &'f SourceFile, RawParty)>,
    roles: Vec<Role>,
    purposes: Vec<(Purpose, &'f SourceFile, Option<Range<usize>>)>,
    legal_bases: Vec<LegalBasis>,
    fields: Vec<FieldDef>,
    agreements: Vec<(Agreement, Vec<Origin>)>,
    party_ids: HashSet<String>,
    role_ids: HashSet<String>,
    purpose_ids: HashSet<String>,
    basis_ids: HashSet<String>,
    field_ids: HashMap<String, usize>,
    agreement_ids: HashSet<String>,
    max_justification: Option<u32>,
}

impl<'f> Builder<'f> {
    fn err(&mut self, f: &SourceFile, span: Range<usize>, msg: impl Into<String>, hint: &str) {
        let hint = (!hint.is_empty()).then(|| hint.to_owned());
        self.problems.push(Problem::at(f, span, msg, hint));
    }

    /// Checks an id's spelling and uniqueness within its kind.
    fn check_id(
        &mut self,
        f: &SourceFile,
        id: &Spanned<String>,
        kind: &str,
        field_style: bool,
        seen: &mut HashSet<String>,
    ) -> bool {
        let ok_style = if field_style {
            is_field_id(id.get_ref())
        } else {
            is_kebab(id.get_ref())
        };
        if !ok_style {
            let hint = if field_style {
                "field ids are dotted snake case, e.g. subject.birth_date"
            } else {
                "ids are lower-case kebab-case: [a-z0-9][a-z0-9-]*"
            };
            self.err(
                f,
                id.span(),
                format!("malformed {kind} id `{}`", id.get_ref()),
                hint,
            );
        }
        if !seen.insert(id.get_ref().clone()) {
            self.err(
                f,
                id.span(),
                format!("duplicate {kind} id `{}`", id.get_ref()),
                "ids must be unique within their kind",
            );
            return false;
        }
        ok_style
    }

    fn parties(&mut self, f: &'f SourceFile) {
        let Some(mut doc) = Document::parse(f, &mut self.problems) else {
            return;
        };
        let items: Vec<Spanned<RawParty>> = doc.take_items("party", &mut self.problems);
        doc.reject_rest(&["[[party]]"], &mut self.problems);
        let mut seen = std::mem::take(&mut self.party_ids);
        for item in items {
            let raw = item.into_inner();
            self.check_id(f, &raw.id, "party", false, &mut seen);
            let party = Party {
                id: raw.id.get_ref().clone(),
                name: raw.name.clone(),
                roles: raw.roles.iter().map(|r| r.get_ref().clone()).collect(),
                organisation: raw.organisation.get_ref().clone(),
                contact_point: raw.contact_point.clone(),
                dpo: raw.dpo.as_ref().map(|d| d.get_ref().clone()),
                raised: Vec::new(),
            };
            self.parties.push((party, f, raw));
        }
        self.party_ids = seen;
    }

    fn vocabulary(&mut self, f: &'f SourceFile) {
        let Some(mut doc) = Document::parse(f, &mut self.problems) else {
            return;
        };
        let roles: Vec<Spanned<RawRole>> = doc.take_items("role", &mut self.problems);
        let purposes: Vec<Spanned<RawPurpose>> = doc.take_items("purpose", &mut self.problems);
        let bases: Vec<Spanned<RawLegalBasis>> = doc.take_items("legal_basis", &mut self.problems);
        if doc.has("limits") {
            let limits: Option<Spanned<RawLimits>> = doc.take_table("limits", &mut self.problems);
            if let Some(l) = limits {
                match l.get_ref().max_justification {
                    Some(0) => self.err(f, l.span(), "max_justification must be at least 1", ""),
                    m => self.max_justification = m,
                }
            }
        }
        doc.reject_rest(
            &["[[role]]", "[[purpose]]", "[[legal_basis]]", "[limits]"],
            &mut self.problems,
        );
        let mut seen = HashSet::new();
        for r in roles {
            let r = r.into_inner();
            self.check_id(f, &r.id, "role", false, &mut seen);
            self.roles.push(Role {
                id: r.id.into_inner(),
                title: r.title,
            });
        }
        self.role_ids = seen;
        let mut seen = HashSet::new();
        for p in purposes {
            let p = p.into_inner();
            self.check_id(f, &p.id, "purpose", false, &mut seen);
            let parent_span = p.parent.as_ref().map(|s| s.span());
            self.purposes.push((
                Purpose {
                    id: p.id.into_inner(),
                    title: p.title,
                    parent: p.parent.map(Spanned::into_inner),
                    dpv: p.dpv,
                },
                f,
                parent_span,
            ));
        }
        self.purpose_ids = seen;
        let mut seen = HashSet::new();
        for l in bases {
            let l = l.into_inner();
            self.check_id(f, &l.id, "legal basis", false, &mut seen);
            let mut allows = Vec::new();
            for a in &l.allows {
                match Sensitivity::parse(a.get_ref()) {
                    Some(Sensitivity::Ordinary) | None => self.err(
                        f,
                        a.span(),
                        format!("`allows` names `{}`", a.get_ref()),
                        "a legal basis allows the sensitive categories: special, judicial",
                    ),
                    Some(x) if !allows.contains(&x) => allows.push(x),
                    Some(_) => {}
                }
            }
            allows.sort();
            self.legal_bases.push(LegalBasis {
                id: l.id.into_inner(),
                title: l.title,
                citation: l.citation,
                allows,
            });
        }
        self.basis_ids = seen;
    }

    fn catalogue(&mut self, f: &'f SourceFile) {
        let Some(mut doc) = Document::parse(f, &mut self.problems) else {
            return;
        };
        let items: Vec<Spanned<RawField>> = doc.take_items("field", &mut self.problems);
        doc.reject_rest(&["[[field]]"], &mut self.problems);
        let mut seen = HashSet::new();
        for item in items {
            let raw = item.into_inner();
            let unique = self.check_id(f, &raw.id, "field", true, &mut seen);
            let Some(ty) = FieldType::parse(raw.ty.get_ref()) else {
                self.err(
                    f,
                    raw.ty.span(),
                    format!("unknown field type `{}`", raw.ty.get_ref()),
                    "use one of: text, date, integer, flag, enum, address",
                );
                continue;
            };
            let sensitivity = Sensitivity::parse(raw.sensitivity.get_ref()).unwrap_or_else(|| {
                self.err(
                    f,
                    raw.sensitivity.span(),
                    format!("unknown sensitivity `{}`", raw.sensitivity.get_ref()),
                    "use one of: ordinary, special, judicial",
                );
                Sensitivity::Ordinary
            });
            let mut transforms = Vec::new();
            for t in &raw.transforms {
                match t.get_ref().parse::<Transform>() {
                    Ok(Transform::Drop) => self.err(
                        f,
                        t.span(),
                        "`drop` is always allowed and is never listed",
                        "remove `drop` from the list",
                    ),
                    Ok(tr) if !ty.supports(tr) => self.err(
                        f,
                        t.span(),
                        format!("a {ty} field cannot be released as `{tr}`"),
                        &format!(
                            "a {ty} field allows: {}",
                            ty.supported()
                                .iter()
                                .filter(|t| **t != Transform::Drop)
                                .map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                    Ok(tr) if transforms.contains(&tr) => {
                        self.err(f, t.span(), format!("`{tr}` is listed twice"), "")
                    }
                    Ok(tr) => transforms.push(tr),
                    Err(e) => self.err(
                        f,
                        t.span(),
                        e.to_string(),
                        "transforms: keep, year_month, year, age_band, postcode, municipality, initials, pseudonym, presence",
                    ),
                }
            }
            let values = match (&raw.values, ty) {
                (Some(v), FieldType::Enum) if v.get_ref().is_empty() => {
                    self.err(f, v.span(), "an enum needs at least one value", "");
                    Vec::new()
                }
                (Some(v), FieldType::Enum) => v.get_ref().clone(),
                (None, FieldType::Enum) => {
                    self.err(
                        f,
                        raw.ty.span(),
                        "an enum field needs `values`",
                        "add values = [\"…\"]",
                    );
                    Vec::new()
                }
                (Some(v), _) => {
                    self.err(
                        f,
                        v.span(),
                        "`values` is only for enum fields",
                        "remove `values` or make the type enum",
                    );
                    Vec::new()
                }
                (None, _) => Vec::new(),
            };
            let def = FieldDef {
                id: raw.id.get_ref().clone(),
                title: raw.title,
                ty,
                sensitivity,
                transforms,
                values,
            };
            if unique {
                self.field_ids.insert(def.id.clone(), self.fields.len());
            }
            self.fields.push(def);
        }
    }

    fn check_parties(&mut self) {
        let mut parties = std::mem::take(&mut self.parties);
        for (party, f, raw) in &mut parties {
            for raise in &raw.raise_sensitivity {
                let r = raise.get_ref();
                let to = match Sensitivity::parse(r.to.get_ref()) {
                    Some(s @ (Sensitivity::Special | Sensitivity::Judicial)) => s,
                    _ => {
                        self.err(
                            f,
                            r.to.span(),
                            format!("cannot raise a sensitivity to `{}`", r.to.get_ref()),
                            "use special or judicial",
                        );
                        continue;
                    }
                };
                let mut fields = Vec::new();
                for p in &r.fields {
                    let pattern = p.get_ref();
                    let known = match pattern.strip_suffix(".*") {
                        Some(prefix) => self.field_ids.keys().any(|id| {
                            id.starts_with(prefix) && id[prefix.len()..].starts_with('.')
                        }),
                        None => self.field_ids.contains_key(pattern),
                    };
                    if known {
                        // `prefix.*` is kept as `prefix.` followed by the wildcard.
                        fields.push(pattern.clone());
                    } else {
                        self.err(
                            f,
                            p.span(),
                            format!("`{pattern}` names no field of the catalogue"),
                            "write a field id or a prefix such as care.*",
                        );
                    }
                }
                if r.fields.is_empty() {
                    self.err(f, raise.span(), "name at least one field", "");
                }
                party.raised.push(RaisedSensitivity { fields, to });
            }
            for r in &raw.roles {
                if !self.role_ids.contains(r.get_ref()) {
                    self.err(
                        f,
                        r.span(),
                        format!("unknown role `{}`", r.get_ref()),
                        "roles are declared as [[role]] in vocabulary.toml",
                    );
                }
            }
            if let Some(d) = &raw.dpo
                && !self.party_ids.contains(d.get_ref())
            {
                self.err(
                    f,
                    d.span(),
                    format!("unknown party `{}` as dpo", d.get_ref()),
                    "the dpo must be an auditor party in parties.toml",
                );
            }
            if raw.organisation.get_ref().is_empty() {
                self.err(
                    f,
                    raw.organisation.span(),
                    "organisation must not be empty",
                    "",
                );
            }
        }
        self.parties = parties;
    }

    fn check_purpose_tree(&mut self) {
        let parents: HashMap<String, Option<String>> = self
            .purposes
            .iter()
            .map(|(p, _, _)| (p.id.clone(), p.parent.clone()))
            .collect();
        let purposes = std::mem::take(&mut self.purposes);
        for (p, f, span) in &purposes {
            let Some(parent) = &p.parent else { continue };
            let span = span.clone().unwrap_or(0..0);
            if !parents.contains_key(parent) {
                self.err(
                    f,
                    span,
                    format!("unknown parent purpose `{parent}`"),
                    "declare the parent as a [[purpose]] first",
                );
                continue;
            }
            // Walk up; a walk longer than the number of purposes has met a cycle.
            let mut cur = Some(parent.clone());
            let mut steps = 0;
            while let Some(c) = cur {
                if c == p.id || steps > parents.len() {
                    self.err(
                        f,
                        span.clone(),
                        format!("the purpose tree has a cycle through `{}`", p.id),
                        "purposes must form a tree",
                    );
                    break;
                }
                steps += 1;
                cur = parents.get(&c).cloned().flatten();
            }
        }
        self.purposes = purposes;
    }

    fn finish(self) -> (Model, Vec<Problem>) {
        let mut parties: Vec<Party> = self.parties.into_iter().map(|(p, _, _)| p).collect();
        parties.sort_by(|a, b| a.id.cmp(&b.id));
        let mut roles = self.roles;
        roles.sort_by(|a, b| a.id.cmp(&b.id));
        let mut purposes: Vec<Purpose> = self.purposes.into_iter().map(|(p, _, _)| p).collect();
        purposes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut legal_bases = self.legal_bases;
        legal_bases.sort_by(|a, b| a.id.cmp(&b.id));
        let mut fields = self.fields;
        fields.sort_by(|a, b| a.id.cmp(&b.id));
        let mut agreements = self.agreements;
        agreements.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let (agreements, origins) = agreements.into_iter().unzip();
        let model = Model {
            parties,
            roles,
            purposes,
            legal_bases,
            fields,
            agreements,
            origins,
            max_justification: self.max_justification.unwrap_or(DEFAULT_MAX_JUSTIFICATION),
        };
        (model, self.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_spelling() {
        assert!(is_kebab("pz-gent"));
        assert!(!is_kebab("PZ_gent"));
        assert!(is_field_id("subject.birth_date"));
        assert!(!is_field_id("subject..x"));
    }
}
