//! The rules of metadata.yaml (FORMAT.md 3.1) beyond its schema: the checks shared by the
//! bundle's form and the project's template ([`AppParts`]), the bundle-only ones, and those
//! that need the bundle's files. Parsing runs the first two; callers run the last.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    parse_body_size, Dependency, Hooks, Listen, Metadata, Resources, Service, StaticRoot, Task,
    Update, Web,
};
use crate::command::{Command, Placeholder};
use crate::config_spec::{ConfigSpec, Widget};
use crate::layout::{CONFIGURATION_NAME, DEPS_PREFIX, METADATA_NAME, SRC_PREFIX};
use crate::names::{check_dist_name, check_writable_dir_name, UnitName};
use crate::wheel_name::normalize_name;
use crate::wheel_name::WheelName;
use crate::yaml::{join_path, Issue, SchemaError};
use crate::FORMAT_VERSION;

/// The longest `summary` and `description`.
const MAX_ONE_LINE: usize = 200;

impl Metadata {
    /// The rules of FORMAT.md 3.1 that need only this file.
    pub fn validate(&self) -> Result<(), Issue> {
        if self.format != FORMAT_VERSION {
            return Err(Issue::new(
                "format",
                format!(
                    "format {} is not supported (expected {FORMAT_VERSION})",
                    self.format
                ),
            ));
        }
        self.parts().validate()?;
        check_one_line("built-by", &self.built_by)?;
        if let Some(commit) = &self.source_commit {
            check_one_line("source-commit", commit)?;
        }
        let mut wheels = BTreeSet::new();
        for (index, dependency) in self.dependencies.iter().enumerate() {
            let path = format!("dependencies[{index}]");
            dependency.validate(&path)?;
            if !wheels.insert(dependency.wheel.as_str()) {
                return Err(Issue::new(
                    join_path(&path, "wheel"),
                    format!("{} is listed twice", dependency.wheel),
                ));
            }
        }
        if !wheels.contains(self.app_wheel.as_str()) {
            return Err(Issue::new(
                "app-wheel",
                format!("{} is not among the dependencies", self.app_wheel),
            ));
        }
        Ok(())
    }

    /// `dependencies` lists each file of `deps/` exactly once, with its sha256.
    /// `deps_files` holds (file name under `deps/`, lowercase hex sha256) pairs.
    pub fn check_dependencies(&self, deps_files: &[(String, String)]) -> Result<(), SchemaError> {
        let listed: BTreeMap<&str, &str> = self
            .dependencies
            .iter()
            .map(|dependency| (dependency.wheel.as_str(), dependency.sha256.as_str()))
            .collect();
        let mut present = BTreeSet::new();
        for (file, sha256) in deps_files {
            present.insert(file.as_str());
            match listed.get(file.as_str()) {
                None => {
                    return Err(unlocated(
                        "dependencies",
                        format!("{DEPS_PREFIX}{file} is in the bundle but not listed"),
                    ))
                }
                Some(listed_sha256) if listed_sha256 != sha256 => {
                    return Err(unlocated(
                        "dependencies",
                        format!(
                        "{DEPS_PREFIX}{file} has sha256 {sha256}, but {METADATA_NAME} lists {listed_sha256}"
                    ),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = listed.keys().find(|wheel| !present.contains(*wheel)) {
            return Err(unlocated(
                "dependencies",
                format!("{missing} is listed but {DEPS_PREFIX}{missing} is not in the bundle"),
            ));
        }
        Ok(())
    }

    /// Every `resources.static[].path` is a directory of the bundle's `src/`; `entries` are
    /// the bundle's entry names (`src/hello/static/app.css`…).
    pub fn check_static_paths<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), SchemaError> {
        for (index, static_path) in self.resources.static_paths.iter().enumerate() {
            if static_path.from == StaticRoot::Data {
                continue;
            }
            let prefix = format!("{SRC_PREFIX}{}/", static_path.path.trim_end_matches('/'));
            if !entries
                .clone()
                .into_iter()
                .any(|entry| entry.starts_with(&prefix))
            {
                return Err(unlocated(
                    &format!("resources.static[{index}].path"),
                    format!(
                        "{} is not a directory of the app's source",
                        static_path.path
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every `{config.KEY}` of a command names a field of `spec` whose value can be put
    /// on a command line: one line, and not a secret (unit files are world-readable).
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
}

/// A bundle-level error without a line: the file is fine, the bundle disagrees with it.
fn unlocated(path: &str, message: String) -> SchemaError {
    SchemaError::Invalid(crate::yaml::FieldError {
        file: METADATA_NAME.to_owned(),
        line: None,
        path: path.to_owned(),
        message,
    })
}

impl Dependency {
    fn validate(&self, path: &str) -> Result<(), Issue> {
        check_dist_name(&self.name)
            .map_err(|error| Issue::new(join_path(path, "name"), error.to_string()))?;
        if normalize_name(&self.name) != self.name {
            return Err(Issue::new(
                join_path(path, "name"),
                format!(
                    "{:?} is not normalised (expected {:?})",
                    self.name,
                    normalize_name(&self.name)
                ),
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(Issue::new(
                join_path(path, "sha256"),
                format!("{:?} is not 64 lowercase hex digits", self.sha256),
            ));
        }
        let wheel = WheelName::parse(&self.wheel)
            .map_err(|error| Issue::new(join_path(path, "wheel"), error.to_string()))?;
        if wheel.name() != self.name || wheel.version() != &self.version {
            return Err(Issue::new(
                join_path(path, "wheel"),
                format!(
                    "{} is {} {}, not {} {}",
                    self.wheel,
                    wheel.name(),
                    wheel.version(),
                    self.name,
                    self.version
                ),
            ));
        }
        Ok(())
    }
}

/// The parts of metadata.yaml the bundle and the template share, for validation.
pub(super) struct AppParts<'a> {
    pub(super) summary: Option<&'a str>,
    pub(super) entry_point: Option<&'a str>,
    pub(super) resources: &'a Resources,
    pub(super) services: &'a [Service],
    pub(super) tasks: &'a [Task],
    pub(super) hooks: &'a Hooks,
    pub(super) update: &'a Update,
    pub(super) web: Option<&'a Web>,
}

/// Placeholders that only a service's own settings give a value.
const SERVICE_ONLY: [Placeholder; 5] = [
    Placeholder::Listen,
    Placeholder::Fd,
    Placeholder::Port,
    Placeholder::Workers,
    Placeholder::Threads,
];

impl AppParts<'_> {
    /// Every command, with its field path.
    fn commands(&self) -> Vec<(String, &Command)> {
        let services = self
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| (format!("services[{index}].command"), &service.command));
        let tasks = self
            .tasks
            .iter()
            .enumerate()
            .map(|(index, task)| (format!("tasks[{index}].command"), &task.command));
        let hooks = self
            .hooks
            .commands()
            .map(|(name, command)| (format!("hooks.{name}"), command));
        let health = self
            .update
            .health_check
            .as_ref()
            .and_then(|check| check.command.as_ref())
            .map(|command| ("update.health-check.command".to_owned(), command));
        services.chain(tasks).chain(hooks).chain(health).collect()
    }

    pub(super) fn check_config_placeholders(&self, spec: &ConfigSpec) -> Result<(), SchemaError> {
        for (path, command) in self.commands() {
            for key in command.config_keys() {
                let problem = match spec.field(key) {
                    None => format!(
                        "{{config.{key}}} names no field of {CONFIGURATION_NAME} (fields: {})",
                        spec.fields
                            .iter()
                            .map(|field| field.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(field) if field.is_secret() => format!(
                        "{{config.{key}}} is a secret, which a command line would show to every \
                         user (put it in the environment with {CONFIGURATION_NAME}'s environment:)"
                    ),
                    Some(field) if field.widget == Widget::Text => format!(
                        "{{config.{key}}} is a text field: its value may span lines, which an \
                         argument cannot carry"
                    ),
                    Some(_) => continue,
                };
                return Err(unlocated(&path, problem));
            }
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<(), Issue> {
        if let Some(summary) = self.summary {
            check_one_line("summary", summary)?;
        }
        if let Some(entry_point) = self.entry_point {
            check_entry_point(entry_point)?;
        }
        self.check_resources()?;
        self.check_units()?;
        self.check_hooks()?;
        self.check_update()?;
        self.check_web()
    }

    fn check_resources(&self) -> Result<(), Issue> {
        let mut dirs = BTreeSet::new();
        for (index, dir) in self.resources.writable_dirs.iter().enumerate() {
            if !dirs.insert(dir) {
                return Err(Issue::new(
                    format!("resources.writable-dirs[{index}]"),
                    format!("{dir} is listed twice"),
                ));
            }
        }
        let mut urls = BTreeSet::new();
        for (index, static_path) in self.resources.static_paths.iter().enumerate() {
            let path = format!("resources.static[{index}]");
            check_static_url(&join_path(&path, "url"), &static_path.url)?;
            if static_path.url.trim_end_matches('/').is_empty() {
                return Err(Issue::new(
                    join_path(&path, "url"),
                    "\"/\" would hide the whole app behind its static files (serve them under a \
                     path, e.g. /static)",
                ));
            }
            match static_path.from {
                StaticRoot::Src => {
                    check_relative_dir(&join_path(&path, "path"), &static_path.path)?
                }
                StaticRoot::Data => check_writable_dir_name(&static_path.path)
                    .map_err(|error| Issue::new(join_path(&path, "path"), error.to_string()))?,
            }
            if !urls.insert(static_path.url.trim_end_matches('/')) {
                return Err(Issue::new(
                    join_path(&path, "url"),
                    format!("{} is listed twice", static_path.url),
                ));
            }
        }
        Ok(())
    }

    fn check_units(&self) -> Result<(), Issue> {
        let mut names = BTreeSet::new();
        let mut unique = |path: String, name: &UnitName| {
            if names.insert(name.as_str().to_owned()) {
                Ok(())
            } else {
                Err(Issue::new(
                    path,
                    format!("{name} is already the name of a service or task (they share the unit names)"),
                ))
            }
        };
        for (index, service) in self.services.iter().enumerate() {
            let path = format!("services[{index}]");
            unique(join_path(&path, "name"), &service.name)?;
            if let Some(description) = &service.description {
                check_one_line(&join_path(&path, "description"), description)?;
            }
            for (field, value) in [("workers", service.workers), ("threads", service.threads)] {
                if let Some(value) = value {
                    check_bounds(&join_path(&path, field), value, 1, 1024)?;
                }
            }
            check_bounds(&join_path(&path, "stop-grace"), service.stop_grace, 1, 3600)?;
            check_service_placeholders(&join_path(&path, "command"), service)?;
            let mut relaxed = BTreeSet::new();
            for relaxation in &service.relax {
                if !relaxed.insert(relaxation) {
                    return Err(Issue::new(
                        join_path(&path, "relax"),
                        format!("{} is given twice", relaxation.name()),
                    ));
                }
            }
        }
        for (index, task) in self.tasks.iter().enumerate() {
            let path = format!("tasks[{index}]");
            unique(join_path(&path, "name"), &task.name)?;
            if let Some(description) = &task.description {
                check_one_line(&join_path(&path, "description"), description)?;
            }
            check_no_service_placeholders(&join_path(&path, "command"), &task.command)?;
        }
        Ok(())
    }

    fn check_hooks(&self) -> Result<(), Issue> {
        for (name, command) in self.hooks.commands() {
            check_no_service_placeholders(&format!("hooks.{name}"), command)?;
        }
        check_bounds("hooks.timeout", self.hooks.timeout, 1, 86_400)
    }

    fn check_update(&self) -> Result<(), Issue> {
        check_bounds(
            "update.keep-releases",
            u32::from(self.update.keep_releases),
            2,
            100,
        )?;
        let Some(check) = &self.update.health_check else {
            return Ok(());
        };
        let path = "update.health-check";
        check_bounds(&join_path(path, "timeout"), check.timeout, 1, 3600)?;
        match (&check.http, &check.command) {
            (Some(_), Some(_)) | (None, None) => {
                Err(Issue::new(path, "give exactly one of http and command"))
            }
            (None, Some(command)) => {
                if check.service.is_some() {
                    return Err(Issue::new(
                        join_path(path, "service"),
                        "only used with http: remove it or probe with http",
                    ));
                }
                check_no_service_placeholders(&join_path(path, "command"), command)
            }
            (Some(http), None) => {
                if !http.starts_with('/')
                    || http.len() > 1024
                    || http.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(Issue::new(
                        join_path(path, "http"),
                        format!("{http:?} is not a URL path (starts with \"/\", no spaces)"),
                    ));
                }
                let Some(name) = &check.service else {
                    return Err(Issue::new(
                        join_path(path, "service"),
                        "required with http: the service whose address is probed",
                    ));
                };
                match self.services.iter().find(|service| &service.name == name) {
                    None => Err(Issue::new(
                        join_path(path, "service"),
                        format!("{name} is not one of the services"),
                    )),
                    Some(service) if service.listen == Listen::None => Err(Issue::new(
                        join_path(path, "service"),
                        format!("{name} does not listen (set listen: socket or port)"),
                    )),
                    Some(_) => Ok(()),
                }
            }
        }
    }
}

impl AppParts<'_> {
    /// `web` (FORMAT.md 3.1): a URL path to mount on, a listening service to proxy (named,
    /// or the only one), limits in range. Without a `web` section nothing is required.
    fn check_web(&self) -> Result<(), Issue> {
        let Some(web) = self.web else {
            return Ok(());
        };
        if web.strip_prefix && web.prefix().is_empty() {
            return Err(Issue::new(
                "web.strip-prefix",
                "the app is served at \"/\": there is no mount to strip (set web.mount)",
            ));
        }
        if web.mount != "/" {
            check_static_url("web.mount", &web.mount)?;
            if web.mount.ends_with('/') {
                return Err(Issue::new(
                    "web.mount",
                    format!(
                        "{:?} ends with \"/\" (write {:?})",
                        web.mount,
                        web.mount.trim_end_matches('/')
                    ),
                ));
            }
        }
        let listening: Vec<&Service> = self
            .services
            .iter()
            .filter(|service| service.listen != Listen::None)
            .collect();
        match &web.service {
            Some(name) => match self.services.iter().find(|service| &service.name == name) {
                None => {
                    return Err(Issue::new(
                        "web.service",
                        format!("{name} is not one of the services"),
                    ))
                }
                Some(service) if service.listen == Listen::None => {
                    return Err(Issue::new(
                        "web.service",
                        format!("{name} does not listen (set listen: socket or port)"),
                    ))
                }
                Some(_) => {}
            },
            None if listening.is_empty() => {
                return Err(Issue::new(
                    "web",
                    "no service listens (set listen: socket or port on the service the web \
                     server proxies)",
                ))
            }
            None if listening.len() > 1 => {
                let names: Vec<&str> = listening.iter().map(|s| s.name.as_str()).collect();
                return Err(Issue::new(
                    "web.service",
                    format!(
                        "required when several services listen ({}): name the one the web \
                         server proxies",
                        names.join(", ")
                    ),
                ));
            }
            None => {}
        }
        if parse_body_size(&web.max_body_size).is_none() {
            return Err(Issue::new(
                "web.max-body-size",
                format!(
                    "{:?} is not a size from 1 to 1G (write N, NK, NM or NG, e.g. 10M)",
                    web.max_body_size
                ),
            ));
        }
        check_bounds("web.timeout", web.timeout, 1, 3600)
    }
}

/// `{listen}` only in listening services, `{port}` only with `listen: port`, `{workers}` and
/// `{threads}` only where set.
fn check_service_placeholders(path: &str, service: &Service) -> Result<(), Issue> {
    for placeholder in service.command.placeholders() {
        let problem = match placeholder {
            Placeholder::Listen | Placeholder::Fd if service.listen == Listen::None => {
                "needs listen: socket or port"
            }
            Placeholder::Port if service.listen != Listen::Port => "needs listen: port",
            Placeholder::Workers if service.workers.is_none() => "needs workers to be set",
            Placeholder::Threads if service.threads.is_none() => "needs threads to be set",
            _ => continue,
        };
        return Err(Issue::new(path, format!("{placeholder} {problem}")));
    }
    Ok(())
}

fn check_no_service_placeholders(path: &str, command: &Command) -> Result<(), Issue> {
    match command
        .placeholders()
        .into_iter()
        .find(|placeholder| SERVICE_ONLY.contains(placeholder))
    {
        Some(placeholder) => Err(Issue::new(
            path,
            format!("{placeholder} is only available in services"),
        )),
        None => Ok(()),
    }
}

fn check_bounds(path: &str, value: u32, min: u32, max: u32) -> Result<(), Issue> {
    if value < min {
        Err(Issue::new(path, format!("{value} is below min {min}")))
    } else if value > max {
        Err(Issue::new(path, format!("{value} is above max {max}")))
    } else {
        Ok(())
    }
}

fn check_one_line(path: &str, text: &str) -> Result<(), Issue> {
    if text.chars().any(char::is_control) {
        Err(Issue::new(
            path,
            "must be one line without control characters",
        ))
    } else if text.ends_with('\\') {
        Err(Issue::new(
            path,
            "must not end with `\\` (unit files read it as a line continuation)",
        ))
    } else if text.chars().count() > MAX_ONE_LINE {
        Err(Issue::new(
            path,
            format!(
                "is {} characters long (at most {MAX_ONE_LINE})",
                text.chars().count()
            ),
        ))
    } else {
        Ok(())
    }
}

/// `module.sub:attr` or `module.sub:factory()`, each part a Python identifier.
fn check_entry_point(entry_point: &str) -> Result<(), Issue> {
    let dotted = |text: &str| {
        !text.is_empty()
            && text.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let valid = match entry_point.split_once(':') {
        Some((module, attr)) => dotted(module) && dotted(attr.strip_suffix("()").unwrap_or(attr)),
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            "entry-point",
            format!("{entry_point:?} is not \"module:attr\" or \"module:factory()\""),
        ))
    }
}

/// A URL path: starts with `/`, no `..` segment, no `//`, only unreserved characters and `/`.
fn check_static_url(path: &str, url: &str) -> Result<(), Issue> {
    let valid = url.starts_with('/')
        && !url.contains("//")
        && !url
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'));
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            path,
            format!(
                "{url:?} is not a URL path (starts with \"/\"; letters, digits, \"-_.~/\"; no \"..\" or \"//\")"
            ),
        ))
    }
}

/// A relative directory inside `src/`: no empty, `.` or `..` component, no `\`.
fn check_relative_dir(path: &str, dir: &str) -> Result<(), Issue> {
    let valid = !dir.is_empty()
        && !dir.starts_with('/')
        && !dir.contains('\\')
        && !dir.chars().any(char::is_control)
        && dir
            .trim_end_matches('/')
            .split('/')
            .all(|component| !matches!(component, "" | "." | ".."));
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            path,
            format!(
                "{dir:?} is not a relative path inside {SRC_PREFIX} (no \"..\", no leading \"/\")"
            ),
        ))
    }
}
