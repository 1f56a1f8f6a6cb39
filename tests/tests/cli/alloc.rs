//! The test binary's allocator: the system's, plus a per-thread record of the largest single
//! request while [`track`] runs, so the fuzz tests can check that no parser allocates by a
//! length read from a file (a corrupt header asking for gigabytes) instead of the data it has.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

#[derive(Debug)]
pub struct Tracking;

/// Requests above this are refused while tracking (the process then stops with Rust's
/// "memory allocation failed" instead of the machine swapping): no seed needs a tenth of it.
pub const REFUSE_ABOVE: usize = 4 << 30;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Notes a request; false if it is to be refused.
fn note(size: usize) -> bool {
    ON.try_with(|on| {
        if !on.get() {
            return true;
        }
        let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        if size > REFUSE_ABOVE {
            // Rust stops the process next; say why before (no allocation here).
            let msg = b"fuzz: an input asked for an allocation over 4 GiB; it is the mutated file \
                        in the case folder printed at the start\n";
            // SAFETY: writes a static buffer to stderr.
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            return false;
        }
        true
    })
    .unwrap_or(true)
}

// SAFETY: every call goes to `System` with the caller's layout; a refusal returns null, which
// the GlobalAlloc contract allows.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` on this thread and returns its result with the largest single allocation it made
/// here (other threads' requests are not counted).
pub fn track<R>(f: impl FnOnce() -> R) -> (R, usize) {
    /// Stops tracking however `f` ends (a panic unwinds through it).
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            let _ = ON.try_with(|on| on.set(false));
        }
    }
    LARGEST.with(|m| m.set(0));
    ON.with(|on| on.set(true));
    let off = Off;
    let r = f();
    drop(off);
    (r, LARGEST.with(Cell::get))
}
