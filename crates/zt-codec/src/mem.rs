//! Buffers: per-thread scratch for the coders' intermediates, memory advice for large
//! outputs, and views of uninitialized memory.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};

thread_local! {
    /// Buffers kept per worker thread for a chunk's intermediate streams (split planes,
    /// palette indices, decoded streams): returning them here avoids an allocation, and
    /// fresh pages to fault in and clear, per stream. (Fresh 512 KiB index buffers were a
    /// tenth of an INT8 compress.)
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `n` bytes from the thread's pool (contents unspecified).
pub(crate) fn scratch(n: usize) -> Scratch {
    let mut v = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    if v.len() >= n {
        v.truncate(n);
    } else {
        v.resize(n, 0);
    }
    Scratch(v)
}

/// A pooled buffer that goes back to its thread's pool when dropped.
pub(crate) struct Scratch(Vec<u8>);

impl Scratch {
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Keeps the first `n` bytes.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.0.truncate(n);
    }
}

impl Deref for Scratch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        // A few buffers per thread are enough (the streams of a chunk, a sparse split's).
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < 16 {
                p.push(v);
            }
        });
    }
}

/// Asks the kernel to back the 2 MiB-aligned part of `ptr..ptr + len` with transparent huge
/// pages (Linux, where THP is in `madvise` mode as on most distributions). A fresh multi-MiB
/// output is otherwise faulted in 4 KiB at a time as it is first written: on a VM each fault
/// costs ~2 µs, which halved the decode speed of a new 64 MiB buffer (1.07 vs 2.17 GB/s into
/// a buffer already touched). Advice only: nothing changes if the kernel declines.
pub(crate) fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize).saturating_add(len) & !(HUGE - 1);
        if end > start {
            // SAFETY: `start..end` lies inside the caller's allocation; MADV_HUGEPAGE changes
            // neither the contents nor the validity of the memory, only how it is backed.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// Zeroes `buf` and views it as the bytes it now holds.
pub(crate) fn zeroed(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: `write_bytes` writes `buf.len()` zero bytes inside `buf`, after which every
    // byte is initialized and may be viewed as a `u8`.
    unsafe {
        std::ptr::write_bytes(buf.as_mut_ptr(), 0, buf.len());
        assume_init(buf)
    }
}

/// Views initialized bytes as memory that may hold uninitialized bytes (to share one decode
/// path between a fresh buffer and a caller's).
///
/// # Safety
/// Only initialized bytes may be written through the view: `buf` is read as bytes again
/// once the view is gone.
pub(crate) unsafe fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and every `u8` is a valid
    // `MaybeUninit<u8>`; the caller keeps the bytes initialized.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Views `buf` as bytes.
///
/// # Safety
/// Every byte of `buf` must be initialized.
pub(crate) unsafe fn assume_init(buf: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: the caller guarantees that every byte is initialized; the layouts are equal.
    unsafe { &mut *(buf as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// Copies `src` into `dst` (of the same length), initializing it.
pub(crate) fn write(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(
        dst.len(),
        src.len(),
        "copy between slices of different lengths"
    );
    // SAFETY: both regions are `src.len()` bytes long (asserted), valid, and cannot overlap
    // (`dst` is borrowed mutably while `src` is borrowed).
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len())
    };
}
