//! C2SP tlog-checkpoint bodies: `<origin>\n<tree size>\n<base64 root hash>\n`, optionally followed
//! by extension lines, which we never write and ignore when reading.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::error::AuditError;
use super::hash::Hash;
use super::keys::Verifier;
use super::note;

/// The state of a log at one size: what a signed checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, its permanent identity.
    pub origin: String,
    /// The number of entries.
    pub size: u64,
    /// The RFC 6962 root hash of the first `size` entries.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body, the text that gets signed.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body.
    pub fn parse(text: &str) -> Result<Checkpoint, AuditError> {
        let bad = |why: &str| AuditError::BadNote(format!("checkpoint: {why}"));
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin"))?;
        let size_line = lines.next().ok_or_else(|| bad("no size"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad("size is not a decimal number"));
        }
        let size = size_line
            .parse::<u64>()
            .map_err(|_| bad("size out of range"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash"))?;
        let root_bytes = B64
            .decode(root_line)
            .map_err(|_| bad("root is not base64"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| bad("root is not 32 bytes"))?;
        if !text.ends_with('\n') {
            return Err(bad("must end in a newline"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Verifies a signed checkpoint note against pinned keys and parses its body; the key name
    /// must equal the origin, as tlog-checkpoint asks.
    pub fn open(signed: &str, verifiers: &[Verifier]) -> Result<Checkpoint, AuditError> {
        let opened = note::open(signed, verifiers)?;
        let cp = Checkpoint::parse(&opened.text)?;
        if !opened
            .verified_by
            .iter()
            .any(|(name, _)| *name == cp.origin)
        {
            return Err(AuditError::BadNote(format!(
                "checkpoint for origin {:?} is not signed by a key of that name",
                cp.origin
            )));
        }
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::hash::empty_root;
    use crate::audit::keys::Signer;

    #[test]
    fn body_round_trips_and_extensions_are_ignored() {
        let cp = Checkpoint {
            origin: "example.org/log".into(),
            size: 42,
            root: empty_root(),
        };
        assert_eq!(
            cp.body(),
            "example.org/log\n42\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        assert_eq!(Checkpoint::parse(&cp.body()).unwrap(), cp);
        let extended = format!("{}ext line\n", cp.body());
        assert_eq!(Checkpoint::parse(&extended).unwrap(), cp);
        assert!(Checkpoint::parse("example.org/log\n042\nAA==\n").is_err());
        assert!(Checkpoint::parse("example.org/log\n1\n").is_err());
    }

    #[test]
    fn signed_checkpoint_opens_only_with_the_origin_key() {
        let signer = Signer::generate("example.org/log").unwrap();
        let cp = Checkpoint {
            origin: "example.org/log".into(),
            size: 1,
            root: empty_root(),
        };
        let signed = note::sign(&cp.body(), std::slice::from_ref(&signer)).unwrap();
        assert_eq!(Checkpoint::open(&signed, &[signer.verifier()]).unwrap(), cp);
        let stranger = Signer::generate("stranger").unwrap();
        let foreign = note::sign(&cp.body(), std::slice::from_ref(&stranger)).unwrap();
        assert!(Checkpoint::open(&foreign, &[stranger.verifier()]).is_err());
    }
}
