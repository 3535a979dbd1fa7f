//! npm package specs: name and version checks, and the package set a flow needs, merged from
//! `config.bundle.packages` and the steps' `package` fields the way the original bundler
//! merges them (a bundle pin wins over an inline `@version`, local paths get a synthetic key).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{ConfigErrorKind, Diagnostics};

/// The collector every flow with sources or destinations needs.
pub const COLLECTOR_PACKAGE: &str = "@walkeros/collector";

/// One npm package (or local package directory) the bundler has to provide.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageSpec {
    /// npm name, or for a step's local path the synthetic key derived from it.
    pub name: String,
    /// npm version range or dist-tag; `None` means `latest`.
    pub version_range: Option<String>,
    /// Local directory to use instead of the registry, resolved against the config file's
    /// directory.
    pub path: Option<PathBuf>,
    /// Named exports the bundle imports from the package (`bundle.packages.<n>.imports`).
    pub imports: Vec<String>,
}

/// A step's `package` field as written, with the JSON path for errors.
#[derive(Debug, Clone)]
pub(crate) struct StepPackage {
    pub spec: String,
    pub json_path: String,
}

/// Merges the bundle's package list with the steps' packages.
///
/// Returns the final list and, for each step spec as written, the package name it refers to
/// (`@walkeros/x@1.2.3` maps to `@walkeros/x`, `./local` to its synthetic key).
pub(crate) fn merge_step_packages(
    mut packages: Vec<PackageSpec>,
    steps: &[StepPackage],
    needs_collector: bool,
    config_dir: &Path,
    diag: &mut Diagnostics,
) -> (Vec<PackageSpec>, HashMap<String, String>) {
    // Mirrors the original: the collector is added after the bundle's own entries.
    if needs_collector && !packages.iter().any(|p| p.name == COLLECTOR_PACKAGE) {
        packages.push(PackageSpec {
            name: COLLECTOR_PACKAGE.to_string(),
            version_range: None,
            path: None,
            imports: Vec::new(),
        });
    }

    // A bundle entry with a version or a path is a pin; captured before inline versions fill
    // unversioned entries, so a fill-in is never mistaken for a pin.
    let pinned: HashMap<String, bool> = packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version_range.is_some() || p.path.is_some(),
            )
        })
        .collect();
    let mut inline_seen: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();

    for step in steps {
        if names.contains_key(&step.spec) {
            continue;
        }
        if step.spec.starts_with('.') || step.spec.starts_with('/') {
            let key = package_variable_name(&step.spec);
            if !packages.iter().any(|p| p.name == key) {
                packages.push(PackageSpec {
                    name: key.clone(),
                    version_range: None,
                    path: Some(config_dir.join(&step.spec)),
                    imports: Vec::new(),
                });
            }
            names.insert(step.spec.clone(), key);
            continue;
        }

        let (name, version) = split_package_spec(&step.spec);
        if !is_package_name(name) {
            diag.error(
                &step.json_path,
                ConfigErrorKind::InvalidPackageName {
                    name: name.to_string(),
                },
            );
            continue;
        }
        if let Some(version) = version
            && let Err(reason) = check_version_spec(version)
        {
            diag.error(
                &step.json_path,
                ConfigErrorKind::InvalidVersion {
                    package: name.to_string(),
                    version: version.to_string(),
                    reason,
                },
            );
            continue;
        }
        names.insert(step.spec.clone(), name.to_string());

        let has_pin = pinned.get(name).copied().unwrap_or(false);
        if let Some(version) = version
            && !has_pin
        {
            match inline_seen.get(name) {
                Some(first) if first != version => {
                    diag.error(
                        &step.json_path,
                        ConfigErrorKind::ConflictingInlineVersions {
                            package: name.to_string(),
                            first: first.clone(),
                            second: version.to_string(),
                        },
                    );
                    continue;
                }
                _ => {
                    inline_seen.insert(name.to_string(), version.to_string());
                }
            }
        }

        match packages.iter_mut().find(|p| p.name == name) {
            None => packages.push(PackageSpec {
                name: name.to_string(),
                version_range: version.map(str::to_string),
                path: None,
                imports: Vec::new(),
            }),
            Some(existing) => {
                if let Some(version) = version
                    && existing.path.is_none()
                {
                    match &existing.version_range {
                        None => existing.version_range = Some(version.to_string()),
                        Some(pin) if pin != version => diag.warn(
                            &step.json_path,
                            format!(
                                "config.bundle.packages pins {name} to {pin}; the step declares \
                                 {version} inline; using the bundle pin"
                            ),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    (packages, names)
}

/// Splits `@scope/pkg@1.2.3` into name and version at the last `@` that is not the scope's.
/// A trailing `@` is dropped.
pub fn split_package_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.rfind('@') {
        None | Some(0) => (spec, None),
        Some(at) => {
            let version = &spec[at + 1..];
            (&spec[..at], (!version.is_empty()).then_some(version))
        }
    }
}

/// True for a name the original accepts in `bundle.packages`:
/// `^(@[a-z0-9-~][a-z0-9-._~]*/)?[a-z0-9-~][a-z0-9-._~]*$`.
pub fn is_package_name(name: &str) -> bool {
    fn is_part(part: &str) -> bool {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '~')
            && chars.all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_' | '~')
            })
    }
    match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, bare)) => is_part(scope) && is_part(bare),
            None => false,
        },
        None => is_part(name),
    }
}

/// Checks an npm version spec: a dist-tag such as `latest`, or a semver range in npm's grammar
/// (`1.2.3`, `^1.2`, `~1.2.3`, `>=1 <2`, `1.x`, `1.2.3 - 2.0.0`, `a || b`).
pub fn check_version_spec(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("it is empty".to_string());
    }
    if is_dist_tag(spec) {
        return Ok(());
    }
    for alternative in spec.split("||") {
        let alternative = alternative.trim();
        if alternative.is_empty() {
            return Err("one side of \"||\" is empty".to_string());
        }
        let comparators = match alternative.split_once(" - ") {
            Some((low, high)) => format!(">={}, <={}", strip_v(low.trim()), strip_v(high.trim())),
            None => npm_comparators(alternative),
        };
        semver::VersionReq::parse(&comparators).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A dist-tag: starts with a letter, no range characters, and is not a wildcard or a
/// `v`-prefixed version.
fn is_dist_tag(spec: &str) -> bool {
    let mut chars = spec.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = spec
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let is_wildcard = spec.eq_ignore_ascii_case("x");
    let is_version =
        spec.starts_with(['v', 'V']) && spec[1..].starts_with(|c: char| c.is_ascii_digit());
    first_ok && rest_ok && !is_wildcard && !is_version
}

/// Rewrites npm's space-separated comparator set into the comma-separated form of the
/// `semver` crate: `>= 1.2.3 <2` becomes `>=1.2.3, <2`, `~>1.2` becomes `~1.2`.
fn npm_comparators(set: &str) -> String {
    const OPERATORS: &[&str] = &["~>", ">=", "<=", ">", "<", "=", "~", "^"];
    let mut out: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for token in set.split_whitespace() {
        if OPERATORS.contains(&token) {
            pending_op.push_str(token);
            continue;
        }
        let op_len = OPERATORS
            .iter()
            .find(|op| token.starts_with(**op))
            .map_or(0, |op| op.len());
        let mut op = std::mem::take(&mut pending_op);
        op.push_str(&token[..op_len]);
        let op = if op == "~>" { "~".to_string() } else { op };
        out.push(format!("{op}{}", strip_v(&token[op_len..])));
    }
    if !pending_op.is_empty() {
        out.push(pending_op);
    }
    out.join(", ")
}

fn strip_v(version: &str) -> &str {
    version
        .strip_prefix('v')
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(version)
}

/// The variable name the original bundler derives from a package name for its default import:
/// `@walkeros/server-destination-api` becomes `_walkerosServerDestinationApi`. Also the key
/// under which a step's local package path is listed.
pub fn package_variable_name(package: &str) -> String {
    let scoped = package.starts_with('@');
    let normalized = package.replacen('@', "", 1).replace(['/', '-'], "_");
    let mut out = String::new();
    for (i, part) in normalized.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    if scoped { format!("_{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_the_original_pattern() {
        for ok in [
            "@walkeros/collector",
            "express",
            "lodash.merge",
            "@a/b-c_d~e",
            "~tilde",
            "1package",
        ] {
            assert!(is_package_name(ok), "{ok}");
        }
        for bad in [
            "",
            "@walkeros",
            "@walkeros/",
            "@/x",
            "Express",
            "@walkeros/Destination",
            ".hidden",
            "_under",
            "a b",
            "@a/b/c",
            "@walkeros/x@1.2.3",
        ] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }

    #[test]
    fn version_specs_accept_npm_ranges_and_tags() {
        for ok in [
            "4.2.1",
            "^4.2.0",
            "~4.2",
            "4.x",
            "*",
            "x",
            ">=1.2.3 <2.0.0",
            ">= 1.2.3 < 2",
            "1.2.3 - 2.3.4",
            "^1 || ^2",
            "v1.2.3",
            "~>1.2",
            "1.0.0-beta.1",
            "latest",
            "next",
            "canary-2026",
        ] {
            assert_eq!(check_version_spec(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "1.2.3.4", "^1.2.3.4", "01.2.3", ">=", "1 ||", ">=banana", "1.2.3 -",
        ] {
            assert!(check_version_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inline_versions_split_at_the_last_at_sign() {
        assert_eq!(
            split_package_spec("@walkeros/x@1.2.3"),
            ("@walkeros/x", Some("1.2.3"))
        );
        assert_eq!(split_package_spec("@walkeros/x"), ("@walkeros/x", None));
        assert_eq!(split_package_spec("pkg@^2"), ("pkg", Some("^2")));
        assert_eq!(split_package_spec("pkg@"), ("pkg", None));
    }

    #[test]
    fn variable_names_match_the_original_bundler() {
        assert_eq!(
            package_variable_name("@walkeros/server-destination-api"),
            "_walkerosServerDestinationApi"
        );
        assert_eq!(package_variable_name("express"), "express");
        assert_eq!(package_variable_name("./my-dest"), ".MyDest");
    }

    fn step(spec: &str) -> StepPackage {
        StepPackage {
            spec: spec.into(),
            json_path: format!("flows.f.sources.{spec}"),
        }
    }

    #[test]
    fn bundle_pins_win_and_inline_versions_fill_unversioned_entries() {
        let bundle = vec![
            PackageSpec {
                name: "@walkeros/a".into(),
                version_range: Some("1.0.0".into()),
                path: None,
                imports: vec![],
            },
            PackageSpec {
                name: "@walkeros/b".into(),
                version_range: None,
                path: None,
                imports: vec![],
            },
        ];
        let mut diag = Diagnostics::new(Path::new("f.json"));
        let (packages, names) = merge_step_packages(
            bundle,
            &[
                step("@walkeros/a@2.0.0"),
                step("@walkeros/b@3.0.0"),
                step("./local-x"),
            ],
            true,
            Path::new("conf"),
            &mut diag,
        );
        let versions: Vec<_> = packages
            .iter()
            .map(|p| (p.name.as_str(), p.version_range.as_deref()))
            .collect();
        assert_eq!(
            versions,
            [
                ("@walkeros/a", Some("1.0.0")),
                ("@walkeros/b", Some("3.0.0")),
                ("@walkeros/collector", None),
                (".LocalX", None),
            ]
        );
        assert_eq!(
            packages[3].path.as_deref(),
            Some(Path::new("conf/./local-x"))
        );
        assert_eq!(names["@walkeros/a@2.0.0"], "@walkeros/a");
        assert_eq!(
            diag.finish().unwrap().len(),
            1,
            "the overridden inline pin is warned about"
        );
    }

    #[test]
    fn different_inline_versions_without_a_pin_conflict() {
        let mut diag = Diagnostics::new(Path::new("f.json"));
        merge_step_packages(
            vec![],
            &[step("x@1.0.0"), step("x@2.0.0")],
            false,
            Path::new("."),
            &mut diag,
        );
        let errors = diag.finish().unwrap_err();
        assert!(matches!(
            errors.errors()[0].kind,
            ConfigErrorKind::ConflictingInlineVersions { .. }
        ));
    }
}
