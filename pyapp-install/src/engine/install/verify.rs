//! Step 1: recognise and verify the bundle, find the interpreter. Reads, never writes.

use std::fs::File;
use std::path::Path;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use pyapp_bundle::config_spec::ConfigSpec;
use pyapp_bundle::layout::{BUNDLE_SUFFIX, CONFIGURATION_NAME, DEPS_PREFIX, METADATA_NAME};
use pyapp_bundle::metadata::Metadata;
use pyapp_bundle::reader::{
    Bundle as BundleReader, BundleEntry, BundleError, Deferred, ErrorKind, Limits,
};
use pyapp_bundle::yaml::MAX_YAML_BYTES;

use super::InstallRequest;
use crate::app::receipt::{now_rfc3339, BundleFile, Receipt, ReleaseRecord};
use crate::app::release;
use crate::app::tree::{AppTree, AppsDir};
use crate::app::trust::TrustPolicy;
use crate::engine::Target;
use crate::system::packages;
use pyapp_cli::{Refusal, StepLog};
use pyapp_venv::interpreter::{AnswerCache, Interpreter, InterpreterError};
use pyapp_venv::store::{KnownIndexes, Store};
use pyapp_venv::venv::{self, VenvError};

/// What verification found.
pub enum Verified {
    /// The bundle's release is already the app's current one, and nothing was asked of it
    /// that needs the lock: nothing to do.
    Current {
        tree: AppTree,
        receipt: Box<Receipt>,
    },
    /// A verified bundle to install.
    Bundle(Box<Bundle>),
}

/// A bundle that passed every check, with the interpreter its venv will be built on.
pub struct Bundle {
    pub bundle: BundleReader,
    pub metadata: Metadata,
    pub spec: ConfigSpec,
    /// The release it becomes, as the receipt will record it.
    pub record: ReleaseRecord,
    pub interpreter: Interpreter,
    /// Interpreter answers to remember once the install writes.
    pub answers: AnswerCache,
    /// The check of the wheels the store holds, still running.
    pub pending: PendingCheck,
    /// The store's indexes of those wheels, read by the space check.
    pub known: KnownIndexes,
}

/// The check of the stored entries whose verification was deferred (the wheels the store
/// holds, which are linked, not read), on a thread of its own beside the install (FORMAT.md
/// 6.1.1): a wheel whose blocks digest is the one its store entry keeps is the wheel the
/// entry was unpacked from, any other has its sha256 checked. [`PendingCheck::finish`]
/// comes before anything relies on the bundle: the release renamed into place,
/// `unchanged`, a dry run's answer.
pub struct PendingCheck(Option<JoinHandle<Result<(), BundleError>>>);

impl PendingCheck {
    fn start(deferred: Deferred, store: Store) -> PendingCheck {
        if deferred.is_empty() {
            return PendingCheck(None);
        }
        let known =
            move |entry: &BundleEntry| store.published_blocks_digest(&hex::encode(entry.sha256));
        PendingCheck(Some(std::thread::spawn(move || deferred.verify(&known))))
    }

    /// Waits for the check: a wheel that is not what the manifest says refuses the bundle.
    pub fn finish(self) -> Result<()> {
        let Some(checking) = self.0 else {
            return Ok(());
        };
        checking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(bundle_error)
    }
}

/// Verifies `request.bundle`: its entries (size and sha256), metadata, configuration spec
/// and signature, and the interpreter it needs.
pub fn verify(request: &InstallRequest, target: &Target) -> Result<Verified> {
    let path = request.bundle.as_path();
    let file = open_bundle_file(path)?;
    let identity =
        BundleFile::of(&file).with_context(|| format!("failed to inspect `{}`", path.display()))?;

    // A bundle that is already current needs no verification and no lock: it is the very
    // file that was verified and installed (the same file, unchanged since, or one with
    // the same sha256), and nothing will be written (unless --web asks to link it, which
    // is done under the lock).
    let same_file = |receipt: &Receipt| {
        receipt
            .current()
            .is_some_and(|record| record.bundle_file == Some(identity))
    };
    if let Some(current) = current_install(request, &target.apps, same_file)? {
        return Ok(current);
    }
    let mut steps = StepLog::new();
    steps.begin("verify the bundle");
    // Verifying the entries reads every byte, while the interpreter named by --python
    // answers (or its remembered answer is found).
    let store = Store::of(target.apps.path());
    let answers = AnswerCache::at(store.interpreters_dir());
    // A wheel the store holds is not read from the bundle (its files are linked): its
    // check runs beside the install instead of before it.
    let defer = |entry: &BundleEntry| {
        request.options.verify_record
            && entry.name.starts_with(DEPS_PREFIX)
            && store.has_published(&hex::encode(entry.sha256))
    };
    let (opened, queried) = std::thread::scope(|scope| {
        let answers = &answers;
        let querying = request
            .python
            .as_deref()
            .map(|python| scope.spawn(move || (python, Interpreter::query_with(python, answers))));
        let opened = open_bundle(path, &defer);
        let queried = querying.map(|query| {
            query
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        (opened, queried)
    });
    let (bundle, deferred, metadata, spec) = opened?;
    let pending = PendingCheck::start(deferred, store.clone());
    // A server that wants signed bundles refuses any other, also one whose content is
    // already installed from a signed one.
    TrustPolicy::load(&target.apps, &request.trusted_keys)?.check(&bundle, target.progress())?;
    // The content digest names the release; it is trusted only once every entry was found
    // to be what the manifest says.
    let content_sha256 = hex::encode(bundle.content_sha256());
    if let Some(current) = current_install(request, &target.apps, |receipt| {
        receipt.is_from(&content_sha256)
    })? {
        pending.finish()?;
        return Ok(current);
    }
    // Remembered only when the file did not change while it was verified.
    let unchanged = BundleFile::of(&file).ok() == Some(identity);
    drop(file);
    steps.begin("check trust, room, interpreter and system");
    let requires = &metadata.requires_python;
    // The units are checked (`systemd-analyze calendar` asked about each schedule) while
    // the room and the interpreter are.
    let (known, interpreter, units) = std::thread::scope(|scope| {
        let units = scope.spawn(|| target.systemd.check_app_units(&metadata));
        let known = super::space::check(&bundle, &target.apps, request.max_installed_size);
        // The app's user runs the venv: an interpreter only root can reach would fail its
        // hooks and services after the release was built.
        let interpreter = match queried {
            Some((python, queried)) => queried
                .and_then(|found| found.require(python, requires))
                .and_then(|found| found.runnable_by_others().map(|()| found)),
            None => {
                Interpreter::find_usable(None, requires, &Interpreter::runnable_by_others, &answers)
            }
        };
        let units = units
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (known, interpreter, units)
    });
    let known = known?;
    let interpreter = interpreter.map_err(|err| {
        let hint = match err {
            InterpreterError::Unreachable { .. } => {
                "use an interpreter every user can run (Debian's /usr/bin/python3.X), or open its directories to others"
            }
            _ => "install a matching python3.X, or name one with --python PATH",
        };
        Refusal::new(err.to_string()).with_hint(hint)
    })?;
    units?;
    check_system(&metadata, &interpreter, target)?;
    let version = metadata.version.to_string();
    let record = ReleaseRecord {
        release: release::release_name(&version, &content_sha256),
        version,
        content_sha256: Some(content_sha256),
        bundle_sha256: None,
        installed_at: now_rfc3339(),
        python: interpreter.base_executable.display().to_string(),
        python_version: interpreter.target.version.to_string(),
        bundle_file: unchanged.then_some(identity),
    };
    steps.end();
    Ok(Verified::Bundle(Box::new(Bundle {
        bundle,
        metadata,
        spec,
        record,
        interpreter,
        answers,
        pending,
        known,
    })))
}

/// The app whose current release came from the bundle `from_bundle` recognises, unless
/// the request links it into a web server (which needs the lock). An interpreter other
/// than the release's is refused rather than ignored.
fn current_install(
    request: &InstallRequest,
    apps: &AppsDir,
    from_bundle: impl Fn(&Receipt) -> bool,
) -> Result<Option<Verified>> {
    if request.web.is_some() {
        return Ok(None);
    }
    let Some((tree, receipt)) = find_current_install(apps, from_bundle)? else {
        return Ok(None);
    };
    check_same_python(request.python.as_deref(), &tree, &receipt)?;
    Ok(Some(Verified::Current {
        tree,
        receipt: Box::new(receipt),
    }))
}

/// What the app needs of the system, there before anything is written (its units were
/// checked beside the interpreter): its Debian packages and the system Python modules its
/// venv links.
fn check_system(metadata: &Metadata, interpreter: &Interpreter, target: &Target) -> Result<()> {
    let app = metadata.name.as_str();
    packages::check(
        &target.root,
        app,
        &metadata.system.packages,
        target.progress(),
    )?;
    venv::check_system_modules(interpreter, &metadata.system.python_modules).map_err(|err| {
        let hint = match &err {
            VenvError::ModuleMissing { name, .. } => format!(
                "install the Debian package that provides it (e.g. `apt-get install python3-{name}`)"
            ),
            _ => "rebuild the bundle with a valid metadata.yaml".to_owned(),
        };
        Refusal::new(format!("{app} cannot be installed: {err}")).with_hint(hint)
    })?;
    Ok(())
}

/// Opens the bundle file given on the command line.
fn open_bundle_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|err| {
        Refusal::new(format!(
            "cannot read the bundle `{}`: {err}",
            path.display()
        ))
        .with_hint(format!(
            "check the path; pyapp-build writes bundles as NAME-VERSION{BUNDLE_SUFFIX}"
        ))
        .into()
    })
}

/// The app whose current release came from the bundle `from_bundle` recognises, if any.
/// A receipt that cannot be read is skipped here: this is only the fast path, and the app
/// being installed has its receipt read again, strictly, under its lock.
fn find_current_install(
    apps: &AppsDir,
    from_bundle: impl Fn(&Receipt) -> bool,
) -> Result<Option<(AppTree, Receipt)>> {
    for tree in apps.installed_apps()? {
        if let Ok(Some(receipt)) = Receipt::load(&tree.receipt_path()) {
            if from_bundle(&receipt) && is_current(&tree, &receipt)? {
                return Ok(Some((tree, receipt)));
            }
        }
    }
    Ok(None)
}

/// Whether the tree agrees with the receipt about the current release.
pub fn is_current(tree: &AppTree, receipt: &Receipt) -> Result<bool> {
    Ok(
        release::current_release(tree)?.as_deref() == Some(receipt.release.as_str())
            && pyapp_fs::is_real_dir(&tree.release_dir(&receipt.release))?,
    )
}

/// A release keeps the interpreter it was built with: asking for another one for the
/// bundle that is already current is refused rather than ignored.
pub fn check_same_python(explicit: Option<&Path>, tree: &AppTree, receipt: &Receipt) -> Result<()> {
    let Some(path) = explicit else {
        return Ok(());
    };
    // The path the release was installed with needs no asking the interpreter.
    if path == Path::new(&receipt.python) {
        return Ok(());
    }
    let interpreter = Interpreter::query(path).map_err(|err| Refusal::new(err.to_string()))?;
    if interpreter.base_executable.display().to_string() == receipt.python {
        return Ok(());
    }
    Err(Refusal::new(format!(
        "{} {} is already installed from this bundle with {}, not {}",
        tree.name(),
        receipt.version,
        receipt.python,
        interpreter.base_executable.display()
    ))
    .with_hint(format!(
        "to change the interpreter: `pyapp-install remove {}` (config/ and data/ stay), then install with --python",
        tree.name()
    ))
    .into())
}

/// The refusal of a bundle that breaks a rule; its other errors as they are.
fn bundle_error(err: BundleError) -> anyhow::Error {
    match err.kind() {
        ErrorKind::BadBundle => anyhow::Error::new(refuse_bundle(&err)),
        ErrorKind::Io => anyhow::Error::new(err),
    }
}

fn refuse_bundle(err: &dyn std::fmt::Display) -> Refusal {
    Refusal::new(format!("refusing the bundle: {err}"))
        .with_hint("rebuild it with pyapp-build, or copy it again if it was damaged")
}

/// Opens and verifies the bundle (every entry's size and sha256, but those `defer` picks,
/// returned to be verified), its metadata and its configuration spec.
fn open_bundle(
    path: &Path,
    defer: &(dyn Fn(&BundleEntry) -> bool + Sync),
) -> Result<(BundleReader, Deferred, Metadata, ConfigSpec)> {
    let (mut bundle, deferred) =
        BundleReader::open_deferring(path, &Limits::default(), defer).map_err(bundle_error)?;
    let mut read_yaml = |name: &str| -> Result<String> {
        let bytes = bundle
            .read_small(name, MAX_YAML_BYTES as u64)
            .map_err(bundle_error)?;
        Ok(String::from_utf8(bytes).map_err(|_| refuse_bundle(&format!("{name} is not UTF-8")))?)
    };
    let metadata = Metadata::parse(&read_yaml(METADATA_NAME)?, METADATA_NAME)
        .map_err(|err| refuse_bundle(&err))?;
    let spec = ConfigSpec::parse(&read_yaml(CONFIGURATION_NAME)?, CONFIGURATION_NAME)
        .map_err(|err| refuse_bundle(&err))?;
    let deps: Vec<(String, String)> = bundle
        .entries()
        .iter()
        .filter_map(|entry| {
            let wheel = entry.name.strip_prefix(DEPS_PREFIX)?;
            Some((wheel.to_owned(), hex::encode(entry.sha256)))
        })
        .collect();
    metadata
        .check_dependencies(&deps)
        .map_err(|err| refuse_bundle(&err))?;
    metadata
        .check_static_paths(bundle.entries().iter().map(|entry| entry.name.as_str()))
        .map_err(|err| refuse_bundle(&err))?;
    metadata
        .check_config_placeholders(&spec)
        .map_err(|err| refuse_bundle(&err))?;
    Ok((bundle, deferred, metadata, spec))
}
