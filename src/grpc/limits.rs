//! Every limit on what a request may carry, in one place: the request size, the decoding depth,
//! each string field's longest length and character class, each repeated field's largest count,
//! and how much an error about bad input may say.
//!
//! docs/wire-limits.md shows these as a table per RPC; a test renders that table from
//! [`FIELD_LIMITS`] and the wire contract's descriptors, so the document cannot drift from the
//! code, and fails when a request's string or repeated field has no limit here.

/// Largest request message accepted, in bytes (its protobuf encoding). A larger one is refused
/// with INVALID_ARGUMENT (`MESSAGE_TOO_LARGE`) before it is read further or decoded.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Deepest nesting of messages and groups that decodes. It is prost's recursion limit
/// (`prost::RECURSION_LIMIT`, fixed at 100 like protobuf C++'s, unless prost were built with its
/// `no-recursion-limit` feature, which we never enable). The wire contract itself nests at most
/// 4 deep (ExplainRequest → FieldEntry → FieldValue → Address); deeper input can only be unknown
/// groups, which prost skips one level at a time, and beyond this limit it is refused with
/// INVALID_ARGUMENT (`MESSAGE_TOO_DEEP`).
pub const MAX_DECODING_DEPTH: u32 = 100;

/// Most field violations listed in one error; the `ErrorInfo` metadata `violations` then gives
/// the count of all of them.
pub const MAX_REPORTED_VIOLATIONS: usize = 8;
/// Longest field path in a field violation, in bytes.
pub const MAX_VIOLATION_FIELD_BYTES: usize = 64;
/// Longest description in a field violation, in bytes.
pub const MAX_VIOLATION_DESCRIPTION_BYTES: usize = 120;
/// Longest status message of an error about bad input, in bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 256;

/// Most catalogue fields a request may ask for, supply, restrict the form of, or give as legal
/// elements (the shipped catalogue has 22).
pub const MAX_FIELDS: usize = 64;
/// Most parties a case may have as participants, or a consent as recipients.
pub const MAX_PARTIES: usize = 64;
/// Most subjects of one case consultation.
pub const MAX_CASE_SUBJECTS: usize = 100;

/// Which characters a string field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// An id of the policy (party, purpose, agreement, instrument, catalogue field, transform,
    /// enumeration value, exchange kind): ASCII lower-case letters, digits, `-`, `_` and `.`.
    PolicyId,
    /// An id the gateway issued (ticket, signal, consent, case, exchange, page token): ASCII
    /// lower-case letters, digits and `-`.
    GatewayId,
    /// An exchange as audit entries name it: a gateway id, or `case:` / `consent:` and one.
    ExchangeRef,
    /// Decimal digits.
    Digits,
    /// A reference in a party's own register (an access request): ASCII letters, digits, `.`,
    /// `_`, `/` and `-`, so that it can never hold a name or an address.
    RegisterRef,
    /// A national register or BIS number: digits, `.`, `-` and space.
    SubjectNumber,
    /// One line of text: any character except the control characters of [`is_control`].
    Line,
    /// Free text: a line's characters, plus newline (U+000A) and tab (U+0009).
    Text,
}

impl Class {
    /// Whether a value of this class may hold `c`.
    pub fn allows(self, c: char) -> bool {
        let id = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        match self {
            Class::PolicyId => id(c) || c == '_' || c == '.',
            Class::GatewayId => id(c),
            Class::ExchangeRef => id(c) || c == ':',
            Class::Digits => c.is_ascii_digit(),
            Class::RegisterRef => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'),
            Class::SubjectNumber => c.is_ascii_digit() || matches!(c, '.' | '-' | ' '),
            Class::Line => !is_control(c),
            Class::Text => !is_control(c) || c == '\n' || c == '\t',
        }
    }

    /// How docs/wire-limits.md and field violations name the class.
    pub fn name(self) -> &'static str {
        match self {
            Class::PolicyId => "policy id",
            Class::GatewayId => "gateway id",
            Class::ExchangeRef => "exchange reference",
            Class::Digits => "digits",
            Class::RegisterRef => "register reference",
            Class::SubjectNumber => "subject number",
            Class::Line => "line",
            Class::Text => "text",
        }
    }

    /// What a field violation says when a value holds a character outside the class.
    pub fn refusal(self) -> &'static str {
        match self {
            Class::PolicyId => "use lower-case ASCII letters, digits, '-', '_' and '.'",
            Class::GatewayId => "use lower-case ASCII letters, digits and '-'",
            Class::ExchangeRef => "use lower-case ASCII letters, digits, '-' and ':'",
            Class::Digits => "use decimal digits",
            Class::RegisterRef => "use ASCII letters, digits, '.', '_', '/' and '-'",
            Class::SubjectNumber => "use digits, with '.', '-' or spaces as separators",
            Class::Line => "control characters are not allowed",
            Class::Text => "control characters other than newline and tab are not allowed",
        }
    }
}

/// A control character that no string field accepts (only free text takes newline and tab):
/// Unicode's control characters (C0, DEL and C1, category Cc), the line and paragraph
/// separators (U+2028, U+2029), and the bidirectional embedding, override and isolate controls
/// (U+202A..U+202E, U+2066..U+2069), which make a text read differently from what it holds.
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The limits of one string field: its longest length in characters, and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// Longest value, in characters (Unicode scalar values; bytes for the ASCII classes).
    pub max_chars: usize,
    /// Which characters it may hold.
    pub class: Class,
}

const fn text(max_chars: usize, class: Class) -> Text {
    Text { max_chars, class }
}

/// A national register or BIS number.
pub const SUBJECT_NUMBER: Text = text(32, Class::SubjectNumber);
/// An id of the policy: party, purpose, agreement, instrument, catalogue field, enum value.
pub const POLICY_ID: Text = text(64, Class::PolicyId);
/// A transform's name, or an exchange kind.
pub const FORM: Text = text(32, Class::PolicyId);
/// An id the gateway issued, or a page token of a listing.
pub const GATEWAY_ID: Text = text(64, Class::GatewayId);
/// An exchange id as the audit log names it.
pub const EXCHANGE_REF: Text = text(80, Class::ExchangeRef);
/// A page token of the audit log (an entry index).
pub const AUDIT_PAGE_TOKEN: Text = text(20, Class::Digits);
/// The reference of a data subject's access request in the caller's register.
pub const ACCESS_REQUEST: Text = text(64, Class::RegisterRef);
/// A holder's own file reference.
pub const HOLDER_REFERENCE: Text = text(128, Class::Line);
/// A reference to evidence, or the version of the information a subject was given.
pub const REFERENCE: Text = text(256, Class::Line);
/// A written justification, weighing part or review note. The policy's `[limits]
/// max_justification` (4,000 in the shipped set) bounds it too; this bound holds whatever the
/// policy says.
pub const JUSTIFICATION: Text = text(16_384, Class::Text);
/// A supplied field's text value.
pub const FIELD_TEXT: Text = text(4_000, Class::Text);
/// A street or municipality.
pub const ADDRESS_LINE: Text = text(128, Class::Line);
/// A house number (with box) or postcode.
pub const ADDRESS_SHORT: Text = text(32, Class::Line);

/// The limits of one string or repeated field of a request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimit {
    /// For a repeated field: its largest count.
    pub max_count: Option<usize>,
    /// For a string field (or each string of a repeated one): its length and class.
    pub text: Option<Text>,
    /// For a justification: also bounded by the policy's `max_justification`.
    pub policy_bound: bool,
    /// What else the gateway requires of it, for docs/wire-limits.md.
    pub note: &'static str,
}

const fn string(text: Text, note: &'static str) -> FieldLimit {
    FieldLimit {
        max_count: None,
        text: Some(text),
        policy_bound: false,
        note,
    }
}

const fn justification(note: &'static str) -> FieldLimit {
    FieldLimit {
        policy_bound: true,
        ..string(JUSTIFICATION, note)
    }
}

const fn repeated(max: usize, note: &'static str) -> FieldLimit {
    FieldLimit {
        max_count: Some(max),
        text: None,
        policy_bound: false,
        note,
    }
}

const fn strings(max: usize, text: Text, note: &'static str) -> FieldLimit {
    FieldLimit {
        max_count: Some(max),
        ..string(text, note)
    }
}

const PURPOSE: FieldLimit = string(POLICY_ID, "required; a purpose of the policy vocabulary");
const JUSTIFICATION_NOTE: &str = "optional; some rules require one";
const TICKET: FieldLimit = string(GATEWAY_ID, "required");
const LIST_TOKEN: FieldLimit = string(GATEWAY_ID, "optional; from the previous page");

/// The limits of every string and repeated field of every request, by `Message.field`. Nested
/// messages (Subject, FieldRequest, FieldEntry, FieldValue, Address, Weighing, ReferenceGround)
/// have their own rows, which hold wherever they appear.
pub const FIELD_LIMITS: &[(&str, FieldLimit)] = &[
    // Shared messages.
    (
        "Subject.number",
        string(SUBJECT_NUMBER, "11 digits with a valid mod-97 check"),
    ),
    (
        "FieldRequest.field",
        string(POLICY_ID, "required; a field of the catalogue"),
    ),
    (
        "FieldRequest.form",
        string(FORM, "optional; a transform the field's type supports"),
    ),
    (
        "FieldEntry.field",
        string(POLICY_ID, "required; a field of the catalogue"),
    ),
    ("FieldValue.text", string(FIELD_TEXT, "")),
    ("FieldValue.enum_value", string(POLICY_ID, "")),
    ("Address.street", string(ADDRESS_LINE, "")),
    ("Address.house_number", string(ADDRESS_SHORT, "")),
    ("Address.postcode", string(ADDRESS_SHORT, "")),
    ("Address.municipality", string(ADDRESS_LINE, "")),
    (
        "Weighing.danger",
        justification("required where necessity applies"),
    ),
    (
        "Weighing.no_other_way",
        justification("required where necessity applies"),
    ),
    (
        "Weighing.proportionality",
        justification("required where necessity applies"),
    ),
    (
        "ReferenceGround.consent_id",
        string(GATEWAY_ID, "one of the three is required"),
    ),
    (
        "ReferenceGround.case_id",
        string(GATEWAY_ID, "one of the three is required"),
    ),
    (
        "ReferenceGround.agreement",
        string(POLICY_ID, "one of the three is required"),
    ),
    // Exchange.
    (
        "RegisterReferenceRequest.holder_reference",
        string(HOLDER_REFERENCE, "optional"),
    ),
    ("LookupRequest.purpose", PURPOSE),
    (
        "LookupRequest.justification",
        justification(JUSTIFICATION_NOTE),
    ),
    (
        "RequestContextRequest.holder",
        string(POLICY_ID, "required; a party of the policy"),
    ),
    ("RequestContextRequest.purpose", PURPOSE),
    (
        "RequestContextRequest.fields",
        repeated(MAX_FIELDS, "at least one"),
    ),
    (
        "RequestContextRequest.justification",
        justification(JUSTIFICATION_NOTE),
    ),
    ("ListIncomingRequest.page_token", LIST_TOKEN),
    ("RespondRequest.ticket_id", TICKET),
    ("RespondRequest.fields", repeated(MAX_FIELDS, "")),
    ("DeclineRequest.ticket_id", TICKET),
    ("GetResultRequest.ticket_id", TICKET),
    (
        "ShareRequest.recipient",
        string(POLICY_ID, "required; a party of the policy"),
    ),
    ("ShareRequest.purpose", PURPOSE),
    ("ShareRequest.fields", repeated(MAX_FIELDS, "at least one")),
    (
        "ShareRequest.justification",
        justification(JUSTIFICATION_NOTE),
    ),
    ("ShareRequest.forms", repeated(MAX_FIELDS, "")),
    ("ListInboxRequest.page_token", LIST_TOKEN),
    ("AcknowledgeRequest.signal_id", TICKET),
    // Grounds.
    (
        "OpenCaseRequest.case_id",
        string(GATEWAY_ID, "optional; the gateway assigns one"),
    ),
    ("OpenCaseRequest.purpose", PURPOSE),
    (
        "OpenCaseRequest.participants",
        strings(
            MAX_PARTIES,
            POLICY_ID,
            "at least one; parties of the policy",
        ),
    ),
    (
        "OpenCaseRequest.subjects",
        repeated(MAX_CASE_SUBJECTS, "at least one"),
    ),
    (
        "OpenCaseRequest.agreement",
        string(POLICY_ID, "required; an agreement with case consultations"),
    ),
    (
        "OpenCaseRequest.instrument",
        string(POLICY_ID, "required; an instrument the agreement names"),
    ),
    ("CloseCaseRequest.case_id", TICKET),
    ("RenewCaseRequest.case_id", TICKET),
    ("RecordConsentRequest.purpose", PURPOSE),
    (
        "RecordConsentRequest.recipients",
        strings(
            MAX_PARTIES,
            POLICY_ID,
            "at least one; parties of the policy",
        ),
    ),
    (
        "RecordConsentRequest.evidence",
        string(REFERENCE, "required"),
    ),
    (
        "RecordConsentRequest.information_version",
        string(REFERENCE, "required"),
    ),
    ("RevokeConsentRequest.consent_id", TICKET),
    // Audit.
    ("ListReviewsRequest.page_token", LIST_TOKEN),
    ("RecordReviewRequest.exchange_id", TICKET),
    ("RecordReviewRequest.note", justification("optional")),
    ("SearchEntriesRequest.party", string(POLICY_ID, "optional")),
    (
        "SearchEntriesRequest.exchange_id",
        string(EXCHANGE_REF, "optional"),
    ),
    (
        "SearchEntriesRequest.agreement",
        string(POLICY_ID, "optional"),
    ),
    (
        "SearchEntriesRequest.page_token",
        string(AUDIT_PAGE_TOKEN, "optional; from the previous page"),
    ),
    (
        "SubjectReportRequest.access_request",
        string(
            ACCESS_REQUEST,
            "required; the access request's reference in the caller's register, never a name",
        ),
    ),
    // Policies.
    (
        "ExplainRequest.kind",
        string(FORM, "required; lookup, request, share or audit"),
    ),
    (
        "ExplainRequest.requester",
        string(
            POLICY_ID,
            "optional (the caller when empty); a party of the policy",
        ),
    ),
    (
        "ExplainRequest.counterpart",
        string(POLICY_ID, "required; a party of the policy"),
    ),
    ("ExplainRequest.purpose", PURPOSE),
    ("ExplainRequest.fields", repeated(MAX_FIELDS, "")),
    (
        "ExplainRequest.justification",
        justification(JUSTIFICATION_NOTE),
    ),
    ("ExplainRequest.elements", repeated(MAX_FIELDS, "")),
];

/// The limits of `Message.field`, if it is a request's string or repeated field.
pub fn field_limit(message_field: &str) -> Option<&'static FieldLimit> {
    FIELD_LIMITS
        .iter()
        .find(|(name, _)| *name == message_field)
        .map(|(_, limit)| limit)
}
