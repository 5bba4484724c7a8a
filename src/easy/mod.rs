//! `curl.Easy`: one libcurl easy handle. This file: the handle's state and
//! life (create, close, garbage collection, reset, copies) and the calls
//! on the easy alone (`Perform`, `GetInfo`, `Pause`, ...). Setting options
//! is in `setopt.rs`, the callbacks' Lua side in `callbacks.rs`.
//!
//! Lua callbacks and their userdata live in the userdata's user-value
//! table, keyed by the `CURLOPT_*FUNCTION` / `*DATA` option ids (GC-visible,
//! so a callback that captures its own handle is still collected). What
//! libcurl points at is kept by the FFI handle (`ffi::Easy`).
//!
//! An easy never names the multi it is added to: it knows it through the
//! [`Owner`] trait, which the multi implements.

mod callbacks;
mod setopt;
mod ws;

pub use setopt::long_value;

use crate::ctx::{Ctx, CtxSlot};
use crate::error::{fault, reg, reg_fn, usage, Fail, R};
use crate::ffi::{self, Fault, Pushed};
use crate::luaapi::class::lua_class;
use crate::luaapi::raw::{num_path, register_object, unregister_object, Holder, Num, NumPath};
use crate::luaapi::Args;
use crate::options::{c, tables, INFO_DOUBLE, INFO_LONG, INFO_OFF_T, INFO_SLIST, INFO_SOCKET};
use crate::options::{INFO_STRING, INFO_TYPEMASK};
use mlua::prelude::*;
use mlua::Value;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// The FFI handle of an easy.
pub type EasyHandle = ffi::Easy<EasyInner>;

/// User-value key of the multi an easy is added to (option ids, the other
/// keys, are all positive).
pub const UV_MULTI: i64 = -1;
/// The easy's user value key of what one of its callbacks raised during the
/// current transfer (`easy:TransferError`'s `cause`).
pub const CAUSE_KEY: &str = "cause";

/// What an easy needs from the multi it is added to.
pub trait Owner {
    /// The slot of the call running on the multi.
    fn slot(&self) -> &CtxSlot;
    /// Removes the easy from the multi without calling Lua (garbage
    /// collection, `Close`'s cleanup).
    fn forget(&self, e: &EasyInner);
    /// Removes the easy with the multi's context set (the socket callback
    /// hears about sockets going away) and unlinks both objects; returns the
    /// first callback error.
    fn detach(
        &self,
        lua: &Lua,
        mud: &LuaAnyUserData,
        eud: &LuaAnyUserData,
        e: &EasyInner,
    ) -> R<Option<Fail>>;
}

pub struct EasyInner {
    /// The libcurl handle, until closed. Calls take a clone, so a handle is
    /// freed only after the last call on it returned.
    handle: RefCell<Option<Rc<EasyHandle>>>,
    /// The handle's address, kept after close: callbacks libcurl runs while
    /// cleaning up still find the object (whose methods then say "closed").
    id: usize,
    /// The multi this easy is added to (strong; the multi holds us back, and
    /// whichever side closes first breaks the cycle).
    pub multi: RefCell<Option<Rc<dyn Owner>>>,
    /// Context of a call made on the easy alone (`Perform`, `Pause`,
    /// `Upkeep`, `Send`, `Recv`, `Close`).
    pub slot: CtxSlot,
    /// What a read callback returned beyond the buffer libcurl offered.
    pending_read: RefCell<Vec<u8>>,
    /// The address of this easy's Lua block (see `register_object`).
    block: Cell<usize>,
    /// A callback raised during the transfer: its value is under
    /// `CAUSE_KEY` in the user value table.
    pub has_cause: Cell<bool>,
}

pub struct Easy(Rc<EasyInner>);

impl Drop for Easy {
    fn drop(&mut self) {
        unregister_object(self.0.block.replace(0));
        // Garbage collection: detach from the multi and free, calling no Lua
        // (no context is set, so callbacks do nothing).
        self.0.close_raw();
    }
}

impl Drop for EasyInner {
    fn drop(&mut self) {
        // The handler (this state) is going: libcurl's cleanup callbacks
        // find no handler and do libcurl's defaults.
        self.handle.borrow_mut().take();
    }
}

lua_class!(Easy, "curl.Easy", "the easy handle", Rc<EasyInner>,
    open(inner) => inner.handle.borrow().is_some());

impl EasyInner {
    /// Takes what a callback raised during the last transfer (see
    /// `has_cause`); `ud` is this easy's userdata.
    pub fn take_cause(&self, ud: &LuaAnyUserData) -> Option<Value> {
        if !self.has_cause.replace(false) {
            return None;
        }
        let t = ud.user_value::<LuaTable>().ok()?;
        let v = t.raw_get::<Value>(CAUSE_KEY).ok();
        let _ = t.raw_set(CAUSE_KEY, Value::Nil);
        v
    }

    /// The libcurl handle, unless closed.
    pub fn handle(&self) -> Option<Rc<EasyHandle>> {
        self.handle.borrow().clone()
    }

    pub fn is_open(&self) -> bool {
        self.handle.borrow().is_some()
    }

    pub fn addr(&self) -> usize {
        self.id
    }

    /// Whether a call on the easy, or on its multi, is running.
    pub fn busy(&self) -> bool {
        self.slot.is_set()
            || self
                .multi
                .borrow()
                .as_ref()
                .is_some_and(|m| m.slot().is_set())
    }

    /// Runs `f` with the context of the call that is driving this easy:
    /// a call on the easy itself, or on the multi it is added to.
    pub fn with_ctx<T>(&self, f: impl FnOnce(Option<&Ctx>) -> T) -> T {
        if self.slot.is_set() {
            return self.slot.with(f);
        }
        let m = self.multi.borrow().clone();
        match m {
            Some(m) => m.slot().with(f),
            None => f(None),
        }
    }

    /// Detaches from the multi (if any) and frees the libcurl handle. Used by
    /// `__gc`; `Close` does the Lua-side part first.
    fn close_raw(&self) {
        if self.busy() {
            // Collected while a call on it is running (lua_close from inside a
            // callback, os.exit(0, true)): libcurl would refuse the removal,
            // so freeing would leave a dangling handle in the multi. Leave the
            // handle to the exiting process instead.
            let h = self.handle.borrow_mut().take();
            if let Some(h) = h.and_then(|h| Rc::try_unwrap(h).ok()) {
                h.leak();
            }
            self.multi.borrow_mut().take();
            return;
        }
        self.cleanup_now();
    }

    /// Detaches and frees now. `Close` calls it with the easy's own context
    /// set, so callbacks libcurl runs while cleaning up (HSTS saving,
    /// closing sockets) reach Lua; from `__gc` no context is set.
    fn cleanup_now(&self) {
        let m = self.multi.borrow_mut().take();
        if let Some(m) = m {
            m.forget(self);
        }
        let h = self.handle.borrow_mut().take();
        drop(h);
        self.pending_read.borrow_mut().clear();
    }

    pub fn pending_read(&self) -> &RefCell<Vec<u8>> {
        &self.pending_read
    }

    /// Forgets the libcurl handle of a refused server push (libcurl frees
    /// it) and the Lua values.
    pub fn disown(&self) {
        let h = self.handle.borrow_mut().take();
        if let Some(h) = h {
            h.give_back();
        }
        self.multi.borrow_mut().take();
    }
}

impl crate::ctx::CtxSource for EasyInner {
    fn with_ctx_dyn(&self, f: &mut dyn FnMut(Option<&Ctx<'_>>)) {
        self.with_ctx(|ctx| f(ctx))
    }
    fn addr(&self) -> usize {
        self.id
    }
}

/// A new state around the handle `make` returns for it.
fn new_state(
    make: impl FnOnce(Weak<EasyInner>) -> ffi::Res<EasyHandle>,
) -> ffi::Res<Rc<EasyInner>> {
    let mut err = None;
    let inner = Rc::new_cyclic(|w| {
        let handle = match make(w.clone()) {
            Ok(h) => Some(Rc::new(h)),
            Err(f) => {
                err = Some(f);
                None
            }
        };
        let id = handle.as_ref().map_or(0, |h| h.addr());
        EasyInner {
            handle: RefCell::new(handle),
            id,
            multi: RefCell::new(None),
            slot: CtxSlot::default(),
            pending_read: RefCell::new(Vec::new()),
            has_cause: Cell::new(false),
            block: Cell::new(0),
        }
    });
    match err {
        Some(f) => Err(f),
        None => Ok(inner),
    }
}

fn wrap(lua: &Lua, inner: Rc<EasyInner>) -> R<LuaAnyUserData> {
    let ud = crate::luaapi::raw::new_object(lua, Easy(inner.clone()))?;
    inner.block.set(ud.to_pointer() as usize);
    register_object(lua, &ud, &inner);
    ud.set_user_value(lua.create_table()?)?;
    Ok(ud)
}

pub fn create(lua: &Lua) -> R<LuaAnyUserData> {
    let inner = new_state(|w| ffi::Easy::new(w).ok_or(Fault::Code(c::CURLE_OUT_OF_MEMORY as i32)))
        .map_err(fault("curl_easy_init"))?;
    wrap(lua, inner)
}

/// The state of an Easy userdata.
pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<EasyInner>> {
    Ok(ud
        .borrow::<Easy>()
        .map_err(|_| Fail::Usage("the easy handle was garbage-collected".into()))?
        .0
        .clone())
}

/// `self`, its state and its live handle, or a usage error.
pub(super) fn open(args: &Args) -> R<(&LuaAnyUserData, Rc<EasyInner>, Rc<EasyHandle>)> {
    let (ud, e) = args.this::<Easy>()?;
    let h = e
        .handle()
        .ok_or_else(|| Fail::Usage("the easy handle is closed".into()))?;
    Ok((ud, e, h))
}

pub(super) fn uv(ud: &LuaAnyUserData) -> R<LuaTable> {
    Ok(ud.user_value::<LuaTable>()?)
}

/// Runs a libcurl call on an easy that may call back: in the context of
/// the call already running (inside a callback), of its multi, or its own.
pub(super) fn run_with_ctx<T>(
    lua: &Lua,
    ud: &LuaAnyUserData,
    e: &EasyInner,
    f: impl FnOnce() -> T,
) -> R<(T, Option<Fail>)> {
    if e.busy() {
        // The running call's context receives any callback error.
        return Ok((f(), None));
    }
    let m = e.multi.borrow().clone();
    let mut ctx = Ctx::new(lua);
    let r = match m {
        Some(m) => {
            let mud = uv(ud)?.raw_get::<LuaAnyUserData>(UV_MULTI)?;
            ctx.multi = Some(Holder::Ud(&mud));
            ctx.run(m.slot(), f)
        }
        None => {
            ctx.easy = Some((ud, e.addr()));
            ctx.run(&e.slot, f)
        }
    };
    Ok(r)
}

fn perform(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.is_set() {
        return usage("called from inside one of this easy's own callbacks");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first or drive the multi");
    }
    h.flush();
    e.pending_read.borrow_mut().clear();
    e.take_cause(ud);
    let (r, err) = run_with_ctx(lua, ud, &e, || h.perform())?;
    h.flush();
    // Perform raises the callback's error itself
    e.take_cause(ud);
    if let Some(err) = err {
        return Err(err);
    }
    r.map_err(|f| match f {
        Fault::Code(rc) => Fail::Easy(rc, h.error_text()),
        Fault::Refused(why) => Fail::Usage(why),
        Fault::Multi(rc) => Fail::Multi(rc, None),
    })
}

fn get_info(lua: &Lua, args: Args) -> R<Value> {
    let (ud, _e, h) = open(&args)?;
    let id = args.c_int(1, "info")?;
    let t = tables(lua);
    let Some(name) = t.info.get(&id) else {
        return usage(format!("bad argument #1 'info' (unknown CURLINFO {id})"));
    };
    // the name only on the error paths (no formatting per call)
    let fail = |f: Fault| fault(&format!("CURLINFO_{name}"))(f);
    let id64 = id as i64;
    if id64 == c::CURLINFO_PRIVATE {
        return Ok(uv(ud)?.raw_get(c::CURLOPT_PRIVATE)?);
    }
    if id64 == c::CURLINFO_CERTINFO {
        let certs = h.info_certinfo().map_err(&fail)?;
        let out = lua.create_table_with_capacity(certs.len(), 0)?;
        for (i, fields) in certs.iter().enumerate() {
            let ct = lua.create_table()?;
            for f in fields {
                let s = String::from_utf8_lossy(f);
                if let Some((k, v)) = s.split_once(':') {
                    ct.raw_set(k, v)?;
                }
            }
            out.raw_set(i + 1, ct)?;
        }
        return Ok(Value::Table(out));
    }
    Ok(match id & INFO_TYPEMASK {
        INFO_STRING => match h.info_string(id).map_err(&fail)? {
            Some(b) => Value::String(lua.create_string(&b)?),
            None => Value::Nil,
        },
        INFO_LONG => Value::Integer(h.info_long(id).map_err(&fail)?),
        INFO_DOUBLE => Value::Number(h.info_double(id).map_err(&fail)?),
        INFO_OFF_T => Value::Integer(h.info_off_t(id).map_err(&fail)?),
        INFO_SOCKET => Value::Integer(h.info_socket(id).map_err(&fail)?),
        INFO_SLIST if id64 == c::CURLINFO_COOKIELIST || id64 == c::CURLINFO_SSL_ENGINES => {
            let items = h.info_slist(id).map_err(&fail)?;
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, s) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(s)?)?;
            }
            Value::Table(t)
        }
        _ => {
            return usage(format!(
                "CURLINFO_{name} hands out a TLS library pointer, which Lua cannot use"
            ))
        }
    })
}

/// `GetInfo`'s fast path: a numeric info of an open easy (no argument
/// conversion, no protected call); anything else, or a libcurl error, goes
/// to the full method.
struct NumInfo;

impl NumPath for NumInfo {
    type A = EasyInner;

    fn run(e: &EasyInner, id: i64) -> Option<Num> {
        if id == c::CURLINFO_PRIVATE {
            // the Lua value SetOpt_Private stored (an open easy only: the
            // full method says "closed" otherwise)
            return e.is_open().then_some(Num::Field(c::CURLOPT_PRIVATE));
        }
        if !crate::options::numeric_info(id) {
            return None;
        }
        let h = e.handle()?;
        let id = id as i32;
        match id & INFO_TYPEMASK {
            INFO_LONG => h.info_long(id).ok().map(Num::Int),
            INFO_OFF_T => h.info_off_t(id).ok().map(Num::Int),
            INFO_DOUBLE => h.info_double(id).ok().map(Num::Float),
            _ => None,
        }
    }
}

/// `raw.fast_getinfo(fallback[, id])`: `GetInfo`'s fast path in front of
/// `fallback` (see `luaapi::raw::num_path`).
pub fn fast_getinfo(
    lua: &Lua,
    (fallback, id): (LuaFunction, Option<i64>),
) -> LuaResult<LuaFunction> {
    num_path::<NumInfo>(lua, fallback, id)
}

/// Clears the Lua values an easy holds (callbacks, userdata, objects).
fn clear_uv(lua: &Lua, ud: &LuaAnyUserData, keep_multi: bool) -> R<()> {
    let fresh = lua.create_table()?;
    if keep_multi {
        fresh.raw_set(UV_MULTI, uv(ud)?.raw_get::<Value>(UV_MULTI)?)?;
    }
    ud.set_user_value(fresh)?;
    Ok(())
}

fn close(lua: &Lua, args: Args) -> R<()> {
    let (ud, e) = args.this::<Easy>()?;
    if e.handle.borrow().is_none() {
        return Ok(()); // Close twice is harmless
    }
    if e.slot.is_set() {
        return usage("cannot close an easy from inside its own callback");
    }
    let mut parked = None;
    let m = e.multi.borrow().clone();
    if let Some(m) = m {
        if m.slot().is_set() {
            return usage(
                "cannot close an easy while its multi is running a call (inside a callback); close it after the call returns",
            );
        }
        let mud: Option<LuaAnyUserData> = uv(ud)?.raw_get(UV_MULTI)?;
        if let Some(mud) = mud {
            parked = m.detach(lua, &mud, ud, &e)?;
        }
    }
    // No clone of the handle is held here: it is freed inside the context.
    let mut ctx = Ctx::new(lua);
    ctx.easy = Some((ud, e.addr()));
    let ((), err) = ctx.run(&e.slot, || e.cleanup_now());
    if parked.is_none() {
        parked = err;
    }
    clear_uv(lua, ud, false)?;
    match parked {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn reset(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.is_set() {
        return usage("cannot reset an easy from inside its own callback");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first");
    }
    h.reset();
    e.pending_read.borrow_mut().clear();
    clear_uv(lua, ud, true)?;
    Ok(())
}

/// `easy:Pause(bitmask)`: `curl_easy_pause`. Unpausing can deliver buffered
/// data at once, so the write callback may run inside this call.
fn pause(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let mask = args.int_in(1, "bitmask", 0, c::CURLPAUSE_ALL)? as std::os::raw::c_int;
    let (r, err) = run_with_ctx(lua, ud, &e, || h.pause(mask))?;
    if let Some(f) = err {
        return Err(f);
    }
    r.map_err(fault("curl_easy_pause"))
}

fn upkeep(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let (r, err) = run_with_ctx(lua, ud, &e, || h.upkeep())?;
    if let Some(f) = err {
        return Err(f);
    }
    r.map_err(fault("curl_easy_upkeep"))
}

/// `Escape` / `Unescape`: `curl_easy_escape` / `curl_easy_unescape`.
fn escaping(lua: &Lua, args: Args, unescape: bool) -> R<LuaString> {
    let (_ud, _e, h) = open(&args)?;
    let s = args.bytes(1, "string")?;
    let out = if unescape {
        h.unescape(&s)
    } else {
        h.escape(&s)
    };
    let out = out.map_err(|f| match f {
        Fault::Refused(why) => Fail::Usage(format!("bad argument #1 'string' ({why})")),
        other => fault("curl_easy_escape")(other),
    })?;
    Ok(lua.create_string(&out)?)
}

/// `raw.writes(easy)` (`curl._writes`, for the loop helpers): whether
/// the body of a transfer on `easy` goes somewhere other than stdout (a
/// write function, or `WRITEDATA`, is set); nil, not an error, when
/// `easy` is not an open Easy (the loop's AddHandle then says why), so
/// that the loop needs no pcall around it.
pub fn writes(_lua: &Lua, args: Args) -> R<Option<bool>> {
    let Ok((ud, _e)) = args.arg::<Easy>(1, "easy") else {
        return Ok(None);
    };
    let t = uv(ud)?;
    let f = t.raw_get::<Value>(c::CURLOPT_WRITEFUNCTION)?;
    let d = t.raw_get::<Value>(c::CURLOPT_WRITEDATA)?;
    Ok(Some(!f.is_nil() || !d.is_nil()))
}

/// `raw.fast_writes(full)`: `writes` as a C function (`curl._writes` runs
/// on every `loop:Add`).
pub fn fast_writes(lua: &Lua, full: LuaFunction) -> LuaResult<LuaFunction> {
    crate::luaapi::raw::uv_any_path::<EasyInner>(
        lua,
        full,
        [c::CURLOPT_WRITEFUNCTION, c::CURLOPT_WRITEDATA],
    )
}

/// `easy:TransferError(code[, method])`: the `curl.Error` a transfer on
/// this easy that ended with `code` gives (`Perform`'s: the code's name,
/// libcurl's text and the error buffer's detail); `method` names it
/// (default `"easy:TransferError"`). For code taken from `InfoRead`.
fn transfer_error(lua: &Lua, args: Args) -> R<Value> {
    let (ud, e, h) = open(&args)?;
    let code = args.c_int(1, "code")?;
    let method = args.opt_text(2, "method")?;
    let detail = if code == 0 { None } else { h.error_text() };
    let cause = e.take_cause(ud);
    let v = Fail::Easy(code, detail)
        .into_value(lua, method.as_deref().unwrap_or("easy:TransferError"))?;
    if let (Value::Table(t), Some(c)) = (&v, cause) {
        if code != 0 {
            t.raw_set("cause", c)?;
        }
    }
    Ok(v)
}

/// `easy:Send(data)`: bytes sent (0 when the socket is not ready:
/// CURLE_AGAIN). Needs `CONNECT_ONLY`.
fn send(lua: &Lua, args: Args) -> R<i64> {
    let (ud, e, h) = open(&args)?;
    let bytes = args.bytes(1, "data")?;
    let (r, err) = run_with_ctx(lua, ud, &e, || h.send(&bytes))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok(n) => Ok(n as i64),
        Err(Fault::Code(rc)) if rc as i64 == c::CURLE_AGAIN => Ok(0),
        Err(Fault::Code(rc)) => Err(Fail::Easy(rc, h.error_text())),
        Err(f) => Err(fault("curl_easy_send")(f)),
    }
}

/// `easy:Recv(max)`: a string ("" when the peer closed), or nil when nothing
/// is available yet (CURLE_AGAIN). Needs `CONNECT_ONLY`.
fn recv(lua: &Lua, args: Args) -> R<Value> {
    let (ud, e, h) = open(&args)?;
    let max = args.int(1, "max")?;
    if !(1..=64 * 1024 * 1024).contains(&max) {
        return usage("bad argument #1 'max' (expected 1 to 67108864)");
    }
    let mut buf = vec![0u8; max as usize];
    let (r, err) = run_with_ctx(lua, ud, &e, || h.recv(&mut buf))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok(n) => Ok(Value::String(lua.create_string(&buf[..n])?)),
        Err(Fault::Code(rc)) if rc as i64 == c::CURLE_AGAIN => Ok(Value::Nil),
        Err(Fault::Code(rc)) => Err(Fail::Easy(rc, h.error_text())),
        Err(f) => Err(fault("curl_easy_recv")(f)),
    }
}

/// `easy:DupHandle()`: `curl_easy_duphandle`, with the module's own state
/// (callbacks, userdata, objects) copied too.
fn dup_handle(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, _e, h) = open(&args)?;
    let ne = new_state(|w| h.dup(w)).map_err(|f| match f {
        Fault::Refused(why) => Fail::Usage(why),
        other => fault("curl_easy_duphandle")(other),
    })?;
    let nud = wrap(lua, ne)?;
    copy_lua_state(ud, &nud)?;
    Ok(nud)
}

/// Gives a copy (DupHandle, server push) the Lua side of `e`: callbacks,
/// userdata and objects, but not the multi membership or a posted mime.
fn copy_lua_state(ud: &LuaAnyUserData, nud: &LuaAnyUserData) -> R<()> {
    let src = uv(ud)?;
    let dst = uv(nud)?;
    for pair in src.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if !matches!(
            &k,
            Value::Integer(UV_MULTI) | Value::Integer(c::CURLOPT_MIMEPOST)
        ) {
            dst.raw_set(k, v)?;
        }
    }
    Ok(())
}

/// An HTTP/2 server push: an Easy object for the handle libcurl made from
/// `parent`'s options, with `parent`'s Lua side.
pub fn adopt_pushed(lua: &Lua, pud: &LuaAnyUserData, pushed: Pushed) -> R<LuaAnyUserData> {
    let pe = inner_of(pud)?;
    let ph = pe
        .handle()
        .ok_or_else(|| Fail::Usage("the parent easy handle is closed".into()))?;
    let ne = new_state(|w| pushed.adopt(&ph, w)).map_err(fault("server push"))?;
    let nud = wrap(lua, ne)?;
    copy_lua_state(pud, &nud)?;
    Ok(nud)
}

/// Forgets a refused push's handle (libcurl frees it) and Lua values.
pub fn disown(lua: &Lua, ud: &LuaAnyUserData) -> R<()> {
    inner_of(ud)?.disown();
    clear_uv(lua, ud, false)
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let m = lua.create_table()?;
    reg(lua, &m, "SetOpt", "easy:SetOpt", setopt::set_opt)?;
    reg(lua, &m, "GetInfo", "easy:GetInfo", get_info)?;
    reg(lua, &m, "Perform", "easy:Perform", perform)?;
    reg(lua, &m, "Close", "easy:Close", close)?;
    reg(lua, &m, "Reset", "easy:Reset", reset)?;
    reg(lua, &m, "Pause", "easy:Pause", pause)?;
    reg(lua, &m, "Upkeep", "easy:Upkeep", upkeep)?;
    reg(lua, &m, "Escape", "easy:Escape", |l, a| {
        escaping(l, a, false)
    })?;
    reg(lua, &m, "Unescape", "easy:Unescape", |l, a| {
        escaping(l, a, true)
    })?;
    reg(lua, &m, "Send", "easy:Send", send)?;
    reg(lua, &m, "Recv", "easy:Recv", recv)?;
    reg(
        lua,
        &m,
        "TransferError",
        "easy:TransferError",
        transfer_error,
    )?;
    reg(lua, &m, "WsSend", "easy:WsSend", ws::ws_send)?;
    reg(lua, &m, "WsRecv", "easy:WsRecv", ws::ws_recv)?;
    reg(lua, &m, "WsMeta", "easy:WsMeta", ws::ws_meta)?;
    reg(lua, &m, "DupHandle", "easy:DupHandle", dup_handle)?;
    raw_t.raw_set("Easy", m)?;
    reg_fn(lua, raw_t, "new_easy", "curl.Easy", |lua, _a| create(lua))?;
    // `curl.Mime(easy)`: libcurl makes a mime with an easy handle.
    reg_fn(lua, raw_t, "new_mime", "curl.Mime", |lua, a| {
        let (_ud, e) = a.arg::<Easy>(1, "easy")?;
        let h = e.handle().ok_or_else(|| {
            Fail::Usage("bad argument #1 'easy' (the easy handle is closed)".into())
        })?;
        let m = ffi::Mime::new(&h).map_err(fault("curl_mime_init"))?;
        crate::mime::wrap(lua, m)
    })?;
    Ok(())
}
