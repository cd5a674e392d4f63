//! Which bundle may replace an app's current release (FORMAT.md 6.5). Every install
//! refuses a downgrade unless `--allow-downgrade`; `pyapp-install watch` also follows the
//! update policy of the release that is *installed* (what the admin accepted, which a new
//! bundle cannot widen): `always-latest` takes any version that is not lower, `same-major`
//! refuses a new major version unless `--allow-major`, `manual` only stages the release.
//! [`decide`] is the pure rule; [`gate`] feeds it from the app's receipt.

use std::str::FromStr;

use anyhow::{Context, Result};
use pep440_rs::Version;
use pyapp_bundle::metadata::Policy;

use crate::app::installed::ReleaseInfo;
use crate::app::receipt::Receipt;
use crate::app::tree::AppTree;
use pyapp_cli::Refusal;

/// What an accepted bundle's install does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Build the release (unless on disk) and switch to it: the whole install.
    Activate,
    /// Build the release and record it as staged; `current` and the units stay as they are.
    Stage,
}

/// The rules an install follows, from its command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Follow the installed release's `update.policy` (set by `watch`).
    pub follow_policy: bool,
    /// With `follow_policy`: take a new major version under `same-major`.
    pub allow_major: bool,
    /// Take a version lower than the current one.
    pub allow_downgrade: bool,
    /// Stage, never activate (`--stage-only`).
    pub stage_only: bool,
}

/// The app's current release as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub version: Version,
    /// The `update.policy` of the current release's metadata.yaml.
    pub policy: Policy,
}

/// What installing `incoming` over the app's `current` release (none: a first install)
/// does under `rules`, or why it is refused.
pub fn decide(
    app: &str,
    current: Option<&Current>,
    incoming: &Version,
    rules: Rules,
) -> Result<Step, Refusal> {
    let Some(current) = current else {
        if rules.stage_only {
            return Err(Refusal::new(format!(
                "{app} is not installed: --stage-only stages a release beside a current one"
            ))
            .with_hint("install its first bundle without --stage-only"));
        }
        // A first install replaces nothing: every policy installs it.
        return Ok(Step::Activate);
    };
    let from = &current.version;
    if incoming < from && !rules.allow_downgrade {
        return Err(Refusal::new(format!(
            "refusing to downgrade {app} from {from} to {incoming}"
        ))
        .with_hint(format!(
            "`pyapp-install rollback {app}` returns to the previous release; to install this \
             older bundle anyway, add --allow-downgrade"
        )));
    }
    if rules.follow_policy {
        match current.policy {
            Policy::Manual => return Ok(Step::Stage),
            Policy::SameMajor if major(incoming) > major(from) && !rules.allow_major => {
                return Err(Refusal::new(format!(
                    "refusing to upgrade {app} from {from} to {incoming}: a new major version, \
                     and {app}'s update policy is same-major"
                ))
                .with_hint(
                    "install it by hand with `pyapp-install BUNDLE`, or let watch take major \
                     upgrades with --allow-major",
                ));
            }
            Policy::SameMajor | Policy::AlwaysLatest => {}
        }
    }
    Ok(if rules.stage_only {
        Step::Stage
    } else {
        Step::Activate
    })
}

/// The major version: the epoch, then the first release segment (`1!2.3` is `(1, 2)`).
fn major(version: &Version) -> (u64, u64) {
    (
        version.epoch(),
        version.release().first().copied().unwrap_or(0),
    )
}

/// [`decide`] for the bundle of `incoming` and the app of `tree`, whose receipt (if any)
/// is `previous`: the current release's policy is read from its metadata.yaml only when
/// the rules follow it.
pub fn gate(
    tree: &AppTree,
    previous: Option<&Receipt>,
    incoming: &Version,
    rules: Rules,
) -> Result<Step> {
    let current = match previous {
        Some(receipt) => {
            let version = Version::from_str(&receipt.version).with_context(|| {
                format!(
                    "`{}` records the version {:?}, which is not a PEP 440 version",
                    tree.receipt_path().display(),
                    receipt.version
                )
            })?;
            let policy = if rules.follow_policy {
                ReleaseInfo::of_receipt(tree, receipt, &receipt.release)?
                    .metadata
                    .update
                    .policy
            } else {
                Policy::default()
            };
            Some(Current { version, policy })
        }
        None => None,
    };
    Ok(decide(tree.name(), current.as_ref(), incoming, rules)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::from_str(text).unwrap()
    }

    fn current(version: &str, policy: Policy) -> Current {
        Current {
            version: v(version),
            policy,
        }
    }

    const WATCH: Rules = Rules {
        follow_policy: true,
        allow_major: false,
        allow_downgrade: false,
        stage_only: false,
    };

    fn watch(current: &Current, incoming: &str) -> Result<Step, String> {
        decide("hello", Some(current), &v(incoming), WATCH).map_err(|err| err.to_string())
    }

    #[test]
    fn a_first_install_is_taken_whatever_the_policy() {
        assert_eq!(
            decide("hello", None, &v("7.0"), WATCH).unwrap(),
            Step::Activate
        );
        let refused = decide(
            "hello",
            None,
            &v("1.0"),
            Rules {
                stage_only: true,
                ..Rules::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "hello is not installed: --stage-only stages a release beside a current one"
        );
    }

    #[test]
    fn same_major_takes_minor_upgrades_and_rebuilds_but_not_a_new_major() {
        let installed = current("1.2.0", Policy::SameMajor);
        assert_eq!(watch(&installed, "1.3.0"), Ok(Step::Activate));
        assert_eq!(watch(&installed, "1.99.0rc1"), Ok(Step::Activate));
        // The same version from another bundle: a rebuild, not a downgrade.
        assert_eq!(watch(&installed, "1.2.0"), Ok(Step::Activate));
        assert_eq!(watch(&installed, "1.2.0.post1"), Ok(Step::Activate));
        let refused = watch(&installed, "2.0.0").unwrap_err();
        assert_eq!(
            refused,
            "refusing to upgrade hello from 1.2.0 to 2.0.0: a new major version, and hello's \
             update policy is same-major"
        );
        assert!(watch(&installed, "2.0.0a1").is_err());
        // An epoch outranks every release number.
        assert!(watch(&installed, "1!1.2.1").is_err());
        let allowed = Rules {
            allow_major: true,
            ..WATCH
        };
        assert_eq!(
            decide("hello", Some(&installed), &v("2.0.0"), allowed).unwrap(),
            Step::Activate
        );
    }

    #[test]
    fn always_latest_takes_new_majors() {
        let installed = current("1.2.0", Policy::AlwaysLatest);
        assert_eq!(watch(&installed, "2.0.0"), Ok(Step::Activate));
        assert_eq!(watch(&installed, "10.0"), Ok(Step::Activate));
    }

    #[test]
    fn manual_only_stages() {
        let installed = current("1.2.0", Policy::Manual);
        assert_eq!(watch(&installed, "1.2.1"), Ok(Step::Stage));
        assert_eq!(watch(&installed, "3.0.0"), Ok(Step::Stage));
        assert!(
            watch(&installed, "1.1.0").is_err(),
            "a downgrade is not staged"
        );
    }

    #[test]
    fn a_downgrade_needs_allow_downgrade_under_every_policy_and_without_one() {
        for policy in [Policy::AlwaysLatest, Policy::SameMajor, Policy::Manual] {
            let installed = current("2.1.0", policy);
            let refused = watch(&installed, "2.0.9").unwrap_err();
            assert_eq!(refused, "refusing to downgrade hello from 2.1.0 to 2.0.9");
            assert!(
                watch(&installed, "2.1.0rc1").is_err(),
                "a pre-release is lower"
            );
            let allowed = Rules {
                allow_downgrade: true,
                ..WATCH
            };
            let expected = if policy == Policy::Manual {
                Step::Stage
            } else {
                Step::Activate
            };
            // Down across a major version too: that is a downgrade, not a major upgrade.
            assert_eq!(
                decide("hello", Some(&installed), &v("1.0.0"), allowed).unwrap(),
                expected
            );
        }
        // A plain install ignores the policy but not the version order.
        let by_hand = Rules::default();
        let installed = current("2.1.0", Policy::Manual);
        assert_eq!(
            decide("hello", Some(&installed), &v("3.0.0"), by_hand).unwrap(),
            Step::Activate
        );
        assert!(decide("hello", Some(&installed), &v("2.0.0"), by_hand).is_err());
    }

    #[test]
    fn stage_only_stages_what_would_be_installed() {
        let installed = current("1.0.0", Policy::SameMajor);
        let staging = Rules {
            stage_only: true,
            ..Rules::default()
        };
        assert_eq!(
            decide("hello", Some(&installed), &v("2.0.0"), staging).unwrap(),
            Step::Stage
        );
        assert!(decide("hello", Some(&installed), &v("0.9.0"), staging).is_err());
    }
}
