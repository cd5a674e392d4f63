//! The completeness check: starting from the app's own wheel, every `Requires-Dist` whose
//! marker holds on the target (extras included) must be satisfied by a pinned wheel, so a
//! bundle that could not install is refused in CI rather than on the server.

use pep508_rs::{ExtraName, MarkerEnvironment, Requirement, VersionOrUrl};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::wheels::ChosenWheel;
use crate::Refusal;

/// What the check found besides errors: pinned wheels nothing requires.
pub struct Closure {
    pub unused: Vec<String>,
}

/// Check that `wheels` (the app's own included) is a complete set for `app`.
pub fn check(
    app: &ChosenWheel,
    wheels: &[ChosenWheel],
    env: &MarkerEnvironment,
) -> anyhow::Result<Closure> {
    let by_name: BTreeMap<&str, &ChosenWheel> = wheels.iter().map(|w| (w.name.name(), w)).collect();
    let requirements: BTreeMap<&str, &Vec<Requirement>> = wheels
        .iter()
        .map(|w| (w.name.name(), &w.contents.requires_dist))
        .collect();
    let mut problems = Vec::new();
    let mut visited: BTreeSet<(String, Vec<ExtraName>)> = BTreeSet::new();
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut queue = VecDeque::from([(app.name.name().to_string(), Vec::<ExtraName>::new())]);
    while let Some((name, extras)) = queue.pop_front() {
        if !visited.insert((name.clone(), extras.clone())) {
            continue;
        }
        let Some(wheel) = by_name.get(name.as_str()) else {
            continue;
        };
        reached.insert(wheel.name.name());
        for requirement in requirements
            .get(name.as_str())
            .into_iter()
            .copied()
            .flatten()
        {
            if !requirement.evaluate_markers(env, &extras) {
                continue;
            }
            let wanted = pyapp_bundle::wheel_name::normalize_name(requirement.name.as_ref());
            let Some(provider) = by_name.get(wanted.as_str()) else {
                problems.push(format!(
                    "{} requires `{requirement}`, which is not pinned",
                    wheel.name.file_name()
                ));
                continue;
            };
            if let Some(VersionOrUrl::VersionSpecifier(specifiers)) = &requirement.version_or_url {
                if !specifiers.contains(provider.name.version()) {
                    problems.push(format!(
                        "{} requires `{requirement}`, but {}=={} is pinned",
                        wheel.name.file_name(),
                        wanted,
                        provider.name.version()
                    ));
                }
            }
            let mut sub_extras = requirement.extras.clone();
            sub_extras.sort();
            queue.push_back((wanted, sub_extras));
        }
    }
    if !problems.is_empty() {
        return Err(Refusal::new(format!(
            "the pinned dependencies are incomplete: {}",
            problems.join("; ")
        ))
        .with_hint(
            "pin the whole closure: uv pip compile pyproject.toml -o pinned-requirements.txt",
        )
        .into());
    }
    let unused = wheels
        .iter()
        .map(|w| w.name.name())
        .filter(|name| !reached.contains(name))
        .map(str::to_string)
        .collect();
    Ok(Closure { unused })
}
