//! Gives memory back after a burst of traffic: once the runner has been quiet for a moment after
//! handling events, the C heap returns its free pages to the operating system.
//!
//! glibc keeps what a thread freed in that thread's arena for reuse, so after a load run the
//! process holds the peak of request buffers and queued deliveries long after they were freed.
//! `malloc_trim` hands whole free pages back (it can release pages in the middle of an arena, not
//! only at its top). It walks every arena, so it runs once per quiet period, never under load.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the runner looks for activity.
const TICK: Duration = Duration::from_secs(1);

/// Watches the runner's counters and trims the heap after the first tick without activity.
pub fn spawn(metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = activity(&metrics);
        let mut busy = false;
        loop {
            interval.tick().await;
            let now = activity(&metrics);
            if now != last {
                busy = true;
                last = now;
            } else if busy {
                busy = false;
                trim();
            }
        }
    })
}

/// A number that changes whenever an event or connection comes or goes.
fn activity(metrics: &Metrics) -> u64 {
    [
        &metrics.events_received,
        &metrics.events_delivered,
        &metrics.events_failed,
        &metrics.events_invalid,
        &metrics.connections_accepted,
    ]
    .iter()
    .map(|counter| counter.load(Ordering::Relaxed))
    .fold(0u64, u64::wrapping_add)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only releases free memory; it is safe to call from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        released = released != 0,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "Quiet after traffic: free heap pages returned to the system"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
