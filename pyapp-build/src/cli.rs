//! Command-line arguments of `pyapp-build`.

use std::path::PathBuf;

use clap::Parser;

/// Pack a Python application, all of its pinned dependencies as wheels, its metadata.yaml
/// and configuration.yaml into one reproducible `.pyapp` bundle.
///
/// PROJECT_DIR holds pyproject.toml, pinned-requirements.txt (exact `name==version` pins,
/// `--hash=sha256:` honoured), metadata.yaml and configuration.yaml (see spec/FORMAT.md).
/// Wheels are taken from the --wheels directories first and fetched with
/// `pip download` for the rest (unless --no-index). The bundle's path is printed on stdout.
#[derive(Debug, Parser)]
#[command(name = "pyapp-build", version, after_help = EXAMPLES)]
pub struct Args {
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

    /// Never download: every pin must be in a --wheels directory.
    #[arg(long)]
    pub no_index: bool,

    /// Base URL of the package index pip downloads from.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,

    /// Extra index URL for pip (repeatable).
    #[arg(long, value_name = "URL")]
    pub extra_index_url: Vec<String>,

    /// Python version of the target server (e.g. 3.11), when it differs from --python's.
    #[arg(long, value_name = "X.Y")]
    pub python_version: Option<String>,

    /// Platform tag of the target server (e.g. manylinux_2_28_x86_64), when it differs
    /// from this machine's.
    #[arg(long, value_name = "TAG", requires = "python_version")]
    pub platform: Option<String>,

    /// The Python interpreter that runs pip and, without --python-version, describes the target.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub python: PathBuf,

    /// Print a JSON report on stdout instead of the bundle's path.
    #[arg(long)]
    pub json: bool,

    /// No progress or messages on stderr (errors still go there).
    #[arg(short, long)]
    pub quiet: bool,
}

const EXAMPLES: &str = "\
Examples:
  pyapp-build fixtures/hello -o dist --wheels wheelhouse/
  pyapp-build . --python-version 3.11 --platform manylinux_2_28_x86_64 --json
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) pyapp-build .

Exit status: 0 built, 1 the project is invalid (message names the file and field), 2 unexpected failure.";
