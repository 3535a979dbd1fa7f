//! A running flow: a small pool of guest instances, each driven by one task that is its event
//! loop.
//!
//! The driver task owns its instance outright. It feeds the guest new calls, the responses of
//! outbound requests and timer wake-ups, one export at a time, and hands every completed call
//! back to its caller. A trap ends the instance: every call still pending on it gets the error,
//! the error is logged with the flow's name, and the next call goes to a fresh instance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::guest::{Guest, GuestError};
use super::imports::now_ms;
use super::{FlowCode, Sandbox, SandboxError};
use crate::outbound::Outbound;

/// What a flow is made of when it starts.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    /// The flow's name, used in logs and errors.
    pub name: String,
    /// Its compiled module.
    pub code: Arc<FlowCode>,
    /// Initial `process.env` of the guest.
    pub env: BTreeMap<String, String>,
    /// Value passed to the module's `init` export.
    pub config: serde_json::Value,
    /// This flow's outbound HTTP limits; `None` takes the sandbox's.
    pub outbound: Option<crate::outbound::OutboundPolicy>,
}

/// Why a call did not produce a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The flow's handler threw or rejected.
    #[error("flow {flow}: {name}: {message}")]
    Threw {
        /// The flow's name.
        flow: String,
        /// The JavaScript error's class name.
        name: String,
        /// Its message.
        message: String,
        /// Its stack, when the guest had one.
        stack: Option<String>,
    },
    /// The instance trapped (CPU deadline, memory limit, bad import use) and was discarded.
    #[error("flow {flow}: {message}; the instance was discarded and the next call gets a new one")]
    Trap {
        /// The flow's name.
        flow: String,
        /// What happened.
        message: String,
    },
    /// Too many calls are in flight for this flow.
    #[error("flow {flow} is busy: {limit} calls are already in flight; retry later")]
    Busy {
        /// The flow's name.
        flow: String,
        /// The configured bound.
        limit: usize,
    },
    /// The call did not settle in time.
    #[error("flow {flow}: the call did not settle within {after:?}")]
    Timeout {
        /// The flow's name.
        flow: String,
        /// The configured call timeout.
        after: Duration,
    },
    /// The flow could not be (re)started, or has stopped.
    #[error("flow {flow} is not running: {message}")]
    Unavailable {
        /// The flow's name.
        flow: String,
        /// Why.
        message: String,
    },
}

/// Counters of one flow, for `/metrics` and `/status`.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Calls started.
    pub calls: AtomicU64,
    /// Calls that ended in an error of any kind.
    pub failed: AtomicU64,
    /// Instance traps.
    pub traps: AtomicU64,
    /// Instances created to replace a trapped one.
    pub recycles: AtomicU64,
    /// Outbound requests started by the guest.
    pub requests: AtomicU64,
    /// Linear memory of the live instances now, in bytes (a gauge).
    pub memory_bytes: AtomicU64,
    /// Bytes idle instances have given back with `guest.trim`.
    pub released_bytes: AtomicU64,
}

type Reply = oneshot::Sender<Result<String, CallError>>;

enum Command {
    Call {
        name: String,
        input: String,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    },
    Status {
        reply: oneshot::Sender<Option<serde_json::Value>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A started flow. Cheap to share behind an `Arc`; calls may come from many tasks at once.
pub struct Flow {
    name: Arc<str>,
    instances: Vec<mpsc::Sender<Command>>,
    next: AtomicUsize,
    permits: Arc<Semaphore>,
    limit: usize,
    call_timeout: Duration,
    stats: Arc<FlowStats>,
}

impl Flow {
    /// Starts the flow's instances and waits until each has loaded the module.
    pub(super) async fn start(sandbox: Arc<Sandbox>, spec: FlowSpec) -> Result<Self, SandboxError> {
        let name: Arc<str> = spec.name.as_str().into();
        let spec = Arc::new(spec);
        let stats = Arc::new(FlowStats::default());
        let policy = spec
            .outbound
            .clone()
            .unwrap_or_else(|| sandbox.config().outbound.clone());
        let outbound = Outbound::new(policy, sandbox.http_client().clone()).map_err(|e| {
            SandboxError::Start {
                flow: spec.name.clone(),
                message: e.to_string(),
            }
        })?;
        let outbound = Arc::new(outbound);
        let count = sandbox.config().instances_per_flow.max(1);
        let mut instances = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = mpsc::channel(1024);
            let (ready_tx, ready_rx) = oneshot::channel();
            let driver = Driver::new(
                sandbox.clone(),
                spec.clone(),
                stats.clone(),
                outbound.clone(),
            );
            tokio::spawn(driver.run(rx, ready_tx));
            match ready_rx.await {
                Ok(Ok(())) => instances.push(tx),
                Ok(Err(message)) => {
                    return Err(SandboxError::Start {
                        flow: spec.name.clone(),
                        message,
                    });
                }
                Err(_) => {
                    return Err(SandboxError::Start {
                        flow: spec.name.clone(),
                        message: format!("instance {index} stopped while loading"),
                    });
                }
            }
        }
        let limit = sandbox.config().max_calls_per_flow;
        tracing::info!(flow = %name, instances = count, "Flow started");
        Ok(Self {
            name,
            instances,
            next: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            call_timeout: sandbox.config().call_timeout,
            stats,
        })
    }

    /// The flow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The flow's counters.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Calls the module's export `name` with the JSON `input` and returns the JSON result.
    pub async fn call(&self, name: &str, input: &str) -> Result<String, CallError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let result = self.call_inner(name, input).await;
        if result.is_err() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn call_inner(&self, name: &str, input: &str) -> Result<String, CallError> {
        // The permit travels with the call and is released when the guest settles it, so a
        // call that times out on the caller's side still counts until the guest lets go.
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| CallError::Busy {
                flow: self.name.to_string(),
                limit: self.limit,
            })?;
        let (reply, response) = oneshot::channel();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        let command = Command::Call {
            name: name.to_string(),
            input: input.to_string(),
            reply,
            permit,
        };
        self.instances[index]
            .send(command)
            .await
            .map_err(|_| self.stopped())?;
        match tokio::time::timeout(self.call_timeout, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.stopped()),
            Err(_) => Err(CallError::Timeout {
                flow: self.name.to_string(),
                after: self.call_timeout,
            }),
        }
    }

    /// Status JSON of each instance (`guest.status` plus host figures).
    pub async fn status(&self) -> Vec<Option<serde_json::Value>> {
        let mut all = Vec::with_capacity(self.instances.len());
        for tx in &self.instances {
            let (reply, response) = oneshot::channel();
            let value = match tx.send(Command::Status { reply }).await {
                Ok(()) => response.await.ok().flatten(),
                Err(_) => None,
            };
            all.push(value);
        }
        all
    }

    /// Lets the flow finish: runs its `shutdown` export on every instance and stops them.
    pub async fn shutdown(&self) {
        for tx in &self.instances {
            let (reply, done) = oneshot::channel();
            if tx.send(Command::Shutdown { reply }).await.is_ok() {
                let _ = done.await;
            }
        }
        tracing::info!(flow = %self.name, "Flow stopped");
    }

    fn stopped(&self) -> CallError {
        CallError::Unavailable {
            flow: self.name.to_string(),
            message: "it has been shut down".into(),
        }
    }
}

/// A call the guest has not settled yet.
struct Pending {
    reply: Option<Reply>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The response of an outbound request, tagged with the instance that asked for it.
struct IoDone {
    instance: u64,
    request: u32,
    response: String,
}

/// How long shutdown waits for the flow's `shutdown` export to settle.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Calls a guest instance always takes; beyond this many in progress it takes more only while
/// no I/O response waits for it (see the driver loop).
const CALLS_BEFORE_BACKPRESSURE: usize = 8;

/// The event loop of one instance slot.
struct Driver {
    sandbox: Arc<Sandbox>,
    spec: Arc<FlowSpec>,
    stats: Arc<FlowStats>,
    outbound: Arc<Outbound>,
    guest: Option<Guest>,
    /// Counts instances of this slot; responses for an older instance are dropped.
    instance: u64,
    next_call: u32,
    pending: HashMap<u32, Pending>,
    /// The call id of a `load` in progress; new calls wait until it settles.
    loading: Option<u32>,
    /// When the load in progress is given up.
    load_deadline: tokio::time::Instant,
    /// Why the last load failed, until a new instance is tried.
    load_error: Option<String>,
    /// Calls that arrived while an instance was loading.
    queued: std::collections::VecDeque<(String, String, Reply, OwnedSemaphorePermit)>,
    io_tx: mpsc::UnboundedSender<IoDone>,
    io_rx: mpsc::UnboundedReceiver<IoDone>,
    /// Outbound requests of the current instance whose responses have not been handed over.
    requests_in_flight: usize,
    /// When the guest last took a call or a response, and whether it has since the last trim.
    last_active: tokio::time::Instant,
    active_since_trim: bool,
    /// Bytes the current instance has given back with `guest.trim`, in total.
    released_bytes: u64,
    /// This slot's share of `FlowStats::memory_bytes`.
    reported_memory: u64,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stats
            .memory_bytes
            .fetch_sub(self.reported_memory, Ordering::Relaxed);
    }
}

impl Driver {
    fn new(
        sandbox: Arc<Sandbox>,
        spec: Arc<FlowSpec>,
        stats: Arc<FlowStats>,
        outbound: Arc<Outbound>,
    ) -> Self {
        let (io_tx, io_rx) = mpsc::unbounded_channel();
        Self {
            sandbox,
            spec,
            stats,
            outbound,
            guest: None,
            instance: 0,
            next_call: 1,
            pending: HashMap::new(),
            loading: None,
            load_deadline: tokio::time::Instant::now(),
            load_error: None,
            queued: std::collections::VecDeque::new(),
            io_tx,
            io_rx,
            requests_in_flight: 0,
            last_active: tokio::time::Instant::now(),
            active_since_trim: false,
            released_bytes: 0,
            reported_memory: 0,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        ready: oneshot::Sender<Result<(), String>>,
    ) {
        let mut ready = Some(ready);
        let mut timers_just_fired = false;
        self.start_instance().await;
        loop {
            self.report_memory();
            // The first load decides whether the flow starts at all.
            if self.loading.is_none()
                && let Some(ready) = ready.take()
            {
                let outcome = match &self.load_error {
                    Some(message) => Err(message.clone()),
                    None => Ok(()),
                };
                let failed = outcome.is_err();
                let _ = ready.send(outcome);
                if failed {
                    return;
                }
            }

            // Calls that waited for a load go first, in arrival order.
            if self.loading.is_none()
                && let Some((name, input, reply, permit)) = self.queued.pop_front()
            {
                self.start_call(name, input, reply, permit).await;
                continue;
            }

            let timer = self
                .guest
                .as_ref()
                .and_then(|g| g.store.data().timer_deadline);

            // A deadline that passed while the guest was busy fires now: the runtime's timer
            // wheel would add up to a millisecond of delay on top. Never twice in a row, so that
            // a flow whose timers are always due cannot starve calls and I/O.
            if !timers_just_fired
                && timer.is_some_and(|at| at <= now_ms())
                && let Some(guest) = self.guest.as_mut()
            {
                timers_just_fired = true;
                let result = guest.fire_timers().await;
                self.after_export(result).await;
                continue;
            }
            timers_just_fired = false;

            let sleep = timer.map(|at| {
                let wait = ((at - now_ms()) / 1000.0).max(0.0);
                tokio::time::Instant::now() + Duration::from_secs_f64(wait.min(86_400.0))
            });
            // Finish before starting: while responses wait to be handed to a guest that already
            // holds some calls, it is busy, and starting more calls would only make each one
            // wait longer and the heap hold more of them. A guest that waits on slow I/O has
            // nothing to hand over and keeps taking calls up to the flow's limit.
            let saturated =
                self.pending.len() >= CALLS_BEFORE_BACKPRESSURE && !self.io_rx.is_empty();
            let loading = self.loading.is_some();
            let accept = !loading && !saturated;
            let load_deadline = self.load_deadline;
            // Idle after work: nothing in progress and nothing coming back.
            let trim_at = self.sandbox.config().idle_trim.and_then(|after| {
                (self.active_since_trim
                    && self.guest.is_some()
                    && !loading
                    && self.pending.is_empty()
                    && self.requests_in_flight == 0)
                    .then_some(self.last_active + after)
            });

            // Unbiased: calls, responses and timers take turns, as the phases of an event loop do.
            tokio::select! {
                Some(done) = self.io_rx.recv() => self.deliver_io(done).await,
                _ = tokio::time::sleep_until(load_deadline), if loading => {
                    let after = self.sandbox.config().call_timeout;
                    self.discard(GuestError {
                        message: format!("loading the flow did not settle within {after:?}"),
                    });
                }
                _ = tokio::time::sleep_until(trim_at.unwrap_or_else(tokio::time::Instant::now)), if trim_at.is_some() => {
                    self.trim().await;
                }
                _ = tokio::time::sleep_until(sleep.unwrap_or_else(tokio::time::Instant::now)), if sleep.is_some() => {
                    if let Some(guest) = self.guest.as_mut() {
                        let result = guest.fire_timers().await;
                        self.after_export(result).await;
                    }
                }
                command = commands.recv(), if accept => match command {
                    Some(Command::Call { name, input, reply, permit }) => {
                        self.start_call(name, input, reply, permit).await;
                    }
                    Some(Command::Status { reply }) => {
                        let _ = reply.send(self.status().await);
                    }
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
            }
        }
    }

    /// Creates a fresh instance and starts loading the flow into it.
    async fn start_instance(&mut self) {
        self.instance += 1;
        self.load_error = None;
        // Responses to the old instance's requests are dropped on arrival.
        self.requests_in_flight = 0;
        self.released_bytes = 0;
        let limits = self.sandbox.guest_limits();
        let flow: Arc<str> = self.spec.name.as_str().into();
        let mut guest = match Guest::instantiate(self.sandbox.instance_pre(), flow, limits).await {
            Ok(guest) => guest,
            Err(e) => {
                tracing::error!(flow = %self.spec.name, error = %e, "Cannot create a guest instance");
                self.load_error = Some(e.message);
                return;
            }
        };
        // Each instance gets fresh entropy inside the guest: the snapshot would otherwise give
        // every instance the same `Math.random` sequence.
        let config = serde_json::json!({
            "flow": self.spec.name,
            "env": self.spec.env,
            "config": self.spec.config,
        })
        .to_string();
        let call = self.call_id();
        self.pending.insert(
            call,
            Pending {
                reply: None,
                _permit: None,
            },
        );
        self.loading = Some(call);
        self.load_deadline = tokio::time::Instant::now() + self.sandbox.config().call_timeout;
        let result = guest.load(call, &self.spec.code.bytecode, &config).await;
        self.guest = Some(guest);
        self.after_export(result).await;
    }

    fn call_id(&mut self) -> u32 {
        let id = self.next_call;
        self.next_call = self.next_call.wrapping_add(1).max(1);
        id
    }

    async fn start_call(
        &mut self,
        name: String,
        input: String,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    ) {
        if self.guest.is_none() && self.loading.is_none() {
            // The previous instance trapped or failed to load: try a fresh one for this call.
            self.start_instance().await;
        }
        if self.loading.is_some() {
            self.queued.push_back((name, input, reply, permit));
            return;
        }
        if self.guest.is_none() {
            let message = self
                .load_error
                .clone()
                .unwrap_or_else(|| "no instance".into());
            let _ = reply.send(Err(CallError::Unavailable {
                flow: self.spec.name.clone(),
                message,
            }));
            return;
        }
        let call = self.call_id();
        self.pending.insert(
            call,
            Pending {
                reply: Some(reply),
                _permit: Some(permit),
            },
        );
        let Some(guest) = self.guest.as_mut() else {
            return;
        };
        let result = guest.call(call, &name, &input).await;
        self.after_export(result).await;
        // Idle time counts from the end of the work, not its start.
        self.mark_active();
    }

    /// Hands a response to the guest, unless it belongs to an instance that was discarded.
    async fn deliver_io(&mut self, done: IoDone) {
        if done.instance != self.instance {
            return;
        }
        self.requests_in_flight = self.requests_in_flight.saturating_sub(1);
        if let Some(guest) = self.guest.as_mut() {
            let result = guest.io_complete(done.request, &done.response).await;
            self.after_export(result).await;
        }
        self.mark_active();
    }

    /// Brings this slot's share of the flow's memory gauge up to date (cheap: one size read).
    fn report_memory(&mut self) {
        let now = self.guest.as_ref().map_or(0, |g| g.memory_bytes() as u64);
        if now != self.reported_memory {
            let gauge = &self.stats.memory_bytes;
            if now > self.reported_memory {
                gauge.fetch_add(now - self.reported_memory, Ordering::Relaxed);
            } else {
                gauge.fetch_sub(self.reported_memory - now, Ordering::Relaxed);
            }
            self.reported_memory = now;
        }
    }

    fn mark_active(&mut self) {
        self.last_active = tokio::time::Instant::now();
        self.active_since_trim = true;
    }

    /// Lets an idle guest collect its garbage and give free memory back (`guest.trim`).
    async fn trim(&mut self) {
        self.active_since_trim = false;
        let Some(guest) = self.guest.as_mut() else {
            return;
        };
        let before = guest.memory_bytes();
        let started = std::time::Instant::now();
        match guest.trim().await {
            Ok(released) => {
                self.released_bytes += released;
                self.stats
                    .released_bytes
                    .fetch_add(released, Ordering::Relaxed);
                tracing::debug!(
                    flow = %self.spec.name,
                    memory_bytes = before,
                    released_bytes = released,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "Idle guest collected its garbage and gave free memory back"
                );
            }
            Err(error) => self.discard(error),
        }
    }

    /// Acts on what the guest asked for during an export, or recycles it after a trap.
    async fn after_export(&mut self, result: Result<(), GuestError>) {
        if let Err(error) = result {
            self.discard(error);
            return;
        }
        let Some(guest) = self.guest.as_mut() else {
            return;
        };
        let state = guest.store.data_mut();
        let completions = std::mem::take(&mut state.completions);
        let requests = std::mem::take(&mut state.requests);

        for (request, body) in requests {
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            self.requests_in_flight += 1;
            let outbound = self.outbound.clone();
            let tx = self.io_tx.clone();
            let instance = self.instance;
            tokio::spawn(async move {
                let response = outbound.send(&body).await;
                let _ = tx.send(IoDone {
                    instance,
                    request,
                    response,
                });
            });
        }

        for done in completions {
            let Some(pending) = self.pending.remove(&done.call) else {
                tracing::warn!(flow = %self.spec.name, call = done.call, "Guest completed an unknown call");
                continue;
            };
            if self.loading == Some(done.call) {
                self.loading = None;
                if !done.ok {
                    let message = describe_error(&done.payload);
                    tracing::error!(flow = %self.spec.name, error = %message, "Flow failed to load");
                    self.load_error = Some(message);
                    self.guest = None;
                    self.fail_queued();
                    return;
                }
                continue;
            }
            if let Some(reply) = pending.reply {
                let _ = reply.send(if done.ok {
                    Ok(done.payload)
                } else {
                    Err(self.threw(&done.payload))
                });
            }
        }

        // Linear memory never shrinks: an instance that grew to its limit stays there and would
        // fail every later allocation, so it is replaced once its calls are answered.
        if self.at_memory_limit() {
            let limit = self.sandbox.guest_limits().memory_bytes;
            self.discard(GuestError {
                message: format!(
                    "the instance reached its memory limit of {} MiB",
                    limit >> 20
                ),
            });
        }
    }

    /// Whether the instance's memory is within 1 MiB of its limit.
    fn at_memory_limit(&self) -> bool {
        let limit = self.sandbox.guest_limits().memory_bytes;
        self.guest
            .as_ref()
            .is_some_and(|g| g.memory_bytes() + (1 << 20) >= limit)
    }

    /// Drops a trapped instance and fails everything that was pending on it.
    fn discard(&mut self, error: GuestError) {
        self.stats.traps.fetch_add(1, Ordering::Relaxed);
        self.stats.recycles.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            flow = %self.spec.name,
            error = %error.message,
            pending = self.pending.len(),
            "Guest instance discarded"
        );
        if self.loading.take().is_some() {
            self.load_error = Some(error.message.clone());
            self.fail_queued();
        }
        self.guest = None;
        for (_, pending) in self.pending.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(CallError::Trap {
                    flow: self.spec.name.clone(),
                    message: error.message.clone(),
                }));
            }
        }
    }

    /// Answers the calls that waited for a load that failed.
    fn fail_queued(&mut self) {
        let message = self.load_error.clone().unwrap_or_default();
        for (_, _, reply, _) in self.queued.drain(..) {
            let _ = reply.send(Err(CallError::Unavailable {
                flow: self.spec.name.clone(),
                message: message.clone(),
            }));
        }
    }

    fn threw(&self, payload: &str) -> CallError {
        let value: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let mut message = text("message").unwrap_or_else(|| payload.to_string());
        // QuickJS throws null when it cannot even allocate its "out of memory" error.
        if message == "null" && self.at_memory_limit() {
            let limit = self.sandbox.guest_limits().memory_bytes;
            message = format!(
                "out of memory: the instance is at its {} MiB limit (FLOWHOST_MEMORY_LIMIT_MB), \
                 too full to build the error",
                limit >> 20
            );
        }
        CallError::Threw {
            flow: self.spec.name.clone(),
            name: text("name").unwrap_or_else(|| "Error".into()),
            message,
            stack: text("stack"),
        }
    }

    async fn status(&mut self) -> Option<serde_json::Value> {
        let guest = self.guest.as_mut()?;
        let memory = guest.memory_bytes();
        match guest.status().await {
            Ok(text) => {
                let mut value: serde_json::Value = serde_json::from_str(&text).ok()?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("memoryBytes".into(), memory.into());
                    map.insert("releasedBytes".into(), self.released_bytes.into());
                    map.insert("instance".into(), self.instance.into());
                }
                Some(value)
            }
            Err(e) => {
                self.discard(e);
                None
            }
        }
    }

    async fn shutdown(&mut self) {
        if self.guest.is_none() {
            return;
        }
        let call = self.call_id();
        self.pending.insert(
            call,
            Pending {
                reply: None,
                _permit: None,
            },
        );
        let Some(guest) = self.guest.as_mut() else {
            return;
        };
        let result = guest.shutdown(call).await;
        self.after_export(result).await;
        // Give the flow's own shutdown (flushing batches, say) time to finish its I/O.
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.guest.is_some() && self.pending.contains_key(&call) && Instant::now() < until {
            let timer = self
                .guest
                .as_ref()
                .and_then(|g| g.store.data().timer_deadline);
            let wait = timer
                .map(|at| ((at - now_ms()) / 1000.0).clamp(0.0, 1.0))
                .unwrap_or(1.0)
                .min(
                    until
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64(),
                );
            tokio::select! {
                Some(done) = self.io_rx.recv() => self.deliver_io(done).await,
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {
                    if timer.is_some_and(|at| at <= now_ms())
                        && let Some(guest) = self.guest.as_mut()
                    {
                        let result = guest.fire_timers().await;
                        self.after_export(result).await;
                    }
                }
            }
        }
        for (_, pending) in self.pending.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(CallError::Unavailable {
                    flow: self.spec.name.clone(),
                    message: "it shut down before the call settled".into(),
                }));
            }
        }
        self.guest = None;
    }
}

/// Turns the `{name, message, stack}` JSON of a thrown error into one line.
fn describe_error(payload: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(value) => {
            let name = value
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("Error");
            let message = value
                .get("message")
                .and_then(|v| v.as_str())
                .unwrap_or(payload);
            format!("{name}: {message}")
        }
        Err(_) => payload.to_string(),
    }
}
