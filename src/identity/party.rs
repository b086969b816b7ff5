//! Party ids and the certificate URI that carries them.

/// The prefix of the SAN URI that names a party in its client certificate.
pub const PARTY_URI_PREFIX: &str = "urn:ketenpoort:party:";

/// The longest party id we accept; ids are short kebab-case names, and a bound keeps hostile
/// certificates from putting megabytes into logs and maps.
pub const MAX_PARTY_ID_LEN: usize = 64;

/// Whether `id` has party-id syntax: `[a-z0-9][a-z0-9-]*`, at most [`MAX_PARTY_ID_LEN`] bytes.
pub fn is_valid_party_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() => {}
        _ => return false,
    }
    id.len() <= MAX_PARTY_ID_LEN
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The SAN URI `urn:ketenpoort:party:<id>` for a party id.
pub fn party_uri(id: &str) -> String {
    format!("{PARTY_URI_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_id_syntax() {
        for ok in [
            "pz-gent",
            "caw-oost-vlaanderen",
            "coc",
            "0",
            "a-",
            "ocmw-9000",
        ] {
            assert!(is_valid_party_id(ok), "{ok}");
        }
        for bad in [
            "", "-pz", "PZ-gent", "pz_gent", "pz gent", "pz.gent", "pz/gent", "é",
        ] {
            assert!(!is_valid_party_id(bad), "{bad}");
        }
        assert!(is_valid_party_id(&"a".repeat(MAX_PARTY_ID_LEN)));
        assert!(!is_valid_party_id(&"a".repeat(MAX_PARTY_ID_LEN + 1)));
    }

    #[test]
    fn uri_form() {
        assert_eq!(party_uri("pz-gent"), "urn:ketenpoort:party:pz-gent");
    }
}
