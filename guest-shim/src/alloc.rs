//! The guest's `malloc`: size-class slabs for small blocks, dlmalloc for the rest.
//!
//! QuickJS allocates and frees a small block for nearly everything it does (objects, shapes,
//! property arrays, strings, promises), and asks `malloc_usable_size` after each allocation and
//! before each free to keep its memory count. wasi-libc's dlmalloc spends about a fifth of a
//! collector push in those three functions; here a small allocation is a table lookup and a
//! free-list pop, a free is a push, and the usable size is read from a slab table.
//!
//! Layout: linear memory is divided into 64 KiB pages (WebAssembly's own page size). A page
//! either holds slabs or belongs to dlmalloc, which takes larger blocks and its own pages straight
//! from `memory.grow`. A slab is 8 KiB of one size class, its class recorded in [`SLAB_CLASS`];
//! small slabs keep a class that is barely used from pinning a whole page. The table, one byte
//! per slab, is what `free` and `malloc_usable_size` read: for a heap of tens of MiB it is a few
//! KiB that stay in cache, where a class kept in each slab's first bytes cost a cache miss on
//! nearly every call. Slabs are never given back; a freed block goes to the front of its class's list, so a
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

/// For each 8 KiB slab of the 4 GiB address space: its class plus one, or 0 when the memory is
/// not a slab (static data, dlmalloc's pages). Zero-initialised, so it takes no room in the module
/// and no memory until slabs exist.
static mut SLAB_CLASS: [u8; 1 << (32 - SLAB.trailing_zeros())] =
    [0; 1 << (32 - SLAB.trailing_zeros())];

/// Bytes in blocks handed out and not freed (usable sizes), for `guest.status`.
static mut IN_USE: usize = 0;

/// Bytes in blocks the program holds now.
pub fn bytes_in_use() -> usize {
    unsafe { *ptr::addr_of!(IN_USE) }
}

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
        let block_size = CLASSES[class] as usize;
        *ptr::addr_of_mut!(IN_USE) += block_size;
        if !block.is_null() {
            state.free = *(block as *mut *mut u8);
            return block;
        }
        if state.next.is_null() || (state.end as usize) - (state.next as usize) < block_size {
            let slab = take_slab();
            if slab.is_null() {
                *ptr::addr_of_mut!(IN_USE) -= block_size;
                return ptr::null_mut();
            }
            *ptr::addr_of_mut!(SLAB_CLASS[slab as usize / SLAB]) = class as u8 + 1;
            state.next = slab;
            state.end = slab.add(SLAB);
        }
        let block = state.next;
        state.next = block.add(block_size);
        block
    }
}

/// [`SLAB_CLASS`] value of a slab that [`trim`] found empty: any class may take it again. Its
/// memory may have been discarded, so it holds zeros or stale bytes.
const FREE_SLAB: u8 = u8::MAX;

/// Slabs marked [`FREE_SLAB`], and the lowest index at which one may be.
static mut FREE_SLABS: usize = 0;
static mut FREE_CURSOR: usize = 0;

/// Lowest and highest index of a slab ever handed out (`usize::MAX`, 0 before the first).
static mut SLAB_LOW: usize = usize::MAX;
static mut SLAB_HIGH: usize = 0;

/// A slab for a class that needs one: an emptied one if any, else a fresh 8 KiB slab; null when
/// memory cannot grow.
unsafe fn take_slab() -> *mut u8 {
    unsafe {
        if FREE_SLABS > 0 {
            let table = &*ptr::addr_of!(SLAB_CLASS);
            // Every free slab sits at or after the cursor, so the scan ends inside the table.
            let mut index = FREE_CURSOR;
            while table[index] != FREE_SLAB {
                index += 1;
            }
            FREE_SLABS -= 1;
            FREE_CURSOR = index + 1;
            return (index * SLAB) as *mut u8;
        }
        if SLAB_NEXT == SLAB_END {
            let page = take_page();
            if page.is_null() {
                return ptr::null_mut();
            }
            SLAB_NEXT = page as usize;
            SLAB_END = page as usize + PAGE;
        }
        let slab = SLAB_NEXT;
        SLAB_NEXT += SLAB;
        SLAB_LOW = SLAB_LOW.min(slab / SLAB);
        SLAB_HIGH = SLAB_HIGH.max(slab / SLAB);
        slab as *mut u8
    }
}

/// Finds slabs whose blocks are all free, takes their blocks off the free lists, marks them
/// [`FREE_SLAB`] and passes each run of them to `discard(address, length)`; returns the bytes
/// passed. It reads every free block once, so it belongs in idle time, not on a hot path.
///
/// A class's newest slab is left alone: its blocks not yet cut are on no list. Blocks of
/// dlmalloc are not trimmed.
///
/// # Safety
///
/// No other allocator call may run meanwhile (`discard` must not allocate).
pub unsafe fn trim(mut discard: impl FnMut(usize, usize)) -> usize {
    unsafe {
        if SLAB_LOW > SLAB_HIGH {
            return 0;
        }
        let (low, high) = (SLAB_LOW, SLAB_HIGH);
        let slabs = high - low + 1;
        // Free blocks per slab; the scratch array comes from dlmalloc, so the slabs stay as
        // they are while they are counted.
        let counts = large_alloc(slabs * size_of::<u16>(), ALIGN) as *mut u16;
        if counts.is_null() {
            return 0;
        }
        ptr::write_bytes(counts, 0, slabs);
        let states = &mut *ptr::addr_of_mut!(STATE);
        for state in states.iter() {
            let mut block = state.free;
            while !block.is_null() {
                *counts.add(block as usize / SLAB - low) += 1;
                block = *(block as *mut *mut u8);
            }
        }

        // Mark the empty slabs, remembering which were marked now.
        let table = &mut *ptr::addr_of_mut!(SLAB_CLASS);
        let newest: [usize; CLASSES.len()] = core::array::from_fn(|class| {
            let state = &states[class];
            if state.next.is_null() {
                usize::MAX
            } else {
                (state.end as usize - 1) / SLAB
            }
        });
        let mut emptied = 0;
        for offset in 0..slabs {
            let index = low + offset;
            let class = table[index];
            if class == 0 || class == FREE_SLAB || newest[class as usize - 1] == index {
                continue;
            }
            let per_slab = SLAB / CLASSES[class as usize - 1] as usize;
            if *counts.add(offset) as usize == per_slab {
                table[index] = FREE_SLAB;
                // Reuse the count as the "marked now" flag.
                *counts.add(offset) = u16::MAX;
                emptied += 1;
            }
        }
        if emptied == 0 {
            large_free(counts.cast());
            return 0;
        }

        // Drop their blocks from the free lists, keeping the order of the rest.
        for state in states.iter_mut() {
            let mut link: *mut *mut u8 = &mut state.free;
            while !(*link).is_null() {
                let block = *link;
                if table[block as usize / SLAB] == FREE_SLAB {
                    *link = *(block as *mut *mut u8);
                } else {
                    link = block as *mut *mut u8;
                }
            }
        }

        // Hand the runs of newly emptied slabs to the host.
        let mut discarded = 0;
        let mut run_start = None;
        for offset in 0..=slabs {
            let marked = offset < slabs && *counts.add(offset) == u16::MAX;
            match (marked, run_start) {
                (true, None) => run_start = Some(offset),
                (false, Some(start)) => {
                    let length = (offset - start) * SLAB;
                    discard((low + start) * SLAB, length);
                    discarded += length;
                    run_start = None;
                }
                _ => {}
            }
        }
        FREE_CURSOR = if FREE_SLABS == 0 {
            low
        } else {
            FREE_CURSOR.min(low)
        };
        FREE_SLABS += emptied;
        large_free(counts.cast());
        discarded
    }
}

/// The slab class of `p` plus one, or 0 when dlmalloc owns it.
#[inline]
unsafe fn slab_class(p: *mut u8) -> usize {
    unsafe { *ptr::addr_of!(SLAB_CLASS[p as usize / SLAB]) as usize }
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
        let size = total - (user as usize - start as usize);
        header.write(LargeHeader {
            start: start as usize,
            size,
        });
        *ptr::addr_of_mut!(IN_USE) += size;
        user
    }
}

unsafe fn large_header(p: *mut u8) -> *mut LargeHeader {
    unsafe { p.sub(HEADER) as *mut LargeHeader }
}

unsafe fn large_free(p: *mut u8) {
    unsafe {
        let header = &*large_header(p);
        *ptr::addr_of_mut!(IN_USE) -= header.size;
        let total = header.size + (p as usize - header.start);
        (*ptr::addr_of_mut!(LARGE)).free(header.start as *mut u8, total, ALIGN);
    }
}

unsafe fn usable(p: *mut u8) -> usize {
    unsafe {
        match slab_class(p) {
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
        match slab_class(p) {
            0 => large_free(p),
            class => {
                *ptr::addr_of_mut!(IN_USE) -= CLASSES[class - 1] as usize;
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
