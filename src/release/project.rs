//! Projection of a holder's record onto a decision, and the salted commitment to it.

use std::collections::BTreeMap;
use std::fmt;

use ring::digest::{Context, SHA256};
use time::OffsetDateTime;

use super::apply::{Binding, apply};
use super::key::ReleaseKey;
use super::value::{Record, ReleasedValue};
use crate::policy::{Decision, Transform};

/// What a projection needs besides the record and the decision.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseContext<'a> {
    /// The pseudonym key.
    pub key: &'a ReleaseKey,
    /// The party that receives the data (pseudonyms are bound to it).
    pub recipient: &'a str,
    /// The decision time (age bands are computed at it).
    pub now: OffsetDateTime,
}

/// The minimal fields released, and the names (never values) of what was stripped.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Projection {
    /// Field id → (form, released value).
    pub released: BTreeMap<String, (Transform, ReleasedValue)>,
    /// Ids of fields in the record that were not released (not allowed, unknown or of the wrong type).
    pub stripped: Vec<String>,
}

impl fmt::Debug for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Projection")
            .field(
                "released",
                &self
                    .released
                    .iter()
                    .map(|(k, (t, _))| (k, t))
                    .collect::<Vec<_>>(),
            )
            .field("stripped", &self.stripped)
            .finish()
    }
}

/// Projects `record` onto `decision`: only granted fields, in their granted form, of the
/// catalogue type; everything else is stripped. A denial releases nothing.
pub fn project(record: &Record, decision: &Decision, ctx: &ReleaseContext<'_>) -> Projection {
    let mut out = Projection::default();
    for (field, value) in &record.0 {
        let grant = decision
            .grant(field)
            .filter(|_| decision.is_allowed())
            .filter(|g| g.ty == value.ty());
        let released = grant.and_then(|g| {
            let bind = Binding {
                key: ctx.key,
                agreement: &g.rule.agreement,
                recipient: ctx.recipient,
                field,
            };
            apply(value, g.form, ctx.now, &bind).map(|v| (g.form, v))
        });
        match released {
            Some(r) => {
                out.released.insert(field.clone(), r);
            }
            None => out.stripped.push(field.clone()),
        }
    }
    // A granted presence reports absence too: "true when a value exists".
    if decision.is_allowed() {
        for g in &decision.fields {
            if g.form == Transform::Presence && !record.0.contains_key(&g.field) {
                out.released.insert(
                    g.field.clone(),
                    (Transform::Presence, ReleasedValue::Flag(false)),
                );
            }
        }
    }
    out
}

struct Canon(Context);

impl Canon {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
    }
}

impl Projection {
    /// SHA-256 over the salt and a canonical, length-prefixed encoding of the released fields
    /// (sorted by id). The audit log keeps the commitment; the salt goes only to the parties.
    pub fn commitment(&self, salt: &[u8; 32]) -> [u8; 32] {
        let mut c = Canon(Context::new(&SHA256));
        c.bytes(b"ketenpoort/release-commitment/v1");
        c.bytes(salt);
        c.0.update(&(self.released.len() as u64).to_be_bytes());
        for (field, (form, value)) in &self.released {
            c.bytes(field.as_bytes());
            c.bytes(form.as_str().as_bytes());
            match value {
                ReleasedValue::Text(s) => {
                    c.bytes(b"text");
                    c.bytes(s.as_bytes());
                }
                ReleasedValue::Enum(s) => {
                    c.bytes(b"enum");
                    c.bytes(s.as_bytes());
                }
                ReleasedValue::Date(_) => {
                    c.bytes(b"date");
                    c.bytes(value.to_string().as_bytes());
                }
                ReleasedValue::Integer(i) => {
                    c.bytes(b"integer");
                    c.bytes(&i.to_be_bytes());
                }
                ReleasedValue::Flag(b) => {
                    c.bytes(b"flag");
                    c.bytes(&[u8::from(*b)]);
                }
                ReleasedValue::Address(a) => {
                    c.bytes(b"address");
                    for part in [&a.street, &a.house_number, &a.postcode, &a.municipality] {
                        c.bytes(part.as_bytes());
                    }
                }
            }
        }
        let d = c.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}
