//! Loading agreement files: the agreement header, its rules, selectors and release lists.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::super::diagnostic::SourceFile;
use super::super::model::{
    Agreement, CaseConsultation, Ceiling, Conditions, Effect, Instrument, InstrumentKind,
    ObligationSpec, Release, Rule, Selector, Window,
};
use super::super::raw::{
    Bound, Document, RawAgreement, RawCaseConsultation, RawCeiling, RawConditions, RawRelease,
    RawRule, RawSelector, spanned_instant,
};
use super::super::request::ExchangeKind;
use super::super::transform::FieldType;
use super::super::transform::Transform;
use super::{Builder, Origin};

impl Builder<'_> {
    pub(super) fn agreement(&mut self, file_idx: usize, f: &SourceFile) {
        let Some(mut doc) = Document::parse(f, &mut self.problems) else {
            return;
        };
        let had_rules = doc.has("rule");
        let rules: Vec<Spanned<RawRule>> = doc.take_items("rule", &mut self.problems);
        let Some(raw) = doc.take_rest::<RawAgreement>(&mut self.problems) else {
            // Still check the rules, so one bad header does not hide their problems.
            let mut seen = HashSet::new();
            for r in rules {
                let r = r.into_inner();
                self.check_id(f, &r.id, "rule", false, &mut seen);
                self.rule(f, r);
            }
            return;
        };
        let mut seen = std::mem::take(&mut self.agreement_ids);
        self.check_id(f, &raw.id, "agreement", false, &mut seen);
        self.agreement_ids = seen;
        if !self.party_ids.contains(raw.owner.get_ref()) {
            self.err(
                f,
                raw.owner.span(),
                format!("unknown party `{}` as owner", raw.owner.get_ref()),
                "the owner must be a party in parties.toml",
            );
        }
        if raw.legal_basis.get_ref().is_empty() {
            self.err(
                f,
                raw.legal_basis.span(),
                "an agreement needs at least one legal basis",
                "",
            );
        }
        for l in raw.legal_basis.get_ref() {
            if !self.basis_ids.contains(l.get_ref()) {
                self.err(
                    f,
                    l.span(),
                    format!("unknown legal basis `{}`", l.get_ref()),
                    "legal bases are declared as [[legal_basis]] in vocabulary.toml",
                );
            }
        }
        let validity = self.window(f, Some(&raw.valid_from), raw.valid_until.as_ref());
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for r in rules {
            let span = r.span();
            let r = r.into_inner();
            self.check_id(f, &r.id, "rule", false, &mut seen);
            if let Some((rule, release_spans)) = self.rule(f, r) {
                out.push((
                    rule,
                    Origin {
                        file: file_idx,
                        span,
                        release_spans,
                    },
                ));
            }
        }
        if !had_rules {
            self.err(
                f,
                raw.id.span(),
                "an agreement needs at least one [[rule]]",
                "",
            );
        }
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let case_consultation = raw
            .case_consultation
            .as_ref()
            .and_then(|c| self.case_consultation(f, c));
        if raw.case_consultation.is_none()
            && let Some((r, o)) = out.iter().find(|(r, _)| r.conditions.case)
        {
            self.err(
                f,
                o.span.start..o.span.start,
                format!(
                    "rule `{}` needs a case, but the agreement has no [case_consultation]",
                    r.id
                ),
                "declare the case consultation: its purposes, openers, max_days and the instruments (law, decree, ordinance or the procureur's authorisation) that set it up",
            );
        }
        let ceilings = raw
            .ceiling
            .iter()
            .filter_map(|c| self.ceiling(f, c))
            .collect();
        let (rules, origins): (Vec<_>, Vec<_>) = out.into_iter().unzip();
        self.agreements.push((
            Agreement {
                id: raw.id.into_inner(),
                title: raw.title,
                owner: raw.owner.into_inner(),
                legal_basis: raw
                    .legal_basis
                    .into_inner()
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                validity,
                description: raw.description,
                case_consultation,
                ceilings,
                provides_findability: raw.provides_findability == Some(true),
                rules,
            },
            origins,
        ));
    }

    fn case_consultation(
        &mut self,
        f: &SourceFile,
        c: &Spanned<RawCaseConsultation>,
    ) -> Option<CaseConsultation> {
        let raw = c.get_ref();
        let mut purposes = Vec::new();
        for p in raw.purposes.get_ref() {
            if self.purpose_ids.contains(p.get_ref()) {
                purposes.push(p.get_ref().clone());
            } else {
                self.err(
                    f,
                    p.span(),
                    format!("unknown purpose `{}`", p.get_ref()),
                    "purposes are declared as [[purpose]] in vocabulary.toml",
                );
            }
        }
        if raw.purposes.get_ref().is_empty() {
            self.err(
                f,
                raw.purposes.span(),
                "a case consultation needs at least one purpose (art. 458ter §1 Sw.)",
                "",
            );
        }
        purposes.sort();
        purposes.dedup();
        let openers = self.selector(f, &raw.openers, false);
        if *raw.max_days.get_ref() == 0 {
            self.err(
                f,
                raw.max_days.span(),
                "max_days must be at least 1",
                "a case lapses this many days after it opened",
            );
        }
        let mut instruments: Vec<Instrument> = Vec::new();
        let mut seen = HashSet::new();
        for i in &raw.instrument {
            let i = i.get_ref();
            self.check_id(f, &i.id, "instrument", false, &mut seen);
            let Some(kind) = InstrumentKind::parse(i.kind.get_ref()) else {
                self.err(
                    f,
                    i.kind.span(),
                    format!("unknown instrument kind `{}`", i.kind.get_ref()),
                    "art. 458ter §1 Sw.: law, decree, ordinance or prosecutor-authorisation",
                );
                continue;
            };
            if i.reference.get_ref().trim().is_empty() {
                self.err(
                    f,
                    i.reference.span(),
                    "an instrument needs its official reference",
                    "the publication or the decision's reference",
                );
            }
            instruments.push(Instrument {
                id: i.id.get_ref().clone(),
                kind,
                reference: i.reference.get_ref().trim().to_owned(),
                title: i.title.clone(),
            });
        }
        if raw.instrument.is_empty() {
            self.err(
                f,
                c.span(),
                "a case consultation needs at least one [[case_consultation.instrument]]",
                "art. 458ter §1 Sw.: a consultation is set up by a law, decree or ordinance, or authorised by the procureur des Konings",
            );
        }
        instruments.sort_by(|a, b| a.id.cmp(&b.id));
        Some(CaseConsultation {
            purposes,
            openers,
            max_days: *raw.max_days.get_ref(),
            use_restriction: raw
                .use_restriction
                .as_ref()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
            instruments,
        })
    }

    fn ceiling(&mut self, f: &SourceFile, c: &Spanned<RawCeiling>) -> Option<Ceiling> {
        let raw = c.get_ref();
        let recipient = self.selector(f, &raw.recipient, false);
        let release = self.release(
            f,
            &Spanned::new(
                c.span(),
                RawRelease {
                    field: raw.field.clone(),
                    form: raw.form.clone(),
                },
            ),
            &[],
        )?;
        Some(Ceiling {
            recipient,
            field: release.field,
            form: release.form,
            description: raw.description.clone(),
        })
    }

    fn conditions(&mut self, f: &SourceFile, c: &RawConditions) -> Conditions {
        let mut elements = Vec::new();
        for e in c.elements.iter().flatten() {
            match self.field_ids.get(e.get_ref()) {
                Some(&fi) => {
                    let ty = self.fields[fi].ty;
                    if !matches!(ty, FieldType::Enum | FieldType::Flag) {
                        self.err(
                            f,
                            e.span(),
                            format!(
                                "legal element `{}` is a {ty}; an element is an enum or a flag",
                                e.get_ref()
                            ),
                            "an element is checked for a valid value: an enum value of the catalogue, or a flag that is true",
                        );
                    } else if !elements.contains(e.get_ref()) {
                        elements.push(e.get_ref().clone());
                    }
                }
                None => self.err(
                    f,
                    e.span(),
                    format!("unknown field `{}` as a legal element", e.get_ref()),
                    "fields are declared in catalogue.toml",
                ),
            }
        }
        Conditions {
            case: c.case == Some(true),
            consent: c.consent == Some(true),
            parental_consent: c.parental_consent == Some(true),
            urgency: c.urgency.as_ref().map(|u| u.min_justification),
            min_words: c.urgency.as_ref().and_then(|u| u.min_words),
            elements,
            holder_weighing: c.holder_weighing == Some(true),
        }
    }

    fn window(
        &mut self,
        f: &SourceFile,
        from: Option<&Spanned<toml::value::Datetime>>,
        until: Option<&Spanned<toml::value::Datetime>>,
    ) -> Window {
        let w = Window {
            from: from.and_then(|d| spanned_instant(f, d, Bound::Start, &mut self.problems)),
            until: until.and_then(|d| spanned_instant(f, d, Bound::End, &mut self.problems)),
        };
        if w.is_empty()
            && let Some(u) = until
        {
            self.err(
                f,
                u.span(),
                "valid_until lies before valid_from",
                "the window would be empty",
            );
        }
        w
    }

    fn selector(
        &mut self,
        f: &SourceFile,
        s: &Spanned<RawSelector>,
        counterpart: bool,
    ) -> Selector {
        let raw = s.get_ref();
        let mut sel = Selector {
            any: raw.any == Some(true),
            same_organisation: raw.same_organisation == Some(true),
            parties: Vec::new(),
            roles: Vec::new(),
        };
        for p in raw.parties.iter().flatten() {
            if self.party_ids.contains(p.get_ref()) {
                sel.parties.push(p.get_ref().clone());
            } else {
                self.err(
                    f,
                    p.span(),
                    format!("unknown party `{}`", p.get_ref()),
                    "parties are declared in parties.toml",
                );
            }
        }
        for r in raw.roles.iter().flatten() {
            if self.role_ids.contains(r.get_ref()) {
                sel.roles.push(r.get_ref().clone());
            } else {
                self.err(
                    f,
                    r.span(),
                    format!("unknown role `{}`", r.get_ref()),
                    "roles are declared as [[role]] in vocabulary.toml",
                );
            }
        }
        sel.parties.sort();
        sel.parties.dedup();
        sel.roles.sort();
        sel.roles.dedup();
        let listed = raw.parties.as_ref().is_some_and(|v| !v.is_empty())
            || raw.roles.as_ref().is_some_and(|v| !v.is_empty());
        if sel.same_organisation && !counterpart {
            self.err(
                f,
                s.span(),
                "`same_organisation` is only for a counterpart selector",
                "",
            );
        } else if sel.same_organisation && (listed || sel.any) {
            self.err(
                f,
                s.span(),
                "`same_organisation` cannot be combined with parties, roles or any",
                "write { same_organisation = true } alone",
            );
        } else if !sel.same_organisation && !sel.any && !listed {
            self.err(
                f,
                s.span(),
                "a party selector must not be empty",
                "name parties = [...] and/or roles = [...], or write { any = true }",
            );
        }
        sel
    }

    fn rule(&mut self, f: &SourceFile, r: RawRule) -> Option<(Rule, Vec<Range<usize>>)> {
        let effect = match r.effect.get_ref().as_str() {
            "permit" => Effect::Permit,
            "forbid" => Effect::Forbid,
            other => {
                self.err(
                    f,
                    r.effect.span(),
                    format!("unknown effect `{other}`"),
                    "use permit or forbid",
                );
                return None;
            }
        };
        let mut kinds = Vec::new();
        for k in r.kinds.get_ref() {
            match ExchangeKind::parse(k.get_ref()) {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => {}
                None => self.err(
                    f,
                    k.span(),
                    format!("unknown exchange kind `{}`", k.get_ref()),
                    "use lookup, request, share or audit",
                ),
            }
        }
        if r.kinds.get_ref().is_empty() {
            self.err(f, r.kinds.span(), "a rule needs at least one kind", "");
        }
        kinds.sort();
        let requester = self.selector(f, &r.requester, false);
        let counterpart = self.selector(f, &r.counterpart, true);
        let mut any_purpose = false;
        let mut purposes = Vec::new();
        for p in r.purposes.get_ref() {
            if p.get_ref() == "*" {
                any_purpose = true;
            } else if self.purpose_ids.contains(p.get_ref()) {
                purposes.push(p.get_ref().clone());
            } else {
                self.err(
                    f,
                    p.span(),
                    format!("unknown purpose `{}`", p.get_ref()),
                    "purposes are declared as [[purpose]] in vocabulary.toml, or write \"*\"",
                );
            }
        }
        if r.purposes.get_ref().is_empty() {
            self.err(
                f,
                r.purposes.span(),
                "a rule needs at least one purpose",
                "",
            );
        }
        if any_purpose {
            purposes.clear();
        }
        purposes.sort();
        purposes.dedup();
        let validity = self.window(f, r.valid_from.as_ref(), r.valid_until.as_ref());
        let conditions = r
            .conditions
            .as_ref()
            .map_or(Conditions::default(), |c| self.conditions(f, c));
        // Conditions that only one kind of exchange can satisfy: a rule of another kind with them
        // would never permit, so it is a mistake to write it.
        if !conditions.elements.is_empty() && kinds.iter().any(|k| *k != ExchangeKind::Share) {
            self.err(
                f,
                r.id.span(),
                "legal elements are supplied with a share: this rule also matches other kinds",
                "keep `elements` on a rule with kinds = [\"share\"]",
            );
        }
        if conditions.parental_consent && !conditions.consent {
            self.err(
                f,
                r.id.span(),
                "`parental_consent` qualifies the consent condition",
                "write consent = true beside it",
            );
        }
        if conditions.holder_weighing && kinds.iter().any(|k| *k != ExchangeKind::Request) {
            self.err(
                f,
                r.id.span(),
                "a holder writes its weighing when it answers a request: this rule also matches other kinds",
                "keep `holder_weighing` on a rule with kinds = [\"request\"]",
            );
        }
        let mut release = Vec::new();
        let mut release_spans = Vec::new();
        let mut forbidden_fields = None;
        let mut obligations = ObligationSpec::default();
        match effect {
            Effect::Permit => {
                if let Some(fl) = &r.fields {
                    let span = fl.first().map_or(r.id.span(), |x| x.span());
                    self.err(
                        f,
                        span,
                        "a permit has a release list, not `fields`",
                        "write [[rule.release]] entries with field and form",
                    );
                }
                let list = r.release.as_deref().unwrap_or_default();
                if list.is_empty() {
                    self.err(
                        f,
                        r.id.span(),
                        "a permit must release at least one field",
                        "add [[rule.release]] entries",
                    );
                }
                for rel in list {
                    if let Some(x) = self.release(f, rel, &release) {
                        release.push(x);
                        release_spans.push(rel.get_ref().field.span());
                    }
                }
                if let Some(o) = &r.obligations {
                    let o = o.get_ref();
                    obligations = ObligationSpec {
                        retention_days: o.retention_days,
                        review: o.review == Some(true),
                        notify: o.notify == Some(true),
                    };
                }
            }
            Effect::Forbid => {
                if let Some(rel) = r.release.as_ref().and_then(|v| v.first()) {
                    self.err(
                        f,
                        rel.span(),
                        "a forbid has no release list",
                        "list the forbidden fields as fields = [...], or omit it to forbid the exchange",
                    );
                }
                if let Some(o) = &r.obligations {
                    self.err(f, o.span(), "a forbid has no obligations", "");
                }
                if let Some(list) = &r.fields {
                    let mut ids = Vec::new();
                    for fl in list {
                        if self.field_ids.contains_key(fl.get_ref()) {
                            ids.push(fl.get_ref().clone());
                        } else {
                            self.err(
                                f,
                                fl.span(),
                                format!("unknown field `{}`", fl.get_ref()),
                                "fields are declared in catalogue.toml",
                            );
                        }
                    }
                    ids.sort();
                    ids.dedup();
                    forbidden_fields = Some(ids);
                }
            }
        }
        let mut order: Vec<usize> = (0..release.len()).collect();
        order.sort_by(|a, b| release[*a].field.cmp(&release[*b].field));
        let release_spans = order.iter().map(|i| release_spans[*i].clone()).collect();
        let release = order.iter().map(|i| release[*i].clone()).collect();
        Some((
            Rule {
                id: r.id.into_inner(),
                effect,
                kinds,
                requester,
                counterpart,
                purposes,
                any_purpose,
                validity,
                description: r.description,
                conditions,
                release,
                forbidden_fields,
                obligations,
            },
            release_spans,
        ))
    }

    fn release(
        &mut self,
        f: &SourceFile,
        rel: &Spanned<RawRelease>,
        so_far: &[Release],
    ) -> Option<Release> {
        let rel = rel.get_ref();
        let Some(&fi) = self.field_ids.get(rel.field.get_ref()) else {
            self.err(
                f,
                rel.field.span(),
                format!("unknown field `{}` in release list", rel.field.get_ref()),
                "fields are declared as [[field]] in catalogue.toml",
            );
            return None;
        };
        let def = &self.fields[fi];
        let (ty, allowed) = (def.ty, def.transforms.clone());
        let form = match rel.form.get_ref().parse::<Transform>() {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    f,
                    rel.form.span(),
                    e.to_string(),
                    "transforms: keep, year_month, year, age_band, postcode, municipality, initials, pseudonym, presence",
                );
                return None;
            }
        };
        if !ty.supports(form) {
            self.err(
                f,
                rel.form.span(),
                format!(
                    "field `{}` is a {ty}, which cannot be released as `{form}`",
                    rel.field.get_ref()
                ),
                &format!(
                    "a {ty} allows: {}",
                    ty.supported()
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        if form != Transform::Drop && !allowed.contains(&form) {
            self.err(
                f,
                rel.form.span(),
                format!(
                    "the catalogue does not allow `{}` as `{form}`",
                    rel.field.get_ref()
                ),
                &format!(
                    "catalogue.toml allows: {}",
                    allowed
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        if so_far.iter().any(|r| r.field == *rel.field.get_ref()) {
            self.err(
                f,
                rel.field.span(),
                format!(
                    "field `{}` is released twice by this rule",
                    rel.field.get_ref()
                ),
                "keep one entry with the most revealing form",
            );
            return None;
        }
        Some(Release {
            field: rel.field.get_ref().clone(),
            form,
        })
    }
}
