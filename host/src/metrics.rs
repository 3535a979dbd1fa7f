//! Process counters for `/metrics`, in the Prometheus text format.
//!
//! Every label set is fixed in advance (routes, status codes, refusal reasons), so a client
//! cannot grow the series by sending odd requests, and every counter is a plain atomic: nothing
//! on the request path takes a lock.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::sandbox::flow::FlowStats;

/// Which part of the server answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/health`.
    Health,
    /// `/ready`.
    Ready,
    /// `/status`.
    Status,
    /// `/metrics`.
    Metrics,
    /// The flow's HTTP source (collect mode).
    Intake,
    /// The served file (serve mode).
    Serve,
    /// Anything else: unknown paths, no flow loaded.
    Other,
}

const ROUTES: [(Route, &str); 7] = [
    (Route::Health, "health"),
    (Route::Ready, "ready"),
    (Route::Status, "status"),
    (Route::Metrics, "metrics"),
    (Route::Intake, "intake"),
    (Route::Serve, "serve"),
    (Route::Other, "other"),
];

/// Status codes counted one by one; the rest are counted as "other".
const STATUSES: [u16; 13] = [
    200, 204, 207, 304, 400, 404, 405, 408, 413, 415, 431, 500, 503,
];
/// The slot of every status not in [`STATUSES`].
const STATUS_OTHER: usize = STATUSES.len();

/// Why the intake refused a request or an event without asking the flow.
pub const REFUSAL_REASONS: [&str; 12] = [
    "batch_too_large",
    "invalid_event",
    "empty_body",
    "unsupported_content_type",
    "body_too_large",
    "body_timeout",
    "body_aborted",
    "unsupported_charset",
    "bad_encoding",
    "bad_json",
    "flow_busy",
    "other",
];

/// The counters of one runner process.
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len() + 1]; ROUTES.len()],
    refusals: [AtomicU64; REFUSAL_REASONS.len()],
    /// Events handed to the flow.
    pub events_received: AtomicU64,
    /// Events the flow reported as delivered.
    pub events_delivered: AtomicU64,
    /// Events the flow reported as failed, or whose call failed.
    pub events_failed: AtomicU64,
    /// Events refused as invalid input: on the host because the collector would refuse them,
    /// or by the flow.
    pub events_invalid: AtomicU64,
    /// Connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections closed at once because the connection limit was reached.
    pub connections_refused: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicI64,
    /// Flow generations installed after the first.
    pub swaps: AtomicU64,
    /// Flow bytecode found in the artifact cache.
    pub artifact_cache_hits: AtomicU64,
    /// Flow bytecode compiled because the cache had no entry.
    pub artifact_cache_misses: AtomicU64,
    /// Guest counters of generations that have been retired, so totals never go down.
    retired: RetiredGuests,
}

#[derive(Default)]
struct RetiredGuests {
    calls: AtomicU64,
    failed: AtomicU64,
    traps: AtomicU64,
    recycles: AtomicU64,
    requests: AtomicU64,
    released_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            refusals: std::array::from_fn(|_| AtomicU64::new(0)),
            events_received: AtomicU64::new(0),
            events_delivered: AtomicU64::new(0),
            events_failed: AtomicU64::new(0),
            events_invalid: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            swaps: AtomicU64::new(0),
            artifact_cache_hits: AtomicU64::new(0),
            artifact_cache_misses: AtomicU64::new(0),
            retired: RetiredGuests::default(),
        }
    }
}

/// Figures that are not counters of this struct but belong on the page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// 1 when `/ready` answers 200.
    pub ready: bool,
    /// Number of the flow generation serving now (0 before the first).
    pub generation: u64,
    /// Deliveries running after their response went out.
    pub deliveries_in_flight: u64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn count_request(&self, route: Route, status: u16) {
        let r = ROUTES.iter().position(|(x, _)| *x == route).unwrap_or(6);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUS_OTHER);
        self.requests[r][s].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one refusal; `reason` should be one of [`REFUSAL_REASONS`].
    pub fn count_refusal(&self, reason: &str) {
        let i = REFUSAL_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(REFUSAL_REASONS.len() - 1);
        self.refusals[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds a retiring generation's guest counters to the running totals.
    pub fn retire_flow(&self, stats: &FlowStats) {
        let add = |to: &AtomicU64, from: &AtomicU64| {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        add(&self.retired.calls, &stats.calls);
        add(&self.retired.failed, &stats.failed);
        add(&self.retired.traps, &stats.traps);
        add(&self.retired.recycles, &stats.recycles);
        add(&self.retired.requests, &stats.requests);
        add(&self.retired.released_bytes, &stats.released_bytes);
    }

    /// The page `/metrics` serves. `current` is the serving flow's counters, if any.
    pub fn render(&self, current: Option<&FlowStats>, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);

        header(
            &mut out,
            "flowhost_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status code.",
        );
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            for s in 0..=STATUS_OTHER {
                let n = load(&self.requests[r][s]);
                if n == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(s)
                    .map_or_else(|| "other".to_string(), |code| code.to_string());
                let _ = writeln!(
                    out,
                    "flowhost_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }

        header(
            &mut out,
            "flowhost_http_refusals_total",
            "counter",
            "Requests or events the intake refused without calling the flow, by reason.",
        );
        for (i, reason) in REFUSAL_REASONS.iter().enumerate() {
            let _ = writeln!(
                out,
                "flowhost_http_refusals_total{{reason=\"{reason}\"}} {}",
                load(&self.refusals[i])
            );
        }

        let counters: [(&str, &str, u64); 9] = [
            (
                "flowhost_events_received_total",
                "Events handed to the flow.",
                load(&self.events_received),
            ),
            (
                "flowhost_events_delivered_total",
                "Events the flow reported as processed.",
                load(&self.events_delivered),
            ),
            (
                "flowhost_events_failed_total",
                "Events the flow reported as failed, or whose call failed.",
                load(&self.events_failed),
            ),
            (
                "flowhost_events_invalid_total",
                "Events refused as invalid input, on the host or by the flow.",
                load(&self.events_invalid),
            ),
            (
                "flowhost_http_connections_total",
                "Connections accepted.",
                load(&self.connections_accepted),
            ),
            (
                "flowhost_http_connections_refused_total",
                "Connections closed at once because the connection limit was reached.",
                load(&self.connections_refused),
            ),
            (
                "flowhost_flow_swaps_total",
                "Flow generations installed after the first.",
                load(&self.swaps),
            ),
            (
                "flowhost_artifact_cache_hits_total",
                "Flow bytecode loaded from the artifact cache.",
                load(&self.artifact_cache_hits),
            ),
            (
                "flowhost_artifact_cache_misses_total",
                "Flow bytecode compiled because the cache had no entry.",
                load(&self.artifact_cache_misses),
            ),
        ];
        for (name, help, value) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }

        let guest = |retired: &AtomicU64, pick: fn(&FlowStats) -> &AtomicU64| {
            load(retired) + current.map_or(0, |stats| load(pick(stats)))
        };
        let guests: [(&str, &str, u64); 6] = [
            (
                "flowhost_guest_calls_total",
                "Calls into guest instances.",
                guest(&self.retired.calls, |s| &s.calls),
            ),
            (
                "flowhost_guest_call_failures_total",
                "Guest calls that ended in an error of any kind.",
                guest(&self.retired.failed, |s| &s.failed),
            ),
            (
                "flowhost_guest_traps_total",
                "Guest instances stopped by a trap (CPU deadline, memory limit, fault).",
                guest(&self.retired.traps, |s| &s.traps),
            ),
            (
                "flowhost_instance_recycles_total",
                "Guest instances replaced after a trap or reaching the memory limit.",
                guest(&self.retired.recycles, |s| &s.recycles),
            ),
            (
                "flowhost_outbound_requests_total",
                "Outbound HTTP requests made by flows.",
                guest(&self.retired.requests, |s| &s.requests),
            ),
            (
                "flowhost_guest_memory_released_bytes_total",
                "Guest memory that idle instances gave back to the system.",
                guest(&self.retired.released_bytes, |s| &s.released_bytes),
            ),
        ];
        for (name, help, value) in guests {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }

        let gauges: [(&str, &str, String); 6] = [
            (
                "flowhost_http_connections",
                "Connections open now.",
                self.connections_open
                    .load(Ordering::Relaxed)
                    .max(0)
                    .to_string(),
            ),
            (
                "flowhost_guest_memory_bytes",
                "Linear memory of the serving flow's guest instances.",
                current
                    .map_or(0, |stats| load(&stats.memory_bytes))
                    .to_string(),
            ),
            (
                "flowhost_deliveries_in_flight",
                "Deliveries still running after their response went out.",
                gauges.deliveries_in_flight.to_string(),
            ),
            (
                "flowhost_ready",
                "1 when /ready answers 200.",
                u8::from(gauges.ready).to_string(),
            ),
            (
                "flowhost_flow_generation",
                "Number of the flow generation serving now.",
                gauges.generation.to_string(),
            ),
            (
                "flowhost_uptime_seconds",
                "Seconds since the process started.",
                format!("{:.3}", gauges.uptime_seconds),
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_series_and_keeps_retired_totals() {
        let metrics = Metrics::default();
        metrics.count_request(Route::Intake, 200);
        metrics.count_request(Route::Intake, 200);
        metrics.count_request(Route::Health, 999);
        metrics.count_refusal("bad_json");
        metrics.count_refusal("made up");

        let old = FlowStats::default();
        old.calls.store(5, Ordering::Relaxed);
        old.released_bytes.store(8192, Ordering::Relaxed);
        old.memory_bytes.store(1 << 20, Ordering::Relaxed);
        metrics.retire_flow(&old);
        let now = FlowStats::default();
        now.calls.store(2, Ordering::Relaxed);
        now.released_bytes.store(16384, Ordering::Relaxed);
        now.memory_bytes.store(3 << 20, Ordering::Relaxed);

        let page = metrics.render(Some(&now), Gauges::default());
        assert!(page.contains("flowhost_http_requests_total{route=\"intake\",status=\"200\"} 2\n"));
        assert!(
            page.contains("flowhost_http_requests_total{route=\"health\",status=\"other\"} 1\n")
        );
        assert!(page.contains("flowhost_http_refusals_total{reason=\"bad_json\"} 1\n"));
        assert!(page.contains("flowhost_http_refusals_total{reason=\"other\"} 1\n"));
        assert!(page.contains("flowhost_guest_calls_total 7\n"));
        // Released bytes add up across generations; memory is the serving flow's only.
        assert!(page.contains("flowhost_guest_memory_released_bytes_total 24576\n"));
        assert!(page.contains("flowhost_guest_memory_bytes 3145728\n"));
        assert!(page.contains("# TYPE flowhost_ready gauge\n"));
    }
}
