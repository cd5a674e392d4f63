//! The Debian packages an app needs at run time (`system.packages`, FORMAT.md 3.1), checked
//! against dpkg's own record of what is installed under the root (`var/lib/dpkg/status`)
//! before anything is written: reading the file asks nothing of dpkg and works the same
//! for `/` and for an image under `--root`.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;
use pyapp_bundle::names::DebianPackage;
use pyapp_cli::Refusal;

use crate::progress::Progress;

/// dpkg's database of installed packages, under the root.
const DPKG_STATUS: &str = "var/lib/dpkg/status";

/// Refuses, naming every one and the command that installs them, when a package of
/// `required` is not installed under `root`. Without a dpkg database there (a root that is
/// not Debian's) nothing can be checked, which is said as a warning.
pub fn check(
    root: &Path,
    app: &str,
    required: &[DebianPackage],
    progress: &dyn Progress,
) -> Result<()> {
    if required.is_empty() {
        return Ok(());
    }
    let status_path = root.join(DPKG_STATUS);
    let Some(bytes) = pyapp_fs::read_optional(&status_path)? else {
        progress.warning(&format!(
            "cannot check the Debian packages {app} needs ({}): `{}` does not exist",
            names(required.iter().map(|p| p.as_str())),
            status_path.display()
        ));
        return Ok(());
    };
    let status = String::from_utf8_lossy(&bytes);
    let installed = installed_packages(&status);
    let missing: Vec<&str> = required
        .iter()
        .map(|package| package.as_str())
        .filter(|package| !installed.contains(*package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let hint = format!("apt-get install {}", missing.join(" "));
    Err(Refusal::new(format!(
        "{app} needs the Debian package{} {}, not installed{}",
        if missing.len() == 1 { "" } else { "s" },
        names(missing.iter().copied()),
        under(root)
    ))
    .with_hint(hint)
    .into())
}

/// `libpq5, libxml2`.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// ` under ROOT` when the root is not `/`.
fn under(root: &Path) -> String {
    if root == Path::new("/") {
        String::new()
    } else {
        format!(" under {}", root.display())
    }
}

/// The names of the packages dpkg's `status` file records as installed: the paragraphs
/// whose `Status:` ends in `installed` (not `config-files`, `half-installed`, …).
fn installed_packages(status: &str) -> BTreeSet<&str> {
    let mut installed = BTreeSet::new();
    for paragraph in status.split("\n\n") {
        let mut package = None;
        let mut is_installed = false;
        for line in paragraph.lines() {
            if let Some(name) = line.strip_prefix("Package:") {
                package = Some(name.trim());
            } else if let Some(state) = line.strip_prefix("Status:") {
                is_installed = state.split_whitespace().nth(2) == Some("installed");
            }
        }
        if let (Some(package), true) = (package, is_installed) {
            installed.insert(package);
        }
    }
    installed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    const STATUS: &str = "Package: libpq5\nStatus: install ok installed\nArchitecture: amd64\n\n\
        Package: libxml2\nStatus: deinstall ok config-files\n\n\
        Package: zlib1g\nStatus: install ok half-installed\n\n\
        Package: tzdata\nStatus: install ok installed\n";

    #[test]
    fn only_fully_installed_packages_count() {
        let installed = installed_packages(STATUS);
        assert_eq!(
            installed.into_iter().collect::<Vec<_>>(),
            ["libpq5", "tzdata"]
        );
    }

    fn packages(names: &[&str]) -> Vec<DebianPackage> {
        names
            .iter()
            .map(|name| serde_json::from_value(serde_json::json!(name)).unwrap())
            .collect()
    }

    #[test]
    fn missing_packages_are_refused_by_name_with_the_apt_get_line() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(root.path().join(DPKG_STATUS), STATUS).unwrap();
        let required = packages(&["libpq5", "libxml2", "no-such-package-xyz"]);
        let err = check(root.path(), "hello", &required, &Silent).unwrap_err();
        let refusal = err.downcast_ref::<Refusal>().unwrap();
        assert!(
            refusal
                .to_string()
                .starts_with("hello needs the Debian packages libxml2, no-such-package-xyz, not installed under "),
            "{refusal}"
        );
        assert_eq!(
            refusal.hint(),
            Some("apt-get install libxml2 no-such-package-xyz")
        );
        check(
            root.path(),
            "hello",
            &packages(&["libpq5", "tzdata"]),
            &Silent,
        )
        .unwrap();
    }

    #[test]
    fn a_root_without_dpkg_cannot_be_checked_and_is_not_refused() {
        let root = tempfile::tempdir().unwrap();
        check(root.path(), "hello", &packages(&["libpq5"]), &Silent).unwrap();
    }
}
