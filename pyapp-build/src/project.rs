//! The project pyapp-build packs, as its author wrote it: a directory with `pyproject.toml`
//! (PEP 621 `[project]`, poetry's `[tool.poetry]`, or anything a build backend reads),
//! `setup.py` or `setup.cfg`. Only the build system is read here (PEP 517/518); the app's
//! name, version and dependencies come from the core metadata of the wheel its backend
//! builds, so every backend and every form of metadata (dynamic versions included) is read
//! the one way pip reads it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Refusal;

/// A project directory and how its wheel is built.
#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub build_system: BuildSystem,
}

/// `[build-system]` (PEP 518), with PEP 517's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSystem {
    pub requires: Vec<String>,
    /// `module` or `module:object`.
    pub backend: String,
    /// Directories of the project put first on `sys.path` for an in-tree backend.
    pub backend_path: Vec<String>,
}

/// What PEP 517 says a project without `build-backend` is built with.
const LEGACY_BACKEND: &str = "setuptools.build_meta:__legacy__";
const LEGACY_REQUIRES: &str = "setuptools>=40.8.0";
/// Poetry projects from before PEP 517 may lack `[build-system]`: poetry itself builds them
/// with poetry-core.
const POETRY_BACKEND: &str = "poetry.core.masonry.api";
const POETRY_REQUIRES: &str = "poetry-core>=1.0.0";

#[derive(Deserialize)]
struct PyProject {
    #[serde(rename = "build-system")]
    build_system: Option<BuildSystemTable>,
    tool: Option<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    poetry: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct BuildSystemTable {
    requires: Option<Vec<String>>,
    build_backend: Option<String>,
    #[serde(default)]
    backend_path: Vec<String>,
}

impl Project {
    /// Read the project in `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Project> {
        let path = dir.join("pyproject.toml");
        if !path.is_file() {
            if ["setup.py", "setup.cfg"]
                .iter()
                .any(|name| dir.join(name).is_file())
            {
                return Ok(Project {
                    dir: dir.to_path_buf(),
                    build_system: BuildSystem {
                        requires: vec![LEGACY_REQUIRES.into()],
                        backend: LEGACY_BACKEND.into(),
                        backend_path: Vec::new(),
                    },
                });
            }
            return Err(Refusal::new(format!(
                "{}: not a Python project: it has no pyproject.toml, setup.py or setup.cfg",
                dir.display()
            ))
            .with_hint("give the directory of the app's project")
            .into());
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Refusal::new(format!("{}: cannot read: {err}", path.display())))?;
        let build_system = parse_build_system(&text)
            .map_err(|message| Refusal::new(format!("{}: {message}", path.display())))?;
        Ok(Project {
            dir: dir.to_path_buf(),
            build_system,
        })
    }
}

fn parse_build_system(text: &str) -> Result<BuildSystem, String> {
    let parsed: PyProject =
        toml::from_str(text).map_err(|err| err.message().trim_end().to_string())?;
    let is_poetry = parsed.tool.and_then(|tool| tool.poetry).is_some();
    let table = parsed.build_system;
    let (requires, backend, backend_path) = match table {
        Some(table) => (table.requires, table.build_backend, table.backend_path),
        None => (None, None, Vec::new()),
    };
    let backend = match backend {
        Some(backend) => backend,
        None if is_poetry && requires.is_none() => POETRY_BACKEND.into(),
        None => LEGACY_BACKEND.into(),
    };
    if backend.trim().is_empty() {
        return Err("[build-system] build-backend is empty".into());
    }
    let requires = match requires {
        Some(requires) => requires,
        None if backend == POETRY_BACKEND => vec![POETRY_REQUIRES.into()],
        None if backend == LEGACY_BACKEND => vec![LEGACY_REQUIRES.into()],
        None => {
            return Err(
                "[build-system] requires is missing (PEP 518 requires it with build-backend)"
                    .into(),
            )
        }
    };
    if let Some(dir) = backend_path.iter().find(|dir| {
        Path::new(dir).is_absolute() || Path::new(dir).components().any(|c| c.as_os_str() == "..")
    }) {
        return Err(format!(
            "[build-system] backend-path `{dir}` must be a directory inside the project"
        ));
    }
    Ok(BuildSystem {
        requires,
        backend,
        backend_path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn build_system_as_written_or_pep_517_defaults() {
        let given = parse_build_system(
            "[build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
        )
        .unwrap();
        assert_eq!(given.requires, ["hatchling"]);
        assert_eq!(given.backend, "hatchling.build");

        let bare = parse_build_system("[project]\nname = \"x\"\n").unwrap();
        assert_eq!(bare.backend, LEGACY_BACKEND);
        assert_eq!(bare.requires, [LEGACY_REQUIRES]);

        let old_poetry = parse_build_system("[tool.poetry]\nname = \"x\"\n").unwrap();
        assert_eq!(old_poetry.backend, POETRY_BACKEND);
        assert_eq!(old_poetry.requires, [POETRY_REQUIRES]);
    }

    #[test]
    fn refuses_a_backend_path_outside_the_project() {
        let err = parse_build_system(
            "[build-system]\nrequires = []\nbuild-backend = \"b\"\nbackend-path = [\"../x\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "[build-system] backend-path `../x` must be a directory inside the project"
        );
    }
}
