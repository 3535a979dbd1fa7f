//! The guest's `malloc`: size-class slabs for small blocks, dlmalloc for the rest.
//!
//! QuickJS allocates and frees a small block for nearly everything it does (objects, shapes,
//! property arrays, strings, promises), and asks `malloc_usable_size` after each allocation and
//! before each free to keep its memory count. wasi-libc's dlmalloc spends about a fifth of a
//! collector push in those three functions; here a small allocation is a table lookup and a
//! free-list pop, a free is a push, and the usable size is read from a page table.
//!
//! Layout: linear memory is divided into 64 KiB pages (WebAssembly's own page size). A page
//! either holds slabs, marked in [`SLAB_PAGE`], or belongs to dlmalloc, which takes larger blocks
//! and its own pages straight from `memory.grow`. A slab is 8 KiB of one size class, its class
//! number in its first bytes; small slabs keep a class that is barely used from pinning a whole
//! page. Slabs are never given back; a freed block goes to the front of its class's list, so a
//! steady workload reuses the same memory. The module is single-threaded: the state is plain
//! statics without locks.
//!
//! Defining `malloc`, `free`, `calloc`, `realloc`, `aligned_alloc`, `posix_memalign`,
//! `malloc_usable_size` and their `__libc_` names keeps wasm-ld from pulling in wasi-libc's
//! dlmalloc object: C (QuickJS, wasi-libc) and Rust (std's system allocator) both land here.

use core::arch::wasm32;
use core::ffi::c_void;
use core::ptr;

/// Alignment of every block, as wasi-libc's dlmalloc gives (`max_align_t`).
const ALIGN: usize = 16;

/// WebAssembly page size.
const PAGE: usize = 65536;

/// Slab size: a power of two dividing [`PAGE`].
const SLAB: usize = 8192;

/// Bytes at the start of a slab that hold its class.
const SLAB_HEADER: usize = ALIGN;

/// Block sizes of the classes, each a multiple of [`ALIGN`], ascending.
const CLASSES: [u32; 40] = [
    16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 272, 288, 304, 320,
    336, 352, 368, 384, 400, 416, 432, 448, 464, 480, 496, 512, 640, 768, 896, 1024, 1280, 1536,
    1792, 2048,
];

/// The largest size a class serves; larger requests go to dlmalloc.
const MAX_SMALL: usize = 2048;

/// Class index for each size rounded up to [`ALIGN`]: `CLASS_OF[(size + 15) / 16]`.
static CLASS_OF: [u8; MAX_SMALL / ALIGN + 1] = class_table();

const fn class_table() -> [u8; MAX_SMALL / ALIGN + 1] {
    let mut table = [0u8; MAX_SMALL / ALIGN + 1];
    let mut slot = 0;
    let mut class = 0;
    while slot < table.len() {
        while (CLASSES[class] as usize) < slot * ALIGN {
            class += 1;
        }
        table[slot] = class as u8;
        slot += 1;
    }
    table
}

/// Whether each 64 KiB page of the 4 GiB address space holds slabs (1) or not (0: static data,
/// dlmalloc's).
static mut SLAB_PAGE: [u8; 65536] = [0; 65536];

/// The rest of the newest slab page, cut into slabs as classes need them.
static mut SLAB_NEXT: usize = 0;
static mut SLAB_END: usize = 0;

/// Per class: the head of the free list (a freed block holds the next pointer), and the bump
/// region of its newest slab.
struct Class {
    free: *mut u8,
    next: *mut u8,
    end: *mut u8,
}

static mut STATE: [Class; CLASSES.len()] = [const {
    Class {
        free: ptr::null_mut(),
        next: ptr::null_mut(),
        end: ptr::null_mut(),
    }
}; CLASSES.len()];

/// Unused whole pages between the end of static data and the initial memory size, handed out
/// before growing memory.
static mut SPARE_NEXT: usize = 0;
static mut SPARE_END: usize = 0;
static mut SPARE_READY: bool = false;

unsafe extern "C" {
    /// First byte after the module's static data and stack, placed by wasm-ld.
    static __heap_base: u8;
}

/// dlmalloc for blocks above [`MAX_SMALL`] and for alignments above [`ALIGN`].
static mut LARGE: dlmalloc::Dlmalloc = dlmalloc::Dlmalloc::new();

/// Header in front of every dlmalloc block: where dlmalloc's block starts and its usable size.
#[repr(C, align(16))]
struct LargeHeader {
    start: usize,
    size: usize,
    align: usize,
}

const HEADER: usize = size_of::<LargeHeader>();

/// One fresh 64 KiB page for slabs, or null when memory cannot grow.
unsafe fn take_page() -> *mut u8 {
    unsafe {
        if !SPARE_READY {
            SPARE_READY = true;
            let base = ptr::addr_of!(__heap_base) as usize;
            SPARE_NEXT = base.next_multiple_of(PAGE);
            SPARE_END = wasm32::memory_size(0) * PAGE;
        }
        if SPARE_NEXT < SPARE_END {
            let page = SPARE_NEXT;
            SPARE_NEXT += PAGE;
            return page as *mut u8;
        }
        let previous = wasm32::memory_grow(0, 1);
        if previous == usize::MAX {
            return ptr::null_mut();
        }
        (previous * PAGE) as *mut u8
    }
}

#[inline]
unsafe fn small_alloc(size: usize) -> *mut u8 {
    unsafe {
        let class = CLASS_OF[size.div_ceil(ALIGN)] as usize;
        let state = &mut *ptr::addr_of_mut!(STATE[class]);
        let block = state.free;
        if !block.is_null() {
            state.free = *(block as *mut *mut u8);
            return block;
        }
        let block_size = CLASSES[class] as usize;
        if state.next.is_null() || (state.end as usize) - (state.next as usize) < block_size {
            let slab = take_slab();
            if slab.is_null() {
                return ptr::null_mut();
            }
            (slab as *mut u32).write(class as u32);
            state.next = slab.add(SLAB_HEADER);
            state.end = slab.add(SLAB);
        }
        let block = state.next;
        state.next = block.add(block_size);
        block
    }
}

/// A fresh 8 KiB slab, or null when memory cannot grow.
unsafe fn take_slab() -> *mut u8 {
    unsafe {
        if SLAB_NEXT == SLAB_END {
            let page = take_page();
            if page.is_null() {
                return ptr::null_mut();
            }
            *ptr::addr_of_mut!(SLAB_PAGE[page as usize / PAGE]) = 1;
            SLAB_NEXT = page as usize;
            SLAB_END = page as usize + PAGE;
        }
        let slab = SLAB_NEXT;
        SLAB_NEXT += SLAB;
        slab as *mut u8
    }
}

/// The slab class of `p` plus one, or 0 when dlmalloc owns it.
#[inline]
unsafe fn page_class(p: *mut u8) -> usize {
    unsafe {
        if *ptr::addr_of!(SLAB_PAGE[p as usize / PAGE]) == 0 {
            return 0;
        }
        let slab = (p as usize & !(SLAB - 1)) as *const u32;
        *slab as usize + 1
    }
}

unsafe fn large_alloc(size: usize, align: usize) -> *mut u8 {
    unsafe {
        let align = align.max(ALIGN);
        let Some(total) = size.checked_add(HEADER + align - ALIGN) else {
            return ptr::null_mut();
        };
        let start = (*ptr::addr_of_mut!(LARGE)).malloc(total, ALIGN);
        if start.is_null() {
            return ptr::null_mut();
        }
        let user = (start as usize + HEADER).next_multiple_of(align) as *mut u8;
        let header = user.sub(HEADER) as *mut LargeHeader;
        header.write(LargeHeader {
            start: start as usize,
            size: total - (user as usize - start as usize),
            align,
        });
        user
    }
}

unsafe fn large_header(p: *mut u8) -> *mut LargeHeader {
    unsafe { p.sub(HEADER) as *mut LargeHeader }
}

unsafe fn large_free(p: *mut u8) {
    unsafe {
        let header = &*large_header(p);
        let total = header.size + (p as usize - header.start);
        (*ptr::addr_of_mut!(LARGE)).free(header.start as *mut u8, total, ALIGN);
    }
}

unsafe fn usable(p: *mut u8) -> usize {
    unsafe {
        match page_class(p) {
            0 => (*large_header(p)).size,
            class => CLASSES[class - 1] as usize,
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    unsafe {
        if size <= MAX_SMALL {
            small_alloc(size.max(1)).cast()
        } else {
            large_alloc(size, ALIGN).cast()
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    unsafe {
        let p = p.cast::<u8>();
        if p.is_null() {
            return;
        }
        match page_class(p) {
            0 => large_free(p),
            class => {
                let state = &mut *ptr::addr_of_mut!(STATE[class - 1]);
                *(p as *mut *mut u8) = state.free;
                state.free = p;
            }
        }
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    unsafe {
        let Some(total) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        let p = malloc(total);
        if !p.is_null() {
            ptr::write_bytes(p.cast::<u8>(), 0, total);
        }
        p
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    unsafe {
        if p.is_null() {
            return malloc(size);
        }
        if size == 0 {
            free(p);
            return ptr::null_mut();
        }
        let old = usable(p.cast());
        // Keep the block while it fits and is not far too big (a shrinking string would
        // otherwise pin a large block).
        if size <= old && (old <= MAX_SMALL || size > old / 2) {
            return p;
        }
        let new = malloc(size);
        if !new.is_null() {
            ptr::copy_nonoverlapping(p.cast::<u8>(), new.cast::<u8>(), old.min(size));
            free(p);
        }
        new
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    unsafe {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        if align <= ALIGN {
            return malloc(size);
        }
        large_alloc(size.max(1), align).cast()
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> i32 {
    /// `EINVAL` and `ENOMEM` as wasi-libc numbers them.
    const EINVAL: i32 = 28;
    const ENOMEM: i32 = 48;
    unsafe {
        if !align.is_power_of_two() || align % size_of::<usize>() != 0 {
            return EINVAL;
        }
        let p = aligned_alloc(align, size);
        if p.is_null() {
            return ENOMEM;
        }
        *out = p;
        0
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    unsafe { if p.is_null() { 0 } else { usable(p.cast()) } }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    unsafe { malloc(size) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    unsafe { free(p) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    unsafe { calloc(count, size) }
}
