//! Test support shared by the ztensor crates (a dev-dependency only).
//!
//! [`CountingAllocator`] lets a hostile-input test assert that opening a malformed file never
//! allocates more than a bounded multiple of its size. Install it in a test binary that holds
//! ONE test (the counter is process-wide, and the test harness runs tests on parallel threads):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;
//!
//! let (result, peak) = zt_testkit::CountingAllocator::measure(|| open(&bytes));
//! assert!(peak <= 4 * bytes.len() + (4 << 20));
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
pub struct CountingAllocator;

impl CountingAllocator {
    /// Bytes allocated and not yet freed.
    pub fn current() -> usize {
        CURRENT.load(Ordering::Relaxed)
    }

    /// The highest [`current`](Self::current) since the last [`reset_peak`](Self::reset_peak).
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }

    /// Starts a new peak measurement; returns the current live bytes (the baseline).
    pub fn reset_peak() -> usize {
        let now = Self::current();
        PEAK.store(now, Ordering::Relaxed);
        now
    }

    /// Runs `f` and returns its result with the most bytes it had allocated at once beyond what
    /// was live before it started.
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = Self::reset_peak();
        let result = f();
        (result, Self::peak().saturating_sub(base))
    }
}

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts bytes.
unsafe impl GlobalAlloc for CountingAllocator {
    // A failed allocation (null) is not counted: `try_reserve` probes for sizes that cannot be
    // had, and counting them would charge memory that was never handed out (and, as nothing
    // frees it, inflate every later measurement).
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator (that is, from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`; `new_size` is the caller's, valid per the contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        // On failure the old block stays allocated and unchanged: nothing to count.
        if !new.is_null() {
            if new_size > layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}
