//! The call context. Every binding method that calls a libcurl function able
//! to call back runs that call with a `Ctx` set in the handle's slot. A
//! callback finds the context through its handle; when none is set (garbage
//! collection, teardown) it does nothing and calls no Lua. Errors raised by
//! callbacks are parked in the context and raised by the method once
//! libcurl has returned, as the same value.
//!
//! Also here: what a Lua callback's result means to libcurl, for the
//! conventions several callbacks share.

use crate::error::Fail;
use crate::ffi::OutBuf;
use crate::luaapi::raw::{handle, handle_of, Holder};
use crate::luaapi::scoped::{Family, Scoped};
use crate::luaapi::{to_int, type_name};
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::cell::{OnceCell, RefCell};
use std::os::raw::c_int;

/// The key of a multi's `CURL*` address → easy object table in its user
/// value (the multi's layout; callbacks look easies up through it).
pub const UV_HANDLES: i64 = 1;

/// Per-Lua-state values the callbacks need, kept in mlua's app data.
pub struct Shared {
    pub pcall: LuaFunction,
    /// `luaapi::raw::bytes_caller`'s function.
    pub bytes_caller: LuaFunction,
}

/// The context as a family of types over its lifetime (it borrows from the
/// frame of the method that made it).
pub struct Context;

impl Family for Context {
    type Of<'a> = Ctx<'a>;
}

/// Where a handle keeps the context of the call running on it.
pub type CtxSlot = Scoped<Context>;

/// Something whose callbacks find their context through it (an easy, for
/// the data callbacks of the mime it posts).
pub trait CtxSource {
    /// Runs `f` with the context of the call driving this object.
    fn with_ctx_dyn(&self, f: &mut dyn FnMut(Option<&Ctx<'_>>));
    /// The address the object's callbacks and messages name it by.
    fn addr(&self) -> usize;
}

pub struct Ctx<'a> {
    pub lua: &'a Lua,
    /// `pcall`, fetched on the first callback of the call (most calls run
    /// none from Lua).
    pcall: RefCell<Option<LuaFunction>>,
    /// `Shared::bytes_caller`, fetched on first use.
    bytes_caller: RefCell<Option<LuaFunction>>,
    /// The multi whose method is running, if any.
    pub multi: Option<Holder<'a>>,
    /// An mlua handle of the multi, made on first use (`multi_ud`).
    multi_ud: OnceCell<Option<LuaAnyUserData>>,
    /// The easy of a call on the easy alone (`Perform`, ...), with its
    /// handle's address.
    pub easy: Option<(&'a LuaAnyUserData, usize)>,
    err: RefCell<Option<Fail>>,
}

impl<'a> Ctx<'a> {
    pub fn new(lua: &'a Lua) -> Self {
        Ctx {
            lua,
            pcall: RefCell::new(None),
            bytes_caller: RefCell::new(None),
            multi: None,
            multi_ud: OnceCell::new(),
            easy: None,
            err: RefCell::new(None),
        }
    }

    /// Runs `f` with this context set in `slot`; returns its result and
    /// the first error a callback parked.
    pub fn run<T>(self, slot: &CtxSlot, f: impl FnOnce() -> T) -> (T, Option<Fail>) {
        let r = slot.set(&self, f);
        (r, self.take_err())
    }

    /// Keeps the first error; later ones in the same call are dropped.
    pub fn park(&self, f: Fail) {
        let mut e = self.err.borrow_mut();
        if e.is_none() {
            *e = Some(f);
        }
    }

    /// A callback panicked (a bug): parked as an error.
    pub fn park_panic(&self, msg: String) {
        self.park(Fail::Usage(format!(
            "internal error (panic in callback): {msg}"
        )));
    }

    pub fn take_err(&self) -> Option<Fail> {
        self.err.borrow_mut().take()
    }

    /// `Shared::bytes_caller` (cached for the rest of the call).
    pub fn bytes_caller(&self) -> Option<LuaFunction> {
        if self.bytes_caller.borrow().is_none() {
            let f = self
                .lua
                .app_data_ref::<Shared>()
                .map(|s| s.bytes_caller.clone());
            *self.bytes_caller.borrow_mut() = f;
        }
        self.bytes_caller.borrow().clone()
    }

    /// Calls `f(args...)` in protected mode. On error the error value is
    /// parked unchanged and `None` is returned.
    pub fn call(&self, f: LuaFunction, args: MultiValue) -> Option<MultiValue> {
        self.call_err(f, args).ok()
    }

    /// `call`, giving back on error the value the function raised (`None`
    /// for an error of mlua's own), parked as well.
    pub fn call_err(&self, f: LuaFunction, args: MultiValue) -> Result<MultiValue, Option<Value>> {
        if self.pcall.borrow().is_none() {
            let p = self.lua.app_data_ref::<Shared>().map(|s| s.pcall.clone());
            *self.pcall.borrow_mut() = p;
        }
        let cached = self.pcall.borrow().clone();
        let Some(pcall) = cached else {
            self.park(Fail::Usage("curl module state missing".into()));
            return Err(None);
        };
        let mut a = args;
        a.push_front(Value::Function(f));
        match pcall.call::<MultiValue>(a) {
            Ok(mut r) => match r.pop_front() {
                Some(Value::Boolean(true)) => Ok(r),
                _ => {
                    let v = r.pop_front().unwrap_or(Value::Nil);
                    self.park(Fail::Raise(v.clone()));
                    Err(Some(v))
                }
            },
            Err(e) => {
                self.park(Fail::Lua(e));
                Err(None)
            }
        }
    }

    /// An mlua handle of the running multi (the rarer callbacks need one;
    /// the frequent ones use `multi`, which may be a pinned value).
    pub fn multi_ud(&self) -> Option<&LuaAnyUserData> {
        match self.multi? {
            Holder::Ud(u) => Some(u),
            h => self
                .multi_ud
                .get_or_init(|| handle(self.lua, h).ok())
                .as_ref(),
        }
    }

    /// The Easy userdata for a `CURL*` seen in a callback: the easy the call
    /// runs on, or one added to the running multi. `None` for handles
    /// libcurl made itself.
    pub fn easy_ud(&self, addr: usize) -> Option<LuaAnyUserData> {
        if let Some((ud, a)) = self.easy {
            if a == addr {
                return Some(ud.clone());
            }
        }
        let m = self.multi?;
        handle_of(self.lua, m, UV_HANDLES, addr).ok().flatten()
    }

    // ------------------------------------------------ callback results

    /// Parks a usage error for a callback's unusable return value.
    pub fn bad_return(&self, what: &str, v: &Value, expected: &str) {
        let who = if what.is_empty() {
            "a callback".to_string()
        } else {
            format!("the {what} callback")
        };
        let got = match to_int(v) {
            Some(n) => format!("the number {n}"),
            None => format!("a {}", type_name(v)),
        };
        self.park(Fail::Usage(format!(
            "{who} returned {got} (expected {expected})"
        )));
    }

    /// A callback whose Lua result is "nothing/true = `ok`", "false =
    /// `on_false`", "a number = that code"; `None` (it raised) gives
    /// `on_error`.
    pub fn code_result(
        &self,
        r: Option<MultiValue>,
        ok: c_int,
        on_false: c_int,
        on_error: c_int,
    ) -> c_int {
        let Some(r) = r else {
            return on_error;
        };
        match first(&r) {
            Value::Nil | Value::Boolean(true) => ok,
            Value::Boolean(false) => on_false,
            v => match to_int(&v) {
                Some(n) if (0..=c_int::MAX as i64).contains(&n) => n as c_int,
                _ => {
                    self.bad_return(
                        "",
                        &v,
                        "nothing, a boolean or one of the callback's CURL_* codes",
                    );
                    on_error
                }
            },
        }
    }

    /// A read callback's Lua result (a string, nil or "" at the end, false
    /// or `CURL_READFUNC_ABORT` / `_PAUSE`) as libcurl's return value; what
    /// does not fit in `buf` is kept in `pending`.
    pub fn read_result(
        &self,
        r: &MultiValue,
        buf: &OutBuf<'_>,
        pending: &RefCell<Vec<u8>>,
    ) -> usize {
        use crate::options::c;
        let abort = c::CURL_READFUNC_ABORT as usize;
        let v = first(r);
        match &v {
            Value::Nil => 0,
            Value::Boolean(false) => abort,
            Value::String(s) => {
                let b = s.as_bytes();
                let n = buf.fill(&b);
                if n < b.len() {
                    *pending.borrow_mut() = b[n..].to_vec();
                }
                n
            }
            _ => match to_int(&v) {
                Some(n) if n == c::CURL_READFUNC_ABORT || n == c::CURL_READFUNC_PAUSE => n as usize,
                _ => {
                    self.bad_return(
                        "read",
                        &v,
                        "a string, nil, CURL_READFUNC_ABORT or CURL_READFUNC_PAUSE",
                    );
                    abort
                }
            },
        }
    }
}

/// A callback's first result.
pub fn first(r: &MultiValue) -> Value {
    r.front().cloned().unwrap_or(Value::Nil)
}

/// Hands out what a read callback returned beyond the last buffer.
pub fn take_pending(pending: &RefCell<Vec<u8>>, buf: &OutBuf<'_>) -> Option<usize> {
    let mut p = pending.borrow_mut();
    if p.is_empty() {
        return None;
    }
    let n = buf.fill(&p);
    p.drain(..n);
    Some(n)
}
