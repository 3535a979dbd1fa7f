//! One live guest instance: its `Store`, its typed exports and the rules for calling them.
//!
//! Every export invocation arms the CPU deadline first and turns a trap into a [`GuestError`]
//! that says what happened in words (deadline, memory limit, bad import use). After a trap the
//! instance must not be used again: QuickJS may be half-way through an update.

use std::sync::Arc;

use wasmtime::{InstancePre, Memory, Store, TypedFunc, UpdateDeadline};

use super::imports::GuestState;

/// Export names of the guest, as `wit/flowhost.wit` lowers them to core wasm.
pub mod export {
    /// `guest.load`.
    pub const LOAD: &str = "flowhost:flow/guest#load";
    /// `guest.call`.
    pub const CALL: &str = "flowhost:flow/guest#call";
    /// `guest.io-complete`.
    pub const IO_COMPLETE: &str = "flowhost:flow/guest#io-complete";
    /// `guest.fire-timers`.
    pub const FIRE_TIMERS: &str = "flowhost:flow/guest#fire-timers";
    /// `guest.status`.
    pub const STATUS: &str = "flowhost:flow/guest#status";
    /// `guest.trim`.
    pub const TRIM: &str = "flowhost:flow/guest#trim";
    /// `guest.shutdown`.
    pub const SHUTDOWN: &str = "flowhost:flow/guest#shutdown";
    /// `builder.compile`.
    pub const COMPILE: &str = "flowhost:flow/builder#compile";
    /// The canonical ABI allocator.
    pub const REALLOC: &str = "cabi_realloc";
}

/// A guest export failed in a way that leaves the instance unusable.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GuestError {
    /// What happened, worded for an operator.
    pub message: String,
}

/// A guest instance with its exports resolved.
pub struct Guest {
    /// The instance's store; its data is the state behind the imports.
    pub store: Store<GuestState>,
    memory: Memory,
    realloc: TypedFunc<(u32, u32, u32, u32), u32>,
    load: TypedFunc<(u32, u32, u32, u32, u32), ()>,
    call: TypedFunc<(u32, u32, u32, u32, u32), ()>,
    io_complete: TypedFunc<(u32, u32, u32), ()>,
    fire_timers: TypedFunc<(), ()>,
    status: TypedFunc<(), u32>,
    trim: TypedFunc<(), u64>,
    shutdown: TypedFunc<u32, ()>,
    compile: TypedFunc<(u32, u32), u32>,
    limits: GuestLimits,
}

/// The limits one instance runs under.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Epoch ticks of CPU time each export may use.
    pub deadline_ticks: u64,
    /// The same deadline in milliseconds, for messages.
    pub deadline_ms: u64,
}

/// Sets up epoch-based deadlines on `store`: a running export yields to other tasks at every
/// tick and is interrupted once it has used up `GuestState::ticks_left`.
pub fn arm_deadlines(store: &mut Store<GuestState>) {
    store.epoch_deadline_callback(|mut ctx| {
        let state = ctx.data_mut();
        if state.ticks_left == 0 {
            state.deadline_hit = true;
            return Ok(UpdateDeadline::Interrupt);
        }
        state.ticks_left -= 1;
        Ok(UpdateDeadline::Yield(1))
    });
}

impl Guest {
    /// Instantiates the shim for one flow instance.
    pub async fn instantiate(
        pre: &InstancePre<GuestState>,
        flow: Arc<str>,
        limits: GuestLimits,
    ) -> Result<Self, GuestError> {
        let state = GuestState::new(flow, limits.memory_bytes);
        let mut store = Store::new(pre.module().engine(), state);
        store.limiter(|state| &mut state.limits);
        arm_deadlines(&mut store);
        store.data_mut().ticks_left = limits.deadline_ticks;
        store.set_epoch_deadline(1);

        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| GuestError {
                message: format!("cannot instantiate the guest: {}", e.root_cause()),
            })?;
        let missing = |name: &str, e: wasmtime::Error| GuestError {
            message: format!("the guest shim lacks export {name}: {e}"),
        };
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| GuestError {
                message: "the guest shim exports no memory".into(),
            })?;
        store.data_mut().memory = Some(memory);
        macro_rules! typed {
            ($name:expr) => {
                instance
                    .get_typed_func(&mut store, $name)
                    .map_err(|e| missing($name, e))?
            };
        }
        Ok(Self {
            memory,
            realloc: typed!(export::REALLOC),
            load: typed!(export::LOAD),
            call: typed!(export::CALL),
            io_complete: typed!(export::IO_COMPLETE),
            fire_timers: typed!(export::FIRE_TIMERS),
            status: typed!(export::STATUS),
            trim: typed!(export::TRIM),
            shutdown: typed!(export::SHUTDOWN),
            compile: typed!(export::COMPILE),
            store,
            limits,
        })
    }

    /// Resets the CPU budget before an export runs.
    fn arm(&mut self) {
        let state = self.store.data_mut();
        state.ticks_left = self.limits.deadline_ticks;
        state.deadline_hit = false;
        self.store.set_epoch_deadline(1);
    }

    /// Words a trap for the operator and the caller.
    fn trap(&self, what: &str, err: wasmtime::Error) -> GuestError {
        let state = self.store.data();
        let message = if state.deadline_hit {
            format!(
                "{what} exceeded the CPU deadline of {} ms and was stopped",
                self.limits.deadline_ms
            )
        } else if self.memory.data_size(&self.store) + (1 << 20) >= self.limits.memory_bytes {
            format!(
                "{what} ran out of memory at the limit of {} MiB: {}",
                self.limits.memory_bytes >> 20,
                err.root_cause()
            )
        } else {
            format!("{what} trapped: {}", err.root_cause())
        };
        GuestError { message }
    }

    /// Copies `bytes` into guest memory allocated with `cabi_realloc`; the guest frees it.
    async fn put(&mut self, bytes: &[u8]) -> Result<(u32, u32), GuestError> {
        let len = u32::try_from(bytes.len()).map_err(|_| GuestError {
            message: "value too large for the guest".into(),
        })?;
        self.arm();
        let ptr = self
            .realloc
            .call_async(&mut self.store, (0, 0, 1, len))
            .await
            .map_err(|e| self.trap("allocating guest memory", e))?;
        // javy's allocator answers 0 when the guest is out of memory; 0 is a valid address, so
        // writing there would corrupt the guest instead of failing the call.
        if ptr == 0 && len > 0 {
            return Err(GuestError {
                message: format!(
                    "the guest ran out of memory (limit {} MiB) while receiving {len} bytes",
                    self.limits.memory_bytes >> 20
                ),
            });
        }
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .map_err(|_| GuestError {
                message: format!("the guest allocator returned an out-of-bounds pointer {ptr}"),
            })?;
        Ok((ptr, len))
    }

    /// Starts `guest.load` as call `call`.
    pub async fn load(
        &mut self,
        call: u32,
        bytecode: &[u8],
        config: &str,
    ) -> Result<(), GuestError> {
        let (bc_ptr, bc_len) = self.put(bytecode).await?;
        let (cfg_ptr, cfg_len) = self.put(config.as_bytes()).await?;
        self.arm();
        self.load
            .call_async(&mut self.store, (call, bc_ptr, bc_len, cfg_ptr, cfg_len))
            .await
            .map_err(|e| self.trap("loading the flow", e))
    }

    /// Starts `guest.call` as call `call`.
    pub async fn call(&mut self, call: u32, name: &str, input: &str) -> Result<(), GuestError> {
        let (name_ptr, name_len) = self.put(name.as_bytes()).await?;
        let (in_ptr, in_len) = self.put(input.as_bytes()).await?;
        self.arm();
        self.call
            .call_async(&mut self.store, (call, name_ptr, name_len, in_ptr, in_len))
            .await
            .map_err(|e| self.trap("the call", e))
    }

    /// Delivers the outcome of outbound request `request`.
    pub async fn io_complete(&mut self, request: u32, response: &str) -> Result<(), GuestError> {
        let (ptr, len) = self.put(response.as_bytes()).await?;
        self.arm();
        self.io_complete
            .call_async(&mut self.store, (request, ptr, len))
            .await
            .map_err(|e| self.trap("handling an HTTP response", e))
    }

    /// Runs the due timers.
    pub async fn fire_timers(&mut self) -> Result<(), GuestError> {
        self.arm();
        self.fire_timers
            .call_async(&mut self.store, ())
            .await
            .map_err(|e| self.trap("a timer", e))
    }

    /// Starts `guest.shutdown` as call `call`.
    pub async fn shutdown(&mut self, call: u32) -> Result<(), GuestError> {
        self.arm();
        self.shutdown
            .call_async(&mut self.store, call)
            .await
            .map_err(|e| self.trap("shutting the flow down", e))
    }

    /// Collects the guest's garbage and gives its wholly free memory back; returns the bytes
    /// given back.
    pub async fn trim(&mut self) -> Result<u64, GuestError> {
        self.arm();
        self.trim
            .call_async(&mut self.store, ())
            .await
            .map_err(|e| self.trap("trimming its memory", e))
    }

    /// The guest's status JSON.
    pub async fn status(&mut self) -> Result<String, GuestError> {
        self.arm();
        let area = self
            .status
            .call_async(&mut self.store, ())
            .await
            .map_err(|e| self.trap("reading the status", e))?;
        let (ptr, len) = self.read_pair(area)?;
        let bytes = self.read(ptr, len)?;
        String::from_utf8(bytes).map_err(|_| GuestError {
            message: "the guest status is not UTF-8".into(),
        })
    }

    /// Compiles an ES module to bytecode with `builder.compile`. The outer error means the
    /// instance is unusable; the inner one is a problem in the source.
    pub async fn compile(&mut self, source: &str) -> Result<Result<Vec<u8>, String>, GuestError> {
        let (ptr, len) = self.put(source.as_bytes()).await?;
        self.arm();
        let area = self
            .compile
            .call_async(&mut self.store, (ptr, len))
            .await
            .map_err(|e| self.trap("compiling the flow", e))?;
        let head = self.read(area, 12)?;
        let (ptr, len) = self.read_pair(area + 4)?;
        let bytes = self.read(ptr, len)?;
        match head[0] {
            0 => Ok(Ok(bytes)),
            1 => Ok(Err(String::from_utf8_lossy(&bytes).into_owned())),
            other => Err(GuestError {
                message: format!("the guest returned an invalid result discriminant {other}"),
            }),
        }
    }

    /// Linear memory in use, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    fn read_pair(&self, at: u32) -> Result<(u32, u32), GuestError> {
        let b = self.read(at, 8)?;
        Ok((
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        ))
    }

    fn read(&self, ptr: u32, len: u32) -> Result<Vec<u8>, GuestError> {
        let start = ptr as usize;
        self.memory
            .data(&self.store)
            .get(start..start.saturating_add(len as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| GuestError {
                message: format!("the guest returned an out-of-bounds range {start}+{len}"),
            })
    }
}
