//! The last result of each hook, `APPS/APP/.pyapp/hooks.json` (FORMAT.md 6.4): which
//! release ran it, when, for how long and how it ended. [`crate::system::hooks`] records a run
//! once the hook's process is gone; `pyapp-install status` shows them. Root writes the file
//! atomically, in root's own directory, so the app cannot forge its hooks' results.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::app::tree::AppTree;
use pyapp_fs::state::{self, Versioned};

/// The version of the file's layout; a larger one is refused.
pub const HOOK_RESULTS_FORMAT: u32 = 1;

/// How a hook's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookEnd {
    /// Exit status 0.
    Succeeded,
    /// Another exit status, or killed by a signal.
    Failed,
    /// Killed at `hooks.timeout`.
    TimedOut,
}

/// One hook's last run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HookResult {
    /// The release whose venv and source it ran with (for pre-update, the new one).
    pub release: String,
    pub version: String,
    /// RFC 3339 UTC with milliseconds, as in its `log/hooks.log` header.
    pub started_at: String,
    pub duration_seconds: f64,
    pub result: HookEnd,
    /// The exit status, when it exited (not when killed by a signal or timed out).
    pub exit_status: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
}

/// The file as a whole.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct HookResultsFile {
    hooks_format: u32,
    /// By hook name (`post-install`, …, `health-check`).
    hooks: BTreeMap<String, HookResult>,
}

impl Versioned for HookResultsFile {
    const WHAT: &'static str = "hook results file";
    const FORMAT_FIELD: &'static str = "hooks-format";
    const FORMAT: u32 = HOOK_RESULTS_FORMAT;
}

/// `APPS/APP/.pyapp/hooks.json`.
pub fn hook_results_path(tree: &AppTree) -> PathBuf {
    tree.state_dir().join("hooks.json")
}

/// The last result of each hook that ran, by hook name; empty when none has run.
pub fn load(tree: &AppTree) -> Result<BTreeMap<String, HookResult>> {
    let path = hook_results_path(tree);
    let file: Option<HookResultsFile> = state::read(&path)?;
    Ok(file.map(|file| file.hooks).unwrap_or_default())
}

/// Replaces the result of `hook` with `result`, keeping the others. A file that cannot be
/// read is replaced: it only ever held results, which the hook log has too.
pub fn record(tree: &AppTree, hook: &str, result: HookResult) -> Result<()> {
    let mut hooks = load(tree).unwrap_or_default();
    hooks.insert(hook.to_owned(), result);
    let file = HookResultsFile {
        hooks_format: HOOK_RESULTS_FORMAT,
        hooks,
    };
    pyapp_fs::ensure_dir(&tree.state_dir(), 0o755)?;
    Ok(state::write(&hook_results_path(tree), &file)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::AppsDir;
    use std::path::Path;

    fn result(release: &str, end: HookEnd, exit_status: Option<i32>) -> HookResult {
        HookResult {
            release: release.into(),
            version: "1.0.0".into(),
            started_at: "2026-11-21T15:15:30.123Z".into(),
            duration_seconds: 0.25,
            result: end,
            exit_status,
            signal: None,
        }
    }

    #[test]
    fn each_hook_keeps_its_last_result() {
        let root = tempfile::tempdir().unwrap();
        let tree = AppsDir::new(root.path(), Path::new("/applications"))
            .app("hello")
            .unwrap();
        std::fs::create_dir_all(tree.dir()).unwrap();
        assert!(load(&tree).unwrap().is_empty());
        record(
            &tree,
            "post-install",
            result("a", HookEnd::Succeeded, Some(0)),
        )
        .unwrap();
        record(&tree, "post-update", result("b", HookEnd::Failed, Some(3))).unwrap();
        record(&tree, "post-update", result("c", HookEnd::TimedOut, None)).unwrap();
        let hooks = load(&tree).unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks["post-install"].release, "a");
        assert_eq!(hooks["post-update"], result("c", HookEnd::TimedOut, None));
        let text = std::fs::read_to_string(hook_results_path(&tree)).unwrap();
        assert!(text.contains("\"result\": \"timed-out\""), "{text}");
        assert!(text.contains("\"hooks-format\": 1"), "{text}");

        std::fs::write(hook_results_path(&tree), "not json").unwrap();
        assert!(load(&tree).is_err());
        record(
            &tree,
            "pre-delete",
            result("c", HookEnd::Succeeded, Some(0)),
        )
        .unwrap();
        assert_eq!(load(&tree).unwrap().len(), 1);
    }
}
