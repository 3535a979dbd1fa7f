//! Builds the guest shim (`guest-shim/`, QuickJS for wasm32-wasip1) and leaves it in
//! `$OUT_DIR/flowhost_shim.wasm` for `include_bytes!`.
//!
//! The shim is its own cargo workspace with its own lock file, built by a nested
//! `cargo build --release --locked --target wasm32-wasip1` in `<target dir>/guest-shim`: the outer
//! cargo holds a lock on its own build directory, and QuickJS's C code needs a wasm32 C toolchain
//! the host build does not. The toolchain is Debian's clang-19 and wasi-libc; without it the
//! build stops with a message that says what to install (or run `.ci/setup`).
//!
//! `FLOWHOST_SHIM_WASM=<path>` skips all of this and embeds a prebuilt shim instead, e.g. one
//! built on another machine or by CI.
//!
//! Separately, [`embed_guest_node_modules`] lists the guest's Node modules
//! (`guest-shim/js/node/**/*.js`, plain JavaScript the bundler hands to esbuild) into
//! `$OUT_DIR/guest_node_modules.rs`, a table the host embeds with `include!`.

use std::{
    env, fs,
    io::{self, ErrorKind},
    path::{Path, PathBuf},
    process::{self, Command, Stdio},
};

/// The file `include_bytes!` picks up in `$OUT_DIR`.
const OUTPUT_NAME: &str = "flowhost_shim.wasm";

/// The guest's target triple.
const GUEST_TARGET: &str = "wasm32-wasip1";

/// The Debian toolchain the shim is built with (see `guest-shim/README.md`).
const CLANG: &str = "clang-19";
const LLVM_AR: &str = "llvm-ar-19";
const LIBCLANG_DIR: &str = "/usr/lib/llvm-19/lib";
const WASI_INCLUDE: &str = "/usr/include/wasm32-wasi";
const WASI_LIB: &str = "/usr/lib/wasm32-wasi";

/// QuickJS counts its heap with `malloc_usable_size`, but only on the platforms it names; on any
/// other (wasi among them) it counts 0 bytes per block, so its collector threshold and memory
/// limit measure 8 bytes per allocation instead of bytes. The guest allocator answers
/// `malloc_usable_size` exactly (`guest-shim/src/alloc.rs`), and wasi-libc declares it in
/// `<malloc.h>`; this define selects that branch in QuickJS's `cutils.h`. No other source that
/// the guest compiles tests it.
const QUICKJS_USABLE_SIZE: &str = "-D__GLIBC__";

/// What to do when the toolchain is missing.
const SETUP_HINT: &str = "install the toolchain with `apt-get install clang-19 libclang-19-dev llvm-19 \
    wasi-libc libclang-rt-19-dev-wasm32` and `rustup target add wasm32-wasip1` (`.ci/setup` does \
    both), or set FLOWHOST_SHIM_WASM to a prebuilt flowhost_shim.wasm";

/// Variables that configure the outer build, or that the outer cargo sets for this script; the
/// nested build must not inherit them (its flags, target and directories are its own).
const SCRUB_EXACT: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "NUM_JOBS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
];
const SCRUB_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_PROFILE_",
    "DEP_",
    "__CARGO_",
];

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build.rs");
    embed_guest_node_modules()?;
    println!("cargo:rerun-if-env-changed=FLOWHOST_SHIM_WASM");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    let output = out_dir.join(OUTPUT_NAME);

    // A prebuilt shim wins: no toolchain and no nested build needed.
    if let Some(prebuilt) = env::var_os("FLOWHOST_SHIM_WASM").filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        fs::copy(&prebuilt, &output).map_err(|e| {
            format!(
                "FLOWHOST_SHIM_WASM={}: cannot copy it: {e}",
                prebuilt.display()
            )
        })?;
        return Ok(());
    }

    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?,
    );
    let workspace = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?;
    let shim_dir = workspace.join("guest-shim");
    for watched in ["src", "Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            shim_dir.join(watched).display()
        );
    }

    check_toolchain()?;

    // One nested build directory per checkout: checkouts that share a target directory (git
    // worktrees, CARGO_TARGET_DIR) would otherwise overwrite each other's shim.
    let target_dir = outer_target_dir(&out_dir)
        .unwrap_or_else(|| workspace.join("target"))
        .join("guest-shim")
        .join(checkout_key(&shim_dir));
    let sysroot = prepare_sysroot(&target_dir).map_err(|e| {
        format!(
            "cannot set up the wasi sysroot in {}: {e}",
            target_dir.display()
        )
    })?;

    build_shim(&shim_dir, &target_dir, &sysroot)?;

    let built = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join(OUTPUT_NAME);
    fs::copy(&built, &output)
        .map_err(|e| format!("the nested build left no {}: {e}", built.display()))?;
    Ok(())
}

/// Runs the nested cargo build of the shim.
fn build_shim(shim_dir: &Path, target_dir: &Path, sysroot: &Path) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let sysroot_flag = format!("--sysroot={}", sysroot.display());

    let mut command = Command::new(cargo);
    command.current_dir(shim_dir).args([
        "build",
        "--release",
        "--locked",
        "--target",
        GUEST_TARGET,
    ]);
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if SCRUB_EXACT.contains(&name) || SCRUB_PREFIXES.iter().any(|p| name.starts_with(p)) {
            command.env_remove(name);
        }
    }
    command
        .env("CARGO_TARGET_DIR", target_dir)
        // rquickjs-sys would otherwise download wasi-sdk from GitHub.
        .env("RQUICKJS_SYS_NO_WASI_SDK", "1")
        .env("CC_wasm32_wasip1", CLANG)
        .env("AR_wasm32_wasip1", LLVM_AR)
        .env(
            "CFLAGS_wasm32_wasip1",
            format!("{sysroot_flag} {QUICKJS_USABLE_SIZE}"),
        )
        .env("BINDGEN_EXTRA_CLANG_ARGS_wasm32_wasip1", &sysroot_flag)
        .env("LIBCLANG_PATH", LIBCLANG_DIR)
        // As Javy builds its plugins.
        .env(
            "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS",
            "-C target-feature=+simd128",
        )
        // Our stdout is read by cargo as build-script directives; the nested build's goes to
        // stderr with the rest of its output (shown on failure or with `-vv`).
        .stdout(Stdio::from(io::stderr()));

    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo for the guest shim: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the guest shim in {} failed ({status}); its output is above",
            shim_dir.display()
        ));
    }
    Ok(())
}

/// Fails with the install hint when part of the wasm32 toolchain is missing.
fn check_toolchain() -> Result<(), String> {
    let mut missing = Vec::new();
    for tool in [CLANG, LLVM_AR] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing.push(format!("`{tool}` on PATH"));
        }
    }
    for (path, what) in [
        (
            Path::new(WASI_INCLUDE).join("stdlib.h"),
            "wasi-libc headers",
        ),
        (Path::new(WASI_LIB).join("libc.a"), "wasi-libc"),
    ] {
        if !path.exists() {
            missing.push(format!("{what} ({})", path.display()));
        }
    }
    let has_libclang = fs::read_dir(LIBCLANG_DIR).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
    });
    if !has_libclang {
        missing.push(format!("libclang in {LIBCLANG_DIR}"));
    }
    if !rust_target_installed() {
        missing.push(format!("the Rust target {GUEST_TARGET}"));
    }

    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the guest shim (QuickJS for {GUEST_TARGET}) cannot be built: missing {}; {SETUP_HINT}",
            missing.join(", ")
        ))
    }
}

/// Whether the standard library for the guest target is installed for the current rustc.
fn rust_target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .is_some_and(|dir| Path::new(dir.trim()).is_dir())
}

/// The outer cargo's target directory: the nearest ancestor of `OUT_DIR` that cargo tagged
/// with `CACHEDIR.TAG`. Found this way it honours `--target-dir`, `CARGO_TARGET_DIR` and
/// `build.target-dir` alike.
fn outer_target_dir(out_dir: &Path) -> Option<PathBuf> {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// Lays out a clang sysroot from Debian's wasi-libc under the guest target directory:
/// `include` and `lib/wasm32-wasip1` are symlinks into the system directories.
fn prepare_sysroot(target_dir: &Path) -> io::Result<PathBuf> {
    let sysroot = target_dir.join("sysroot");
    fs::create_dir_all(sysroot.join("lib"))?;
    link(Path::new(WASI_INCLUDE), &sysroot.join("include"))?;
    link(Path::new(WASI_LIB), &sysroot.join("lib").join(GUEST_TARGET))?;
    Ok(sysroot)
}

/// Makes `link` a symlink to `original`, replacing a stale one.
fn link(original: &Path, link: &Path) -> io::Result<()> {
    match fs::read_link(link) {
        Ok(current) if current == original => return Ok(()),
        Ok(_) => fs::remove_file(link)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(original, link)
}

#[cfg(unix)]
fn symlink(original: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(original, link)
}

#[cfg(not(unix))]
fn symlink(_original: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        ErrorKind::Unsupported,
        "the guest shim builds on Unix only; set FLOWHOST_SHIM_WASM to a prebuilt shim",
    ))
}

// ------------------------------------------------------------------------------------------------
// The guest's Node modules: a table of `guest-shim/js/node/**/*.js` for the bundler.

/// The generated table's file name in `$OUT_DIR`.
const NODE_MODULES_TABLE: &str = "guest_node_modules.rs";

/// Writes `$OUT_DIR/guest_node_modules.rs`: `GUEST_NODE_MODULES`, one `(path, source)` pair per
/// `.js` file under `guest-shim/js/node/`, with `path` relative to that directory and `/`
/// separated (`stream/promises.js`), sorted, each source embedded with `include_str!`.
///
/// The directory may not exist yet (the modules are written by hand over time); the table is
/// then empty and the `guest-shim` directory is watched so that creating it triggers a rebuild.
/// A short, stable name for the checkout that holds `shim_dir` (SipHash with fixed keys).
fn checkout_key(shim_dir: &Path) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    shim_dir.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn embed_guest_node_modules() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?);
    let manifest_dir = PathBuf::from(
        env::var_os("CARGO_MANIFEST_DIR").ok_or("cargo did not set CARGO_MANIFEST_DIR")?,
    );
    let shim_dir = manifest_dir
        .parent()
        .ok_or("the host crate has no parent directory")?
        .join("guest-shim");
    let node_dir = shim_dir.join("js").join("node");

    let mut files = Vec::new();
    if node_dir.is_dir() {
        println!("cargo:rerun-if-changed={}", node_dir.display());
        collect_js_files(&node_dir, &node_dir, &mut files)
            .map_err(|e| format!("cannot list {}: {e}", node_dir.display()))?;
    } else {
        // Cargo scans a watched directory recursively, so a new `js/node/` shows up here.
        println!("cargo:rerun-if-changed={}", shim_dir.display());
    }
    files.sort();

    let mut table = String::from(
        "/// The guest's Node modules: (path relative to `guest-shim/js/node/`, source).\n\
         pub static GUEST_NODE_MODULES: &[(&str, &str)] = &[\n",
    );
    for (relative, absolute) in &files {
        table.push_str(&format!(
            "    ({relative:?}, include_str!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(out_dir.join(NODE_MODULES_TABLE), table)
        .map_err(|e| format!("cannot write {NODE_MODULES_TABLE}: {e}"))
}

/// Adds every `.js` file under `dir` to `files` as (path relative to `root`, absolute path).
fn collect_js_files(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_js_files(root, &path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "js") {
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((relative.join("/"), path));
        }
    }
    Ok(())
}
