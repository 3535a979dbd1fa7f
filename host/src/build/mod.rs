//! The build pipeline: a flow config becomes a JavaScript bundle and then a sandbox artifact.
//!
//! Only package resolution exists so far ([`npm`]); entry generation, esbuild and the artifact
//! step come with the self-bundling work.

pub mod npm;
