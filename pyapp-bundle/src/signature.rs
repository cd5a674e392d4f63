//! minisign signatures of `manifest.json` (spec/FORMAT.md section 1.2): the strict form of
//! the `manifest.json.minisig` entry, trusted public keys, and verification.
//!
//! The manifest lists the size and sha256 of every other entry, so a signature over its bytes
//! covers the whole bundle. The format is minisign's, prehashed Ed25519 (`ED`), so the
//! standard `minisign -V` verifies an extracted manifest too. This module parses strictly and
//! names keys by their minisign key id; the cryptography is `minisign-verify`'s.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use thiserror::Error;

/// The first bytes of a signature's untrusted comment line.
const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
/// The first bytes of a signature's trusted comment line.
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// minisign's algorithm id for Ed25519 over the BLAKE2b-512 hash of the data.
const ALG_PREHASHED: [u8; 2] = *b"ED";
/// minisign's algorithm id for Ed25519 over the data itself (legacy; refused).
const ALG_LEGACY: [u8; 2] = *b"Ed";
/// Largest public key file read, in bytes (a real one is about 100).
const MAX_KEY_FILE: u64 = 4096;

/// A minisign key id: 8 bytes, shown as minisign shows it (16 uppercase hex digits of the
/// little-endian number), e.g. in `minisign public key 5F1E2D3C4B5A6978`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// The ids of several keys, shown comma-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIds(pub Vec<KeyId>);

impl fmt::Display for KeyIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, id) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// Why `manifest.json.minisig` is not a signature in the form FORMAT.md 1.2 requires; the
/// message completes `entry "manifest.json.minisig" ...`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SignatureFormatError {
    #[error("is not a minisign signature: it is not UTF-8")]
    NotUtf8,
    #[error(
        "is not a minisign signature: it must be 4 lines, each ending in a line feed (found {0})"
    )]
    Lines(usize),
    #[error("is not a minisign signature: line {line} does not start with {prefix:?}")]
    Prefix { line: usize, prefix: &'static str },
    #[error("is not a minisign signature: line {line} has a control character")]
    Control { line: usize },
    #[error("is not a minisign signature: line {line} is not base64 of {expected} bytes")]
    Base64 { line: usize, expected: usize },
    #[error("is a legacy minisign signature (algorithm Ed); sign with prehashing (ED)")]
    Legacy,
    #[error("uses an unknown signature algorithm {0:?}")]
    Algorithm(String),
}

/// A parsed `manifest.json.minisig`.
#[derive(Clone)]
pub struct BundleSignature {
    key_id: KeyId,
    trusted_comment: String,
    decoded: minisign_verify::Signature,
}

impl fmt::Debug for BundleSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleSignature")
            .field("key_id", &self.key_id)
            .field("trusted_comment", &self.trusted_comment)
            .finish_non_exhaustive()
    }
}

impl BundleSignature {
    /// Parses the entry's bytes: exactly the four lines minisign writes, each ending in `\n`
    /// (no `\r`): `untrusted comment: TEXT`, the base64 of `ED`, the 8-byte key id and the
    /// 64-byte signature, `trusted comment: TEXT`, and the base64 of the 64-byte global
    /// signature. Comments hold no control character but tab.
    pub fn parse(bytes: &[u8]) -> Result<BundleSignature, SignatureFormatError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SignatureFormatError::NotUtf8)?;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let complete = lines.iter().all(|line| line.ends_with('\n'));
        if lines.len() != 4 || !complete {
            return Err(SignatureFormatError::Lines(lines.len()));
        }
        let lines: Vec<&str> = lines
            .iter()
            .map(|line| line.strip_suffix('\n').unwrap_or(line))
            .collect();
        for (index, line) in lines.iter().enumerate() {
            if line.chars().any(|c| c.is_control() && c != '\t') {
                return Err(SignatureFormatError::Control { line: index + 1 });
            }
        }
        if !lines[0].starts_with(UNTRUSTED_PREFIX) {
            return Err(SignatureFormatError::Prefix {
                line: 1,
                prefix: UNTRUSTED_PREFIX,
            });
        }
        let signature = decode_exact::<74>(lines[1], 2)?;
        let Some(trusted_comment) = lines[2].strip_prefix(TRUSTED_PREFIX) else {
            return Err(SignatureFormatError::Prefix {
                line: 3,
                prefix: TRUSTED_PREFIX,
            });
        };
        decode_exact::<64>(lines[3], 4)?;
        let algorithm = [signature[0], signature[1]];
        if algorithm == ALG_LEGACY {
            return Err(SignatureFormatError::Legacy);
        }
        if algorithm != ALG_PREHASHED {
            let shown = String::from_utf8_lossy(&algorithm)
                .escape_default()
                .to_string();
            return Err(SignatureFormatError::Algorithm(shown));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&signature[2..10]);
        // The form checked above is stricter than what minisign-verify accepts.
        let decoded =
            minisign_verify::Signature::decode(text).map_err(|_| SignatureFormatError::Base64 {
                line: 2,
                expected: 74,
            })?;
        Ok(BundleSignature {
            key_id: KeyId(key_id),
            trusted_comment: trusted_comment.to_owned(),
            decoded,
        })
    }

    /// The id of the key that made the signature (as the signature claims).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The trusted comment (signed along with the signature), without its prefix.
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The trusted key among `keys` whose id is this signature's and that verifies it over
    /// `manifest` (the manifest's exact bytes), if any.
    pub fn verify<'k>(&self, manifest: &[u8], keys: &'k [TrustedKey]) -> Option<&'k TrustedKey> {
        keys.iter().find(|key| {
            key.id == self.key_id && key.key.verify(manifest, &self.decoded, false).is_ok()
        })
    }
}

/// Writes a signature in the form [`BundleSignature::parse`] accepts: the untrusted comment,
/// `ED` with the key id and the Ed25519 signature of the manifest's BLAKE2b-512 hash, the
/// trusted comment, and the Ed25519 signature of that signature followed by the comment.
/// Comments must hold no line break (the caller makes them).
pub fn encode_signature(
    untrusted_comment: &str,
    key_id: KeyId,
    signature: &[u8; 64],
    trusted_comment: &str,
    global_signature: &[u8; 64],
) -> Vec<u8> {
    let mut first = Vec::with_capacity(74);
    first.extend_from_slice(&ALG_PREHASHED);
    first.extend_from_slice(&key_id.0);
    first.extend_from_slice(signature);
    format!(
        "{UNTRUSTED_PREFIX}{untrusted_comment}\n{}\n{TRUSTED_PREFIX}{trusted_comment}\n{}\n",
        STANDARD.encode(first),
        STANDARD.encode(global_signature)
    )
    .into_bytes()
}

fn decode_exact<const N: usize>(
    line: &str,
    number: usize,
) -> Result<[u8; N], SignatureFormatError> {
    let wrong = || SignatureFormatError::Base64 {
        line: number,
        expected: N,
    };
    let bytes = STANDARD.decode(line).map_err(|_| wrong())?;
    bytes.try_into().map_err(|_| wrong())
}

/// Why a public key file was not accepted.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("failed to read `{}`: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "`{}` is not a minisign public key ({problem}; expected `untrusted comment: …` and a base64 line, as `pyapp-build keygen` and `minisign -G` write)",
        path.display()
    )]
    Invalid {
        path: PathBuf,
        problem: &'static str,
    },
}

/// A public key the installer trusts, from a minisign `.pub` file.
#[derive(Clone)]
pub struct TrustedKey {
    id: KeyId,
    path: PathBuf,
    key: minisign_verify::PublicKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// Reads a minisign public key file: an `untrusted comment: …` line, then the base64 of
    /// `Ed`, the 8-byte key id and the 32-byte Ed25519 key, then nothing but an optional
    /// line feed.
    pub fn from_file(path: &Path) -> Result<TrustedKey, KeyError> {
        let io_error = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(io_error)?;
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(file, MAX_KEY_FILE + 1), &mut bytes)
            .map_err(io_error)?;
        let invalid = |problem| KeyError::Invalid {
            path: path.to_owned(),
            problem,
        };
        if bytes.len() as u64 > MAX_KEY_FILE {
            return Err(invalid("too large"));
        }
        let (id, key) = parse_public_key(&bytes).map_err(invalid)?;
        Ok(TrustedKey {
            id,
            path: path.to_owned(),
            key,
        })
    }

    /// The key's id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The file the key was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_public_key(bytes: &[u8]) -> Result<(KeyId, minisign_verify::PublicKey), &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8")?;
    let mut lines = text.lines();
    let comment = lines.next().ok_or("empty")?;
    if !comment.starts_with(UNTRUSTED_PREFIX) {
        return Err("no untrusted comment line");
    }
    let encoded = lines.next().ok_or("no key line")?;
    if lines.next().is_some() {
        return Err("more than two lines");
    }
    let decoded = STANDARD
        .decode(encoded.trim_end())
        .map_err(|_| "the key line is not base64")?;
    if decoded.len() != 42 {
        return Err("the key line does not hold 42 bytes");
    }
    if decoded[0..2] != ALG_LEGACY {
        return Err("not an Ed25519 key");
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&decoded[2..10]);
    let key = minisign_verify::PublicKey::from_base64(encoded.trim_end())
        .map_err(|_| "the key line is not a public key")?;
    Ok((KeyId(id), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key pair and signature made by the real minisign 0.11 (`minisign -G -W`, then
    // `minisign -S -m manifest.json -t 'pyapp test'`) over MANIFEST.
    const MANIFEST: &[u8] = b"{\"format\":1,\"files\":[]}\n";
    const PUBLIC: &str = "untrusted comment: minisign public key BEC560A422BBB96A\n\
                          RWRqubsipGDFvkeYf4r/6eDhbgV7X0yS3mD55+aORs1E4BbuswyCOTZN\n";
    const SIGNATURE: &str = "untrusted comment: signature from minisign secret key\n\
RURqubsipGDFvq/KcuSF7DqGt/f2SvhzDEkOI//jUwUFQ+xS0VX8QO6EvNJdsrCWN1uyMbp1EUz098EdTkKwdhnRBdyTHeySMQs=\n\
trusted comment: pyapp test\n\
1H7F48rP0U6u9YoZnDIhhWjr+HN6pChB+18HRXSuNvQg4FF8v0c2BH3noY/yWw3v4OSdII02OR6DVMbbPlZADA==\n";

    fn key(dir: &Path, text: &str) -> Result<TrustedKey, KeyError> {
        let path = dir.join("k.pub");
        fs::write(&path, text).expect("write key");
        TrustedKey::from_file(&path)
    }

    #[test]
    fn verifies_what_minisign_signed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key(dir.path(), PUBLIC).expect("key");
        assert_eq!(key.id().to_string(), "BEC560A422BBB96A");
        let signature = BundleSignature::parse(SIGNATURE.as_bytes()).expect("parse");
        assert_eq!(signature.key_id(), key.id());
        assert_eq!(signature.trusted_comment(), "pyapp test");
        let keys = [key];
        assert!(signature.verify(MANIFEST, &keys).is_some());
        assert!(signature.verify(b"{\"format\":1}\n", &keys).is_none());
        assert!(signature.verify(MANIFEST, &[]).is_none());
    }

    #[test]
    fn a_changed_trusted_comment_does_not_verify() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = [key(dir.path(), PUBLIC).expect("key")];
        let changed = SIGNATURE.replace("pyapp test", "pyapp tesT");
        let signature = BundleSignature::parse(changed.as_bytes()).expect("parse");
        assert!(signature.verify(MANIFEST, &keys).is_none());
    }

    #[test]
    fn encode_round_trips() {
        let encoded = encode_signature("c", KeyId([1; 8]), &[2; 64], "t\tx", &[3; 64]);
        let parsed = BundleSignature::parse(&encoded).expect("parse");
        assert_eq!(parsed.key_id(), KeyId([1; 8]));
        assert_eq!(parsed.trusted_comment(), "t\tx");
        assert_eq!(parsed.key_id().to_string(), "0101010101010101");
    }

    #[test]
    fn refuses_malformed_signatures() {
        let lines: Vec<&str> = SIGNATURE.lines().collect();
        let with = |index: usize, line: &str| {
            let mut changed = lines.clone();
            changed[index] = line;
            format!("{}\n", changed.join("\n"))
        };
        let legacy = {
            let mut bytes = STANDARD.decode(lines[1]).expect("base64");
            bytes[1] = b'd';
            STANDARD.encode(bytes)
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0xff], "is not a minisign signature: it is not UTF-8"),
            (
                SIGNATURE.trim_end().as_bytes().to_vec(),
                "is not a minisign signature: it must be 4 lines, each ending in a line feed (found 4)",
            ),
            (
                format!("{SIGNATURE}extra\n").into_bytes(),
                "is not a minisign signature: it must be 4 lines, each ending in a line feed (found 5)",
            ),
            (
                SIGNATURE.replace('\n', "\r\n").into_bytes(),
                "is not a minisign signature: line 1 has a control character",
            ),
            (
                with(0, "comment: x").into_bytes(),
                "is not a minisign signature: line 1 does not start with \"untrusted comment: \"",
            ),
            (
                with(1, "RURqubsi").into_bytes(),
                "is not a minisign signature: line 2 is not base64 of 74 bytes",
            ),
            (
                with(2, "trusted: x").into_bytes(),
                "is not a minisign signature: line 3 does not start with \"trusted comment: \"",
            ),
            (
                with(2, "trusted comment: a\u{1b}[31m").into_bytes(),
                "is not a minisign signature: line 3 has a control character",
            ),
            (
                with(3, "AAAA").into_bytes(),
                "is not a minisign signature: line 4 is not base64 of 64 bytes",
            ),
            (
                with(1, &legacy).into_bytes(),
                "is a legacy minisign signature (algorithm Ed); sign with prehashing (ED)",
            ),
        ];
        for (bytes, expected) in cases {
            let error = BundleSignature::parse(&bytes).expect_err(expected);
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn refuses_malformed_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let message = |text: &str| {
            let error = key(dir.path(), text).expect_err("refused");
            let text = error.to_string();
            let start = text.find("(").expect("problem");
            let end = text.find(';').expect("problem end");
            text[start + 1..end].to_owned()
        };
        assert_eq!(message(""), "empty");
        assert_eq!(message("RWRqubsi\n"), "no untrusted comment line");
        assert_eq!(message("untrusted comment: x\n"), "no key line");
        assert_eq!(
            message("untrusted comment: x\n!!!\n"),
            "the key line is not base64"
        );
        assert_eq!(
            message("untrusted comment: x\nAAAA\n"),
            "the key line does not hold 42 bytes"
        );
        assert_eq!(message(&format!("{PUBLIC}more\n")), "more than two lines");
        let missing = TrustedKey::from_file(&dir.path().join("absent.pub")).expect_err("absent");
        assert!(
            missing.to_string().starts_with("failed to read `"),
            "{missing}"
        );
    }
}
