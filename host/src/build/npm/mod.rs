//! The npm client of the build pipeline: turns a flow's package list into a `node_modules`
//! tree that esbuild can bundle from, without Node or the npm CLI.
//!
//! [`Resolver::resolve`] reads the registry named by the standard npm configuration
//! ([`NpmConfig`]), picks versions with npm's range rules, lays the dependency tree out the way
//! npm hoists it, and downloads, verifies and unpacks every tarball into a content-addressed
//! [`Store`] under the cache directory. It remembers each answer in a resolution index, so a
//! later build with the same packages does no network and no unpacking; offline mode works from
//! the store alone. [`Resolver::materialize`] then builds the tree once per resolution inside the
//! store (hard links) and points `<dir>/node_modules` at it with one symlink, so esbuild resolves
//! packages with its default settings. This module does not run install scripts, link `bin`
//! entries or read lock files, and fetches nothing but registry packages and local directories.

mod config;
mod error;
mod integrity;
mod range;
mod registry;
mod resolve;
mod store;

#[cfg(test)]
mod registry_tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use config::NpmConfig;
pub use error::NpmError;
pub use range::{Range, RangeError, Spec};
pub use resolve::{PackageSource, Resolution, ResolveOptions, ResolvedPackage, Resolver};
pub use store::Store;

/// Versions forced onto transitive dependencies, by package name (the flow config's
/// `overrides`). The packages the flow asks for directly keep their own version.
pub type Overrides = BTreeMap<String, String>;

/// One package the flow asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The name it is imported by, which is its directory in `node_modules`.
    pub name: String,
    /// Where it comes from.
    pub source: RequestSource,
}

/// Where a requested package comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestSource {
    /// The registry, with an npm range, exact version, dist-tag or `npm:` alias.
    Registry(String),
    /// A directory with a `package.json`; its files are copied, its dependencies resolved.
    Local(PathBuf),
}

impl Request {
    /// A registry package with a version spec (`4.2.1`, `^4`, `latest`).
    pub fn registry(name: impl Into<String>, spec: impl Into<String>) -> Request {
        Request {
            name: name.into(),
            source: RequestSource::Registry(spec.into()),
        }
    }

    /// A local package directory installed under `name`.
    pub fn local(name: impl Into<String>, dir: impl Into<PathBuf>) -> Request {
        Request {
            name: name.into(),
            source: RequestSource::Local(dir.into()),
        }
    }

    /// Builds a request from a flow config package entry: `package` with an optional inline
    /// `@version`, the entry's `version`, and its `path`. A `path`, or a `package` that starts
    /// with `.` or `/`, makes a local package resolved against `base_dir` (the config file's
    /// directory); without any version the `latest` tag is used.
    pub fn from_flow_package(
        package: &str,
        version: Option<&str>,
        path: Option<&str>,
        base_dir: &Path,
    ) -> Result<Request, NpmError> {
        if let Some(path) = path {
            validate_name(package)?;
            return Ok(Request::local(package, base_dir.join(path)));
        }
        if package.starts_with('.') || package.starts_with('/') {
            let dir = base_dir.join(package);
            let name = resolve::read_local_manifest(&dir)?.name;
            return Ok(Request::local(name, dir));
        }

        let (name, inline) = range::split_name_version(package);
        validate_name(name)?;
        let spec = match (version, inline) {
            (Some(a), Some(b)) if a.trim() != b.trim() => {
                return Err(NpmError::InvalidRequest {
                    package: package.to_string(),
                    detail: format!("the inline version `{b}` differs from `version: {a}`"),
                });
            }
            (Some(v), _) | (None, Some(v)) => v.to_string(),
            (None, None) => "latest".to_string(),
        };
        Ok(Request::registry(name, spec))
    }
}

/// Checks an npm package name, which becomes a path under `node_modules` and the store, so
/// that no name can point outside them: an optional `@scope/`, then one segment that does not
/// start with `.` or `_`.
pub(crate) fn validate_name(name: &str) -> Result<(), NpmError> {
    let segment_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && !s.starts_with('_')
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '!' | '*' | '\'')
            })
    };
    let valid = name.len() <= 214
        && match name.strip_prefix('@') {
            Some(scoped) => match scoped.split_once('/') {
                Some((scope, rest)) => segment_ok(scope) && segment_ok(rest),
                None => false,
            },
            None => segment_ok(name),
        };
    if valid {
        Ok(())
    } else {
        Err(NpmError::InvalidName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_cannot_escape_node_modules() {
        for good in [
            "zod",
            "@walkeros/core",
            "lodash.merge",
            "@esbuild/linux-x64",
            "Upper",
        ] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "..",
            "../x",
            "@scope/../x",
            "a/b",
            "@scope",
            "",
            ".hidden",
            "@a/b/c",
            "a\\b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flow_package_entries_become_requests() {
        let base = Path::new("/flows");
        assert_eq!(
            Request::from_flow_package("@walkeros/collector@4.2.1", None, None, base).unwrap(),
            Request::registry("@walkeros/collector", "4.2.1")
        );
        assert_eq!(
            Request::from_flow_package("@walkeros/collector", Some("^4"), None, base).unwrap(),
            Request::registry("@walkeros/collector", "^4")
        );
        assert_eq!(
            Request::from_flow_package("zod", None, None, base).unwrap(),
            Request::registry("zod", "latest")
        );
        assert_eq!(
            Request::from_flow_package("my-dest", None, Some("./dest"), base).unwrap(),
            Request::local("my-dest", "/flows/./dest")
        );
        assert!(matches!(
            Request::from_flow_package("zod@3", Some("4"), None, base),
            Err(NpmError::InvalidRequest { .. })
        ));
        assert!(matches!(
            Request::from_flow_package("./missing", None, None, base),
            Err(NpmError::Local { .. })
        ));
    }
}
