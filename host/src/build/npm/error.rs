//! Errors of the npm client. Each names the package, registry or file at fault and what the
//! user can do; the enum is `Clone` because one failed download is reported to every package
//! waiting on it.

use std::path::PathBuf;
use std::sync::Arc;

/// Why packages could not be resolved, fetched or laid out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NpmError {
    /// Nothing in the npm configuration names a registry.
    #[error(
        "no npm registry is configured: set NPM_CONFIG_REGISTRY, or add a `registry=<url>` line \
         to the project's .npmrc or ~/.npmrc"
    )]
    NoRegistry,

    /// An npm configuration source holds a value that cannot be used.
    #[error("npm configuration in {source_name}: {detail}")]
    Config {
        /// The file or environment the value came from.
        source_name: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A flow package entry cannot be turned into a request.
    #[error("package `{package}`: {detail}")]
    InvalidRequest {
        /// The entry as written.
        package: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A name that npm would not accept, which also cannot be used as a path.
    #[error("`{name}` is not a valid npm package name")]
    InvalidName {
        /// The name as written.
        name: String,
    },

    /// The registry does not know the package (404).
    #[error("package {package} was not found in the registry {registry}")]
    NotFound {
        /// The package name.
        package: String,
        /// The registry that was asked.
        registry: String,
    },

    /// The package exists but no published version satisfies the requested spec.
    #[error(
        "no version of {package} matches `{spec}` (required by {required_by}); newest \
         published: {available}"
    )]
    NoMatchingVersion {
        /// The package name.
        package: String,
        /// The range or tag that found nothing.
        spec: String,
        /// The flow or the package that declared the dependency.
        required_by: String,
        /// The newest few versions, newest first.
        available: String,
    },

    /// A dependency spec that needs something other than the registry (git, URL, `file:`).
    #[error(
        "{package}@`{spec}` (required by {required_by}) is not supported: only registry \
         versions, ranges, dist-tags and `npm:` aliases are"
    )]
    UnsupportedSpec {
        /// The dependency name.
        package: String,
        /// The spec as written.
        spec: String,
        /// The package that declared it.
        required_by: String,
    },

    /// A tarball's hash differs from the one the registry published for it.
    #[error("integrity check failed for {package} ({origin}): expected {expected}, got {actual}")]
    IntegrityMismatch {
        /// `name@version`.
        package: String,
        /// Whether the bytes came from the registry or the local store.
        origin: &'static str,
        /// The published SRI hash.
        expected: String,
        /// The hash of the bytes received.
        actual: String,
    },

    /// The registry could not be reached at all.
    #[error(
        "npm registry unreachable at {url}: {source}; check NPM_CONFIG_REGISTRY / .npmrc, or \
         build offline from a store filled by an earlier online build"
    )]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// The transport error.
        source: Arc<reqwest::Error>,
    },

    /// The registry refused the request for lack of credentials.
    #[error(
        "registry {url} refused {package} with HTTP {status}: add a \
         `//<registry host>/:_authToken=` line for it to .npmrc"
    )]
    Unauthorized {
        /// The package name.
        package: String,
        /// The URL that was requested.
        url: String,
        /// 401 or 403.
        status: u16,
    },

    /// Any other unexpected HTTP status.
    #[error("registry {url} answered HTTP {status} for {package}")]
    Http {
        /// The package name.
        package: String,
        /// The URL that was requested.
        url: String,
        /// The status code.
        status: u16,
    },

    /// The registry's metadata for a package cannot be used.
    #[error("metadata of {package} from {url} is unusable: {detail}")]
    BadMetadata {
        /// The package name.
        package: String,
        /// Where it came from (a URL or a cache file).
        url: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A tarball that passed its hash check still cannot be unpacked, or tries to write
    /// outside its package directory.
    #[error("tarball of {package} is corrupt or unsafe: {detail}")]
    CorruptTarball {
        /// `name@version`.
        package: String,
        /// What is wrong with it.
        detail: String,
    },

    /// Offline mode needed something the store does not have.
    #[error(
        "{package} is not in the local store ({what}); run the build once with network access \
         (without offline mode) to fill the store"
    )]
    Offline {
        /// The package name (with version when known).
        package: String,
        /// `metadata` or `tarball`.
        what: &'static str,
    },

    /// A local package directory cannot be used.
    #[error("local package {dir}: {detail}")]
    Local {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// Two requests for one name that no single version satisfies.
    #[error("the flow asks for {package} twice with incompatible versions: {first} and {second}")]
    ConflictingRequests {
        /// The package name.
        package: String,
        /// The first spec.
        first: String,
        /// The second spec.
        second: String,
    },

    /// The hoisting left a dependency that Node's lookup would resolve to the wrong copy.
    #[error("could not lay out {package}: {detail}")]
    Layout {
        /// The package whose dependency is broken.
        package: String,
        /// Which dependency and why.
        detail: String,
    },

    /// A file system operation in the store or the build directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase (`create`, `read`, `link`).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: Arc<std::io::Error>,
    },
}

impl NpmError {
    /// Wraps an I/O error with the action and path that caused it.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        NpmError::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
