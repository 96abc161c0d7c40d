//! Steady state: after warm-up, a freshly collected answer makes no heap
//! allocation. File reads, parsing, protobuf, gzip and JSON go through
//! buffers that live as long as the agent, and the frame payload is carved
//! from a pool whose memory comes back once the previous answer is sent.
//! What may still allocate, and why: a pid never seen before (its entry in
//! the pid table, its row), a payload larger than any before it, and a
//! client still holding the previous payload (then the pool gets new memory).

use sockagent::answers::{Answers, Ttls};
use sockagent::collect::{Collectors, Settings};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ON: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global and the test harness runs tests on several
/// threads: each test holds this while it counts.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn count(f: impl FnOnce()) -> u64 {
    ALLOCS.store(0, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    f();
    ON.store(false, Ordering::Relaxed);
    ALLOCS.load(Ordering::Relaxed)
}

#[test]
fn fresh_answers_allocate_nothing_in_the_steady_state() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let settings = Settings {
        temp_enabled: true,
        ..Settings::default()
    };
    let ttl = Ttls {
        metrics: Duration::ZERO,
        processes: Duration::ZERO,
        ..Ttls::default()
    };
    let mut c = Answers::new(Collectors::new(settings, 4096), ttl);
    for _ in 0..10 {
        c.metrics(Instant::now()).unwrap();
        c.processes(Instant::now()).unwrap();
    }
    let n = count(|| {
        for _ in 0..100 {
            drop(c.metrics(Instant::now()).unwrap());
        }
    });
    eprintln!("metrics: {n}");
    // A payload a few bytes longer than any before may grow the pool once or twice.
    assert!(n <= 3, "get_metrics: {n} allocations for 100 fresh answers");
    // Processes: new pids appearing meanwhile (other tests run beside us)
    // get a table entry; the bound allows that churn, not an allocation per
    // answer or per pid.
    let n = count(|| {
        for _ in 0..100 {
            drop(c.processes(Instant::now()).unwrap());
        }
    });
    eprintln!("processes: {n}");
    assert!(
        n <= 40,
        "get_processes: {n} allocations for 100 fresh answers"
    );
}

#[test]
fn cached_answers_allocate_nothing() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Answers::new(Collectors::new(Settings::default(), 4096), Ttls::default());
    let now = Instant::now();
    c.metrics(now).unwrap();
    c.processes(now).unwrap();
    c.disks(now).unwrap();
    let n = count(|| {
        for _ in 0..100 {
            drop(c.metrics(now).unwrap());
            drop(c.processes(now).unwrap());
            drop(c.disks(now).unwrap());
        }
    });
    assert_eq!(n, 0);
}
