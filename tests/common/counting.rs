//! A global allocator that counts this thread's allocations while asked
//! to (`count`): the allocation tests' one copy. A test file includes it
//! with `#[path = "common/counting.rs"] mod counting;` and installs it with
//! `#[global_allocator] static GLOBAL: counting::Counting = counting::Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

// Counted per thread: the test harness runs tests (and its own reporting)
// on other threads at the same time, and their allocations are not ours.
// Const-initialized thread locals need no allocation, so the allocator may
// use them.
thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(p, l, n) }
    }
}

/// The allocations `f` makes on this thread.
pub fn count(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|n| n.set(0));
    ON.with(|on| on.set(true));
    f();
    ON.with(|on| on.set(false));
    ALLOCS.with(|n| n.get())
}
