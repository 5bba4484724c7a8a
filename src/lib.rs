//! `require "curl"`: libcurl for Lua, built around the multi socket interface.
//!
//! Layout: `raw.rs` holds every FFI call, `callbacks.rs` the `extern "C"`
//! trampolines, `ctx.rs` the call context, one module per handle type
//! (`multi.rs`, `easy.rs`, `poller.rs`), `consts.rs` the data-derived
//! constant and option tables, `error.rs` the error values, `lraw.rs` raw
//! Lua stack work for the per-transfer paths and the C closure that re-raises
//! a method's error unchanged. `curl.lua` is the thin Lua layer that builds
//! the classes and resolves `SetOpt_X`.
//!
//! Policy (see README): callbacks run only inside binding calls; a callback's
//! error is parked and raised by the running method, as the same value; no Lua
//! runs from `__gc`; closing unhooks callbacks before destroying.

// `c_long`, `curl_socket_t` and friends differ in width between platforms;
// casts that are no-ops on Linux x86_64 keep the code portable.
#![allow(clippy::unnecessary_cast)]

mod buffer;
mod callbacks;
mod consts;
mod ctx;
mod easy;
mod easy_cb;
mod error;
mod lraw;
mod mime;
mod multi;
mod objects;
mod poller;
mod raw;
mod share;
mod url;

use error::{reg_fn, Args, R};
use mlua::prelude::*;
use mlua::{UserDataFields, Value};

/// Metatable fields of a class come from the Lua layer (registry
/// `"<class><field>"`), so methods are the wrapped ones.
pub(crate) fn add_meta<T, F: UserDataFields<T>>(fields: &mut F, class: &'static str) {
    for key in ["__index", "__tostring", "__close"] {
        fields.add_meta_field_with(key, move |lua| {
            lua.named_registry_value::<Value>(&format!("{class}{key}"))
        });
    }
}

fn names_table(lua: &Lua, items: Vec<(String, i32)>) -> LuaResult<LuaTable> {
    lraw::int_table(lua, items.len(), |i| {
        (items[i].0.as_str(), items[i].1 as i64)
    })
}

fn version_info(lua: &Lua, _a: Args) -> R<LuaTable> {
    let v = raw::version_info();
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
    t.raw_set("zstd_version", v.zstd_version)?;
    let p = lua.create_table()?;
    for (i, s) in v.protocols.into_iter().enumerate() {
        p.raw_set(i + 1, s)?;
    }
    t.raw_set("protocols", p)?;
    Ok(t)
}

/// A handle used after its own `__gc` ran (a finalizer that resurrected
/// it) has mlua's shared "destructed" metatable, whose metamethods raise
/// mlua's own error. This module's copy of mlua keeps that metatable for
/// this module's objects only; here its `__index` and `__newindex` raise a
/// `curl.Error` usage error instead, `tostring` works, and `==` compares
/// identity.
fn collected_objects_raise_usage(lua: &Lua) -> LuaResult<()> {
    struct Probe;
    impl mlua::UserData for Probe {}
    let probe = lua.create_userdata(Probe)?;
    probe.destroy()?;
    let index = lua.create_function(|lua, args: mlua::MultiValue| {
        let key = match args.get(1) {
            Some(Value::String(s)) => s.to_string_lossy(),
            _ => "?".to_string(),
        };
        let method = format!("curl:{key}");
        error::finish::<()>(
            lua,
            &method,
            Err(error::Fail::Usage(
                "the object was garbage-collected (its __gc ran before a finalizer used it)".into(),
            )),
        )
    })?;
    let index = lraw::checked(lua, index)?;
    let tostring = lua.create_function(|_, _: Value| Ok("curl object (garbage-collected)"))?;
    // SAFETY: inside exec_raw's protected call with the probe, `index` and
    // `tostring` at 1..3; only table stores into the probe's metatable.
    unsafe {
        lua.exec_raw::<()>((probe, index, tostring), |l| {
            use mlua::ffi;
            if ffi::lua_getmetatable(l, 1) == 0 {
                return;
            }
            ffi::lua_pushvalue(l, 2);
            ffi::lua_setfield(l, 4, c"__index".as_ptr());
            ffi::lua_pushvalue(l, 2);
            ffi::lua_setfield(l, 4, c"__newindex".as_ptr());
            ffi::lua_pushvalue(l, 3);
            ffi::lua_setfield(l, 4, c"__tostring".as_ptr());
            ffi::lua_pushnil(l);
            ffi::lua_setfield(l, 4, c"__eq".as_ptr());
            ffi::lua_settop(l, 0);
        })
    }
}

#[mlua::lua_module(name = "curl")]
fn curl(lua: &Lua) -> LuaResult<LuaTable> {
    raw::global_init();
    collected_objects_raise_usage(lua)?;
    let pcall: LuaFunction = lua.globals().get("pcall")?;
    let bytes_caller = lraw::bytes_caller(lua)?;
    lua.set_app_data(ctx::Shared {
        pcall,
        bytes_caller,
    });

    let r = lua.create_table()?;
    let all = consts::CONSTANTS;
    let consts_t = lraw::int_table(lua, all.len(), |i| (all[i].0, all[i].1))?;
    r.raw_set("constants", consts_t)?;
    let t = consts::tables(lua);
    let mut easy_names = t.easy_names.clone();
    easy_names.sort();
    r.raw_set("easy_options", names_table(lua, easy_names)?)?;
    r.raw_set("multi_options", names_table(lua, consts::multi_names())?)?;
    r.raw_set("infos", names_table(lua, consts::info_names(lua))?)?;
    r.raw_set(
        "build_version_num",
        consts::lookup("LIBCURL_VERSION_NUM").unwrap_or(0),
    )?;
    r.raw_set("module_path", module_path())?;

    multi::register(lua, &r)?;
    easy::register(lua, &r)?;
    poller::register(lua, &r)?;
    share::register(lua, &r)?;
    url::register(lua, &r)?;
    mime::register(lua, &r)?;
    buffer::register(lua, &r)?;
    reg_fn(lua, &r, "Version", "curl.Version", |_l, _a| {
        Ok(raw::version())
    })?;
    reg_fn(lua, &r, "VersionInfo", "curl.VersionInfo", version_info)?;
    reg_fn(
        lua,
        &r,
        "EasyStrError",
        "curl.EasyStrError",
        |_l, a: Args| Ok(raw::easy_strerror(a.c_int(1, "code")?)),
    )?;
    reg_fn(
        lua,
        &r,
        "MultiStrError",
        "curl.MultiStrError",
        |_l, a: Args| Ok(raw::multi_strerror(a.c_int(1, "code")?)),
    )?;
    reg_fn(
        lua,
        &r,
        "ShareStrError",
        "curl.ShareStrError",
        |_l, a: Args| Ok(raw::share_strerror(a.c_int(1, "code")?)),
    )?;
    r.raw_set("runtime_version_num", raw::version_num())?;
    r.raw_set("runtime_version", raw::version_info().version)?;
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
    for (id, o) in t.easy.iter() {
        canon.raw_set(format!("CURLOPT_{}", o.name), *id)?;
    }
    r.raw_set("easy_option_constants", canon)?;
    let kinds = lua.create_table()?;
    for (id, o) in t.easy.iter() {
        let k = match o.kind {
            consts::ot::LONG => "long",
            consts::ot::VALUES => "values",
            consts::ot::OFF_T => "off_t",
            consts::ot::OBJECT => "object",
            consts::ot::STRING => "string",
            consts::ot::SLIST => "slist",
            consts::ot::CBPTR => "cbptr",
            consts::ot::BLOB => "blob",
            consts::ot::FUNCTION => "function",
            _ => "other",
        };
        kinds.raw_set(*id, k)?;
    }
    r.raw_set("easy_option_kinds", kinds)?;

    let addr = lua.create_function(|_, v: Value| Ok(format!("{:p}", v.to_pointer())))?;
    r.raw_set("addr", addr)?;
    let set_registry =
        lua.create_function(|lua, (k, v): (String, Value)| lua.set_named_registry_value(&k, v))?;
    r.raw_set("set_registry", set_registry)?;
    let checked = lua.create_function(|lua, f: LuaFunction| lraw::checked(lua, f))?;
    r.raw_set("checked", checked)?;
    let fast = lua.create_table()?;
    multi::fast_paths(lua, &fast)?;
    r.raw_set("fast", fast)?;

    let chunk = lua.load(include_str!("curl.lua")).set_name("=curl.lua");
    let f: LuaFunction = chunk.into_function()?;
    f.call(r)
}

/// The file this module was loaded from (for specs that check which
/// `curl.so` `require` found).
fn module_path() -> Option<String> {
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let addr = module_path as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables for an address inside
    // this library and fills the local struct.
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    Some(
        unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
            .to_string_lossy()
            .into_owned(),
    )
}
