//! The trust policy for signed bundles (spec/SECURITY.md "Signatures"): which minisign
//! public keys this server trusts, and the refusal of a bundle none of them signed.
//!
//! Trusted keys come from `--trusted-key FILE` and from `APPS/.pyapp-trusted-keys/*.pub`.
//! With neither, signatures are not required. Once that directory exists, or a key is
//! given, every bundle must carry a signature that a trusted key verifies; the check runs
//! right after the bundle is opened, before anything is written.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use pyapp_bundle::reader::{Bundle, BundleError, ErrorKind};
use pyapp_bundle::signature::{KeyError, TrustedKey};

use crate::app::tree::AppsDir;
use crate::progress::Progress;
use pyapp_cli::Refusal;

/// The directory of trusted public keys, inside the apps directory.
pub const TRUSTED_KEYS_DIR: &str = ".pyapp-trusted-keys";
/// The file name ending of a trusted key in [`TRUSTED_KEYS_DIR`].
const KEY_SUFFIX: &str = ".pub";

/// The keys this server trusts, or none: signatures not required.
#[derive(Debug)]
pub struct TrustPolicy {
    /// `None` when no trust is configured; otherwise the keys (possibly none, when the
    /// keys directory exists but is empty: then nothing is trusted).
    keys: Option<Vec<TrustedKey>>,
    dir: PathBuf,
}

impl TrustPolicy {
    /// The keys of the `--trusted-key` files `given` and of `APPS/.pyapp-trusted-keys/*.pub`
    /// (in name order). The directory must be a real directory and it and its keys writable
    /// by their owner only, the owner being root or this user: whoever can add a key there
    /// decides what this server installs.
    pub fn load(apps: &AppsDir, given: &[PathBuf]) -> Result<TrustPolicy> {
        let dir = apps.path().join(TRUSTED_KEYS_DIR);
        let mut keys = Vec::new();
        for path in given {
            keys.push(read_key(path)?);
        }
        pyapp_fs::check_dir_or_missing(&dir)?;
        let dir_exists = pyapp_fs::exists(&dir)?;
        if dir_exists {
            check_private(&dir)?;
            for name in pyapp_fs::list_dir(&dir)? {
                if name.ends_with(KEY_SUFFIX) {
                    let path = dir.join(&name);
                    check_private(&path)?;
                    keys.push(read_key(&path)?);
                }
            }
        }
        let configured = dir_exists || !given.is_empty();
        Ok(TrustPolicy {
            keys: configured.then_some(keys),
            dir,
        })
    }

    /// Refuses `bundle` unless no trust is configured or a trusted key verifies its
    /// signature; says which key did.
    pub fn check(&self, bundle: &Bundle, output: &dyn Progress) -> Result<()> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        if keys.is_empty() {
            return Err(Refusal::new(format!(
                "{}: no key is trusted: `{}` holds no *{KEY_SUFFIX} file",
                bundle.path().display(),
                self.dir.display()
            ))
            .with_hint(
                "put the signer's public key (pyapp.pub from `pyapp-build keygen`) there, or give --trusted-key FILE",
            )
            .into());
        }
        match bundle.verify_signature(keys) {
            Ok(key) => {
                output.note(&format!(
                    "signature: key {} (trusted: {})",
                    key.id(),
                    key.path().display()
                ));
                Ok(())
            }
            Err(err) if err.kind() == ErrorKind::BadBundle => {
                let hint = hint(&err, &self.dir);
                Err(Refusal::new(err.to_string()).with_hint(hint).into())
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// What to do about a refused signature.
fn hint(err: &BundleError, dir: &Path) -> String {
    use pyapp_bundle::reader::Problem;
    match err.problem() {
        Some(Problem::Unsigned { .. }) => {
            "build it with `pyapp-build --sign KEY`, KEY's public half being trusted here"
                .to_owned()
        }
        _ => format!(
            "sign it with a trusted key; to trust its signer, add the signer's pyapp.pub to `{}`",
            dir.display()
        ),
    }
}

fn read_key(path: &Path) -> Result<TrustedKey> {
    TrustedKey::from_file(path).map_err(|err| match err {
        KeyError::Invalid { .. } => Refusal::new(err.to_string())
            .with_hint("give the .pub file `pyapp-build keygen` or `minisign -G` wrote")
            .into(),
        KeyError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Refusal::new(err.to_string())
                .with_hint("give the path of a public key file (pyapp.pub)")
                .into()
        }
        KeyError::Io { .. } => anyhow::Error::new(err),
    })
}

/// Refuses a trust file or directory that is a link, writable by anyone but its owner, or
/// owned by someone other than root or this user.
fn check_private(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("failed to inspect `{}`", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    let problem = if meta.file_type().is_symlink() {
        Some("is a symbolic link".to_owned())
    } else if !(meta.is_dir() || meta.is_file()) {
        Some("is not a file".to_owned())
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by others (mode {:#o})",
            meta.mode() & 0o7777
        ))
    } else if meta.uid() != 0 && meta.uid() != me {
        Some(format!("is owned by uid {}, not root", meta.uid()))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Refusal::new(format!(
            "trusted keys: `{}` {problem}: whoever can change it decides what this server installs",
            path.display()
        ))
        .with_hint(
            "make it a real file or directory owned by root, mode 0644 (0755 for the directory)",
        )
        .into()),
    }
}
