//! The imports of interface `flowhost:flow/host`, lowered by hand to their canonical-ABI core
//! signatures, and safe wrappers around them.
//!
//! Strings passed to the host stay owned by the guest; the host copies them before it returns,
//! so a borrowed `&str` is enough.

#[link(wasm_import_module = "flowhost:flow/host")]
unsafe extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: usize);
    #[link_name = "http-start"]
    fn host_http_start(ptr: *const u8, len: usize) -> u32;
    #[link_name = "set-timer"]
    fn host_set_timer(deadline_ms: f64);
    #[link_name = "complete"]
    fn host_complete(call: u32, ok: i32, ptr: *const u8, len: usize);
    #[link_name = "now-ms"]
    fn host_now_ms() -> f64;
    #[link_name = "random-u64"]
    fn host_random_u64() -> u64;
    #[link_name = "discard"]
    fn host_discard(offset: u32, len: u32);
}

/// Severity of a log line: the discriminants of the WIT enum `host.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
}

impl Level {
    /// The level for a discriminant coming from JavaScript; out-of-range values become `Info`
    /// rather than a value the host would reject.
    pub fn from_i32(level: i32) -> Level {
        match level {
            0 => Level::Trace,
            1 => Level::Debug,
            3 => Level::Warn,
            4 => Level::Error,
            _ => Level::Info,
        }
    }
}

/// Writes one log line attributed to the flow.
pub fn log(level: Level, message: &str) {
    unsafe { host_log(level as i32, message.as_ptr(), message.len()) }
}

/// Starts an outbound HTTP request described by `request` (JSON) and returns its id.
pub fn http_start(request: &str) -> u32 {
    unsafe { host_http_start(request.as_ptr(), request.len()) }
}

/// Tells the host when to call `fire-timers` next (epoch ms), or that no timer is pending (-1).
pub fn set_timer(deadline_ms: f64) {
    unsafe { host_set_timer(deadline_ms) }
}

/// Finishes call `call` with the JSON `result` (a value if `ok`, an error object if not).
pub fn complete(call: u32, ok: bool, result: &str) {
    unsafe { host_complete(call, i32::from(ok), result.as_ptr(), result.len()) }
}

/// The host's wall clock in milliseconds since the Unix epoch.
pub fn now_ms() -> f64 {
    unsafe { host_now_ms() }
}

/// 64 bits from the host's secure random generator.
pub fn random_u64() -> u64 {
    unsafe { host_random_u64() }
}

/// Tells the host that `len` bytes of linear memory at `offset` hold nothing the guest needs.
pub fn discard(offset: usize, len: usize) {
    // wasm32: addresses and lengths within linear memory fit in 32 bits.
    unsafe { host_discard(offset as u32, len as u32) }
}
