//! The policy-set digest: SHA-256 over a canonical encoding of the compiled set.
//!
//! Everything is visited in id order (the model is sorted at load, and set-like lists are
//! sorted), and every string is length-prefixed, so neither file names, file order, rule order
//! nor formatting change the digest, while any change in meaning does.

use ring::digest::{Context, SHA256};
use time::OffsetDateTime;

use super::model::{Selector, Window};
use super::set::PolicySet;

struct Canon(Context);

impl Canon {
    fn tag(&mut self, t: &str) {
        self.str(t);
    }
    fn str(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_be_bytes());
        self.0.update(s.as_bytes());
    }
    fn opt(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.update(&[1]);
                self.str(s);
            }
            None => self.0.update(&[0]),
        }
    }
    fn num(&mut self, n: u64) {
        self.0.update(&n.to_be_bytes());
    }
    fn flag(&mut self, b: bool) {
        self.0.update(&[u8::from(b)]);
    }
    fn list<S: AsRef<str>>(&mut self, items: &[S]) {
        let mut v: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        v.sort_unstable();
        self.num(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
    fn time(&mut self, t: Option<OffsetDateTime>) {
        match t {
            Some(t) => {
                self.0.update(&[1]);
                self.0.update(&t.unix_timestamp_nanos().to_be_bytes());
            }
            None => self.0.update(&[0]),
        }
    }
    fn window(&mut self, w: &Window) {
        self.time(w.from);
        self.time(w.until);
    }
    fn selector(&mut self, s: &Selector) {
        self.flag(s.any);
        self.flag(s.same_organisation);
        self.list(&s.parties);
        self.list(&s.roles);
    }
}

/// Computes the digest of a compiled set.
pub(crate) fn digest(set: &PolicySet) -> [u8; 32] {
    let mut c = Canon(Context::new(&SHA256));
    c.tag("ketenpoort/policy-set/v2");
    c.num(u64::from(set.max_justification));
    c.num(set.parties.len() as u64);
    for p in &set.parties {
        c.tag("party");
        c.str(&p.id);
        c.str(&p.name);
        c.list(&p.roles);
        c.str(&p.organisation);
        c.str(&p.contact_point);
        c.opt(p.dpo.as_deref());
        c.num(p.raised.len() as u64);
        for r in &p.raised {
            c.list(&r.fields);
            c.str(r.to.as_str());
        }
    }
    c.num(set.roles.len() as u64);
    for r in &set.roles {
        c.tag("role");
        c.str(&r.id);
        c.str(&r.title);
    }
    c.num(set.purposes.len() as u64);
    for p in &set.purposes {
        c.tag("purpose");
        c.str(&p.id);
        c.str(&p.title);
        c.opt(p.parent.as_deref());
        c.opt(p.dpv.as_deref());
    }
    c.num(set.legal_bases.len() as u64);
    for l in &set.legal_bases {
        c.tag("legal_basis");
        c.str(&l.id);
        c.str(&l.title);
        c.opt(l.citation.as_deref());
        let allows: Vec<&str> = l.allows.iter().map(|a| a.as_str()).collect();
        c.list(&allows);
    }
    c.num(set.fields.len() as u64);
    for f in &set.fields {
        c.tag("field");
        c.str(&f.id);
        c.opt(f.title.as_deref());
        c.str(f.ty.as_str());
        c.str(f.sensitivity.as_str());
        let t: Vec<&str> = f.transforms.iter().map(|t| t.as_str()).collect();
        c.list(&t);
        // Enum values keep their order: it is the order a DPO reads and a UI shows.
        c.num(f.values.len() as u64);
        for v in &f.values {
            c.str(v);
        }
    }
    c.num(set.agreements.len() as u64);
    for a in &set.agreements {
        c.tag("agreement");
        c.str(&a.id);
        c.str(&a.title);
        c.str(&a.owner);
        c.list(&a.legal_basis);
        c.window(&a.validity);
        c.opt(a.description.as_deref());
        match &a.case_consultation {
            Some(cc) => {
                c.tag("case_consultation");
                c.list(&cc.purposes);
                c.selector(&cc.openers);
                c.num(u64::from(cc.max_days));
                c.opt(cc.use_restriction.as_deref());
                c.num(cc.instruments.len() as u64);
                for i in &cc.instruments {
                    c.str(&i.id);
                    c.str(i.kind.as_str());
                    c.str(&i.reference);
                    c.opt(i.title.as_deref());
                }
            }
            None => c.tag("no-case-consultation"),
        }
        c.flag(a.provides_findability);
        c.num(a.ceilings.len() as u64);
        for x in &a.ceilings {
            c.selector(&x.recipient);
            c.str(&x.field);
            c.str(x.form.as_str());
            c.opt(x.description.as_deref());
        }
        c.num(a.rules.len() as u64);
        for r in &a.rules {
            c.tag("rule");
            c.str(&r.id);
            c.str(r.effect.as_str());
            let k: Vec<&str> = r.kinds.iter().map(|k| k.as_str()).collect();
            c.list(&k);
            c.selector(&r.requester);
            c.selector(&r.counterpart);
            c.flag(r.any_purpose);
            c.list(&r.purposes);
            c.window(&r.validity);
            c.opt(r.description.as_deref());
            c.flag(r.conditions.case);
            c.flag(r.conditions.consent);
            c.flag(r.conditions.parental_consent);
            c.opt(r.conditions.urgency.map(|u| u.to_string()).as_deref());
            c.opt(r.conditions.min_words.map(|u| u.to_string()).as_deref());
            c.list(&r.conditions.elements);
            c.flag(r.conditions.holder_weighing);
            c.num(r.release.len() as u64);
            for rel in &r.release {
                c.str(&rel.field);
                c.str(rel.form.as_str());
            }
            match &r.forbidden_fields {
                Some(f) => {
                    c.flag(true);
                    c.list(f);
                }
                None => c.flag(false),
            }
            c.opt(
                r.obligations
                    .retention_days
                    .map(|d| d.to_string())
                    .as_deref(),
            );
            c.flag(r.obligations.review);
            c.flag(r.obligations.notify);
        }
    }
    let d = c.0.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
