//! Flow generations: a loaded flow with its HTTP source, and the slot the server reads the
//! current one from.
//!
//! A request takes the generation that is current when it arrives and keeps it until it is
//! answered, so installing a new generation never disturbs requests in progress; the old one
//! is retired once its requests and background deliveries are done (or a timeout passes).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::intake::delivery::InFlightGuard;
use crate::intake::{HttpSource, InFlight};
use crate::metrics::Metrics;
use crate::sandbox::Flow;

/// Where a generation's flow came from, as `/status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A local file.
    Local,
    /// Downloaded from a URL.
    Url,
    /// Fetched from the walkerOS API.
    Api,
    /// The last-known-good copy from the cache.
    Cache,
}

impl ConfigSource {
    /// The name `/status` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Url => "url",
            Self::Api => "api",
            Self::Cache => "cache",
        }
    }
}

/// One loaded flow and everything that serves it.
pub struct Generation {
    /// Counts up from 1 with every flow installed.
    pub number: u64,
    /// The flow's name.
    pub name: String,
    /// The config version (`local` for a local bundle, an ETag for an API config).
    pub version: String,
    /// Where it came from.
    pub source: ConfigSource,
    /// SHA-256 of the JavaScript the flow runs.
    pub sha256: String,
    /// The running flow.
    pub flow: Arc<Flow>,
    /// Its HTTP source, when it has one.
    pub intake: Option<Arc<HttpSource>>,
    /// Requests being answered by this generation.
    requests: Arc<InFlight>,
}

impl Generation {
    /// A generation around a started flow.
    pub fn new(
        number: u64,
        name: String,
        version: String,
        source: ConfigSource,
        sha256: String,
        flow: Arc<Flow>,
        intake: Option<Arc<HttpSource>>,
    ) -> Self {
        Self {
            number,
            name,
            version,
            source,
            sha256,
            flow,
            intake,
            requests: Arc::new(InFlight::default()),
        }
    }

    /// Marks a request as being answered by this generation until the guard is dropped.
    pub fn enter_request(&self) -> InFlightGuard {
        self.requests.enter()
    }

    /// Requests and background deliveries in progress.
    pub fn in_flight(&self) -> (usize, usize) {
        let deliveries = self
            .intake
            .as_ref()
            .map_or(0, |i| i.delivery.background().count());
        (self.requests.count(), deliveries)
    }

    /// Waits until no request or delivery of this generation is in progress.
    pub async fn wait_idle(&self) {
        self.requests.wait_idle().await;
        if let Some(intake) = &self.intake {
            intake.delivery.background().wait_idle().await;
        }
    }

    /// Waits (up to `timeout`) for work in progress, then stops the flow. Its guest counters
    /// are added to `metrics` so totals keep counting up.
    pub async fn retire(&self, timeout: Duration, metrics: &Metrics) {
        if tokio::time::timeout(timeout, self.wait_idle())
            .await
            .is_err()
        {
            let (requests, deliveries) = self.in_flight();
            tracing::warn!(
                flow = %self.name,
                generation = self.number,
                requests,
                deliveries,
                "Stopping the flow with work still in progress; the drain timeout passed"
            );
        }
        self.flow.shutdown().await;
        metrics.retire_flow(self.flow.stats());
    }
}

/// The generation the server answers with; replaced atomically on a swap.
#[derive(Default)]
pub struct FlowSlot {
    current: RwLock<Option<Arc<Generation>>>,
}

impl FlowSlot {
    /// The generation serving now, if a flow is loaded.
    pub fn current(&self) -> Option<Arc<Generation>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Installs `next` and returns the generation it replaces.
    pub fn install(&self, next: Arc<Generation>) -> Option<Arc<Generation>> {
        let mut slot = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.replace(next)
    }

    /// Empties the slot (shutdown) and returns what was serving.
    pub fn take(&self) -> Option<Arc<Generation>> {
        self.current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}
