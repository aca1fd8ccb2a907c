//! What the benchmarks need from the operating system: dropping a file from the page cache,
//! checking that it is gone, and describing the machine.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes back all dirty data (`sync`), then asks the kernel to drop `path`'s pages from the
/// page cache (`posix_fadvise(POSIX_FADV_DONTNEED)` over the whole file). Pages that some
/// process still maps are kept, so every reader of the file must be closed first.
pub fn drop_from_page_cache(path: &Path) -> Result<()> {
    // SAFETY: `sync` takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the descriptor belongs to `file`, which stays open for the whole call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc))
            .with_context(|| format!("posix_fadvise(DONTNEED) on {}", path.display()));
    }
    Ok(())
}

/// Fraction of `path`'s pages that are in the page cache (`mincore` on a mapping that is
/// never read, so it does not pull any page in).
pub fn resident_fraction(path: &Path) -> Result<f64> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("reading the metadata of {}", path.display()))?
        .len() as usize;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    // SAFETY: a fresh read-only shared mapping of a file we hold open; it is only passed to
    // `mincore` and unmapped below, never dereferenced.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("mapping {}", path.display()));
    }
    let mut pages = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr..addr + len` is the mapping made above and `pages` has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, pages.as_mut_ptr()) };
    let error = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above, which nothing else refers to.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(error).with_context(|| format!("mincore on {}", path.display()));
    }
    let resident = pages.iter().filter(|&&p| p & 1 != 0).count();
    Ok(resident as f64 / pages.len() as f64)
}

/// The kernel readahead (`read_ahead_kb`) of the block device holding `path`, when sysfs tells.
/// Page faults on a cold memory map read up to this much around the faulting page.
pub fn read_ahead_kib(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let base = format!("/sys/dev/block/{major}:{minor}");
    // A partition has no queue of its own; its disk's is one level up.
    [
        format!("{base}/queue/read_ahead_kb"),
        format!("{base}/../queue/read_ahead_kb"),
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|v| v.trim().parse().ok())
}

/// The machine the figures were taken on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned());
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            memory_gib: memory_kib as f64 / (1u64 << 20) as f64,
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine: {} CPUs ({}), {:.1} GiB RAM, Linux {}",
            self.nproc, self.cpu, self.memory_gib, self.kernel
        )
    }
}
