//! `require "curl"`: libcurl for Lua, built around the multi socket interface.
//!
//! Layers, each importing only from the ones before it (docs/architecture.md):
//! - `ffi`: libcurl and epoll, no Lua: owning handle types, callbacks'
//!   trampolines, guards against libcurl bugs;
//! - `luaapi`: Lua plumbing, no libcurl: arguments, classes, raw stack work;
//! - `options` (the option tables), `error` (`curl.Error` values, method
//!   registration), `ctx` (the call context);
//! - the classes: `share`, `url`, `buffer`, `mime`, `poller`, then `easy`,
//!   then `multi`;
//! - this file, which registers them, and `curl.lua`, the thin Lua layer
//!   that builds the classes and resolves `SetOpt_X`.
//!
//! Policy (see README): callbacks run only inside binding calls; a callback's
//! error is parked and raised by the running method, as the same value; no Lua
//! runs from `__gc`; closing unhooks callbacks before destroying.

// `c_long`, `curl_socket_t` and friends differ in width between platforms;
// casts that are no-ops on Linux x86_64 keep the code portable.
#![allow(clippy::unnecessary_cast)]

mod ffi;
mod luaapi;

mod ctx;
mod error;
mod options;

mod buffer;
mod mime;
mod poller;
mod share;
mod url;

mod easy;
mod multi;

use error::{finish, reg_fn, Fail, R};
use luaapi::raw::{bytes_caller, checked, init_anchor, int_table, patch_collected};
use luaapi::Args;
use mlua::prelude::*;
use mlua::Value;
use options::{ot, tables};

fn names_table(lua: &Lua, items: &[(String, i32)]) -> LuaResult<LuaTable> {
    int_table(lua, items.len(), |i| {
        (items[i].0.as_str(), items[i].1 as i64)
    })
}

fn version_info(lua: &Lua, _a: Args) -> R<LuaTable> {
    let v = ffi::version_info();
    let t = lua.create_table()?;
    t.raw_set("version", v.version)?;
    t.raw_set("version_num", v.version_num)?;
    t.raw_set("host", v.host)?;
    t.raw_set("features", v.features)?;
    t.raw_set("ssl_version", v.ssl_version)?;
    t.raw_set("libz_version", v.libz_version)?;
    t.raw_set("ares", v.ares)?;
    t.raw_set("libidn", v.libidn)?;
    t.raw_set("libssh_version", v.libssh_version)?;
    t.raw_set("brotli_version", v.brotli_version)?;
    t.raw_set("nghttp2_version", v.nghttp2_version)?;
    let p = lua.create_table()?;
    for (i, s) in v.protocols.into_iter().enumerate() {
        p.raw_set(i + 1, s)?;
    }
    t.raw_set("protocols", p)?;
    Ok(t)
}

/// A handle used after its own `__gc` ran (a finalizer resurrected it)
/// raises a usage error, like any other misuse.
fn collected_objects_raise_usage(lua: &Lua) -> LuaResult<()> {
    let index = crate::luaapi::function(lua, |lua, args: mlua::MultiValue| {
        let key = match args.get(1) {
            Some(Value::String(s)) => s.to_string_lossy(),
            _ => "?".to_string(),
        };
        finish::<()>(
            lua,
            &format!("curl:{key}"),
            Err(Fail::Usage(
                "the object was garbage-collected (its __gc ran before a finalizer used it)".into(),
            )),
        )
    })?;
    let tostring =
        crate::luaapi::function(lua, |_, _: Value| Ok("curl object (garbage-collected)"))?;
    patch_collected(lua, checked(lua, index)?, tostring)
}

#[mlua::lua_module(name = "curl")]
fn curl(lua: &Lua) -> LuaResult<LuaTable> {
    ffi::global_init();
    ffi::pin_library();
    luaapi::export::init(lua)?;
    collected_objects_raise_usage(lua)?;
    let pcall: LuaFunction = lua.globals().get("pcall")?;
    init_anchor(lua)?;
    lua.set_app_data(ctx::Shared {
        pcall,
        bytes_caller: bytes_caller(lua)?,
    });

    let r = lua.create_table()?;
    let all = options::CONSTANTS;
    r.raw_set(
        "constants",
        int_table(lua, all.len(), |i| (all[i].0, all[i].1))?,
    )?;
    let t = tables(lua);
    r.raw_set("easy_options", names_table(lua, &t.easy_names)?)?;
    r.raw_set("multi_options", names_table(lua, &t.multi_names)?)?;
    r.raw_set("infos", names_table(lua, &t.info_names)?)?;
    r.raw_set(
        "build_version_num",
        options::lookup("LIBCURL_VERSION_NUM").unwrap_or(0),
    )?;
    r.raw_set("module_path", ffi::module_path())?;
    r.raw_set("reentry_guard_keys", luaapi::export::kept())?;

    share::register(lua, &r)?;
    url::register(lua, &r)?;
    buffer::register(lua, &r)?;
    mime::register(lua, &r)?;
    poller::register(lua, &r)?;
    easy::register(lua, &r)?;
    multi::register(lua, &r)?;
    // GetInfo's fast path: on the raw method, and for each GetInfo_X
    let fast: LuaTable = r.raw_get("fast")?;
    buffer::register_fast(lua, &fast)?;
    fast.raw_set(
        "raw:curl.Easy.GetInfo",
        crate::luaapi::function(lua, |lua, full: LuaFunction| {
            easy::fast_getinfo(lua, (full, None))
        })?,
    )?;
    r.raw_set(
        "fast_getinfo",
        crate::luaapi::function(lua, easy::fast_getinfo)?,
    )?;
    r.raw_set(
        "fast_writes",
        crate::luaapi::function(lua, easy::fast_writes)?,
    )?;
    // `curl._enter(f, a)`: `f(a)` called by mlua, so that mlua has the
    // calling thread as its current one while `f` runs (the C paths then
    // serve calls from that coroutine; see luaapi/raw.rs `can_pin`).
    r.raw_set(
        "enter",
        crate::luaapi::function(lua, |_, (f, a): (LuaFunction, LuaValue)| f.call::<()>(a))?,
    )?;
    reg_fn(lua, &r, "Version", "curl.Version", |_l, _a| {
        Ok(ffi::version())
    })?;
    reg_fn(lua, &r, "VersionInfo", "curl.VersionInfo", version_info)?;
    reg_fn(
        lua,
        &r,
        "EasyStrError",
        "curl.EasyStrError",
        |_l, a: Args| Ok(ffi::easy_strerror(a.c_int(1, "code")?)),
    )?;
    reg_fn(
        lua,
        &r,
        "MultiStrError",
        "curl.MultiStrError",
        |_l, a: Args| Ok(ffi::multi_strerror(a.c_int(1, "code")?)),
    )?;
    reg_fn(
        lua,
        &r,
        "ShareStrError",
        "curl.ShareStrError",
        |_l, a: Args| Ok(ffi::share_strerror(a.c_int(1, "code")?)),
    )?;
    reg_fn(lua, &r, "writes", "curl._writes", easy::writes)?;
    reg_fn(lua, &r, "EasyError", "curl.EasyError", |l, a: Args| {
        error::made_error(l, &a, false)
    })?;
    reg_fn(lua, &r, "MultiError", "curl.MultiError", |l, a: Args| {
        error::made_error(l, &a, true)
    })?;
    r.raw_set("runtime_version_num", ffi::version_num())?;
    r.raw_set("runtime_version", ffi::version_info().version)?;
    // Options, infos and functions newer than 7.88.1, with the libcurl
    // version that added them (data in newer.tsv), for clear errors.
    let newer = lua.create_table()?;
    for line in include_str!("newer.tsv").lines() {
        let mut it = line.split('\t');
        if let (Some(n), Some(v)) = (it.next(), it.next()) {
            newer.raw_set(n, v)?;
        }
    }
    r.raw_set("newer", newer)?;
    let canon = lua.create_table()?;
    let kinds = lua.create_table()?;
    for (id, o) in t.easy.iter() {
        canon.raw_set(format!("CURLOPT_{}", o.name), *id)?;
        let k = match o.kind {
            ot::LONG => "long",
            ot::VALUES => "values",
            ot::OFF_T => "off_t",
            ot::OBJECT => "object",
            ot::STRING => "string",
            ot::SLIST => "slist",
            ot::CBPTR => "cbptr",
            ot::BLOB => "blob",
            ot::FUNCTION => "function",
            _ => "other",
        };
        kinds.raw_set(*id, k)?;
    }
    r.raw_set("easy_option_constants", canon)?;
    r.raw_set("easy_option_kinds", kinds)?;

    let addr = crate::luaapi::function(lua, |_, v: Value| Ok(format!("{:p}", v.to_pointer())))?;
    r.raw_set("addr", addr)?;
    let set_registry = crate::luaapi::function(lua, |lua, (k, v): (String, Value)| {
        lua.set_named_registry_value(&k, v)
    })?;
    r.raw_set("set_registry", set_registry)?;
    r.raw_set(
        "checked",
        crate::luaapi::function(lua, |lua, f: LuaFunction| checked(lua, f))?,
    )?;

    // curl.Fetch's Lua part, loaded by curl.lua on first use
    r.raw_set("fetch_source", include_str!("fetch.lua"))?;

    let chunk = lua.load(include_str!("curl.lua")).set_name("=curl.lua");
    let f: LuaFunction = chunk.into_function()?;
    f.call(r)
}
