//! The Ansible role `ansible/roles/pyapp`, run by the real ansible-core (installed from PyPI
//! by .ci/run) through the example playbook `ansible/site.yml` against this machine
//! (`ansible_connection: local`) under a real systemd (`systemd-sandbox`): the first run
//! copies pyapp-install and installs (changed), the same run again changes nothing, check
//! mode finds nothing to change, then predicts an upgrade and a configuration change while
//! writing nothing, a changed value is applied to the installed app, a refusal is shown, an
//! upgrade replaces the kept bundle, and the secret from the vault reaches the app's config
//! file but no output.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, build_bundle_with, fact};

/// The secret the vault holds: it must reach the config file and nothing the runs print.
const SECRET: &str = "VaultOnlySecretQx7Lm2";

/// Runs in the sandbox; every fact the test checks goes into a file of $OUT. `snapshot`
/// lists what check mode must leave alone: the app's tree (but tmp/ log/ run/, and the lock
/// file, which holds the pid of whoever takes the lock), its units, the kept bundles and
/// where the role copies pyapp-install; then the dry run's staging directories left in /tmp.
const SCRIPT: &str = r#"set -u
OUT=$1; ANSIBLE_BIN=$2; INVENTORY=$3; PLAYBOOK=$4; VAULT_PASSWORD=$5; V2=$6; V2_UNSIGNED=$7
KEY=$8; TOOL=$9; TOOL_SOURCE=${10}
export PATH=$ANSIBLE_BIN:$PATH ANSIBLE_NOCOLOR=1 ANSIBLE_PIPELINING=1
A=/applications/hello
play() {
  NAME=$1; shift
  ansible-playbook -vvv -i "$INVENTORY" --vault-password-file "$VAULT_PASSWORD" "$PLAYBOOK" "$@" \
    > $OUT/$NAME.log 2>&1
  echo $? > $OUT/$NAME.rc
}
snapshot() {
  find $A /etc/systemd/system /var/cache/pyapp "$(dirname "$TOOL")" \
    \( -path $A/tmp -o -path $A/log -o -path $A/run -o -path $A/.pyapp/lock \) -prune -o -printf '%p %y %m %s %T@ %l\n' | sort
  ls /tmp | grep -c pyapp-check
}
page() {
  python3 - "http://127.0.0.1:$(python3 -c "import json; print(json.load(open('$A/.pyapp/ports.json'))['ports']['web'])")$1" <<'PY'
import sys, time, urllib.request
for attempt in range(100):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
    except Exception as error:
        time.sleep(0.1)
        if attempt == 99: print("unreachable:", error)
PY
}
NEW_GREETING='{"pyapp_config": {"greeting": "Hi there"}}'
TRUST="{\"pyapp_trusted_keys\": [\"$KEY\"]}"

play install
systemctl is-active hello-web.service > $OUT/install.active
stat -c '%a' "$TOOL" > $OUT/tool.mode
cmp -s "$TOOL" "$TOOL_SOURCE"; echo $? > $OUT/tool.cmp
cp $A/config/config.yaml $OUT/install.config
page / > $OUT/install.page
snapshot > $OUT/installed.snapshot

play again
snapshot > $OUT/again.snapshot

play check-same --check

play check-upgrade --check -e pyapp_bundle="$V2" -e "$TRUST"
snapshot > $OUT/check-upgrade.snapshot

play check-config --check -e "$NEW_GREETING"
snapshot > $OUT/check-config.snapshot

play config -e "$NEW_GREETING"
cp $A/config/config.yaml $OUT/config.config
page / > $OUT/config.page

play refused -e pyapp_bundle="$V2_UNSIGNED" -e "$TRUST"
readlink $A/current > $OUT/refused.current

play upgrade -e pyapp_bundle="$V2" -e "$TRUST" -e "$NEW_GREETING"
readlink $A/current > $OUT/upgrade.current
(cd /var/cache/pyapp/bundles && ls *.pyapp) > $OUT/upgrade.bundles
page /health > $OUT/upgrade.health
"#;

/// The directory holding ansible-playbook: .ci/run's virtual environment, else PATH.
fn ansible_bin() -> PathBuf {
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/pyapp/ansible/bin"))
        .filter(|dir| dir.join("ansible-playbook").is_file());
    let on_path = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .find(|dir| dir.join("ansible-playbook").is_file())
    };
    venv.or_else(on_path).expect(
        "ansible-playbook is neither in ~/.cache/pyapp/ansible/bin nor on PATH: .ci/run installs ansible-core there",
    )
}

/// The example app at `version`, built into `out/DIR/`, signed with `key` if given.
fn hello_at(out: &Path, dir: &str, version: &str, key: Option<&Path>) -> PathBuf {
    let project = harness::hello_at_version(version);
    let dir = out.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sign: Vec<&str> = key
        .iter()
        .flat_map(|key| ["--sign", key.to_str().unwrap()])
        .collect();
    build_bundle_with(project.path(), &dir, &sign)
}

/// The inventory of the runs: this machine, the role's variables, and the secret in a
/// vault encrypted by the real ansible-vault with the password in `password`.
fn write_inventory(work: &Path, ansible: &Path, bundle: &Path, tool: &Path, password: &Path) {
    let vars = work.join("inventory/group_vars/app_servers");
    std::fs::create_dir_all(&vars).unwrap();
    std::fs::write(
        work.join("inventory/hosts.yml"),
        "app_servers:\n  hosts:\n    localhost:\n      ansible_connection: local\n      \
         ansible_python_interpreter: /usr/bin/python3\n      \
         # Already root here, and there is no sudo to become it with.\n      \
         ansible_become: false\n",
    )
    .unwrap();
    std::fs::write(
        vars.join("main.yml"),
        format!(
            "pyapp_bundle: {}\npyapp_install_binary: {}\npyapp_bin_path: {}\n\
             pyapp_python: /usr/bin/python3\npyapp_config:\n  greeting: Howdy\n  workers: 3\n",
            bundle.display(),
            harness::bin("pyapp-install").display(),
            tool.display(),
        ),
    )
    .unwrap();
    std::fs::write(password, "correct horse battery staple\n").unwrap();
    let vault = vars.join("vault.yml");
    std::fs::write(&vault, format!("pyapp_secrets:\n  secret_key: {SECRET}\n")).unwrap();
    let encrypt = Command::new(ansible.join("ansible-vault"))
        .arg("encrypt")
        .arg("--vault-password-file")
        .arg(password)
        .arg(&vault)
        .output()
        .unwrap();
    assert!(encrypt.status.success(), "{}", harness::stderr(&encrypt));
    let encrypted = std::fs::read_to_string(&vault).unwrap();
    assert!(encrypted.starts_with("$ANSIBLE_VAULT;1.1;AES256") && !encrypted.contains(SECRET));
}

/// What a task of the role reported in a run's log: `ok`, `changed`, `skipping`, `fatal`…
/// (its first result line after the task's header).
fn task_status<'a>(log: &'a str, task: &str) -> &'a str {
    let header = format!("TASK [pyapp : {task}]");
    let after = &log[log
        .find(&header)
        .unwrap_or_else(|| panic!("no task {header:?} in:\n{log}"))..];
    after
        .lines()
        .find_map(|line| {
            let (status, _) = line.split_once(": [localhost]")?;
            ["ok", "changed", "skipping", "fatal", "failed"]
                .contains(&status)
                .then_some(status)
        })
        .unwrap_or_else(|| panic!("no result for {header:?} in:\n{after}"))
}

/// The `changed=N` and `failed=N` counts of a run's PLAY RECAP.
fn recap(log: &str) -> (u32, u32) {
    let line = log
        .lines()
        .skip_while(|line| !line.starts_with("PLAY RECAP"))
        .find(|line| line.starts_with("localhost"))
        .unwrap_or_else(|| panic!("no PLAY RECAP in:\n{log}"));
    let count = |name: &str| -> u32 {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(name))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    (count("changed="), count("failed="))
}

/// Asserts that snapshot `after` lists what `before` does; shows the lines that differ.
fn assert_unchanged(out: &Path, before: &str, after: &str) {
    let (before_text, after_text) = (fact(out, before), fact(out, after));
    let gone: Vec<&str> = before_text
        .lines()
        .filter(|line| !after_text.lines().any(|other| other == *line))
        .collect();
    let new: Vec<&str> = after_text
        .lines()
        .filter(|line| !before_text.lines().any(|other| other == *line))
        .collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "{after} differs from {before}:\nbefore: {gone:#?}\nafter: {new:#?}"
    );
}

#[test]
fn role_installs_once_predicts_in_check_mode_and_keeps_the_vault_secret_out_of_its_output() {
    let ansible = ansible_bin();
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let keygen = Command::new(harness::bin("pyapp-build"))
        .args(["keygen", "--no-password", "-o"])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", harness::stderr(&keygen));
    let key = work.path().join("pyapp.pub");
    let v1 = hello_at(work.path(), "v1", "1.0.0", None);
    let v2 = hello_at(
        work.path(),
        "v2",
        "1.1.0",
        Some(&work.path().join("pyapp.key")),
    );
    let v2_unsigned = hello_at(work.path(), "v2-unsigned", "1.1.0", None);
    // The role copies pyapp-install here: the directory exists, the binary does not.
    let tool = work.path().join("bin/pyapp-install");
    std::fs::create_dir(work.path().join("bin")).unwrap();
    let password = work.path().join("vault-password");
    write_inventory(work.path(), &ansible, &v1, &tool, &password);
    let inventory = work.path().join("inventory/hosts.yml");
    let out = harness::run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [
            ansible.as_path(),
            &inventory,
            &harness::workspace().join("ansible/site.yml"),
            &password,
            &v2,
            &v2_unsigned,
            &key,
            &tool,
            &harness::bin("pyapp-install"),
        ],
    );
    let log = |name: &str| fact(&out, &format!("{name}.log"));

    // First run: pyapp-install copied to the host, the app installed and running.
    let install = log("install");
    assert_eq!(fact(&out, "install.rc"), "0", "{install}");
    assert_eq!(
        task_status(
            &install,
            &format!("Copy pyapp-install to {}", tool.display())
        ),
        "changed"
    );
    assert_eq!(fact(&out, "tool.mode"), "755");
    assert_eq!(
        fact(&out, "tool.cmp"),
        "0",
        "the copied pyapp-install differs"
    );
    assert_eq!(
        task_status(&install, "Run pyapp-install"),
        "changed",
        "{install}"
    );
    assert!(install.contains("hello 1.0.0 (release 1.0.0-"), "{install}");
    assert!(install.contains("): installed"), "{install}");
    assert_eq!(fact(&out, "install.active"), "active");
    let config = fact(&out, "install.config");
    assert!(config.contains("\ngreeting: Howdy\n"), "{config}");
    assert!(config.contains("\nworkers: 3\n"), "{config}");
    assert!(
        config.contains(&format!("\nsecret_key: {SECRET}")),
        "{config}"
    );
    assert!(fact(&out, "install.page").contains("<h1>Howdy, world!</h1>"));

    // Second run: nothing changed, nothing written.
    let again = log("again");
    assert_eq!(fact(&out, "again.rc"), "0", "{again}");
    assert_eq!(recap(&again), (0, 0), "{again}");
    assert_eq!(task_status(&again, "Run pyapp-install"), "ok");
    assert_eq!(
        task_status(&again, "Apply the configuration values to hello"),
        "ok"
    );
    assert_unchanged(&out, "installed.snapshot", "again.snapshot");

    // Check mode on the host as it is: nothing to change, the values compared equal.
    let same = log("check-same");
    assert_eq!(fact(&out, "check-same.rc"), "0", "{same}");
    assert_eq!(recap(&same), (0, 0), "{same}");
    assert_eq!(
        task_status(
            &same,
            "Compare the configuration values with the app's (check mode)"
        ),
        "ok"
    );

    // Check mode with a newer bundle, signed, and the key to trust: the bundle and the key
    // are staged for the dry run, which verifies the signature and predicts the upgrade;
    // nothing is written and the staging directory is gone.
    let check = log("check-upgrade");
    assert_eq!(fact(&out, "check-upgrade.rc"), "0", "{check}");
    assert!(recap(&check).0 > 0, "{check}");
    assert_eq!(task_status(&check, "Upload the trusted keys"), "changed");
    assert_eq!(
        task_status(
            &check,
            "Stage the bundle and the trusted keys for the dry run"
        ),
        "ok"
    );
    assert_eq!(
        task_status(&check, "Run pyapp-install --dry-run"),
        "changed"
    );
    assert!(
        check.contains("hello 1.1.0 (release 1.1.0-") && check.contains("): would be upgraded"),
        "{check}"
    );
    let installed = fact(&out, "installed.snapshot");
    assert!(installed.ends_with("\n0"), "{installed}");
    assert_unchanged(&out, "installed.snapshot", "check-upgrade.snapshot");

    // Check mode with a changed value: predicted, nothing written.
    let check = log("check-config");
    assert_eq!(fact(&out, "check-config.rc"), "0", "{check}");
    assert_eq!(recap(&check).0, 1, "{check}");
    assert_eq!(task_status(&check, "Run pyapp-install --dry-run"), "ok");
    assert!(
        check.contains("): unchanged; configuration would change"),
        "{check}"
    );
    assert_unchanged(&out, "installed.snapshot", "check-config.snapshot");

    // The changed value applied to the installed app, which now greets with it.
    let changed = log("config");
    assert_eq!(fact(&out, "config.rc"), "0", "{changed}");
    assert_eq!(recap(&changed), (1, 0), "{changed}");
    assert_eq!(
        task_status(&changed, "Apply the configuration values to hello"),
        "changed"
    );
    assert!(
        changed.contains("): unchanged; configuration changed: greeting"),
        "{changed}"
    );
    let config = fact(&out, "config.config");
    assert!(config.contains("\ngreeting: Hi there\n"), "{config}");
    assert!(
        config.contains(&format!("\nsecret_key: {SECRET}")),
        "{config}"
    );
    assert!(fact(&out, "config.page").contains("<h1>Hi there, world!</h1>"));

    // A refusal (an unsigned bundle where a key is trusted) shows pyapp-install's message
    // and hint, although the task carrying the secret hides its own output.
    let refused = log("refused");
    assert_ne!(fact(&out, "refused.rc"), "0", "{refused}");
    assert_eq!(recap(&refused).1, 1, "{refused}");
    assert!(
        refused.contains("pyapp-install exited with status 1"),
        "{refused}"
    );
    assert!(
        refused.contains("not signed, and this server requires signed bundles"),
        "{refused}"
    );
    assert!(
        refused.contains("hint: build it with `pyapp-build --sign KEY`"),
        "{refused}"
    );
    assert!(fact(&out, "refused.current").starts_with("releases/1.0.0-"));

    // The upgrade: the new release answers, and only its bundle is kept on the host.
    let upgrade = log("upgrade");
    assert_eq!(fact(&out, "upgrade.rc"), "0", "{upgrade}");
    assert_eq!(task_status(&upgrade, "Run pyapp-install"), "changed");
    assert_eq!(
        task_status(&upgrade, "Remove the app's other bundles"),
        "changed"
    );
    assert!(fact(&out, "upgrade.current").starts_with("releases/1.1.0-"));
    assert_eq!(fact(&out, "upgrade.bundles"), "hello-1.1.0.pyapp");
    assert!(fact(&out, "upgrade.health").contains("\"version\":\"1.1.0\""));

    // The secret was in every run's variables and in no run's output (at -vvv).
    for name in [
        "install",
        "again",
        "check-same",
        "check-upgrade",
        "check-config",
        "config",
        "refused",
        "upgrade",
    ] {
        assert!(
            !log(name).contains(SECRET),
            "the secret is in the output of {name}"
        );
    }
}
