//! Errors: the `Fail` type every binding method returns, its conversion to
//! the Lua `curl.Error` value (or, for callback errors, the original value),
//! and method registration (which applies that conversion).
//!
//! Every raw method returns `true, results...` or `false, err` to the Lua
//! layer (src/curl.lua), whose wrapper raises `err` as is. That is how a
//! Lua value raised in a callback reaches the script unchanged: mlua would
//! wrap it.

use crate::ffi::{self, Fault};
use crate::luaapi::{Args, Out, Usage};
use crate::options;
use mlua::prelude::*;
use mlua::{IntoLuaMulti, Value};

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

impl From<Usage> for Fail {
    fn from(u: Usage) -> Self {
        Fail::Usage(u.0)
    }
}

pub fn usage<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail::Usage(msg.into()))
}

/// An FFI failure of a call about `what` (an option name, a function):
/// libcurl's code with that detail, or a refusal as a usage error.
pub fn fault(what: &str) -> impl Fn(Fault) -> Fail + '_ {
    move |f| match f {
        Fault::Code(rc) => Fail::Easy(rc, Some(what.to_string())),
        Fault::Refused(why) => Fail::Usage(format!("{what}: {why}")),
        Fault::Multi(rc) => Fail::Multi(rc, None),
    }
}

/// A `CURLMcode` failure.
pub fn multi_fail(rc: ffi::CURLMcode) -> Fail {
    Fail::Multi(rc, None)
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
            Fail::Easy(code, detail) => coded(
                lua,
                "easy",
                "CURLE_",
                code,
                ffi::easy_strerror(code),
                detail.filter(|d| !d.is_empty()),
                method,
            ),
            Fail::Multi(code, detail) => coded(
                lua,
                "multi",
                "CURLM_",
                code,
                ffi::multi_strerror(code),
                detail,
                method,
            ),
            Fail::Share(code, detail) => coded(
                lua,
                "share",
                "CURLSHE_",
                code,
                ffi::share_strerror(code),
                detail,
                method,
            ),
            Fail::Url(code, detail) => coded(
                lua,
                "url",
                "CURLUE_",
                code,
                ffi::url_strerror(code),
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
    let name = options::code_name(lua, family, code as i64);
    error_value(lua, kind, code as i64, &name, &msg, method)
}

/// `curl.EasyError(code[, message[, method]])`, `curl.MultiError(...)`: a
/// `curl.Error` as the binding makes them (name from the one code table,
/// message by default libcurl's text), for Lua code that reports codes.
pub fn made_error(lua: &Lua, a: &Args, multi: bool) -> R<Value> {
    let code = a.c_int(1, "code")?;
    let message = a.opt_text(2, "message")?;
    let method = a.opt_text(3, "method")?;
    let (kind, family, text) = if multi {
        ("multi", "CURLM_", ffi::multi_strerror(code))
    } else {
        ("easy", "CURLE_", ffi::easy_strerror(code))
    };
    let name = options::code_name(lua, family, code as i64);
    let default_method = if multi {
        "curl.MultiError"
    } else {
        "curl.EasyError"
    };
    Ok(error_value(
        lua,
        kind,
        code as i64,
        &name,
        message.as_deref().unwrap_or(&text),
        method.as_deref().unwrap_or(default_method),
    )?)
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
    let func = crate::luaapi::function(lua, move |lua, args: Args| {
        finish(lua, method, f(lua, args))
    })?;
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
    let func = crate::luaapi::function(lua, move |lua, args: Args| {
        finish(lua, method, f(lua, args.shifted()))
    })?;
    t.raw_set(name, func)
}
