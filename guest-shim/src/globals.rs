//! The Web globals a flow sees besides the prelude's: `URL`, `fetch`, `crypto`,
//! `TextEncoder`, `structuredClone`, `AbortController` and their companions, plus the parts of
//! `process` packages touch in passing.
//!
//! Each is a script under `globals/` that evaluates to a function; [`install`] calls it with the
//! natives of [`crate::primitives`], after the prelude and before the Wizer snapshot, so they cost
//! an instance nothing at start. Node's built-in modules are not here: they are ES modules under
//! `js/node/` that the bundler puts into each flow, and they reach the natives through the global
//! `__flowhost_native` that `globals/dom.js` publishes.

use javy_plugin_api::javy::quickjs::{Ctx, Error, Function, context::EvalOptions};

use crate::primitives;

/// The scripts, in dependency order: `dom.js` publishes the natives and defines DOMException,
/// which the others throw; `fetch.js` needs `URL`, `AbortController` and `flowhost.request`.
const SCRIPTS: &[(&str, &str)] = &[
    ("flowhost:globals/dom.js", include_str!("globals/dom.js")),
    (
        "flowhost:globals/encoding.js",
        include_str!("globals/encoding.js"),
    ),
    ("flowhost:globals/url.js", include_str!("globals/url.js")),
    (
        "flowhost:globals/clone.js",
        include_str!("globals/clone.js"),
    ),
    (
        "flowhost:globals/crypto.js",
        include_str!("globals/crypto.js"),
    ),
    (
        "flowhost:globals/fetch.js",
        include_str!("globals/fetch.js"),
    ),
    (
        "flowhost:globals/process.js",
        include_str!("globals/process.js"),
    ),
];

/// Defines the globals in `ctx`; the prelude must have run.
pub fn install(ctx: &Ctx<'_>) -> Result<(), Error> {
    let native = primitives::build(ctx)?;
    for (name, source) in SCRIPTS {
        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = true;
        options.filename = Some((*name).to_string());
        let script: Function = ctx.eval_with_options(*source, options)?;
        script.call::<_, ()>((native.clone(),))?;
    }
    Ok(())
}
