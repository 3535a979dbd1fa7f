//! `builder#compile`: flow source to QuickJS bytecode, and the check `load` makes on it.
//!
//! Compiled bytecode starts with an 8-byte header: the magic `FHQJ` and a fingerprint of this
//! shim's version and QuickJS version. QuickJS trusts the bytecode it reads (a corrupt function
//! can corrupt memory), so `load` only hands it bytes that this build produced; anything else,
//! such as source text, an empty list or bytecode from an older shim, becomes an error.

use std::{ffi::CStr, str};

use javy_plugin_api::javy::quickjs::{
    Context, Ctx, Error, Module, WriteOptions,
    context::intrinsic::{Eval, RegExpCompiler},
    qjs,
};

use crate::runtime;

/// The module name of every flow, as it appears in stack traces (`flow.mjs:12:5`).
pub const MODULE_NAME: &str = "flow.mjs";

const MAGIC: &[u8; 4] = b"FHQJ";
const HEADER_LEN: usize = 8;

/// Compiles `source`, an ES module, to bytecode for `guest.load`.
///
/// Returns a readable message with `flow.mjs:line:column` for a syntax error. Each compilation
/// runs in a scratch context that is dropped afterwards, because QuickJS keeps a compiled but
/// never evaluated module in its context for the context's whole life: compiling many flows in
/// one builder instance would otherwise leak every one of them.
pub fn compile(source: &[u8]) -> Result<Vec<u8>, String> {
    let source = str::from_utf8(source).map_err(|e| {
        format!(
            "the flow source is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )
    })?;
    if let Some(offset) = source.find('\0') {
        let (line, column) = position(source, offset);
        return Err(format!(
            "{MODULE_NAME}:{line}:{column}: the source contains a NUL character"
        ));
    }
    let shim = runtime::current()
        .ok_or("the guest runtime is not initialized: run initialize-runtime first")?;
    let runtime = shim.context().runtime();

    // The parser lives behind the `Eval` intrinsic, regular expression literals behind
    // `RegExpCompiler`; nothing else is needed to compile.
    let scratch = Context::custom::<(Eval, RegExpCompiler)>(runtime)
        .map_err(|e| format!("no context to compile in: {e}"))?;
    let compiled = scratch.with(|ctx| {
        let module = Module::declare(ctx.clone(), MODULE_NAME, source)
            .map_err(|e| compile_error(&ctx, e))?;
        // Source text is dropped (smaller, and `Function.prototype.toString` has no use in a
        // flow); debug information stays, for line and column in stack traces.
        let options = WriteOptions {
            strip_source: true,
            ..WriteOptions::default()
        };
        module.write(options).map_err(|e| compile_error(&ctx, e))
    });
    drop(scratch);
    // Frees the cycles the scratch context leaves behind; automatic collection may be far off.
    runtime.run_gc();

    let bytecode = compiled?;
    let mut out = Vec::with_capacity(HEADER_LEN + bytecode.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&fingerprint().to_le_bytes());
    out.extend_from_slice(&bytecode);
    Ok(out)
}

/// The QuickJS bytecode inside `bytes`, if this build compiled them.
pub fn unwrap_bytecode(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() <= HEADER_LEN || &bytes[..4] != MAGIC {
        return Err("the bytecode was not produced by builder.compile".to_string());
    }
    let stamp = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if stamp != fingerprint() {
        return Err(
            "the bytecode was compiled by another guest build; compile the flow again".to_string(),
        );
    }
    Ok(&bytes[HEADER_LEN..])
}

/// FNV-1a of the shim and QuickJS versions: changes whenever bytecode compatibility may.
fn fingerprint() -> u32 {
    // Safety: QuickJS returns a pointer to a static, NUL-terminated version string.
    let quickjs = unsafe { CStr::from_ptr(qjs::JS_GetVersion()) };
    let shim = concat!(
        env!("CARGO_PKG_NAME"),
        " ",
        env!("CARGO_PKG_VERSION"),
        " quickjs "
    );
    shim.as_bytes()
        .iter()
        .chain(quickjs.to_bytes())
        .fold(0x811c_9dc5_u32, |hash, &byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        })
}

/// The message of a failed compilation, led by the error's position when QuickJS gives one.
fn compile_error(ctx: &Ctx<'_>, error: Error) -> String {
    let text = runtime::describe_error(ctx, error);
    let (head, frames) = text.split_once('\n').unwrap_or((&text, ""));
    match location(frames) {
        Some(at) => format!("{at}: {head}"),
        None => head.to_string(),
    }
}

/// The first `flow.mjs:line:column` in a QuickJS stack.
fn location(stack: &str) -> Option<&str> {
    let start = stack.find(MODULE_NAME)?;
    let rest = &stack[start..];
    let end = rest
        .char_indices()
        .skip(MODULE_NAME.len())
        .find(|&(_, c)| !(c.is_ascii_digit() || c == ':'))
        .map_or(rest.len(), |(i, _)| i);
    let at = rest[..end].trim_end_matches(':');
    (at.len() > MODULE_NAME.len()).then_some(at)
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
