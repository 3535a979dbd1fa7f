//! The flowhost guest shim: QuickJS, as a Javy plugin, implementing the world `shim` of
//! `wit/flowhost.wit` as a core WebAssembly module.
//!
//! This file holds the exports, lowered by hand to their canonical-ABI core signatures; each one
//! unpacks its arguments and hands over to `runtime` (the flow's JavaScript world) or `builder`
//! (compilation). The host imports are in `host`, the ABI plumbing in `abi`, and the JavaScript
//! half of the runtime in `prelude.js`.
//!
//! javy-plugin-api adds `cabi_realloc`, `compile-src` and `invoke` on its own; the host uses the
//! first, and the other two are harmless leftovers of the Javy plugin ABI.

mod abi;
mod alloc;
mod builder;
mod globals;
mod host;
mod primitives;
mod runtime;

use std::sync::atomic::{AtomicBool, Ordering};

use abi::{HostBuf, Retained, ReturnArea};

javy_plugin_api::import_namespace!("flowhost-shim-v1");

/// Return area of `guest.status`: `[ptr, len]` of the JSON.
static STATUS_AREA: ReturnArea<2> = ReturnArea::new();
static STATUS_TEXT: Retained = Retained::new();

/// Return area of `builder.compile`: `result<list<u8>, string>` as discriminant, ptr, len.
static COMPILE_AREA: ReturnArea<3> = ReturnArea::new();
static COMPILE_OUTPUT: Retained = Retained::new();

unsafe extern "C" {
    /// The module's static constructors (wasi-libc's), synthesised by the linker.
    fn __wasm_call_ctors();
}

/// Whether `__wasm_call_ctors` has run in this instance (or in the snapshot it came from).
static CONSTRUCTED: AtomicBool = AtomicBool::new(false);

/// Runs the static constructors once.
fn construct() {
    if !CONSTRUCTED.swap(true, Ordering::Relaxed) {
        unsafe { __wasm_call_ctors() }
    }
}

/// The WASI reactor entry point: runs the static constructors once.
///
/// Defining it (and so calling `__wasm_call_ctors` ourselves) stops wasm-ld from wrapping every
/// export in a "command export" that runs the constructors before and the destructors after each
/// call: a long-lived instance is a reactor, whose static state is set up once. (The wrappers'
/// cost was within the noise of an empty `call`; this is about semantics, not speed.) Wizer calls
/// `_initialize` before `initialize-runtime` and drops it from the snapshot.
#[unsafe(export_name = "_initialize")]
pub extern "C" fn initialize() {
    construct();
}

/// Creates the JavaScript runtime and evaluates the prelude; meant to run once under Wizer, so
/// that every instance starts from a snapshot with both in place.
///
/// A failure here is a bug in this crate, so it traps: a Wizer run must not produce a module
/// without a working runtime.
#[unsafe(export_name = "initialize-runtime")]
pub extern "C" fn initialize_runtime() {
    construct();
    if let Err(error) =
        javy_plugin_api::initialize_runtime(runtime::config, runtime::modify_runtime)
    {
        panic!("initialize-runtime: {error}");
    }
    if let Err(error) = runtime::install_prelude() {
        host::log(host::Level::Error, &error);
        panic!("initialize-runtime: {error}");
    }
}

/// `guest.load(call, bytecode, config)`.
///
/// # Safety
///
/// Both buffers must come from `cabi_realloc(0, 0, 1, len)`; the guest frees them.
#[unsafe(export_name = "flowhost:flow/guest#load")]
pub unsafe extern "C" fn load(
    call: u32,
    bytecode_ptr: *mut u8,
    bytecode_len: usize,
    config_ptr: *mut u8,
    config_len: usize,
) {
    let bytecode = unsafe { HostBuf::from_raw(bytecode_ptr, bytecode_len) };
    let config = unsafe { HostBuf::from_raw(config_ptr, config_len) };
    match runtime::current() {
        Some(shim) => shim.load(call, bytecode.bytes(), config.bytes()),
        None => runtime::fail_uninitialized(call),
    }
}

/// `guest.call(call, name, input)`.
///
/// # Safety
///
/// Both buffers must come from `cabi_realloc(0, 0, 1, len)`; the guest frees them.
#[unsafe(export_name = "flowhost:flow/guest#call")]
pub unsafe extern "C" fn call(
    call: u32,
    name_ptr: *mut u8,
    name_len: usize,
    input_ptr: *mut u8,
    input_len: usize,
) {
    let name = unsafe { HostBuf::from_raw(name_ptr, name_len) };
    let input = unsafe { HostBuf::from_raw(input_ptr, input_len) };
    match runtime::current() {
        Some(shim) => shim.call(call, name.bytes(), input.bytes()),
        None => runtime::fail_uninitialized(call),
    }
}

/// `guest.io-complete(request, response)`.
///
/// # Safety
///
/// The buffer must come from `cabi_realloc(0, 0, 1, len)`; the guest frees it.
#[unsafe(export_name = "flowhost:flow/guest#io-complete")]
pub unsafe extern "C" fn io_complete(request: u32, response_ptr: *mut u8, response_len: usize) {
    let response = unsafe { HostBuf::from_raw(response_ptr, response_len) };
    if let Some(shim) = runtime::current() {
        shim.io_complete(request, response.bytes());
    }
}

/// `guest.fire-timers()`.
#[unsafe(export_name = "flowhost:flow/guest#fire-timers")]
pub extern "C" fn fire_timers() {
    if let Some(shim) = runtime::current() {
        shim.fire_timers();
    }
}

/// `guest.status() -> string`: returns the address of `[ptr, len]`.
#[unsafe(export_name = "flowhost:flow/guest#status")]
pub extern "C" fn status() -> *const u32 {
    let json = match runtime::current() {
        Some(shim) => shim.status(),
        None => runtime::empty_status(),
    };
    let (ptr, len) = STATUS_TEXT.keep(json.into_bytes());
    STATUS_AREA.publish([ptr, len])
}

/// `guest.trim() -> u64`: collects garbage cycles, then gives wholly free slabs back to the
/// host; returns the bytes given back.
#[unsafe(export_name = "flowhost:flow/guest#trim")]
pub extern "C" fn trim() -> u64 {
    if let Some(shim) = runtime::current() {
        shim.collect_garbage();
    }
    // Safety: nothing else runs in the guest meanwhile, and `discard` only calls the host.
    unsafe { alloc::trim(host::discard) as u64 }
}

/// `guest.shutdown(call)`.
#[unsafe(export_name = "flowhost:flow/guest#shutdown")]
pub extern "C" fn shutdown(call: u32) {
    match runtime::current() {
        Some(shim) => shim.shutdown(call),
        None => runtime::fail_uninitialized(call),
    }
}

/// `builder.compile(source) -> result<list<u8>, string>`: returns the address of the result
/// (byte 0: 0 ok / 1 err; offset 4: ptr; offset 8: len).
///
/// # Safety
///
/// The buffer must come from `cabi_realloc(0, 0, 1, len)`; the guest frees it.
#[unsafe(export_name = "flowhost:flow/builder#compile")]
pub unsafe extern "C" fn compile(source_ptr: *mut u8, source_len: usize) -> *const u32 {
    let source = unsafe { HostBuf::from_raw(source_ptr, source_len) };
    let (discriminant, bytes) = match builder::compile(source.bytes()) {
        Ok(bytecode) => (0, bytecode),
        Err(message) => (1, message.into_bytes()),
    };
    let (ptr, len) = COMPILE_OUTPUT.keep(bytes);
    COMPILE_AREA.publish([discriminant, ptr, len])
}
