//! What both command lines share (pyapp-cli): completions and man pages generated from the
//! clap definitions, `NO_COLOR`, `--quiet`, `-v`/`-vv` and `hint:` lines.

use std::process::Command;

use crate::harness::{bin, fixture_copy, hello_wheels};

const BINARIES: [&str; 2] = ["pyapp-build", "pyapp-install"];

fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(bin(binary));
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run binary")
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bash_completions_parse_and_know_the_subcommands() {
    for binary in BINARIES {
        let output = run(binary, &["completions", "bash"], &[]);
        assert!(output.status.success(), "{binary}: {}", stderr(&output));
        let script = stdout(&output);
        let subcommand = if binary == "pyapp-build" {
            "keygen"
        } else {
            "rollback"
        };
        assert!(script.contains(subcommand), "{binary}: {script}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("completion.bash");
        std::fs::write(&path, &script).unwrap();
        let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(check.status.success(), "{binary}: {}", stderr(&check));
    }
}

#[test]
fn completions_exist_for_every_shell_clap_knows() {
    for binary in BINARIES {
        for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
            let output = run(binary, &["completions", shell], &[]);
            assert!(
                output.status.success(),
                "{binary} {shell}: {}",
                stderr(&output)
            );
            assert!(stdout(&output).contains(binary), "{binary} {shell}");
        }
        let output = run(binary, &["completions", "tcsh"], &[]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{binary}: an unknown shell is refused"
        );
    }
}

#[test]
fn man_pages_render_with_groff_one_per_command() {
    for binary in BINARIES {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let output = run(binary, &["man", "--out-dir", out], &[]);
        assert!(output.status.success(), "{binary}: {}", stderr(&output));
        let pages: Vec<String> = stdout(&output).lines().map(String::from).collect();
        assert!(
            pages.iter().any(|p| p.ends_with(&format!("/{binary}.1"))),
            "{pages:?}"
        );
        assert!(pages
            .iter()
            .any(|p| p.ends_with(&format!("/{binary}-completions.1"))));
        assert!(!pages.iter().any(|p| p.ends_with("-help.1")), "{pages:?}");
        for page in &pages {
            let text = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(page)
                .output()
                .unwrap();
            assert!(text.status.success(), "{page}: {}", stderr(&text));
            assert!(
                stderr(&text).is_empty(),
                "{page}: groff warns: {}",
                stderr(&text)
            );
        }
        let main_page = run(binary, &["man"], &[]);
        assert!(
            stdout(&main_page).contains(".TH"),
            "{binary}: roff on stdout"
        );
    }
}

#[test]
fn errors_are_coloured_only_when_allowed() {
    let args = ["remove", "no-such-app", "--root", "/nonexistent-root"];
    let plain = run("pyapp-install", &args, &[]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(stderr(&plain).starts_with("error: "), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("\nhint: "), "{}", stderr(&plain));
    assert!(
        !stderr(&plain).contains('\x1b'),
        "no colour when stderr is not a terminal"
    );

    let forced = run("pyapp-install", &args, &[("CLICOLOR_FORCE", "1")]);
    assert!(stderr(&forced).contains("\x1b["), "{:?}", stderr(&forced));
    let no_color = run(
        "pyapp-install",
        &args,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert!(
        !stderr(&no_color).contains('\x1b'),
        "{:?}",
        stderr(&no_color)
    );
    assert_eq!(stderr(&no_color), stderr(&plain));
}

#[test]
fn quiet_and_verbose_levels_of_pyapp_build() {
    let project = fixture_copy("hello");
    let wheels = hello_wheels();
    let backends = crate::harness::backend_wheels();
    let build = |flags: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec![
            project.path().to_str().unwrap(),
            "-o",
            out.path().to_str().unwrap(),
            "--wheels",
            wheels.to_str().unwrap(),
            "--wheels",
            backends.to_str().unwrap(),
            "--no-index",
        ];
        args.extend_from_slice(flags);
        let output = run("pyapp-build", &args, &[]);
        assert!(output.status.success(), "{flags:?}: {}", stderr(&output));
        stderr(&output)
    };
    assert_eq!(build(&["--quiet"]), "");
    let steps = build(&["-v"]);
    for step in [
        "reading the project",
        "collecting wheels",
        "writing the bundle",
    ] {
        assert!(
            steps
                .lines()
                .any(|l| l.starts_with("step: ") && l.contains(step) && l.ends_with(" ms)")),
            "{step}: {steps}"
        );
    }
    assert!(!steps.contains("run: "), "{steps}");
    let commands = build(&["-vv"]);
    assert!(
        commands
            .lines()
            .any(|l| l.starts_with("run: ") && l.contains("git")),
        "{commands}"
    );

    let conflict = run("pyapp-build", &["-q", "-v"], &[]);
    assert_eq!(conflict.status.code(), Some(1), "{}", stderr(&conflict));
}

#[test]
fn a_failure_with_json_is_json_on_stdout_too() {
    let output = run(
        "pyapp-install",
        &[
            "remove",
            "no-such-app",
            "--root",
            "/nonexistent-root",
            "--json",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["status"], 1);
    assert!(value["error"]
        .as_str()
        .unwrap()
        .contains("no-such-app is not installed"));
    assert!(value["hint"]
        .as_str()
        .unwrap()
        .contains("pyapp-install list"));
    assert!(stderr(&output).starts_with("error: "));

    let project = tempfile::tempdir().unwrap();
    let output = run(
        "pyapp-build",
        &[project.path().to_str().unwrap(), "--json"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["status"], 1);
    assert!(value["error"]
        .as_str()
        .unwrap()
        .contains("not a Python project: it has no pyproject.toml, setup.py or setup.cfg"));
}

#[test]
fn verbose_install_names_each_step_with_its_duration() {
    let project = fixture_copy("hello");
    let out = tempfile::tempdir().unwrap();
    let bundle = crate::harness::build_bundle(project.path(), out.path());
    let root = tempfile::tempdir().unwrap();
    let install = |flags: &[&str]| {
        let mut args = vec![
            "--root",
            root.path().to_str().unwrap(),
            "--python",
            "/usr/bin/python3",
            bundle.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let output = run("pyapp-install", &args, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        stderr(&output)
    };
    let steps = install(&["-v"]);
    for step in [
        "verify the bundle",
        "check trust, room, interpreter and system",
        "extract ",
        "create the venv",
        "install 11 wheels",
        "build release 1.0.0-",
        "app user, units, configuration",
        "receipt, old releases, store",
    ] {
        assert!(
            steps
                .lines()
                .any(|l| l.starts_with("step: ") && l.contains(step) && l.ends_with(" ms)")),
            "{step}: {steps}"
        );
    }
    assert!(
        install(&["-q"]).is_empty(),
        "unchanged and quiet says nothing"
    );
}

/// Issue 12 (the exit status 32 seen once): whatever happens, both binaries end with 0, 1
/// or 2. A stdout whose reader is gone made `println!` panic (exit 101, "failed printing
/// to stdout: Broken pipe (os error 32)"); it is now one `error:` line and exit 2.
#[test]
fn a_stdout_nobody_reads_is_exit_2_not_a_panic() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_str().unwrap();
    let cases: [(&str, Vec<&str>); 3] = [
        ("pyapp-install", vec!["list", "--json", "--root", root]),
        ("pyapp-install", vec!["completions", "bash"]),
        ("pyapp-build", vec!["man"]),
    ];
    for (binary, args) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(bin(binary))
            .args(&args)
            .stdout(writer)
            .output()
            .expect("run binary");
        let said = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{binary} {args:?}: {said}");
        assert!(
            said.lines().count() <= 2
                && said.starts_with("error: failed to write to stdout: Broken pipe"),
            "{binary} {args:?}: {said}"
        );
    }
}
