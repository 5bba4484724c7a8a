//! Errors: the `Fail` type every binding method returns, and its conversion to
//! the Lua `curl.Error` value (or, for callback errors, the original value).
//!
//! Every raw method returns `true, results...` or `false, err` to the Lua layer
//! (src/curl.lua), which raises `err` with `error(err, 0)`. That is how a Lua
//! value raised in a callback reaches the script unchanged: mlua would wrap it.

use crate::consts;
use mlua::prelude::*;
use mlua::state::RawLua;
use mlua::{FromLua, FromLuaMulti, IntoLuaMulti, MultiValue, Value};
use std::os::raw::c_int;

pub enum Fail {
    /// A value raised by a Lua callback: re-raised unchanged.
    Raise(Value),
    /// Misuse: wrong argument, closed handle, forbidden call.
    Usage(String),
    /// A `CURLcode`, with the error-buffer detail when there is one.
    Easy(i32, Option<String>),
    /// A `CURLMcode`, with an optional explanation.
    Multi(i32, Option<String>),
    /// A `CURLSHcode`.
    Share(i32, Option<String>),
    /// A `CURLUcode`.
    Url(i32, Option<String>),
    /// Something inside mlua (out of memory and the like).
    Lua(LuaError),
}

pub type R<T> = Result<T, Fail>;

impl From<LuaError> for Fail {
    fn from(e: LuaError) -> Self {
        Fail::Lua(e)
    }
}

pub fn usage<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Usage(msg.into()))
}

/// Builds a `curl.Error` table (metatable from the Lua layer).
pub fn error_value(
    lua: &Lua,
    kind: &str,
    code: i64,
    name: &str,
    message: &str,
    method: &str,
) -> LuaResult<Value> {
    let t = lua.create_table_with_capacity(0, 5)?;
    t.raw_set("kind", kind)?;
    t.raw_set("code", code)?;
    t.raw_set("name", name)?;
    t.raw_set("message", message)?;
    t.raw_set("method", method)?;
    if let Ok(mt) = lua.named_registry_value::<LuaTable>("curl.Error") {
        t.set_metatable(Some(mt))?;
    }
    Ok(Value::Table(t))
}

impl Fail {
    pub fn into_value(self, lua: &Lua, method: &str) -> LuaResult<Value> {
        match self {
            Fail::Raise(v) => Ok(v),
            Fail::Usage(m) => error_value(lua, "usage", -1, "USAGE", &m, method),
            Fail::Easy(code, detail) => {
                let text = crate::raw::easy_strerror(code);
                coded(
                    lua,
                    "easy",
                    "CURLE_",
                    code,
                    text,
                    detail.filter(|d| !d.is_empty()),
                    method,
                )
            }
            Fail::Multi(code, detail) => coded(
                lua,
                "multi",
                "CURLM_",
                code,
                crate::raw::multi_strerror(code),
                detail,
                method,
            ),
            Fail::Share(code, detail) => coded(
                lua,
                "share",
                "CURLSHE_",
                code,
                crate::raw::share_strerror(code),
                detail,
                method,
            ),
            Fail::Url(code, detail) => coded(
                lua,
                "url",
                "CURLUE_",
                code,
                crate::raw::url_strerror(code),
                detail,
                method,
            ),
            Fail::Lua(e) => Ok(Value::String(lua.create_string(e.to_string())?)),
        }
    }
}

/// An error value for a libcurl code: its C name, libcurl's text and the detail.
fn coded(
    lua: &Lua,
    kind: &str,
    family: &'static str,
    code: i32,
    text: String,
    detail: Option<String>,
    method: &str,
) -> LuaResult<Value> {
    let msg = match detail {
        Some(d) => format!("{text}: {d}"),
        None => text,
    };
    let name = consts::code_name(lua, family, code as i64);
    error_value(lua, kind, code as i64, &name, &msg, method)
}

/// Turns a method's outcome into `true, ...` or `false, err` for the Lua layer.
pub fn finish<T: IntoLuaMulti>(lua: &Lua, method: &str, r: R<T>) -> LuaResult<Out<T>> {
    match r {
        Ok(v) => Ok(Out::Ok(v)),
        Err(f) => Ok(Out::Err(f.into_value(lua, method)?)),
    }
}

/// Registers `f` as a raw method in `t` under `name`; `method` is the
/// user-facing name used in error messages (`"multi:SocketAction"`).
pub fn reg<F, T>(lua: &Lua, t: &LuaTable, name: &str, method: &'static str, f: F) -> LuaResult<()>
where
    F: Fn(&Lua, Args) -> R<T> + 'static,
    T: IntoLuaMulti,
{
    let func = lua.create_function(move |lua, args: Args| finish(lua, method, f(lua, args)))?;
    t.raw_set(name, func)
}

/// Like `reg`, for module functions (`curl.EasyStrError(code)`): the first
/// argument is numbered #1, as for methods after `self`.
pub fn reg_fn<F, T>(
    lua: &Lua,
    t: &LuaTable,
    name: &str,
    method: &'static str,
    f: F,
) -> LuaResult<()>
where
    F: Fn(&Lua, Args) -> R<T> + 'static,
    T: IntoLuaMulti,
{
    let func =
        lua.create_function(move |lua, args: Args| finish(lua, method, f(lua, args.shifted())))?;
    t.raw_set(name, func)
}

/// Positional arguments with checks that produce usage errors. Index 0 is
/// `self` for methods; user-facing argument numbers start at 1 after it.
pub struct Args {
    vals: [Value; ARGS_KEPT],
    n: usize,
}

/// Arguments kept (self + 4): no method or function reads more; extra ones
/// are ignored. (Each slot costs a copy and a drop on every call.)
const ARGS_KEPT: usize = 5;

impl Args {
    fn from_iter(it: impl Iterator<Item = Value>, n: usize) -> Args {
        let mut vals: [Value; ARGS_KEPT] = Default::default();
        for (slot, v) in vals.iter_mut().zip(it) {
            *slot = v;
        }
        Args { vals, n }
    }

    /// For module functions: an empty `self`, so the first argument is #1.
    fn shifted(mut self) -> Args {
        self.vals.rotate_right(1);
        self.vals[0] = Value::Nil;
        self.n += 1;
        self
    }
}

impl FromLuaMulti for Args {
    fn from_lua_multi(values: MultiValue, _lua: &Lua) -> LuaResult<Self> {
        let n = values.len();
        Ok(Args::from_iter(values.into_iter(), n))
    }

    // Read the arguments straight from the stack into a fixed array: no
    // heap allocation per call (this runs on every method call).
    unsafe fn from_stack_multi(nvals: c_int, lua: &RawLua) -> LuaResult<Self> {
        let n = nvals.max(0) as usize;
        let mut vals: [Value; ARGS_KEPT] = Default::default();
        for (k, slot) in vals.iter_mut().enumerate().take(n) {
            // SAFETY: mlua calls this with `nvals` arguments on the stack;
            // -nvals + k addresses argument k.
            *slot = unsafe { Value::from_stack(-nvals + k as c_int, lua)? };
        }
        Ok(Args { vals, n })
    }
}

/// A method's outcome for the Lua layer: `true, results...` or
/// `false, err`, pushed without building a `MultiValue`.
pub enum Out<T> {
    Ok(T),
    Err(Value),
}

impl<T: IntoLuaMulti> IntoLuaMulti for Out<T> {
    fn into_lua_multi(self, lua: &Lua) -> LuaResult<MultiValue> {
        match self {
            Out::Ok(v) => (true, v).into_lua_multi(lua),
            Out::Err(e) => (false, e).into_lua_multi(lua),
        }
    }

    unsafe fn push_into_stack_multi(self, lua: &RawLua) -> LuaResult<c_int> {
        // SAFETY: forwards to mlua's own tuple implementations with the
        // RawLua mlua handed us.
        unsafe {
            match self {
                Out::Ok(v) => (true, v).push_into_stack_multi(lua),
                Out::Err(e) => (false, e).push_into_stack_multi(lua),
            }
        }
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) => "light userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::UserData(ud) => {
            if ud.is::<crate::multi::Multi>() {
                "curl.Multi"
            } else if ud.is::<crate::easy::Easy>() {
                "curl.Easy"
            } else if ud.is::<crate::poller::Poller>() {
                "curl.Poller"
            } else if ud.is::<crate::share::Share>() {
                "curl.Share"
            } else if ud.is::<crate::url::Url>() {
                "curl.URL"
            } else if ud.is::<crate::mime::Mime>() {
                "curl.Mime"
            } else if ud.is::<crate::mime::MimePart>() {
                "curl.MimePart"
            } else if ud.is::<crate::buffer::Buffer>() {
                "curl.Buffer"
            } else {
                "userdata"
            }
        }
        _ => "value",
    }
}

fn bad<T>(n: usize, name: &str, expected: &str, got: &Value) -> R<T> {
    usage(format!(
        "bad argument #{n} '{name}' (expected {expected}, got {})",
        type_name(got)
    ))
}

impl Args {
    pub fn get(&self, i: usize) -> Value {
        if i < self.n && i < ARGS_KEPT {
            self.vals[i].clone()
        } else {
            Value::Nil
        }
    }
    /// Argument `i` without copying it (a copy of a reference value costs
    /// an allocation in mlua).
    pub fn get_ref(&self, i: usize) -> &Value {
        const NIL: &Value = &Value::Nil;
        if i < self.n && i < ARGS_KEPT {
            &self.vals[i]
        } else {
            NIL
        }
    }
    pub fn given(&self, i: usize) -> bool {
        i < self.n
    }
    /// The `self` userdata of type `T`.
    pub fn this<T: 'static>(&self, what: &str) -> R<&LuaAnyUserData> {
        match self.vals.first().filter(|_| self.n > 0) {
            Some(Value::UserData(ud)) if ud.is::<T>() => Ok(ud),
            other => usage(format!(
                "bad self (expected {what}, got {}); call it with ':'",
                type_name(other.unwrap_or(&Value::Nil))
            )),
        }
    }
    pub fn int(&self, i: usize, name: &str) -> R<i64> {
        let v = self.get(i);
        to_int(&v).map_or_else(|| bad(i, name, "integer", &v), Ok)
    }
    pub fn opt_int(&self, i: usize, name: &str, default: i64) -> R<i64> {
        match self.get(i) {
            Value::Nil => Ok(default),
            _ => self.int(i, name),
        }
    }
    /// An integer within `min..=max` (so casts to C types never truncate).
    pub fn int_in(&self, i: usize, name: &str, min: i64, max: i64) -> R<i64> {
        let n = self.int(i, name)?;
        if n < min || n > max {
            return usage(format!(
                "bad argument #{i} '{name}' (expected an integer from {min} to {max}, got {n})"
            ));
        }
        Ok(n)
    }
    pub fn opt_int_in(&self, i: usize, name: &str, default: i64, min: i64, max: i64) -> R<i64> {
        match self.get(i) {
            Value::Nil => Ok(default),
            _ => self.int_in(i, name, min, max),
        }
    }
    /// A C `int` argument.
    pub fn c_int(&self, i: usize, name: &str) -> R<i32> {
        Ok(self.int_in(i, name, i32::MIN as i64, i32::MAX as i64)? as i32)
    }
    /// A descriptor, or -1 (`CURL_SOCKET_TIMEOUT`) where `allow_timeout`.
    pub fn fd(&self, i: usize, name: &str, allow_timeout: bool) -> R<i32> {
        let min = if allow_timeout { -1 } else { 0 };
        Ok(self.int_in(i, name, min, i32::MAX as i64)? as i32)
    }
    /// `self` of type `T` and `f` applied to it, with one type check (a
    /// check costs a metatable lookup in mlua; `this` + `borrow` is two).
    /// `gone` is the message for a destructed object.
    pub fn this_with<T: 'static, U>(
        &self,
        what: &str,
        gone: &str,
        f: impl FnOnce(&T) -> U,
    ) -> R<(&LuaAnyUserData, U)> {
        let v = self.get_ref(0);
        borrow_as(v, gone, || what.to_string(), f).unwrap_or_else(|| {
            usage(format!(
                "bad self (expected {what}, got {}); call it with ':'",
                type_name(v)
            ))
        })
    }
    /// Argument `i` of type `T` and `f` applied to it, with one type check.
    pub fn ud_with<T: 'static, U>(
        &self,
        i: usize,
        name: &str,
        what: &str,
        gone: &str,
        f: impl FnOnce(&T) -> U,
    ) -> R<(&LuaAnyUserData, U)> {
        let v = self.get_ref(i);
        let place = || format!("bad argument #{i} '{name}'");
        borrow_as(v, gone, place, f).unwrap_or_else(|| bad(i, name, what, v))
    }
    pub fn ud<T: 'static>(&self, i: usize, name: &str, what: &str) -> R<&LuaAnyUserData> {
        match self.get_ref(i) {
            Value::UserData(ud) if ud.is::<T>() => Ok(ud),
            v => bad(i, name, what, v),
        }
    }
}

/// `f` applied to `v` borrowed as a `T`; `None` if `v` is not a `T`. A
/// destructed `T` gives `gone`, any other borrow failure `"{place()}: ..."`.
fn borrow_as<'v, T: 'static, U>(
    v: &'v Value,
    gone: &str,
    place: impl FnOnce() -> String,
    f: impl FnOnce(&T) -> U,
) -> Option<R<(&'v LuaAnyUserData, U)>> {
    let Value::UserData(ud) = v else {
        return None;
    };
    match ud.borrow::<T>() {
        Ok(b) => Some(Ok((ud, f(&b)))),
        Err(LuaError::UserDataDestructed) => Some(usage(gone)),
        Err(e) if ud.is::<T>() => Some(usage(format!("{}: {e}", place()))),
        Err(_) => None,
    }
}

/// A Lua number that is an exact integer.
pub fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.fract() == 0.0 && n.is_finite() && n.abs() < 9.3e18 => {
            Some(*n as i64)
        }
        _ => None,
    }
}
