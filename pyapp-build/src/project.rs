//! The project pyapp-build packs: what `pyproject.toml` says about the app.
//!
//! Only the static `[project]` table (PEP 621) and the build backend are read; the rest of
//! the file belongs to the project's own tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Refusal;

/// The parts of `pyproject.toml` a bundle needs.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub requires_python: Option<String>,
    pub dependencies: Vec<String>,
    pub optional_dependencies: BTreeMap<String, Vec<String>>,
    /// Entry point groups, `console_scripts` and `gui_scripts` included: group -> name -> target.
    pub entry_points: BTreeMap<String, BTreeMap<String, String>>,
    pub dynamic: Vec<String>,
    pub build_backend: Option<String>,
}

#[derive(Deserialize)]
struct PyProject {
    project: Option<ProjectTable>,
    #[serde(rename = "build-system")]
    build_system: Option<BuildSystem>,
}

#[derive(Deserialize)]
struct BuildSystem {
    #[serde(rename = "build-backend")]
    build_backend: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ProjectTable {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    requires_python: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
    #[serde(default)]
    gui_scripts: BTreeMap<String, String>,
    #[serde(default)]
    entry_points: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    dynamic: Vec<String>,
}

impl Project {
    /// Read `DIR/pyproject.toml`.
    pub fn load(dir: &Path) -> anyhow::Result<Project> {
        let path = dir.join("pyproject.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Refusal::new(format!("{}: cannot read: {err}", path.display())))?;
        let parsed: PyProject = toml::from_str(&text).map_err(|err| {
            Refusal::new(format!("{}: {}", path.display(), err.message().trim_end()))
        })?;
        let table = parsed.project.ok_or_else(|| {
            Refusal::new(format!(
                "{}: no [project] table (pyapp-build reads PEP 621 metadata)",
                path.display()
            ))
        })?;
        let missing = |field: &str| {
            Refusal::new(format!(
                "{}: [project] {field} is required and must be static (not listed in `dynamic`)",
                path.display()
            ))
        };
        let name = table.name.ok_or_else(|| missing("name"))?;
        let version = table.version.ok_or_else(|| missing("version"))?;
        let mut entry_points = table.entry_points;
        for (group, reserved) in [
            ("console_scripts", "scripts"),
            ("gui_scripts", "gui-scripts"),
        ] {
            if entry_points.contains_key(group) {
                return Err(Refusal::new(format!(
                    "{}: [project.entry-points.{group}] is not allowed, use [project.{reserved}]",
                    path.display()
                ))
                .into());
            }
        }
        if !table.scripts.is_empty() {
            entry_points.insert("console_scripts".into(), table.scripts);
        }
        if !table.gui_scripts.is_empty() {
            entry_points.insert("gui_scripts".into(), table.gui_scripts);
        }
        Ok(Project {
            dir: dir.to_path_buf(),
            name,
            version,
            description: table.description,
            requires_python: table.requires_python,
            dependencies: table.dependencies,
            optional_dependencies: table.optional_dependencies,
            entry_points,
            dynamic: table.dynamic,
            build_backend: parsed.build_system.and_then(|b| b.build_backend),
        })
    }
}
