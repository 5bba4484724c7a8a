//! `curl.Poller`: a descriptor watcher (epoll) in the terms of the socket
//! callback: `Watch(fd, CURL_POLL_*)`, `Unwatch(fd)`, and `Wait(ms)` that
//! yields `fd, CURL_CSELECT_* mask` pairs for `multi:SocketAction`.
//!
//! The multi reaches a poller given as its socket or timer function
//! through `PollerState`'s `apply`, `arm` and `is_open`, and drives one
//! with `poller:Dispatch(multi)` (registered by the multi module).

use crate::error::{reg, reg_fn, usage, R};
use crate::ffi::Epoll;
use crate::luaapi::class::lua_class;
use crate::luaapi::Args;
use crate::options::c;
use mlua::prelude::*;
use mlua::Value;
use std::cell::{Cell, RefCell};
use std::os::raw::c_int;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BATCH: usize = 1024;

/// The Lua object; the state is shared with the multis that use this poller
/// as their socket or timer function, so their callbacks reach it without
/// a Lua lookup.
pub struct Poller(pub Rc<PollerState>);

impl std::ops::Deref for Poller {
    type Target = PollerState;
    fn deref(&self) -> &PollerState {
        &self.0
    }
}

/// fd → epoll event bits registered: a vector indexed by descriptor (they
/// are small integers; hashing showed up in per-transfer profiles).
#[derive(Default)]
struct FdMap {
    /// `WATCHED | events`, or 0 for a descriptor not watched.
    slots: Vec<u32>,
    len: usize,
}

const WATCHED: u32 = 1 << 31;

impl FdMap {
    fn get(&self, fd: c_int) -> Option<u32> {
        let v = *self.slots.get(usize::try_from(fd).ok()?)?;
        (v & WATCHED != 0).then_some(v & !WATCHED)
    }
    fn contains_key(&self, fd: &c_int) -> bool {
        self.get(*fd).is_some()
    }
    fn insert(&mut self, fd: c_int, events: u32) {
        let Ok(i) = usize::try_from(fd) else {
            return;
        };
        if i >= self.slots.len() {
            self.slots.resize(i + 1, 0);
        }
        if self.slots[i] & WATCHED == 0 {
            self.len += 1;
        }
        self.slots[i] = WATCHED | events;
    }
    fn remove(&mut self, fd: &c_int) -> Option<u32> {
        let v = self.get(*fd)?;
        self.slots[*fd as usize] = 0;
        self.len -= 1;
        Some(v)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn clear(&mut self) {
        self.slots.clear();
        self.len = 0;
    }
}

pub struct PollerState {
    /// The epoll descriptor, until `Close`.
    ep: RefCell<Option<Epoll>>,
    ready: RefCell<Vec<libc::epoll_event>>,
    pos: Cell<usize>,
    /// fd → epoll event bits currently registered.
    watched: RefCell<FdMap>,
    /// libcurl's timer, armed with `SetTimer`.
    deadline: Cell<Option<Instant>>,
    /// The timer expired in the last `Wait`: the iterator ends with
    /// `CURL_SOCKET_TIMEOUT, 0`.
    fired: Cell<bool>,
    /// Another event loop watches the descriptor (a `curl.loop` backend,
    /// `curl._poller_hold`): `Close` is refused. Closed behind libuv's back,
    /// its next poll of the descriptor fails and libuv aborts the process.
    held: Cell<bool>,
}

lua_class!(Poller, "curl.Poller", "the poller", Rc<PollerState>,
    open(inner) => inner.is_open());

fn os_err<T>(what: &str, e: std::io::Error) -> R<T> {
    usage(format!("{what}: {e}"))
}

impl PollerState {
    pub fn is_open(&self) -> bool {
        self.ep.borrow().is_some()
    }

    /// `Watch` for a `CURL_POLL_*` value (REMOVE un-watches).
    pub fn apply(&self, fd: c_int, what: c_int) -> R<()> {
        let ep = self.ep.borrow();
        let Some(ep) = ep.as_ref() else {
            return usage("the poller is closed");
        };
        let events = match what as i64 {
            c::CURL_POLL_NONE => 0,
            c::CURL_POLL_IN => libc::EPOLLIN as u32,
            c::CURL_POLL_OUT => libc::EPOLLOUT as u32,
            c::CURL_POLL_INOUT => (libc::EPOLLIN | libc::EPOLLOUT) as u32,
            c::CURL_POLL_REMOVE => {
                self.forget(fd);
                return Ok(());
            }
            _ => {
                return usage(format!(
                    "bad argument #2 'what' (expected a CURL_POLL_* value, got {what})"
                ))
            }
        };
        let known = self.watched.borrow().get(fd);
        match known {
            // Always tell the kernel: the descriptor may have been closed (which
            // drops it from epoll) and reused by a new socket since.
            Some(_) => {
                if let Err(e) = ep.ctl(libc::EPOLL_CTL_MOD, fd, events) {
                    if e.raw_os_error() != Some(libc::ENOENT) {
                        return os_err("epoll_ctl(MOD)", e);
                    }
                    // the fd was closed and reused behind our back: add it again
                    ep.ctl(libc::EPOLL_CTL_ADD, fd, events)
                        .or_else(|e| os_err("epoll_ctl(ADD)", e))?;
                }
            }
            None => {
                if let Err(e) = ep.ctl(libc::EPOLL_CTL_ADD, fd, events) {
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return os_err("epoll_ctl(ADD)", e);
                    }
                    ep.ctl(libc::EPOLL_CTL_MOD, fd, events)
                        .or_else(|e| os_err("epoll_ctl(MOD)", e))?;
                }
            }
        }
        self.watched.borrow_mut().insert(fd, events);
        Ok(())
    }

    fn forget(&self, fd: c_int) {
        if self.watched.borrow_mut().remove(&fd).is_some() {
            if let Some(ep) = self.ep.borrow().as_ref() {
                // ENOENT/EBADF: the descriptor was already closed, which
                // removed it.
                let _ = ep.ctl(libc::EPOLL_CTL_DEL, fd, 0);
            }
        }
    }

    /// `SetTimer`: arm (ms >= 0) or disarm (-1) libcurl's timer.
    pub fn arm(&self, ms: i64) {
        self.deadline.set(if ms < 0 {
            None
        } else {
            Some(Instant::now() + Duration::from_millis(ms as u64))
        });
    }
}

fn watch(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, p) = args.open::<Poller>()?;
    let fd = args.fd(1, "fd", false)?;
    let what = args.c_int(2, "what")?;
    p.apply(fd, what)
}

fn unwatch(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, p) = args.open::<Poller>()?;
    let fd = args.fd(1, "fd", false)?;
    p.forget(fd);
    Ok(())
}

/// Waits up to `ms` (negative: no limit) and returns the poller's iterator
/// (its user value), for `for fd, mask in poller:Wait(ms)`.
fn wait(_lua: &Lua, args: Args) -> R<LuaFunction> {
    let (ud, p) = args.open::<Poller>()?;
    let ms = args.opt_int(1, "timeout_ms", -1)?;
    p.wait_core(ms)?;
    Ok(ud.user_value::<LuaFunction>()?)
}

impl PollerState {
    /// epoll_wait for up to `ms` (negative: no limit), shortened to libcurl's
    /// timer; fills the ready list and notes whether the timer expired.
    pub fn wait_core(&self, ms: i64) -> R<i64> {
        // negative: no limit
        let mut ms = ms.clamp(-1, c_int::MAX as i64) as c_int;
        if let Some(d) = self.deadline.get() {
            // wake up for libcurl's timer too (rounded up: never early)
            let left = d.saturating_duration_since(Instant::now());
            let left_ms = left.as_micros().div_ceil(1000).min(c_int::MAX as u128) as c_int;
            ms = if ms < 0 { left_ms } else { ms.min(left_ms) };
        }
        let mut buf = self.ready.borrow_mut();
        self.pos.set(0);
        self.fired.set(false);
        if buf.capacity() < BATCH {
            buf.reserve(BATCH);
        }
        let ep = self.ep.borrow();
        let Some(ep) = ep.as_ref() else {
            return usage("the poller is closed");
        };
        let r = match ep.wait(&mut buf, ms) {
            Ok(n) => Ok(n as i64),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => Ok(0),
            Err(e) => os_err("epoll_wait", e),
        };
        if let Some(d) = self.deadline.get() {
            if Instant::now() >= d {
                self.deadline.set(None);
                self.fired.set(true);
            }
        }
        r
    }

    /// The ready descriptors still watched, with `CURL_CSELECT_*` masks.
    pub fn take_ready(&self) -> Vec<(c_int, c_int)> {
        let buf = self.ready.borrow();
        let watched = self.watched.borrow();
        let out = buf
            .iter()
            .skip(self.pos.get())
            .map(|ev| (ev.u64 as u32 as c_int, cselect(ev.events)))
            .filter(|(fd, _)| watched.contains_key(fd))
            .collect();
        self.pos.set(buf.len());
        out
    }
}

fn cselect(e: u32) -> c_int {
    let mut mask = 0;
    if e & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0 {
        mask |= c::CURL_CSELECT_IN as c_int;
    }
    if e & libc::EPOLLOUT as u32 != 0 {
        mask |= c::CURL_CSELECT_OUT as c_int;
    }
    if e & libc::EPOLLERR as u32 != 0 {
        mask |= c::CURL_CSELECT_ERR as c_int;
    }
    mask
}

/// `poller:SetTimer(ms)`: arms the one-shot timer libcurl's timer callback
/// asks for (-1 disarms). When it expires, `Wait`'s iterator yields
/// `curl.CURL_SOCKET_TIMEOUT, 0` after the ready descriptors.
fn set_timer(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, p) = args.open::<Poller>()?;
    let ms = args.int(1, "timeout_ms")?;
    p.arm(ms);
    Ok(())
}

impl PollerState {
    /// Milliseconds until libcurl's timer (rounded up: never early), 0 when
    /// due, -1 when none is armed.
    pub fn timeout_ms(&self) -> i64 {
        match self.deadline.get() {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_micros().div_ceil(1000).min(i64::MAX as u128) as i64
            }
        }
    }

    /// The epoll descriptor, unless closed.
    fn raw_fd(&self) -> R<c_int> {
        match self.ep.borrow().as_ref() {
            Some(ep) => Ok(ep.raw_fd()),
            None => usage("the poller is closed"),
        }
    }
}

/// `poller:Fd()` (and cqueues' `pollfd`): the epoll descriptor. It is
/// readable while a watched descriptor has events, so another event loop
/// can watch this one descriptor for every transfer of a multi and call
/// `poller:Dispatch(multi, 0)` when it is.
fn fd(_lua: &Lua, args: Args) -> R<i64> {
    let (_ud, p) = args.open::<Poller>()?;
    Ok(p.raw_fd()? as i64)
}

/// `poller:Timeout()`: milliseconds until libcurl's timer expires (0: due,
/// -1: none), for the other loop's timer.
fn timeout(_lua: &Lua, args: Args) -> R<i64> {
    let (_ud, p) = args.open::<Poller>()?;
    Ok(p.timeout_ms())
}

/// cqueues' pollable protocol: `events` ("r") and `timeout` (seconds, or
/// nil without a timer); `pollfd` is `Fd`.
fn cq_events(_lua: &Lua, args: Args) -> R<&'static str> {
    args.open::<Poller>()?;
    Ok("r")
}

fn cq_timeout(_lua: &Lua, args: Args) -> R<Option<f64>> {
    let (_ud, p) = args.open::<Poller>()?;
    let ms = p.timeout_ms();
    Ok((ms >= 0).then(|| ms as f64 / 1000.0))
}

impl PollerState {
    /// The timer expired in the last wait (and is reported once).
    pub fn take_fired(&self) -> bool {
        self.fired.replace(false)
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `poller:Now()`: a monotonic clock in milliseconds (with fractions).
fn now(_lua: &Lua, _args: Args) -> R<f64> {
    Ok(epoch().elapsed().as_secs_f64() * 1000.0)
}

/// The iterator step: the next ready descriptor still watched, with its
/// `CURL_CSELECT_*` mask, or nothing. The iterator is bound to its poller
/// and ignores its arguments, so calling it by hand cannot go wrong.
fn next(p: &PollerState) -> (Value, Value) {
    let buf = p.ready.borrow();
    let watched = p.watched.borrow();
    let mut i = p.pos.get();
    while i < buf.len() {
        let ev = buf[i];
        i += 1;
        let fd = ev.u64 as u32 as c_int;
        if !watched.contains_key(&fd) {
            continue;
        }
        p.pos.set(i);
        let mask = cselect(ev.events);
        return (Value::Integer(fd as i64), Value::Integer(mask as i64));
    }
    p.pos.set(i);
    if p.fired.replace(false) {
        return (Value::Integer(-1), Value::Integer(0));
    }
    (Value::Nil, Value::Nil)
}

fn count(_lua: &Lua, args: Args) -> R<i64> {
    let (_ud, p) = args.open::<Poller>()?;
    let n = p.watched.borrow().len();
    Ok(n as i64)
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, p) = args.this::<Poller>()?;
    if p.held.get() {
        return usage(
            "this Poller belongs to a curl.loop, whose event loop watches its descriptor: close the loop (loop:Close())",
        );
    }
    p.ep.borrow_mut().take(); // closes the descriptor
    p.watched.borrow_mut().clear();
    p.ready.borrow_mut().clear();
    p.deadline.set(None);
    p.fired.set(false);
    Ok(())
}

fn create(lua: &Lua) -> R<LuaAnyUserData> {
    let ep = Epoll::new().or_else(|e| os_err("epoll_create1", e))?;
    let state = Rc::new(PollerState {
        ep: RefCell::new(Some(ep)),
        ready: RefCell::new(Vec::with_capacity(BATCH)),
        pos: Cell::new(0),
        watched: RefCell::new(FdMap::default()),
        deadline: Cell::new(None),
        fired: Cell::new(false),
        held: Cell::new(false),
    });
    // The iterator `Wait` returns holds the state, not the Lua object, so
    // the poller stays collectable.
    let it_state = state.clone();
    let iter = crate::luaapi::function(lua, move |_, ()| Ok(next(&it_state)))?;
    let ud = crate::luaapi::raw::new_object(lua, Poller(state))?;
    ud.set_user_value(iter)?;
    Ok(ud)
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "Watch", "poller:Watch", watch)?;
    reg(lua, &t, "Unwatch", "poller:Unwatch", unwatch)?;
    reg(lua, &t, "Wait", "poller:Wait", wait)?;
    reg(lua, &t, "Count", "poller:Count", count)?;
    reg(lua, &t, "SetTimer", "poller:SetTimer", set_timer)?;
    reg(lua, &t, "Now", "poller:Now", now)?;
    reg(lua, &t, "Fd", "poller:Fd", fd)?;
    reg(lua, &t, "Timeout", "poller:Timeout", timeout)?;
    reg(lua, &t, "pollfd", "poller:pollfd", fd)?;
    reg(lua, &t, "events", "poller:events", cq_events)?;
    reg(lua, &t, "timeout", "poller:timeout", cq_timeout)?;
    reg(lua, &t, "Close", "poller:Close", close)?;
    raw_t.raw_set("Poller", t)?;
    reg_fn(lua, raw_t, "new_poller", "curl.Poller", |lua, _a| {
        create(lua)
    })?;
    // `curl._poller_hold(poller, on)`, for the loop backends whose event
    // loop watches the Poller's descriptor (see `held`).
    reg_fn(lua, raw_t, "poller_hold", "curl._poller_hold", |_lua, a| {
        let (_ud, p) = a.arg::<Poller>(1, "poller")?;
        p.held.set(a.get(2).as_boolean().unwrap_or(false));
        Ok(())
    })?;
    Ok(())
}
