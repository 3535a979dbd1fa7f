//! Canonical-ABI plumbing for the exports: buffers the host hands over, and the return areas
//! through which strings and results go back.
//!
//! The host allocates every string or list it passes with `cabi_realloc(0, 0, 1, len)`; the
//! guest owns it from then on and frees it with the same layout. What the guest returns stays
//! in guest memory, pointed to by a static return area, until the same export runs again, which
//! is after the host has copied it (the WIT promises no later use).

use std::{
    alloc::{self, Layout},
    cell::{RefCell, UnsafeCell},
    slice,
};

/// A string or list the host passed in, freed when dropped.
pub struct HostBuf {
    ptr: *mut u8,
    len: usize,
}

impl HostBuf {
    /// Takes ownership of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must come from `cabi_realloc(0, 0, 1, len)` and not be used by anyone else
    /// afterwards; for `len == 0` it may be anything.
    pub unsafe fn from_raw(ptr: *mut u8, len: usize) -> HostBuf {
        HostBuf { ptr, len }
    }

    /// The bytes as the host wrote them.
    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            unsafe { slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        // A zero-length allocation is the dangling pointer `cabi_realloc` returns, not memory.
        if self.len == 0 || self.ptr.is_null() {
            return;
        }
        if let Ok(layout) = Layout::from_size_align(self.len, 1) {
            unsafe { alloc::dealloc(self.ptr, layout) }
        }
    }
}

/// A static return area of `N` 32-bit words.
///
/// The guest is single-threaded (wasm32-wasip1 without threads), so unsynchronised interior
/// mutability is sound here.
pub struct ReturnArea<const N: usize>(UnsafeCell<[u32; N]>);

unsafe impl<const N: usize> Sync for ReturnArea<N> {}

impl<const N: usize> ReturnArea<N> {
    /// An area of zeros.
    pub const fn new() -> Self {
        ReturnArea(UnsafeCell::new([0; N]))
    }

    /// Writes `words` and returns the area's address for the host.
    pub fn publish(&self, words: [u32; N]) -> *const u32 {
        let area = self.0.get();
        unsafe { area.write(words) };
        area.cast_const().cast()
    }
}

/// Bytes kept alive for the host until the export that produced them runs again.
pub struct Retained(RefCell<Vec<u8>>);

// See `ReturnArea`: single-threaded guest.
unsafe impl Sync for Retained {}

impl Retained {
    /// An empty buffer.
    pub const fn new() -> Self {
        Retained(RefCell::new(Vec::new()))
    }

    /// Replaces the retained bytes and returns their `(ptr, len)` as canonical-ABI words.
    pub fn keep(&self, bytes: Vec<u8>) -> (u32, u32) {
        let mut slot = self.0.borrow_mut();
        *slot = bytes;
        (slot.as_ptr() as u32, slot.len() as u32)
    }
}
