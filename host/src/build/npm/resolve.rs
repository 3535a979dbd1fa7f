//! Dependency resolution: from the flow's requests to a hoisted `node_modules` layout whose
//! packages are all in the store, plus the index that makes the second build free.
//!
//! The layout follows npm's: every package goes as high in the tree as it can without
//! shadowing a different version some other package already resolves to; a conflicting
//! version is nested under the package that needs it. Peer dependencies that are not optional
//! are installed next to the package that declares them (as npm 7+ does); when a different
//! version is already there, the conflict is logged and that version kept (npm's
//! `--legacy-peer-deps`). Optional dependencies are installed when their `os` / `cpu` / `libc`
//! fit this machine and skipped, with a log line, when they cannot be resolved.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use semver::Version;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{OnceCell, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::integrity::Integrity;
use super::range::{self, Spec};
use super::registry::{Manifest, Packument, Registry};
use super::store::{self, Store};
use super::{NpmConfig, NpmError, Overrides, Request, RequestSource, validate_name};

/// Registry requests in flight at once (metadata and tarballs together). An api flow needs
/// about a dozen packages, so 16 fetches everything in one round trip while staying well
/// under what a registry tolerates from one client; the number itself is a judgement call.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// Bumped whenever the index format or the resolution rules change, so old entries are
/// resolved again instead of misread.
const INDEX_FORMAT: u32 = 1;

/// How much [`Resolver::resolve`] may use the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Use only the store: the resolution index, cached metadata and stored tarballs. A miss
    /// is [`NpmError::Offline`].
    pub offline: bool,
    /// Ignore the resolution index and pick versions again from fresh registry metadata, to
    /// pick up new releases within the requested ranges. Without it a set of requests keeps
    /// the versions it was first resolved to, like a lock file.
    pub refresh: bool,
}

/// A complete `node_modules` layout whose registry packages are all in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolution {
    /// Every installed package, parents before their nested children.
    pub packages: Vec<ResolvedPackage>,
    /// Digest of the layout and of the local packages' contents; names the materialized tree.
    #[serde(skip)]
    id: String,
}

/// One directory of the layout.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResolvedPackage {
    /// Its path from the tree root, e.g. `node_modules/a/node_modules/b`.
    pub location: String,
    /// The published package name (differs from the directory name for `npm:` aliases).
    pub name: String,
    /// The exact version, or the local package's own `version`.
    pub version: String,
    /// Where its files come from.
    pub source: PackageSource,
}

/// Where a resolved package's files come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PackageSource {
    /// A registry tarball, checked against `integrity` and unpacked in the store.
    Registry {
        /// The SRI hash (or `sha1-…` from a legacy `shasum`).
        integrity: String,
        /// Where the tarball was published.
        tarball: String,
    },
    /// A local directory, copied into the tree.
    Local {
        /// The directory.
        dir: PathBuf,
        /// Digest of its files when resolved; not stored in the index.
        #[serde(skip)]
        fingerprint: String,
    },
}

impl Resolution {
    /// Identifies the layout including the local packages' current contents.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The package installed at the top of the tree under `name`, i.e. what `import name`
    /// from the flow resolves to.
    pub fn top_level(&self, name: &str) -> Option<&ResolvedPackage> {
        let location = format!("node_modules/{name}");
        self.packages.iter().find(|p| p.location == location)
    }

    fn compute_id(&mut self) {
        let mut hasher = Sha256::new();
        for package in &self.packages {
            hasher.update(package.location.as_bytes());
            hasher.update(b"\0");
            hasher.update(package.name.as_bytes());
            hasher.update(b"\0");
            hasher.update(package.version.as_bytes());
            hasher.update(b"\0");
            match &package.source {
                PackageSource::Registry { integrity, .. } => hasher.update(integrity.as_bytes()),
                PackageSource::Local { dir, fingerprint } => {
                    hasher.update(dir.to_string_lossy().as_bytes());
                    hasher.update(fingerprint.as_bytes());
                }
            }
            hasher.update(b"\n");
        }
        self.id = hex::encode(&hasher.finalize()[..16]);
    }
}

/// The npm client: configuration, store and connection pool, shared by every build.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    store: Store,
    /// Bounds registry requests in flight across all concurrent resolutions.
    fetch_limit: Semaphore,
}

impl Resolver {
    /// A resolver for `config` storing into `store`, with [`DEFAULT_CONCURRENCY`].
    pub fn new(config: NpmConfig, store: Store) -> Result<Resolver, NpmError> {
        Resolver::with_concurrency(config, store, DEFAULT_CONCURRENCY)
    }

    /// Like [`Resolver::new`] with a different bound on concurrent registry requests.
    pub fn with_concurrency(
        config: NpmConfig,
        store: Store,
        concurrency: usize,
    ) -> Result<Resolver, NpmError> {
        Ok(Resolver {
            inner: Arc::new(Inner {
                registry: Registry::new(config),
                store,
                fetch_limit: Semaphore::new(concurrency.max(1)),
            }),
        })
    }

    /// The store this resolver fills.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The directory a resolved package's files are in: its unpacked copy in the store, or the
    /// local directory.
    pub fn package_dir(&self, package: &ResolvedPackage) -> Result<PathBuf, NpmError> {
        match &package.source {
            PackageSource::Registry { integrity, .. } => {
                let integrity = parse_integrity(integrity, &package.name)?;
                Ok(self
                    .inner
                    .store
                    .package_dir(&package.name, &package.version, &integrity))
            }
            PackageSource::Local { dir, .. } => Ok(dir.clone()),
        }
    }

    /// Resolves `requests` (and their dependencies, with `overrides` applied to transitive
    /// ones) to a layout whose packages are all unpacked in the store.
    ///
    /// The same requests resolve to the same layout from the index without any network until
    /// `refresh` is set; only missing store entries are fetched. Offline, everything must come
    /// from the store.
    pub async fn resolve(
        &self,
        requests: &[Request],
        overrides: &Overrides,
        options: ResolveOptions,
    ) -> Result<Resolution, NpmError> {
        let started = Instant::now();
        let locals = read_local_requests(requests)?;
        let key = self.index_key(requests, &locals, overrides);

        // Answer from the index when these exact requests were resolved before; the store is
        // only topped up if a package directory was removed since.
        if !options.refresh
            && let Some(mut resolution) = self.read_index(&key)
        {
            attach_fingerprints(&mut resolution, &locals)?;
            let fetched = self.ensure_all(&resolution, options.offline).await?;
            resolution.compute_id();
            debug!(
                packages = resolution.packages.len(),
                fetched,
                elapsed_us = started.elapsed().as_micros() as u64,
                "Resolved npm packages from the index"
            );
            return Ok(resolution);
        }

        let loader = Arc::new(MetadataLoader {
            inner: self.inner.clone(),
            offline: options.offline,
            cells: Mutex::default(),
        });
        let mut builder = TreeBuilder::new(self.inner.clone(), loader, options.offline);
        builder.place_requests(requests, &locals, overrides).await?;
        builder.walk(overrides).await?;
        builder.check_layout()?;
        let (mut resolution, fetched) = builder.finish().await?;

        attach_fingerprints(&mut resolution, &locals)?;
        self.write_index(&key, &resolution);
        resolution.compute_id();
        info!(
            packages = resolution.packages.len(),
            fetched,
            offline = options.offline,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Resolved npm packages"
        );
        Ok(resolution)
    }

    /// Makes `<dir>/node_modules` the laid-out tree of `resolution` and returns its path.
    ///
    /// The tree is built once per resolution inside the store (files hard-linked from the
    /// unpacked packages, local packages copied) and `<dir>/node_modules` becomes a symlink to
    /// it, so a warm call costs one symlink. Because every package's real path lies inside that
    /// tree, esbuild and Node resolve nested dependencies from real paths and need no
    /// `--preserve-symlinks`. An existing `<dir>/node_modules` that is not a symlink is left
    /// alone and reported as an error.
    pub async fn materialize(
        &self,
        resolution: &Resolution,
        dir: &Path,
    ) -> Result<PathBuf, NpmError> {
        let resolver = self.clone();
        let resolution = resolution.clone();
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || resolver.materialize_blocking(&resolution, &dir))
            .await
            .map_err(|e| NpmError::Layout {
                package: "(tree)".into(),
                detail: e.to_string(),
            })?
    }

    fn materialize_blocking(
        &self,
        resolution: &Resolution,
        dir: &Path,
    ) -> Result<PathBuf, NpmError> {
        let store = &self.inner.store;
        let tree = store.tree_dir(resolution.id());
        if !tree.is_dir() {
            let staged = store.temp_path("tree");
            let result = self.build_tree(resolution, &staged);
            if let Err(error) = result {
                let _ = std::fs::remove_dir_all(&staged);
                return Err(error);
            }
            store.publish_dir(&staged, &tree)?;
            debug!(tree = %tree.display(), "Built node_modules tree");
        }
        let target = tree.join("node_modules");

        std::fs::create_dir_all(dir).map_err(|e| NpmError::io("create", dir, e))?;
        let link = dir.join("node_modules");
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if std::fs::read_link(&link).is_ok_and(|current| current == target) {
                    return Ok(link);
                }
            }
            Ok(_) => {
                return Err(NpmError::io(
                    "replace",
                    &link,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "a real directory is in the way; remove it to let flowhost link its tree",
                    ),
                ));
            }
            Err(_) => {}
        }

        // A new symlink is renamed over the old one, so a concurrent build sees either tree.
        let staged = dir.join(format!(".{}.tmp", store::unique_name("node_modules")));
        symlink_dir(&target, &staged)?;
        std::fs::rename(&staged, &link).map_err(|e| NpmError::io("rename into", &link, e))?;
        Ok(link)
    }

    fn build_tree(&self, resolution: &Resolution, staged: &Path) -> Result<(), NpmError> {
        let node_modules = staged.join("node_modules");
        std::fs::create_dir_all(&node_modules)
            .map_err(|e| NpmError::io("create", &node_modules, e))?;
        for package in &resolution.packages {
            let dest = staged.join(&package.location);
            match &package.source {
                PackageSource::Registry { .. } => {
                    store::link_tree(&self.package_dir(package)?, &dest)?;
                }
                PackageSource::Local { dir, .. } => store::copy_local(dir, &dest, true)?,
            }
        }
        Ok(())
    }

    /// Makes sure every registry package of a resolution is unpacked; returns how many had to
    /// be fetched or unpacked.
    async fn ensure_all(&self, resolution: &Resolution, offline: bool) -> Result<usize, NpmError> {
        let mut tasks = JoinSet::new();
        for package in &resolution.packages {
            if let PackageSource::Registry { integrity, tarball } = &package.source {
                let integrity = parse_integrity(integrity, &package.name)?;
                let dir = self
                    .inner
                    .store
                    .package_dir(&package.name, &package.version, &integrity);
                if dir.is_dir() {
                    continue;
                }
                let fetch = PackageFetch {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    integrity,
                    tarball: tarball.clone(),
                };
                let inner = self.inner.clone();
                tasks.spawn(async move { inner.ensure_package(&fetch, offline).await });
            }
        }
        let mut fetched = 0;
        while let Some(joined) = tasks.join_next().await {
            let unpacked = joined.map_err(|e| NpmError::Layout {
                package: "(fetch)".into(),
                detail: e.to_string(),
            })??;
            fetched += usize::from(unpacked);
        }
        Ok(fetched)
    }

    /// The index key: everything that decides the layout (requests, local manifests,
    /// overrides, registries, this machine's platform) and nothing that does not.
    fn index_key(
        &self,
        requests: &[Request],
        locals: &LocalManifests,
        overrides: &Overrides,
    ) -> String {
        let mut hasher = Sha256::new();
        hasher.update(format!("format {INDEX_FORMAT}\n"));
        hasher.update(format!(
            "platform {} {} {:?}\n",
            npm_os(),
            npm_cpu(),
            npm_libc()
        ));
        hasher.update(format!(
            "registries {}\n",
            self.inner.registry.config().fingerprint()
        ));
        for request in requests {
            match &request.source {
                RequestSource::Registry(spec) => {
                    hasher.update(format!("request {} {spec}\n", request.name));
                }
                RequestSource::Local(dir) => {
                    hasher.update(format!("local {} {}\n", request.name, dir.display()));
                    if let Some(local) = locals.get(dir) {
                        hasher.update(&local.raw);
                        hasher.update(b"\n");
                    }
                }
            }
        }
        for (name, spec) in overrides {
            hasher.update(format!("override {name} {spec}\n"));
        }
        hex::encode(&hasher.finalize()[..16])
    }

    fn read_index(&self, key: &str) -> Option<Resolution> {
        let bytes = std::fs::read(self.inner.store.index_path(key)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(resolution) => Some(resolution),
            Err(error) => {
                warn!(%error, key, "Ignoring unreadable resolution index entry");
                None
            }
        }
    }

    fn write_index(&self, key: &str, resolution: &Resolution) {
        let path = self.inner.store.index_path(key);
        let result = serde_json::to_vec_pretty(resolution)
            .map_err(|e| NpmError::io("encode", &path, std::io::Error::other(e)))
            .and_then(|bytes| self.inner.store.write_atomic(&path, &bytes));
        if let Err(error) = result {
            warn!(%error, "Could not write resolution index; the next build resolves again");
        }
    }
}

impl Inner {
    /// Puts one registry package into the store: reuse the unpacked directory, else unpack the
    /// stored tarball after re-checking its hash, else download it (online only). Returns
    /// whether anything had to be unpacked.
    async fn ensure_package(&self, fetch: &PackageFetch, offline: bool) -> Result<bool, NpmError> {
        let dir = self
            .store
            .package_dir(&fetch.name, &fetch.version, &fetch.integrity);
        if dir.is_dir() {
            return Ok(false);
        }
        let label = format!("{}@{}", fetch.name, fetch.version);
        let tgz = self.store.tarball_path(&fetch.integrity);

        let mut have_tarball = false;
        if tgz.is_file() {
            let (path, expected, package) = (tgz.clone(), fetch.integrity.clone(), label.clone());
            let checked =
                tokio::task::spawn_blocking(move || store::verify_file(&path, &expected, &package))
                    .await
                    .map_err(|e| NpmError::io("verify", &tgz, std::io::Error::other(e)))?;
            match checked {
                Ok(()) => have_tarball = true,
                // A damaged store copy is dropped; online it is fetched again below.
                Err(error) if offline => {
                    let _ = std::fs::remove_file(&tgz);
                    return Err(error);
                }
                Err(error) => {
                    warn!(
                        package = %label, %error,
                        "Stored tarball is damaged, downloading it again"
                    );
                    let _ = std::fs::remove_file(&tgz);
                }
            }
        }

        if !have_tarball {
            if offline {
                return Err(NpmError::Offline {
                    package: label,
                    what: "tarball",
                });
            }
            let _permit = self
                .fetch_limit
                .acquire()
                .await
                .map_err(|e| NpmError::io("download", &tgz, std::io::Error::other(e)))?;
            let staged = self.store.temp_path("tarball");
            let result = self
                .registry
                .download(&fetch.tarball, &fetch.integrity, &fetch.name, &staged)
                .await;
            if let Err(error) = result {
                let _ = std::fs::remove_file(&staged);
                return Err(match error {
                    NpmError::IntegrityMismatch {
                        expected,
                        actual,
                        origin,
                        ..
                    } => NpmError::IntegrityMismatch {
                        package: label,
                        origin,
                        expected,
                        actual,
                    },
                    other => other,
                });
            }
            std::fs::rename(&staged, &tgz).map_err(|e| NpmError::io("rename into", &tgz, e))?;
            debug!(package = %label, "Downloaded tarball");
        }

        let store = self.store.clone();
        let staged = store.temp_path("package");
        tokio::task::spawn_blocking(move || {
            let result = store::extract_tarball(&tgz, &staged, &label);
            match result {
                Ok(()) => store.publish_dir(&staged, &dir).map(|()| true),
                Err(error) => {
                    let _ = std::fs::remove_dir_all(&staged);
                    Err(error)
                }
            }
        })
        .await
        .map_err(|e| NpmError::Layout {
            package: fetch.name.clone(),
            detail: e.to_string(),
        })?
    }
}

/// What is needed to put one registry package into the store.
struct PackageFetch {
    name: String,
    version: String,
    integrity: Integrity,
    tarball: String,
}

/// Each package's metadata, fetched at most once per resolution and shared by every
/// dependent; a prefetch started early is awaited by whoever needs the result.
struct MetadataLoader {
    inner: Arc<Inner>,
    offline: bool,
    cells: Mutex<HashMap<String, Arc<MetadataCell>>>,
}

/// One package's metadata, filled by whichever task asks first.
type MetadataCell = OnceCell<Result<Arc<Versions>, NpmError>>;

/// A packument with its versions parsed once.
struct Versions {
    packument: Packument,
    /// Parsed version → key in `packument.versions`, sorted ascending.
    sorted: Vec<(Version, String)>,
}

impl MetadataLoader {
    async fn get(&self, name: &str) -> Result<Arc<Versions>, NpmError> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.entry(name.to_string()).or_default().clone()
        };
        cell.get_or_init(|| async {
            let packument = if self.offline {
                self.inner
                    .registry
                    .packument(&self.inner.store, name, true)
                    .await
            } else {
                let _permit = self
                    .inner
                    .fetch_limit
                    .acquire()
                    .await
                    .map_err(|e| NpmError::io("fetch", name, std::io::Error::other(e)))?;
                self.inner
                    .registry
                    .packument(&self.inner.store, name, false)
                    .await
            }?;
            let mut sorted: Vec<(Version, String)> = packument
                .versions
                .keys()
                .filter_map(|key| range::parse_version(key).map(|v| (v, key.clone())))
                .collect();
            sorted.sort_by(|a, b| range::compare(&a.0, &b.0));
            Ok(Arc::new(Versions { packument, sorted }))
        })
        .await
        .clone()
    }
}

impl Versions {
    /// npm's choice for a spec: the `latest` tag when it satisfies the range, else the highest
    /// satisfying version that is not deprecated, else the highest satisfying one.
    fn pick(&self, spec: &Spec) -> Option<(&Version, &Manifest)> {
        let manifest = |key: &String| self.packument.versions.get(key);
        let by_tag = |tag: &str| {
            let key = self.packument.dist_tags.get(tag)?;
            let version = range::parse_version(key)?;
            self.sorted.iter().find(|(v, _)| *v == version)
        };
        let found = match spec {
            Spec::Tag(tag) => by_tag(tag),
            Spec::Range(range) => {
                let latest = by_tag("latest").filter(|(v, key)| {
                    range.matches(v) && manifest(key).is_some_and(|m| !m.is_deprecated())
                });
                latest
                    .or_else(|| {
                        self.sorted.iter().rev().find(|(v, key)| {
                            range.matches(v) && manifest(key).is_some_and(|m| !m.is_deprecated())
                        })
                    })
                    .or_else(|| self.sorted.iter().rev().find(|(v, _)| range.matches(v)))
            }
            Spec::Alias { .. } | Spec::Unsupported => None,
        };
        found.and_then(|(version, key)| Some((version, manifest(key)?)))
    }

    fn newest(&self, count: usize) -> String {
        let newest: Vec<String> = self
            .sorted
            .iter()
            .rev()
            .take(count)
            .map(|(v, _)| v.to_string())
            .collect();
        if newest.is_empty() {
            "none".into()
        } else {
            newest.join(", ")
        }
    }
}

/// A local request's `package.json`, read once per resolution.
pub(crate) struct LocalManifest {
    pub name: String,
    version: String,
    dependencies: Vec<Edge>,
    /// The file's bytes, part of the index key so that dependency edits resolve again.
    raw: Vec<u8>,
}

type LocalManifests = HashMap<PathBuf, LocalManifest>;

/// Reads a local package's `package.json`.
pub(crate) fn read_local_manifest(dir: &Path) -> Result<LocalManifest, NpmError> {
    let local = |detail: String| NpmError::Local {
        dir: dir.to_path_buf(),
        detail,
    };
    let path = dir.join("package.json");
    let raw = std::fs::read(&path).map_err(|e| {
        local(format!(
            "cannot read package.json ({e}); a local package needs one"
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| local(format!("package.json is not valid JSON: {e}")))?;
    let fields: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| local(format!("package.json: {e}")))?;
    let name = fields
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| local("package.json has no `name`".into()))?
        .to_string();
    let version = fields
        .get("version")
        .and_then(|v| v.as_str())
        .unwrap_or("0.0.0")
        .to_string();
    Ok(LocalManifest {
        name,
        version,
        dependencies: edges_of(&manifest),
        raw,
    })
}

fn read_local_requests(requests: &[Request]) -> Result<LocalManifests, NpmError> {
    let mut locals = HashMap::new();
    for request in requests {
        if let RequestSource::Local(dir) = &request.source {
            locals.insert(dir.clone(), read_local_manifest(dir)?);
        }
    }
    Ok(locals)
}

fn attach_fingerprints(
    resolution: &mut Resolution,
    locals: &LocalManifests,
) -> Result<(), NpmError> {
    for package in &mut resolution.packages {
        if let PackageSource::Local { dir, fingerprint } = &mut package.source {
            if !locals.contains_key(dir) {
                return Err(NpmError::Local {
                    dir: dir.clone(),
                    detail: "no longer requested; resolve again".into(),
                });
            }
            *fingerprint = store::fingerprint_local(dir)?;
        }
    }
    Ok(())
}

fn parse_integrity(text: &str, package: &str) -> Result<Integrity, NpmError> {
    Integrity::parse_sri(text).ok_or_else(|| NpmError::BadMetadata {
        package: package.to_string(),
        url: "the resolution index".into(),
        detail: format!("unusable integrity `{text}`"),
    })
}

/// A declared dependency.
#[derive(Debug, Clone)]
struct Edge {
    name: String,
    spec: String,
    kind: EdgeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeKind {
    Prod,
    Optional,
    Peer,
}

/// The dependencies npm installs for a manifest, by name: optional ones override regular ones
/// of the same name, regular ones override peers, optional peers and bundled ones are left out.
fn edges_of(manifest: &Manifest) -> Vec<Edge> {
    let mut edges: BTreeMap<String, Edge> = BTreeMap::new();
    let mut add = |name: &String, spec: &String, kind| {
        edges.insert(
            name.clone(),
            Edge {
                name: name.clone(),
                spec: spec.clone(),
                kind,
            },
        );
    };
    for (name, spec) in &manifest.peer_dependencies {
        let optional = manifest
            .peer_dependencies_meta
            .get(name)
            .is_some_and(|meta| meta.optional);
        if !optional {
            add(name, spec, EdgeKind::Peer);
        }
    }
    for (name, spec) in &manifest.dependencies {
        add(name, spec, EdgeKind::Prod);
    }
    for (name, spec) in &manifest.optional_dependencies {
        add(name, spec, EdgeKind::Optional);
    }
    edges
        .into_values()
        .filter(|edge| !manifest.bundles(&edge.name))
        .collect()
}

/// One directory of the tree being built; node 0 is the tree root.
struct Node {
    /// Directory name under the parent's `node_modules`.
    name: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    /// `None` only for the root.
    package: Option<Placed>,
}

struct Placed {
    real_name: String,
    version: Version,
    /// The version string as written in `package.json` for local packages.
    version_text: String,
    source: PackageSource,
    edges: Vec<Edge>,
    /// Whether its `os` / `cpu` / `libc` fields admit this machine.
    fits_platform: bool,
}

/// Builds the hoisted tree breadth-first, starting metadata and tarball fetches as soon as a
/// package's place is known so they overlap with the rest of the walk.
struct TreeBuilder {
    inner: Arc<Inner>,
    loader: Arc<MetadataLoader>,
    offline: bool,
    nodes: Vec<Node>,
    queue: VecDeque<usize>,
    /// Name → (dependent, node it resolved to), to keep later placements from shadowing them.
    resolved: HashMap<String, Vec<(usize, usize)>>,
    downloads: HashMap<String, tokio::task::JoinHandle<Result<bool, NpmError>>>,
    prefetches: JoinSet<()>,
}

impl TreeBuilder {
    fn new(inner: Arc<Inner>, loader: Arc<MetadataLoader>, offline: bool) -> TreeBuilder {
        let root = Node {
            name: String::new(),
            parent: None,
            children: BTreeMap::new(),
            package: None,
        };
        TreeBuilder {
            inner,
            loader,
            offline,
            nodes: vec![root],
            queue: VecDeque::new(),
            resolved: HashMap::new(),
            downloads: HashMap::new(),
            prefetches: JoinSet::new(),
        }
    }

    /// Puts the flow's own requests at the top, so they always win over transitive versions.
    async fn place_requests(
        &mut self,
        requests: &[Request],
        locals: &LocalManifests,
        overrides: &Overrides,
    ) -> Result<(), NpmError> {
        for request in requests {
            validate_name(&request.name)?;
            if let RequestSource::Registry(spec) = &request.source {
                let real = match Spec::parse(spec) {
                    Spec::Alias { package, .. } => package,
                    _ => request.name.clone(),
                };
                self.prefetch(&real);
            }
        }

        let mut specs: HashMap<&str, &str> = HashMap::new();
        for request in requests {
            match &request.source {
                RequestSource::Local(dir) => {
                    let local = &locals[dir];
                    if self.nodes[0].children.contains_key(&request.name) {
                        return Err(NpmError::ConflictingRequests {
                            package: request.name.clone(),
                            first: "another entry".into(),
                            second: dir.display().to_string(),
                        });
                    }
                    let version =
                        range::parse_version(&local.version).unwrap_or(Version::new(0, 0, 0));
                    let placed = Placed {
                        real_name: request.name.clone(),
                        version,
                        version_text: local.version.clone(),
                        source: PackageSource::Local {
                            dir: dir.clone(),
                            fingerprint: String::new(),
                        },
                        edges: local.dependencies.clone(),
                        fits_platform: true,
                    };
                    self.add_node(0, &request.name, placed, overrides);
                }
                RequestSource::Registry(spec) => {
                    if let Some(&existing) = self.nodes[0].children.get(&request.name) {
                        if self.satisfies(existing, spec).await? {
                            continue;
                        }
                        return Err(NpmError::ConflictingRequests {
                            package: request.name.clone(),
                            first: specs.get(request.name.as_str()).unwrap_or(&"?").to_string(),
                            second: spec.clone(),
                        });
                    }
                    specs.insert(&request.name, spec);
                    let placed = self.choose(&request.name, spec, "the flow").await?;
                    self.add_node(0, &request.name, placed, overrides);
                }
            }
        }
        Ok(())
    }

    /// Resolves every queued package's dependencies until the tree is complete.
    async fn walk(&mut self, overrides: &Overrides) -> Result<(), NpmError> {
        while let Some(id) = self.queue.pop_front() {
            let (edges, dependent) = {
                let placed = self.nodes[id]
                    .package
                    .as_ref()
                    .expect("queued nodes are packages");
                (
                    placed.edges.clone(),
                    format!("{}@{}", placed.real_name, placed.version_text),
                )
            };
            for edge in edges {
                let spec = overrides.get(&edge.name).unwrap_or(&edge.spec).clone();
                self.place_edge(id, &edge, &spec, &dependent, overrides)
                    .await?;
            }
        }
        Ok(())
    }

    async fn place_edge(
        &mut self,
        from: usize,
        edge: &Edge,
        spec: &str,
        dependent: &str,
        overrides: &Overrides,
    ) -> Result<(), NpmError> {
        // A peer must be the copy the dependent's own parent sees, so the search starts there.
        let start = match edge.kind {
            EdgeKind::Peer => self.nodes[from].parent.unwrap_or(0),
            EdgeKind::Prod | EdgeKind::Optional => from,
        };

        // Node's lookup: the first copy of the name on the way up is the one the dependent
        // would load, so either it fits or a new copy has to go below it.
        let mut blocker = None;
        let mut at = Some(start);
        while let Some(id) = at {
            if let Some(&existing) = self.nodes[id].children.get(&edge.name) {
                blocker = Some(id);
                if self.satisfies(existing, spec).await? {
                    self.record(from, &edge.name, existing);
                    return Ok(());
                }
                if edge.kind == EdgeKind::Peer {
                    let found = &self.nodes[existing]
                        .package
                        .as_ref()
                        .expect("package")
                        .version;
                    warn!(
                        package = %edge.name, wanted = spec, found = %found,
                        required_by = dependent,
                        "Peer dependency conflict, keeping the installed version"
                    );
                    return Ok(());
                }
                break;
            }
            at = self.nodes[id].parent;
        }

        // The new copy goes as high as possible below that copy, but never where it would
        // shadow a copy that something already placed beneath resolves to.
        let mut parent = start;
        let mut at = start;
        while Some(at) != blocker && self.can_place(at, &edge.name) {
            parent = at;
            match self.nodes[at].parent {
                Some(up) => at = up,
                None => break,
            }
        }

        let placed = match self.choose(&edge.name, spec, dependent).await {
            Ok(placed) => placed,
            Err(error) if edge.kind == EdgeKind::Optional => {
                debug!(
                    package = %edge.name, required_by = dependent, %error,
                    "Skipping optional dependency"
                );
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        if blocker == Some(parent) {
            return Err(NpmError::Layout {
                package: dependent.to_string(),
                detail: format!(
                    "no place left for {}@{spec} below a conflicting copy",
                    edge.name
                ),
            });
        }
        if edge.kind == EdgeKind::Optional && !placed.fits_platform {
            debug!(
                package = %edge.name, required_by = dependent,
                "Skipping optional dependency for another platform"
            );
            return Ok(());
        }
        let id = self.add_node(parent, &edge.name, placed, overrides);
        self.record(from, &edge.name, id);
        Ok(())
    }

    /// Picks the version for `spec` and prepares the package's node.
    async fn choose(
        &mut self,
        name: &str,
        spec_text: &str,
        required_by: &str,
    ) -> Result<Placed, NpmError> {
        let unsupported = || NpmError::UnsupportedSpec {
            package: name.to_string(),
            spec: spec_text.to_string(),
            required_by: required_by.to_string(),
        };
        let (real_name, spec) = match Spec::parse(spec_text) {
            Spec::Alias { package, spec } => (package, *spec),
            Spec::Unsupported => return Err(unsupported()),
            spec => (name.to_string(), spec),
        };
        validate_name(&real_name)?;

        let versions = self.loader.get(&real_name).await?;
        let Some((version, manifest)) = versions.pick(&spec) else {
            return Err(NpmError::NoMatchingVersion {
                package: real_name,
                spec: spec_text.to_string(),
                required_by: required_by.to_string(),
                available: versions.newest(5),
            });
        };
        let integrity = manifest.integrity().ok_or_else(|| NpmError::BadMetadata {
            package: format!("{real_name}@{version}"),
            url: manifest.dist.tarball.clone(),
            detail: "the version has neither `integrity` nor `shasum`".into(),
        })?;
        Ok(Placed {
            real_name,
            version: version.clone(),
            version_text: version.to_string(),
            source: PackageSource::Registry {
                integrity: integrity.to_string(),
                tarball: manifest.dist.tarball.clone(),
            },
            edges: edges_of(manifest),
            fits_platform: manifest_fits(manifest),
        })
    }

    /// Whether the package at `node` is acceptable for `spec` (local packages always are).
    async fn satisfies(&self, node: usize, spec_text: &str) -> Result<bool, NpmError> {
        let placed = self.nodes[node]
            .package
            .as_ref()
            .expect("only packages are children");
        if matches!(placed.source, PackageSource::Local { .. }) {
            return Ok(true);
        }
        let (real_name, spec) = match Spec::parse(spec_text) {
            Spec::Alias { package, spec } => (package, *spec),
            spec => (self.nodes[node].name.clone(), spec),
        };
        if real_name != placed.real_name {
            return Ok(false);
        }
        Ok(match spec {
            Spec::Range(range) => range.matches(&placed.version),
            Spec::Tag(tag) => {
                let versions = self.loader.get(&real_name).await?;
                versions
                    .packument
                    .dist_tags
                    .get(&tag)
                    .and_then(|v| range::parse_version(v))
                    .is_some_and(|v| v == placed.version)
            }
            Spec::Alias { .. } | Spec::Unsupported => false,
        })
    }

    /// Whether a new `name` at `at` leaves every earlier resolution from below `at` intact:
    /// none of them may currently go to a copy above `at`.
    fn can_place(&self, at: usize, name: &str) -> bool {
        let Some(edges) = self.resolved.get(name) else {
            return true;
        };
        edges
            .iter()
            .all(|&(from, target)| !self.is_within(from, at) || self.is_within(target, at))
    }

    /// Whether `node` is `ancestor` or lies under its `node_modules`.
    fn is_within(&self, node: usize, ancestor: usize) -> bool {
        let mut at = Some(node);
        while let Some(id) = at {
            if id == ancestor {
                return true;
            }
            at = self.nodes[id].parent;
        }
        false
    }

    fn record(&mut self, from: usize, name: &str, target: usize) {
        self.resolved
            .entry(name.to_string())
            .or_default()
            .push((from, target));
    }

    fn add_node(
        &mut self,
        parent: usize,
        name: &str,
        placed: Placed,
        overrides: &Overrides,
    ) -> usize {
        for edge in &placed.edges {
            let spec = overrides.get(&edge.name).unwrap_or(&edge.spec);
            match Spec::parse(spec) {
                Spec::Alias { package, .. } => self.prefetch(&package),
                Spec::Unsupported => {}
                _ => self.prefetch(&edge.name),
            }
        }
        if let PackageSource::Registry { integrity, tarball } = &placed.source {
            self.start_download(&placed, integrity, tarball);
        }

        let id = self.nodes.len();
        self.nodes.push(Node {
            name: name.to_string(),
            parent: Some(parent),
            children: BTreeMap::new(),
            package: Some(placed),
        });
        self.nodes[parent].children.insert(name.to_string(), id);
        self.queue.push_back(id);
        id
    }

    fn prefetch(&mut self, name: &str) {
        if validate_name(name).is_err() {
            return;
        }
        let loader = self.loader.clone();
        let name = name.to_string();
        self.prefetches.spawn(async move {
            let _ = loader.get(&name).await;
        });
    }

    fn start_download(&mut self, placed: &Placed, integrity: &str, tarball: &str) {
        let Some(integrity) = Integrity::parse_sri(integrity) else {
            return;
        };
        let key = integrity.store_key();
        if self.downloads.contains_key(&key) {
            return;
        }
        let fetch = PackageFetch {
            name: placed.real_name.clone(),
            version: placed.version_text.clone(),
            integrity,
            tarball: tarball.to_string(),
        };
        let inner = self.inner.clone();
        let offline = self.offline;
        let handle = tokio::spawn(async move { inner.ensure_package(&fetch, offline).await });
        self.downloads.insert(key, handle);
    }

    /// Verifies that Node's lookup from every dependent reaches the copy it was resolved to;
    /// hoisting is meant to guarantee that, and a broken bundle is worse than a clear error.
    fn check_layout(&self) -> Result<(), NpmError> {
        for (name, edges) in &self.resolved {
            for &(from, target) in edges {
                let mut at = Some(from);
                let mut found = None;
                while let Some(id) = at {
                    if let Some(&child) = self.nodes[id].children.get(name) {
                        found = Some(child);
                        break;
                    }
                    at = self.nodes[id].parent;
                }
                if found != Some(target) {
                    return Err(NpmError::Layout {
                        package: self.location(from),
                        detail: format!("its dependency {name} is shadowed by another version"),
                    });
                }
            }
        }
        Ok(())
    }

    fn location(&self, node: usize) -> String {
        let mut parts = Vec::new();
        let mut at = Some(node);
        while let Some(id) = at {
            if id != 0 {
                parts.push(format!("node_modules/{}", self.nodes[id].name));
            }
            at = self.nodes[id].parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Waits for every download and returns the layout, parents first, with the number of
    /// packages that had to be fetched or unpacked.
    async fn finish(mut self) -> Result<(Resolution, usize), NpmError> {
        self.prefetches.abort_all();
        let mut first_error = None;
        let mut fetched = 0;
        for (_, handle) in self.downloads.drain() {
            let result = handle.await.map_err(|e| NpmError::Layout {
                package: "(download)".into(),
                detail: e.to_string(),
            });
            match result {
                Ok(Ok(unpacked)) => fetched += usize::from(unpacked),
                Err(error) | Ok(Err(error)) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }

        let mut packages = Vec::new();
        let mut stack = vec![0];
        while let Some(id) = stack.pop() {
            if let Some(placed) = &self.nodes[id].package {
                packages.push(ResolvedPackage {
                    location: self.location(id),
                    name: placed.real_name.clone(),
                    version: placed.version_text.clone(),
                    source: placed.source.clone(),
                });
            }
            stack.extend(self.nodes[id].children.values().rev());
        }
        let resolution = Resolution {
            packages,
            id: String::new(),
        };
        Ok((resolution, fetched))
    }
}

#[cfg(unix)]
fn symlink_dir(target: &Path, link: &Path) -> Result<(), NpmError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| NpmError::io("symlink", link, e))
}

#[cfg(windows)]
fn symlink_dir(target: &Path, link: &Path) -> Result<(), NpmError> {
    std::os::windows::fs::symlink_dir(target, link).map_err(|e| NpmError::io("symlink", link, e))
}

/// npm's name for this operating system.
fn npm_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        "solaris" | "illumos" => "sunos",
        other => other,
    }
}

/// npm's name for this CPU architecture.
fn npm_cpu() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x64",
        "x86" => "ia32",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "powerpc64" => "ppc64",
        "mips64" => "mips64el",
        other => other,
    }
}

/// The C library npm's `libc` field compares against (Linux only).
fn npm_libc() -> Option<&'static str> {
    if !cfg!(target_os = "linux") {
        None
    } else if cfg!(target_env = "musl") {
        Some("musl")
    } else {
        Some("glibc")
    }
}

/// npm's rule for `os` / `cpu` / `libc` lists: a `!value` entry excludes, and a list with any
/// plain entries must contain the current value.
fn list_allows(list: &[String], current: Option<&str>) -> bool {
    let Some(current) = current else {
        return true;
    };
    if list.is_empty() {
        return true;
    }
    if list
        .iter()
        .any(|entry| entry.strip_prefix('!') == Some(current))
    {
        return false;
    }
    let plain: Vec<&String> = list
        .iter()
        .filter(|entry| !entry.starts_with('!'))
        .collect();
    plain.is_empty() || plain.iter().any(|entry| *entry == current)
}

/// Whether a manifest's platform fields admit this machine.
fn manifest_fits(manifest: &Manifest) -> bool {
    list_allows(&manifest.os, Some(npm_os()))
        && list_allows(&manifest.cpu, Some(npm_cpu()))
        && list_allows(&manifest.libc, npm_libc())
}

#[cfg(test)]
mod tests {
    //! Layout rules checked offline against packages published into a temporary store.

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::{Value, json};

    use super::*;

    /// Adds `name@version` with `manifest` fields to the store's metadata cache and tarballs,
    /// as if an earlier online build had fetched it. `latest` follows the last publish.
    fn publish(store: &Store, name: &str, version: &str, manifest: Value) {
        let mut package_json = manifest.clone();
        package_json["name"] = json!(name);
        package_json["version"] = json!(version);
        let body = serde_json::to_vec(&package_json).unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "package/package.json", body.as_slice())
            .unwrap();
        let tgz = builder.into_inner().unwrap().finish().unwrap();
        let mut hasher = Integrity::parse_sri(&format!("sha512-{}==", "A".repeat(86)))
            .unwrap()
            .hasher();
        hasher.update(&tgz);
        let integrity = hasher.finish();
        std::fs::write(store.tarball_path(&integrity), &tgz).unwrap();

        let path = store.metadata_path(name);
        let mut cached: Value = std::fs::read(&path)
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
            .unwrap_or_else(|_| json!({"etag": null, "last_modified": null, "packument": {}}));
        let mut entry = manifest;
        entry["dist"] = json!({
            "tarball": format!("https://packages.invalid/{name}/-/x-{version}.tgz"),
            "integrity": integrity.to_string(),
        });
        cached["packument"]["versions"][version] = entry;
        cached["packument"]["dist-tags"]["latest"] = json!(version);
        std::fs::write(&path, serde_json::to_vec(&cached).unwrap()).unwrap();
    }

    fn tag(store: &Store, name: &str, tag: &str, version: &str) {
        let path = store.metadata_path(name);
        let mut cached: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        cached["packument"]["dist-tags"][tag] = json!(version);
        std::fs::write(&path, serde_json::to_vec(&cached).unwrap()).unwrap();
    }

    async fn layout(
        store: &Store,
        requests: &[(&str, &str)],
        overrides: &[(&str, &str)],
    ) -> Result<BTreeMap<String, String>, NpmError> {
        let resolver = Resolver::new(NpmConfig::default(), store.clone())?;
        let requests: Vec<Request> = requests
            .iter()
            .map(|(name, spec)| Request::registry(*name, *spec))
            .collect();
        let overrides: Overrides = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let options = ResolveOptions {
            offline: true,
            refresh: true,
        };
        let resolution = resolver.resolve(&requests, &overrides, options).await?;
        Ok(resolution
            .packages
            .into_iter()
            .map(|p| (p.location, format!("{}@{}", p.name, p.version)))
            .collect())
    }

    fn expect(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(location, package)| (format!("node_modules/{location}"), package.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn first_version_is_hoisted_and_a_conflicting_one_nested() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(&store, "a", "1.0.0", json!({"dependencies": {"c": "^1"}}));
        publish(
            &store,
            "b",
            "1.0.0",
            json!({"dependencies": {"c": "^2", "a": "^1"}}),
        );
        publish(&store, "c", "1.0.0", json!({}));
        publish(&store, "c", "2.0.0", json!({"dependencies": {"a": "*"}}));

        let got = layout(&store, &[("a", "^1"), ("b", "^1")], &[])
            .await
            .unwrap();
        let want = expect(&[
            ("a", "a@1.0.0"),
            ("b", "b@1.0.0"),
            ("b/node_modules/c", "c@2.0.0"),
            ("c", "c@1.0.0"),
        ]);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_new_copy_never_shadows_an_earlier_resolution() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(&store, "x", "1.0.0", json!({}));
        publish(&store, "x", "2.0.0", json!({}));
        publish(&store, "b", "1.0.0", json!({}));
        publish(&store, "b", "2.0.0", json!({"dependencies": {"x": "^2"}}));
        publish(
            &store,
            "a",
            "1.0.0",
            json!({"dependencies": {"b": "^2", "x": "^1"}}),
        );

        // a's own x@1 comes from the top, so b@2's x@2 must not go into a/node_modules.
        let got = layout(
            &store,
            &[("x", "1.0.0"), ("b", "1.0.0"), ("a", "1.0.0")],
            &[],
        )
        .await
        .unwrap();
        let want = expect(&[
            ("a", "a@1.0.0"),
            ("a/node_modules/b", "b@2.0.0"),
            ("a/node_modules/b/node_modules/x", "x@2.0.0"),
            ("b", "b@1.0.0"),
            ("x", "x@1.0.0"),
        ]);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn peers_are_installed_unless_optional() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(&store, "q", "1.0.0", json!({}));
        publish(&store, "s", "1.0.0", json!({}));
        publish(
            &store,
            "p",
            "1.0.0",
            json!({
                "peerDependencies": {"q": "^1", "s": "^1"},
                "peerDependenciesMeta": {"s": {"optional": true}}
            }),
        );
        let got = layout(&store, &[("p", "1")], &[]).await.unwrap();
        assert_eq!(got, expect(&[("p", "p@1.0.0"), ("q", "q@1.0.0")]));
    }

    #[tokio::test]
    async fn optional_dependencies_follow_the_platform_and_may_be_missing() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(
            &store,
            "native-here",
            "1.0.0",
            json!({"os": [npm_os()], "cpu": [npm_cpu()]}),
        );
        publish(
            &store,
            "native-elsewhere",
            "1.0.0",
            json!({"os": [format!("!{}", npm_os())]}),
        );
        publish(
            &store,
            "tool",
            "1.0.0",
            json!({"optionalDependencies": {
                "native-here": "1.0.0",
                "native-elsewhere": "1.0.0",
                "never-cached": "1.0.0"
            }}),
        );
        let got = layout(&store, &[("tool", "1.0.0")], &[]).await.unwrap();
        assert_eq!(
            got,
            expect(&[("native-here", "native-here@1.0.0"), ("tool", "tool@1.0.0")])
        );
    }

    #[tokio::test]
    async fn latest_tag_wins_when_in_range_and_overrides_and_aliases_apply() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        for version in ["1.0.0", "1.1.0", "1.2.0", "2.0.0-beta.1"] {
            publish(&store, "u", version, json!({}));
        }
        tag(&store, "u", "latest", "1.1.0");
        publish(&store, "c", "1.0.0", json!({}));
        publish(&store, "c", "2.0.0", json!({}));
        publish(
            &store,
            "v",
            "1.0.0",
            json!({"dependencies": {"w": "npm:c@^2", "c": "^1"}}),
        );

        let got = layout(&store, &[("u", "^1")], &[]).await.unwrap();
        assert_eq!(got, expect(&[("u", "u@1.1.0")]));
        let got = layout(&store, &[("u", ">1.1.0")], &[]).await.unwrap();
        assert_eq!(got, expect(&[("u", "u@1.2.0")]), "prereleases stay out");

        let got = layout(&store, &[("v", "1.0.0")], &[]).await.unwrap();
        assert_eq!(
            got,
            expect(&[("c", "c@1.0.0"), ("v", "v@1.0.0"), ("w", "c@2.0.0")])
        );

        let got = layout(&store, &[("v", "1.0.0")], &[("c", "2.0.0")])
            .await
            .unwrap();
        assert_eq!(got["node_modules/c"], "c@2.0.0");
    }

    #[tokio::test]
    async fn direct_requests_win_and_conflicting_ones_are_refused() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(&store, "c", "1.0.0", json!({}));
        publish(&store, "c", "2.0.0", json!({}));
        publish(&store, "v", "1.0.0", json!({"dependencies": {"c": "^2"}}));

        // The override targets transitive dependencies only; the flow's own c@1 stays.
        let got = layout(&store, &[("c", "1.0.0"), ("v", "1")], &[("c", "2.0.0")])
            .await
            .unwrap();
        assert_eq!(got["node_modules/c"], "c@1.0.0");
        assert_eq!(got["node_modules/v/node_modules/c"], "c@2.0.0");

        let error = layout(&store, &[("c", "1"), ("c", "2")], &[])
            .await
            .unwrap_err();
        assert!(
            matches!(error, NpmError::ConflictingRequests { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn unsupported_specs_name_the_dependent() {
        let cache = tempfile::tempdir().unwrap();
        let store = Store::open(cache.path()).unwrap();
        publish(
            &store,
            "g",
            "1.0.0",
            json!({"dependencies": {"h": "git+https://x.invalid/h"}}),
        );
        let error = layout(&store, &[("g", "1")], &[]).await.unwrap_err();
        let NpmError::UnsupportedSpec { required_by, .. } = &error else {
            panic!("{error}");
        };
        assert_eq!(required_by, "g@1.0.0");
    }
}
