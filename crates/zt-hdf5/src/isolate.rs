//! Running libhdf5 in a forked child process, so that a crash or a hang of libhdf5 on a damaged
//! file ends the child, not the caller (see the crate docs, "Untrusted files").
//!
//! The child is a `fork` of the calling process taken while holding hdf5-metno's global lock:
//! no other thread is inside libhdf5 (or holds the lock) at that moment, so the child's copy of
//! libhdf5 and of the lock is consistent, and the forking thread, the only one in the child,
//! owns the (re-entrant) lock there. The child runs the given work, reports through a pipe and
//! leaves with `_exit`: it never returns into the caller's code, and runs no destructors or
//! `atexit` handlers (those belong to the parent).

use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// How an isolated run failed.
pub(crate) enum Failure {
    /// The child was killed by this signal: libhdf5 crashed (SIGSEGV, SIGBUS, SIGABRT...), or
    /// something outside killed it (the OOM killer's SIGKILL).
    Signal(libc::c_int),
    /// The child was still running at the timeout; it has been killed.
    Timeout,
    /// The child exited with an unexpected status (101: the work panicked, a zt-hdf5 bug).
    Exit(libc::c_int),
    /// The child's reply was longer than allowed; it has been killed.
    TooLarge,
    /// pipe, fork, poll or waitpid failed.
    Os(io::Error),
}

/// Exit status of a child whose work panicked.
const EXIT_PANIC: libc::c_int = 101;
/// How often the parent checks the child when the pipe stays open: it normally learns of the
/// child's end at once, from the pipe's end of file; the check covers a write end that leaked
/// into some other process forked meanwhile.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `work` in a forked child, waits for it at most `timeout`, and returns the reply
/// `work` returned (at most `max_reply` bytes).
///
/// `work` runs in the child only, with hdf5-metno's lock held: it may use libhdf5 (through
/// hdf5-metno) and memory allocation, and must not wait for anything another thread of the
/// parent would provide (no other thread exists in the child). What it writes to memory stays
/// in the child, except its reply and what it writes to a [`SharedBuffer`] made before the
/// call. The reply comes from a process in which libhdf5 may have misbehaved: it must be
/// checked like input.
pub(crate) fn run<F>(timeout: Duration, max_reply: usize, work: F) -> Result<Vec<u8>, Failure>
where
    F: FnOnce() -> Vec<u8>,
{
    // The pipe is made and the parent's write end closed while holding the lock, so no other
    // isolated child (forked under the same lock) inherits the write end and delays the end of
    // file. std's pipes are close-on-exec, so spawned programs do not keep it either.
    let (pid, reader) = hdf5::sync::sync(|| -> Result<_, Failure> {
        let (reader, writer) = io::pipe().map_err(Failure::Os)?;
        let parent = std::process::id();
        // SAFETY: fork has no memory-safety preconditions of its own. What makes the child
        // sound is what it runs: only the forking thread exists there, and hdf5-metno's lock
        // is held by this very thread, so no libhdf5 state is half-updated by another thread;
        // `child` runs libhdf5 work and allocation (glibc's malloc is reset for the child by
        // fork itself), then `_exit`s without unwinding into the caller.
        match unsafe { libc::fork() } {
            -1 => Err(Failure::Os(io::Error::last_os_error())),
            0 => child(reader, writer, parent, work),
            pid => Ok((pid, reader)),
        }
    })?;
    wait(pid, reader, timeout, max_reply)
}

/// The child's side: run the work, send the reply, `_exit`.
fn child<F>(reader: PipeReader, mut writer: PipeWriter, parent: u32, work: F) -> !
where
    F: FnOnce() -> Vec<u8>,
{
    drop(reader);
    die_with_parent(parent);
    no_core_dump();
    let status = match std::panic::catch_unwind(AssertUnwindSafe(work)) {
        // The parent reads while the child writes, so a long reply does not block for good;
        // a reply cut short (the parent gave up) fails to decode there.
        Ok(reply) => match writer.write_all(&reply) {
            Ok(()) => 0,
            Err(_) => EXIT_PANIC,
        },
        Err(_) => EXIT_PANIC,
    };
    // SAFETY: `_exit` ends the process at once: no destructors, no `atexit` handlers, no
    // flushing of the parent's buffered output, which all belong to the parent.
    unsafe { libc::_exit(status) }
}

/// A child whose parent has gone (killed, or crashed elsewhere) has nobody to stop it at the
/// timeout: on Linux it is killed with its parent, instead of hanging on as an orphan.
///
/// The signal comes when the thread that forked ends; that thread waits for the child, so it
/// only ends with the whole parent.
fn die_with_parent(parent: u32) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: PR_SET_PDEATHSIG takes one signal number and changes only this process;
        // getppid and _exit have no preconditions.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent died before the request took effect.
            if libc::getppid() as u32 != parent {
                libc::_exit(EXIT_PANIC);
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = parent;
}

/// A crash of libhdf5 in the child is expected on damaged files and reported as an error: it
/// must not also write a core file (or wake a crash reporter) for the whole process image.
fn no_core_dump() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads one valid rlimit; failure only leaves core dumps possible.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) };
    // Piped core patterns (systemd-coredump, apport) may not honour RLIMIT_CORE; a process
    // that is not dumpable dumps nothing.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: PR_SET_DUMPABLE takes one integer argument and changes only this process.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    }
}

/// The parent's side: collect the reply, reap the child, kill it at the deadline.
fn wait(
    pid: libc::pid_t,
    mut reader: PipeReader,
    timeout: Duration,
    max_reply: usize,
) -> Result<Vec<u8>, Failure> {
    // A timeout too long to represent (`Duration::MAX`) is none.
    let deadline = Instant::now().checked_add(timeout);
    let mut reply = Vec::new();
    let mut pipe_open = true;
    let status = loop {
        let now = Instant::now();
        let left = deadline.map_or(CHECK_INTERVAL, |deadline| {
            deadline.saturating_duration_since(now)
        });
        if left.is_zero() {
            kill_and_reap(pid);
            return Err(Failure::Timeout);
        }
        let wait_for = left.min(CHECK_INTERVAL);
        if pipe_open {
            let ready = match readable(&reader, wait_for) {
                Ok(ready) => ready,
                Err(e) => {
                    kill_and_reap(pid);
                    return Err(Failure::Os(e));
                }
            };
            if ready {
                let mut buffer = [0u8; 64 << 10];
                match reader.read(&mut buffer) {
                    // End of file: the child has closed its end, which it only does by exiting.
                    Ok(0) => {
                        pipe_open = false;
                        match waitpid(pid, 0) {
                            Ok(Some(status)) => break status,
                            Ok(None) => continue,
                            Err(e) => return Err(Failure::Os(e)),
                        }
                    }
                    Ok(n) => {
                        if reply.len() + n > max_reply {
                            kill_and_reap(pid);
                            return Err(Failure::TooLarge);
                        }
                        reply.extend_from_slice(&buffer[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        kill_and_reap(pid);
                        return Err(Failure::Os(e));
                    }
                }
            }
        } else {
            std::thread::sleep(wait_for);
        }
        match waitpid(pid, libc::WNOHANG) {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(Failure::Os(e)),
        }
    };
    // The child has exited: whatever it wrote is in the pipe.
    if pipe_open {
        let room = max_reply.saturating_sub(reply.len()) as u64;
        let _ = (&mut reader).take(room + 1).read_to_end(&mut reply);
        if reply.len() > max_reply {
            return Err(Failure::TooLarge);
        }
    }
    if libc::WIFSIGNALED(status) {
        return Err(Failure::Signal(libc::WTERMSIG(status)));
    }
    match libc::WEXITSTATUS(status) {
        0 => Ok(reply),
        code => Err(Failure::Exit(code)),
    }
}

/// Waits until the pipe has data or is closed, at most `timeout`.
fn readable(reader: &PipeReader, timeout: Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: reader.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is one valid pollfd, and the count says one.
    match unsafe { libc::poll(&mut fd, 1, ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// `waitpid`: the raw status once the child has ended, `None` while it runs (with `WNOHANG`).
fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for the status; `pid` is our own child.
        match unsafe { libc::waitpid(pid, &mut status, flags) } {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    // ECHILD: the process ignores SIGCHLD, so children are reaped unseen.
                    return Err(e);
                }
            }
            0 => return Ok(None),
            _ => return Ok(Some(status)),
        }
    }
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: `pid` is our own child, not yet reaped, so the id cannot have been reused.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = waitpid(pid, 0);
}

/// A signal's name, for messages.
pub(crate) fn signal_name(signal: libc::c_int) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

/// Memory shared with the children forked after it is made (`MAP_SHARED | MAP_ANONYMOUS`): what
/// a child writes there, the parent sees once the child has exited.
pub(crate) struct SharedBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

impl SharedBuffer {
    /// `len` zeroed bytes, page-aligned. `len` must not be 0.
    pub(crate) fn new(len: usize) -> io::Result<SharedBuffer> {
        // SAFETY: an anonymous mapping at an address of the kernel's choosing touches no
        // existing memory; failure is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedBuffer { ptr, len })
    }

    /// The start of the mapping, for a child to write through.
    pub(crate) fn as_mut_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes.
    ///
    /// # Safety
    ///
    /// No child that writes to the mapping may be running while the slice lives: read it after
    /// [`run`] has returned (the child has been reaped).
    pub(crate) unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes, valid while `self` lives, and (by the
        // caller's promise) nothing writes to it meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and is unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
