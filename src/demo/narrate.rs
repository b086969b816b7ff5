//! How the story is printed: plain aligned text, one block per step saying who acts, what they ask,
//! what the gateway decided and why, which fields went out in which form, and the receipt.

use std::io::Write;

use tonic::{Code, Response, Status};
use tonic_types::StatusExt;

use crate::proto::v1 as pb;

use super::DemoError;
use super::cast::{StoryClock, actor};

/// Width of the label column of a step's detail lines.
const LABEL: usize = 12;
/// Longest text after the label column before a list wraps.
const WRAP: usize = 86;
/// Extra indentation of a list that belongs to the line above it.
const SUBLIST: usize = 5;
/// Indentation of a step's detail lines (under the RPC name).
const INDENT: &str = "         ";

pub(crate) use crate::client::error_json::code_name;

/// The machine-readable reason of a refusal (`google.rpc.ErrorInfo.reason`).
pub(crate) fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

/// A status in one line: code, reason and message.
fn status_line(status: &Status) -> String {
    format!(
        "{} {} ({})",
        code_name(status.code()),
        reason(status),
        status.message()
    )
}

/// The answer of a step the agreements allow; a refusal stops the story.
pub(crate) fn allowed<T>(step: &str, result: Result<Response<T>, Status>) -> Result<T, DemoError> {
    result
        .map(Response::into_inner)
        .map_err(|status| DemoError::unexpected(step, "allowed", status_line(&status)))
}

/// The refusal of a step the agreements refuse, with the expected code (and reason, when given);
/// an answer, or another refusal, stops the story.
pub(crate) fn refused<T>(
    step: &str,
    result: Result<Response<T>, Status>,
    code: Code,
    expected_reason: Option<&str>,
) -> Result<Status, DemoError> {
    let expected = match expected_reason {
        Some(r) => format!("refused with {} {r}", code_name(code)),
        None => format!("refused with {}", code_name(code)),
    };
    match result {
        Ok(_) => Err(DemoError::unexpected(step, expected, "an answer")),
        Err(status) => {
            let reason_ok = expected_reason.is_none_or(|r| reason(&status) == r);
            if status.code() == code && reason_ok && !reason(&status).is_empty() {
                Ok(status)
            } else {
                Err(DemoError::unexpected(step, expected, status_line(&status)))
            }
        }
    }
}

/// A field value as a reader of the story sees it.
pub(crate) fn value_text(value: Option<&pb::FieldValue>) -> String {
    use pb::field_value::Kind;
    match value.and_then(|v| v.kind.as_ref()) {
        None => "(none)".to_owned(),
        Some(Kind::Text(t)) => format!("{t:?}"),
        Some(Kind::Date(d)) => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        Some(Kind::Integer(i)) => i.to_string(),
        Some(Kind::Flag(f)) => if *f { "yes" } else { "no" }.to_owned(),
        Some(Kind::EnumValue(e)) => e.clone(),
        Some(Kind::Address(a)) => format!(
            "{} {}, {} {}",
            a.street, a.house_number, a.postcode, a.municipality
        ),
    }
}

/// The short pseudonym of a subject, from its 64 hex digits.
pub(crate) fn psn(hex: &str) -> String {
    format!("psn:{}", hex.get(..12).unwrap_or(hex))
}

/// The short pseudonym of a subject, from its bytes.
pub(crate) fn psn_bytes(bytes: &[u8]) -> String {
    psn(&hex::encode(bytes))
}

/// Obligations in words.
pub(crate) fn obligations_text(o: Option<&pb::Obligations>) -> String {
    let Some(o) = o else {
        return "none".to_owned();
    };
    let mut parts = Vec::new();
    if o.retention_days > 0 {
        parts.push(format!("retention {} days", o.retention_days));
    }
    if o.review {
        parts.push("flagged for review".to_owned());
    }
    if o.notify {
        parts.push("holder's DPO notified".to_owned());
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints the story to one output.
pub(crate) struct Narrator<'a> {
    out: &'a mut dyn Write,
    clock: StoryClock,
}

impl<'a> Narrator<'a> {
    /// A narrator writing to `out`, telling times from `clock`.
    pub fn new(out: &'a mut dyn Write, clock: StoryClock) -> Narrator<'a> {
        Narrator { out, clock }
    }

    /// The heading of an act and a few lines of context.
    pub fn act(&mut self, number: u32, title: &str, context: &[&str]) -> Result<(), DemoError> {
        writeln!(self.out)?;
        let heading = format!("Act {number}. {title}");
        writeln!(self.out, "{heading}")?;
        writeln!(self.out, "{}", "=".repeat(heading.chars().count()))?;
        for line in context {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// The first line of a step: the time, who acts, and the RPC with its gist.
    pub fn step(&mut self, party: &str, rpc: &str, gist: &str) -> Result<(), DemoError> {
        let now = self.clock.now();
        let who = format!("{party} ({})", actor(party));
        writeln!(self.out)?;
        writeln!(
            self.out,
            "  {:02}:{:02}  {who:<42} {rpc}",
            now.hour(),
            now.minute()
        )?;
        if !gist.is_empty() {
            self.detail("", gist)?;
        }
        Ok(())
    }

    /// A detail line under a step: a label column and its text.
    pub fn detail(&mut self, label: &str, text: &str) -> Result<(), DemoError> {
        writeln!(self.out, "{INDENT}{label:<LABEL$}{text}")?;
        Ok(())
    }

    /// A list under a label, comma-separated and wrapped to the page width.
    pub fn list(&mut self, label: &str, items: &[String]) -> Result<(), DemoError> {
        let last = items.len().saturating_sub(1);
        let pieces = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if i < last {
                    format!("{item},")
                } else {
                    item.clone()
                }
            })
            .collect();
        self.flow(label, pieces, 0)
    }

    /// A list under a label, indented under the line above it.
    pub fn sublist(&mut self, items: &[String]) -> Result<(), DemoError> {
        let last = items.len().saturating_sub(1);
        let pieces = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                if i < last {
                    format!("{item},")
                } else {
                    item.clone()
                }
            })
            .collect();
        self.flow("", pieces, SUBLIST)
    }

    /// Prose under a label, wrapped to the page width.
    pub fn wrap(&mut self, label: &str, text: &str) -> Result<(), DemoError> {
        self.flow(
            label,
            text.split_whitespace().map(str::to_owned).collect(),
            0,
        )
    }

    /// Pieces separated by spaces, as many per line as fit.
    fn flow(&mut self, label: &str, pieces: Vec<String>, indent: usize) -> Result<(), DemoError> {
        let mut label = label;
        let margin = " ".repeat(indent);
        let mut line = margin.clone();
        for piece in pieces {
            if line.len() > indent && line.chars().count() + 1 + piece.chars().count() > WRAP {
                self.detail(label, &line)?;
                label = "";
                line.clone_from(&margin);
            }
            if line.len() > indent {
                line.push(' ');
            }
            line.push_str(&piece);
        }
        self.detail(label, &line)
    }

    /// The decision of an allowed exchange: verdict, reason, rules, legal bases, grounds and
    /// obligations.
    pub fn decision(&mut self, decision: Option<&pb::Decision>) -> Result<(), DemoError> {
        let Some(d) = decision else {
            return self.detail("decision", "(none returned)");
        };
        let verdict = if d.verdict == pb::Verdict::Allow as i32 {
            "ALLOW"
        } else {
            "DENY"
        };
        self.detail("decision", &format!("{verdict} {}", d.reason_code))?;
        let rules = |effect: &str| -> Vec<String> {
            d.matched_rules
                .iter()
                .filter(|r| r.effect == effect)
                .map(|r| format!("{}/{}", r.agreement, r.rule))
                .collect()
        };
        let permits = rules("permit");
        if !permits.is_empty() {
            self.list("permit", &permits)?;
        }
        // A forbid with a field list that matched but was not triggered still removes its
        // fields from the release: say so, or it reads as if it had refused.
        let forbids = rules("forbid");
        if !forbids.is_empty() {
            self.list("forbid", &forbids)?;
            self.detail("", "(their fields can never be released in this exchange)")?;
        }
        if !d.legal_bases.is_empty() {
            self.detail("basis", &d.legal_bases.join(", "))?;
        }
        if !d.ground_refs.is_empty() {
            self.detail("grounds", &d.ground_refs.join(", "))?;
        }
        self.detail("duties", &obligations_text(d.obligations.as_ref()))
    }

    /// The fields a decision allows and their forms.
    pub fn grants(&mut self, label: &str, grants: &[pb::FieldGrant]) -> Result<(), DemoError> {
        let mut label = label;
        for g in grants {
            self.detail(label, &format!("{:<32} as {}", g.field, g.form))?;
            label = "";
        }
        Ok(())
    }

    /// Released fields with their forms and values.
    pub fn released(
        &mut self,
        label: &str,
        released: &[pb::ReleasedFieldValue],
    ) -> Result<(), DemoError> {
        let mut label = label;
        for r in released {
            self.detail(
                label,
                &format!(
                    "{:<32} {:<13} {}",
                    r.field,
                    r.form,
                    value_text(r.value.as_ref())
                ),
            )?;
            label = "";
        }
        if released.is_empty() {
            self.detail(label, "(nothing)")?;
        }
        Ok(())
    }

    /// A refusal: code, reason, and that nothing came back.
    pub fn refusal(&mut self, status: &Status) -> Result<(), DemoError> {
        self.detail(
            "decision",
            &format!("REFUSED {} {}", code_name(status.code()), reason(status)),
        )?;
        self.detail("message", status.message())?;
        let logged = if status.code() == tonic::Code::InvalidArgument {
            "nothing; bad input changes nothing and is not logged"
        } else {
            "nothing; the refusal itself is in the audit log"
        };
        self.detail("released", logged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(f: impl FnOnce(&mut Narrator<'_>)) -> String {
        let mut out = Vec::new();
        let mut narrator = Narrator::new(&mut out, StoryClock::new());
        f(&mut narrator);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn long_lists_wrap_under_their_label_and_keep_every_item() {
        let items: Vec<String> = (0..30).map(|i| format!("field.number_{i}")).collect();
        let text = printed(|n| n.list("fields", &items).expect("printed"));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1);
        assert!(lines[0].starts_with(&format!("{INDENT}fields")));
        for line in &lines {
            assert!(
                line.chars().count() <= INDENT.len() + LABEL + WRAP,
                "{line}"
            );
        }
        for item in &items {
            assert!(text.contains(item.as_str()));
        }
        assert_eq!(text.matches(',').count(), items.len() - 1);
    }

    #[test]
    fn values_read_as_people_write_them() {
        use pb::field_value::Kind;
        let value = |kind| Some(pb::FieldValue { kind: Some(kind) });
        let date = value(Kind::Date(pb::Date {
            year: 1991,
            month: 4,
            day: 2,
        }));
        assert_eq!(value_text(date.as_ref()), "1991-04-02");
        assert_eq!(value_text(value(Kind::Flag(false)).as_ref()), "no");
        assert_eq!(value_text(None), "(none)");
        assert_eq!(psn(&"ab".repeat(32)), "psn:abababababab");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }
}
