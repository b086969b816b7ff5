//! Every limit on what a request may carry, in one place; for now, how much an error about bad
//! input may say.

/// Most field violations listed in one error; the `ErrorInfo` metadata `violations` then gives
/// the count of all of them.
pub const MAX_REPORTED_VIOLATIONS: usize = 8;
/// Longest field path in a field violation, in bytes.
pub const MAX_VIOLATION_FIELD_BYTES: usize = 64;
/// Longest description in a field violation, in bytes.
pub const MAX_VIOLATION_DESCRIPTION_BYTES: usize = 120;
/// Longest status message of an error about bad input, in bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 256;
