//! The on-disk cache of compiled artifacts: the shim's precompiled machine code and each flow's
//! QuickJS bytecode, kept under `<dir>/artifacts/` so that a restart skips the compile.
//!
//! An entry is a payload file and a JSON sidecar (`.meta`) that describes it. Both are written
//! to temporary files and renamed into place, payload first, so the sidecar is the commit marker.
//! Every lookup re-checks the sidecar against the caller's key and the payload's length and
//! SHA-256, because the host later loads the payload as trusted machine code. An entry that fails
//! any check is removed and reported as a miss: a damaged cache costs a rebuild, never a start.
//!
//! This module knows nothing about wasmtime; the caller describes its engine with [`Compat`].
//! It does not evict: entries are small and keyed by content, and the operator owns the
//! directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

/// Version of the entry layout and sidecar schema. Bump it when either changes: old entries
/// then get other file names and are rebuilt instead of misread.
const FORMAT_VERSION: u32 = 1;

/// Subdirectory of the cache directory that holds the entries.
const ARTIFACTS_DIR: &str = "artifacts";

/// Largest sidecar a lookup reads. A real one is under 1 KiB; a larger file is damaged, and
/// reading it whole would let that damage cost memory.
const MAX_META_BYTES: u64 = 64 * 1024;

/// Marks the temporary files of an unfinished store; they never match an entry name.
const TEMP_MARKER: &str = ".tmp-";

/// A temporary file older than this was left by a writer that died. A store takes
/// milliseconds; the hour is arbitrary and only has to be far longer than that.
const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// What an operator can do about a failed store; shared by every write error.
const STORE_HINT: &str = "free space or point CACHE_DIR at a writable volume";

/// Makes temporary file names unique between threads of one process; the pid separates
/// processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What makes compiled code usable by this process besides its source: an artifact built under
/// any other value must be rebuilt, so every field is part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Compat {
    /// Version of flowhost; a new release may change the shim and thus its bytecode format.
    pub flowhost_version: String,
    /// Version of wasmtime; machine code only loads into the version that produced it.
    pub wasmtime_version: String,
    /// Hex of wasmtime's `Engine::precompile_compatibility_hash`, which covers the
    /// compile-relevant engine settings (fuel, epochs, memory reservation, target).
    pub engine_hash: String,
}

/// A verified cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The payload file, ready to be read or memory-mapped.
    pub path: PathBuf,
    /// Length of the payload in bytes.
    pub len: u64,
}

/// Why the cache could not be opened or written. Lookups never fail on a damaged entry, only on
/// a caller's mistake.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory does not exist and cannot be created.
    #[error(
        "cannot create artifact cache directory {}: {error}; point CACHE_DIR at a writable \
         directory",
        path.display()
    )]
    CreateDir {
        /// The directory that could not be created.
        path: PathBuf,
        /// What the file system said.
        error: io::Error,
    },
    /// An entry could not be written, typically a read-only or full volume.
    #[error("cannot write artifact cache entry {}: {error}; {}", path.display(), STORE_HINT)]
    Write {
        /// The file (or directory, for the final sync) that could not be written.
        path: PathBuf,
        /// What the file system said; `error.kind()` tells a full disk from a read-only one.
        error: io::Error,
    },
    /// The artifact kind cannot be part of a file name.
    #[error(
        "artifact kind {kind:?} is not usable in a file name; use 1 to 32 lower-case letters, \
         digits or '-'"
    )]
    InvalidKind {
        /// The kind the caller passed.
        kind: String,
    },
}

/// The cache directory and the entries in it. Cheap to clone; every operation goes to disk, so
/// several processes may share one directory.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    /// `<dir>/artifacts`, where the entries live.
    dir: PathBuf,
}

/// The sidecar of an entry, stored as JSON next to the payload.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    format: u32,
    kind: String,
    source_sha256: String,
    compat: Compat,
    payload_len: u64,
    payload_sha256: String,
    created_at: u64,
}

/// Why an entry cannot be used; logged, never returned.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("no entry")]
    Missing,
    #[error("cannot read the sidecar: {0}")]
    MetaUnreadable(io::Error),
    #[error("the sidecar is larger than {MAX_META_BYTES} bytes")]
    MetaTooLarge,
    #[error("the sidecar is not valid JSON for this format: {0}")]
    MetaGarbage(serde_json::Error),
    #[error("the sidecar's {field} is {found:?}, expected {expected:?}")]
    Mismatch {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("cannot read the payload: {0}")]
    PayloadUnreadable(io::Error),
    #[error("the payload is {found} bytes, the sidecar says {expected}")]
    Length { found: u64, expected: u64 },
    #[error("the payload's SHA-256 does not match the sidecar")]
    Digest,
}

impl ArtifactCache {
    /// Opens the cache in `dir`, creating `dir/artifacts` (mode 0700 on Unix) if needed, and
    /// removes temporary files left by writers that died.
    ///
    /// Fails only if the directory cannot be created; a read-only directory opens, and its
    /// stores fail later with [`CacheError::Write`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, CacheError> {
        let dir = dir.as_ref().join(ARTIFACTS_DIR);
        create_private_dir(&dir).map_err(|error| CacheError::CreateDir {
            path: dir.clone(),
            error,
        })?;

        // The payload is loaded as machine code without further checks than ours, and a
        // writer who can replace it can also rewrite the sidecar to match.
        if is_writable_by_others(&dir) {
            warn!(
                path = %dir.display(),
                "Artifact cache directory is writable by other users; only the host should be \
                 able to write there"
            );
        }

        let cache = Self { dir };
        cache.remove_stale_temp_files();
        Ok(cache)
    }

    /// The directory that holds the entries, `<dir>/artifacts`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds the entry for `kind`, the SHA-256 of the source bytes and `compat`, and verifies
    /// it.
    ///
    /// Returns `Ok(None)` for a miss. An entry that is damaged or does not match the key is
    /// logged at WARN, removed (best effort) and also returned as a miss. The only error is an
    /// invalid `kind`.
    pub fn lookup(
        &self,
        kind: &str,
        source_sha256: &[u8; 32],
        compat: &Compat,
    ) -> Result<Option<Hit>, CacheError> {
        validate_kind(kind)?;
        let (payload, meta) = self.entry_paths(kind, source_sha256, compat);

        match verify_entry(&payload, &meta, kind, source_sha256, compat) {
            Ok(hit) => {
                debug!(path = %hit.path.display(), len = hit.len, "Artifact cache hit");
                Ok(Some(hit))
            }
            Err(Rejection::Missing) => {
                debug!(path = %payload.display(), "Artifact cache miss");
                Ok(None)
            }
            Err(reason) => {
                warn!(
                    path = %payload.display(),
                    reason = %reason,
                    "Artifact cache entry is unusable; it will be rebuilt"
                );
                // The sidecar goes first: without it the payload is an ordinary miss, even
                // if removing the payload fails.
                remove_if_present(&meta);
                remove_if_present(&payload);
                Ok(None)
            }
        }
    }

    /// Stores `payload` as the entry for `kind`, the SHA-256 of the source bytes and `compat`,
    /// replacing any entry with that key, and returns the payload's path.
    ///
    /// The entry is complete or absent at every instant, also when several processes store the
    /// same key at once. Callers should treat an error as non-fatal: the artifact is still in
    /// memory, only the next start will rebuild it.
    pub fn store(
        &self,
        kind: &str,
        source_sha256: &[u8; 32],
        compat: &Compat,
        payload: &[u8],
    ) -> Result<PathBuf, CacheError> {
        validate_kind(kind)?;
        let (payload_path, meta_path) = self.entry_paths(kind, source_sha256, compat);

        let meta = Meta {
            format: FORMAT_VERSION,
            kind: kind.to_owned(),
            source_sha256: hex::encode(source_sha256),
            compat: compat.clone(),
            payload_len: payload.len() as u64,
            payload_sha256: hex::encode(Sha256::digest(payload)),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        };
        let meta_json = serde_json::to_vec_pretty(&meta).map_err(|error| CacheError::Write {
            path: meta_path.clone(),
            error: io::Error::other(error),
        })?;

        // The payload goes first and the sidecar last, so a reader never finds a sidecar
        // whose payload is still being written; a payload without a sidecar is a miss.
        write_atomically(&payload_path, payload).map_err(|error| CacheError::Write {
            path: payload_path.clone(),
            error,
        })?;
        write_atomically(&meta_path, &meta_json).map_err(|error| CacheError::Write {
            path: meta_path.clone(),
            error,
        })?;

        // The renames are only durable once the directory itself is on disk.
        sync_dir(&self.dir).map_err(|error| CacheError::Write {
            path: self.dir.clone(),
            error,
        })?;

        debug!(path = %payload_path.display(), len = payload.len(), "Artifact cache entry stored");
        Ok(payload_path)
    }

    /// The payload and sidecar paths of an entry.
    fn entry_paths(
        &self,
        kind: &str,
        source_sha256: &[u8; 32],
        compat: &Compat,
    ) -> (PathBuf, PathBuf) {
        let stem = entry_stem(kind, source_sha256, compat);
        (
            self.dir.join(format!("{stem}.bin")),
            self.dir.join(format!("{stem}.meta")),
        )
    }

    /// Removes temporary files that a crashed writer left behind, so they cannot pile up over
    /// restarts. Failures only mean the files stay; they never match an entry.
    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().contains(TEMP_MARKER) {
                continue;
            }
            let age = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok());
            if age.is_some_and(|age| age > STALE_TEMP_AGE) {
                debug!(path = %entry.path().display(), "Removing stale artifact cache temp file");
                remove_if_present(&entry.path());
            }
        }
    }
}

/// Checks that `kind` is safe as the start of a file name and cannot escape the directory.
fn validate_kind(kind: &str) -> Result<(), CacheError> {
    let valid = (1..=32).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(CacheError::InvalidKind {
            kind: kind.to_owned(),
        })
    }
}

/// `<kind>-<first 32 hex digits of the key hash>`. The key hash covers the format version, the
/// kind, the source hash and every compat field, each length-prefixed so that two different
/// keys can never concatenate to the same bytes.
fn entry_stem(kind: &str, source_sha256: &[u8; 32], compat: &Compat) -> String {
    let format = FORMAT_VERSION.to_le_bytes();
    let parts: [&[u8]; 6] = [
        &format,
        kind.as_bytes(),
        source_sha256,
        compat.flowhost_version.as_bytes(),
        compat.wasmtime_version.as_bytes(),
        compat.engine_hash.as_bytes(),
    ];
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    format!("{kind}-{}", hex::encode(&digest[..16]))
}

/// Reads the sidecar, checks it against the key, then checks the payload's length and digest.
fn verify_entry(
    payload: &Path,
    meta: &Path,
    kind: &str,
    source_sha256: &[u8; 32],
    compat: &Compat,
) -> Result<Hit, Rejection> {
    let meta = read_meta(meta)?;

    let expected_source = hex::encode(source_sha256);
    let fields = [
        (
            "format",
            meta.format.to_string(),
            FORMAT_VERSION.to_string(),
        ),
        ("kind", meta.kind, kind.to_owned()),
        ("source hash", meta.source_sha256, expected_source),
        (
            "flowhost version",
            meta.compat.flowhost_version,
            compat.flowhost_version.clone(),
        ),
        (
            "wasmtime version",
            meta.compat.wasmtime_version,
            compat.wasmtime_version.clone(),
        ),
        (
            "engine hash",
            meta.compat.engine_hash,
            compat.engine_hash.clone(),
        ),
    ];
    for (field, found, expected) in fields {
        if found != expected {
            return Err(Rejection::Mismatch {
                field,
                found,
                expected,
            });
        }
    }

    let mut file = File::open(payload).map_err(Rejection::PayloadUnreadable)?;
    let found = file.metadata().map_err(Rejection::PayloadUnreadable)?.len();
    if found != meta.payload_len {
        return Err(Rejection::Length {
            found,
            expected: meta.payload_len,
        });
    }

    // Streaming keeps a multi-megabyte payload out of memory; the count catches a file that
    // changed length after the size check.
    let mut hasher = Sha256::new();
    let hashed = io::copy(&mut file, &mut hasher).map_err(Rejection::PayloadUnreadable)?;
    if hashed != meta.payload_len {
        return Err(Rejection::Length {
            found: hashed,
            expected: meta.payload_len,
        });
    }
    if hex::encode(hasher.finalize()) != meta.payload_sha256 {
        return Err(Rejection::Digest);
    }

    Ok(Hit {
        path: payload.to_path_buf(),
        len: found,
    })
}

/// Reads and parses a sidecar; a missing one is a miss, anything else unreadable a rejection.
fn read_meta(path: &Path) -> Result<Meta, Rejection> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(Rejection::Missing),
        Err(error) => return Err(Rejection::MetaUnreadable(error)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_META_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Rejection::MetaUnreadable)?;
    if bytes.len() as u64 > MAX_META_BYTES {
        return Err(Rejection::MetaTooLarge);
    }
    serde_json::from_slice(&bytes).map_err(Rejection::MetaGarbage)
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk and renames it over
/// `path`. Concurrent writers each rename a complete file, so the last one wins whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let result = write_new_file(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        remove_if_present(&temp);
    }
    result
}

/// Creates `path` (which must not exist), writes `bytes` and waits until they are on disk.
fn write_new_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A name in the same directory as `path` (so the rename stays on one file system) that no
/// other writer, thread or process, uses at the same time.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(
        ".{name}{TEMP_MARKER}{}-{counter}",
        std::process::id()
    ))
}

/// Removes a file, ignoring every failure: the callers only tidy up.
fn remove_if_present(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        debug!(path = %path.display(), error = %error, "Cannot remove artifact cache file");
    }
}

/// Creates `dir` and its parents, private to this user on Unix.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Whether users other than the owner may write to `dir`.
fn is_writable_by_others(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o022 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Flushes a directory's entries (the renames) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a directory as a file; its renames are journaled by NTFS.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::thread;

    fn compat() -> Compat {
        Compat {
            flowhost_version: "0.1.0".into(),
            wasmtime_version: "48.0.8".into(),
            engine_hash: "00ff00ff00ff00ff".into(),
        }
    }

    fn source(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    fn open_temp() -> (tempfile::TempDir, ArtifactCache) {
        let temp = tempfile::tempdir().expect("temp dir");
        let cache = ArtifactCache::open(temp.path()).expect("open cache");
        (temp, cache)
    }

    fn meta_path(payload: &Path) -> PathBuf {
        payload.with_extension("meta")
    }

    /// Asserts that the lookup misses and that it removed both files of the damaged entry.
    fn assert_rejected_and_removed(cache: &ArtifactCache, payload: &Path, key: &[u8; 32]) {
        assert_eq!(cache.lookup("flow", key, &compat()).expect("lookup"), None);
        assert!(!payload.exists(), "payload should be removed");
        assert!(!meta_path(payload).exists(), "sidecar should be removed");
    }

    #[test]
    fn stored_entry_is_found_with_its_bytes() {
        let (_temp, cache) = open_temp();
        let key = source("export default {}");
        let payload = b"bytecode \x00\x01\x02".to_vec();

        let path = cache
            .store("flow", &key, &compat(), &payload)
            .expect("store");
        let hit = cache
            .lookup("flow", &key, &compat())
            .expect("lookup")
            .expect("hit");

        assert_eq!(hit.path, path);
        assert_eq!(hit.len, payload.len() as u64);
        assert_eq!(fs::read(&hit.path).expect("read payload"), payload);
        assert!(meta_path(&path).exists());
        assert_eq!(path.parent(), Some(cache.dir()));
    }

    #[test]
    fn entry_names_are_kind_and_32_hex_digits() {
        let (_temp, cache) = open_temp();
        let path = cache
            .store("shim", &source("s"), &compat(), b"x")
            .expect("store");

        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let hash = name
            .strip_prefix("shim-")
            .and_then(|rest| rest.strip_suffix(".bin"))
            .expect("shim-<hash>.bin");
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn empty_payload_round_trips() {
        let (_temp, cache) = open_temp();
        let key = source("empty");
        cache.store("flow", &key, &compat(), b"").expect("store");
        let hit = cache.lookup("flow", &key, &compat()).expect("lookup");
        assert_eq!(hit.map(|h| h.len), Some(0));
    }

    #[test]
    fn lookup_of_absent_entry_misses() {
        let (_temp, cache) = open_temp();
        assert_eq!(
            cache
                .lookup("flow", &source("a"), &compat())
                .expect("lookup"),
            None
        );
    }

    #[test]
    fn store_replaces_an_existing_entry() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        cache.store("flow", &key, &compat(), b"old").expect("store");
        let path = cache
            .store("flow", &key, &compat(), b"newer")
            .expect("store");

        let hit = cache.lookup("flow", &key, &compat()).expect("lookup");
        assert_eq!(hit.map(|h| h.len), Some(5));
        assert_eq!(fs::read(path).expect("read"), b"newer");
    }

    #[test]
    fn truncated_payload_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), &[7u8; 4096])
            .expect("store");

        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(100))
            .expect("truncate");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn flipped_payload_byte_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), &[7u8; 4096])
            .expect("store");

        let mut bytes = fs::read(&path).expect("read");
        bytes[2048] ^= 0x01;
        fs::write(&path, bytes).expect("write");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn other_engine_or_version_misses_and_keeps_the_entry() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        let other_engine = Compat {
            engine_hash: "1234".into(),
            ..compat()
        };
        let other_flowhost = Compat {
            flowhost_version: "0.2.0".into(),
            ..compat()
        };
        let other_wasmtime = Compat {
            wasmtime_version: "49.0.0".into(),
            ..compat()
        };
        for other in [other_engine, other_flowhost, other_wasmtime] {
            assert_eq!(cache.lookup("flow", &key, &other).expect("lookup"), None);
        }
        assert_eq!(
            cache.lookup("shim", &key, &compat()).expect("lookup"),
            None,
            "kinds must not share entries"
        );
        assert!(
            cache
                .lookup("flow", &key, &compat())
                .expect("lookup")
                .is_some()
        );
    }

    #[test]
    fn sidecar_from_another_engine_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        // An entry copied from a host with another engine, under this host's file name.
        let meta = meta_path(&path);
        let text = fs::read_to_string(&meta).expect("read sidecar");
        fs::write(&meta, text.replace("00ff00ff00ff00ff", "abcdabcdabcdabcd")).expect("write");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn sidecar_from_another_flowhost_version_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        let meta = meta_path(&path);
        let text = fs::read_to_string(&meta).expect("read sidecar");
        fs::write(&meta, text.replace("\"0.1.0\"", "\"0.0.9\"")).expect("write");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn garbage_sidecar_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        fs::write(meta_path(&path), b"\x00\xffnot json{").expect("write");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn oversized_sidecar_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        fs::write(meta_path(&path), vec![b' '; 100_000]).expect("write");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn sidecar_without_payload_is_rejected_and_removed() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        fs::remove_file(&path).expect("remove payload");

        assert_rejected_and_removed(&cache, &path, &key);
    }

    #[test]
    fn payload_without_sidecar_is_a_miss_and_can_be_stored_again() {
        let (_temp, cache) = open_temp();
        let key = source("a");
        let path = cache
            .store("flow", &key, &compat(), b"code")
            .expect("store");

        // What a writer that died between its two renames leaves behind.
        fs::remove_file(meta_path(&path)).expect("remove sidecar");
        assert_eq!(cache.lookup("flow", &key, &compat()).expect("lookup"), None);

        cache
            .store("flow", &key, &compat(), b"code")
            .expect("store again");
        assert!(
            cache
                .lookup("flow", &key, &compat())
                .expect("lookup")
                .is_some()
        );
    }

    #[test]
    fn concurrent_writers_of_one_key_leave_a_valid_entry() {
        const WRITERS: usize = 8;
        let (_temp, cache) = open_temp();
        let key = source("shared");
        let payload: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
        let barrier = Arc::new(Barrier::new(WRITERS * 2));

        // Readers run alongside the writers: any hit they get must carry the whole payload.
        let mut handles = Vec::new();
        for _ in 0..WRITERS {
            let (writer, bytes, start) = (cache.clone(), payload.clone(), barrier.clone());
            handles.push(thread::spawn(move || {
                start.wait();
                for _ in 0..5 {
                    writer
                        .store("shim", &key, &compat(), &bytes)
                        .expect("store");
                }
            }));
            let (reader, bytes, start) = (cache.clone(), payload.clone(), barrier.clone());
            handles.push(thread::spawn(move || {
                start.wait();
                for _ in 0..20 {
                    if let Some(hit) = reader.lookup("shim", &key, &compat()).expect("lookup") {
                        // The file may be replaced between the two reads, but only by equal bytes.
                        assert_eq!(fs::read(&hit.path).expect("read"), bytes);
                    }
                }
            }));
        }
        for handle in handles {
            handle.join().expect("thread");
        }

        // Every writer stored the same bytes, so no reader had a reason to reject the entry.
        let hit = cache
            .lookup("shim", &key, &compat())
            .expect("lookup")
            .expect("hit after concurrent stores");
        assert_eq!(fs::read(&hit.path).expect("read"), payload);
        let leftovers: Vec<_> = fs::read_dir(cache.dir())
            .expect("list")
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().contains(TEMP_MARKER))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn store_into_an_unwritable_directory_names_the_path_and_the_fix() {
        let (_temp, cache) = open_temp();

        // Root writes through any mode bits, so replace the directory with a regular file:
        // every write under it then fails with ENOTDIR, for root too.
        fs::remove_dir(cache.dir()).expect("remove dir");
        fs::write(cache.dir(), b"not a directory").expect("write file");

        let error = cache
            .store("flow", &source("a"), &compat(), b"code")
            .expect_err("store must fail");
        let message = error.to_string();
        assert!(matches!(error, CacheError::Write { .. }), "{error:?}");
        assert!(
            message.contains(&cache.dir().display().to_string()),
            "{message}"
        );
        assert!(message.contains("writable volume"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn store_into_a_read_only_directory_fails_unless_privileged() {
        use std::os::unix::fs::PermissionsExt;
        let (_temp, cache) = open_temp();
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o500)).expect("chmod");

        // Root (or CAP_DAC_OVERRIDE) ignores the mode; the test above covers that case.
        let probe = cache.dir().join("probe");
        if fs::write(&probe, b"").is_ok() {
            eprintln!("skipped: this user can write to a read-only directory");
            return;
        }

        let error = cache
            .store("flow", &source("a"), &compat(), b"code")
            .expect_err("store must fail");
        let message = error.to_string();
        assert!(
            message.contains(&cache.dir().display().to_string()),
            "{message}"
        );
        assert!(message.contains("writable volume"), "{message}");
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    #[test]
    fn open_under_a_regular_file_fails_with_the_path() {
        let temp = tempfile::tempdir().expect("temp dir");
        let file = temp.path().join("file");
        fs::write(&file, b"").expect("write");

        let error = ArtifactCache::open(&file).expect_err("open must fail");
        assert!(matches!(error, CacheError::CreateDir { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&file.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn open_creates_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().expect("temp dir");
        let cache = ArtifactCache::open(temp.path().join("new")).expect("open");
        let mode = fs::metadata(cache.dir())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn open_removes_stale_temp_files_only() {
        let (temp, cache) = open_temp();
        let stale = cache.dir().join(format!(".flow-x.bin{TEMP_MARKER}1-0"));
        let fresh = cache.dir().join(format!(".flow-y.bin{TEMP_MARKER}1-1"));
        fs::write(&stale, b"").expect("write");
        fs::write(&fresh, b"").expect("write");
        let old = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&stale)
            .and_then(|file| file.set_modified(old))
            .expect("set mtime");

        ArtifactCache::open(temp.path()).expect("reopen");
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn invalid_kinds_are_refused() {
        let (_temp, cache) = open_temp();
        for kind in ["", "../x", "Flow", "a/b", "x.y", &"k".repeat(33)] {
            let error = cache
                .store(kind, &source("a"), &compat(), b"code")
                .expect_err("store must fail");
            assert!(matches!(error, CacheError::InvalidKind { .. }), "{kind}");
            assert!(
                cache.lookup(kind, &source("a"), &compat()).is_err(),
                "{kind}"
            );
        }
    }

    #[test]
    fn key_fields_cannot_be_shifted_into_each_other() {
        let a = Compat {
            flowhost_version: "ab".into(),
            wasmtime_version: "c".into(),
            ..compat()
        };
        let b = Compat {
            flowhost_version: "a".into(),
            wasmtime_version: "bc".into(),
            ..compat()
        };
        assert_ne!(
            entry_stem("flow", &source("a"), &a),
            entry_stem("flow", &source("a"), &b)
        );
    }
}
