//! The project's metadata.yaml (FORMAT.md 3.2), the template pyapp-build reads, and how it
//! is completed into the bundle's [`Metadata`] with what pyapp-build computed from
//! pyproject.toml, git and the wheels (values given in both places must [`agree`]).

use std::collections::BTreeSet;

use pep440_rs::{Version, VersionSpecifiers};
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::validate::AppParts;
use super::{
    Dependency, DependencyMode, Hooks, Interface, Isolation, Metadata, Resources, Service, System,
    Task, Update, Web,
};
use crate::config_spec::ConfigSpec;
use crate::layout::METADATA_NAME;
use crate::names::{check_dist_name, AppName, PythonModule};
use crate::wheel_name::{normalize_name, WheelName};
use crate::yaml::{parse_document, Issue, SchemaError};
use crate::FORMAT_VERSION;

/// The project's metadata.yaml, the template pyapp-build reads (FORMAT.md 3.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectMetadata {
    pub format: u32,
    #[serde(default)]
    pub name: Option<AppName>,
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub requires_python: Option<VersionSpecifiers>,
    pub module: PythonModule,
    #[serde(default)]
    pub entry_point: Option<String>,
    #[serde(default)]
    pub interface: Interface,
    #[serde(default)]
    pub local_dependencies: Vec<String>,
    #[serde(default)]
    pub system: System,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub web: Option<Web>,
    // Fields pyapp-build computes: read only to say so when a project sets them.
    #[serde(default, rename = "source-commit")]
    computed_source_commit: Option<IgnoredAny>,
    #[serde(default, rename = "built-by")]
    computed_built_by: Option<IgnoredAny>,
    #[serde(default, rename = "app-wheel")]
    computed_app_wheel: Option<IgnoredAny>,
    #[serde(default, rename = "dependencies")]
    computed_dependencies: Option<IgnoredAny>,
}

/// What pyapp-build knows that the template does not: from pyproject.toml, git and the wheels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// `[project] name` as written in pyproject.toml.
    pub name: String,
    /// `[project] version`.
    pub version: String,
    /// `[project] description`.
    pub summary: Option<String>,
    /// `[project] requires-python`.
    pub requires_python: Option<String>,
    /// The project's git HEAD, if it is a git checkout.
    pub source_commit: Option<String>,
    /// E.g. `pyapp-build 0.1.0`.
    pub built_by: String,
    /// The file name of the app's own wheel; also one of `wheels`.
    pub app_wheel: String,
    /// Every wheel going into `deps/`: (file name, sha256 in lowercase hex).
    pub wheels: Vec<(String, String)>,
}

impl ProjectMetadata {
    /// Parse and validate a project's metadata.yaml template; `file` labels errors.
    pub fn parse(text: &str, file: &str) -> Result<ProjectMetadata, SchemaError> {
        let template: ProjectMetadata = parse_document(text, file)?;
        template
            .validate()
            .map_err(|issue| issue.locate(text, file))?;
        Ok(template)
    }

    /// The app's top-level import package.
    pub fn module(&self) -> &str {
        self.module.as_str()
    }

    /// The distributions to install with `mode: local`, as written.
    pub fn local_dependencies(&self) -> impl Iterator<Item = &str> {
        self.local_dependencies.iter().map(String::as_str)
    }

    /// Every `{config.KEY}` of a command names a field of `spec` (see
    /// [`crate::metadata::Metadata::check_config_placeholders`]).
    pub fn check_config_placeholders(&self, spec: &ConfigSpec) -> Result<(), SchemaError> {
        self.parts().check_config_placeholders(spec)
    }

    fn parts(&self) -> AppParts<'_> {
        AppParts {
            summary: self.summary.as_deref(),
            entry_point: self.entry_point.as_deref(),
            resources: &self.resources,
            services: &self.services,
            tasks: &self.tasks,
            hooks: &self.hooks,
            update: &self.update,
            web: self.web.as_ref(),
        }
    }

    fn validate(&self) -> Result<(), Issue> {
        let computed_fields = [
            ("source-commit", self.computed_source_commit.is_some()),
            ("built-by", self.computed_built_by.is_some()),
            ("app-wheel", self.computed_app_wheel.is_some()),
            ("dependencies", self.computed_dependencies.is_some()),
        ];
        if let Some((field, _)) = computed_fields.iter().find(|(_, present)| *present) {
            return Err(Issue::new(
                *field,
                format!(
                    "pyapp-build computes this field: remove it from the project's {METADATA_NAME}"
                ),
            ));
        }
        for (index, name) in self.local_dependencies.iter().enumerate() {
            check_dist_name(name).map_err(|error| {
                Issue::new(format!("local-dependencies[{index}]"), error.to_string())
            })?;
        }
        self.parts().validate()
    }

    /// The bundle's metadata: this template completed with what pyapp-build computed.
    /// A value the template repeats from pyproject.toml must agree with it.
    pub fn into_metadata(self, computed: Computed) -> Result<Metadata, SchemaError> {
        self.complete(computed).map_err(|issue| {
            SchemaError::Invalid(crate::yaml::FieldError {
                file: METADATA_NAME.to_owned(),
                line: None,
                path: issue.path,
                message: issue.message,
            })
        })
    }

    fn complete(self, computed: Computed) -> Result<Metadata, Issue> {
        let name = match self.name {
            Some(name) => name,
            None => AppName::new(normalize_name(&computed.name))
                .map_err(|error| invalid_in_pyproject("name", &computed.name, &error))?,
        };
        let project_version: Version = computed
            .version
            .parse()
            .map_err(|error| invalid_in_pyproject("version", &computed.version, &error))?;
        let version = agree("version", self.version, Some(project_version))?
            .ok_or_else(|| Issue::new("version", "missing: set it in pyproject.toml"))?;
        let summary = agree("summary", self.summary, computed.summary)?;
        let project_requires = match &computed.requires_python {
            Some(text) => Some(
                text.parse::<VersionSpecifiers>()
                    .map_err(|error| invalid_in_pyproject("requires-python", text, &error))?,
            ),
            None => None,
        };
        let requires_python = agree("requires-python", self.requires_python, project_requires)?
            .ok_or_else(|| {
                Issue::new(
                    "requires-python",
                    format!("missing: set it in pyproject.toml or {METADATA_NAME}"),
                )
            })?;

        let local: BTreeSet<String> = self
            .local_dependencies
            .iter()
            .map(|name| normalize_name(name))
            .collect();
        let mut dependencies = Vec::with_capacity(computed.wheels.len());
        for (file, sha256) in &computed.wheels {
            let wheel = WheelName::parse(file)
                .map_err(|error| Issue::new("dependencies", error.to_string()))?;
            dependencies.push(Dependency {
                name: wheel.name().to_owned(),
                version: wheel.version().clone(),
                wheel: file.clone(),
                sha256: sha256.clone(),
                mode: if local.contains(wheel.name()) {
                    DependencyMode::Local
                } else {
                    DependencyMode::Shared
                },
            });
        }
        dependencies.sort_by(|a, b| a.wheel.cmp(&b.wheel));
        for (index, name) in self.local_dependencies.iter().enumerate() {
            let normalized = normalize_name(name);
            if !dependencies.iter().any(|d| d.name == normalized) {
                return Err(Issue::new(
                    format!("local-dependencies[{index}]"),
                    format!("{name} is not among the pinned distributions"),
                ));
            }
        }

        let metadata = Metadata {
            format: FORMAT_VERSION,
            name,
            version,
            summary,
            requires_python,
            module: self.module,
            entry_point: self.entry_point,
            interface: self.interface,
            source_commit: computed.source_commit,
            built_by: computed.built_by,
            app_wheel: computed.app_wheel,
            dependencies,
            system: self.system,
            resources: self.resources,
            services: self.services,
            tasks: self.tasks,
            hooks: self.hooks,
            update: self.update,
            isolation: self.isolation,
            web: self.web,
        };
        metadata.validate()?;
        Ok(metadata)
    }
}

fn invalid_in_pyproject(field: &str, value: &str, error: &dyn std::fmt::Display) -> Issue {
    Issue::new(
        field,
        format!("{value:?} from pyproject.toml is not valid: {error}"),
    )
}

/// The template's value if pyproject.toml has none or the same; an error naming both if
/// they differ.
fn agree<T: PartialEq + std::fmt::Display>(
    field: &str,
    template: Option<T>,
    pyproject: Option<T>,
) -> Result<Option<T>, Issue> {
    match (template, pyproject) {
        (Some(template), Some(pyproject)) if template != pyproject => Err(Issue::new(
            field,
            format!(
                "{METADATA_NAME} says {template:?} but pyproject.toml says {pyproject:?}",
                template = template.to_string(),
                pyproject = pyproject.to_string()
            ),
        )),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}
