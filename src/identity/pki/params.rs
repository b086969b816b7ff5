//! What the dev certificates say: names, validity, key usages and extended key usages.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::identity::party::party_uri;

/// The common name of the dev CA; also how `DevPki::open` recognises its own CA.
pub(super) const DEV_CA_COMMON_NAME: &str = "Ketenpoort development CA";
/// The organisation in every dev certificate, so nobody mistakes one for a production certificate.
const DEV_ORGANISATION: &str = "Ketenpoort development PKI (not for production)";
/// The common name of the CA that `unrelated_client` makes.
pub(super) const UNRELATED_CA_COMMON_NAME: &str = "Unrelated test CA";
/// The common name of the gateway's server certificate.
const SERVER_COMMON_NAME: &str = "ketenpoort gateway";
/// The names the server certificate always carries: tests and the demo connect to these.
const ALWAYS_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// How long the dev CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long server and client certificates are valid.
const LEAF_VALIDITY: Duration = Duration::days(397);
/// How far back `notBefore` is set, to tolerate clock skew between machines.
const BACKDATE: Duration = Duration::days(1);

/// A CA's parameters. Deterministic in everything an rcgen `Issuer` uses (name, key usages,
/// key-id method), so an opened PKI signs exactly as the one that made `ca.pem`.
pub(super) fn ca(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A party's client certificate: CN and SAN URI name the party, EKU clientAuth only.
/// The caller has checked the id's syntax.
pub(super) fn client(party_id: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = leaf(party_id);
    params
        .subject_alt_names
        .push(SanType::URI(party_uri(party_id).try_into()?));
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ClientAuth);
    Ok(params)
}

/// What is wrong with a client certificate from [`super::DevPki::issue_flawed_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateFlaw {
    /// Its validity ended yesterday.
    Expired,
    /// Its validity starts tomorrow.
    NotYetValid,
    /// Its extended key usage is serverAuth, not clientAuth.
    NotForClientAuth,
}

/// A party's client certificate with `flaw`.
pub(super) fn flawed_client(
    party_id: &str,
    flaw: CertificateFlaw,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = client(party_id)?;
    let now = OffsetDateTime::now_utc();
    match flaw {
        CertificateFlaw::Expired => {
            params.not_before = now - Duration::days(30);
            params.not_after = now - Duration::days(1);
        }
        CertificateFlaw::NotYetValid => {
            params.not_before = now + Duration::days(1);
            params.not_after = now + Duration::days(30);
        }
        CertificateFlaw::NotForClientAuth => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
    }
    Ok(params)
}

/// The gateway's server certificate: `localhost`, `127.0.0.1` and `extra_names` (DNS names or
/// IP addresses), EKU serverAuth only.
pub(super) fn server<N: AsRef<str>>(extra_names: &[N]) -> Result<CertificateParams, rcgen::Error> {
    let mut params = leaf(SERVER_COMMON_NAME);
    let mut names: Vec<&str> = ALWAYS_SERVER_NAMES.to_vec();
    for name in extra_names.iter().map(AsRef::as_ref) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        params.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.try_into()?),
        });
    }
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    Ok(params)
}

/// Parameters shared by server and client certificates.
fn leaf(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A name with the given common name in the dev organisation.
fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, DEV_ORGANISATION);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn server_names_always_include_localhost_and_are_not_repeated() {
        let params = server(&["localhost", "10.0.0.7", "gw.test"]).unwrap();
        let sans = &params.subject_alt_names;
        assert_eq!(sans.len(), 4, "{sans:?}");
        assert!(sans.contains(&SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))));
        assert!(sans.contains(&SanType::IpAddress("10.0.0.7".parse().unwrap())));
        assert!(sans.contains(&SanType::DnsName("gw.test".try_into().unwrap())));
        assert_eq!(
            params.extended_key_usages,
            [ExtendedKeyUsagePurpose::ServerAuth]
        );
    }

    #[test]
    fn leaves_are_not_cas_and_outlive_today() {
        let params = client("pz-gent").unwrap();
        assert_eq!(params.is_ca, IsCa::ExplicitNoCa);
        let now = OffsetDateTime::now_utc();
        assert!(params.not_before < now && now < params.not_after);
        assert!(params.not_after < ca(DEV_CA_COMMON_NAME).not_after);
    }
}
