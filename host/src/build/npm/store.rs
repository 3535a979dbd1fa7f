//! The on-disk package store under `<cache>/npm/`: verified tarballs by content hash, unpacked
//! packages, cached registry metadata, the resolution index and the materialized trees.
//!
//! Layout:
//! - `tarballs/<algorithm>-<hex digest>.tgz`: tarballs exactly as published, named by hash;
//! - `packages/<name>@<version>-<digest prefix>/`: each tarball unpacked once;
//! - `metadata/<name>.json`: the fields of the registry metadata the resolver reads, with the
//!   ETag / Last-Modified used to revalidate it;
//! - `index/<key>.json`: the resolution of one set of requests (a lock file the store keeps);
//! - `trees/<resolution id>/node_modules/`: the laid-out tree, hard-linked from `packages/`;
//! - `tmp/`: staging, so every entry above appears by one atomic rename and a crashed or
//!   concurrent build never leaves half a package behind.
//!
//! Nothing here deletes old entries yet: a store only grows until the cache directory is
//! cleared.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use flate2::read::GzDecoder;
use tracing::{debug, warn};

use super::NpmError;
use super::integrity::Integrity;

/// Directories of a local package that are never copied into a tree.
const LOCAL_SKIP: [&str; 3] = ["node_modules", ".git", ".turbo"];

/// Staging entries older than this belong to a build that died; a running build finishes a
/// single package or tree in seconds, so a day is generous.
const STALE_TMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Makes staging names unique within the process; the pid separates processes.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The content-addressed package store of one cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    /// `<cache>/npm`.
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store under `cache_dir` and clears staging entries that
    /// a crashed build left behind.
    pub fn open(cache_dir: &Path) -> Result<Store, NpmError> {
        let root = cache_dir.join("npm");
        for sub in ["tarballs", "packages", "metadata", "index", "trees", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| NpmError::io("create", &dir, e))?;
        }
        let store = Store { root };
        store.clear_stale_tmp();
        Ok(store)
    }

    /// The store's root directory, `<cache>/npm`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tarball_path(&self, integrity: &Integrity) -> PathBuf {
        self.root
            .join("tarballs")
            .join(format!("{}.tgz", integrity.store_key()))
    }

    /// Where a registry package is unpacked. `name` must have passed `validate_name`.
    pub(crate) fn package_dir(&self, name: &str, version: &str, integrity: &Integrity) -> PathBuf {
        self.root
            .join("packages")
            .join(format!("{name}@{version}-{}", integrity.short_key()))
    }

    pub(crate) fn metadata_path(&self, name: &str) -> PathBuf {
        self.root
            .join("metadata")
            .join(format!("{}.json", name.replace('/', "%2f")))
    }

    pub(crate) fn index_path(&self, key: &str) -> PathBuf {
        self.root.join("index").join(format!("{key}.json"))
    }

    pub(crate) fn tree_dir(&self, id: &str) -> PathBuf {
        self.root.join("trees").join(id)
    }

    /// A fresh staging path in `tmp/`, on the same file system as its final place.
    pub(crate) fn temp_path(&self, label: &str) -> PathBuf {
        self.root.join("tmp").join(unique_name(label))
    }

    /// Writes `bytes` to `path` through a staging file and a rename, so readers see the old
    /// file or the new one, never a partial one.
    pub(crate) fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), NpmError> {
        let tmp = self.temp_path("write");
        fs::write(&tmp, bytes).map_err(|e| NpmError::io("write", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            NpmError::io("rename into", path, e)
        })
    }

    /// Moves a finished staging directory to `dest`. Another build may have put the same
    /// content there first; that copy is as good as ours, so ours is dropped.
    pub(crate) fn publish_dir(&self, staged: &Path, dest: &Path) -> Result<(), NpmError> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| NpmError::io("create", parent, e))?;
        }
        match fs::rename(staged, dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(staged);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(staged);
                Err(NpmError::io("rename into", dest, e))
            }
        }
    }

    fn clear_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_TMP_AGE);
            if old {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }
}

/// `<label>-<pid>-<counter>`: unique among all processes sharing a directory.
pub(crate) fn unique_name(label: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{n}", std::process::id())
}

/// Hashes a stored tarball and compares it with the published integrity.
pub(crate) fn verify_file(
    path: &Path,
    expected: &Integrity,
    package: &str,
) -> Result<(), NpmError> {
    let mut file = fs::File::open(path).map_err(|e| NpmError::io("open", path, e))?;
    let mut hasher = expected.hasher();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| NpmError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let actual = hasher.finish();
    if expected.matches(&actual) {
        Ok(())
    } else {
        Err(NpmError::IntegrityMismatch {
            package: package.to_string(),
            origin: "copy in the local store",
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Unpacks a gzipped npm tarball into `dest` (which must not exist yet).
///
/// Like npm, the first path component (normally `package/`) is stripped, links are skipped,
/// files keep only their executable bit, and `bin` files named in `package.json` are made
/// executable. Any entry that would land outside `dest` (`..`, an absolute path) rejects the
/// whole tarball; since no link is ever created, nothing can be written through one either.
pub(crate) fn extract_tarball(tgz: &Path, dest: &Path, package: &str) -> Result<(), NpmError> {
    let corrupt = |detail: String| NpmError::CorruptTarball {
        package: package.to_string(),
        detail,
    };
    let file = fs::File::open(tgz).map_err(|e| NpmError::io("open", tgz, e))?;
    let mut archive = tar::Archive::new(GzDecoder::new(io::BufReader::new(file)));
    fs::create_dir_all(dest).map_err(|e| NpmError::io("create", dest, e))?;

    // File creation dominates unpacking (zod alone has 840 files), so each directory is
    // created once and each file gets its mode when it is created rather than afterwards.
    let mut created = HashSet::new();
    let entries = archive.entries().map_err(|e| corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let raw_path = entry
            .path()
            .map_err(|e| corrupt(e.to_string()))?
            .into_owned();
        let Some(relative) = package_relative(&raw_path).map_err(|()| {
            corrupt(format!(
                "entry `{}` escapes the package",
                raw_path.display()
            ))
        })?
        else {
            continue;
        };
        let target = dest.join(&relative);

        let kind = entry.header().entry_type();
        if kind.is_dir() {
            create_dir_once(&target, &mut created)?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent() {
                create_dir_once(parent, &mut created)?;
            }
            let executable = entry.header().mode().is_ok_and(|mode| mode & 0o111 != 0);
            let mut out = create_file(&target, if executable { 0o755 } else { 0o644 })?;
            io::copy(&mut entry, &mut out)
                .map_err(|e| corrupt(format!("{}: {e}", raw_path.display())))?;
        } else {
            debug!(
                package, entry = %raw_path.display(),
                "Skipping tarball entry that is not a file"
            );
        }
    }

    make_bins_executable(dest);
    Ok(())
}

fn create_dir_once(dir: &Path, created: &mut HashSet<PathBuf>) -> Result<(), NpmError> {
    if !created.contains(dir) {
        fs::create_dir_all(dir).map_err(|e| NpmError::io("create", dir, e))?;
        created.insert(dir.to_path_buf());
    }
    Ok(())
}

/// Creates (or truncates) a file; a new file gets `mode`, an existing one is set to it.
#[cfg(unix)]
fn create_file(path: &Path, mode: u32) -> Result<fs::File, NpmError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path);
    match created {
        Ok(file) => Ok(file),
        // A tarball may list a path twice; the later entry wins, as with npm.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let file = fs::File::create(path).map_err(|e| NpmError::io("create", path, e))?;
            set_mode(path, mode)?;
            Ok(file)
        }
        Err(e) => Err(NpmError::io("create", path, e)),
    }
}

#[cfg(not(unix))]
fn create_file(path: &Path, _mode: u32) -> Result<fs::File, NpmError> {
    fs::File::create(path).map_err(|e| NpmError::io("create", path, e))
}

/// The path of a tarball entry inside the package: the first component dropped, `.` ignored.
/// `Ok(None)` for the top directory itself, `Err` for anything that climbs out.
fn package_relative(raw: &Path) -> Result<Option<PathBuf>, ()> {
    let mut relative = PathBuf::new();
    for (i, component) in raw.components().enumerate() {
        match component {
            Component::Normal(part) if i > 0 => relative.push(part),
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// npm sets the executable bit on every `bin` target at install time; esbuild's own binary
/// is one of them.
fn make_bins_executable(dir: &Path) {
    let Ok(text) = fs::read(dir.join("package.json")) else {
        return;
    };
    let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return;
    };
    let targets: Vec<&str> = match manifest.get("bin") {
        Some(serde_json::Value::String(target)) => vec![target],
        Some(serde_json::Value::Object(map)) => map.values().filter_map(|v| v.as_str()).collect(),
        _ => return,
    };
    for target in targets {
        let relative = Path::new(target);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let path = dir.join(relative);
        if inside && path.is_file() {
            let _ = set_mode(&path, 0o755);
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), NpmError> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| NpmError::io("set permissions of", path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), NpmError> {
    Ok(())
}

/// Recreates the directory tree `src` under `dest` with every file hard-linked (copied when
/// the store and destination cannot share inodes).
pub(crate) fn link_tree(src: &Path, dest: &Path) -> Result<(), NpmError> {
    fs::create_dir_all(dest).map_err(|e| NpmError::io("create", dest, e))?;
    for entry in fs::read_dir(src).map_err(|e| NpmError::io("read", src, e))? {
        let entry = entry.map_err(|e| NpmError::io("read", src, e))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| NpmError::io("stat", &from, e))?;
        if kind.is_dir() {
            link_tree(&from, &to)?;
        } else if kind.is_file() && fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(|e| NpmError::io("copy", &from, e))?;
        }
    }
    Ok(())
}

/// Copies a local package into a tree, leaving out its own `node_modules` and VCS folders.
/// Files are copied, not linked, so editing the source never changes a built tree.
pub(crate) fn copy_local(src: &Path, dest: &Path, top: bool) -> Result<(), NpmError> {
    fs::create_dir_all(dest).map_err(|e| NpmError::io("create", dest, e))?;
    for entry in fs::read_dir(src).map_err(|e| NpmError::io("read", src, e))? {
        let entry = entry.map_err(|e| NpmError::io("read", src, e))?;
        let name = entry.file_name();
        if top && LOCAL_SKIP.iter().any(|skip| name == *skip) {
            continue;
        }
        let from = entry.path();
        let to = dest.join(&name);
        let kind = entry
            .file_type()
            .map_err(|e| NpmError::io("stat", &from, e))?;
        if kind.is_dir() {
            copy_local(&from, &to, false)?;
        } else if kind.is_file() {
            fs::copy(&from, &to).map_err(|e| NpmError::io("copy", &from, e))?;
        } else {
            warn!(path = %from.display(), "Skipping symlink in local package");
        }
    }
    Ok(())
}

/// A digest of a local package's files (path, size, modification time), so a changed local
/// package gets a new tree while an unchanged one costs only a directory walk.
pub(crate) fn fingerprint_local(dir: &Path) -> Result<String, NpmError> {
    use sha2::{Digest as _, Sha256};

    fn walk(dir: &Path, prefix: &str, top: bool, out: &mut Vec<String>) -> Result<(), NpmError> {
        for entry in fs::read_dir(dir).map_err(|e| NpmError::io("read", dir, e))? {
            let entry = entry.map_err(|e| NpmError::io("read", dir, e))?;
            let name = entry.file_name();
            if top && LOCAL_SKIP.iter().any(|skip| name == *skip) {
                continue;
            }
            let path = entry.path();
            let relative = format!("{prefix}/{}", name.to_string_lossy());
            let meta = entry
                .metadata()
                .map_err(|e| NpmError::io("stat", &path, e))?;
            if meta.is_dir() {
                walk(&path, &relative, false, out)?;
            } else {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                out.push(format!("{relative} {} {modified}", meta.len()));
            }
        }
        Ok(())
    }

    let mut lines = Vec::new();
    walk(dir, "", true, &mut lines)?;
    lines.sort();
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// Builds a gzipped tarball; paths are written raw so that hostile names can be tested.
    fn tarball(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (path, data, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(*mode);
            header.set_entry_type(tar::EntryType::Regular);
            {
                let name = &mut header.as_old_mut().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn extract(bytes: &[u8]) -> (tempfile::TempDir, Result<(), NpmError>) {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("p.tgz");
        fs::File::create(&tgz).unwrap().write_all(bytes).unwrap();
        let result = extract_tarball(&tgz, &dir.path().join("out"), "p@1.0.0");
        (dir, result)
    }

    #[test]
    fn extraction_strips_the_top_folder_and_keeps_exec_bits() {
        let bytes = tarball(&[
            (
                "package/package.json",
                br#"{"name":"p","bin":{"p":"cli.js"}}"#,
                0o644,
            ),
            ("package/lib/index.js", b"export {}", 0o644),
            ("package/bin/tool", b"\x7fELF", 0o755),
            ("package/cli.js", b"#!/usr/bin/env node", 0o644),
        ]);
        let (dir, result) = extract(&bytes);
        result.unwrap();
        let out = dir.path().join("out");
        assert_eq!(fs::read(out.join("lib/index.js")).unwrap(), b"export {}");

        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("bin/tool"), 0o755);
        assert_eq!(mode("lib/index.js"), 0o644);
        assert_eq!(mode("cli.js"), 0o755, "bin targets become executable");
    }

    #[test]
    fn entries_that_climb_out_reject_the_tarball() {
        for hostile in ["package/../../evil.js", "/etc/evil", "../evil"] {
            let bytes = tarball(&[("package/ok.js", b"1", 0o644), (hostile, b"boom", 0o644)]);
            let (dir, result) = extract(&bytes);
            assert!(
                matches!(result, Err(NpmError::CorruptTarball { .. })),
                "{hostile}: {result:?}"
            );
            assert!(!dir.path().join("evil.js").exists());
        }
    }

    #[test]
    fn links_in_tarballs_are_skipped() {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "package/escape", "/etc/passwd")
            .unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "package/index.js", &b"1"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();

        let (dir, result) = extract(&bytes);
        result.unwrap();
        assert!(fs::symlink_metadata(dir.path().join("out/escape")).is_err());
        assert!(dir.path().join("out/index.js").is_file());
    }

    #[test]
    fn garbage_is_a_corrupt_tarball() {
        let (_dir, result) = extract(b"definitely not gzip");
        assert!(
            matches!(result, Err(NpmError::CorruptTarball { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn stored_tarball_hash_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tgz");
        fs::write(&path, b"original").unwrap();
        let mut hasher = Integrity::from_shasum(&"0".repeat(40)).unwrap().hasher();
        hasher.update(b"original");
        let expected = hasher.finish();
        verify_file(&path, &expected, "p@1").unwrap();

        fs::write(&path, b"tampered").unwrap();
        let error = verify_file(&path, &expected, "p@1").unwrap_err();
        assert!(
            matches!(error, NpmError::IntegrityMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn local_fingerprint_ignores_node_modules_but_sees_edits() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("package.json"), "{}").unwrap();
        let before = fingerprint_local(dir.path()).unwrap();
        fs::create_dir(dir.path().join("node_modules")).unwrap();
        fs::write(dir.path().join("node_modules/x.js"), "1").unwrap();
        assert_eq!(fingerprint_local(dir.path()).unwrap(), before);
        fs::write(dir.path().join("index.js"), "export {}").unwrap();
        assert_ne!(fingerprint_local(dir.path()).unwrap(), before);
    }
}
