//! What the runner knows about itself: identity, readiness, the flow slot, counters. Shared by
//! the HTTP server, the lifecycle in `run` and (later) the control-plane client.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::Value;

use super::generation::FlowSlot;
use super::options::Mode;
use crate::intake::InFlight;
use crate::metrics::Metrics;

/// What `/ready` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Starting: no flow loaded yet.
    NotReady,
    /// Serving.
    Ready,
    /// The flow could not be loaded.
    Failed(String),
    /// Shutting down: finishing work in progress.
    Draining,
}

/// The control-plane facts `/status` reports; all empty until the API client exists.
#[derive(Debug, Clone, Default)]
pub struct ControlState {
    /// When the config was last polled (ISO 8601).
    pub last_poll: Option<String>,
    /// When the last heartbeat was sent (ISO 8601).
    pub last_heartbeat: Option<String>,
    /// The API client's own state object.
    pub api: Option<Value>,
}

/// The runner's shared state.
pub struct RunnerState {
    /// 16 hex characters, fixed for the life of the process.
    pub instance_id: String,
    /// When the process started.
    pub started: Instant,
    /// Collect or serve.
    pub mode: Mode,
    /// The port actually bound (known once listening).
    pub port: AtomicU16,
    /// The flow generation serving now.
    pub flow: FlowSlot,
    /// Process counters.
    pub metrics: Arc<Metrics>,
    /// HTTP requests being answered, across generations and the runner's own endpoints.
    pub requests: Arc<InFlight>,
    /// Set when shutdown begins: responses then ask clients to close their connection.
    pub draining: AtomicBool,
    readiness: RwLock<Readiness>,
    control: RwLock<ControlState>,
}

impl RunnerState {
    /// A runner that has not loaded anything yet.
    pub fn new(mode: Mode, metrics: Arc<Metrics>) -> Self {
        Self {
            instance_id: new_instance_id(),
            started: Instant::now(),
            mode,
            port: AtomicU16::new(0),
            flow: FlowSlot::default(),
            metrics,
            requests: Arc::new(InFlight::default()),
            draining: AtomicBool::new(false),
            readiness: RwLock::new(Readiness::NotReady),
            control: RwLock::new(ControlState::default()),
        }
    }

    /// What `/ready` answers now.
    pub fn readiness(&self) -> Readiness {
        self.readiness
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes what `/ready` answers. Draining is final: nothing changes it back.
    pub fn set_readiness(&self, next: Readiness) {
        let mut current = self.readiness.write().unwrap_or_else(|p| p.into_inner());
        if *current != Readiness::Draining {
            if next == Readiness::Draining {
                self.draining.store(true, Ordering::SeqCst);
            }
            *current = next;
        }
    }

    /// Control-plane facts for `/status`.
    pub fn control(&self) -> ControlState {
        self.control
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Updates the control-plane facts (the API client calls this).
    pub fn update_control(&self, update: impl FnOnce(&mut ControlState)) {
        update(&mut self.control.write().unwrap_or_else(|p| p.into_inner()));
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// 16 hex characters from 8 random bytes, as the original runner's instance id.
fn new_instance_id() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer we own.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled != bytes.len() as isize {
        // Without the syscall, a randomly keyed hash of the time and pid is unique enough.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hasher.write_u32(std::process::id());
        bytes = hasher.finish().to_be_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_16_hex_and_differ() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn draining_is_final() {
        let state = RunnerState::new(Mode::Collect, Arc::default());
        assert_eq!(state.readiness(), Readiness::NotReady);
        state.set_readiness(Readiness::Ready);
        state.set_readiness(Readiness::Draining);
        state.set_readiness(Readiness::Ready);
        assert_eq!(state.readiness(), Readiness::Draining);
        assert!(state.is_draining());
    }
}
