//! `pyapp-build keygen`: a minisign key pair for `--sign`, written as `pyapp.key` (secret,
//! mode 0600, encrypted unless `--no-password`) and `pyapp.pub` (for the servers' trust
//! configuration). The files are minisign's own format: `minisign -S -s pyapp.key` and
//! `minisign -V -p pyapp.pub` work with them too.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use pyapp_bundle::signature::KeyId;

use crate::cli::KeygenArgs;
use crate::signing::{self, PASSWORD_VARIABLE};
use crate::Refusal;

/// The secret key's file name.
pub const SECRET_KEY_FILE: &str = "pyapp.key";
/// The public key's file name.
pub const PUBLIC_KEY_FILE: &str = "pyapp.pub";

/// What `keygen` wrote.
#[derive(Debug)]
pub struct KeyFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
    pub id: KeyId,
    pub encrypted: bool,
}

/// Makes the key pair. Nothing is replaced without `--force`, and either both files are
/// written or neither (each is written to a temporary file first, then renamed).
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<KeyFiles> {
    let secret_path = args.out_dir.join(SECRET_KEY_FILE);
    let public_path = args.out_dir.join(PUBLIC_KEY_FILE);
    if !args.force {
        for path in [&secret_path, &public_path] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(Refusal::new(format!(
                    "{} exists: pass --force to replace the key pair (bundles signed with the old key then verify only with the old pyapp.pub)",
                    path.display()
                ))
                .into());
            }
        }
    }
    let password = if args.no_password {
        None
    } else {
        Some(new_password(&secret_path)?)
    };
    fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("failed to create `{}`", args.out_dir.display()))?;
    let pair = match password {
        Some(password) => minisign::KeyPair::generate_encrypted_keypair(Some(password)),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .context("failed to generate a key pair")?;
    let mut id = [0u8; 8];
    id.copy_from_slice(pair.pk.keynum());
    let id = KeyId(id);
    let secret = pair
        .sk
        .to_box(Some(&format!("pyapp-build secret key {id}")))
        .context("failed to encode the secret key")?
        .into_string();
    let public = pair
        .pk
        .to_box()
        .context("failed to encode the public key")?
        .into_string();

    let staged_secret = stage(&args.out_dir, secret.as_bytes(), 0o600)?;
    let staged_public = stage(&args.out_dir, public.as_bytes(), 0o644)?;
    place(staged_secret, &secret_path, args.force)?;
    place(staged_public, &public_path, args.force)?;
    Ok(KeyFiles {
        secret: secret_path,
        public: public_path,
        id,
        encrypted: !args.no_password,
    })
}

/// The new key's password: [`PASSWORD_VARIABLE`], or asked for twice on the terminal.
fn new_password(secret_path: &Path) -> anyhow::Result<String> {
    let from_variable = std::env::var_os(PASSWORD_VARIABLE).is_some();
    let password = signing::password("password for the new secret key: ", secret_path)?;
    if password.is_empty() {
        return Err(Refusal::new(
            "the password is empty: give one, or pass --no-password for an unencrypted key",
        )
        .into());
    }
    if !from_variable {
        let again = signing::password("the same password again: ", secret_path)?;
        if again != password {
            return Err(Refusal::new("the two passwords differ").into());
        }
    }
    Ok(password)
}

/// `bytes` in a new temporary file in `dir` with `mode`, synced.
fn stage(dir: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix(".pyapp-keygen-")
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a file in `{}`", dir.display()))?;
    let path = file.path().to_owned();
    let context = || format!("failed to write `{}`", path.display());
    file.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    file.as_file().sync_all().with_context(context)?;
    Ok(file)
}

/// Renames a staged file into place, replacing an existing one only if `force`.
fn place(file: tempfile::NamedTempFile, path: &Path, force: bool) -> anyhow::Result<()> {
    let result = if force {
        file.persist(path).map(drop)
    } else {
        file.persist_noclobber(path).map(drop)
    };
    result
        .map_err(|err| err.error)
        .with_context(|| format!("failed to write `{}`", path.display()))
}
