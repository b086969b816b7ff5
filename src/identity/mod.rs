//! Who is talking and who it is about: parties identified by their mutual-TLS certificate,
//! subjects named by a Belgian national register or BIS number and replaced at once by a keyed
//! pseudonym, and the development PKI that issues the parties' certificates.
//!
//! - [`subject`]: parse and validate national register and BIS numbers (mod 97, the 2000+ rule).
//! - [`pseudonym`]: the gateway's subject key and the HMAC pseudonyms made with it.
//! - [`party`]: the syntax of party ids and their `urn:ketenpoort:party:<id>` URI.
//! - [`peer`]: read the party id from a verified peer certificate.
//! - [`pki`]: a development CA with server and per-party client certificates (rcgen).

pub mod party;
pub mod peer;
pub mod pki;
pub mod pseudonym;
pub mod subject;

pub use party::{PARTY_URI_PREFIX, is_valid_party_id, party_uri};
pub use peer::{PeerError, party_id_from_cert_der, party_id_from_chain};
pub use pki::{CertificateFlaw, DevPki, PemPair, PkiError, UnrelatedIdentity, unrelated_client};
pub use pseudonym::{PseudonymError, SubjectKey, SubjectPseudonym};
pub use subject::{SubjectNumber, SubjectNumberError, SubjectNumberKind};
