//! The flow's JavaScript world: the QuickJS context that `initialize-runtime` prepares, the
//! prelude's hooks, and the event-loop duties every export shares.
//!
//! Each export enters the context once, calls one prelude hook, then [`Shim::settle`]s: it drains
//! the job queue, logs unhandled rejections and reports a changed timer deadline to the host.
//! This module owns the bookkeeping that makes `host.complete` happen exactly once per call; it
//! does not know the canonical ABI (see `abi.rs`) or how flows are compiled (see `builder.rs`).

use std::{
    cell::{Cell, RefCell},
    collections::HashSet,
    hash::{BuildHasherDefault, DefaultHasher},
    rc::Rc,
    slice,
};

use javy_plugin_api::{
    Config,
    javy::{
        Runtime,
        quickjs::{
            Context, Ctx, Error, Exception, Function, Module, Object, Persistent,
            String as JsString, TypedArray, Value, context::EvalOptions, prelude::Func, qjs,
        },
    },
};

use crate::{
    builder,
    host::{self, Level},
};

/// The prelude, evaluated by `initialize-runtime` and snapshotted with the runtime.
const PRELUDE: &str = include_str!("prelude.js");

/// File name of the prelude in stack traces.
const PRELUDE_NAME: &str = "flowhost:prelude.js";

/// Indexes into the prelude's `state` array (keep in step with `prelude.js`).
const NEXT_DEADLINE: usize = 0;
const TIMERS: usize = 1;
const REQUESTS: usize = 2;
const NEXT_SEQ: usize = 3;
const STATE_LEN: usize = 4;

/// Heap size at which QuickJS first runs its cycle collector; afterwards it runs again whenever
/// the heap has grown by half since the last run, and by at least [`GC_MIN_GROWTH`]. Javy never
/// collects cycles (it targets short programs), but a flow instance lives for many calls, so
/// cyclic garbage must not pile up. The sizes are real bytes because QuickJS is built to ask
/// `malloc_usable_size` (see `host/build.rs`); a walkerOS collector holding its last 1,000
/// events is ~3.5 MiB.
const GC_THRESHOLD: usize = 4 << 20;

/// Garbage allowed between two cycle collections at the least (see `Shim::pace_collector`).
const GC_MIN_GROWTH: usize = 4 << 20;

/// Hasher for call ids: they come from the trusted host, so SipHash with fixed keys is enough
/// and keeps the set constructible in a `const` (no lazy random keys in the snapshot).
type IdHasher = BuildHasherDefault<DefaultHasher>;

thread_local! {
    /// What `initialize-runtime` set up; `None` before it ran.
    static SHIM: RefCell<Option<Rc<Shim>>> = const { RefCell::new(None) };

    /// Calls started and not yet completed.
    static PENDING_CALLS: RefCell<HashSet<u32, IdHasher>> =
        const { RefCell::new(HashSet::with_hasher(BuildHasherDefault::new())) };

    /// Rejected promises without a handler, as reported by QuickJS, checked after each drain.
    static REJECTIONS: RefCell<Vec<(Persistent<Value<'static>>, Persistent<Value<'static>>)>> =
        const { RefCell::new(Vec::new()) };
}

/// The javy configuration of the flow runtime.
pub fn config() -> Config {
    let mut config = Config::default();
    config
        .text_encoding(true)
        .weak_ref(true)
        .performance(true)
        .gc_threshold(GC_THRESHOLD);
    config
}

/// Runs inside `javy_plugin_api::initialize_runtime`: keeps a handle on the context, because
/// javy keeps its own runtime private, and watches for unhandled promise rejections.
pub fn modify_runtime(runtime: Runtime) -> Runtime {
    let context = runtime.context().clone();
    context
        .runtime()
        .set_host_promise_rejection_tracker(Some(Box::new(track_rejection)));
    PENDING_CONTEXT.with(|slot| {
        // A second initialisation (another Wizer pass) replaces the runtime; the old context
        // belongs to a runtime javy never frees, so dropping our handle would gain nothing.
        if let Some(old) = slot.replace(Some(context)) {
            std::mem::forget(old);
        }
    });
    runtime
}

thread_local! {
    /// The context captured by `modify_runtime`, until `install_prelude` takes it.
    static PENDING_CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Evaluates the prelude in the context captured by `modify_runtime` and makes the shim live.
pub fn install_prelude() -> Result<(), String> {
    let context = PENDING_CONTEXT
        .with(|slot| slot.borrow_mut().take())
        .ok_or("initialize_runtime did not hand over a context")?;
    let (hooks, state) = context
        .with(|ctx| Shim::build(&ctx).map_err(|e| describe_error(&ctx, e)))
        .map_err(|e| format!("the runtime prelude failed: {e}"))?;
    let shim = Rc::new(Shim {
        context,
        hooks,
        state,
        loaded: Cell::new(false),
        reported_deadline: Cell::new(-1.0),
        gc_threshold: Cell::new(GC_THRESHOLD),
    });
    SHIM.with(|slot| {
        if let Some(old) = slot.replace(Some(shim)) {
            std::mem::forget(old);
        }
    });
    Ok(())
}

/// The live shim, if `initialize-runtime` has run.
pub fn current() -> Option<Rc<Shim>> {
    SHIM.with(|slot| slot.borrow().clone())
}

/// The prelude's hooks, as persistent handles so that no export looks anything up by name.
struct Hooks {
    call: Persistent<Function<'static>>,
    prepare_load: Persistent<Function<'static>>,
    finish_load: Persistent<Function<'static>>,
    fail_load: Persistent<Function<'static>>,
    fail: Persistent<Function<'static>>,
    io_complete: Persistent<Function<'static>>,
    run_timer: Persistent<Function<'static>>,
    shutdown: Persistent<Function<'static>>,
    describe: Persistent<Function<'static>>,
    /// Keeps the prelude's `state` array alive for the raw pointer in [`Shim::state`].
    _state: Persistent<Value<'static>>,
}

/// The flow runtime of this instance.
pub struct Shim {
    /// The javy context; the prelude and the flow live in it.
    context: Context,
    hooks: Hooks,
    /// The prelude's `Float64Array(STATE_LEN)`, read in place so that `status` and the deadline
    /// check after every export need no JavaScript.
    state: *const f64,
    /// Whether `load` has run, successfully or not.
    loaded: Cell<bool>,
    /// The deadline last passed to `host.set-timer` (-1: none), to call it only on change.
    reported_deadline: Cell<f64>,
    /// The collector threshold as last set by `pace_collector` (or the initial one).
    gc_threshold: Cell<usize>,
}

/// Why a call failed before JavaScript could report it itself.
pub enum Failure {
    /// A QuickJS error; for [`Error::Exception`] the exception is still pending in the context.
    Js(Error),
    /// A problem found on the Rust side.
    Message(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Js(error)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

impl Failure {
    /// The failure as a JavaScript value for the prelude's error formatting.
    fn into_value<'js>(self, ctx: &Ctx<'js>) -> Value<'js> {
        let message = match self {
            Failure::Js(Error::Exception) => return ctx.catch(),
            Failure::Js(error) => error.to_string(),
            Failure::Message(message) => message,
        };
        match Exception::from_message(ctx.clone(), &message) {
            Ok(exception) => exception.into_value(),
            Err(_) => Value::new_undefined(ctx.clone()),
        }
    }
}

impl Shim {
    /// Evaluates the prelude with the natives and collects its hooks.
    fn build<'js>(ctx: &Ctx<'js>) -> Result<(Hooks, *const f64), Error> {
        let native = Object::new(ctx.clone())?;
        native.set("log", Func::from(native_log))?;
        native.set("httpStart", Func::from(native_http_start))?;
        native.set("complete", Func::from(native_complete))?;
        native.set("nowMs", Func::from(host::now_ms))?;

        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = true;
        options.filename = Some(PRELUDE_NAME.to_string());
        let prelude: Function = ctx.eval_with_options(PRELUDE, options)?;
        let hooks: Object = prelude.call((native,))?;
        crate::globals::install(ctx)?;

        let state: TypedArray<f64> = hooks.get("state")?;
        let raw = state.as_raw().ok_or(Error::Unknown)?;
        if raw.len < STATE_LEN * size_of::<f64>() {
            return Err(Error::Unknown);
        }
        let hook = |name: &str| -> Result<Persistent<Function<'static>>, Error> {
            Ok(Persistent::save(ctx, hooks.get::<_, Function>(name)?))
        };
        let hooks = Hooks {
            call: hook("call")?,
            prepare_load: hook("prepareLoad")?,
            finish_load: hook("finishLoad")?,
            fail_load: hook("failLoad")?,
            fail: hook("fail")?,
            io_complete: hook("ioComplete")?,
            run_timer: hook("runTimer")?,
            shutdown: hook("shutdown")?,
            describe: hook("describe")?,
            _state: Persistent::save(ctx, state.into_value()),
        };
        Ok((hooks, raw.ptr.as_ptr().cast_const().cast()))
    }

    fn state(&self) -> &[f64] {
        // The array is owned by the prelude closure and kept alive by `Hooks::_state`; nothing
        // can detach or resize it because flow code never sees it.
        unsafe { slice::from_raw_parts(self.state, STATE_LEN) }
    }

    /// Runs `f` in the context, then does what every export does afterwards.
    fn enter(&self, f: impl FnOnce(&Ctx<'_>)) {
        self.context.with(|ctx| {
            f(&ctx);
            self.settle(&ctx);
        });
    }

    /// Drains the job queue, reports unhandled rejections and the next timer deadline.
    fn settle(&self, ctx: &Ctx<'_>) {
        drain(ctx);
        self.report_rejections(ctx);
        self.pace_collector(ctx);
        let deadline = self.state()[NEXT_DEADLINE];
        if deadline.to_bits() != self.reported_deadline.get().to_bits() {
            self.reported_deadline.set(deadline);
            host::set_timer(deadline);
        }
    }

    /// After each cycle collection QuickJS sets its next threshold to 1.5 times the heap that
    /// survived. For a collector holding a few MiB of events that means a full collection every
    /// couple of MiB of garbage, each one walking every live object; at least
    /// [`GC_MIN_GROWTH`] of garbage between collections keeps their cost per event low.
    fn pace_collector(&self, ctx: &Ctx<'_>) {
        // Safety: the context's runtime is alive while `ctx` is; both calls only read and
        // write one field of it.
        unsafe {
            let rt = qjs::JS_GetRuntime(ctx.as_raw().as_ptr());
            let threshold = qjs::JS_GetGCThreshold(rt) as usize;
            if threshold != self.gc_threshold.get() {
                // A collection just ran and set `threshold` to 1.5 × what survived.
                let survived = threshold / 3 * 2;
                let paced = threshold.max(survived + GC_MIN_GROWTH);
                qjs::JS_SetGCThreshold(rt, paced as _);
                self.gc_threshold.set(paced);
            }
        }
    }

    fn report_rejections(&self, ctx: &Ctx<'_>) {
        let rejected = REJECTIONS.with(|list| std::mem::take(&mut *list.borrow_mut()));
        for (_, reason) in rejected {
            let Ok(reason) = reason.restore(ctx) else {
                continue;
            };
            let text = self.describe(ctx, reason);
            host::log(Level::Warn, &format!("Unhandled promise rejection: {text}"));
        }
    }

    /// A readable description of any thrown value, never failing.
    fn describe<'js>(&self, ctx: &Ctx<'js>, value: Value<'js>) -> String {
        let described = self
            .hooks
            .describe
            .clone()
            .restore(ctx)
            .and_then(|describe| describe.call::<_, JsString>((value,)))
            .and_then(|text| with_utf8(text, str::to_string));
        match described {
            Ok(text) => text,
            Err(error) => {
                // The prelude could not format it (out of memory?): say so, and drop whatever
                // exception that left behind.
                if matches!(error, Error::Exception) {
                    ctx.catch();
                }
                "(a value that could not be described)".to_string()
            }
        }
    }

    /// Logs a failure of shim machinery that has no call to report it to.
    fn warn(&self, ctx: &Ctx<'_>, what: &str, error: Error) {
        let detail = match error {
            Error::Exception => self.describe(ctx, ctx.catch()),
            other => other.to_string(),
        };
        host::log(Level::Warn, &format!("{what}: {detail}"));
    }

    /// Completes `call` with `failure`, formatted by the prelude like a thrown error.
    fn fail(
        &self,
        ctx: &Ctx<'_>,
        call: u32,
        failure: Failure,
        hook: &Persistent<Function<'static>>,
    ) {
        let value = failure.into_value(ctx);
        let reported = hook
            .clone()
            .restore(ctx)
            .and_then(|fail| fail.call::<_, ()>((call, value)));
        if let Err(error) = reported {
            if matches!(error, Error::Exception) {
                ctx.catch();
            }
            let json = format!(
                r#"{{"name":"Error","message":{},"stack":""}}"#,
                json_string(&format!("the guest could not report an error: {error}"))
            );
            finish_call(call, false, &json);
        }
    }

    /// `guest.load`: evaluates the flow module and runs its `init`.
    pub fn load(&self, call: u32, bytecode: &[u8], config: &[u8]) {
        begin_call(call);
        self.enter(|ctx| {
            if self.loaded.replace(true) {
                let failure = Failure::Message("a flow is already loaded in this instance".into());
                self.fail(ctx, call, failure, &self.hooks.fail);
                return;
            }
            // The snapshot froze javy's `Math.random` generator; give every instance its own.
            fastrand::seed(host::random_u64());
            if let Err(failure) = self.evaluate(ctx, call, bytecode, config) {
                self.fail(ctx, call, failure, &self.hooks.fail_load);
            }
        });
    }

    fn evaluate(
        &self,
        ctx: &Ctx<'_>,
        call: u32,
        bytecode: &[u8],
        config: &[u8],
    ) -> Result<(), Failure> {
        let config = std::str::from_utf8(config)
            .map_err(|_| "the load config is not valid UTF-8".to_string())?;
        self.hooks
            .prepare_load
            .clone()
            .restore(ctx)?
            .call::<_, ()>((config,))?;

        let code = builder::unwrap_bytecode(bytecode)?;
        // Safety: `unwrap_bytecode` checked that the bytes come from `builder::compile` of this
        // very build, which is what QuickJS requires of bytecode it reads.
        let module = unsafe { Module::load(ctx.clone(), code)? };
        let (module, evaluation) = module.eval()?;
        let namespace = module.namespace()?;
        let finish = self.hooks.finish_load.clone().restore(ctx)?;
        finish.call::<_, ()>((call, namespace, evaluation))?;
        Ok(())
    }

    /// `guest.call`: invokes the flow's export `name` with the JSON `input`.
    pub fn call(&self, call: u32, name: &[u8], input: &[u8]) {
        begin_call(call);
        self.enter(|ctx| {
            let started = (|| -> Result<(), Failure> {
                let name = std::str::from_utf8(name)
                    .map_err(|_| "the export name is not valid UTF-8".to_string())?;
                let input = std::str::from_utf8(input)
                    .map_err(|_| "the call input is not valid UTF-8".to_string())?;
                let hook = self.hooks.call.clone().restore(ctx)?;
                hook.call::<_, ()>((call, name, input))?;
                Ok(())
            })();
            if let Err(failure) = started {
                self.fail(ctx, call, failure, &self.hooks.fail);
            }
        });
    }

    /// `guest.io-complete`: settles the promise of request `request`.
    pub fn io_complete(&self, request: u32, response: &[u8]) {
        self.enter(|ctx| {
            let response = String::from_utf8_lossy(response);
            let delivered = self
                .hooks
                .io_complete
                .clone()
                .restore(ctx)
                .and_then(|hook| hook.call::<_, ()>((request, response.as_ref())));
            if let Err(error) = delivered {
                self.warn(ctx, "Delivering an HTTP response failed", error);
            }
        });
    }

    /// `guest.fire-timers`: runs the due timers that existed when the round began, in deadline
    /// order, draining the job queue after each.
    pub fn fire_timers(&self) {
        self.enter(|ctx| {
            let now = host::now_ms();
            let limit = self.state()[NEXT_SEQ];
            let run_timer = match self.hooks.run_timer.clone().restore(ctx) {
                Ok(hook) => hook,
                Err(error) => return self.warn(ctx, "Firing timers failed", error),
            };
            loop {
                match run_timer.call::<_, bool>((now, limit)) {
                    Ok(true) => drain(ctx),
                    Ok(false) => break,
                    Err(error) => {
                        self.warn(ctx, "Firing timers failed", error);
                        break;
                    }
                }
            }
        });
    }

    /// `guest.shutdown`: runs the flow's `shutdown` export, then cancels every timer.
    pub fn shutdown(&self, call: u32) {
        begin_call(call);
        self.enter(|ctx| {
            let started = self
                .hooks
                .shutdown
                .clone()
                .restore(ctx)
                .and_then(|hook| hook.call::<_, ()>((call,)));
            if let Err(error) = started {
                self.fail(ctx, call, Failure::Js(error), &self.hooks.fail);
            }
        });
    }

    /// `guest.status`: the instance's counters as JSON, without running JavaScript.
    pub fn status(&self) -> String {
        let state = self.state();
        let deadline = state[NEXT_DEADLINE];
        let next = if deadline >= 0.0 && deadline.is_finite() {
            deadline.to_string()
        } else {
            "null".to_string()
        };
        format!(
            r#"{{"pendingCalls":{},"pendingRequests":{},"timers":{},"nextTimerMs":{next},"heapBytes":{}}}"#,
            PENDING_CALLS.with(|calls| calls.borrow().len()),
            state[REQUESTS],
            state[TIMERS],
            crate::alloc::bytes_in_use(),
        )
    }

    /// Runs QuickJS's cycle collector now. Finalizers may queue jobs; they run with the next
    /// export's drain.
    pub fn collect_garbage(&self) {
        self.context.runtime().run_gc();
    }

    /// The runtime, for compiling in a scratch context.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// `status` before `initialize-runtime` ran: an instance with nothing in it.
pub fn empty_status() -> String {
    format!(
        r#"{{"pendingCalls":0,"pendingRequests":0,"timers":0,"nextTimerMs":null,"heapBytes":{}}}"#,
        crate::alloc::bytes_in_use()
    )
}

/// Completes `call` when there is no runtime to run it in.
pub fn fail_uninitialized(call: u32) {
    host::complete(
        call,
        false,
        r#"{"name":"Error","message":"the guest runtime is not initialized: run initialize-runtime first","stack":""}"#,
    );
}

/// Records that `call` has started and must be completed once.
fn begin_call(call: u32) {
    let fresh = PENDING_CALLS.with(|calls| calls.borrow_mut().insert(call));
    if !fresh {
        host::log(
            Level::Warn,
            &format!("call {call} was started again while still pending; it completes once"),
        );
    }
}

/// Passes a completion to the host, unless `call` is not pending (then it would be a second one).
fn finish_call(call: u32, ok: bool, result: &str) {
    if PENDING_CALLS.with(|calls| calls.borrow_mut().remove(&call)) {
        host::complete(call, ok, result);
    } else {
        host::log(
            Level::Warn,
            &format!("call {call} completed again or was never started; result dropped"),
        );
    }
}

/// Runs every queued job. An exception escaping a job has nobody to go to but the log.
fn drain(ctx: &Ctx<'_>) {
    while ctx.execute_pending_job() {
        if ctx.has_exception() {
            let value = ctx.catch();
            let text = current()
                .map(|shim| shim.describe(ctx, value))
                .unwrap_or_else(|| "(unknown)".to_string());
            host::log(Level::Warn, &format!("Uncaught exception in a job: {text}"));
        }
    }
}

/// QuickJS's rejection tracker: remembers rejections without a handler until the next drain
/// is over, and forgets those that get a handler in the meantime.
fn track_rejection<'js>(ctx: Ctx<'js>, promise: Value<'js>, reason: Value<'js>, handled: bool) {
    REJECTIONS.with(|list| {
        let mut list = list.borrow_mut();
        if handled {
            let promise = Persistent::save(&ctx, promise);
            list.retain(|(tracked, _)| *tracked != promise);
        } else {
            list.push((
                Persistent::save(&ctx, promise),
                Persistent::save(&ctx, reason),
            ));
        }
    });
}

/// Calls `f` with the UTF-8 of a JavaScript string. QuickJS keeps lone surrogates as WTF-8,
/// which is not a valid WIT `string`, so those (rare) strings are repaired first.
fn with_utf8<R>(text: JsString<'_>, f: impl FnOnce(&str) -> R) -> Result<R, Error> {
    let text = text.to_cstring()?;
    let bytes = unsafe { slice::from_raw_parts(text.as_ptr().cast::<u8>(), text.len()) };
    Ok(match std::str::from_utf8(bytes) {
        Ok(valid) => f(valid),
        Err(_) => f(&String::from_utf8_lossy(bytes)),
    })
}

/// `native.log(level, message)`.
fn native_log(level: i32, message: JsString<'_>) -> Result<(), Error> {
    with_utf8(message, |text| host::log(Level::from_i32(level), text))
}

/// `native.httpStart(requestJson) -> id`.
fn native_http_start(request: JsString<'_>) -> Result<u32, Error> {
    with_utf8(request, host::http_start)
}

/// `native.complete(call, ok, resultJson)`.
fn native_complete(call: u32, ok: bool, result: JsString<'_>) -> Result<(), Error> {
    with_utf8(result, |text| finish_call(call, ok, text))
}

/// The message of a QuickJS error, with the exception's own text if there is one.
pub fn describe_error(ctx: &Ctx<'_>, error: Error) -> String {
    match error {
        Error::Exception => {
            let value = ctx.catch();
            match value.as_exception() {
                Some(exception) => {
                    let name = exception
                        .get::<_, String>("name")
                        .unwrap_or_else(|_| "Error".into());
                    let message = exception.message().unwrap_or_default();
                    let stack = exception.stack().unwrap_or_default();
                    format!("{name}: {message}\n{stack}").trim_end().to_string()
                }
                None => format!("{value:?}"),
            }
        }
        other => other.to_string(),
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
