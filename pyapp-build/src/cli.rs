//! Command-line arguments of `pyapp-build`: building a bundle is the default action;
//! `keygen` (a signing key pair) is a subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use pyapp_cli::{Generate, Verbosity};

/// Pack a Python application, all of its pinned dependencies as wheels, its metadata.yaml
/// and configuration.yaml into one reproducible `.pyapp` bundle.
///
/// PROJECT_DIR holds the project (pyproject.toml, setup.py or setup.cfg: its own build
/// backend builds the app's wheel), pinned-requirements.txt (or uv.lock, poetry.lock or
/// pylock.toml) (exact `name==version` pins in
/// pip's requirement-file format, `--hash=sha256:` honoured), metadata.yaml and configuration.yaml (see spec/FORMAT.md).
/// Wheels are taken from the --wheels directories first and fetched with
/// `pip download` for the rest (unless --no-index). The bundle's path is printed on stdout.
/// With --sign KEY the manifest is signed (minisign format; `pyapp-build keygen` makes KEY).
#[derive(Debug, Parser)]
#[command(
    name = "pyapp-build",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The project directory.
    #[arg(default_value = ".")]
    pub project_dir: PathBuf,

    /// Where to write NAME-VERSION.pyapp.
    #[arg(short, long, default_value = "dist")]
    pub out_dir: PathBuf,

    /// A directory of wheels to take dependencies from (repeatable); no network is used
    /// for the pins found there.
    #[arg(long = "wheels", value_name = "DIR")]
    pub wheel_dirs: Vec<PathBuf>,

    /// Where downloaded build requirements' wheels are kept between builds (default
    /// $XDG_CACHE_HOME/pyapp-build/wheels or ~/.cache/pyapp-build/wheels).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Also pack pinned wheels nothing requires (by default they are left out and named in
    /// a warning and the report's unused-pins).
    #[arg(long)]
    pub keep_unused_pins: bool,

    /// Never download: every pin must be in a --wheels directory.
    #[arg(long)]
    pub no_index: bool,

    /// Base URL of the package index pip downloads from.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,

    /// Extra index URL for pip (repeatable).
    #[arg(long, value_name = "URL")]
    pub extra_index_url: Vec<String>,

    /// Python version of the target server (e.g. 3.11, or Debian 12's 3.11.2 so that
    /// `python_full_version` markers are decided for it; 3.11 means 3.11.0), when it
    /// differs from --python's.
    #[arg(long, value_name = "X.Y[.Z]")]
    pub python_version: Option<String>,

    /// Platform tag of the target server (e.g. manylinux_2_28_x86_64), when it differs
    /// from this machine's.
    #[arg(long, value_name = "TAG", requires = "python_version")]
    pub platform: Option<String>,

    /// The Python interpreter that runs pip and, without --python-version, describes the target.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: PathBuf,

    /// Sign the bundle with this minisign secret key (from `pyapp-build keygen`; an
    /// encrypted key's password is read from PYAPP_SIGNING_PASSWORD, else asked for).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,

    /// Print a JSON report on stdout instead of the bundle's path.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The actions besides building.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a signing key pair: DIR/pyapp.key (secret, mode 0600) and DIR/pyapp.pub (give
    /// it to the servers: APPS/.pyapp-trusted-keys/ or `pyapp-install --trusted-key`). The
    /// secret key is encrypted with PYAPP_SIGNING_PASSWORD, or a password asked for, unless
    /// --no-password. The public key's path is printed on stdout.
    Keygen(KeygenArgs),

    #[command(flatten)]
    Generate(Generate),
}

/// `pyapp-build keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write pyapp.key and pyapp.pub.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,

    /// Replace an existing pyapp.key or pyapp.pub.
    #[arg(long)]
    pub force: bool,

    /// Leave the secret key unencrypted (for CI machines that keep it in a secret store).
    #[arg(long)]
    pub no_password: bool,
}

const EXAMPLES: &str = "\
Examples:
  pyapp-build fixtures/hello -o dist --wheels wheelhouse/
  pyapp-build . --python-version 3.11 --platform manylinux_2_28_x86_64 --json
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) pyapp-build .
  pyapp-build keygen -o ~/.pyapp                     make ~/.pyapp/pyapp.{key,pub}
  pyapp-build . --sign ~/.pyapp/pyapp.key            a signed bundle
  pyapp-build completions bash > /etc/bash_completion.d/pyapp-build
  pyapp-build man --out-dir /usr/local/share/man/man1

NO_COLOR=1 turns colour off; -v names each step with its duration, -vv also each pip command.

Exit status: 0 built, 1 the project is invalid (message names the file and field), 2 unexpected failure.";
