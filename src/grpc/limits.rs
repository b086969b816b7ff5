//! Every limit on what a request may carry, in one place: the request size, the decoding depth,
//! and how much an error about bad input may say.

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
