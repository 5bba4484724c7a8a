//! An epoll descriptor, owned (the Poller's).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_int;

pub struct Epoll(OwnedFd);

impl Epoll {
    pub fn new() -> std::io::Result<Epoll> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The epoll descriptor, for another loop to watch (it is readable
    /// while a watched descriptor has events).
    pub fn raw_fd(&self) -> c_int {
        self.0.as_raw_fd()
    }

    /// `epoll_ctl(op, fd)` for `events`; the event's data is `fd`.
    pub fn ctl(&self, op: c_int, fd: c_int, events: u32) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u32 as u64,
        };
        // SAFETY: our epoll descriptor; `ev` is a local.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits up to `ms` (-1: no limit) and fills `buf` (up to its capacity,
    /// at least 1) with the ready events.
    pub fn wait(&self, buf: &mut Vec<libc::epoll_event>, ms: c_int) -> std::io::Result<usize> {
        if buf.capacity() == 0 {
            buf.reserve(1);
        }
        let cap = buf.capacity().min(c_int::MAX as usize);
        buf.clear();
        // SAFETY: the kernel writes at most `cap` events into the spare
        // capacity; set_len below covers exactly what it reported.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), buf.as_mut_ptr(), cap as c_int, ms) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: n ≤ cap elements were initialised by epoll_wait.
        unsafe { buf.set_len(n as usize) };
        Ok(n as usize)
    }
}
