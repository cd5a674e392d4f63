//! Bytecode for the installed `.py` files, made so that nothing of the wheels ever runs:
//! the base interpreter is started with `-I -S` (no environment, no site-packages, so no
//! `.pth` file, `sitecustomize` or codec of the venv is ever imported), started through the
//! caller's [`Confine`] (pyapp-install: as `nobody`, no new privileges, dying with its
//! parent), and it touches no file: each source is sent on its stdin, each `.pyc` comes
//! back on its stdout and is written here into `__pycache__/` (listed in the caller's
//! [`ToSync`]). Compiling parses; it never executes what it compiles.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};

use pyapp_fs::ToSync;

use super::WheelInstallError;

/// Starts a child process confined as the caller wants (privileges dropped); called on
/// the command before it is spawned.
pub type Confine = fn(&mut Command);

/// The compiler: stdlib only, runs on 3.6+. It first makes itself undumpable
/// (`PR_SET_DUMPABLE` 0, where ctypes can call prctl): other processes of its user, which
/// `nobody` is for more than one daemon, can then not trace it and change the bytecode it
/// answers. It says its cache tag, then, for each
/// `MTIME SIZE NAME_LENGTH` line followed by the name and the source, answers
/// `C LENGTH` and a timestamp `.pyc` (PEP 552 flags 0), or `E LENGTH` and why not.
const COMPILER: &str = r#"
import marshal, sys
from importlib.util import MAGIC_NUMBER
try:
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
except Exception:
    pass
source_in, out = sys.stdin.buffer, sys.stdout.buffer
out.write(sys.implementation.cache_tag.encode("ascii") + b"\n")
out.flush()
while True:
    head = source_in.readline()
    if not head:
        break
    mtime, size, name_length = (int(field) for field in head.split())
    name = source_in.read(name_length).decode("utf-8", "surrogateescape")
    source = source_in.read(size)
    try:
        code = compile(source, name, "exec", dont_inherit=True)
    except Exception as err:
        why = ("%s: %s" % (type(err).__name__, err)).encode("utf-8", "replace")
        out.write(b"E %d\n" % len(why) + why)
    else:
        body = marshal.dumps(code)
        header = MAGIC_NUMBER + bytes(4) + (mtime & 0xFFFFFFFF).to_bytes(4, "little")
        header += (size & 0xFFFFFFFF).to_bytes(4, "little")
        out.write(b"C %d\n" % (len(header) + len(body)) + header + body)
    out.flush()
"#;

/// An answer longer than this is refused (a `.pyc` is a few times its source at most).
const MAX_ANSWER: usize = 1 << 30;

/// Compiles `files` (installed `.py` files) with `python`, in as many confined processes
/// as there are CPUs, listing what is written in `to_sync`; returns a warning for each
/// file that does not compile on this Python (templates, code for other versions).
pub fn compile(
    python: &Path,
    files: &[PathBuf],
    confine: Confine,
    to_sync: &ToSync,
) -> Result<Vec<String>, WheelInstallError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len());
    let per_worker = files.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let running: Vec<_> = files
            .chunks(per_worker)
            .map(|chunk| scope.spawn(move || compile_chunk(python, chunk, confine, to_sync)))
            .collect();
        let mut warnings = Vec::new();
        for worker in running {
            let done = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            warnings.extend(done?);
        }
        Ok(warnings)
    })
}

/// One compiler process for `files`.
fn compile_chunk(
    python: &Path,
    files: &[PathBuf],
    confine: Confine,
    to_sync: &ToSync,
) -> Result<Vec<String>, WheelInstallError> {
    let failed = |reason: String| WheelInstallError::Compiler {
        python: python.to_path_buf(),
        reason,
    };
    let mut command = Command::new(python);
    command
        .args(["-I", "-S", "-c", COMPILER])
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    confine(&mut command);
    // Spawned and waited for on this thread: the child dies with it, not before.
    let mut child = command
        .spawn()
        .map_err(|source| WheelInstallError::Compile {
            python: python.to_path_buf(),
            source,
        })?;
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(failed("its pipes were not set up".to_owned()));
    };
    let (sent, answered, said) = std::thread::scope(|scope| {
        let sending = scope.spawn(move || send_sources(BufWriter::new(stdin), files));
        let reading_errors = scope.spawn(move || {
            let mut text = String::new();
            let _ = stderr.take(64 * 1024).read_to_string(&mut text);
            text
        });
        let answered = read_answers(stdout, files, to_sync);
        if answered.is_err() {
            // It may be blocked writing: the sender would wait for it forever.
            let _ = child.kill();
        }
        (
            sending
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            answered,
            reading_errors
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        )
    });
    let status = child.wait().map_err(|source| WheelInstallError::Compile {
        python: python.to_path_buf(),
        source,
    })?;
    let why = |what: String| {
        let said = said.trim();
        failed(if said.is_empty() {
            format!("{what} ({status})")
        } else {
            format!("{what} ({status}): {said}")
        })
    };
    // A wrong answer says more than the broken pipe it leads to.
    let warnings = answered.map_err(|broken| match broken {
        Broken::Answer(what) => why(what),
        Broken::Write(err) => err,
    })?;
    sent?;
    if !status.success() {
        return Err(why("it failed".to_owned()));
    }
    Ok(warnings)
}

/// Writes each file's header line, name and source to the compiler.
fn send_sources(mut to: impl Write, files: &[PathBuf]) -> Result<(), WheelInstallError> {
    for path in files {
        let read_error = |source| WheelInstallError::Bytecode {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(read_error)?;
        let mtime = file.metadata().map_err(read_error)?.mtime();
        let mut source = Vec::new();
        file.read_to_end(&mut source).map_err(read_error)?;
        let name = path.as_os_str().as_encoded_bytes();
        let sent = writeln!(to, "{mtime} {} {}", source.len(), name.len())
            .and_then(|()| to.write_all(name))
            .and_then(|()| to.write_all(&source));
        // A compiler that stopped early is reported from its answers and status.
        if sent.is_err() {
            return Ok(());
        }
    }
    // Closing its stdin ends the compiler.
    let _ = to.flush();
    Ok(())
}

/// Why the compiler's answers were not all written.
enum Broken {
    /// It did not answer as it must (it died, or printed something else).
    Answer(String),
    /// A `.pyc` could not be written.
    Write(WheelInstallError),
}

/// Reads the compiler's cache tag and one answer per file, writing each `.pyc` (listed in
/// `to_sync`); the warnings for the files that did not compile.
fn read_answers(
    from: ChildStdout,
    files: &[PathBuf],
    to_sync: &ToSync,
) -> Result<Vec<String>, Broken> {
    let mut from = BufReader::new(from);
    let mut line = String::new();
    let tag = next_line(&mut from, &mut line, "its cache tag")?;
    let tag_is_a_name = !tag.is_empty()
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !tag_is_a_name {
        return Err(Broken::Answer(format!("it gave the cache tag {tag:?}")));
    }
    let mut warnings = Vec::new();
    for path in files {
        let what = format!("the bytecode of `{}`", path.display());
        let head = next_line(&mut from, &mut line, &what)?;
        let answer = head
            .split_once(' ')
            .and_then(|(kind, length)| Some((kind, length.parse::<usize>().ok()?)))
            .filter(|(kind, length)| ["C", "E"].contains(kind) && *length <= MAX_ANSWER);
        let Some((kind, length)) = answer else {
            return Err(Broken::Answer(format!("it answered {head:?} for {what}")));
        };
        let mut body = vec![0; length];
        from.read_exact(&mut body)
            .map_err(|err| Broken::Answer(format!("failed to read {what}: {err}")))?;
        if kind == "E" {
            warnings.push(format!(
                "bytecode: {}: {}",
                path.display(),
                String::from_utf8_lossy(&body)
            ));
        } else if let Some(warning) =
            write_pyc(path, &tag, &body, to_sync).map_err(Broken::Write)?
        {
            warnings.push(warning);
        }
    }
    Ok(warnings)
}

/// The next line of the compiler's answers, before `what`.
fn next_line(from: &mut impl BufRead, line: &mut String, what: &str) -> Result<String, Broken> {
    line.clear();
    match from.read_line(line) {
        Ok(_) if line.ends_with('\n') => Ok(line.trim_end_matches('\n').to_owned()),
        Ok(_) => Err(Broken::Answer(format!("it ended before {what}"))),
        Err(err) => Err(Broken::Answer(format!("failed to read {what}: {err}"))),
    }
}

/// Writes `pyc` as the bytecode of `source`, `__pycache__/NAME.TAG.pyc` beside it,
/// replacing one the wheel brought, and lists it (and `__pycache__`, and the directory
/// that may just have been given it) in `to_sync`; a warning when `__pycache__` is not a
/// directory.
fn write_pyc(
    source: &Path,
    tag: &str,
    pyc: &[u8],
    to_sync: &ToSync,
) -> Result<Option<String>, WheelInstallError> {
    let (Some(dir), Some(stem)) = (source.parent(), source.file_stem()) else {
        return Ok(None);
    };
    let cache = dir.join("__pycache__");
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WheelInstallError::Bytecode { path, source }
    };
    match fs::symlink_metadata(&cache) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Ok(Some(format!(
                "bytecode: `{}` is not a directory: {} was not compiled",
                cache.display(),
                source.display()
            )))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(&cache).map_err(failed(&cache))?;
            to_sync.dir(dir);
        }
        Err(err) => return Err(failed(&cache)(err)),
    }
    let mut name = stem.to_owned();
    name.push(format!(".{tag}.pyc"));
    let path = cache.join(name);
    match fs::remove_file(&path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(failed(&path)(err)),
        _ => {}
    }
    // A new file (never through a link), exactly 0644 whatever the umask.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(failed(&path))?;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .and_then(|()| file.write_all(pyc))
        .map_err(failed(&path))?;
    to_sync.dir(&cache);
    to_sync.file(&file, &path);
    Ok(None)
}
