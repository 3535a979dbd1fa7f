//! flowhost runs walkerOS event flows, each inside a WebAssembly sandbox.
//!
//! A flow's JavaScript is compiled to QuickJS bytecode and runs in instances of one guest shim
//! (QuickJS built as a Javy plugin) under wasmtime. The host owns everything that touches the
//! outside world: outbound HTTP, timers, logs and the artifact cache. `wit/flowhost.wit` is the
//! one description of the boundary between the two.

pub mod build;
pub mod bundle;
pub mod cache;
pub mod config;
pub mod exec;
pub mod intake;
pub mod metrics;
pub mod outbound;
pub mod runner;
pub mod sandbox;
pub mod telemetry;

/// The flow `flowhost exec` runs when no bundle is given.
pub const DEFAULT_FLOW: &str = include_str!("default_flow.mjs");
