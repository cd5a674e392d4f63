//! The environment of every process pyapp starts for an app: services and timers (as
//! `Environment=` lines), hooks and `pyapp-install run`. FORMAT.md 7's list, in one place, so
//! the three cannot drift apart. Paths are run-time paths (without `--root`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::app::tree::AppTree;

/// The directories a process finds before the system's on `PATH`, after the venv's `bin/`.
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An app process's environment variables, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEnvironment {
    vars: BTreeMap<String, String>,
}

impl AppEnvironment {
    /// The environment of the app in `tree` at `version`, running from the venv at
    /// `venv` (run-time path: `current/venv` for units, the exact release for hooks) with
    /// its configuration file at `config_file` (run-time path).
    pub fn new(tree: &AppTree, version: &str, venv: &Path, config_file: &Path) -> AppEnvironment {
        let app = tree.runtime_dir();
        let path_of = |dir: &str| app.join(dir).display().to_string();
        let vars = BTreeMap::from([
            ("PYAPP_NAME".to_string(), tree.name().to_string()),
            ("PYAPP_VERSION".to_string(), version.to_string()),
            ("PYAPP_APP_PATH".to_string(), app.display().to_string()),
            (
                "PYAPP_CONFIG_FILE".to_string(),
                config_file.display().to_string(),
            ),
            ("PYAPP_DATA_PATH".to_string(), path_of("data")),
            ("PYAPP_TMP_PATH".to_string(), path_of("tmp")),
            ("PYAPP_RUN_PATH".to_string(), path_of("run")),
            ("PYAPP_LOG_PATH".to_string(), path_of("log")),
            ("VIRTUAL_ENV".to_string(), venv.display().to_string()),
            (
                "PATH".to_string(),
                format!("{}:{SYSTEM_PATH}", venv.join("bin").display()),
            ),
            ("HOME".to_string(), path_of("data")),
            ("TMPDIR".to_string(), path_of("tmp")),
            ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ]);
        AppEnvironment { vars }
    }

    /// Add or replace a variable (e.g. a service's `PYAPP_PORT`).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_string(), value.into());
    }

    /// Add or replace each of `vars` (configuration.yaml's `environment`).
    pub fn extend(&mut self, vars: &BTreeMap<String, String>) {
        self.vars.extend(
            vars.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
    }

    /// Every variable, sorted by name.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::AppsDir;

    #[test]
    fn names_run_time_paths_and_puts_the_venv_first() {
        let apps = AppsDir::new(Path::new("/tmp/image"), Path::new("/applications"));
        let tree = apps.app("hello").unwrap();
        let env = AppEnvironment::new(
            &tree,
            "1.0.0",
            Path::new("/applications/hello/current/venv"),
            Path::new("/applications/hello/config/config.yaml"),
        );
        let vars = env.vars();
        assert_eq!(
            vars["PYAPP_CONFIG_FILE"],
            "/applications/hello/config/config.yaml"
        );
        assert_eq!(vars["PYAPP_TMP_PATH"], "/applications/hello/tmp");
        assert_eq!(vars["PYAPP_DATA_PATH"], "/applications/hello/data");
        assert_eq!(vars["PYAPP_NAME"], "hello");
        assert_eq!(vars["PYAPP_VERSION"], "1.0.0");
        assert_eq!(vars["VIRTUAL_ENV"], "/applications/hello/current/venv");
        assert!(vars["PATH"].starts_with("/applications/hello/current/venv/bin:/usr/local/sbin:"));
    }
}
