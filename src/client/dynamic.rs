//! Calling any unary RPC of the wire contract by name, with messages built from JSON at run time.
//!
//! Like grpcurl, but from the descriptors compiled into the binary instead of server reflection, so
//! every RPC the gateway offers is callable without a hand-written client per method and no RPC can
//! be forgotten. The messages are [`DynamicMessage`]s; [`DynamicCodec`] puts them on the wire.

use std::str::FromStr;
use std::time::Duration;

use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub use crate::grpc::auth::{ACTOR_METADATA, TRACE_METADATA};

/// The packages whose services `ketenpoort call` offers.
const CALLABLE_PACKAGES: [&str; 2] = ["ketenpoort.v1", "grpc.health.v1"];

/// Why an RPC could not be found or its request not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The compiled-in descriptors could not be decoded (a build problem).
    #[error("the compiled-in descriptors are invalid: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// No unary RPC has this name.
    #[error("no RPC named {0:?}; `ketenpoort call --list` shows them all")]
    UnknownRpc(String),
    /// The short name is used by several services.
    #[error("{name:?} is ambiguous: use one of {candidates}")]
    Ambiguous {
        /// The name as given.
        name: String,
        /// The full names it could mean.
        candidates: String,
    },
    /// The JSON does not match the request message.
    #[error("invalid JSON for {message}")]
    Json {
        /// The request message type.
        message: String,
        /// Where and why the JSON is wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// The unary RPCs a client can call, from the descriptors of the Ketenpoort services and of
/// `grpc.health.v1` (the bench's echo service is deliberately not in it).
#[derive(Debug, Clone)]
pub struct RpcCatalog {
    pool: DescriptorPool,
}

impl RpcCatalog {
    /// Decodes the compiled-in descriptor sets.
    pub fn new() -> Result<Self, CatalogError> {
        let mut pool = DescriptorPool::decode(crate::proto::v1::FILE_DESCRIPTOR_SET)?;
        pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
        Ok(Self { pool })
    }

    /// The descriptor pool, to look up message types.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// Every unary RPC of the callable services, in service then declaration order.
    pub fn methods(&self) -> Vec<MethodDescriptor> {
        let mut services: Vec<_> = self
            .pool
            .services()
            .filter(|s| CALLABLE_PACKAGES.contains(&s.package_name()))
            .collect();
        services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
        services
            .iter()
            .flat_map(|s| s.methods())
            .filter(|m| !m.is_client_streaming() && !m.is_server_streaming())
            .collect()
    }

    /// Finds an RPC by short name (`Lookup`), `Service/Method` or full name
    /// (`ketenpoort.v1.Exchange/Lookup`, also with a leading `/` or a `.` before the method).
    pub fn find(&self, name: &str) -> Result<MethodDescriptor, CatalogError> {
        let wanted = name.trim().trim_start_matches('/');
        let mut matches: Vec<MethodDescriptor> = self
            .methods()
            .into_iter()
            .filter(|m| {
                let service = m.parent_service();
                let full = format!("{}/{}", service.full_name(), m.name());
                let dotted = format!("{}.{}", service.full_name(), m.name());
                let short_service = format!("{}/{}", service.name(), m.name());
                [
                    m.name(),
                    full.as_str(),
                    dotted.as_str(),
                    short_service.as_str(),
                ]
                .contains(&wanted)
            })
            .collect();
        if matches.len() > 1 {
            return Err(CatalogError::Ambiguous {
                name: name.to_owned(),
                candidates: matches.iter().map(rpc_path).collect::<Vec<_>>().join(", "),
            });
        }
        matches
            .pop()
            .ok_or_else(|| CatalogError::UnknownRpc(name.to_owned()))
    }
}

/// The gRPC path of a method: `/package.Service/Method`.
pub fn rpc_path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Parses proto3 JSON into a message of type `message`; unknown fields are an error, so a typo
/// never silently sends an empty field.
pub fn message_from_json(
    message: &MessageDescriptor,
    json: &str,
) -> Result<DynamicMessage, CatalogError> {
    let wrap = |source| CatalogError::Json {
        message: message.full_name().to_owned(),
        source,
    };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = DynamicMessage::deserialize_with_options(
        message.clone(),
        &mut deserializer,
        &DeserializeOptions::new(),
    )
    .map_err(wrap)?;
    deserializer.end().map_err(wrap)?;
    Ok(value)
}

/// A message as pretty-printed proto3 JSON text, fields in declaration order (a
/// [`serde_json::Value`] would sort them); with `emit_defaults`, default values are shown too.
pub fn message_to_json_text(message: &DynamicMessage, emit_defaults: bool) -> String {
    let options = SerializeOptions::new().skip_default_fields(!emit_defaults);
    let mut serializer = serde_json::Serializer::pretty(Vec::new());
    match message.serialize_with_options(&mut serializer, &options) {
        // serde_json writes UTF-8 only.
        Ok(()) => String::from_utf8_lossy(&serializer.into_inner()).into_owned(),
        Err(_) => message_to_json(message, emit_defaults).to_string(),
    }
}

/// A message as proto3 JSON; with `emit_defaults`, fields with default values are shown too.
pub fn message_to_json(message: &DynamicMessage, emit_defaults: bool) -> serde_json::Value {
    let options = SerializeOptions::new().skip_default_fields(!emit_defaults);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        // The JSON value serializer only fails on non-string map keys, which the proto3 JSON
        // mapping never produces (map keys are written as strings).
        .unwrap_or_else(|error| serde_json::json!({ "serialization_error": error.to_string() }))
}

/// Encodes and decodes [`DynamicMessage`]s; decoding needs the response type, encoding does not.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    response: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec whose decoder yields messages of type `response`.
    pub fn new(response: MessageDescriptor) -> Self {
        Self { response }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder {
            response: self.response.clone(),
        }
    }
}

/// The encoding half of [`DynamicCodec`].
#[derive(Debug, Clone, Copy)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(buf)
            .map_err(|error| Status::internal(format!("cannot encode the request: {error}")))
    }
}

/// The decoding half of [`DynamicCodec`].
#[derive(Debug, Clone)]
pub struct DynamicDecoder {
    response: MessageDescriptor,
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.response.clone(), buf)
            .map(Some)
            .map_err(|error| Status::internal(format!("cannot decode the response: {error}")))
    }
}

/// Who makes a call, beyond the party of the certificate: the actor and an optional trace id.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The staff member (`ketenpoort-actor`); health checks need none.
    pub actor: Option<String>,
    /// The trace id (`ketenpoort-trace-id`).
    pub trace_id: Option<String>,
    /// Deadline of the call, sent as `grpc-timeout` too.
    pub timeout: Option<Duration>,
}

/// Calls the unary RPC `method` with `request` on `channel`.
pub async fn call_unary(
    channel: Channel,
    method: &MethodDescriptor,
    request: DynamicMessage,
    context: &CallContext,
) -> Result<DynamicMessage, Status> {
    let path = PathAndQuery::from_str(&rpc_path(method))
        .map_err(|error| Status::internal(format!("invalid RPC path: {error}")))?;
    let mut request = Request::new(request);
    for (key, value) in [
        (ACTOR_METADATA, &context.actor),
        (TRACE_METADATA, &context.trace_id),
    ] {
        if let Some(value) = value {
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|_| Status::invalid_argument(format!("{key} must be printable ASCII")))?;
            request.metadata_mut().insert(key, value);
        }
    }
    if let Some(timeout) = context.timeout {
        request.set_timeout(timeout);
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| Status::unavailable(format!("gateway not reachable: {error}")))?;
    let response = grpc
        .unary(request, path, DynamicCodec::new(method.output()))
        .await?;
    Ok(response.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> RpcCatalog {
        RpcCatalog::new().unwrap()
    }

    #[test]
    fn every_service_is_callable() {
        let names: Vec<String> = catalog().methods().iter().map(rpc_path).collect();
        for expected in [
            "/grpc.health.v1.Health/Check",
            "/ketenpoort.v1.Exchange/Lookup",
            "/ketenpoort.v1.Exchange/Acknowledge",
            "/ketenpoort.v1.Grounds/OpenCase",
            "/ketenpoort.v1.Audit/SubjectReport",
            "/ketenpoort.v1.Policies/ListAgreements",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert!(
            !names.iter().any(|n| n.ends_with("/Watch")),
            "streaming left out"
        );
        assert!(!names.iter().any(|n| n.contains("bench")));
    }

    #[test]
    fn finds_by_short_service_and_full_name() {
        let catalog = catalog();
        for name in [
            "Lookup",
            "Exchange/Lookup",
            "ketenpoort.v1.Exchange/Lookup",
            "/ketenpoort.v1.Exchange/Lookup",
            "ketenpoort.v1.Exchange.Lookup",
        ] {
            let method = catalog.find(name).unwrap();
            assert_eq!(
                method.full_name(),
                "ketenpoort.v1.Exchange.Lookup",
                "{name}"
            );
        }
        assert_eq!(
            catalog.find("Health/Check").unwrap().input().full_name(),
            "grpc.health.v1.HealthCheckRequest"
        );
        assert!(matches!(
            catalog.find("Lookupp"),
            Err(CatalogError::UnknownRpc(_))
        ));
    }

    #[test]
    fn json_round_trips_through_the_wire_encoding() {
        let method = catalog().find("Lookup").unwrap();
        let json = r#"{"subject":{"number":"85073003328"},"purpose":"intrafamily-violence"}"#;
        let request = message_from_json(&method.input(), json).unwrap();
        let bytes = request.encode_to_vec();
        let decoded = DynamicMessage::decode(method.input(), bytes.as_slice()).unwrap();
        assert_eq!(
            message_to_json(&decoded, false),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        let with_defaults = message_to_json(&decoded, true);
        assert_eq!(with_defaults["justification"], "");
        let text = message_to_json_text(&decoded, false);
        assert!(
            text.find("subject") < text.find("purpose"),
            "declaration order: {text}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_types_are_refused() {
        let method = catalog().find("Lookup").unwrap();
        let typo = message_from_json(&method.input(), r#"{"purpos":"x"}"#).unwrap_err();
        let cause = std::error::Error::source(&typo).unwrap().to_string();
        assert!(cause.contains("purpos"), "{cause}");
        assert!(message_from_json(&method.input(), r#"{"purpose":5}"#).is_err());
        assert!(message_from_json(&method.input(), r#"{} trailing"#).is_err());
    }

    #[test]
    fn well_known_types_use_their_json_form() {
        let catalog = catalog();
        let method = catalog.find("SearchEntries").unwrap();
        let json = r#"{"time":{"startTime":"2026-01-01T00:00:00Z"},"verdict":"VERDICT_DENY"}"#;
        let request = message_from_json(&method.input(), json).unwrap();
        let out = message_to_json(&request, false);
        assert_eq!(out["time"]["startTime"], "2026-01-01T00:00:00Z");
        assert_eq!(out["verdict"], "VERDICT_DENY");
    }
}
