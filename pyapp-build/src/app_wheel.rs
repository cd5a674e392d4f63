//! The app's own wheel, built by the project's own build backend through its PEP 517 hooks,
//! so the wheel holds exactly what the backend's configuration says (poetry's `packages`,
//! hatch's targets, setuptools' package data…), as `pip wheel` or `python -m build` would.
//!
//! The build is isolated and offline unless a wheel is missing: a copy of the source tree
//! (the files the bundle's `src/` gets), a fresh venv on `--python` made natively with
//! pyapp-venv, the `[build-system] requires` wheels (and those `get_requires_for_build_wheel`
//! adds) chosen from the `--wheels` directories by [`crate::build_env`], `pip download`ed into
//! the wheel cache only for what they lack. `SOURCE_DATE_EPOCH` is passed on (1980-01-01 when
//! unset), so backends that honour it write the same wheel every time; and the wheel is kept
//! in the cache under a digest of everything the build was given (the files, the backend and
//! its wheels, the interpreter, the epoch), so building the same inputs again takes it from
//! there instead of running the backend.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use pyapp_venv::interpreter::Interpreter;
use pyapp_venv::venv::Venv;
use pyapp_venv::wheel_install::{install_wheels, InstallOptions};

use crate::build_env::{self, WheelSources};
use crate::project::BuildSystem;
use crate::sources::SourceFile;
use crate::Refusal;

/// The earliest time a zip entry can have: the epoch given to backends when
/// `SOURCE_DATE_EPOCH` is unset, so that their wheels are reproducible too.
const ZIP_EPOCH: u64 = 315_532_800;

/// The file of a cache entry naming its wheel and the build environment's wheels.
const CACHE_RECORD: &str = "build.json";

/// Runs one PEP 517 hook: `python -I -c HOOK_RUNNER HOOK BACKEND RESULT_FILE [OUT_DIR]`.
/// The hook's return value is written to RESULT_FILE as JSON (backends print on stdout).
const HOOK_RUNNER: &str = r#"
import importlib, json, os, sys
hook, spec, result_file = sys.argv[1:4]
sys.path[:0] = json.loads(os.environ["PYAPP_BACKEND_PATH"])
module, _, attributes = spec.partition(":")
backend = importlib.import_module(module)
for attribute in filter(None, attributes.split(".")):
    backend = getattr(backend, attribute)
if hook == "get_requires_for_build_wheel":
    get_requires = getattr(backend, hook, None)
    result = list(get_requires()) if get_requires else []
else:
    result = backend.build_wheel(os.path.abspath(sys.argv[4]))
with open(result_file, "w", encoding="utf-8") as file:
    json.dump(result, file)
"#;

/// The app's wheel and how it was built, for the report.
#[derive(Debug, Clone)]
pub struct AppWheel {
    pub path: PathBuf,
    /// The `build-backend` that built it.
    pub backend: String,
    /// The wheels of the build environment, by file name.
    pub build_wheels: Vec<String>,
}

/// What a build needs besides the project.
pub struct BuildInputs<'a> {
    /// The interpreter the backend runs on.
    pub interpreter: &'a Interpreter,
    /// Where build requirements come from.
    pub wheels: &'a WheelSources,
    /// `SOURCE_DATE_EPOCH`, when set.
    pub source_date_epoch: Option<u64>,
}

/// Build the app's wheel from `sources` (the project's files) in `scratch`.
pub fn build(
    project_dir: &Path,
    build_system: &BuildSystem,
    sources: &[SourceFile],
    inputs: &BuildInputs,
    scratch: &Path,
) -> anyhow::Result<AppWheel> {
    let pyproject = project_dir.join("pyproject.toml");
    let place = format!("{}: [build-system]", pyproject.display());
    let backend_wheels = build_env::resolve(
        &build_system.requires,
        &inputs.interpreter.target,
        inputs.wheels,
        &place,
    )?;
    let key = cache_key(build_system, &backend_wheels, sources, inputs)?;
    let cached = inputs.wheels.cache.join("app-builds").join(key);
    if let Some(wheel) = from_cache(&cached, build_system)? {
        log::debug!(
            "the app's wheel is the one built before: {}",
            wheel.path.display()
        );
        return Ok(wheel);
    }
    let tree = scratch.join("app-source");
    copy_sources(sources, &tree)?;
    let work = scratch.join("app-build");
    std::fs::create_dir(&work)?;
    let built = build_tree(&pyproject, &tree, build_system, inputs, &work)?;
    store(&cached, &built)?;
    Ok(built)
}

/// The digest of everything a build of the app's wheel is given.
fn cache_key(
    build_system: &BuildSystem,
    backend_wheels: &[PathBuf],
    sources: &[SourceFile],
    inputs: &BuildInputs,
) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(build_system.backend.as_bytes());
    for text in build_system
        .requires
        .iter()
        .chain(&build_system.backend_path)
    {
        field(text.as_bytes());
    }
    for wheel in backend_wheels {
        field(wheel.as_os_str().as_encoded_bytes());
    }
    field(
        inputs
            .interpreter
            .base_executable
            .as_os_str()
            .as_encoded_bytes(),
    );
    field(inputs.interpreter.version_info.as_bytes());
    field(&inputs.source_date_epoch.unwrap_or(ZIP_EPOCH).to_le_bytes());
    for source in sources {
        field(source.relative.as_bytes());
        field(&[u8::from(source.executable)]);
        field(crate::wheels::sha256_file(&source.path)?.as_bytes());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The wheel kept in `dir` by an earlier build of the same inputs.
fn from_cache(dir: &Path, build_system: &BuildSystem) -> anyhow::Result<Option<AppWheel>> {
    let Ok(text) = std::fs::read_to_string(dir.join(CACHE_RECORD)) else {
        return Ok(None);
    };
    let Ok((wheel, build_wheels)) = serde_json::from_str::<(String, Vec<String>)>(&text) else {
        return Ok(None);
    };
    let path = dir.join(&wheel);
    Ok(path.is_file().then(|| AppWheel {
        path,
        backend: build_system.backend.clone(),
        build_wheels,
    }))
}

/// Keep `built` in `dir` for the next build of the same inputs: written beside it, then
/// renamed into place, so a cache entry is whole or absent.
fn store(dir: &Path, built: &AppWheel) -> anyhow::Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(parent)
        .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", parent.display()))?;
    let partial = tempfile::tempdir_in(parent)?;
    let file_name = built
        .path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("a built wheel without a name"))?;
    std::fs::copy(&built.path, partial.path().join(file_name))?;
    let record = (file_name.to_string_lossy(), &built.build_wheels);
    std::fs::write(
        partial.path().join(CACHE_RECORD),
        serde_json::to_string(&record)?,
    )?;
    match std::fs::rename(partial.path(), dir) {
        Ok(()) => {
            // Renamed away: nothing is left for the guard to delete.
            let _ = partial.keep();
            Ok(())
        }
        // Another build stored the same inputs first.
        Err(_) if dir.is_dir() => Ok(()),
        Err(err) => Err(anyhow::anyhow!("cannot store {}: {err}", dir.display())),
    }
}

/// Build the wheel of the project in `tree` (which the build may write into), using the
/// empty directory `work` for its venv and output; `pyproject` names the project's
/// `pyproject.toml` in messages.
pub fn build_tree(
    pyproject: &Path,
    tree: &Path,
    build_system: &BuildSystem,
    inputs: &BuildInputs,
    work: &Path,
) -> anyhow::Result<AppWheel> {
    let interpreter = inputs.interpreter;
    let venv = Venv::create(&work.join("venv"), interpreter, &[] as &[&str])?;
    let place = || format!("{}: [build-system]", pyproject.display());

    let mut requires = build_system.requires.clone();
    let mut installed = install(&venv, interpreter, &requires, &[], inputs, &place())?;
    let extra = run_hook(
        &venv,
        build_system,
        tree,
        pyproject,
        "get_requires_for_build_wheel",
        None,
        inputs,
    )?;
    let extra: Vec<String> = serde_json::from_str::<Vec<String>>(&extra)?;
    if !extra.is_empty() {
        requires.extend(extra);
        let more = install(&venv, interpreter, &requires, &installed, inputs, &place())?;
        installed.extend(more);
    }

    let out = work.join("wheel");
    std::fs::create_dir(&out)?;
    let result = run_hook(
        &venv,
        build_system,
        tree,
        pyproject,
        "build_wheel",
        Some(&out),
        inputs,
    )?;
    let file_name: String = serde_json::from_str(&result)?;
    let path = out.join(&file_name);
    if !path.is_file() || !file_name.ends_with(".whl") {
        return Err(Refusal::new(format!(
            "{}: build backend `{}` said it built `{file_name}`, which is not a wheel in its output directory",
            pyproject.display(),
            build_system.backend
        ))
        .into());
    }
    let mut build_wheels: Vec<String> = installed
        .iter()
        .filter_map(|wheel| wheel.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();
    build_wheels.sort();
    Ok(AppWheel {
        path,
        backend: build_system.backend.clone(),
        build_wheels,
    })
}

/// Choose the wheels `requires` needs for `interpreter` and install those not in `present`
/// into `venv`; returns the wheels installed.
fn install(
    venv: &Venv,
    interpreter: &Interpreter,
    requires: &[String],
    present: &[PathBuf],
    inputs: &BuildInputs,
    place: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let wheels = build_env::resolve(requires, &interpreter.target, inputs.wheels, place)?;
    let new: Vec<PathBuf> = wheels
        .into_iter()
        .filter(|wheel| !present.contains(wheel))
        .collect();
    install_wheels(venv, &new, &InstallOptions::default(), &|| {})?;
    Ok(new)
}

/// Run `hook` of the backend in `venv` with `tree` as the working directory; returns the
/// JSON it wrote beside `tree`. Its output is shown only when it fails (or with -vv,
/// through the log); `pyproject` names the project in the message.
fn run_hook(
    venv: &Venv,
    build_system: &BuildSystem,
    tree: &Path,
    pyproject: &Path,
    hook: &str,
    out_dir: Option<&Path>,
    inputs: &BuildInputs,
) -> anyhow::Result<String> {
    let result_file = tree.with_file_name(format!("{hook}.json"));
    let backend_path: Vec<PathBuf> = build_system
        .backend_path
        .iter()
        .map(|dir| tree.join(dir))
        .collect();
    let mut command = Command::new(venv.python());
    command
        .args(["-I", "-c", HOOK_RUNNER, hook, &build_system.backend])
        .arg(&result_file)
        .args(out_dir)
        .current_dir(tree)
        .env("PYAPP_BACKEND_PATH", serde_json::to_string(&backend_path)?)
        .env(
            "SOURCE_DATE_EPOCH",
            inputs.source_date_epoch.unwrap_or(ZIP_EPOCH).to_string(),
        )
        .env_remove("PYTHONPATH");
    log::debug!("{command:?}");
    let output = command
        .output()
        .map_err(|err| anyhow::anyhow!("cannot run {}: {err}", venv.python().display()))?;
    log::debug!(
        "{hook}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        eprint!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        return Err(Refusal::new(format!(
            "{}: build backend `{}` failed in {hook} ({}); its output is above",
            pyproject.display(),
            build_system.backend,
            output.status
        ))
        .into());
    }
    Ok(std::fs::read_to_string(&result_file)?)
}

/// Copy the project's files into `tree`, so that the backend sees what the bundle's `src/`
/// holds and writes its `build/` and `*.egg-info` there, not into the checkout.
fn copy_sources(sources: &[SourceFile], tree: &Path) -> anyhow::Result<()> {
    for source in sources {
        let dest = tree.join(&source.relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&source.path, &dest).map_err(|err| {
            anyhow::anyhow!(
                "cannot copy {} to {}: {err}",
                source.path.display(),
                dest.display()
            )
        })?;
    }
    Ok(())
}
