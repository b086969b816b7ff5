//! The party behind a mutual-TLS connection, read from its verified client certificate.
//!
//! The certificate chain must already be verified by rustls against the gateway's client CA;
//! this module only reads the identity out of it. A party is named by exactly one SAN URI
//! `urn:ketenpoort:party:<id>`. Zero or several such URIs are refused rather than guessed at,
//! because a certificate that names two parties cannot be held accountable as either.

use rustls_pki_types::CertificateDer;
use thiserror::Error;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::party::{PARTY_URI_PREFIX, is_valid_party_id};

/// Why no party id could be read from a peer certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer presented no certificate.
    #[error("the peer presented no client certificate")]
    NoCertificate,
    /// The certificate is not valid DER X.509.
    #[error("the peer certificate cannot be parsed")]
    Parse,
    /// The certificate has no `urn:ketenpoort:party:` SAN URI.
    #[error("the peer certificate names no party (no SAN URI {PARTY_URI_PREFIX}<id>)")]
    NoPartyUri,
    /// The certificate has more than one `urn:ketenpoort:party:` SAN URI.
    #[error("the peer certificate names {count} parties; exactly one is required")]
    SeveralPartyUris {
        /// How many party URIs it carries.
        count: usize,
    },
    /// The party URI's id is not `[a-z0-9][a-z0-9-]*`.
    #[error("the party id in the peer certificate is not a valid party id")]
    InvalidPartyId,
}

/// Reads the party id from the SAN URI `urn:ketenpoort:party:<id>` of a DER certificate.
pub fn party_id_from_cert_der(der: &[u8]) -> Result<String, PeerError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| PeerError::Parse)?;
    if !rest.is_empty() {
        return Err(PeerError::Parse);
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|_| PeerError::Parse)?
        .ok_or(PeerError::NoPartyUri)?;
    let ids: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(PARTY_URI_PREFIX),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [] => Err(PeerError::NoPartyUri),
        [id] if is_valid_party_id(id) => Ok((*id).to_owned()),
        [_] => Err(PeerError::InvalidPartyId),
        several => Err(PeerError::SeveralPartyUris {
            count: several.len(),
        }),
    }
}

/// Reads the party id from a verified peer chain, as given by `tonic::Request::peer_certs()`
/// or rustls: the end-entity certificate comes first.
pub fn party_id_from_chain(chain: &[CertificateDer<'_>]) -> Result<String, PeerError> {
    let end_entity = chain.first().ok_or(PeerError::NoCertificate)?;
    party_id_from_cert_der(end_entity.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    /// A self-signed certificate with the given SAN URIs (and one DNS name, to show that other
    /// SAN types are ignored).
    fn cert_with_uris(uris: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn one_party_uri_gives_the_id() {
        let der = cert_with_uris(&["https://example.org/x", "urn:ketenpoort:party:pz-gent"]);
        assert_eq!(party_id_from_cert_der(&der).unwrap(), "pz-gent");
        let chain = [CertificateDer::from(der)];
        assert_eq!(party_id_from_chain(&chain).unwrap(), "pz-gent");
    }

    #[test]
    fn missing_several_or_malformed_party_uris_are_refused() {
        assert_eq!(
            party_id_from_cert_der(&cert_with_uris(&[])),
            Err(PeerError::NoPartyUri)
        );
        assert_eq!(
            party_id_from_cert_der(&cert_with_uris(&["urn:ketenpoort:other:pz-gent"])),
            Err(PeerError::NoPartyUri)
        );
        assert_eq!(
            party_id_from_cert_der(&cert_with_uris(&[
                "urn:ketenpoort:party:pz-gent",
                "urn:ketenpoort:party:ocmw-gent"
            ])),
            Err(PeerError::SeveralPartyUris { count: 2 })
        );
        for bad in ["PZ-Gent", "", "-x", "pz gent", "pz/gent"] {
            let uri = format!("urn:ketenpoort:party:{bad}");
            let der = cert_with_uris(&[uri.as_str()]);
            assert_eq!(
                party_id_from_cert_der(&der),
                Err(PeerError::InvalidPartyId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn certificate_without_san_names_no_party() {
        let params = CertificateParams::default();
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert_eq!(party_id_from_cert_der(&der), Err(PeerError::NoPartyUri));
    }

    #[test]
    fn garbage_and_empty_chains_are_refused() {
        assert_eq!(party_id_from_cert_der(b"not a cert"), Err(PeerError::Parse));
        let mut der = cert_with_uris(&["urn:ketenpoort:party:pz-gent"]);
        der.push(0);
        assert_eq!(party_id_from_cert_der(&der), Err(PeerError::Parse));
        assert_eq!(party_id_from_chain(&[]), Err(PeerError::NoCertificate));
    }

    proptest! {
        /// Hostile bytes from the network never panic the parser, and never yield a party.
        #[test]
        fn arbitrary_bytes_never_name_a_party(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(party_id_from_cert_der(&bytes).is_err());
        }

        /// A truncated real certificate is refused, whatever the cut.
        #[test]
        fn truncated_certificates_are_refused(cut in 0usize..400) {
            let der = good_cert();
            let cut = cut.min(der.len() - 1);
            prop_assert!(party_id_from_cert_der(&der[..cut]).is_err());
        }
    }

    /// One valid party certificate, made once: key generation is the slow part.
    fn good_cert() -> &'static [u8] {
        static CERT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        CERT.get_or_init(|| cert_with_uris(&["urn:ketenpoort:party:pz-gent"]))
    }
}
