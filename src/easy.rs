//! `curl.Easy`: one libcurl easy handle.
//!
//! Lua callbacks and their userdata live in the userdata's user-value table
//! (GC-visible, so a callback that captures its own handle is still
//! collected). The Rust side keeps what libcurl borrows: slists, POSTFIELDS
//! bytes, the error buffer.

use crate::callbacks;
use crate::consts::{it, ot, tables, EasyOpt};
use crate::ctx::{Ctx, CtxSlot};
use crate::error::{reg, reg_fn, to_int, type_name, usage, Args, Fail, R};
use crate::multi::{self, MultiInner};
use crate::raw::{self, k, EasyPtr, ErrBuf, Slist};
use mlua::prelude::*;
use mlua::{MultiValue, UserData, UserDataFields, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::c_void;
use std::rc::Rc;

pub const CLASS: &str = "curl.Easy";

pub struct EasyInner {
    raw: Cell<Option<EasyPtr>>,
    /// The multi this easy is added to (strong; the multi holds us back, and
    /// whichever side closes first breaks the cycle).
    pub multi: RefCell<Option<Rc<MultiInner>>>,
    /// Context of a running `easy:Perform`.
    pub slot: CtxSlot,
    slists: RefCell<HashMap<i32, Slist>>,
    postfields: RefCell<Option<Vec<u8>>>,
    /// Replaced slists / bodies libcurl may still point at until the
    /// transfer using them is over; freed when the handle is idle.
    graveyard: RefCell<Vec<Box<dyn std::any::Any>>>,
    errbuf: ErrBuf,
}

pub struct Easy(pub Rc<EasyInner>);

impl Drop for Easy {
    fn drop(&mut self) {
        // Garbage collection: detach from the multi and free, calling no Lua
        // (no context is installed, so trampolines do nothing).
        self.0.close_raw();
    }
}

impl Drop for EasyInner {
    fn drop(&mut self) {
        if let Some(h) = self.raw.take() {
            raw::easy_cleanup(h);
        }
    }
}

impl UserData for Easy {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

impl EasyInner {
    pub fn raw(&self) -> Option<EasyPtr> {
        self.raw.get()
    }

    pub fn addr(&self) -> usize {
        self.raw.get().map_or(0, |h| h.addr())
    }

    /// Runs `f` with the context of the call that is driving this easy:
    /// its own `Perform`, or a call on the multi it is added to.
    pub fn with_ctx<T>(&self, f: impl FnOnce(Option<&Ctx<'_>>) -> T) -> T {
        if let Some(c) = self.slot.get() {
            return f(Some(c));
        }
        let m = self.multi.borrow().clone();
        match &m {
            Some(m) => f(m.slot.get()),
            None => f(None),
        }
    }

    /// Detaches from the multi (if any) and frees the libcurl handle. Used by
    /// `__gc`; `Close` does the Lua-side part first.
    pub fn close_raw(&self) {
        let m = self.multi.borrow_mut().take();
        if let (Some(m), Some(h)) = (m, self.raw.get()) {
            m.forget(h);
        }
        if let Some(h) = self.raw.take() {
            raw::easy_cleanup(h);
        }
        self.slists.borrow_mut().clear();
        self.postfields.borrow_mut().take();
        self.graveyard.borrow_mut().clear();
    }

    /// Frees replaced option data once no transfer can be using it.
    pub fn flush_graveyard(&self) {
        let old = std::mem::take(&mut *self.graveyard.borrow_mut());
        drop(old);
    }

    fn bury(&self, x: Box<dyn std::any::Any>) {
        self.graveyard.borrow_mut().push(x);
    }
}

fn new_inner() -> R<EasyInner> {
    raw::global_init();
    let h = raw::easy_init()
        .ok_or_else(|| Fail::Usage("curl_easy_init failed (out of memory)".into()))?;
    let e = EasyInner {
        raw: Cell::new(Some(h)),
        multi: RefCell::new(None),
        slot: CtxSlot::default(),
        slists: RefCell::new(HashMap::new()),
        postfields: RefCell::new(None),
        graveyard: RefCell::new(Vec::new()),
        errbuf: ErrBuf::default(),
    };
    init_handle(&e, h);
    Ok(e)
}

/// What every handle gets from the module (also after `Reset`).
fn init_handle(e: &EasyInner, h: EasyPtr) {
    raw::setopt_ptr(h, k::CURLOPT_ERRORBUFFER, e.errbuf.ptr());
}

pub fn create(lua: &Lua) -> R<LuaAnyUserData> {
    let inner = new_inner()?;
    let ud = lua.create_userdata(Easy(Rc::new(inner)))?;
    ud.set_user_value(lua.create_table()?)?;
    Ok(ud)
}

/// `self`, its inner state and its live handle, or a usage error.
pub fn open(args: &Args) -> R<(LuaAnyUserData, Rc<EasyInner>, EasyPtr)> {
    let ud = args.this::<Easy>(CLASS)?;
    let inner = ud
        .borrow::<Easy>()
        .map_err(|_| Fail::Usage("the easy handle was garbage-collected".into()))?
        .0
        .clone();
    let h = inner
        .raw()
        .ok_or_else(|| Fail::Usage("the easy handle is closed".into()))?;
    Ok((ud, inner, h))
}

pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<EasyInner>> {
    Ok(ud
        .borrow::<Easy>()
        .map_err(|_| Fail::Usage("the easy handle was garbage-collected".into()))?
        .0
        .clone())
}

fn uv(ud: &LuaAnyUserData) -> R<LuaTable> {
    Ok(ud.user_value::<LuaTable>()?)
}

fn check(rc: raw::CURLcode, what: &str) -> R<()> {
    if rc == raw::CURLE_OK {
        Ok(())
    } else {
        Err(Fail::Easy(rc, Some(what.to_string())))
    }
}

fn lua_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => Some(v.to_string().ok()?.into_bytes()),
        _ => None,
    }
}

fn bad_value<T>(opt: &str, expected: &str, got: &Value) -> R<T> {
    usage(format!(
        "bad argument #2 'value' for {opt} (expected {expected}, got {})",
        type_name(got)
    ))
}

/// Converts a long option's value: integer, or boolean (1 / 0).
pub fn long_value(opt: &str, v: &Value) -> R<i64> {
    match v {
        Value::Boolean(b) => Ok(*b as i64),
        _ => to_int(v).map_or_else(|| bad_value(opt, "integer or boolean", v), Ok),
    }
}

fn string_list(opt: &str, v: &Value) -> R<Vec<CString>> {
    let Value::Table(t) = v else {
        return bad_value(opt, "array of strings or nil", v);
    };
    let mut out = Vec::new();
    for i in 1..=t.raw_len() {
        let item: Value = t.raw_get(i)?;
        let Some(b) = lua_bytes(&item) else {
            return usage(format!(
                "bad argument #2 'value' for {opt}: item {i} is a {} (expected string)",
                type_name(&item)
            ));
        };
        out.push(
            CString::new(b)
                .map_err(|_| Fail::Usage(format!("{opt}: item {i} contains a NUL byte")))?,
        );
    }
    Ok(out)
}

/// `easy:SetOpt(option, value[, userdata])`.
fn set_opt(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let id = args.int(1, "option")? as i32;
    let t = tables(lua);
    let Some(meta) = t.easy.get(&id) else {
        return usage(format!(
            "bad argument #1 'option' (unknown easy option {id})"
        ));
    };
    let userdata = if args.given(3) {
        Some(args.get(3))
    } else {
        None
    };
    set_value(lua, &ud, &e, h, id, meta, args.get(2), userdata)
}

#[allow(clippy::too_many_arguments)]
fn set_value(
    _lua: &Lua,
    ud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
    id: i32,
    meta: &EasyOpt,
    v: Value,
    userdata: Option<Value>,
) -> R<()> {
    let name = format!("CURLOPT_{}", meta.name);
    let opt = name.as_str();
    match id {
        k::CURLOPT_WRITEFUNCTION | k::CURLOPT_HEADERFUNCTION => {
            let header = id == k::CURLOPT_HEADERFUNCTION;
            let (fkey, dkey) = if header {
                ("headerfunction", "headerdata")
            } else {
                ("writefunction", "writedata")
            };
            let data_opt = if header {
                k::CURLOPT_HEADERDATA
            } else {
                k::CURLOPT_WRITEDATA
            };
            let cb: raw::DataCb = if header {
                callbacks::header_cb
            } else {
                callbacks::write_cb
            };
            match &v {
                Value::Function(_) => {
                    check(raw::setopt_datacb(h, id, Some(cb)), opt)?;
                    check(
                        raw::setopt_ptr(h, data_opt as i32, e as *const EasyInner as *const c_void),
                        opt,
                    )?;
                }
                Value::Nil => {
                    check(raw::setopt_datacb(h, id, None), opt)?;
                    check(raw::setopt_ptr(h, data_opt as i32, std::ptr::null()), opt)?;
                }
                _ => return bad_value(opt, "function or nil", &v),
            }
            let t = uv(ud)?;
            t.raw_set(fkey, v)?;
            if let Some(d) = userdata {
                t.raw_set(dkey, d)?;
            }
            return Ok(());
        }
        k::CURLOPT_WRITEDATA | k::CURLOPT_HEADERDATA => {
            let key = if id == k::CURLOPT_HEADERDATA {
                "headerdata"
            } else {
                "writedata"
            };
            uv(ud)?.raw_set(key, v)?;
            return Ok(());
        }
        k::CURLOPT_PRIVATE => {
            uv(ud)?.raw_set("private", v)?;
            return Ok(());
        }
        k::CURLOPT_ERRORBUFFER => {
            return usage(format!(
                "{opt} is managed by the module: error details are part of raised errors"
            ));
        }
        k::CURLOPT_POSTFIELDS | k::CURLOPT_COPYPOSTFIELDS => {
            // libcurl does not copy POSTFIELDS: keep the bytes, and give
            // libcurl their length so binary bodies work.
            return match &v {
                Value::Nil => {
                    check(
                        raw::setopt_ptr(h, k::CURLOPT_POSTFIELDS, std::ptr::null()),
                        opt,
                    )?;
                    if let Some(old) = e.postfields.borrow_mut().take() {
                        e.bury(Box::new(old));
                    }
                    Ok(())
                }
                _ => {
                    let Some(bytes) = lua_bytes(&v) else {
                        return bad_value(opt, "string or nil", &v);
                    };
                    check(
                        raw::setopt_off_t(h, k::CURLOPT_POSTFIELDSIZE_LARGE, bytes.len() as i64),
                        opt,
                    )?;
                    check(
                        raw::setopt_ptr(h, k::CURLOPT_POSTFIELDS, bytes.as_ptr() as *const c_void),
                        opt,
                    )?;
                    if let Some(old) = e.postfields.borrow_mut().replace(bytes) {
                        e.bury(Box::new(old));
                    }
                    Ok(())
                }
            };
        }
        _ => {}
    }
    match meta.kind {
        ot::LONG | ot::VALUES => {
            let n = long_value(opt, &v)?;
            check(raw::setopt_long(h, id, n as std::os::raw::c_long), opt)
        }
        ot::OFF_T => {
            let Some(n) = to_int(&v) else {
                return bad_value(opt, "integer", &v);
            };
            check(raw::setopt_off_t(h, id, n), opt)
        }
        ot::STRING => match &v {
            Value::Nil => check(raw::setopt_cstr(h, id, None), opt),
            _ => {
                let Some(b) = lua_bytes(&v) else {
                    return bad_value(opt, "string or nil", &v);
                };
                let c = CString::new(b)
                    .map_err(|_| Fail::Usage(format!("{opt}: the string contains a NUL byte")))?;
                // libcurl copies string options.
                check(raw::setopt_cstr(h, id, Some(&c)), opt)
            }
        },
        ot::SLIST => match &v {
            Value::Nil => {
                check(raw::setopt_ptr(h, id, std::ptr::null()), opt)?;
                if let Some(old) = e.slists.borrow_mut().remove(&id) {
                    e.bury(Box::new(old));
                }
                Ok(())
            }
            _ => {
                let items = string_list(opt, &v)?;
                let l =
                    Slist::new(&items).ok_or_else(|| Fail::Easy(k::CURLE_OUT_OF_MEMORY, None))?;
                check(raw::setopt_ptr(h, id, l.as_ptr()), opt)?;
                if let Some(old) = e.slists.borrow_mut().insert(id, l) {
                    e.bury(Box::new(old));
                }
                Ok(())
            }
        },
        _ => usage(format!(
            "{opt} is not supported by this version of the module"
        )),
    }
}

/// Write and header callbacks, called from the trampolines with the running
/// call's context.
pub fn on_data(e: &EasyInner, ctx: &Ctx<'_>, data: &[u8], header: bool) -> usize {
    let fail = 0usize;
    let Some(ud) = ctx.easy_ud(e.addr()) else {
        return fail;
    };
    let Ok(t) = ud.user_value::<LuaTable>() else {
        return fail;
    };
    let (fkey, dkey) = if header {
        ("headerfunction", "headerdata")
    } else {
        ("writefunction", "writedata")
    };
    let Ok(Value::Function(f)) = t.raw_get::<Value>(fkey) else {
        return fail;
    };
    let s = match ctx.lua.create_string(data) {
        Ok(s) => s,
        Err(err) => {
            ctx.park(Fail::Lua(err));
            return fail;
        }
    };
    let d: Value = t.raw_get(dkey).unwrap_or(Value::Nil);
    let mut args = MultiValue::new();
    args.push_back(Value::String(s));
    args.push_back(d);
    let Some(r) = ctx.call(f, args) else {
        return fail;
    };
    match r.front() {
        None | Some(Value::Nil) | Some(Value::Boolean(true)) => data.len(),
        Some(Value::Boolean(false)) => fail,
        Some(v) => match to_int(v) {
            Some(n) if n == k::CURL_WRITEFUNC_PAUSE as i64 => k::CURL_WRITEFUNC_PAUSE,
            Some(n) if n >= 0 => n as usize,
            _ => {
                let which = if header { "header" } else { "write" };
                ctx.park(Fail::Usage(format!(
                    "the {which} callback returned a {} (expected nothing, true, a byte count or CURL_WRITEFUNC_PAUSE)",
                    type_name(v)
                )));
                fail
            }
        },
    }
}

fn perform(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.busy() {
        return usage("called from inside one of this easy's own callbacks");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first or drive the multi");
    }
    e.flush_graveyard();
    e.errbuf.clear();
    let mut ctx = Ctx::new(lua);
    ctx.easy = Some((&ud, h.addr()));
    let rc = {
        let _g = e.slot.install(&ctx);
        raw::easy_perform(h)
    };
    e.flush_graveyard();
    if let Some(err) = ctx.take_err() {
        return Err(err);
    }
    if rc != raw::CURLE_OK {
        return Err(Fail::Easy(rc, e.errbuf.read()));
    }
    Ok(())
}

fn get_info(lua: &Lua, args: Args) -> R<Value> {
    let (ud, _e, h) = open(&args)?;
    let id = args.int(1, "info")? as i32;
    let t = tables(lua);
    let Some(name) = t.info.get(&id) else {
        return usage(format!("bad argument #1 'info' (unknown CURLINFO {id})"));
    };
    let what = format!("CURLINFO_{name}");
    let fail = |rc| Fail::Easy(rc, Some(what.clone()));
    if id == k::CURLINFO_PRIVATE {
        return Ok(uv(&ud)?.raw_get("private")?);
    }
    Ok(match id & it::TYPEMASK {
        it::STRING => match raw::getinfo_string(h, id).map_err(fail)? {
            Some(b) => Value::String(lua.create_string(&b)?),
            None => Value::Nil,
        },
        it::LONG => Value::Integer(raw::getinfo_long(h, id).map_err(fail)? as i64),
        it::DOUBLE => Value::Number(raw::getinfo_double(h, id).map_err(fail)?),
        it::OFF_T => Value::Integer(raw::getinfo_off_t(h, id).map_err(fail)?),
        it::SOCKET => Value::Integer(raw::getinfo_socket(h, id).map_err(fail)?),
        it::SLIST if name == "COOKIELIST" || name == "SSL_ENGINES" => {
            let items = raw::getinfo_slist(h, id).map_err(fail)?;
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, s) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(s)?)?;
            }
            Value::Table(t)
        }
        _ => {
            return usage(format!(
                "{what} is not supported by this version of the module"
            ))
        }
    })
}

fn close(lua: &Lua, args: Args) -> R<()> {
    let ud = args.this::<Easy>(CLASS)?;
    let e = inner_of(&ud)?;
    if e.raw().is_none() {
        return Ok(()); // Close twice is harmless
    }
    if e.slot.busy() {
        return usage("cannot close an easy from inside its own callback");
    }
    let mut parked = None;
    let m = e.multi.borrow().clone();
    if let Some(m) = m {
        if m.slot.busy() {
            return usage("cannot close an easy while its multi is running a call (inside a callback); close it after the call returns");
        }
        let mud: Option<LuaAnyUserData> = uv(&ud)?.raw_get("multi")?;
        if let Some(mud) = mud {
            parked = multi::detach_easy(lua, &mud, &m, &ud, &e)?;
        }
    }
    e.close_raw();
    let t = uv(&ud)?;
    for k in [
        "writefunction",
        "writedata",
        "headerfunction",
        "headerdata",
        "private",
        "multi",
    ] {
        t.raw_set(k, Value::Nil)?;
    }
    match parked {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn reset(_lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.busy() {
        return usage("cannot reset an easy from inside its own callback");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first");
    }
    raw::easy_reset(h);
    init_handle(&e, h);
    e.slists.borrow_mut().clear();
    e.postfields.borrow_mut().take();
    e.flush_graveyard();
    let t = uv(&ud)?;
    for k in [
        "writefunction",
        "writedata",
        "headerfunction",
        "headerdata",
        "private",
    ] {
        t.raw_set(k, Value::Nil)?;
    }
    Ok(())
}

/// `easy:Pause(bitmask)`: `curl_easy_pause`. Unpausing can deliver buffered
/// data at once, so the write callback may run inside this call.
fn pause(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let mask = args.int(1, "bitmask")? as std::os::raw::c_int;
    let m = e.multi.borrow().clone();
    let inside = e.slot.busy() || m.as_ref().is_some_and(|m| m.slot.busy());
    let (rc, err) = if inside {
        // The running call's context receives any callback error.
        (raw::easy_pause(h, mask), None)
    } else if let Some(m) = m {
        let mud: LuaAnyUserData = uv(&ud)?.raw_get("multi")?;
        multi::with_ctx(lua, &mud, &m, || raw::easy_pause(h, mask))
    } else {
        let mut ctx = Ctx::new(lua);
        ctx.easy = Some((&ud, h.addr()));
        let rc = {
            let _g = e.slot.install(&ctx);
            raw::easy_pause(h, mask)
        };
        (rc, ctx.take_err())
    };
    if let Some(f) = err {
        return Err(f);
    }
    check(rc, "curl_easy_pause")
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let m = lua.create_table()?;
    reg(lua, &m, "SetOpt", "easy:SetOpt", set_opt)?;
    reg(lua, &m, "GetInfo", "easy:GetInfo", get_info)?;
    reg(lua, &m, "Perform", "easy:Perform", perform)?;
    reg(lua, &m, "Close", "easy:Close", close)?;
    reg(lua, &m, "Reset", "easy:Reset", reset)?;
    reg(lua, &m, "Pause", "easy:Pause", pause)?;
    raw_t.raw_set("Easy", m)?;
    reg_fn(lua, raw_t, "new_easy", "curl.Easy", |lua, _a| create(lua))?;
    Ok(())
}
