//! The name allowlists of FORMAT.md 2.1, as validating newtypes.
//!
//! Names end up in unit file names, user names, paths and config files, so each kind has a
//! strict allowlist checked when the YAML is read; a value of one of these types is known good.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A name that does not follow its allowlist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind} (expected {rule})")]
pub struct NameError {
    /// What the name is for, e.g. `name`, `directory name`.
    pub kind: &'static str,
    /// The refused value.
    pub value: String,
    /// The allowlist, e.g. `[a-z][a-z0-9-]{0,31}`.
    pub rule: &'static str,
}

/// Defines a `String` newtype whose constructor and `Deserialize` run `$check`.
macro_rules! validated_name {
    ($(#[$doc:meta])* $type:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $type(String);

        impl $type {
            pub fn new(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                $check(&value)?;
                Ok($type(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $type {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, NameError> {
                $type::new(value)
            }
        }

        impl From<$type> for String {
            fn from(name: $type) -> String {
                name.0
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_name!(
    /// An app name: the app's directory, user and unit prefix (`hello`).
    AppName,
    check_name
);
validated_name!(
    /// A service or task name; services and tasks share the unit namespace `APP-NAME`.
    UnitName,
    check_name
);
validated_name!(
    /// A directory the app may write to, created under `data/`.
    WritableDirName,
    check_writable_dir_name
);
validated_name!(
    /// A key of configuration.yaml (and of the installed config file).
    ConfigKey,
    check_config_key
);
validated_name!(
    /// A Python module name (an identifier): the app's package, a system module.
    PythonModule,
    check_python_module
);
validated_name!(
    /// A Debian binary package name, checked with dpkg before install.
    DebianPackage,
    check_debian_package
);

const NAME_RULE: &str = "[a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\"";

/// App, service and task names: `[a-z][a-z0-9-]{0,31}`, not ending in `-`, no `--`.
pub fn check_name(value: &str) -> Result<(), NameError> {
    let valid = starts_with(value, |c| c.is_ascii_lowercase())
        && value.len() <= 32
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.ends_with('-')
        && !value.contains("--");
    refuse_unless(valid, "name", value, NAME_RULE)
}

/// Writable directory names: `[a-z0-9][a-z0-9._-]{0,63}`, and so never `.` or `..`.
pub fn check_writable_dir_name(value: &str) -> Result<(), NameError> {
    let valid = starts_with(value, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    refuse_unless(valid, "directory name", value, "[a-z0-9][a-z0-9._-]{0,63}")
}

/// Configuration keys: `[A-Za-z][A-Za-z0-9_]{0,63}`, in whatever case the app reads them
/// (`secret_key`, `SECRET_KEY`, `SecretKey`).
pub fn check_config_key(value: &str) -> Result<(), NameError> {
    let valid = starts_with(value, |c| c.is_ascii_alphabetic())
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    refuse_unless(
        valid,
        "configuration key",
        value,
        "[A-Za-z][A-Za-z0-9_]{0,63}",
    )
}

/// Python module names: ASCII identifiers, `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_python_module(value: &str) -> Result<(), NameError> {
    let valid = starts_with(value, |c| c.is_ascii_alphabetic() || c == '_')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    refuse_unless(valid, "Python module name", value, "[A-Za-z_][A-Za-z0-9_]*")
}

/// Debian package names: `[a-z0-9][a-z0-9+.-]+`.
pub fn check_debian_package(value: &str) -> Result<(), NameError> {
    let valid = starts_with(value, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value.len() >= 2
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '-'));
    refuse_unless(valid, "Debian package name", value, "[a-z0-9][a-z0-9+.-]+")
}

/// Python distribution names (PEP 508): ASCII letters, digits, `.`, `_` and `-`, starting
/// and ending with a letter or digit.
pub fn check_dist_name(value: &str) -> Result<(), NameError> {
    refuse_unless(
        crate::wheel_name::is_valid_distribution_name(value),
        "Python distribution name",
        value,
        "letters, digits, \".\", \"_\" and \"-\", starting and ending with a letter or digit",
    )
}

fn starts_with(value: &str, first: impl Fn(char) -> bool) -> bool {
    value.chars().next().is_some_and(first)
}

fn refuse_unless(
    valid: bool,
    kind: &'static str,
    value: &str,
    rule: &'static str,
) -> Result<(), NameError> {
    if valid {
        Ok(())
    } else {
        Err(NameError {
            kind,
            value: value.to_owned(),
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(result: Result<(), NameError>) -> String {
        match result {
            Ok(()) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn app_and_unit_names() {
        for good in ["hello", "a", "web-2", "x2345678901234567890123456789012"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Web",
            "2web",
            "web-",
            "we--b",
            "we_b",
            "web.1",
            "-web",
            "wéb",
            "x23456789012345678901234567890123",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            refusal(check_name("Web")),
            "\"Web\" is not a valid name (expected [a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\")"
        );
        assert_eq!(
            refusal(check_name("a\nb")),
            "\"a\\nb\" is not a valid name (expected [a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\")"
        );
    }

    #[test]
    fn writable_dir_names() {
        for good in ["sessions", "cache.v2", "0", "a_b-c"] {
            assert_eq!(check_writable_dir_name(good), Ok(()), "{good}");
        }
        for bad in [".", "..", ".hidden", "a/b", "Cache", "", &"a".repeat(65)] {
            assert!(check_writable_dir_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            refusal(check_writable_dir_name("..")),
            "\"..\" is not a valid directory name (expected [a-z0-9][a-z0-9._-]{0,63})"
        );
    }

    #[test]
    fn config_keys() {
        assert_eq!(check_config_key("secret_key"), Ok(()));
        assert_eq!(
            refusal(check_config_key("site-title")),
            "\"site-title\" is not a valid configuration key (expected [A-Za-z][A-Za-z0-9_]{0,63})"
        );
        assert!(check_config_key("_x").is_err());
    }

    #[test]
    fn python_modules_and_debian_packages() {
        assert_eq!(check_python_module("_Apt2"), Ok(()));
        assert_eq!(
            refusal(check_python_module("hello.web")),
            "\"hello.web\" is not a valid Python module name (expected [A-Za-z_][A-Za-z0-9_]*)"
        );
        assert_eq!(check_debian_package("libstdc++6"), Ok(()));
        assert_eq!(check_debian_package("python3.11-venv"), Ok(()));
        assert_eq!(
            refusal(check_debian_package("x")),
            "\"x\" is not a valid Debian package name (expected [a-z0-9][a-z0-9+.-]+)"
        );
        assert!(check_debian_package("libpq5;rm").is_err());
    }

    #[test]
    fn dist_names_and_normalisation() {
        assert_eq!(check_dist_name("Flask_SQLAlchemy"), Ok(()));
        assert!(check_dist_name("flask-").is_err());
        assert!(check_dist_name("fl ask").is_err());
    }

    #[test]
    fn newtype_deserialisation_validates() {
        let name: AppName = serde_json::from_str("\"hello\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_str(), "hello");
        let refused = serde_json::from_str::<AppName>("\"Hello\"").map_err(|e| e.to_string());
        assert_eq!(
            refused.err().as_deref(),
            Some("\"Hello\" is not a valid name (expected [a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\")")
        );
    }
}
