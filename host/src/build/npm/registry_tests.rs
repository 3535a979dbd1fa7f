//! Tests against the real registry named by this machine's npm configuration (no registry is
//! named here), each with its own temporary store. They print timings but assert none.

use std::path::Path;
use std::time::Instant;

use super::*;

/// The packages of the api flow: collector, the API destination and the bundler itself.
fn api_flow_requests() -> Vec<Request> {
    vec![
        Request::registry("@walkeros/collector", "4.2.1"),
        Request::registry("@walkeros/server-destination-api", "4.2.1"),
        Request::registry("esbuild", "0.28.2"),
    ]
}

/// The npm configuration of this machine, with the registry the npm CLI would use when it
/// names none.
fn configured() -> NpmConfig {
    NpmConfig::from_env(&std::env::current_dir().unwrap())
        .and_then(NpmConfig::or_npm_cli_registry)
        .expect("an npm registry: set NPM_CONFIG_REGISTRY or install npm")
}

fn resolver(cache: &Path) -> Resolver {
    Resolver::new(configured(), Store::open(cache).unwrap()).unwrap()
}

const ONLINE: ResolveOptions = ResolveOptions {
    offline: false,
    refresh: false,
};
const OFFLINE: ResolveOptions = ResolveOptions {
    offline: true,
    refresh: false,
};

fn find<'a>(resolution: &'a Resolution, location: &str) -> &'a ResolvedPackage {
    resolution
        .packages
        .iter()
        .find(|p| p.location == location)
        .unwrap_or_else(|| panic!("{location} missing from {:#?}", resolution.packages))
}

#[tokio::test]
async fn api_flow_resolves_cold_then_offline_from_the_warm_store() {
    let cache = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let npm = resolver(cache.path());

    let started = Instant::now();
    let cold = npm
        .resolve(&api_flow_requests(), &Overrides::new(), ONLINE)
        .await
        .unwrap();
    let cold_resolve = started.elapsed();
    let started = Instant::now();
    let node_modules = npm.materialize(&cold, build.path()).await.unwrap();
    let cold_materialize = started.elapsed();

    assert_eq!(
        find(&cold, "node_modules/@walkeros/collector").version,
        "4.2.1"
    );
    assert_eq!(find(&cold, "node_modules/@walkeros/core").version, "4.2.1");
    assert_eq!(
        find(&cold, "node_modules/@walkeros/server-core").version,
        "4.2.1"
    );
    assert!(find(&cold, "node_modules/zod").version.starts_with('4'));
    assert!(
        node_modules
            .join("@walkeros/collector/package.json")
            .is_file()
    );
    assert!(node_modules.join("zod/package.json").is_file());

    // Only this machine's esbuild binary is installed, and it is executable.
    if cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    )) {
        let binary = find(&cold, "node_modules/@esbuild/linux-x64");
        assert_eq!(binary.version, "0.28.2");
        let path = npm.package_dir(binary).unwrap().join("bin/esbuild");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{} is not executable", path.display());
        assert!(
            node_modules
                .join("@esbuild/linux-x64/bin/esbuild")
                .is_file()
        );
    }
    assert!(!cold.packages.iter().any(|p| p.name == "@esbuild/win32-x64"));

    // A new resolver over the same store, with the network forbidden; the timing includes
    // opening the store as a fresh process would.
    let config = configured();
    let started = Instant::now();
    let npm = Resolver::new(config, Store::open(cache.path()).unwrap()).unwrap();
    let warm = npm
        .resolve(&api_flow_requests(), &Overrides::new(), OFFLINE)
        .await
        .unwrap();
    let warm_resolve = started.elapsed();
    let started = Instant::now();
    npm.materialize(&warm, build.path()).await.unwrap();
    let warm_materialize = started.elapsed();
    assert_eq!(warm.packages, cold.packages);
    assert_eq!(warm.id(), cold.id());

    // Without the index, offline resolution works from cached metadata and tarballs.
    std::fs::remove_dir_all(cache.path().join("npm/index")).unwrap();
    std::fs::create_dir(cache.path().join("npm/index")).unwrap();
    let started = Instant::now();
    let from_metadata = npm
        .resolve(&api_flow_requests(), &Overrides::new(), OFFLINE)
        .await
        .unwrap();
    let metadata_resolve = started.elapsed();
    assert_eq!(from_metadata.packages, cold.packages);

    println!(
        "{} packages: cold resolve {cold_resolve:?}, cold materialize {cold_materialize:?}, \
         warm offline resolve {warm_resolve:?}, warm materialize {warm_materialize:?}, \
         offline resolve from metadata cache {metadata_resolve:?}",
        cold.packages.len()
    );
}

#[tokio::test]
async fn missing_package_is_not_found() {
    let cache = tempfile::tempdir().unwrap();
    let requests = [Request::registry(
        "@flowhost-test-missing/never-published",
        "1.0.0",
    )];
    let error = resolver(cache.path())
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap_err();
    assert!(matches!(error, NpmError::NotFound { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("@flowhost-test-missing/never-published")
    );
}

#[tokio::test]
async fn bogus_version_lists_the_newest_published() {
    let cache = tempfile::tempdir().unwrap();
    let requests = [Request::registry("@walkeros/core", "99.0.0")];
    let error = resolver(cache.path())
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap_err();
    let NpmError::NoMatchingVersion { available, .. } = &error else {
        panic!("{error}");
    };
    assert!(available.contains("4.2.1"), "{error}");
}

#[tokio::test]
async fn tampered_store_tarball_is_detected_offline_and_replaced_online() {
    let cache = tempfile::tempdir().unwrap();
    let npm = resolver(cache.path());
    let requests = [Request::registry("@walkeros/core", "4.2.1")];
    let resolution = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap();
    let core = find(&resolution, "node_modules/@walkeros/core");

    // Damage the stored tarball and drop the unpacked copy so it has to be used again.
    let PackageSource::Registry { integrity, .. } = &core.source else {
        panic!("registry package expected");
    };
    let integrity = integrity::Integrity::parse_sri(integrity).unwrap();
    let tgz = npm.store().tarball_path(&integrity);
    let mut bytes = std::fs::read(&tgz).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&tgz, bytes).unwrap();
    std::fs::remove_dir_all(npm.package_dir(core).unwrap()).unwrap();

    let error = npm
        .resolve(&requests, &Overrides::new(), OFFLINE)
        .await
        .unwrap_err();
    let NpmError::IntegrityMismatch { package, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(package, "@walkeros/core@4.2.1");

    let repaired = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap();
    assert!(
        npm.package_dir(find(&repaired, "node_modules/@walkeros/core"))
            .unwrap()
            .is_dir()
    );
}

#[tokio::test]
async fn download_with_a_different_hash_is_rejected() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let registry = registry::Registry::new(configured());
    let packument = registry
        .packument(&store, "@walkeros/core", false)
        .await
        .unwrap();
    let tarball = &packument.versions["4.2.1"].dist.tarball;

    let mut hasher = integrity::Integrity::parse_sri(&format!("sha512-{}", "A".repeat(86) + "=="))
        .unwrap()
        .hasher();
    hasher.update(b"not the tarball");
    let wrong = hasher.finish();
    let dest = cache.path().join("download.tgz");
    let error = registry
        .download(tarball, &wrong, "@walkeros/core", &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(error, NpmError::IntegrityMismatch { .. }),
        "{error}"
    );
    assert!(!dest.exists(), "a rejected download must not stay on disk");
}

#[tokio::test]
async fn offline_miss_names_the_package_and_the_remedy() {
    let cache = tempfile::tempdir().unwrap();
    let requests = [Request::registry("@walkeros/core", "4.2.1")];
    let error = resolver(cache.path())
        .resolve(&requests, &Overrides::new(), OFFLINE)
        .await
        .unwrap_err();
    assert!(matches!(error, NpmError::Offline { .. }), "{error}");
    assert!(error.to_string().contains("@walkeros/core"), "{error}");
}

#[tokio::test]
async fn unreachable_registry_names_the_url_and_the_fixes() {
    let cache = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    let config = NpmConfig::with_registry("http://127.0.0.1:9/").unwrap();
    let npm = Resolver::new(config, Store::open(cache.path()).unwrap()).unwrap();
    let requests = [Request::registry("zod", "^4")];
    let error = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap_err();
    assert!(matches!(error, NpmError::Unreachable { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("127.0.0.1:9") && message.contains("NPM_CONFIG_REGISTRY"),
        "{message}"
    );
}

#[tokio::test]
async fn no_configured_registry_is_reported_when_the_network_is_needed() {
    let cache = tempfile::tempdir().unwrap();
    let npm = Resolver::new(NpmConfig::default(), Store::open(cache.path()).unwrap()).unwrap();
    let requests = [Request::registry("zod", "^4")];
    let error = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap_err();
    assert!(matches!(error, NpmError::NoRegistry), "{error}");
}

#[tokio::test]
async fn conflicting_versions_nest_and_overrides_apply_to_transitive_deps() {
    let cache = tempfile::tempdir().unwrap();
    let npm = resolver(cache.path());

    // The flow's own zod 3 takes the top; core's zod 4 is nested under core.
    let requests = [
        Request::registry("@walkeros/core", "4.2.1"),
        Request::registry("zod", "3.25.76"),
    ];
    let nested = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap();
    assert_eq!(find(&nested, "node_modules/zod").version, "3.25.76");
    let inner = find(&nested, "node_modules/@walkeros/core/node_modules/zod");
    assert!(inner.version.starts_with('4'), "{inner:?}");

    let build = tempfile::tempdir().unwrap();
    let node_modules = npm.materialize(&nested, build.path()).await.unwrap();
    assert!(
        node_modules
            .join("@walkeros/core/node_modules/zod/package.json")
            .is_file()
    );

    // An override pins the transitive zod without touching the direct request.
    let overrides = Overrides::from([("zod".to_string(), "4.2.0".to_string())]);
    let requests = [Request::registry("@walkeros/core", "4.2.1")];
    let pinned = npm.resolve(&requests, &overrides, ONLINE).await.unwrap();
    assert_eq!(find(&pinned, "node_modules/zod").version, "4.2.0");
}

#[tokio::test]
async fn local_package_is_copied_and_its_dependencies_resolved() {
    let cache = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    std::fs::write(
        source.path().join("package.json"),
        r#"{"name":"my-destination","version":"1.0.0","main":"index.js",
            "dependencies":{"@walkeros/core":"4.2.1"}}"#,
    )
    .unwrap();
    std::fs::write(source.path().join("index.js"), "export const v = 1;").unwrap();
    std::fs::create_dir(source.path().join("node_modules")).unwrap();
    std::fs::write(source.path().join("node_modules/stale.js"), "").unwrap();

    let npm = resolver(cache.path());
    let dir = source.path().to_str().unwrap();
    let requests = [Request::from_flow_package(dir, None, None, Path::new("/")).unwrap()];
    assert_eq!(requests[0].name, "my-destination");

    let first = npm
        .resolve(&requests, &Overrides::new(), ONLINE)
        .await
        .unwrap();
    assert_eq!(find(&first, "node_modules/@walkeros/core").version, "4.2.1");
    let node_modules = npm.materialize(&first, build.path()).await.unwrap();
    let copied = node_modules.join("my-destination");
    assert_eq!(
        std::fs::read_to_string(copied.join("index.js")).unwrap(),
        "export const v = 1;"
    );
    assert!(!copied.join("node_modules").exists());

    // Editing the local package gives a new tree, even from the warm index and offline.
    std::fs::write(source.path().join("index.js"), "export const v = 2;").unwrap();
    let second = npm
        .resolve(&requests, &Overrides::new(), OFFLINE)
        .await
        .unwrap();
    assert_ne!(first.id(), second.id());
    let node_modules = npm.materialize(&second, build.path()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(node_modules.join("my-destination/index.js")).unwrap(),
        "export const v = 2;"
    );
}
