//! HTTP side of the npm client: abbreviated package metadata with on-disk revalidation, and
//! tarball downloads hashed while they stream into the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::AsyncWriteExt as _;
use tracing::{debug, warn};

use super::integrity::Integrity;
use super::store::Store;
use super::{NpmConfig, NpmError};

/// Asks for npm's abbreviated ("corgi") metadata, which carries only what installs need; a
/// registry that does not serve it answers with the full document, which also parses.
const ACCEPT_ABBREVIATED: &str =
    "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*";

/// Attempts per request. A registry blip or a 5xx is usually gone within a second, while a
/// registry that is down should fail the build quickly; three tries span about 1.5 s.
const ATTEMPTS: u32 = 3;

/// Pause before the second and third attempt.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(1000)];

/// Bounds connection set-up; a registry that cannot accept a connection in this time is
/// treated as unreachable rather than slow.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds the silence between two reads of a response, not the whole transfer, so a large
/// tarball on a slow link still completes while a stalled one fails.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The fields of a package's registry document that resolution reads.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Packument {
    #[serde(rename = "dist-tags", default, deserialize_with = "string_map")]
    pub dist_tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient")]
    pub versions: BTreeMap<String, Manifest>,
}

/// One published version, as far as resolution needs it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub optional_dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "string_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub peer_dependencies: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub peer_dependencies_meta: BTreeMap<String, PeerMeta>,
    /// `true` (all dependencies ship inside the tarball) or a list of names.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "is_null")]
    pub bundle_dependencies: serde_json::Value,
    /// The older spelling of `bundleDependencies`.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "is_null")]
    pub bundled_dependencies: serde_json::Value,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cpu: Vec<String>,
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub libc: Vec<String>,
    /// A deprecation message; `false` or absent when not deprecated.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "is_null")]
    pub deprecated: serde_json::Value,
    #[serde(default, deserialize_with = "lenient")]
    pub dist: Dist,
}

/// `peerDependenciesMeta` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PeerMeta {
    #[serde(default)]
    pub optional: bool,
}

/// Where the tarball is and how to check it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Dist {
    #[serde(default)]
    pub tarball: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shasum: Option<String>,
}

impl Manifest {
    /// Whether `name` ships inside this package's tarball and must not be installed.
    pub fn bundles(&self, name: &str) -> bool {
        [&self.bundle_dependencies, &self.bundled_dependencies]
            .iter()
            .any(|value| match value {
                serde_json::Value::Bool(all) => *all && self.dependencies.contains_key(name),
                serde_json::Value::Array(names) => names.iter().any(|n| n.as_str() == Some(name)),
                _ => false,
            })
    }

    pub fn is_deprecated(&self) -> bool {
        matches!(&self.deprecated, serde_json::Value::String(message) if !message.is_empty())
    }

    /// The published hash: the strongest SRI entry, else the legacy sha1 `shasum`.
    pub fn integrity(&self) -> Option<Integrity> {
        self.dist
            .integrity
            .as_deref()
            .and_then(Integrity::parse_sri)
            .or_else(|| self.dist.shasum.as_deref().and_then(Integrity::from_shasum))
    }
}

fn is_null(value: &serde_json::Value) -> bool {
    value.is_null()
}

/// Accepts any JSON for a field and falls back to the default when it has an unexpected
/// shape: old packages carry odd metadata, and one odd version must not hide the others.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

/// A `name → string` map that drops entries whose value is not a string.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    let serde_json::Value::Object(map) = value else {
        return Ok(BTreeMap::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect())
}

/// A metadata cache file: the trimmed document plus the validators to revalidate it.
#[derive(Serialize, Deserialize)]
struct CachedPackument {
    etag: Option<String>,
    last_modified: Option<String>,
    packument: Packument,
}

/// The registry client: one connection pool and the configuration it authenticates with.
pub(crate) struct Registry {
    /// Built on first use: loading a CA bundle costs milliseconds that a build answered from
    /// the store should not pay.
    http: OnceLock<Result<reqwest::Client, NpmError>>,
    config: NpmConfig,
}

impl Registry {
    pub fn new(config: NpmConfig) -> Registry {
        Registry {
            http: OnceLock::new(),
            config,
        }
    }

    fn client(&self) -> Result<&reqwest::Client, NpmError> {
        self.http
            .get_or_init(|| build_client(&self.config))
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn config(&self) -> &NpmConfig {
        &self.config
    }

    /// The metadata of `name`. Online it revalidates the cached copy (a 304 costs no body) and
    /// falls back to that copy, with a warning, when the registry cannot be reached; offline it
    /// reads the cache only.
    pub async fn packument(
        &self,
        store: &Store,
        name: &str,
        offline: bool,
    ) -> Result<Packument, NpmError> {
        let cache_path = store.metadata_path(name);
        let cached = read_cached(&cache_path).await;
        if offline {
            return cached
                .map(|c| c.packument)
                .ok_or_else(|| NpmError::Offline {
                    package: name.to_string(),
                    what: "metadata",
                });
        }

        let registry = self.config.registry_for(name)?;
        let url = package_url(registry, name)?;
        let client = self.client()?;
        let send = || {
            let mut request = self
                .request(client, &url)
                .header(ACCEPT, ACCEPT_ABBREVIATED);
            if let Some(cached) = &cached {
                if let Some(etag) = &cached.etag {
                    request = request.header(IF_NONE_MATCH, etag);
                }
                if let Some(modified) = &cached.last_modified {
                    request = request.header(IF_MODIFIED_SINCE, modified);
                }
            }
            request
        };
        let response = match send_with_retry(send, &url).await {
            Ok(response) => response,
            Err(error @ NpmError::Unreachable { .. }) => {
                return match cached {
                    Some(cached) => {
                        warn!(
                            package = name, %error,
                            "Registry unreachable, using cached metadata"
                        );
                        Ok(cached.packument)
                    }
                    None => Err(error),
                };
            }
            Err(error) => return Err(error),
        };

        match response.status() {
            StatusCode::NOT_MODIFIED if cached.is_some() => {
                debug!(package = name, "Metadata not modified");
                Ok(cached.map(|c| c.packument).unwrap_or_default())
            }
            status if status.is_success() => {
                let header = |h| {
                    response
                        .headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let etag = header(ETAG);
                let last_modified = header(LAST_MODIFIED);
                let body = response.bytes().await.map_err(|e| unreachable(&url, e))?;
                let bad = |detail: String| NpmError::BadMetadata {
                    package: name.to_string(),
                    url: url.to_string(),
                    detail,
                };

                // Full documents of popular packages run to megabytes; parse off the runtime.
                let packument =
                    tokio::task::spawn_blocking(move || serde_json::from_slice::<Packument>(&body))
                        .await
                        .map_err(|e| bad(e.to_string()))?
                        .map_err(|e| bad(e.to_string()))?;

                let entry = CachedPackument {
                    etag,
                    last_modified,
                    packument,
                };
                match serde_json::to_vec(&entry) {
                    Ok(bytes) => {
                        if let Err(error) = store.write_atomic(&cache_path, &bytes) {
                            warn!(package = name, %error, "Could not cache package metadata");
                        }
                    }
                    Err(error) => {
                        warn!(package = name, %error, "Could not encode package metadata")
                    }
                }
                Ok(entry.packument)
            }
            status => Err(status_error(status, name, &url, registry)),
        }
    }

    /// Downloads a tarball to `dest`, hashing it on the way; the file is only kept when the
    /// hash matches `expected`.
    pub async fn download(
        &self,
        url: &str,
        expected: &Integrity,
        package: &str,
        dest: &Path,
    ) -> Result<(), NpmError> {
        let url = self.tarball_url(url, package)?;
        let client = self.client()?;
        let response = send_with_retry(|| self.request(client, &url), &url).await?;
        if !response.status().is_success() {
            let registry = self.config.registry_for(package).unwrap_or_default();
            return Err(status_error(response.status(), package, &url, registry));
        }

        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| NpmError::io("create", dest, e))?;
        let mut hasher = expected.hasher();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| unreachable(&url, e))?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| NpmError::io("write", dest, e))?;
        }
        file.flush()
            .await
            .map_err(|e| NpmError::io("write", dest, e))?;

        let actual = hasher.finish();
        if !expected.matches(&actual) {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(NpmError::IntegrityMismatch {
                package: package.to_string(),
                origin: "download from the registry",
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// The URL to fetch a tarball from. Registries that mirror another one often leave the
    /// original host in `dist.tarball`; like npm's default `replace-registry-host`, a tarball in
    /// the standard `<name>/-/<file>.tgz` layout on another host is fetched from the configured
    /// registry instead. `replace-registry-host=never` is not read: the integrity check makes
    /// the rewrite safe, and a mirror that lacks the tarball fails with a clear 404.
    fn tarball_url(&self, tarball: &str, package: &str) -> Result<Url, NpmError> {
        let bad = |detail: String| NpmError::BadMetadata {
            package: package.to_string(),
            url: tarball.to_string(),
            detail,
        };
        let original = Url::parse(tarball).map_err(|e| bad(format!("tarball URL: {e}")))?;
        let Ok(registry) = self.config.registry_for(package) else {
            return Ok(original);
        };
        let registry = Url::parse(registry).map_err(|e| bad(e.to_string()))?;
        if original.host_str() == registry.host_str() && original.port() == registry.port() {
            return Ok(original);
        }
        let marker = format!("/{package}/-/");
        match original.path().rfind(&marker) {
            Some(at) => registry
                .join(&original.path()[at + 1..])
                .map_err(|e| bad(e.to_string())),
            None => Ok(original),
        }
    }

    fn request(&self, client: &reqwest::Client, url: &Url) -> reqwest::RequestBuilder {
        let mut request = client.get(url.clone());
        if let Some(authorization) = self.config.authorization_for(url) {
            request = request.header(AUTHORIZATION, authorization);
        }
        request
    }
}

fn build_client(config: &NpmConfig) -> Result<reqwest::Client, NpmError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    for (origin, pem) in config.ca_bundles() {
        let certificates =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| NpmError::Config {
                source_name: origin.clone(),
                detail: format!("not a PEM certificate bundle: {e}"),
            })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| NpmError::Config {
        source_name: "the HTTP client set-up".into(),
        detail: e.to_string(),
    })
}

/// `<registry>/<name>` with the scope's slash escaped, as the registry API expects.
fn package_url(registry: &str, name: &str) -> Result<Url, NpmError> {
    let path = name.replace('/', "%2f");
    Url::parse(registry)
        .and_then(|base| base.join(&path))
        .map_err(|e| NpmError::Config {
            source_name: "the npm configuration".into(),
            detail: format!("registry `{registry}`: {e}"),
        })
}

async fn read_cached(path: &Path) -> Option<CachedPackument> {
    let bytes = tokio::fs::read(path).await.ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(cached) => Some(cached),
        Err(error) => {
            warn!(path = %path.display(), %error, "Ignoring unreadable metadata cache file");
            None
        }
    }
}

/// Sends a request, retrying connection failures, timeouts, 429 and 5xx answers.
async fn send_with_retry(
    build: impl Fn() -> reqwest::RequestBuilder,
    url: &Url,
) -> Result<reqwest::Response, NpmError> {
    let mut attempt = 0;
    loop {
        let result = build().send().await;
        let retryable = match &result {
            Ok(response) => {
                response.status().is_server_error()
                    || response.status() == StatusCode::TOO_MANY_REQUESTS
            }
            Err(error) => error.is_connect() || error.is_timeout() || error.is_request(),
        };
        if !retryable || attempt + 1 >= ATTEMPTS {
            return result.map_err(|e| unreachable(url, e));
        }
        debug!(%url, attempt, "Retrying registry request");
        tokio::time::sleep(BACKOFF[attempt as usize]).await;
        attempt += 1;
    }
}

fn unreachable(url: &Url, error: reqwest::Error) -> NpmError {
    NpmError::Unreachable {
        url: url.to_string(),
        source: Arc::new(error.without_url()),
    }
}

fn status_error(status: StatusCode, package: &str, url: &Url, registry: &str) -> NpmError {
    match status {
        StatusCode::NOT_FOUND => NpmError::NotFound {
            package: package.to_string(),
            registry: registry.to_string(),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => NpmError::Unauthorized {
            package: package.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
        },
        status => NpmError::Http {
            package: package.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_metadata_shapes_do_not_hide_good_versions() {
        let text = r#"{
            "name": "p",
            "dist-tags": {"latest": "1.0.0", "weird": 5},
            "versions": {
                "1.0.0": {
                    "dependencies": {"a": "^1", "b": null},
                    "bundleDependencies": true,
                    "os": "linux",
                    "deprecated": false,
                    "peerDependenciesMeta": {"c": {"optional": true}},
                    "dist": {
                        "tarball": "https://r.invalid/p/-/p-1.0.0.tgz",
                        "shasum": "a9993e364706816aba3e25717850c26c9cd0d89d"
                    }
                }
            }
        }"#;
        let packument: Packument = serde_json::from_str(text).unwrap();
        assert_eq!(packument.dist_tags.len(), 1);
        let manifest = &packument.versions["1.0.0"];
        assert_eq!(manifest.dependencies.len(), 1);
        assert!(manifest.bundles("a"));
        assert!(!manifest.bundles("z"));
        assert!(manifest.os.is_empty());
        assert!(!manifest.is_deprecated());
        assert!(manifest.peer_dependencies_meta["c"].optional);
        assert!(manifest.integrity().is_some());

        // The trimmed form written to the cache reads back the same.
        let again: Packument =
            serde_json::from_slice(&serde_json::to_vec(&packument).unwrap()).unwrap();
        assert_eq!(again.versions["1.0.0"].dependencies, manifest.dependencies);
    }

    #[test]
    fn scoped_names_are_escaped_in_metadata_urls() {
        let url = package_url("https://r.invalid/npm/", "@walkeros/core").unwrap();
        assert_eq!(url.as_str(), "https://r.invalid/npm/@walkeros%2fcore");
    }

    #[test]
    fn mirrored_tarballs_come_from_the_configured_registry() {
        let registry =
            Registry::new(NpmConfig::with_registry("https://mirror.invalid/npm").unwrap());
        let rewritten = registry
            .tarball_url("https://origin.invalid/@a/b/-/b-1.0.0.tgz", "@a/b")
            .unwrap();
        assert_eq!(
            rewritten.as_str(),
            "https://mirror.invalid/npm/@a/b/-/b-1.0.0.tgz"
        );
        let same_host = registry
            .tarball_url("https://mirror.invalid/other/b-1.0.0.tgz", "b")
            .unwrap();
        assert_eq!(
            same_host.as_str(),
            "https://mirror.invalid/other/b-1.0.0.tgz"
        );
        let custom = registry
            .tarball_url("https://cdn.invalid/files/b.tgz", "b")
            .unwrap();
        assert_eq!(custom.as_str(), "https://cdn.invalid/files/b.tgz");
    }
}
