//! Gives memory back after a burst of traffic: once the runner has been quiet for a moment after
//! handling events, the C heap returns its free pages to the operating system.
//!
//! glibc keeps what a thread freed in that thread's arena for reuse, so after a load run the
//! process holds the peak of request buffers and queued deliveries long after they were freed.
//! `malloc_trim` hands whole free pages back (it can release pages in the middle of an arena, not
//! only at its top). It walks every arena, so it runs twice per quiet period (after a second,
//! and after the outbound pool has closed its idle connections), never under load. Start-up
//! counts as activity: bundling a flow and compiling the shim free tens of MB that would
//! otherwise stay in the arenas until the first traffic had come and gone. Blocks in glibc's
//! per-thread cache defeat the trim, so `flowhost run` starts with that cache off
//! ([`restart_without_thread_cache`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the runner looks for activity.
const TICK: Duration = Duration::from_secs(1);

/// Quiet seconds after which the heap is trimmed: at once, and again once the outbound pool has
/// closed the connections the burst left idle (they hold buffers until then). The pool looks for
/// expired connections once per idle timeout, so one can stay open for up to twice that.
const TRIM_AFTER_QUIET: [u64; 2] = [1, 2 * crate::outbound::POOL_IDLE_TIMEOUT.as_secs() + 2];

/// Watches the runner's counters and trims the heap at each of [`TRIM_AFTER_QUIET`] seconds
/// without activity, counting the start as activity.
pub fn spawn(metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = activity(&metrics);
        // Seconds since the last activity; `None` once the last trim of a quiet period ran.
        let mut quiet = Some(0u64);
        loop {
            interval.tick().await;
            let now = activity(&metrics);
            if now != last {
                last = now;
                quiet = Some(0);
                continue;
            }
            let Some(seconds) = quiet.map(|s| s + 1) else {
                continue;
            };
            if TRIM_AFTER_QUIET.contains(&seconds) {
                trim(seconds);
            }
            quiet = (seconds < TRIM_AFTER_QUIET[TRIM_AFTER_QUIET.len() - 1]).then_some(seconds);
        }
    })
}

/// A number that changes whenever an event or connection comes or goes, or a flow is swapped or
/// built.
fn activity(metrics: &Metrics) -> u64 {
    [
        &metrics.events_received,
        &metrics.events_delivered,
        &metrics.events_failed,
        &metrics.events_invalid,
        &metrics.connections_accepted,
        &metrics.swaps,
        &metrics.artifact_cache_hits,
        &metrics.artifact_cache_misses,
    ]
    .iter()
    .map(|counter| counter.load(Ordering::Relaxed))
    .fold(0u64, u64::wrapping_add)
}

/// The glibc tunable that turns off each thread's cache of freed blocks (tcache).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const NO_THREAD_CACHE: &str = "glibc.malloc.tcache_count=0";

/// Replaces this process with itself (same pid, arguments and environment) with glibc's
/// per-thread cache of freed blocks turned off, unless `GLIBC_TUNABLES` already sets its size;
/// returns when that is not needed or the exec fails.
///
/// The cache keeps up to seven freed blocks of each size up to about 1 KiB per thread, and
/// `malloc_trim` counts them as in use: after a burst the few hundred of them pin pages all over
/// the arena, 1.7 to 2 MB of RSS in `benches/load.sh` runs. Without the cache those pages go
/// back; the load runs showed no change in requests per second (the host's own allocations are
/// a small part of a request, and the guest has its own allocator). glibc reads tunables only
/// when a program starts, hence the exec. An operator who wants the cache sets
/// `GLIBC_TUNABLES=glibc.malloc.tcache_count=7`, glibc's default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn restart_without_thread_cache() {
    use std::os::unix::process::CommandExt;

    let current = match std::env::var("GLIBC_TUNABLES") {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => String::new(),
        // Not text: leave it as the operator wrote it.
        Err(std::env::VarError::NotUnicode(_)) => return,
    };
    let Some(tunables) = without_thread_cache(&current) else {
        return;
    };
    let mut args = std::env::args_os();
    let Some(program) = args.next() else {
        return;
    };
    // `/proc/self/exe` is this very binary even if its file was replaced since.
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(program)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    tracing::debug!(
        %error,
        "Cannot restart with glibc's thread cache off; freed memory may stay resident after bursts"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn restart_without_thread_cache() {}

/// `GLIBC_TUNABLES` with the thread cache off added to what `current` sets, or `None` when
/// `current` already sets the cache's size.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn without_thread_cache(current: &str) -> Option<String> {
    if current.contains("glibc.malloc.tcache_count") {
        None
    } else if current.is_empty() {
        Some(NO_THREAD_CACHE.to_string())
    } else {
        Some(format!("{current}:{NO_THREAD_CACHE}"))
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim(quiet_seconds: u64) {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only releases free memory; it is safe to call from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        quiet_seconds,
        released = released != 0,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "Quiet: free heap pages returned to the system"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim(_quiet_seconds: u64) {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn the_thread_cache_is_turned_off_unless_its_size_is_set() {
        assert_eq!(
            without_thread_cache("").as_deref(),
            Some("glibc.malloc.tcache_count=0")
        );
        assert_eq!(
            without_thread_cache("glibc.malloc.arena_max=2").as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0")
        );
        assert_eq!(without_thread_cache("glibc.malloc.tcache_count=7"), None);
        assert_eq!(
            without_thread_cache("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=3"),
            None
        );
    }
}
