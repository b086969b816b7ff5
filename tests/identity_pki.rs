//! The dev PKI against real rustls (ring provider): its client certificates pass a
//! `WebPkiClientVerifier` built from the dev CA and name the right party; an unrelated CA's do not;
//! and a full mutual-TLS handshake in memory yields the party id from the server's view.

use std::sync::Arc;

use ketenpoort::identity::pki::unrelated_client;
use ketenpoort::identity::{DevPki, PemPair, party_id_from_cert_der, party_id_from_chain};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    Arc::new(roots)
}

fn cert(pair: &PemPair) -> CertificateDer<'static> {
    pair.cert_der().unwrap()
}

fn key(pair: &PemPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap()
}

fn init(dir: &std::path::Path) -> DevPki {
    DevPki::init(dir, &["pz-gent", "ocmw-gent"], &[] as &[&str]).unwrap()
}

#[test]
fn dev_client_certificates_pass_the_client_verifier_and_name_their_party() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(pki.ca_cert_pem()), provider())
            .build()
            .unwrap();
    for id in ["pz-gent", "ocmw-gent"] {
        let der = cert(&pki.party(id).unwrap());
        verifier
            .verify_client_cert(&der, &[], UnixTime::now())
            .unwrap();
        assert_eq!(party_id_from_cert_der(&der).unwrap(), id);
    }
    // A certificate issued later by a reopened PKI, for a party no policy knows, is still
    // signed by the dev CA: authentication passes and the unknown id comes out for the gateway
    // to refuse.
    let reopened = DevPki::open(dir.path()).unwrap();
    let stranger = cert(&reopened.issue_client("unknown-party").unwrap());
    verifier
        .verify_client_cert(&stranger, &[], UnixTime::now())
        .unwrap();
    assert_eq!(party_id_from_cert_der(&stranger).unwrap(), "unknown-party");
}

#[test]
fn certificates_from_an_unrelated_ca_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(pki.ca_cert_pem()), provider())
            .build()
            .unwrap();
    let impostor = unrelated_client("pz-gent").unwrap();
    let der = cert(&impostor.client);
    // It claims the right party, which is exactly why the chain check must come first.
    assert_eq!(party_id_from_cert_der(&der).unwrap(), "pz-gent");
    assert!(
        verifier
            .verify_client_cert(&der, &[], UnixTime::now())
            .is_err()
    );
    // The impostor's own CA does accept it: the certificate itself is well-formed.
    let own = WebPkiClientVerifier::builder_with_provider(roots(&impostor.ca_cert_pem), provider())
        .build()
        .unwrap();
    own.verify_client_cert(&der, &[], UnixTime::now()).unwrap();
    // The server certificate is no client certificate (EKU serverAuth only).
    let server = cert(&pki.server().unwrap());
    assert!(
        verifier
            .verify_client_cert(&server, &[], UnixTime::now())
            .is_err()
    );
}

#[test]
fn server_certificate_is_valid_for_localhost_and_127_0_0_1_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots(pki.ca_cert_pem()), provider())
            .build()
            .unwrap();
    let server = cert(&pki.server().unwrap());
    for name in ["localhost", "127.0.0.1"] {
        let name = ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&server, &[], &name, &[], UnixTime::now())
            .unwrap();
    }
    let other = ServerName::try_from("example.org").unwrap();
    assert!(
        verifier
            .verify_server_cert(&server, &[], &other, &[], UnixTime::now())
            .is_err()
    );
    // A client certificate cannot serve (EKU clientAuth only).
    let client = cert(&pki.party("pz-gent").unwrap());
    let localhost = ServerName::try_from("localhost").unwrap();
    assert!(
        verifier
            .verify_server_cert(&client, &[], &localhost, &[], UnixTime::now())
            .is_err()
    );
}

/// Runs a TLS handshake between two in-memory connections; returns an error as soon as either
/// side fails. Bounded: a handshake takes a handful of flights.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            server
                .read_tls(&mut buf.as_slice())
                .map_err(|e| e.to_string())?;
            server.process_new_packets().map_err(|e| e.to_string())?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        if !buf.is_empty() {
            client
                .read_tls(&mut buf.as_slice())
                .map_err(|e| e.to_string())?;
            client.process_new_packets().map_err(|e| e.to_string())?;
        }
    }
    Err("handshake did not finish".to_owned())
}

fn connections(pki: &DevPki, client_pair: &PemPair) -> (ClientConnection, ServerConnection) {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(pki.ca_cert_pem()), provider())
            .build()
            .unwrap();
    let server_pair = pki.server().unwrap();
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert(&server_pair)], key(&server_pair))
        .unwrap();
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(pki.ca_cert_pem()))
        .with_client_auth_cert(vec![cert(client_pair)], key(client_pair))
        .unwrap();
    let client = ClientConnection::new(
        Arc::new(client_config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let server = ServerConnection::new(Arc::new(server_config)).unwrap();
    (client, server)
}

#[test]
fn mutual_tls_handshake_gives_the_server_the_party_id() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let (mut client, mut server) = connections(&pki, &pki.party("ocmw-gent").unwrap());
    handshake(&mut client, &mut server).unwrap();
    let chain = server.peer_certificates().unwrap();
    assert_eq!(party_id_from_chain(chain).unwrap(), "ocmw-gent");
}

#[test]
fn mutual_tls_handshake_with_an_unrelated_ca_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pki = init(dir.path());
    let impostor = unrelated_client("pz-gent").unwrap();
    let (mut client, mut server) = connections(&pki, &impostor.client);
    let err = handshake(&mut client, &mut server).unwrap_err();
    // The server refuses the chain; it never gets as far as a party id.
    assert!(err.contains("UnknownIssuer"), "unexpected failure: {err}");
    assert!(server.is_handshaking());
}
