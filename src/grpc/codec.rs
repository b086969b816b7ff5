//! The servers' protobuf codec: tonic's prost codec, except that a request that does not decode
//! is the caller's mistake, answered with INVALID_ARGUMENT and the field where decoding failed.
//!
//! tonic's own codec answers INTERNAL with prost's message and no details, as gRPC's status-code
//! guide suggests; but for a gateway every undecodable request comes from a client (the server
//! never mis-encodes its own input), so the caller must be told what to fix. build.rs generates
//! the servers with this codec and the clients with tonic's.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::exchange::Violation;
use crate::grpc::status::bad_input;

/// `ErrorInfo.reason` of a request that does not decode as protobuf.
pub const MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";
/// `ErrorInfo.reason` of a string field that is not UTF-8.
pub const INVALID_UTF8: &str = "INVALID_UTF8";
/// `ErrorInfo.reason` of a request nested deeper than prost's recursion limit.
pub const MESSAGE_TOO_DEEP: &str = "MESSAGE_TOO_DEEP";

/// The servers' codec: prost encoding, and decoding whose errors are INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _type: PhantomData }
    }
}

/// Decodes one request message, refusing what does not decode with INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| decode_refusal(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes `bytes` as a request of type `U` exactly as the servers do.
pub fn decode_request<U: Message + Default>(bytes: &[u8]) -> Result<U, Status> {
    U::decode(bytes).map_err(|e| decode_refusal(&e))
}

/// The INVALID_ARGUMENT answer to a decode error: its reason, and the field where decoding
/// failed when prost knows it. prost's description says what was wrong with the bytes (a wire
/// type, a length, a varint), never a value.
pub fn decode_refusal(error: &prost::DecodeError) -> Status {
    let (path, description) = parse_decode_error(&error.to_string());
    let reason = if description.contains("recursion limit") {
        MESSAGE_TOO_DEEP
    } else if description.contains("not UTF-8") {
        INVALID_UTF8
    } else {
        MALFORMED_MESSAGE
    };
    let violations: Vec<Violation> = if path.is_empty() {
        Vec::new()
    } else {
        vec![Violation::new(path, description.clone())]
    };
    bad_input(
        reason,
        &format!("the request does not decode: {description}"),
        &violations,
        violations.len(),
    )
}

/// Splits prost's `failed to decode Protobuf message: Inner.field: Outer.field: description`
/// into the field path from the request down (`field.field`) and the description. prost names
/// the innermost message first, as the error travels outwards.
fn parse_decode_error(text: &str) -> (String, String) {
    let mut rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(text);
    let mut fields = Vec::new();
    while let Some((segment, after)) = rest.split_once(": ") {
        let Some(field) = location_field(segment) else {
            break;
        };
        fields.push(field);
        rest = after;
    }
    fields.reverse();
    (fields.join("."), rest.to_owned())
}

/// The field of a `Message.field` location, or `None` when `segment` is not one.
fn location_field(segment: &str) -> Option<&str> {
    let (message, field) = segment.split_once('.')?;
    let field = field.strip_prefix("r#").unwrap_or(field);
    let message_ok = message.starts_with(|c: char| c.is_ascii_uppercase())
        && message.chars().all(|c| c.is_ascii_alphanumeric());
    let field_ok = !field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (message_ok && field_ok).then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1 as pb;
    use tonic::Code;
    use tonic_types::StatusExt;

    fn reason(status: &Status) -> String {
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    }

    fn fields(status: &Status) -> Vec<String> {
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    }

    /// A length-delimited field `tag` holding `payload`.
    fn delimited(tag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(tag << 3) | 2, u8::try_from(payload.len()).unwrap()];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn invalid_utf8_names_the_nested_field() {
        let subject = delimited(1, &[0xff, 0xfe]);
        let bytes = delimited(1, &subject);
        let status = decode_request::<pb::LookupRequest>(&bytes).expect_err("not UTF-8");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), INVALID_UTF8);
        assert_eq!(fields(&status), ["subject.number"]);
    }

    #[test]
    fn a_field_of_a_oneof_is_named_by_the_oneof() {
        // ExplainRequest.elements[0].value.text, not UTF-8.
        let value = delimited(1, &[0xc0]);
        let entry = delimited(2, &value);
        let bytes = delimited(9, &entry);
        let status = decode_request::<pb::ExplainRequest>(&bytes).expect_err("not UTF-8");
        assert_eq!(reason(&status), INVALID_UTF8);
        assert_eq!(fields(&status), ["elements.value.kind"]);
    }

    #[test]
    fn nesting_beyond_the_recursion_limit_is_too_deep() {
        // Unknown field 15 as nested groups: prost skips them, one recursion level each.
        let mut bytes = Vec::new();
        bytes.extend(std::iter::repeat_n((15 << 3) | 3, 120));
        bytes.extend(std::iter::repeat_n((15 << 3) | 4, 120));
        let status = decode_request::<pb::LookupRequest>(&bytes).expect_err("too deep");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), MESSAGE_TOO_DEEP);
        assert!(fields(&status).is_empty());
    }

    #[test]
    fn truncated_and_mistyped_fields_are_malformed() {
        // purpose (2) claims 9 bytes, 1 follows.
        let status = decode_request::<pb::LookupRequest>(&[0x12, 9, b'a']).expect_err("truncated");
        assert_eq!(reason(&status), MALFORMED_MESSAGE);
        assert_eq!(fields(&status), ["purpose"]);
        // subject (1) as a varint.
        let status = decode_request::<pb::LookupRequest>(&[0x08, 1]).expect_err("wire type");
        assert_eq!(reason(&status), MALFORMED_MESSAGE);
        assert_eq!(fields(&status), ["subject"]);
        assert!(status.message().contains("invalid wire type"));
    }

    #[test]
    fn decode_error_text_splits_into_path_and_description() {
        assert_eq!(
            parse_decode_error(
                "failed to decode Protobuf message: Subject.number: LookupRequest.subject: invalid wire type: Varint (expected LengthDelimited)"
            ),
            (
                "subject.number".to_owned(),
                "invalid wire type: Varint (expected LengthDelimited)".to_owned()
            )
        );
        assert_eq!(
            parse_decode_error("failed to decode Protobuf message: buffer underflow"),
            (String::new(), "buffer underflow".to_owned())
        );
    }
}
