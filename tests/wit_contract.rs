//! Holds the built guest shim to `wit/flowhost.wit`: every function of the WIT is lowered with
//! the canonical ABI and must appear in the shim's core imports and exports with exactly that
//! signature, and the shim may import or export nothing else beyond a short, named list.

use std::collections::BTreeMap;
use std::path::Path;

use wasmparser::{Payload, TypeRef, ValType};
use wit_parser::abi::{AbiVariant, WasmType};
use wit_parser::{Resolve, WorldItem};

/// Exports the shim has besides the WIT's: the memory and allocator the canonical ABI needs, and
/// what javy-plugin-api adds to every plugin (`initialize-runtime` is the snapshot's init).
const OTHER_EXPORTS: &[&str] = &[
    "memory",
    "cabi_realloc",
    "initialize-runtime",
    "compile-src",
    "invoke",
    "_initialize",
    // The guest's allocator (guest-shim/src/alloc.rs): C symbols that replace wasi-libc's
    // dlmalloc at link time; a Rust cdylib exports them as a side effect.
    "malloc",
    "free",
    "calloc",
    "realloc",
    "aligned_alloc",
    "posix_memalign",
    "malloc_usable_size",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
];

type Signature = (Vec<ValType>, Vec<ValType>);

/// Core imports keyed by (module, name).
type Imports = BTreeMap<(String, String), Signature>;

/// Core exports by name; `None` for exports that are not functions.
type Exports = BTreeMap<String, Option<Signature>>;

fn lower(types: &[WasmType]) -> Vec<ValType> {
    types
        .iter()
        .map(|t| match t {
            WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
            WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
            WasmType::F32 => ValType::F32,
            WasmType::F64 => ValType::F64,
        })
        .collect()
}

/// `(imports, exports)` the WIT world `shim` prescribes, keyed by core module/name.
fn expected() -> (
    BTreeMap<(String, String), Signature>,
    BTreeMap<String, Signature>,
) {
    let mut resolve = Resolve::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/flowhost.wit");
    let package = resolve.push_file(&path).expect("the WIT parses");
    let world = resolve
        .select_world(&[package], Some("shim"))
        .expect("world shim exists");
    let world = &resolve.worlds[world];

    let mut imports = BTreeMap::new();
    for (key, item) in &world.imports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let module = resolve.name_world_key(key);
        for (name, func) in &resolve.interfaces[*id].functions {
            let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
            imports.insert(
                (module.clone(), name.clone()),
                (lower(&sig.params), lower(&sig.results)),
            );
        }
    }
    let mut exports = BTreeMap::new();
    for (key, item) in &world.exports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let interface = resolve.name_world_key(key);
        for (name, func) in &resolve.interfaces[*id].functions {
            let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
            exports.insert(
                format!("{interface}#{name}"),
                (lower(&sig.params), lower(&sig.results)),
            );
        }
    }
    (imports, exports)
}

/// `(imports, exports)` of a core module with their function signatures.
fn actual(wasm: &[u8]) -> (Imports, Exports) {
    let mut types: Vec<Signature> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut imports = BTreeMap::new();
    let mut raw_exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.unwrap().into_types() {
                        let f = sub.unwrap_func();
                        types.push((f.params().to_vec(), f.results().to_vec()));
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    if let TypeRef::Func(t) = import.ty {
                        func_types.push(t);
                        imports.insert(
                            (import.module.to_string(), import.name.to_string()),
                            types[t as usize].clone(),
                        );
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    func_types.push(t.unwrap());
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    raw_exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    let exports = raw_exports
        .into_iter()
        .map(|(name, kind, index)| {
            let sig = (kind == wasmparser::ExternalKind::Func)
                .then(|| types[func_types[index as usize] as usize].clone());
            (name, sig)
        })
        .collect();
    (imports, exports)
}

#[test]
fn guest_shim_imports_and_exports_match_the_wit() {
    let (want_imports, want_exports) = expected();
    let (imports, exports) = actual(flowhost::sandbox::SHIM_WASM);

    for (key, sig) in &want_imports {
        assert_eq!(
            imports.get(key),
            Some(sig),
            "import {key:?} missing or with another signature"
        );
    }
    for key in imports.keys() {
        let allowed = want_imports.contains_key(key) || key.0 == "wasi_snapshot_preview1";
        assert!(
            allowed,
            "the shim imports {key:?}, which the WIT does not describe"
        );
    }
    for (name, sig) in &want_exports {
        assert_eq!(
            exports.get(name),
            Some(&Some(sig.clone())),
            "export {name} missing or with another signature"
        );
    }
    for name in exports.keys() {
        let allowed = want_exports.contains_key(name) || OTHER_EXPORTS.contains(&name.as_str());
        assert!(
            allowed,
            "the shim exports {name}, which the WIT does not describe"
        );
    }
}

#[test]
fn wit_describes_every_guest_export_the_host_calls() {
    let (_, want_exports) = expected();
    use flowhost::sandbox::guest::export;
    for name in [
        export::LOAD,
        export::CALL,
        export::IO_COMPLETE,
        export::FIRE_TIMERS,
        export::STATUS,
        export::SHUTDOWN,
        export::COMPILE,
    ] {
        assert!(want_exports.contains_key(name), "{name} is not in the WIT");
    }
}
