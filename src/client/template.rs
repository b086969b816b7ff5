//! A JSON skeleton of a request message, for `ketenpoort call --list`: every field under its
//! proto3 JSON name with its type in place of a value, so a user can see what to send.

use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

/// How deep nested messages are expanded; deeper ones (and recursive ones) show their type name.
const MAX_DEPTH: usize = 4;

/// The skeleton of `message`.
pub fn json_template(message: &MessageDescriptor) -> Value {
    message_template(message, 0)
}

fn message_template(message: &MessageDescriptor, depth: usize) -> Value {
    if let Some(text) = well_known(message.full_name()) {
        return json!(text);
    }
    if depth >= MAX_DEPTH {
        return json!(message.full_name());
    }
    let mut fields = Map::new();
    for field in message.fields() {
        fields.insert(field.json_name().to_owned(), field_template(&field, depth));
    }
    Value::Object(fields)
}

fn field_template(field: &FieldDescriptor, depth: usize) -> Value {
    if let (true, Kind::Message(entry)) = (field.is_map(), field.kind()) {
        let key = entry.map_entry_key_field();
        let value = entry.map_entry_value_field();
        let mut map = Map::new();
        map.insert(
            kind_name(&key.kind()),
            kind_template(&value.kind(), depth + 1),
        );
        return Value::Object(map);
    }
    let single = kind_template(&field.kind(), depth + 1);
    if field.is_list() {
        json!([single])
    } else {
        single
    }
}

fn kind_template(kind: &Kind, depth: usize) -> Value {
    match kind {
        Kind::Message(message) => message_template(message, depth),
        Kind::Enum(e) => {
            let names: Vec<String> = e.values().map(|v| v.name().to_owned()).collect();
            json!(names.join("|"))
        }
        other => json!(kind_name(other)),
    }
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double | Kind::Float => "number".into(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            "integer".into()
        }
        // The proto3 JSON mapping writes 64-bit integers as strings; numbers are accepted too.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            "integer (64-bit)".into()
        }
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes (base64)".into(),
        Kind::Message(m) => m.full_name().into(),
        Kind::Enum(e) => e.full_name().into(),
    }
}

/// The JSON form of the well-known types the contract uses.
fn well_known(full_name: &str) -> Option<&'static str> {
    match full_name {
        "google.protobuf.Timestamp" => Some("timestamp (RFC 3339, e.g. 2026-01-31T12:00:00Z)"),
        "google.protobuf.Duration" => Some("duration (e.g. 3600s)"),
        "google.protobuf.Empty" => Some("{}"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RpcCatalog;

    #[test]
    fn lookup_template_names_every_field_in_json_form() {
        let catalog = RpcCatalog::new().unwrap();
        let method = catalog.find("Lookup").unwrap();
        let template = json_template(&method.input());
        assert_eq!(template["subject"]["number"], "string");
        assert_eq!(template["purpose"], "string");
        assert_eq!(template["justification"], "string");
    }

    #[test]
    fn lists_enums_and_well_known_types_are_described() {
        let catalog = RpcCatalog::new().unwrap();
        let search = json_template(&catalog.find("SearchEntries").unwrap().input());
        assert!(search["verdict"].as_str().unwrap().contains("VERDICT_DENY"));
        assert!(
            search["time"]["startTime"]
                .as_str()
                .unwrap()
                .starts_with("timestamp")
        );
        assert_eq!(search["pageSize"], "integer");
        let respond = json_template(&catalog.find("Respond").unwrap().input());
        assert!(respond["fields"].is_array());
    }
}
