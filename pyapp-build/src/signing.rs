//! Signing a bundle's manifest with `--sign KEY` (spec/FORMAT.md section 1.2), and the
//! password of an encrypted key.
//!
//! Key files are minisign's, read with the `minisign` crate (which also decrypts them). The
//! signature itself is made here with deterministic Ed25519 (RFC 8032, `ed25519-compact`)
//! over the manifest's BLAKE2b-512 hash, because the `minisign` crate adds random noise to
//! every signature: the same key and inputs must give a byte-identical bundle.

use std::io::Read;
use std::path::Path;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use blake2::{Blake2b512, Digest as _};
use sha2::Sha256;

use pyapp_bundle::signature::{encode_signature, KeyId};

use crate::Refusal;

/// The environment variable holding the password of an encrypted secret key.
pub const PASSWORD_VARIABLE: &str = "PYAPP_SIGNING_PASSWORD";
/// The untrusted comment of every signature pyapp-build makes.
const UNTRUSTED_COMMENT: &str = "signature from pyapp-build secret key";
/// Largest secret key file read, in bytes (a real one is about 250).
const MAX_KEY_FILE: u64 = 4096;
/// minisign's secret key layout: algorithm, KDF, checksum algorithm, salt, KDF limits (54
/// bytes), then the key id, the 64-byte Ed25519 secret key (seed and public key), the
/// checksum.
const KEY_ID_AT: usize = 54;
const SECRET_AT: usize = 62;
const SECRET_KEY_BYTES: usize = 158;

/// A loaded, decrypted signing key.
pub struct SigningKey {
    id: KeyId,
    secret: ed25519_compact::SecretKey,
}

impl SigningKey {
    /// Reads a minisign secret key file; an encrypted one is decrypted with the password
    /// from [`PASSWORD_VARIABLE`], else one asked for on the terminal.
    pub fn load(path: &Path) -> anyhow::Result<SigningKey> {
        let mut text = String::new();
        let read = std::fs::File::open(path)
            .and_then(|file| file.take(MAX_KEY_FILE).read_to_string(&mut text));
        if let Err(err) = read {
            if err.kind() == std::io::ErrorKind::NotFound {
                return Err(Refusal::new(format!(
                    "{}: no such secret key; `pyapp-build keygen` makes one",
                    path.display()
                ))
                .into());
            }
            return Err(err).with_context(|| format!("failed to read `{}`", path.display()));
        }
        let not_a_key = |problem: &str| {
            Refusal::new(format!(
                "{}: not a minisign secret key ({problem}); `pyapp-build keygen` makes one",
                path.display()
            ))
        };
        let encoded = text
            .lines()
            .nth(1)
            .ok_or_else(|| not_a_key("no key line"))?;
        let raw = STANDARD
            .decode(encoded.trim_end())
            .map_err(|_| not_a_key("the key line is not base64"))?;
        if raw.len() != SECRET_KEY_BYTES || &raw[..2] != b"Ed" {
            return Err(not_a_key("not an Ed25519 secret key").into());
        }
        let secret_box =
            minisign::SecretKeyBox::from_string(&text).map_err(|e| not_a_key(&e.to_string()))?;
        let decrypted = match &raw[2..4] {
            [0, 0] => minisign::SecretKey::from_unencrypted_box(secret_box),
            b"Sc" => {
                let password = password(&format!("password of {}: ", path.display()), path)?;
                minisign::SecretKey::from_box(secret_box, Some(password))
            }
            _ => return Err(not_a_key("unknown encryption").into()),
        }
        .map_err(|e| {
            Refusal::new(format!(
                "{}: cannot use the secret key: {}",
                path.display(),
                e.to_string().to_lowercase()
            ))
        })?;
        let bytes = decrypted.to_bytes();
        let (Some(id), Some(secret)) = (
            bytes.get(KEY_ID_AT..SECRET_AT),
            bytes.get(SECRET_AT..SECRET_AT + 64),
        ) else {
            return Err(not_a_key("too short").into());
        };
        let secret = ed25519_compact::SecretKey::from_slice(secret)
            .map_err(|_| not_a_key("bad Ed25519 key"))?;
        let seed = ed25519_compact::Seed::from_slice(&secret[..32])
            .map_err(|_| not_a_key("bad Ed25519 key"))?;
        if ed25519_compact::KeyPair::from_seed(seed).pk != secret.public_key() {
            return Err(not_a_key("its public half does not match its secret half").into());
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(id);
        Ok(SigningKey {
            id: KeyId(key_id),
            secret,
        })
    }

    /// The key's id, as `minisign` and `pyapp-install` show it.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// `manifest.json.minisig` for a manifest: minisign's prehashed form, with the trusted
    /// comment `pyapp bundle FILE manifest-sha256:HEX` (FILE the bundle's file name). Made
    /// without randomness, so the same key and manifest give the same bytes.
    pub fn sign(&self, manifest: &[u8], bundle_file_name: &str) -> Vec<u8> {
        let trusted_comment = format!(
            "pyapp bundle {bundle_file_name} manifest-sha256:{}",
            hex::encode(Sha256::digest(manifest))
        );
        let prehash = Blake2b512::digest(manifest);
        let signature = self.secret.sign(&prehash[..], None);
        let mut global = signature.to_vec();
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_signature = self.secret.sign(&global, None);
        encode_signature(
            UNTRUSTED_COMMENT,
            self.id,
            &signature,
            &trusted_comment,
            &global_signature,
        )
    }
}

/// The password from [`PASSWORD_VARIABLE`], or asked for on the terminal with `prompt`
/// (`key` names the key in the refusal when there is no terminal).
pub fn password(prompt: &str, key: &Path) -> anyhow::Result<String> {
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        return password
            .into_string()
            .map_err(|_| Refusal::new(format!("{PASSWORD_VARIABLE} is not valid UTF-8")).into());
    }
    rpassword::prompt_password(prompt).map_err(|err| {
        Refusal::new(format!(
            "{}: no password: {PASSWORD_VARIABLE} is not set and no terminal can ask for it ({err})",
            key.display()
        ))
        .into()
    })
}
