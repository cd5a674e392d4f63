//! Where an app lives on disk: the apps directory (`/applications` under `--root`) and, per
//! app, its releases, the `current` link, the lasting directories and pyapp's own state in
//! `.pyapp/`. See spec/FORMAT.md section 6. Only paths here; the I/O is in the callers.

use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use pyapp_bundle::names::AppName;

use pyapp_cli::Refusal;

/// The apps directory used when `--apps-dir` is not given, relative to `--root`.
pub const DEFAULT_APPS_DIR: &str = "/applications";

/// The directories that outlive releases, with the mode each is created with. What is
/// already in them is never touched by an install, upgrade, rollback or `remove`.
pub const LASTING_DIRS: [(&str, u32); 5] = [
    ("config", 0o750),
    ("data", 0o750),
    ("tmp", 0o750),
    ("run", 0o755),
    ("log", 0o750),
];

/// The name of [`AppTree::environment_file`] in the state directory.
const ENVIRONMENT_FILE: &str = "environment";

/// The directory holding every app, e.g. `/applications`.
#[derive(Debug, Clone)]
pub struct AppsDir {
    path: PathBuf,
    /// The same directory as the installed system sees it (without `--root`).
    runtime_path: PathBuf,
}

impl AppsDir {
    /// `apps_dir` placed under `root`, the way DESTDIR places files: `--root /tmp/img
    /// --apps-dir /applications` is `/tmp/img/applications`.
    pub fn new(root: &Path, apps_dir: &Path) -> Self {
        let inside_root: PathBuf = apps_dir
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        AppsDir {
            path: root.join(&inside_root),
            runtime_path: Path::new("/").join(inside_root),
        }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory as the installed system sees it (without `--root`).
    pub fn runtime_path(&self) -> &Path {
        &self.runtime_path
    }

    /// The tree of the app called `name`; refuses names that are not app names, so a
    /// command-line argument like `../etc` never becomes a path.
    pub fn app(&self, name: &str) -> Result<AppTree> {
        if let Err(err) = AppName::new(name) {
            return Err(Refusal::new(err.to_string())
                .with_hint("`pyapp-install list` shows the installed apps")
                .into());
        }
        Ok(AppTree {
            name: name.to_owned(),
            dir: self.path.join(name),
            runtime_dir: self.runtime_path.join(name),
        })
    }

    /// The apps that have a receipt, i.e. that pyapp-install installed, sorted by name.
    pub fn installed_apps(&self) -> Result<Vec<AppTree>> {
        let mut apps = Vec::new();
        for name in pyapp_fs::list_dir(&self.path)? {
            if let Ok(app) = self.app(&name) {
                if pyapp_fs::exists(&app.receipt_path())? {
                    apps.push(app);
                }
            }
        }
        Ok(apps)
    }
}

/// One app's directory, e.g. `/applications/hello`.
#[derive(Debug, Clone)]
pub struct AppTree {
    name: String,
    dir: PathBuf,
    /// `dir` as the installed system sees it: the path written into files.
    runtime_dir: PathBuf,
}

impl AppTree {
    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `APPS/APP`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `APPS/APP/releases`: one directory per installed release.
    pub fn releases_dir(&self) -> PathBuf {
        self.dir.join("releases")
    }

    /// `APPS/APP/releases/RELEASE`.
    pub fn release_dir(&self, release: &str) -> PathBuf {
        self.releases_dir().join(release)
    }

    /// `APPS/APP` at run time (without `--root`): the base of every path written into
    /// files and environments.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    /// `APPS/APP/releases/RELEASE` at run time: what shebangs and scripts refer to.
    pub fn runtime_release_dir(&self, release: &str) -> PathBuf {
        self.runtime_dir.join("releases").join(release)
    }

    /// `APPS/APP/current`: the link to the release in use.
    pub fn current_link(&self) -> PathBuf {
        self.dir.join("current")
    }

    /// A lasting directory (one of [`LASTING_DIRS`]), e.g. `APPS/APP/data`.
    pub fn lasting_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `APPS/APP/.pyapp`: pyapp-install's own state, owned by root.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".pyapp")
    }

    /// `APPS/APP/.pyapp/receipt.json`: what is installed (see [`crate::app::receipt`]).
    pub fn receipt_path(&self) -> PathBuf {
        self.state_dir().join("receipt.json")
    }

    /// `APPS/APP/.pyapp/lock`: held while a command changes the app (see [`pyapp_fs::lock`]).
    pub fn lock_path(&self) -> PathBuf {
        self.state_dir().join("lock")
    }

    /// `APP/.pyapp/environment`: the variables configuration.yaml's `environment` sets,
    /// read by systemd for the app's units (root's, 0600: it may hold secrets).
    pub fn environment_file(&self) -> PathBuf {
        self.state_dir().join(ENVIRONMENT_FILE)
    }

    /// The same file as the installed system sees it (without `--root`).
    pub fn runtime_environment_file(&self) -> PathBuf {
        self.runtime_dir.join(".pyapp").join(ENVIRONMENT_FILE)
    }
}
