//! Limits and knobs of the sandbox, with their defaults and environment overrides.
//!
//! Every limit here bounds one resource of one tenant's flow; the defaults suit a runner that
//! hosts a handful of flows on a small machine. Each has an environment variable so an operator
//! can tune it without a rebuild; a bad value stops start-up with a message naming the variable.

use std::time::Duration;

use crate::outbound::OutboundPolicy;

/// Limits that apply to every guest instance and every flow of one sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Largest linear memory one instance may grow to. A guest that allocates past it sees a
    /// JavaScript `out of memory` error, not a host failure. 64 MiB is ~30× what the walkerOS
    /// collector needs after 100k events.
    pub memory_limit_bytes: usize,
    /// CPU time one guest export may run before it is interrupted and its instance discarded.
    /// It bounds a `for(;;){}` in flow code; ordinary calls take well under a millisecond.
    pub cpu_deadline: Duration,
    /// Granularity of the CPU deadline and of cooperative yielding: one ticker thread bumps the
    /// engine's epoch this often, and a running guest yields to other tasks at each tick.
    pub epoch_tick: Duration,
    /// How long a call may stay unsettled (awaiting timers or I/O) before its caller gets an
    /// error. The guest may still finish the work; its late result is dropped.
    pub call_timeout: Duration,
    /// Slots of the pooling allocator: the most instances that can be live at once in this
    /// process, across all flows. Each slot reserves address space, not memory.
    pub max_instances: u32,
    /// Guest instances that serve one flow. Each is single-threaded like Node; more instances
    /// use more cores but split the collector state (queues, counters) between them.
    pub instances_per_flow: usize,
    /// Calls that may be in flight at once for one flow; further calls fail at once with a
    /// "busy" error instead of queueing without bound.
    pub max_calls_per_flow: usize,
    /// Limits on the outbound HTTP requests of each flow.
    pub outbound: OutboundPolicy,
    /// How long an instance must go without calls and responses before it collects its garbage
    /// and gives wholly free memory back to the system (`guest.trim`); `None` never does.
    pub idle_trim: Option<Duration>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            memory_limit_bytes: 64 << 20,
            cpu_deadline: Duration::from_millis(1000),
            epoch_tick: Duration::from_millis(10),
            call_timeout: Duration::from_secs(30),
            // Arbitrary: enough for dozens of flows with several instances each, and small
            // enough that the reserved address space (~4 GiB per slot) stays well inside 47 bits.
            max_instances: 256,
            instances_per_flow: 1,
            max_calls_per_flow: 1024,
            outbound: OutboundPolicy::default(),
            idle_trim: Some(Duration::from_secs(2)),
        }
    }
}

/// A limit's environment variable held a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not valid: {expected}")]
pub struct ConfigVarError {
    var: &'static str,
    value: String,
    expected: &'static str,
}

impl SandboxConfig {
    /// Defaults overridden by `FLOWHOST_*` environment variables (see the README's table).
    pub fn from_env() -> Result<Self, ConfigVarError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `get` (tests use a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigVarError> {
        let mut config = Self::default();
        let number = |var: &'static str, expected: &'static str| -> Result<Option<u64>, _> {
            match get(var) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(ConfigVarError {
                        var,
                        value: v,
                        expected,
                    }),
                },
            }
        };

        if let Some(mib) = number("FLOWHOST_MEMORY_LIMIT_MB", "a whole number of MiB above 0")? {
            config.memory_limit_bytes = usize::try_from(mib.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX)
                .min(4 << 30);
        }
        if let Some(ms) = number("FLOWHOST_CPU_DEADLINE_MS", "milliseconds above 0")? {
            config.cpu_deadline = Duration::from_millis(ms);
        }
        if let Some(ms) = number("FLOWHOST_EPOCH_TICK_MS", "milliseconds above 0")? {
            config.epoch_tick = Duration::from_millis(ms);
        }
        if let Some(ms) = number("FLOWHOST_CALL_TIMEOUT_MS", "milliseconds above 0")? {
            config.call_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = number("FLOWHOST_MAX_INSTANCES", "a count above 0")? {
            config.max_instances = u32::try_from(n).unwrap_or(u32::MAX).min(10_000);
        }
        if let Some(n) = number("FLOWHOST_INSTANCES_PER_FLOW", "a count above 0")? {
            config.instances_per_flow = usize::try_from(n).unwrap_or(usize::MAX).min(64);
        }
        if let Some(n) = number("FLOWHOST_MAX_CALLS_PER_FLOW", "a count above 0")? {
            config.max_calls_per_flow = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = number("FLOWHOST_HTTP_MAX_CONCURRENCY", "a count above 0")? {
            config.outbound.max_concurrency = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(ms) = number("FLOWHOST_HTTP_TIMEOUT_MS", "milliseconds above 0")? {
            config.outbound.timeout = Duration::from_millis(ms);
        }
        if let Some(kib) = number("FLOWHOST_HTTP_MAX_RESPONSE_KB", "a whole number of KiB")? {
            config.outbound.max_response_bytes =
                usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX);
        }
        if get("FLOWHOST_IDLE_TRIM_MS").is_some_and(|v| v.trim().eq_ignore_ascii_case("off")) {
            config.idle_trim = None;
        } else if let Some(ms) = number("FLOWHOST_IDLE_TRIM_MS", "milliseconds above 0 or off")? {
            config.idle_trim = Some(Duration::from_millis(ms));
        }
        if let Some(list) = get("FLOWHOST_HTTP_ALLOW_HOSTS") {
            let hosts: Vec<String> = list
                .split(',')
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .collect();
            config.outbound.allow_hosts = (!hosts.is_empty()).then_some(hosts);
        }
        Ok(config)
    }

    /// Epoch ticks a guest export may run before it is interrupted (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_micros().max(1);
        (self.cpu_deadline.as_micros().div_ceil(tick) as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_overrides_replace_defaults() {
        let config = SandboxConfig::from_lookup(lookup(&[
            ("FLOWHOST_MEMORY_LIMIT_MB", "32"),
            ("FLOWHOST_CPU_DEADLINE_MS", "250"),
            ("FLOWHOST_HTTP_ALLOW_HOSTS", "127.0.0.1, *.example.com"),
            ("FLOWHOST_IDLE_TRIM_MS", "500"),
        ]))
        .unwrap();
        assert_eq!(config.idle_trim, Some(Duration::from_millis(500)));
        assert_eq!(config.memory_limit_bytes, 32 << 20);
        assert_eq!(config.cpu_deadline, Duration::from_millis(250));
        assert_eq!(config.deadline_ticks(), 25);
        assert_eq!(
            config.outbound.allow_hosts,
            Some(vec!["127.0.0.1".to_string(), "*.example.com".to_string()])
        );
    }

    #[test]
    fn idle_trim_is_on_by_default_and_off_turns_it_off() {
        let on = SandboxConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(on.idle_trim, Some(Duration::from_secs(2)));
        let off =
            SandboxConfig::from_lookup(lookup(&[("FLOWHOST_IDLE_TRIM_MS", " OFF ")])).unwrap();
        assert_eq!(off.idle_trim, None);
        let err = SandboxConfig::from_lookup(lookup(&[("FLOWHOST_IDLE_TRIM_MS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FLOWHOST_IDLE_TRIM_MS") && err.contains("or off"),
            "{err}"
        );
    }

    #[test]
    fn bad_value_names_the_variable() {
        let err = SandboxConfig::from_lookup(lookup(&[("FLOWHOST_CPU_DEADLINE_MS", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("FLOWHOST_CPU_DEADLINE_MS"), "{err}");
        assert!(err.contains("milliseconds"), "{err}");
    }
}
