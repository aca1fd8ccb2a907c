//! Output buffers: memory advice for large ones, and views of uninitialized memory.

use std::mem::MaybeUninit;

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
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and every `u8` is a valid
    // `MaybeUninit<u8>`. The callers write only initialized bytes through the view, so the
    // original slice stays initialized.
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
