//! The stored forms of operational state, encoded with prost (never bincode; see STACK-NOTES).
//!
//! Subjects appear only as pseudonyms (hex). Payloads (the projected, already minimised fields
//! and the justification that travels with them) are kept only until fetched or until their
//! retention ends, sealed under a key of their own (see [`super::payload`]).

/// A holder's registration that it knows a subject.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReferenceRecord {
    /// The holder party.
    #[prost(string, tag = "1")]
    pub holder: String,
    /// The holder's own opaque file reference.
    #[prost(string, tag = "2")]
    pub holder_reference: String,
    /// When it was registered, Unix seconds.
    #[prost(int64, tag = "3")]
    pub registered: i64,
    /// The ground of the disclosure: `consent`, `case` or `agreement`.
    #[prost(string, tag = "4")]
    pub ground_kind: String,
    /// The consent id, case id or agreement id.
    #[prost(string, tag = "5")]
    pub ground_id: String,
}

/// A field the requester asked for (field and optional form), kept to re-decide at answer time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AskedField {
    /// Catalogue field id.
    #[prost(string, tag = "1")]
    pub field: String,
    /// Requested transform name; empty for none.
    #[prost(string, tag = "2")]
    pub form: String,
}

/// A request ticket and, once answered, its payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TicketRecord {
    /// Ticket id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The requesting party.
    #[prost(string, tag = "2")]
    pub requester: String,
    /// The requesting actor.
    #[prost(string, tag = "3")]
    pub actor: String,
    /// The holder asked.
    #[prost(string, tag = "4")]
    pub holder: String,
    /// Purpose.
    #[prost(string, tag = "5")]
    pub purpose: String,
    /// Subject pseudonym, hex.
    #[prost(string, tag = "6")]
    pub subject: String,
    /// What the requester asked for.
    #[prost(message, repeated, tag = "7")]
    pub asked: Vec<AskedField>,
    /// What the decision at request time allows, in the wire's grant encoding (one shape from
    /// the decision to the holder's listing).
    #[prost(message, repeated, tag = "8")]
    pub grants: Vec<crate::proto::v1::FieldGrant>,
    /// `TicketState` number of the wire contract.
    #[prost(int32, tag = "10")]
    pub state: i32,
    /// Created, Unix seconds.
    #[prost(int64, tag = "11")]
    pub created: i64,
    /// Pending until, Unix seconds.
    #[prost(int64, tag = "12")]
    pub expires: i64,
    /// `DeclineReason` number, when declined.
    #[prost(int32, tag = "13")]
    pub decline_reason: i32,
    /// Salt of the payload commitment.
    #[prost(bytes = "vec", tag = "15")]
    pub salt: Vec<u8>,
    /// Payload kept until, Unix seconds (retention obligation).
    #[prost(int64, tag = "16")]
    pub retain_until: i64,
    /// Trace id of the request.
    #[prost(string, tag = "17")]
    pub trace_id: String,
    /// The decision asks the holder for its own weighing (necessity).
    #[prost(bool, tag = "18")]
    pub weighing_required: bool,
    /// The use restriction binding the answer, set when the answer goes through a case.
    #[prost(string, tag = "19")]
    pub use_restriction: String,
    /// The payload (the justification and, once answered, the released fields), sealed under
    /// the key in `key_slot`; empty once delivered, declined or expired.
    #[prost(bytes = "vec", tag = "20")]
    pub sealed: Vec<u8>,
    /// The payload key's slot in the key file; 0 for none.
    #[prost(uint32, tag = "21")]
    pub key_slot: u32,
}

/// A pushed signal waiting for its recipient.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SignalRecord {
    /// Signal id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The sending party.
    #[prost(string, tag = "2")]
    pub sender: String,
    /// The sending actor.
    #[prost(string, tag = "3")]
    pub actor: String,
    /// The recipient party.
    #[prost(string, tag = "4")]
    pub recipient: String,
    /// Purpose.
    #[prost(string, tag = "5")]
    pub purpose: String,
    /// Subject pseudonym, hex.
    #[prost(string, tag = "6")]
    pub subject: String,
    /// Salt of the payload commitment.
    #[prost(bytes = "vec", tag = "8")]
    pub salt: Vec<u8>,
    /// Created, Unix seconds.
    #[prost(int64, tag = "9")]
    pub created: i64,
    /// Payload kept until, Unix seconds.
    #[prost(int64, tag = "10")]
    pub retain_until: i64,
    /// The use restriction binding the payload (art. 458ter §2 Sw.), if it went through a case.
    #[prost(string, tag = "12")]
    pub use_restriction: String,
    /// The payload (the released fields and the justification), sealed under the key in
    /// `key_slot`.
    #[prost(bytes = "vec", tag = "13")]
    pub sealed: Vec<u8>,
    /// The payload key's slot in the key file; 0 for none.
    #[prost(uint32, tag = "14")]
    pub key_slot: u32,
}

/// A flagged exchange waiting in one reviewer's queue.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReviewQueueRecord {
    /// The exchange id.
    #[prost(string, tag = "1")]
    pub exchange_id: String,
    /// Why it is flagged: review, notify, necessity, special-category.
    #[prost(string, repeated, tag = "2")]
    pub reasons: Vec<String>,
    /// When it was flagged, Unix seconds.
    #[prost(int64, tag = "3")]
    pub flagged: i64,
}

/// A review a reviewer recorded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReviewRecord {
    /// The exchange id.
    #[prost(string, tag = "1")]
    pub exchange_id: String,
    /// `ReviewOutcome` number of the wire contract.
    #[prost(int32, tag = "2")]
    pub outcome: i32,
    /// The reviewer's note.
    #[prost(string, tag = "3")]
    pub note: String,
    /// Salt of the note's commitment in the review's entry.
    #[prost(bytes = "vec", tag = "4")]
    pub salt: Vec<u8>,
    /// When it was recorded, Unix seconds.
    #[prost(int64, tag = "5")]
    pub recorded: i64,
}

/// The texts of a necessity exchange, kept for the holder's DPO and the supervisor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NecessityRecord {
    /// The exchange id.
    #[prost(string, tag = "1")]
    pub exchange_id: String,
    /// The holder whose DPO reviews it.
    #[prost(string, tag = "2")]
    pub holder: String,
    /// The requester's justification.
    #[prost(string, tag = "3")]
    pub justification: String,
    /// Salt of its commitment.
    #[prost(bytes = "vec", tag = "4")]
    pub justification_salt: Vec<u8>,
    /// The holder's weighing: the danger.
    #[prost(string, tag = "5")]
    pub danger: String,
    /// Why no other way is left.
    #[prost(string, tag = "6")]
    pub no_other_way: String,
    /// Why the release is proportionate.
    #[prost(string, tag = "7")]
    pub proportionality: String,
    /// Salt of the weighing's commitment; empty until the holder answered.
    #[prost(bytes = "vec", tag = "8")]
    pub weighing_salt: Vec<u8>,
}

/// A 458ter case consultation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CaseRecord {
    /// Case id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The party that opened it.
    #[prost(string, tag = "2")]
    pub opener: String,
    /// Purpose.
    #[prost(string, tag = "3")]
    pub purpose: String,
    /// Participating parties.
    #[prost(string, repeated, tag = "4")]
    pub participants: Vec<String>,
    /// Subject pseudonyms, hex.
    #[prost(string, repeated, tag = "5")]
    pub subjects: Vec<String>,
    /// The agreement whose case consultations it belongs to.
    #[prost(string, tag = "6")]
    pub agreement: String,
    /// Opened, Unix seconds.
    #[prost(int64, tag = "7")]
    pub opened: i64,
    /// Closed, Unix seconds; absent while open.
    #[prost(int64, optional, tag = "8")]
    pub closed: Option<i64>,
    /// The agreement's instrument it rests on.
    #[prost(string, tag = "9")]
    pub instrument: String,
    /// When it lapses unless closed earlier, Unix seconds.
    #[prost(int64, tag = "10")]
    pub ends: i64,
    /// When it was last renewed, Unix seconds; absent if never.
    #[prost(int64, optional, tag = "11")]
    pub renewed: Option<i64>,
}

/// A subject's consent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsentRecord {
    /// Consent id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// The party that recorded it.
    #[prost(string, tag = "2")]
    pub recorder: String,
    /// Subject pseudonym, hex.
    #[prost(string, tag = "3")]
    pub subject: String,
    /// Purpose consented to.
    #[prost(string, tag = "4")]
    pub purpose: String,
    /// Parties that may receive data.
    #[prost(string, repeated, tag = "5")]
    pub recipients: Vec<String>,
    /// Evidence reference.
    #[prost(string, tag = "6")]
    pub evidence: String,
    /// Given, Unix seconds.
    #[prost(int64, tag = "7")]
    pub given: i64,
    /// Expires (exclusive), Unix seconds.
    #[prost(int64, tag = "8")]
    pub expires: i64,
    /// Revoked, Unix seconds.
    #[prost(int64, optional, tag = "9")]
    pub revoked: Option<i64>,
    /// `ConsentGiver` number of the wire contract.
    #[prost(int32, tag = "10")]
    pub given_by: i32,
    /// The version of the information the subject was given.
    #[prost(string, tag = "11")]
    pub information_version: String,
    /// `MinorCapacity` number of the wire contract.
    #[prost(int32, tag = "12")]
    pub minor: i32,
    /// Who revoked it (a party id), once revoked.
    #[prost(string, tag = "13")]
    pub revoked_by: String,
    /// A capable minor's own consent, with a parent's beside it.
    #[prost(bool, tag = "14")]
    pub parents_also: bool,
}
