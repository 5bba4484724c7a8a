//! `curl.Multi`: the multi handle and its socket interface.
//!
//! User values of the multi userdata (GC-visible), under the `UV_*` keys:
//! - handles: `CURL*` (light userdata) → Easy userdata, for every added easy;
//!   this keeps added easies alive and maps callback handles back to objects;
//! - assigned: socket → the Lua value given to `Assign`;
//! - the socket, timer and push functions and their userdata.

use crate::callbacks;
use crate::consts::{c, tables};
use crate::ctx::{Ctx, CtxSlot};
use crate::easy::{self, Easy, EasyInner};
use crate::error::{finish, reg, reg_fn, to_int, type_name, usage, Args, Fail, R};
use crate::lraw;
use crate::poller::{Poller, PollerState};
use crate::raw::{self, EasyPtr, MultiPtr};
use curl_sys as sys;
use mlua::prelude::*;
use mlua::{MultiValue, UserData, UserDataFields, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::rc::Rc;

pub const CLASS: &str = "curl.Multi";

// User-value keys of a multi (integers: cheaper than strings on hot paths).
pub const UV_HANDLES: i64 = 1;
const UV_ASSIGNED: i64 = 2;
const UV_SOCKETFN: i64 = 3;
const UV_SOCKETDATA: i64 = 4;
const UV_TIMERFN: i64 = 5;
const UV_TIMERDATA: i64 = 6;
const UV_PUSHFN: i64 = 7;
const UV_PUSHDATA: i64 = 8;

pub struct MultiInner {
    raw: Cell<Option<MultiPtr>>,
    pub slot: CtxSlot,
    easies: RefCell<HashMap<usize, Rc<EasyInner>, lraw::AddrHash>>,
    /// The address of this multi's Lua block (see `lraw::register_object`).
    block: Cell<usize>,
    /// The Poller set as the socket / timer function, if one is: the
    /// callbacks update it without looking anything up in Lua. (The Lua
    /// object is also kept in the user value, for `GetOpt`-less GC safety.)
    sock_poller: RefCell<Option<Rc<PollerState>>>,
    timer_poller: RefCell<Option<Rc<PollerState>>>,
    /// `Assign` was used: the socket callback keeps the `assigned` table.
    assigned: Cell<bool>,
    /// An error from a fast-path call, for its full method to raise.
    pending: RefCell<Option<Fail>>,
}

pub struct Multi(pub Rc<MultiInner>);

impl Drop for Multi {
    fn drop(&mut self) {
        lraw::unregister_object(self.0.block.replace(0));
        // Garbage collection: no Lua runs (no context is installed).
        self.0.close_raw();
    }
}

impl UserData for Multi {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

impl MultiInner {
    /// Unregisters the callbacks, removes every easy, then destroys the
    /// multi (the rusqlite order: unhook, then close).
    pub fn close_raw(&self) {
        let Some(m) = self.raw.take() else {
            return;
        };
        if self.slot.busy() {
            // Collected while one of its calls runs (lua_close from inside a
            // callback): libcurl refuses cleanup then; leave it to the exit.
            return;
        }
        raw::multi_set_socket_cb(m, None, std::ptr::null());
        raw::multi_set_timer_cb(m, None, std::ptr::null());
        self.sock_poller.take();
        self.timer_poller.take();
        let easies = std::mem::take(&mut *self.easies.borrow_mut());
        for (_, e) in easies {
            if let Some(h) = e.raw() {
                raw::multi_remove(m, h);
            }
            e.multi.borrow_mut().take();
        }
        raw::multi_cleanup(m);
    }

    /// Called by an easy that is going away: remove it from libcurl's multi
    /// and from our map. No Lua runs.
    pub fn forget(&self, h: EasyPtr) {
        let e = self.easies.borrow_mut().remove(&h.addr());
        if let Some(m) = self.raw.get() {
            raw::multi_remove(m, h);
        }
        drop(e);
    }

    fn ptr(&self) -> *const c_void {
        self as *const MultiInner as *const c_void
    }
}

fn recursive<T>() -> R<T> {
    Err(Fail::Multi(
        raw::CURLM_RECURSIVE_API_CALL,
        Some("called from inside one of this multi's callbacks".into()),
    ))
}

/// The state of a multi userdata and its live handle, or a usage error.
fn live(ud: &LuaAnyUserData) -> R<(Rc<MultiInner>, MultiPtr)> {
    let inner = ud
        .borrow::<Multi>()
        .map_err(|_| Fail::Usage("the multi handle was garbage-collected".into()))?
        .0
        .clone();
    let m = inner
        .raw
        .get()
        .ok_or_else(|| Fail::Usage("the multi handle is closed".into()))?;
    Ok((inner, m))
}

fn open(args: &Args) -> R<(&LuaAnyUserData, Rc<MultiInner>, MultiPtr)> {
    let (ud, inner) =
        args.this_with::<Multi, _>(CLASS, "the multi handle was garbage-collected", |m| {
            m.0.clone()
        })?;
    let m = inner
        .raw
        .get()
        .ok_or_else(|| Fail::Usage("the multi handle is closed".into()))?;
    Ok((ud, inner, m))
}

/// Argument 1, an easy, with its state.
fn easy_arg(args: &Args) -> R<(&LuaAnyUserData, Rc<EasyInner>)> {
    args.ud_with::<Easy, _>(
        1,
        "easy",
        "curl.Easy",
        "the easy handle was garbage-collected",
        |e| e.0.clone(),
    )
}

/// `open` plus the re-entry guard for calls libcurl refuses from callbacks.
fn open_idle(args: &Args) -> R<(&LuaAnyUserData, Rc<MultiInner>, MultiPtr)> {
    let r = open(args)?;
    if r.1.slot.busy() {
        return recursive();
    }
    Ok(r)
}

fn uv(ud: &LuaAnyUserData) -> R<LuaTable> {
    Ok(ud.user_value::<LuaTable>()?)
}

fn mcheck(rc: raw::CURLMcode) -> R<()> {
    if rc == sys::CURLM_OK {
        Ok(())
    } else {
        Err(Fail::Multi(rc, None))
    }
}

/// Runs a libcurl call with this multi's context installed; returns its
/// result and the first error a callback parked.
pub fn with_ctx<T>(
    lua: &Lua,
    ud: &LuaAnyUserData,
    inner: &MultiInner,
    f: impl FnOnce() -> T,
) -> (T, Option<Fail>) {
    let mut ctx = Ctx::new(lua);
    ctx.multi = Some(ud);
    let r = {
        let _g = inner.slot.install(&ctx);
        f()
    };
    (r, ctx.take_err())
}

pub fn create(lua: &Lua) -> R<LuaAnyUserData> {
    raw::global_init();
    let m = raw::multi_init()
        .ok_or_else(|| Fail::Usage("curl_multi_init failed (out of memory)".into()))?;
    let inner = MultiInner {
        raw: Cell::new(Some(m)),
        slot: CtxSlot::default(),
        easies: RefCell::new(HashMap::default()),
        sock_poller: RefCell::new(None),
        timer_poller: RefCell::new(None),
        assigned: Cell::new(false),
        pending: RefCell::new(None),
        block: Cell::new(0),
    };
    let inner = Rc::new(inner);
    let ptr = Rc::as_ptr(&inner);
    let ud = lua.create_userdata(Multi(inner.clone()))?;
    inner.block.set(ud.to_pointer() as usize);
    lraw::register_object(lua, &ud, lraw::KIND_MULTI, ptr.cast());
    let t = lua.create_table()?;
    t.raw_set(UV_HANDLES, lua.create_table()?)?;
    t.raw_set(UV_ASSIGNED, lua.create_table()?)?;
    ud.set_user_value(t)?;
    Ok(ud)
}

// ------------------------------------------------------------- callbacks

pub fn on_socket(
    ctx: &Ctx<'_>,
    m: &MultiInner,
    easy: usize,
    fd: sys::curl_socket_t,
    what: c_int,
    has_socketp: bool,
) {
    let fast = m.sock_poller.borrow().clone();
    if let Some(p) = fast {
        // A Poller given as the socket function: update it here, no Lua.
        if let Err(f) = p.apply(fd, what) {
            ctx.park(f);
        }
        if !(what == sys::CURL_POLL_REMOVE && m.assigned.get()) {
            return;
        }
    }
    let Some(mud) = ctx.multi else {
        return;
    };
    let sockp = if has_socketp && m.assigned.get() {
        lraw::Arg::IntIn(UV_ASSIGNED, fd as i64)
    } else {
        lraw::Arg::Nil
    };
    let args = [
        lraw::Arg::PtrIn(UV_HANDLES, easy),
        lraw::Arg::Int(fd as i64),
        lraw::Arg::Int(what as i64),
        lraw::Arg::Field(UV_SOCKETDATA),
        sockp,
    ];
    let called = lraw::call_field(ctx.lua, mud, UV_SOCKETFN, &args);
    returned_minus_one(ctx, called, "the socket callback returned -1");
    if what == sys::CURL_POLL_REMOVE && m.assigned.get() {
        // libcurl forgets the Assign association on REMOVE; so do we.
        if let Ok(t) = mud.user_value::<LuaTable>() {
            if let Ok(a) = t.raw_get::<LuaTable>(UV_ASSIGNED) {
                let _ = a.raw_set(fd as i64, Value::Nil);
            }
        }
    }
}

/// Parks what a socket or timer function's call gave: its error, or
/// `CURLM_ABORTED_BY_CALLBACK` for a -1 (never handed to libcurl).
fn returned_minus_one(ctx: &Ctx<'_>, called: LuaResult<lraw::Called>, what: &str) {
    match called {
        Ok(lraw::Called::Returned(v)) => {
            if to_int(&v) == Some(-1) {
                ctx.park(Fail::Multi(
                    raw::CURLM_ABORTED_BY_CALLBACK,
                    Some(what.into()),
                ));
            }
        }
        Ok(lraw::Called::Raised(v)) => ctx.park(Fail::Raise(v)),
        Ok(lraw::Called::NoFn(_)) => {}
        Err(e) => ctx.park(Fail::Lua(e)),
    }
}

pub fn on_timer(ctx: &Ctx<'_>, m: &MultiInner, ms: i64) {
    let fast = m.timer_poller.borrow().clone();
    if let Some(p) = fast {
        // A Poller given as the timer function: arm it here, no Lua.
        p.arm(ms);
        return;
    }
    let Some(mud) = ctx.multi else {
        return;
    };
    let args = [lraw::Arg::Int(ms), lraw::Arg::Field(UV_TIMERDATA)];
    let called = lraw::call_field(ctx.lua, mud, UV_TIMERFN, &args);
    returned_minus_one(ctx, called, "the timer callback returned -1");
}

// ------------------------------------------------------------- methods

fn set_opt(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, m) = open_idle(&args)?;
    let id = args.c_int(1, "option")?;
    let tabs = tables(lua);
    let Some(name) = tabs.multi.get(&id) else {
        return usage(format!(
            "bad argument #1 'option' (unknown multi option {id})"
        ));
    };
    let opt = format!("CURLMOPT_{name}");
    let v = args.get(2);
    let bad = |expected: &str| -> R<()> {
        usage(format!(
            "bad argument #2 'value' for {opt} (expected {expected}, got {})",
            type_name(&args.get(2))
        ))
    };
    let t = uv(ud)?;
    match id as i64 {
        c::CURLMOPT_SOCKETFUNCTION | c::CURLMOPT_TIMERFUNCTION => {
            let socket = id as i64 == c::CURLMOPT_SOCKETFUNCTION;
            let (fkey, dkey) = if socket {
                (UV_SOCKETFN, UV_SOCKETDATA)
            } else {
                (UV_TIMERFN, UV_TIMERDATA)
            };
            let on = match &v {
                Value::Function(_) => true,
                Value::UserData(u) if u.is::<Poller>() => true,
                Value::Nil => false,
                _ => return bad("function, curl.Poller or nil"),
            };
            let data = if on { inner.ptr() } else { std::ptr::null() };
            let rc = if socket {
                raw::multi_set_socket_cb(
                    m,
                    on.then_some(callbacks::socket_cb as raw::SocketCb),
                    data,
                )
            } else {
                raw::multi_set_timer_cb(m, on.then_some(callbacks::timer_cb as raw::TimerCb), data)
            };
            mcheck(rc)?;
            let fast = match &v {
                Value::UserData(u) => Some(u.borrow::<Poller>()?.0.clone()),
                _ => None,
            };
            if socket {
                *inner.sock_poller.borrow_mut() = fast;
            } else {
                *inner.timer_poller.borrow_mut() = fast;
            }
            t.raw_set(fkey, v)?;
            if args.given(3) {
                t.raw_set(dkey, args.get(3))?;
            }
            Ok(())
        }
        c::CURLMOPT_PUSHFUNCTION => {
            let on = match v {
                Value::Function(_) => true,
                Value::Nil => false,
                _ => return bad("function or nil"),
            };
            let (fp, dp) = if on {
                (
                    callbacks::push_cb as raw::PushCb as *const c_void,
                    inner.ptr(),
                )
            } else {
                (std::ptr::null(), std::ptr::null())
            };
            mcheck(raw::multi_setopt_ptr(m, id, fp))?;
            mcheck(raw::multi_setopt_ptr(m, c::CURLMOPT_PUSHDATA as i32, dp))?;
            t.raw_set(UV_PUSHFN, v)?;
            if args.given(3) {
                t.raw_set(UV_PUSHDATA, args.get(3))?;
            }
            Ok(())
        }
        c::CURLMOPT_PUSHDATA => Ok(t.raw_set(UV_PUSHDATA, v)?),
        c::CURLMOPT_SOCKETDATA => Ok(t.raw_set(UV_SOCKETDATA, v)?),
        c::CURLMOPT_TIMERDATA => Ok(t.raw_set(UV_TIMERDATA, v)?),
        c::CURLMOPT_PIPELINING_SITE_BL | c::CURLMOPT_PIPELINING_SERVER_BL => {
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
            let mut ptrs: Vec<*const std::os::raw::c_char> =
                keep.iter().map(|c| c.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            let p = if v.is_nil() {
                std::ptr::null()
            } else {
                ptrs.as_ptr() as *const c_void
            };
            mcheck(raw::multi_setopt_ptr(m, id, p))
        }
        _ if id < 10000 => {
            let n = easy::long_value(&opt, &v)?;
            mcheck(raw::multi_setopt_long(m, id, n as std::os::raw::c_long))
        }
        _ if id >= 30000 => {
            let Some(n) = to_int(&v) else {
                return bad("integer");
            };
            mcheck(raw::multi_setopt_off_t(m, id, n))
        }
        _ => usage(format!(
            "{opt} is not supported by this version of the module"
        )),
    }
}

fn socket_action(lua: &Lua, args: Args) -> R<i64> {
    let (ud, inner, m) = open_idle(&args)?;
    let fd = args.fd(1, "socket", true)?;
    let mask = args.opt_int_in(2, "mask", 0, 0, 7)?;
    let (r, err) = with_ctx(lua, ud, &inner, || {
        raw::multi_socket_action(m, fd as sys::curl_socket_t, mask as c_int)
    });
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(|rc| Fail::Multi(rc, None))
}

/// The checks `action` makes (live, not inside its own callbacks), for a
/// caller that must refuse before doing anything else.
pub fn check_idle(mud: &LuaAnyUserData) -> R<()> {
    let (inner, _m) = live(mud)?;
    if inner.slot.busy() {
        return recursive();
    }
    Ok(())
}

/// `SocketAction` for Rust callers (`poller:Dispatch`).
pub fn action(lua: &Lua, mud: &LuaAnyUserData, fd: c_int, mask: c_int) -> R<i64> {
    let (inner, m) = live(mud)?;
    if inner.slot.busy() {
        return recursive();
    }
    let (r, err) = with_ctx(lua, mud, &inner, || {
        raw::multi_socket_action(m, fd as sys::curl_socket_t, mask)
    });
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(|rc| Fail::Multi(rc, None))
}

fn perform(lua: &Lua, args: Args) -> R<i64> {
    let (ud, inner, m) = open_idle(&args)?;
    let (r, err) = with_ctx(lua, ud, &inner, || raw::multi_perform(m));
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(|rc| Fail::Multi(rc, None))
}

fn info_read(lua: &Lua, args: Args) -> R<(i64, i64, i64, Value)> {
    let (ud, inner, m) = open(&args)?;
    let Some(msg) = inner.info_read(m) else {
        return Ok((c::CURLMSG_NONE, 0, 0, Value::Nil));
    };
    inner.note_msg(&msg);
    let easy = lraw::handle_of(lua, ud, UV_HANDLES, msg.easy as usize)?
        .map_or(Value::Nil, Value::UserData);
    Ok((
        msg.msg as i64,
        msg.result as i64,
        msg.remaining as i64,
        easy,
    ))
}

// ------------------------------------------------------- raw fast paths
//
// `InfoRead`, `AddHandle` and `RemoveHandle` run once per transfer. Their
// fast paths are C functions that serve the common case without mlua's
// per-call machinery (argument conversion, userdata type checks, a
// protected call): the objects are recognised by their metatables and
// reached through the `MultiInner` / `EasyInner` pointers kept in their user
// values. Anything unusual (a wrong argument, a closed or busy handle, Lua
// socket/timer functions, an easy with Lua callbacks that could run during
// the call, a libcurl error) goes to the full method (upvalue 1), which
// makes the same checks and the errors.

/// The multi at 1 (and the easy at 2) of the running C call.
///
/// # Safety
/// `l` is the running state inside a C function with room for 3 values.
unsafe fn fast_args(
    l: *mut mlua::ffi::lua_State,
    with_easy: bool,
) -> Option<(*const MultiInner, *const EasyInner)> {
    // SAFETY: the caller's contract.
    unsafe {
        let m = lraw::object_at(l, 1, lraw::KIND_MULTI)? as *const MultiInner;
        if !with_easy {
            return Some((m, std::ptr::null()));
        }
        let e = lraw::object_at(l, 2, lraw::KIND_EASY)? as *const EasyInner;
        Some((m, e))
    }
}

impl MultiInner {
    /// The Rust side of `e` joining this multi (`link` does the Lua side):
    /// the multi holds the easy's state, the easy knows its multi, and
    /// nothing is left over from an earlier transfer.
    fn hold(self: &Rc<Self>, e: &Rc<EasyInner>, h: EasyPtr) {
        self.easies.borrow_mut().insert(h.addr(), e.clone());
        *e.multi.borrow_mut() = Some(self.clone());
        e.flush_graveyard();
        e.pending_read().borrow_mut().clear();
        e.finished.set(false);
    }

    /// The Rust side of `e` leaving this multi.
    fn let_go(&self, e: &EasyInner, h: EasyPtr) {
        let gone = self.easies.borrow_mut().remove(&h.addr());
        e.multi.borrow_mut().take();
        drop(gone);
    }

    /// `curl_multi_info_read`, except inside one of this multi's callbacks,
    /// where no message is handed out (the documented rule: a message read
    /// there would be for a transfer whose call is still running).
    fn info_read(&self, m: MultiPtr) -> Option<raw::Msg> {
        if self.slot.busy() {
            return None;
        }
        raw::multi_info_read(m)
    }

    /// Marks the easy of a CURLMSG_DONE message as finished.
    fn note_msg(&self, msg: &raw::Msg) {
        if msg.msg == c::CURLMSG_DONE as c_int {
            if let Some(e) = self.easies.borrow().get(&(msg.easy as usize)) {
                e.finished.set(true);
            }
        }
    }

    /// The multi handle when a call may take the fast path: idle, with
    /// Pollers (open) as socket and timer functions and no `Assign`ed
    /// values, so libcurl's socket and timer callbacks need no Lua.
    fn fast_ready(&self) -> Option<MultiPtr> {
        let m = self.raw.get()?;
        let open =
            |p: &RefCell<Option<Rc<PollerState>>>| p.borrow().as_ref().is_some_and(|p| p.is_open());
        (!self.slot.busy()
            && !self.assigned.get()
            && open(&self.sock_poller)
            && open(&self.timer_poller))
        .then_some(m)
    }
}

/// A new strong reference from the pointer of a live `Rc`.
///
/// # Safety
/// `p` came from `Rc::as_ptr` of an `Rc` that is still alive.
unsafe fn rc_from<T>(p: *const T) -> Rc<T> {
    // SAFETY: the caller's contract: the count is at least 1.
    unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    }
}

/// A context for a fast-path call: no multi object, so a callback that
/// would need Lua finds none (the fast path is only taken when none can).
fn fast_call<T>(
    l: *mut mlua::ffi::lua_State,
    inner: &MultiInner,
    f: impl FnOnce() -> T,
) -> (T, Option<Fail>) {
    // SAFETY: `l` is the running state of a call into this module, whose
    // Lua instance is initialised (the module was loaded through mlua).
    let lua = unsafe { Lua::get_or_init_from_ptr(l) };
    let ctx = Ctx::new(lua);
    let r = {
        let _g = inner.slot.install(&ctx);
        f()
    };
    (r, ctx.take_err())
}

/// The Rust half of a fast `AddHandle`, after the Lua-side link: false
/// (with everything undone) if the full method should redo it.
fn add_commit(
    l: *mut mlua::ffi::lua_State,
    mi: *const MultiInner,
    ei: *const EasyInner,
    m: MultiPtr,
    h: EasyPtr,
) -> bool {
    // SAFETY: both pointers were read by `fast_args` from live objects.
    let (inner, e) = unsafe { (rc_from(mi), rc_from(ei)) };
    inner.hold(&e, h);
    let (rc, err) = fast_call(l, &inner, || raw::multi_add(m, h));
    if rc == sys::CURLM_OK && err.is_none() {
        return true;
    }
    if rc == sys::CURLM_OK {
        fast_call(l, &inner, || raw::multi_remove(m, h));
    }
    inner.let_go(&e, h);
    false
}

unsafe extern "C-unwind" fn add_handle_fast(l: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: a C function called by Lua (20 free stack slots; at most 6
    // used). The pointers come from live objects that are this call's
    // arguments. Lua API calls that can raise (the table stores of
    // `link_here`) happen while this frame holds nothing with a destructor;
    // the Rust work is in `add_commit`, which calls no raising Lua API.
    unsafe {
        let n = ffi::lua_gettop(l);
        if n == 2 {
            if let Some((mi, ei)) = fast_args(l, true) {
                let ready = (*mi).fast_ready().zip((*ei).raw()).filter(|_| {
                    let e = &*ei;
                    !e.slot.busy() && e.multi.borrow().is_none() && e.lua_cbs.get() == 0
                });
                if let Some((m, h)) = ready {
                    if lraw::link_here(l, UV_HANDLES, easy::UV_MULTI, h.addr()) {
                        if add_commit(l, mi, ei, m, h) {
                            ffi::lua_settop(l, 0);
                            ffi::lua_pushboolean(l, 1);
                            return 1;
                        }
                        lraw::unlink_here(l, UV_HANDLES, easy::UV_MULTI, h.addr());
                    }
                }
            }
        }
        ffi::lua_settop(l, n);
        lraw::call_full(l)
    }
}

/// The Rust half of a fast `RemoveHandle`: the error a callback parked, if
/// any (the removal is done either way).
fn remove_commit(
    l: *mut mlua::ffi::lua_State,
    mi: *const MultiInner,
    ei: *const EasyInner,
    m: MultiPtr,
    h: EasyPtr,
) -> Option<Fail> {
    // SAFETY: both pointers were read by `fast_args` from live objects.
    let (inner, e) = unsafe { (rc_from(mi), rc_from(ei)) };
    let (rc, err) = fast_call(l, &inner, || raw::multi_remove(m, h));
    inner.let_go(&e, h);
    e.flush_graveyard();
    err.or_else(|| mcheck(rc).err())
}

unsafe extern "C-unwind" fn remove_handle_fast(l: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: as in `add_handle_fast`; `unlink_here` never raises.
    unsafe {
        let n = ffi::lua_gettop(l);
        if n == 2 {
            if let Some((mi, ei)) = fast_args(l, true) {
                let ready = (*mi).fast_ready().zip((*ei).raw()).filter(|_| {
                    let e = &*ei;
                    let mine = e
                        .multi
                        .borrow()
                        .as_ref()
                        .is_some_and(|cur| Rc::as_ptr(cur) == mi);
                    mine && e.finished.get() && !e.slot.busy() && e.lua_cbs.get() == 0
                });
                if let Some((m, h)) = ready {
                    let err = remove_commit(l, mi, ei, m, h);
                    lraw::unlink_here(l, UV_HANDLES, easy::UV_MULTI, h.addr());
                    ffi::lua_settop(l, 1);
                    if let Some(f) = err {
                        // Raised by the full method's error path: `pending`
                        // hands it over (upvalue 2 returns false, err).
                        *(*mi).pending.borrow_mut() = Some(f);
                        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
                        ffi::lua_insert(l, 1);
                        ffi::lua_call(l, 1, ffi::LUA_MULTRET);
                        return ffi::lua_gettop(l);
                    }
                    ffi::lua_settop(l, 0);
                    ffi::lua_pushboolean(l, 1);
                    return 1;
                }
            }
        }
        ffi::lua_settop(l, n);
        lraw::call_full(l)
    }
}

/// `InfoRead` without mlua's call machinery (see above); it returns the
/// results themselves (upvalue 1 is the checked full method).
unsafe extern "C-unwind" fn info_read_fast(l: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: a C function called by Lua (20 free stack slots, at most 6
    // used); the pointer comes from the live Multi at 1. Nothing here
    // raises, and the frame holds no destructors.
    unsafe {
        let n = ffi::lua_gettop(l);
        if n == 1 {
            if let Some((mi, _)) = fast_args(l, false) {
                if let Some(m) = (*mi).raw.get() {
                    let Some(msg) = (*mi).info_read(m) else {
                        ffi::lua_pushinteger(l, c::CURLMSG_NONE as ffi::lua_Integer);
                        ffi::lua_pushinteger(l, 0);
                        ffi::lua_pushinteger(l, 0);
                        ffi::lua_pushnil(l);
                        return 4;
                    };
                    (*mi).note_msg(&msg);
                    ffi::lua_pushinteger(l, msg.msg as ffi::lua_Integer);
                    ffi::lua_pushinteger(l, msg.result as ffi::lua_Integer);
                    ffi::lua_pushinteger(l, msg.remaining as ffi::lua_Integer);
                    if lraw::push_uv(l, 1) && ffi::lua_rawgeti(l, -1, UV_HANDLES) == ffi::LUA_TTABLE
                    {
                        ffi::lua_rawgetp(l, -1, msg.easy as *const c_void);
                    } else {
                        ffi::lua_pushnil(l);
                    }
                    // msg, result, remaining, [uv, handles,] easy: keep the
                    // three numbers and the easy
                    ffi::lua_replace(l, 5);
                    ffi::lua_settop(l, 5);
                    return 4;
                }
            }
        }
        ffi::lua_settop(l, n);
        lraw::call_full(l)
    }
}

/// `raw.fast`: the fast paths, by class and method, each a function that
/// takes the full method and returns the method to install. `InfoRead`'s
/// wraps the checked method; the others wrap the raw one (they return
/// `true` or the full method's `false, err`) and are checked after.
pub fn fast_paths(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.raw_set(
        "curl.Multi.InfoRead",
        lua.create_function(|lua, full: LuaFunction| {
            lraw::fast_path(lua, info_read_fast, full, None)
        })?,
    )?;
    t.raw_set(
        "raw:curl.Multi.AddHandle",
        lua.create_function(|lua, full: LuaFunction| {
            lraw::fast_path(lua, add_handle_fast, full, None)
        })?,
    )?;
    t.raw_set(
        "raw:curl.Multi.RemoveHandle",
        lua.create_function(|lua, full: LuaFunction| {
            let pending = lua.create_function(|lua, args: Args| {
                finish(lua, "multi:RemoveHandle", take_pending(&args))
            })?;
            lraw::fast_path(lua, remove_handle_fast, full, Some(pending))
        })?,
    )?;
    Ok(())
}

/// Upvalue 2 of the fast `RemoveHandle`: the error its callbacks parked.
fn take_pending(args: &Args) -> R<()> {
    let (_ud, inner) =
        args.this_with::<Multi, _>(CLASS, "the multi handle was garbage-collected", |m| {
            m.0.clone()
        })?;
    let f = inner.pending.borrow_mut().take();
    match f {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn timeout(_lua: &Lua, args: Args) -> R<i64> {
    let (_ud, _inner, m) = open_idle(&args)?;
    raw::multi_timeout(m)
        .map(|n| n as i64)
        .map_err(|rc| Fail::Multi(rc, None))
}

fn add_handle(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, m) = open_idle(&args)?;
    let (eud, e) = easy_arg(&args)?;
    let Some(h) = e.raw() else {
        return usage("bad argument #1 'easy' (the easy handle is closed)");
    };
    if e.slot.busy() {
        return usage("bad argument #1 'easy' (it is running easy:Perform)");
    }
    if let Some(cur) = e.multi.borrow().as_ref() {
        let detail = if Rc::ptr_eq(cur, &inner) {
            "the easy is already added to this multi"
        } else {
            "the easy is already added to another multi"
        };
        return Err(Fail::Multi(raw::CURLM_ADDED_ALREADY, Some(detail.into())));
    }
    // Link first: the timer callback fires inside curl_multi_add_handle and
    // must already map the handle back to its object.
    link(lua, ud, &inner, eud, &e, h)?;
    let (rc, err) = with_ctx(lua, ud, &inner, || raw::multi_add(m, h));
    if rc != sys::CURLM_OK {
        unlink(lua, ud, &inner, eud, &e, h)?;
        return Err(err.unwrap_or(Fail::Multi(rc, None)));
    }
    match err {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// Records that `e` is in the multi: both Lua sides (the multi's `handles`,
/// the easy's `multi`) and both Rust sides.
fn link(
    lua: &Lua,
    mud: &LuaAnyUserData,
    inner: &Rc<MultiInner>,
    eud: &LuaAnyUserData,
    e: &Rc<EasyInner>,
    h: EasyPtr,
) -> R<()> {
    if !lraw::link(lua, mud, eud, UV_HANDLES, easy::UV_MULTI, h.addr())? {
        return usage("the multi or easy object lost its user value");
    }
    inner.hold(e, h);
    Ok(())
}

fn unlink(
    lua: &Lua,
    mud: &LuaAnyUserData,
    inner: &MultiInner,
    eud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
) -> R<()> {
    inner.let_go(e, h);
    lraw::unlink(lua, mud, eud, UV_HANDLES, easy::UV_MULTI, h.addr())?;
    Ok(())
}

/// HTTP/2 server push: libcurl made `easy` from `parent`'s options and will
/// add it to the multi if the Lua function accepts (returns true or
/// CURL_PUSH_OK). The new Easy object is linked first so the function can
/// set options on it; a refusal gives the handle back to libcurl.
pub fn on_push(ctx: &Ctx<'_>, parent: usize, easy: *mut sys::CURL, headers: Vec<Vec<u8>>) -> c_int {
    let deny = c::CURL_PUSH_DENY as c_int;
    let (Some(mud), Some(nh)) = (ctx.multi, raw::easy_from_libcurl(easy)) else {
        return deny;
    };
    let lua = ctx.lua;
    let f = match uv(mud).and_then(|t| Ok(t.raw_get::<Value>(UV_PUSHFN)?)) {
        Ok(Value::Function(f)) => f,
        _ => return deny,
    };
    let Some(pud) = ctx.easy_ud(parent) else {
        return deny;
    };
    let adopted = easy::inner_of(&pud).and_then(|pe| easy::adopt(lua, &pud, &pe, nh, true));
    let nud = match adopted {
        Ok(u) => u,
        Err(f) => {
            ctx.park(f);
            return deny;
        }
    };
    let linked = (|| -> R<(Rc<EasyInner>, Rc<MultiInner>)> {
        let ne = easy::inner_of(&nud)?;
        let inner = mud.borrow::<Multi>()?.0.clone();
        link(lua, mud, &inner, &nud, &ne, nh)?;
        Ok((ne, inner))
    })();
    let (ne, inner) = match linked {
        Ok(x) => x,
        Err(f) => {
            let _ = easy::disown(lua, &nud);
            ctx.park(f);
            return deny;
        }
    };
    let accepted = (|| -> R<bool> {
        let t = lua.create_table_with_capacity(headers.len(), 0)?;
        for (i, h) in headers.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(h)?)?;
        }
        let data: Value = uv(mud)?.raw_get(UV_PUSHDATA)?;
        let mut args = MultiValue::new();
        args.push_back(Value::UserData(pud.clone()));
        args.push_back(Value::UserData(nud.clone()));
        args.push_back(Value::Table(t));
        args.push_back(data);
        Ok(match ctx.call(f, args) {
            Some(r) => match r.front() {
                Some(Value::Boolean(true)) => true,
                Some(v) => to_int(v) == Some(c::CURL_PUSH_OK),
                None => false,
            },
            None => false,
        })
    })();
    match accepted {
        Ok(true) => c::CURL_PUSH_OK as c_int,
        other => {
            if let Err(f) = other {
                ctx.park(f);
            }
            let _ = unlink(lua, mud, &inner, &nud, &ne, nh);
            let _ = easy::disown(lua, &nud);
            deny
        }
    }
}

/// Removes `e` from the multi with the multi's context installed (so the
/// socket callback hears about sockets going away) and unlinks both sides.
/// Returns the first callback error, for the caller to raise.
pub fn detach_easy(
    lua: &Lua,
    mud: &LuaAnyUserData,
    inner: &MultiInner,
    eud: &LuaAnyUserData,
    e: &EasyInner,
) -> R<Option<Fail>> {
    let (Some(m), Some(h)) = (inner.raw.get(), e.raw()) else {
        return Ok(None);
    };
    let (rc, err) = with_ctx(lua, mud, inner, || raw::multi_remove(m, h));
    unlink(lua, mud, inner, eud, e, h)?;
    e.flush_graveyard();
    if err.is_some() {
        return Ok(err);
    }
    mcheck(rc)?;
    Ok(None)
}

fn remove_handle(lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, _m) = open_idle(&args)?;
    let (eud, e) = easy_arg(&args)?;
    let mine = matches!(e.multi.borrow().as_ref(), Some(cur) if Rc::ptr_eq(cur, &inner));
    if !mine {
        return usage("bad argument #1 'easy' (it is not added to this multi)");
    }
    match detach_easy(lua, ud, &inner, eud, &e)? {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn wait_or_poll(lua: &Lua, args: Args, poll: bool) -> R<i64> {
    let (ud, inner, m) = open_idle(&args)?;
    let ms = args.int_in(1, "timeout_ms", 0, i32::MAX as i64)?;
    let mut fds: Vec<sys::curl_waitfd> = Vec::new();
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
            fds.push(sys::curl_waitfd {
                fd: fd as sys::curl_socket_t,
                events: ev as i16,
                revents: 0,
            });
            items.push(item);
        }
    }
    let (r, err) = with_ctx(lua, ud, &inner, || {
        raw::multi_wait(m, &mut fds, ms as c_int, poll)
    });
    for (item, fd) in items.iter().zip(fds.iter()) {
        item.raw_set("revents", fd.revents as i64)?;
    }
    if let Some(e) = err {
        return Err(e);
    }
    r.map(|n| n as i64).map_err(|rc| Fail::Multi(rc, None))
}

fn wakeup(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, _inner, m) = open(&args)?;
    mcheck(raw::multi_wakeup(m))
}

fn assign(_lua: &Lua, args: Args) -> R<()> {
    let (ud, inner, m) = open(&args)?;
    let fd = args.fd(1, "socket", false)?;
    let v = args.get(2);
    // libcurl stores a marker; the Lua value lives in our `assigned` table.
    let marker = if v.is_nil() {
        std::ptr::null_mut()
    } else {
        std::ptr::dangling_mut::<c_void>()
    };
    mcheck(raw::multi_assign(m, fd as sys::curl_socket_t, marker))?;
    inner.assigned.set(true);
    let a: LuaTable = uv(ud)?.raw_get(UV_ASSIGNED)?;
    a.raw_set(fd, v)?;
    Ok(())
}

fn get_handles(lua: &Lua, args: Args) -> R<LuaTable> {
    let (ud, _inner, _m) = open(&args)?;
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
    let ud = args.this::<Multi>(CLASS)?;
    let inner = ud
        .borrow::<Multi>()
        .map_err(|_| Fail::Usage("the multi handle was garbage-collected".into()))?
        .0
        .clone();
    if inner.raw.get().is_none() {
        return Ok(());
    }
    if inner.slot.busy() {
        return usage("cannot close a multi from inside one of its own callbacks");
    }
    let t = uv(ud)?;
    let handles: LuaTable = t.raw_get(UV_HANDLES)?;
    for pair in handles.pairs::<Value, LuaAnyUserData>() {
        let (_, eud) = pair?;
        if let Ok(et) = eud.user_value::<LuaTable>() {
            et.raw_set(easy::UV_MULTI, Value::Nil)?;
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
    reg_fn(lua, raw_t, "new_multi", "curl.Multi", |lua, _a| create(lua))?;
    Ok(())
}
