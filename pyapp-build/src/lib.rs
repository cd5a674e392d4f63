//! `pyapp-build`: collect an application's source, its pinned wheels (from `--wheels`
//! directories or the index), its own wheel, metadata.yaml and configuration.yaml, check
//! that they make an installable whole, and write one reproducible `.pyapp` bundle.
//!
//! The steps, in order: read the project ([`project`], [`pins`]), validate the metadata
//! template and configuration spec (each schedule also by `systemd-analyze calendar` where it
//! is installed, [`systemd_calendar`]), collect the source tree ([`sources`]), build the app's
//! wheel with its own build backend ([`app_wheel`], in an environment of [`build_env`]), whose
//! core metadata names the app, choose a wheel per pin ([`wheels`], [`index`]), check the
//! dependency closure ([`closure`]) and write the bundle with `pyapp_bundle::writer`, signing its manifest
//! with `--sign` ([`signing`]; [`keygen`] makes the key pair).

pub mod app_wheel;
pub mod build_env;
pub mod cli;
pub mod closure;
pub mod index;
pub mod keygen;
pub mod locks;
pub mod pins;
mod progress;
pub mod project;
pub mod sdist;
pub mod signing;
pub mod sources;
pub mod wheel_contents;
pub mod wheels;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use pyapp_bundle::layout::{
    BUNDLE_SUFFIX, CONFIGURATION_NAME, DEPS_PREFIX, METADATA_NAME, SRC_PREFIX,
};
use pyapp_bundle::writer::{BundleWriter, EntrySource};

use crate::cli::Args;

pub use pyapp_cli::Refusal;

/// What was built, printed with `--json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Report {
    pub bundle: PathBuf,
    pub sha256: String,
    /// The content digest (FORMAT.md 1.1): what `pyapp-install list` shows and names the release.
    pub content_sha256: String,
    pub size: u64,
    pub name: String,
    pub version: String,
    pub app_wheel: String,
    /// The `build-backend` that built the app's wheel.
    pub build_backend: String,
    /// The wheels of the environment it was built in.
    pub build_wheels: Vec<String>,
    pub source_commit: Option<String>,
    /// The file the pins were read from: pinned-requirements.txt, uv.lock, poetry.lock or pylock.toml.
    pub pins_from: Option<String>,
    pub dependencies: Vec<ReportedWheel>,
    pub source_files: usize,
    pub unused_pins: Vec<String>,
    /// The wheels built from a pin's sdist, for pins that have no wheel.
    pub built_from_sdist: Vec<String>,
    /// The id of the key that signed the manifest, with `--sign`.
    pub signed_with: Option<String>,
}

/// One wheel of the bundle in the report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReportedWheel {
    pub name: String,
    pub version: String,
    pub wheel: String,
    pub sha256: String,
    pub origin: wheels::Origin,
}

/// Build the bundle the arguments describe.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    let progress = progress::Steps::new(args.verbosity.level(), 5);
    let dir = &args.project_dir;
    // Before the long part: a wrong password or a bad key fails at once.
    let signing_key = args
        .sign
        .as_deref()
        .map(signing::SigningKey::load)
        .transpose()?;

    progress.step("reading the project");
    let project = project::Project::load(dir)?;
    let template = pyapp_bundle::metadata::ProjectMetadata::parse(
        &read_text(&dir.join(METADATA_NAME))?,
        METADATA_NAME,
    )?;
    for (index, task) in template.tasks.iter().enumerate() {
        let field = format!("{METADATA_NAME}: tasks[{index}].schedule");
        let schedule = task.schedule.as_str();
        if let Some(said) = pyapp_cli::systemd_calendar_refusal(schedule)? {
            return Err(Refusal::new(format!(
                "{field}: {schedule:?} is refused by `systemd-analyze calendar` {said}"
            ))
            .into());
        }
    }
    let config_text = read_text(&dir.join(CONFIGURATION_NAME))?;
    let spec = pyapp_bundle::config_spec::ConfigSpec::parse(&config_text, CONFIGURATION_NAME)?;
    template.check_config_placeholders(&spec)?;
    let pins_path = dir.join("pinned-requirements.txt");
    let requirements = pins_path
        .exists()
        .then(|| pins::load(&pins_path))
        .transpose()?;
    let lock_file = locks::LOCK_FILES
        .into_iter()
        .find(|name| dir.join(name).is_file());
    let target = target_python(args)?;
    let supported = target.supported_tags();
    let env = target.marker_environment();

    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(".pyapp-build-")
        .tempdir_in(&args.out_dir)
        .with_context(|| {
            format!(
                "cannot create a scratch directory in {}",
                args.out_dir.display()
            )
        })?;

    progress.step("building the app's wheel");
    let sources = sources::collect(dir, Some(&args.out_dir))?;
    let wheel_sources = build_env::WheelSources {
        dirs: args.wheel_dirs.clone(),
        cache: args
            .cache_dir
            .clone()
            .or_else(build_env::default_cache)
            .unwrap_or_else(|| scratch.path().join("wheel-cache")),
        no_index: args.no_index,
        index: index_options(args),
        python: args.python.clone(),
        quiet: args.verbosity.quiet,
    };
    let build_interpreter = pyapp_venv::interpreter::Interpreter::query(&args.python)?;
    let build_inputs = app_wheel::BuildInputs {
        interpreter: &build_interpreter,
        wheels: &wheel_sources,
        source_date_epoch: source_date_epoch()?,
    };
    let built = app_wheel::build(
        &project.dir,
        &project.build_system,
        &sources,
        &build_inputs,
        scratch.path(),
    )?;
    let app = wheels::ChosenWheel::from_path(&built.path, wheels::Origin::Built)?;
    if app.name.compatibility(&supported).is_none() {
        return Err(Refusal::new(format!(
            "the app's wheel {} does not fit the target Python",
            app.name.file_name()
        ))
        .into());
    }
    let (pins, pins_from) = match (requirements, lock_file) {
        (Some(requirements), _) => (
            requirements.for_target(&env)?,
            Some("pinned-requirements.txt"),
        ),
        (None, Some(lock_file)) => (
            locks::pins(dir, lock_file, &app.contents.requires_dist, &env)?,
            Some(lock_file),
        ),
        (None, None) => match app
            .contents
            .requires_dist
            .iter()
            .find(|requirement| requirement.evaluate_markers(&env, &[]))
        {
            Some(requirement) => {
                return Err(Refusal::new(format!(
                    "{}: missing (nor is there a uv.lock, poetry.lock or pylock.toml); the app requires `{requirement}` (and maybe more), so its dependencies must be pinned",
                    pins_path.display()
                ))
                .with_hint("uv lock, poetry lock, or uv pip compile pyproject.toml -o pinned-requirements.txt")
                .into())
            }
            None => (Vec::new(), None),
        },
    };
    for name in template.local_dependencies() {
        if !pins
            .iter()
            .any(|pin| pin.name == pyapp_bundle::wheel_name::normalize_name(name))
        {
            return Err(Refusal::new(format!(
                "metadata.yaml: local-dependencies: {name} is not pinned in {}",
                pins_from.unwrap_or("pinned-requirements.txt")
            ))
            .into());
        }
    }

    progress.step("collecting wheels");
    let (chosen, built_from_sdist) =
        collect_wheels(args, &pins, &supported, scratch.path(), &build_inputs)?;

    progress.step("checking the dependency closure");
    let mut all_wheels = chosen;
    all_wheels.push(app.clone());
    let closure = closure::check(&app, &all_wheels, &env)?;
    if !args.keep_unused_pins {
        all_wheels.retain(|wheel| !closure.unused.iter().any(|name| name == wheel.name.name()));
    }

    progress.step("writing the bundle");
    let source_commit = source_commit(dir);
    let metadata = template.into_metadata(pyapp_bundle::metadata::Computed {
        name: app.contents.name.clone(),
        version: app.contents.version.clone(),
        summary: app.contents.summary.clone(),
        requires_python: app.contents.requires_python.clone(),
        source_commit: source_commit.clone(),
        built_by: format!("pyapp-build {}", env!("CARGO_PKG_VERSION")),
        app_wheel: app.name.file_name().to_string(),
        wheels: all_wheels
            .iter()
            .map(|wheel| (wheel.name.file_name().to_string(), wheel.sha256.clone()))
            .collect(),
    })?;
    check_programs(&metadata, &all_wheels)?;
    let metadata_text = metadata.to_yaml()?;

    let mut writer = BundleWriter::new();
    writer.add_file(
        METADATA_NAME,
        EntrySource::Bytes(metadata_text.into_bytes()),
        false,
    )?;
    writer.add_file(
        CONFIGURATION_NAME,
        EntrySource::Bytes(config_text.into_bytes()),
        false,
    )?;
    for wheel in &all_wheels {
        let name = format!("{DEPS_PREFIX}{}", wheel.name.file_name());
        writer.add_file(&name, EntrySource::File(wheel.path.clone()), false)?;
    }
    for source in &sources {
        let name = format!("{SRC_PREFIX}{}", source.relative);
        writer.add_file(
            &name,
            EntrySource::File(source.path.clone()),
            source.executable,
        )?;
    }
    let file_name = format!("{}-{}{BUNDLE_SUFFIX}", metadata.name, metadata.version);
    let bundle_path = args.out_dir.join(&file_name);
    let epoch = source_date_epoch()?;
    let written = match &signing_key {
        Some(key) => writer.finish_signed(&bundle_path, epoch, |manifest| {
            key.sign(manifest, &file_name)
        })?,
        None => writer.finish(&bundle_path, epoch)?,
    };
    progress.finish();

    Ok(Report {
        size: written.size,
        bundle: bundle_path,
        sha256: hex::encode(written.sha256),
        content_sha256: hex::encode(written.content_sha256),
        name: metadata.name.to_string(),
        version: metadata.version.to_string(),
        app_wheel: app.name.file_name().to_string(),
        build_backend: built.backend,
        build_wheels: built.build_wheels,
        source_commit,
        pins_from: pins_from.map(str::to_string),
        dependencies: all_wheels
            .iter()
            .map(|wheel| ReportedWheel {
                name: wheel.name.name().to_string(),
                version: wheel.name.version().to_string(),
                wheel: wheel.name.file_name().to_string(),
                sha256: wheel.sha256.clone(),
                origin: wheel.origin,
            })
            .collect(),
        source_files: sources.len(),
        unused_pins: closure.unused,
        built_from_sdist,
        signed_with: signing_key.map(|key| key.id().to_string()),
    })
}

/// Choose every pin's wheel: `--wheels` directories first, then pip for what is missing,
/// then, for pins with no wheel at all, a wheel built from their sdist ([`sdist`]).
/// Returns the wheels and the file names of those built from an sdist.
fn collect_wheels(
    args: &Args,
    pins: &[pins::Pin],
    supported: &[pyapp_bundle::tags::Tag],
    scratch: &Path,
    inputs: &app_wheel::BuildInputs,
) -> anyhow::Result<(Vec<wheels::ChosenWheel>, Vec<String>)> {
    let local = wheels::select(pins, &args.wheel_dirs, supported, wheels::Origin::WheelDir)?;
    let mut chosen = local.chosen;
    // Sdists built before are taken from the cache, without asking the index.
    let (mut without_wheel, missing): (Vec<pins::Pin>, Vec<pins::Pin>) = local
        .missing
        .into_iter()
        .partition(|pin| sdist::is_cached(pin, &inputs.wheels.cache));
    if !missing.is_empty() && args.no_index {
        return Err(Refusal::new(format!(
            "no wheel in the --wheels directories for {} (and --no-index forbids downloading)",
            missing
                .iter()
                .map(|pin| format!("{}=={} ({})", pin.name, pin.version, pin.place()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_hint("add the wheels to a --wheels directory (pip download --only-binary=:all: -d DIR ...), or drop --no-index")
        .into());
    }
    if !missing.is_empty() {
        let downloads = scratch.join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let requirements: Vec<String> = missing
            .iter()
            .map(|pin| format!("{}=={}", pin.name, pin.version))
            .collect();
        let download = |requirements: &[String], quiet: bool| {
            index::download(
                &args.python,
                requirements,
                &downloads,
                &index_options(args),
                &pip_target(args),
                index::Fetch::Wheels,
                quiet,
            )
        };
        if download(&requirements, true).is_err() {
            // pip stops at the first pin it cannot fetch: ask for each alone to find them all.
            for (pin, requirement) in missing.iter().zip(&requirements) {
                if download(std::slice::from_ref(requirement), true).is_err() {
                    without_wheel.push(pin.clone());
                }
            }
        }
        let fetched = wheels::select(&missing, &[downloads], supported, wheels::Origin::Index)?;
        chosen.extend(fetched.chosen);
        for pin in fetched.missing {
            if !without_wheel.iter().any(|p| p.name == pin.name) {
                without_wheel.push(pin);
            }
        }
    }
    let mut built = Vec::new();
    let mut failures = Vec::new();
    for (index, pin) in without_wheel.iter().enumerate() {
        let work = scratch.join(format!("sdist-{index}"));
        std::fs::create_dir(&work)?;
        let wheel = sdist::wheel_for(pin, inputs, &work)
            .and_then(|path| wheels::ChosenWheel::from_path(&path, wheels::Origin::Built));
        match wheel {
            Ok(wheel) if wheel.name.compatibility(supported).is_some() => {
                built.push(wheel.name.file_name().to_string());
                chosen.push(wheel);
            }
            Ok(wheel) => failures.push(format!(
                "{}: {} was built from its sdist on --python, whose tags do not fit the target",
                pin.place(),
                wheel.name.file_name()
            )),
            Err(err) => failures.push(err.to_string()),
        }
    }
    if !failures.is_empty() {
        return Err(Refusal::new(format!(
            "no wheel for {} of {} pin(s): {}",
            failures.len(),
            pins.len(),
            failures.join("; ")
        ))
        .with_hint("give their wheels with --wheels DIR, or check --index-url/--extra-index-url")
        .into());
    }
    Ok((chosen, built))
}

fn index_options(args: &Args) -> index::IndexOptions {
    index::IndexOptions {
        index_url: args.index_url.clone(),
        extra_index_urls: args.extra_index_url.clone(),
    }
}

fn pip_target(args: &Args) -> index::PipTarget {
    index::PipTarget {
        python_version: args.python_version.clone(),
        platforms: args.platform.iter().cloned().collect(),
    }
}

/// The Python the bundle is for: the pip-style options when given, else `--python`'s.
fn target_python(args: &Args) -> anyhow::Result<pyapp_bundle::target::TargetPython> {
    match (&args.python_version, &args.platform) {
        (Some(version), Some(platform)) => {
            pyapp_bundle::target::TargetPython::from_pip_options(version, platform)
                .map_err(|err| Refusal::new(format!("--python-version/--platform: {err}")).into())
        }
        _ => {
            let mut target = pyapp_venv::interpreter::Interpreter::query(&args.python)?.target;
            if let Some(version) = &args.python_version {
                target.version =
                    pyapp_bundle::target::TargetPython::from_pip_options(version, "linux_x86_64")
                        .map_err(|err| Refusal::new(format!("--python-version: {err}")))?
                        .version;
            }
            Ok(target)
        }
    }
}

/// `SOURCE_DATE_EPOCH`, when set, for reproducible timestamps.
fn source_date_epoch() -> anyhow::Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.trim().parse().map(Some).map_err(|_| {
            Refusal::new(format!(
                "SOURCE_DATE_EPOCH=`{value}` is not a number of seconds"
            ))
            .into()
        }),
        Err(_) => Ok(None),
    }
}

/// Every service, task, hook and health-check command must start a program the bundle
/// provides (a script of one of its wheels, `python`) or name an absolute path.
fn check_programs(
    metadata: &pyapp_bundle::metadata::Metadata,
    wheels: &[wheels::ChosenWheel],
) -> anyhow::Result<()> {
    let provided: std::collections::BTreeSet<&str> = wheels
        .iter()
        .flat_map(|wheel| wheel.contents.programs.iter().map(String::as_str))
        .collect();
    let services = metadata
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("services[{i}].command"), &s.command));
    let tasks = metadata
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("tasks[{i}].command"), &t.command));
    let hooks = metadata
        .hooks
        .commands()
        .map(|(name, command)| (format!("hooks.{name}"), command));
    let health = metadata
        .update
        .health_check
        .as_ref()
        .and_then(|check| check.command.as_ref())
        .map(|command| ("update.health-check.command".to_string(), command));
    for (field, command) in services.chain(tasks).chain(hooks).chain(health) {
        let program = command.program();
        let is_python = program == "python"
            || program == "python3"
            || program
                .strip_prefix("python3.")
                .is_some_and(|minor| minor.parse::<u8>().is_ok());
        if !(is_python || program.starts_with('/') || provided.contains(program)) {
            return Err(Refusal::new(format!(
                "metadata.yaml: {field}: program `{program}` is not installed by any wheel of the bundle (nor python, nor an absolute path)"
            ))
            .with_hint("pin the distribution whose console script it is, or fix the command's spelling")
            .into());
        }
    }
    Ok(())
}

/// The git commit the project is at, when it is a git checkout.
fn source_commit(dir: &Path) -> Option<String> {
    let mut command = std::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "HEAD"])
        .stderr(std::process::Stdio::null());
    log::debug!("{command:?}");
    let output = command.output().ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && commit.len() == 40).then_some(commit)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|err| Refusal::new(format!("{}: cannot read: {err}", path.display())).into())
}
