//! `curl.Multi`: the multi handle and its socket interface. This file: the
//! handle's state and life, and its methods.
//! The callbacks' Lua side (`ffi::MultiHandler`: socket, timer, push) is
//! in `callbacks.rs`, the raw fast paths of `InfoRead`, `AddHandle` and
//! `RemoveHandle` in `fast.rs`.
//!
//! User values of the multi userdata (GC-visible), under the `UV_*` keys:
//! - handles: `CURL*` (an integer on Lua 5.3/5.4, a light userdata on the
//!   others: `raw::INT_ADDR_KEYS`) → Easy userdata, for every added easy;
//!   this keeps added easies alive and maps callback handles back to objects;
//! - assigned: socket → the Lua value given to `Assign`;
//! - the socket, timer and push functions and their userdata.

mod callbacks;
mod fast;

use crate::ctx::{Ctx, CtxSlot, UV_HANDLES};
use crate::easy::{self, Easy, EasyInner, Owner, UV_MULTI};
use crate::error::{fault, multi_fail, reg, reg_fn, usage, Fail, R};
use crate::ffi::CURLM_RECURSIVE_API_CALL;
use crate::ffi::{self, Fault, CURLM_ADDED_ALREADY};
use crate::luaapi::class::lua_class;
use crate::luaapi::raw::{link, register_object, unlink, unregister_object, AddrHash, Holder};
use crate::luaapi::{to_int, type_name, Args, Handle};
use crate::options::{c, tables, Special};
use crate::poller::{Poller, PollerState};
use curl_sys as sys;
use mlua::prelude::*;
use mlua::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::c_int;
use std::rc::Rc;

/// The FFI handle of a multi.
type MultiHandle = ffi::Multi<MultiInner>;

// User-value keys of a multi (integers: cheaper than strings on hot paths).
const UV_ASSIGNED: i64 = 2;
const UV_SOCKETFN: i64 = 3;
const UV_SOCKETDATA: i64 = 4;
const UV_TIMERFN: i64 = 5;
const UV_TIMERDATA: i64 = 6;
const UV_PUSHFN: i64 = 7;
const UV_PUSHDATA: i64 = 8;

pub struct MultiInner {
    /// The libcurl handle, until closed. Calls take a clone.
    handle: RefCell<Option<Rc<MultiHandle>>>,
    pub slot: CtxSlot,
    easies: RefCell<HashMap<usize, Rc<EasyInner>, AddrHash>>,
    /// The address of this multi's Lua block (see `register_object`).
    block: Cell<usize>,
    /// The Poller set as the socket / timer function, if one is: the
    /// callbacks update it without looking anything up in Lua. (The Lua
    /// object is also kept in the user value.)
    sock_poller: RefCell<Option<Rc<PollerState>>>,
    timer_poller: RefCell<Option<Rc<PollerState>>>,
    /// `Assign` was used: the socket callback keeps the `assigned` table.
    assigned: Cell<bool>,
    /// An error from a fast-path call, for its pending function to raise.
    pending: RefCell<Option<Fail>>,
}

pub struct Multi(Rc<MultiInner>);

impl Drop for Multi {
    fn drop(&mut self) {
        unregister_object(self.0.block.replace(0));
        // Garbage collection: no Lua runs (no context is set).
        self.0.close_raw();
    }
}

lua_class!(Multi, "curl.Multi", "the multi handle", Rc<MultiInner>,
    open(inner) => inner.handle.borrow().is_some());

impl MultiInner {
    fn handle(&self) -> Option<Rc<MultiHandle>> {
        self.handle.borrow().clone()
    }

    /// Unregisters the callbacks, removes every easy, then destroys the
    /// multi (the rusqlite order: unhook, then close).
    fn close_raw(&self) {
        let Some(h) = self.handle.borrow_mut().take() else {
            return;
        };
        if self.slot.is_set() {
            // Collected while one of its calls runs (lua_close from inside a
            // callback): libcurl refuses cleanup then; leave it to the exit.
            if let Ok(h) = Rc::try_unwrap(h) {
                h.leak();
            }
            return;
        }
        let _ = h.set_socket(false);
        let _ = h.set_timer(false);
        self.sock_poller.take();
        self.timer_poller.take();
        let easies = std::mem::take(&mut *self.easies.borrow_mut());
        for (_, e) in easies {
            if let Some(eh) = e.handle() {
                let _ = h.remove(&eh);
            }
            e.multi.borrow_mut().take();
        }
        drop(h); // curl_multi_cleanup
    }

    /// The Rust side of `e` joining this multi (`link` does the Lua side):
    /// the multi holds the easy's state, the easy knows its multi, and
    /// nothing is left over from an earlier transfer.
    fn hold(self: &Rc<Self>, e: &Rc<EasyInner>, eh: &easy::EasyHandle) {
        self.easies.borrow_mut().insert(e.addr(), e.clone());
        *e.multi.borrow_mut() = Some(self.clone() as Rc<dyn Owner>);
        eh.flush();
        e.pending_read().borrow_mut().clear();
    }

    /// The Rust side of `e` leaving this multi.
    fn let_go(&self, e: &EasyInner) {
        let gone = self.easies.borrow_mut().remove(&e.addr());
        e.multi.borrow_mut().take();
        drop(gone);
    }

    /// `curl_multi_info_read`, except inside one of this multi's callbacks,
    /// where no message is handed out (the documented rule: libcurl's own
    /// flag for it is cleared by nested callbacks).
    fn info_read(&self, h: &MultiHandle) -> Option<ffi::Msg> {
        if self.slot.is_set() {
            return None;
        }
        let msg = h.info_read()?;
        if msg.msg == c::CURLMSG_DONE as c_int {
            if let Some(e) = self.easies.borrow().get(&msg.easy) {
                if let Some(h) = e.handle() {
                    h.transfer_done(msg.result);
                }
            }
        }
        Some(msg)
    }

    /// Whether this multi is `e`'s.
    fn owns(&self, e: &EasyInner) -> bool {
        e.multi
            .borrow()
            .as_ref()
            .is_some_and(|m| std::ptr::addr_eq(Rc::as_ptr(m), self as *const MultiInner))
    }
}

impl Owner for MultiInner {
    fn slot(&self) -> &CtxSlot {
        &self.slot
    }

    fn forget(&self, e: &EasyInner) {
        let gone = self.easies.borrow_mut().remove(&e.addr());
        if let (Some(h), Some(eh)) = (self.handle(), e.handle()) {
            let _ = h.remove(&eh);
        }
        drop(gone);
    }

    fn detach(
        &self,
        lua: &Lua,
        mud: &LuaAnyUserData,
        eud: &LuaAnyUserData,
        e: &EasyInner,
    ) -> R<Option<Fail>> {
        detach_easy(lua, mud, self, eud, e)
    }
}

fn recursive<T>() -> R<T> {
    Err(Fail::Multi(
        CURLM_RECURSIVE_API_CALL,
        Some("called from inside one of this multi's callbacks".into()),
    ))
}

/// The state of a multi userdata and its live handle, or a usage error.
fn live(ud: &LuaAnyUserData) -> R<(Rc<MultiInner>, Rc<MultiHandle>)> {
    let inner = ud
        .borrow::<Multi>()
        .map_err(|_| Fail::Usage("the multi handle was garbage-collected".into()))?
        .inner();
    let h = inner
        .handle()
        .ok_or_else(|| Fail::Usage("the multi handle is closed".into()))?;
    Ok((inner, h))
}

fn open(args: &Args) -> R<(&LuaAnyUserData, Rc<MultiInner>, Rc<MultiHandle>)> {
    let (ud, inner) = args.this::<Multi>()?;
    let h = inner
        .handle()
        .ok_or_else(|| Fail::Usage("the multi handle is closed".into()))?;
    Ok((ud, inner, h))
}

/// `open` plus the re-entry guard for calls libcurl refuses from callbacks.
fn open_idle(args: &Args) -> R<(&LuaAnyUserData, Rc<MultiInner>, Rc<MultiHandle>)> {
    let r = open(args)?;
    if r.1.slot.is_set() {
        return recursive();
    }
    Ok(r)
}

fn uv(ud: &LuaAnyUserData) -> R<LuaTable> {
    Ok(ud.user_value::<LuaTable>()?)
}

/// Runs a libcurl call with this multi's context set; returns its result
/// and the first error a callback parked.
fn with_ctx<T>(
    lua: &Lua,
    ud: &LuaAnyUserData,
    inner: &MultiInner,
    f: impl FnOnce() -> T,
) -> (T, Option<Fail>) {
    with_holder(lua, Holder::Ud(ud), inner, f)
}

/// `with_ctx` for a multi held as `h`.
fn with_holder<T>(
    lua: &Lua,
    h: Holder<'_>,
    inner: &MultiInner,
    f: impl FnOnce() -> T,
) -> (T, Option<Fail>) {
    let mut ctx = Ctx::new(lua);
    ctx.multi = Some(h);
    ctx.run(&inner.slot, f)
}

pub fn create(lua: &Lua) -> R<LuaAnyUserData> {
    let mut oom = false;
    let inner = Rc::new_cyclic(|w| {
        let h = MultiHandle::new(w.clone());
        oom = h.is_none();
        MultiInner {
            handle: RefCell::new(h.map(Rc::new)),
            slot: CtxSlot::default(),
            easies: RefCell::new(HashMap::default()),
            sock_poller: RefCell::new(None),
            timer_poller: RefCell::new(None),
            assigned: Cell::new(false),
            pending: RefCell::new(None),
            block: Cell::new(0),
        }
    });
    if oom {
        return usage("curl_multi_init failed (out of memory)");
    }
    let ud = crate::luaapi::raw::new_object(lua, Multi(inner.clone()))?;
    inner.block.set(ud.to_pointer() as usize);
    register_object(lua, &ud, &inner);
    let t = lua.create_table()?;
    t.raw_set(UV_HANDLES, lua.create_table()?)?;
    t.raw_set(UV_ASSIGNED, lua.create_table()?)?;
    ud.set_user_value(t)?;
    Ok(ud)
}

// ------------------------------------------------------------- methods

fn set_opt(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, h) = open_idle(&args)?;
    let id = args.c_int(1, "option")?;
    let tabs = tables(lua);
    let Some(meta) = tabs.multi.get(&id) else {
        return usage(format!(
            "bad argument #1 'option' (unknown multi option {id})"
        ));
    };
    let opt = meta.full.as_str();
    let v = args.get(2);
    let bad = |expected: &str| -> R<()> {
        usage(format!(
            "bad argument #2 'value' for {opt} (expected {expected}, got {})",
            type_name(args.get_ref(2))
        ))
    };
    let t = uv(ud)?;
    let id64 = id as i64;
    match meta.special {
        Special::MultiSocket | Special::MultiTimer => {
            let socket = meta.special == Special::MultiSocket;
            let (fkey, dkey) = if socket {
                (UV_SOCKETFN, UV_SOCKETDATA)
            } else {
                (UV_TIMERFN, UV_TIMERDATA)
            };
            let poller = match &v {
                Value::Function(_) | Value::Nil => None,
                Value::UserData(u) if u.is::<Poller>() => Some(u.borrow::<Poller>()?.inner()),
                _ => return bad("function, curl.Poller or nil"),
            };
            let on = !v.is_nil();
            let rc = if socket {
                h.set_socket(on)
            } else {
                h.set_timer(on)
            };
            rc.map_err(multi_fail)?;
            if socket {
                *inner.sock_poller.borrow_mut() = poller;
            } else {
                *inner.timer_poller.borrow_mut() = poller;
            }
            t.raw_set(fkey, v)?;
            if args.given(3) {
                t.raw_set(dkey, args.get(3))?;
            }
            Ok(())
        }
        Special::MultiPush => {
            let on = match v {
                Value::Function(_) => true,
                Value::Nil => false,
                _ => return bad("function or nil"),
            };
            h.set_push(on).map_err(multi_fail)?;
            t.raw_set(UV_PUSHFN, v)?;
            if args.given(3) {
                t.raw_set(UV_PUSHDATA, args.get(3))?;
            }
            Ok(())
        }
        Special::MultiData => {
            let key = match id64 {
                c::CURLMOPT_SOCKETDATA => UV_SOCKETDATA,
                c::CURLMOPT_TIMERDATA => UV_TIMERDATA,
                _ => UV_PUSHDATA,
            };
            Ok(t.raw_set(key, v)?)
        }
        Special::MultiStrings => {
            // NULL-terminated char* arrays, copied by libcurl (and ignored
            // since HTTP/1 pipelining went away in 7.62).
            let mut keep: Vec<CString> = Vec::new();
            match &v {
                Value::Nil => {}
                Value::Table(tab) => {
                    for i in 1..=tab.raw_len() {
                        let s: Value = tab.raw_get(i)?;
                        let Value::String(s) = s else {
                            return bad("array of strings or nil");
                        };
                        keep.push(CString::new(s.as_bytes().to_vec()).map_err(|_| {
                            Fail::Usage(format!("{opt}: item {i} contains a NUL byte"))
                        })?);
                    }
                }
                _ => return bad("array of strings or nil"),
            }
            let items = (!v.is_nil()).then_some(&keep[..]);
            h.set_strings(id64, items).map_err(multi_fail)
        }
        _ if id < 10000 => {
            let n = easy::long_value(opt, &v)?;
            h.set_long(id64, n as std::os::raw::c_long)
                .map_err(multi_fail)
        }
        _ if id >= 30000 => {
            let Some(n) = to_int(&v) else {
                return bad("integer");
            };
            h.set_off_t(id64, n).map_err(multi_fail)
        }
        _ => usage(format!(
            "{opt} is not supported by this version of the module"
        )),
    }
}

fn socket_action(lua: &Lua, args: Args) -> R<i64> {
    let (ud, inner, h) = open_idle(&args)?;
    let fd = args.fd(1, "socket", true)?;
    let mask = args.opt_int_in(2, "mask", 0, 0, 7)?;
    act(lua, Holder::Ud(ud), &inner, &h, fd, mask as c_int)
}

/// `curl_multi_socket_action` with the multi's context set: the running
/// count, or the first callback error, or libcurl's.
fn act(
    lua: &Lua,
    mh: Holder<'_>,
    inner: &MultiInner,
    h: &MultiHandle,
    fd: c_int,
    mask: c_int,
) -> R<i64> {
    let (r, err) = with_holder(lua, mh, inner, || h.socket_action(fd, mask));
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(multi_fail)
}

/// `poller:Dispatch(multi[, ms])` → running, timeout_ms: one turn of the
/// usual loop done in Rust: wait (up to `ms`, negative: no limit, and for
/// libcurl's timer), then `multi:SocketAction` for each ready socket and
/// for an expired timer. Returns the multi's running count and the
/// milliseconds until libcurl's timer (`poller:Timeout()`), for a loop that
/// arms its own timer. With the poller as the multi's socket and timer
/// function (`multi:SetOpt_SocketFunction(poller)`) no Lua runs but the
/// transfers' own callbacks. A callback error stops the turn and is
/// raised; the sockets not served yet are reported again by the next turn.
fn dispatch(lua: &Lua, args: Args) -> R<(i64, i64)> {
    let (_pud, p) = args.open::<Poller>()?;
    let (mud, _m) = args.arg::<Multi>(1, "multi")?;
    let ms = args.opt_int(2, "timeout_ms", -1)?;
    // Checked before waiting: a refused call changes nothing.
    let (inner, h) = live(mud)?;
    if inner.slot.is_set() {
        return recursive();
    }
    p.wait_core(ms)?;
    let (ready, fired) = (p.take_ready(), p.take_fired());
    let mut running = -1;
    let action = |fd: c_int, mask: c_int| -> R<i64> {
        if inner.slot.is_set() {
            return recursive();
        }
        act(lua, Holder::Ud(mud), &inner, &h, fd, mask)
    };
    for (fd, mask) in ready {
        running = action(fd, mask)?;
    }
    if fired || running < 0 {
        running = action(-1, 0)?;
    }
    Ok((running, p.timeout_ms()))
}

fn perform(lua: &Lua, args: Args) -> R<i64> {
    let (ud, inner, h) = open_idle(&args)?;
    let (r, err) = with_ctx(lua, ud, &inner, || h.perform());
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(multi_fail)
}

fn info_read(lua: &Lua, args: Args) -> R<(i64, i64, i64, Value)> {
    let (ud, inner, h) = open(&args)?;
    let Some(msg) = inner.info_read(&h) else {
        return Ok((c::CURLMSG_NONE, 0, 0, Value::Nil));
    };
    let easy = crate::luaapi::raw::handle_of(lua, Holder::Ud(ud), UV_HANDLES, msg.easy)?
        .map_or(Value::Nil, Value::UserData);
    Ok((
        msg.msg as i64,
        msg.result as i64,
        msg.remaining as i64,
        easy,
    ))
}

/// `raw.drain(multi, transfers, out)` (`curl._drain`, for the loop
/// helpers): what `InfoRead` and `RemoveHandle` do for each finished
/// transfer, in one call. For each `CURLMSG_DONE` message whose easy is a
/// key of `transfers` (other messages are read and dropped, their easies
/// left in the multi), removes the easy and appends `easy, result` to
/// `out`. Returns the number of values appended. A callback error from a
/// removal (the socket callback) is raised once its easy is appended; the
/// messages after it stay for the next call. Inside a callback of this
/// multi there are no messages (as for `InfoRead`).
fn drain(lua: &Lua, args: Args) -> R<i64> {
    let (ud, inner, h) = open(&args)?;
    let table = |i: usize, name: &str| match args.get(i) {
        Value::Table(t) => Ok(t),
        v => usage(format!(
            "bad argument #{i} '{name}' (table expected, got {})",
            type_name(&v)
        )),
    };
    let transfers = table(1, "transfers")?;
    let out = table(2, "out")?;
    let start = out.raw_len() as i64;
    let mut n = start;
    while let Some(msg) = inner.info_read(&h) {
        if msg.msg != c::CURLMSG_DONE as c_int {
            continue;
        }
        let Some(eud) = crate::luaapi::raw::handle_of(lua, Holder::Ud(ud), UV_HANDLES, msg.easy)?
        else {
            continue;
        };
        if transfers.raw_get::<Value>(&eud)?.is_nil() {
            continue;
        }
        // (not an open Easy: reported, not removed, as the C path does)
        let e = eud.borrow::<Easy>().ok().map(|b| b.inner());
        let failed = match e {
            Some(e) if inner.owns(&e) => detach_easy(lua, ud, &inner, &eud, &e)?,
            _ => None,
        };
        out.raw_set(n + 1, eud)?;
        out.raw_set(n + 2, msg.result as i64)?;
        n += 2;
        if let Some(f) = failed {
            return Err(f);
        }
    }
    Ok(n - start)
}

fn timeout(_lua: &Lua, args: Args) -> R<i64> {
    let (_ud, _inner, h) = open_idle(&args)?;
    h.timeout().map_err(multi_fail)
}

fn add_handle(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, h) = open_idle(&args)?;
    let (eud, e) = args.arg::<Easy>(1, "easy")?;
    add_core(lua, ud, &inner, &h, eud, &e)
}

/// `AddHandle` once the multi is known open and idle.
fn add_core(
    lua: &Lua,
    ud: &LuaAnyUserData,
    inner: &Rc<MultiInner>,
    h: &MultiHandle,
    eud: &LuaAnyUserData,
    e: &Rc<EasyInner>,
) -> R<()> {
    let Some(eh) = e.handle() else {
        return usage("bad argument #1 'easy' (the easy handle is closed)");
    };
    if e.slot.is_set() {
        return usage("bad argument #1 'easy' (it is running easy:Perform)");
    }
    if e.multi.borrow().is_some() {
        let detail = if inner.owns(e) {
            "the easy is already added to this multi (to run it again, multi:RemoveHandle(easy) first, once its transfer is done)"
        } else {
            "the easy is already added to another multi (remove it there with RemoveHandle first)"
        };
        return Err(Fail::Multi(CURLM_ADDED_ALREADY, Some(detail.into())));
    }
    // a new transfer: nothing raised in it yet
    e.take_cause(eud);
    // Link first: the timer callback fires inside curl_multi_add_handle and
    // must already map the handle back to its object.
    link_both(lua, ud, inner, eud, e)?;
    let (rc, err) = with_ctx(lua, ud, inner, || h.add(&eh));
    match added(inner, e, rc, err) {
        Ok(()) => Ok(()),
        Err((f, true)) => Err(f),
        Err((f, false)) => {
            unlink(lua, ud, eud, UV_HANDLES, UV_MULTI, e.addr())?;
            Err(f)
        }
    }
}

/// The outcome of `curl_multi_add_handle` for `e` (held by the multi
/// before the call): the error to raise, with whether the easy joined
/// (a callback error during a successful add leaves it in the multi); an
/// easy that did not join is let go (the caller unlinks its Lua side).
fn added(
    inner: &MultiInner,
    e: &EasyInner,
    rc: Result<(), Fault>,
    err: Option<Fail>,
) -> Result<(), (Fail, bool)> {
    match (rc, err) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(f)) => Err((f, true)),
        (Err(f), err) => {
            inner.let_go(e);
            Err((
                err.unwrap_or(match f {
                    Fault::Refused(why) => Fail::Usage(why),
                    other => fault("curl_multi_add_handle")(other),
                }),
                false,
            ))
        }
    }
}

/// Records that `e` is in the multi: both Lua sides (the multi's `handles`,
/// the easy's `multi`) and both Rust sides.
fn link_both(
    lua: &Lua,
    mud: &LuaAnyUserData,
    inner: &Rc<MultiInner>,
    eud: &LuaAnyUserData,
    e: &Rc<EasyInner>,
) -> R<()> {
    if !link(lua, mud, eud, UV_HANDLES, UV_MULTI, e.addr())? {
        return usage("the multi or easy object lost its user value");
    }
    if let Some(eh) = e.handle() {
        inner.hold(e, &eh);
    }
    Ok(())
}

/// Removes `e` from the multi with the multi's context set (so the socket
/// callback hears about sockets going away) and unlinks both sides.
/// Returns the first callback error, for the caller to raise.
fn detach_easy(
    lua: &Lua,
    mud: &LuaAnyUserData,
    inner: &MultiInner,
    eud: &LuaAnyUserData,
    e: &EasyInner,
) -> R<Option<Fail>> {
    let (Some(h), Some(eh)) = (inner.handle(), e.handle()) else {
        return Ok(None);
    };
    let (rc, err) = with_ctx(lua, mud, inner, || h.remove(&eh));
    inner.let_go(e);
    unlink(lua, mud, eud, UV_HANDLES, UV_MULTI, e.addr())?;
    eh.flush();
    if err.is_some() {
        return Ok(err);
    }
    rc.map_err(multi_fail)?;
    Ok(None)
}

fn remove_handle(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, _h) = open_idle(&args)?;
    let (eud, e) = args.arg::<Easy>(1, "easy")?;
    remove_core(lua, ud, &inner, eud, &e)
}

/// `RemoveHandle` once the multi is known open and idle.
fn remove_core(
    lua: &Lua,
    ud: &LuaAnyUserData,
    inner: &MultiInner,
    eud: &LuaAnyUserData,
    e: &EasyInner,
) -> R<()> {
    if !inner.owns(e) {
        return usage("bad argument #1 'easy' (it is not added to this multi)");
    }
    match detach_easy(lua, ud, inner, eud, e)? {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn wait_or_poll(lua: &Lua, args: Args, poll: bool) -> R<i64> {
    let (ud, inner, h) = open_idle(&args)?;
    let ms = args.int_in(1, "timeout_ms", 0, i32::MAX as i64)?;
    let mut fds: Vec<ffi::WaitFd> = Vec::new();
    let extra = match args.get(2) {
        Value::Nil => None,
        Value::Table(t) => Some(t),
        v => {
            return usage(format!(
                "bad argument #2 'extra' (expected array of {{fd=, events=}} tables, got {})",
                type_name(&v)
            ))
        }
    };
    let mut items: Vec<LuaTable> = Vec::new();
    if let Some(t) = &extra {
        for i in 1..=t.raw_len() {
            let Value::Table(item) = t.raw_get::<Value>(i)? else {
                return usage(format!("bad argument #2 'extra': item {i} is not a table"));
            };
            let fd = item.raw_get::<Value>("fd")?;
            let ev = item.raw_get::<Value>("events")?;
            let (Some(fd), Some(ev)) = (to_int(&fd), to_int(&ev)) else {
                return usage(format!(
                    "bad argument #2 'extra': item {i} needs integer 'fd' and 'events'"
                ));
            };
            if !(0..=i32::MAX as i64).contains(&fd) || !(0..=0xffff).contains(&ev) {
                return usage(format!(
                    "bad argument #2 'extra': item {i} has an out-of-range 'fd' or 'events'"
                ));
            }
            fds.push(ffi::WaitFd {
                fd: fd as sys::curl_socket_t,
                events: ev as i16,
                revents: 0,
            });
            items.push(item);
        }
    }
    let (r, err) = with_ctx(lua, ud, &inner, || h.wait(&mut fds, ms as c_int, poll));
    for (item, fd) in items.iter().zip(fds.iter()) {
        item.raw_set("revents", fd.revents as i64)?;
    }
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(multi_fail)
}

fn wakeup(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, _inner, h) = open(&args)?;
    h.wakeup().map_err(multi_fail)
}

fn assign(_lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, h) = open(&args)?;
    let fd = args.fd(1, "socket", false)?;
    let v = args.get(2);
    // libcurl stores a marker; the Lua value lives in our `assigned` table.
    h.assign(fd as sys::curl_socket_t, !v.is_nil())
        .map_err(multi_fail)?;
    inner.assigned.set(true);
    let a: LuaTable = uv(ud)?.raw_get(UV_ASSIGNED)?;
    a.raw_set(fd, v)?;
    Ok(())
}

fn get_handles(lua: &Lua, args: Args) -> R<LuaTable> {
    let (ud, _inner, _h) = open(&args)?;
    let handles: LuaTable = uv(ud)?.raw_get(UV_HANDLES)?;
    let out = lua.create_table()?;
    let mut i = 0;
    for pair in handles.pairs::<Value, Value>() {
        let (_, v) = pair?;
        i += 1;
        out.raw_set(i, v)?;
    }
    Ok(out)
}

fn close(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner) = args.this::<Multi>()?;
    if inner.handle.borrow().is_none() {
        return Ok(());
    }
    if inner.slot.is_set() {
        return usage("cannot close a multi from inside one of its own callbacks");
    }
    let t = uv(ud)?;
    let handles: LuaTable = t.raw_get(UV_HANDLES)?;
    for pair in handles.pairs::<Value, LuaAnyUserData>() {
        let (_, eud) = pair?;
        if let Ok(et) = eud.user_value::<LuaTable>() {
            et.raw_set(UV_MULTI, Value::Nil)?;
        }
    }
    inner.close_raw();
    t.raw_set(UV_HANDLES, lua.create_table()?)?;
    t.raw_set(UV_ASSIGNED, lua.create_table()?)?;
    for k in [
        UV_SOCKETFN,
        UV_SOCKETDATA,
        UV_TIMERFN,
        UV_TIMERDATA,
        UV_PUSHFN,
        UV_PUSHDATA,
    ] {
        t.raw_set(k, Value::Nil)?;
    }
    Ok(())
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "SetOpt", "multi:SetOpt", set_opt)?;
    reg(lua, &t, "SocketAction", "multi:SocketAction", socket_action)?;
    reg(lua, &t, "Perform", "multi:Perform", perform)?;
    reg(lua, &t, "InfoRead", "multi:InfoRead", info_read)?;
    reg(lua, &t, "Timeout", "multi:Timeout", timeout)?;
    reg(lua, &t, "AddHandle", "multi:AddHandle", add_handle)?;
    reg(lua, &t, "RemoveHandle", "multi:RemoveHandle", remove_handle)?;
    reg(lua, &t, "Wait", "multi:Wait", |lua, a| {
        wait_or_poll(lua, a, false)
    })?;
    reg(lua, &t, "Poll", "multi:Poll", |lua, a| {
        wait_or_poll(lua, a, true)
    })?;
    reg(lua, &t, "Wakeup", "multi:Wakeup", wakeup)?;
    reg(lua, &t, "Assign", "multi:Assign", assign)?;
    reg(lua, &t, "GetHandles", "multi:GetHandles", get_handles)?;
    reg(lua, &t, "Close", "multi:Close", close)?;
    raw_t.raw_set("Multi", t)?;
    reg(lua, raw_t, "drain", "curl._drain", drain)?;
    reg_fn(lua, raw_t, "new_multi", "curl.Multi", |lua, _a| create(lua))?;
    // `poller:Dispatch(multi)` drives a multi: registered with the poller's
    // methods (the poller module comes first).
    let pt: LuaTable = raw_t.raw_get("Poller")?;
    reg(lua, &pt, "Dispatch", "poller:Dispatch", dispatch)?;
    let fast = lua.create_table()?;
    fast::register(lua, &fast)?;
    raw_t.raw_set("fast", fast)?;
    Ok(())
}
