//! The Lua side of every easy-handle callback: argument conversion, the call
//! (through the running call's context, so errors are parked, never thrown
//! through libcurl) and the mapping of Lua results to libcurl's return codes.
//!
//! Each callback's Lua function lives in the easy's user-value table under its
//! `CURLOPT_*FUNCTION` id, its userdata under the matching `*DATA` id.

use crate::consts::c;
use crate::ctx::Ctx;
use crate::easy::EasyInner;
use crate::error::{to_int, type_name, Fail};
use crate::lraw::Called;
use crate::raw::{self, HstsEntry, HstsIndex, KhKey};
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

/// The callbacks the module supports, with their function and data option ids.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cb {
    Write,
    Header,
    Read,
    XferInfo,
    Progress,
    Debug,
    Seek,
    SockOpt,
    OpenSocket,
    CloseSocket,
    ResolverStart,
    Prereq,
    Trailer,
    ChunkBgn,
    ChunkEnd,
    FnMatch,
    SshKey,
    SshHostKey,
    HstsRead,
    HstsWrite,
    Interleave,
}

pub const CALLBACKS: &[(Cb, i64, i64)] = &[
    (Cb::Write, c::CURLOPT_WRITEFUNCTION, c::CURLOPT_WRITEDATA),
    (Cb::Header, c::CURLOPT_HEADERFUNCTION, c::CURLOPT_HEADERDATA),
    (Cb::Read, c::CURLOPT_READFUNCTION, c::CURLOPT_READDATA),
    (
        Cb::XferInfo,
        c::CURLOPT_XFERINFOFUNCTION,
        c::CURLOPT_XFERINFODATA,
    ),
    (
        Cb::Progress,
        c::CURLOPT_PROGRESSFUNCTION,
        c::CURLOPT_PROGRESSDATA,
    ),
    (Cb::Debug, c::CURLOPT_DEBUGFUNCTION, c::CURLOPT_DEBUGDATA),
    (Cb::Seek, c::CURLOPT_SEEKFUNCTION, c::CURLOPT_SEEKDATA),
    (
        Cb::SockOpt,
        c::CURLOPT_SOCKOPTFUNCTION,
        c::CURLOPT_SOCKOPTDATA,
    ),
    (
        Cb::OpenSocket,
        c::CURLOPT_OPENSOCKETFUNCTION,
        c::CURLOPT_OPENSOCKETDATA,
    ),
    (
        Cb::CloseSocket,
        c::CURLOPT_CLOSESOCKETFUNCTION,
        c::CURLOPT_CLOSESOCKETDATA,
    ),
    (
        Cb::ResolverStart,
        c::CURLOPT_RESOLVER_START_FUNCTION,
        c::CURLOPT_RESOLVER_START_DATA,
    ),
    (Cb::Prereq, c::CURLOPT_PREREQFUNCTION, c::CURLOPT_PREREQDATA),
    (
        Cb::Trailer,
        c::CURLOPT_TRAILERFUNCTION,
        c::CURLOPT_TRAILERDATA,
    ),
    (
        Cb::ChunkBgn,
        c::CURLOPT_CHUNK_BGN_FUNCTION,
        c::CURLOPT_CHUNK_DATA,
    ),
    (
        Cb::ChunkEnd,
        c::CURLOPT_CHUNK_END_FUNCTION,
        c::CURLOPT_CHUNK_DATA,
    ),
    (
        Cb::FnMatch,
        c::CURLOPT_FNMATCH_FUNCTION,
        c::CURLOPT_FNMATCH_DATA,
    ),
    (
        Cb::SshKey,
        c::CURLOPT_SSH_KEYFUNCTION,
        c::CURLOPT_SSH_KEYDATA,
    ),
    (
        Cb::SshHostKey,
        c::CURLOPT_SSH_HOSTKEYFUNCTION,
        c::CURLOPT_SSH_HOSTKEYDATA,
    ),
    (
        Cb::HstsRead,
        c::CURLOPT_HSTSREADFUNCTION,
        c::CURLOPT_HSTSREADDATA,
    ),
    (
        Cb::HstsWrite,
        c::CURLOPT_HSTSWRITEFUNCTION,
        c::CURLOPT_HSTSWRITEDATA,
    ),
    (
        Cb::Interleave,
        c::CURLOPT_INTERLEAVEFUNCTION,
        c::CURLOPT_INTERLEAVEDATA,
    ),
];

pub fn ids(cb: Cb) -> (i64, i64) {
    CALLBACKS
        .iter()
        .find(|(k, _, _)| *k == cb)
        .map_or((0, 0), |(_, f, d)| (*f, *d))
}

pub fn by_function(id: i64) -> Option<Cb> {
    CALLBACKS
        .iter()
        .find(|(_, f, _)| *f == id)
        .map(|(k, _, _)| *k)
}

pub fn is_data(id: i64) -> bool {
    CALLBACKS.iter().any(|(_, _, d)| *d == id)
}

/// What calling a Lua callback gave.
pub enum Call {
    /// No Lua function is set (or the handle is not known to the context).
    NoFn,
    /// The callback raised; the error is parked in the context.
    Failed,
    Done(MultiValue),
}

/// Calls the Lua function stored for `cb` with `build`'s arguments plus the
/// callback's userdata.
pub fn invoke(
    e: &EasyInner,
    ctx: &Ctx<'_>,
    cb: Cb,
    build: impl FnOnce(&Lua, &mut MultiValue) -> LuaResult<()>,
) -> Call {
    let (fid, did) = ids(cb);
    let Some(ud) = ctx.easy_ud(e.addr()) else {
        return Call::NoFn;
    };
    let Ok(t) = ud.user_value::<LuaTable>() else {
        return Call::NoFn;
    };
    let f = match t.raw_get::<Value>(fid) {
        Ok(Value::Function(f)) => f,
        _ => return Call::NoFn,
    };
    let mut args = MultiValue::new();
    if let Err(err) = build(ctx.lua, &mut args) {
        ctx.park(Fail::Lua(err));
        return Call::Failed;
    }
    args.push_back(t.raw_get::<Value>(did).unwrap_or(Value::Nil));
    match ctx.call(f, args) {
        Some(r) => Call::Done(r),
        None => Call::Failed,
    }
}

/// The userdata stored for `cb` (a file-like object for stream callbacks).
fn data_of(e: &EasyInner, ctx: &Ctx<'_>, cb: Cb) -> Value {
    let (_, did) = ids(cb);
    ctx.easy_ud(e.addr())
        .and_then(|ud| ud.user_value::<LuaTable>().ok())
        .and_then(|t| t.raw_get::<Value>(did).ok())
        .unwrap_or(Value::Nil)
}

fn bad_return(ctx: &Ctx<'_>, what: &str, v: &Value, expected: &str) {
    let who = if what.is_empty() {
        "a callback".to_string()
    } else {
        format!("the {what} callback")
    };
    let got = match to_int(v) {
        Some(n) => format!("the number {n}"),
        None => format!("a {}", type_name(v)),
    };
    ctx.park(Fail::Usage(format!(
        "{who} returned {got} (expected {expected})"
    )));
}

fn first(r: &MultiValue) -> Value {
    r.front().cloned().unwrap_or(Value::Nil)
}

/// Calls `obj:method(args...)` on a file-like userdata value.
fn call_method(ctx: &Ctx<'_>, obj: &Value, method: &str, arg: Value) -> Option<MultiValue> {
    let f: Value = match obj {
        Value::Table(t) => t.get(method).ok()?,
        Value::UserData(u) => u.get(method).ok()?,
        _ => return None,
    };
    let Value::Function(f) = f else {
        return None;
    };
    let mut args = MultiValue::new();
    args.push_back(obj.clone());
    args.push_back(arg);
    ctx.call(f, args)
}

/// True when `v` has a callable field `method` (a Lua file, a buffer object).
pub fn has_method(v: &Value, method: &str) -> bool {
    let f: Option<Value> = match v {
        Value::Table(t) => t.get(method).ok(),
        Value::UserData(u) => u.get(method).ok(),
        _ => None,
    };
    matches!(f, Some(Value::Function(_)))
}

// ------------------------------------------------------------ data streams

/// Write, header and interleave data.
pub fn on_data(e: &EasyInner, ctx: &Ctx<'_>, data: &[u8], cb: Cb) -> usize {
    let lua = ctx.lua;
    let (fid, did) = ids(cb);
    let holder = match (ctx.easy, ctx.multi) {
        (Some((ud, a)), _) if a == e.addr() => Some((ud, false)),
        (_, Some(m)) => Some((m, true)),
        _ => None,
    };
    let called = match (holder, ctx.bytes_caller()) {
        (Some((h, via_multi)), Some(caller)) => {
            let r = crate::lraw::call_with_bytes(
                lua,
                &caller,
                h,
                via_multi,
                crate::multi::UV_HANDLES,
                e.addr(),
                fid,
                did,
                data,
            );
            match r {
                Ok(c) => c,
                Err(err) => {
                    ctx.park(Fail::Lua(err));
                    return 0;
                }
            }
        }
        _ => Called::NoFn(Value::Nil),
    };
    let v = match called {
        Called::Returned(v) => v,
        Called::Raised(v) => {
            ctx.park(Fail::Raise(v));
            return 0;
        }
        Called::NoFn(obj) => {
            // A curl.Buffer as *DATA: append in Rust, no Lua call.
            if crate::buffer::append_to(&obj, data) {
                return data.len();
            }
            // A file-like *DATA without a function: write into it.
            let s = match lua.create_string(data) {
                Ok(s) => s,
                Err(err) => {
                    ctx.park(Fail::Lua(err));
                    return 0;
                }
            };
            return match call_method(ctx, &obj, "write", Value::String(s)) {
                Some(r)
                    if matches!(first(&r), Value::Nil | Value::Boolean(false)) && r.len() > 1 =>
                {
                    ctx.park(Fail::Raise(r.get(1).cloned().unwrap_or(Value::Nil)));
                    0
                }
                Some(_) => data.len(),
                None => 0,
            };
        }
    };
    match &v {
        Value::Nil | Value::Boolean(true) => data.len(),
        Value::Boolean(false) => 0,
        _ => match to_int(&v) {
            Some(n) if n == c::CURL_WRITEFUNC_PAUSE => c::CURL_WRITEFUNC_PAUSE as usize,
            Some(n) if n >= 0 => n as usize,
            _ => {
                bad_return(
                    ctx,
                    "write",
                    &v,
                    "nothing, true, a byte count or CURL_WRITEFUNC_PAUSE",
                );
                0
            }
        },
    }
}

/// Read: the Lua function returns a string of at most `max` bytes (a longer
/// one is kept and handed out over the next calls), "" or nil at the end, or
/// CURL_READFUNC_ABORT / CURL_READFUNC_PAUSE.
pub fn on_read(e: &EasyInner, ctx: &Ctx<'_>, buf: *mut c_char, max: usize) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    if let Some(n) = take_pending(e.pending_read(), buf, max) {
        return n;
    }
    let r = match invoke(e, ctx, Cb::Read, |_, a| {
        a.push_back(Value::Integer(max as i64));
        Ok(())
    }) {
        Call::Done(r) => r,
        Call::Failed => return abort,
        Call::NoFn => {
            let obj = data_of(e, ctx, Cb::Read);
            match call_method(ctx, &obj, "read", Value::Integer(max as i64)) {
                Some(r) => r,
                None => return abort,
            }
        }
    };
    read_result(ctx, &r, buf, max, e.pending_read())
}

fn take_pending(pending: &RefCell<Vec<u8>>, buf: *mut c_char, max: usize) -> Option<usize> {
    let mut p = pending.borrow_mut();
    if p.is_empty() {
        return None;
    }
    let n = raw::fill(buf, max, &p);
    p.drain(..n);
    Some(n)
}

/// Maps a read callback's Lua result to libcurl's return value, keeping
/// what does not fit in `pending`.
pub fn read_result(
    ctx: &Ctx<'_>,
    r: &MultiValue,
    buf: *mut c_char,
    max: usize,
    pending: &RefCell<Vec<u8>>,
) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    let v = first(r);
    match &v {
        Value::Nil => 0,
        Value::Boolean(false) => abort,
        Value::String(s) => {
            let b = s.as_bytes();
            let n = raw::fill(buf, max, &b);
            if n < b.len() {
                *pending.borrow_mut() = b[n..].to_vec();
            }
            n
        }
        _ => match to_int(&v) {
            Some(n) if n == c::CURL_READFUNC_ABORT || n == c::CURL_READFUNC_PAUSE => n as usize,
            _ => {
                bad_return(
                    ctx,
                    "read",
                    &v,
                    "a string, nil, CURL_READFUNC_ABORT or CURL_READFUNC_PAUSE",
                );
                abort
            }
        },
    }
}

// ---------------------------------------------------------------- progress

/// XFERINFO and PROGRESS: true or a non-zero number aborts the transfer.
pub fn on_progress(e: &EasyInner, ctx: &Ctx<'_>, cb: Cb, nums: [Value; 4]) -> c_int {
    match invoke(e, ctx, cb, |_, a| {
        for n in nums {
            a.push_back(n);
        }
        Ok(())
    }) {
        Call::NoFn => 0,
        Call::Failed => 1,
        Call::Done(r) => {
            let v = first(&r);
            match &v {
                Value::Nil | Value::Boolean(false) => 0,
                Value::Boolean(true) => 1,
                _ => match to_int(&v) {
                    Some(n) if n == c::CURL_PROGRESSFUNC_CONTINUE => n as c_int,
                    Some(0) => 0,
                    Some(_) => 1,
                    None => {
                        bad_return(ctx, "progress", &v, "nothing, a boolean or a number");
                        1
                    }
                },
            }
        }
    }
}

pub fn on_debug(e: &EasyInner, ctx: &Ctx<'_>, kind: c_int, data: &[u8]) -> c_int {
    let _ = invoke(e, ctx, Cb::Debug, |lua, a| {
        a.push_back(Value::Integer(kind as i64));
        a.push_back(Value::String(lua.create_string(data)?));
        Ok(())
    });
    0
}

/// A callback whose Lua result is "nothing/true/0 = OK", "false = `on_false`",
/// "a number = that code"; an error gives `on_error`.
pub fn code_result(
    ctx: &Ctx<'_>,
    r: Call,
    ok: c_int,
    on_false: c_int,
    on_error: c_int,
    no_fn: c_int,
) -> c_int {
    match r {
        Call::NoFn => no_fn,
        Call::Failed => on_error,
        Call::Done(r) => match first(&r) {
            Value::Nil | Value::Boolean(true) => ok,
            Value::Boolean(false) => on_false,
            v => match to_int(&v) {
                Some(n) if (0..=c_int::MAX as i64).contains(&n) => n as c_int,
                _ => {
                    bad_return(
                        ctx,
                        "",
                        &v,
                        "nothing, a boolean or one of the callback's CURL_* codes",
                    );
                    on_error
                }
            },
        },
    }
}

pub fn on_seek(e: &EasyInner, ctx: &Ctx<'_>, offset: i64, origin: c_int) -> c_int {
    e.pending_read().borrow_mut().clear(); // the upload restarts elsewhere
    let r = invoke(e, ctx, Cb::Seek, |_, a| {
        a.push_back(Value::Integer(offset));
        a.push_back(Value::Integer(origin as i64));
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURL_SEEKFUNC_OK as c_int,
        c::CURL_SEEKFUNC_CANTSEEK as c_int,
        c::CURL_SEEKFUNC_FAIL as c_int,
        c::CURL_SEEKFUNC_CANTSEEK as c_int,
    )
}

pub fn on_sockopt(e: &EasyInner, ctx: &Ctx<'_>, fd: i64, purpose: c_int) -> c_int {
    let r = invoke(e, ctx, Cb::SockOpt, |_, a| {
        a.push_back(Value::Integer(fd));
        a.push_back(Value::Integer(purpose as i64));
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURL_SOCKOPT_OK as c_int,
        c::CURL_SOCKOPT_ERROR as c_int,
        c::CURL_SOCKOPT_ERROR as c_int,
        c::CURL_SOCKOPT_OK as c_int,
    )
}

/// Open-socket: nil lets the binding open the socket as libcurl would; an
/// integer is the descriptor to use; false refuses the connection.
pub fn on_opensocket(e: &EasyInner, ctx: &Ctx<'_>, purpose: c_int, addr: &raw::SockAddr) -> i64 {
    let (ip, port) = raw::sockaddr_parts(addr);
    let r = invoke(e, ctx, Cb::OpenSocket, |lua, a| {
        a.push_back(Value::Integer(purpose as i64));
        let t = lua.create_table()?;
        t.raw_set("family", addr.family)?;
        t.raw_set("socktype", addr.socktype)?;
        t.raw_set("protocol", addr.protocol)?;
        t.raw_set("ip", ip)?;
        t.raw_set("port", port)?;
        a.push_back(Value::Table(t));
        Ok(())
    });
    let own = || raw::open_socket(addr.family, addr.socktype, addr.protocol) as i64;
    match r {
        Call::NoFn => own(),
        Call::Failed => -1,
        Call::Done(r) => match first(&r) {
            Value::Nil | Value::Boolean(true) => own(),
            Value::Boolean(false) => -1,
            v => to_int(&v)
                .filter(|n| (0..=c_int::MAX as i64).contains(n))
                .unwrap_or_else(|| {
                    bad_return(ctx, "open-socket", &v, "nil, false or a descriptor");
                    -1
                }),
        },
    }
}

/// Close-socket: the binding closes the descriptor after the callback unless
/// it returns false (meaning "I closed it").
pub fn on_closesocket(e: &EasyInner, ctx: &Ctx<'_>, fd: i64) -> c_int {
    let r = invoke(e, ctx, Cb::CloseSocket, |_, a| {
        a.push_back(Value::Integer(fd));
        Ok(())
    });
    let keep = matches!(&r, Call::Done(r) if matches!(first(r), Value::Boolean(false)));
    if !keep {
        raw::close_socket(fd as _);
    }
    0
}

pub fn on_resolver_start(e: &EasyInner, ctx: &Ctx<'_>) -> c_int {
    match invoke(e, ctx, Cb::ResolverStart, |_, _| Ok(())) {
        Call::NoFn => 0,
        Call::Failed => 1,
        Call::Done(r) => match first(&r) {
            Value::Nil | Value::Boolean(false) => 0,
            Value::Boolean(true) => 1,
            v => (to_int(&v).unwrap_or(1) != 0) as c_int,
        },
    }
}

pub fn on_prereq(
    e: &EasyInner,
    ctx: &Ctx<'_>,
    primary_ip: Option<Vec<u8>>,
    local_ip: Option<Vec<u8>>,
    primary_port: c_int,
    local_port: c_int,
) -> c_int {
    let r = invoke(e, ctx, Cb::Prereq, |lua, a| {
        for ip in [primary_ip, local_ip] {
            a.push_back(match ip {
                Some(b) => Value::String(lua.create_string(&b)?),
                None => Value::Nil,
            });
        }
        a.push_back(Value::Integer(primary_port as i64));
        a.push_back(Value::Integer(local_port as i64));
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURL_PREREQFUNC_OK as c_int,
        c::CURL_PREREQFUNC_ABORT as c_int,
        c::CURL_PREREQFUNC_ABORT as c_int,
        c::CURL_PREREQFUNC_OK as c_int,
    )
}

/// Trailers: an array of "Name: value" strings (or nil for none).
pub fn on_trailer(e: &EasyInner, ctx: &Ctx<'_>, list: *mut *mut raw::curl_slist) -> c_int {
    let ok = c::CURL_TRAILERFUNC_OK as c_int;
    let abort = c::CURL_TRAILERFUNC_ABORT as c_int;
    let r = match invoke(e, ctx, Cb::Trailer, |_, _| Ok(())) {
        Call::NoFn => return ok,
        Call::Failed => return abort,
        Call::Done(r) => r,
    };
    match first(&r) {
        Value::Nil | Value::Boolean(true) => ok,
        Value::Boolean(false) => abort,
        Value::Table(t) => {
            let mut items = Vec::new();
            for i in 1..=t.raw_len() {
                let Ok(Value::String(s)) = t.raw_get::<Value>(i) else {
                    ctx.park(Fail::Usage(format!(
                        "the trailer callback's item {i} is not a string"
                    )));
                    return abort;
                };
                match CString::new(s.as_bytes().to_vec()) {
                    Ok(c) => items.push(c),
                    Err(_) => {
                        ctx.park(Fail::Usage(format!(
                            "the trailer callback's item {i} contains a NUL byte"
                        )));
                        return abort;
                    }
                }
            }
            raw::slist_append_into(list, &items);
            ok
        }
        v => {
            bad_return(ctx, "trailer", &v, "an array of strings, nil or false");
            abort
        }
    }
}

fn opt_str(lua: &Lua, p: *const c_char) -> LuaResult<Value> {
    Ok(match raw::c_bytes(p) {
        Some(b) => Value::String(lua.create_string(&b)?),
        None => Value::Nil,
    })
}

/// FTP wildcard chunk start: `fn(info, remains, ud)`.
pub fn on_chunk_bgn(e: &EasyInner, ctx: &Ctx<'_>, info: &raw::FileInfo, remains: c_int) -> i64 {
    let r = invoke(e, ctx, Cb::ChunkBgn, |lua, a| {
        let t = lua.create_table()?;
        t.raw_set("filename", opt_str(lua, info.filename)?)?;
        t.raw_set("filetype", info.filetype as i64)?;
        t.raw_set("time", info.time as i64)?;
        t.raw_set("perm", info.perm as i64)?;
        t.raw_set("uid", info.uid as i64)?;
        t.raw_set("gid", info.gid as i64)?;
        t.raw_set("size", info.size)?;
        t.raw_set("hardlinks", info.hardlinks as i64)?;
        t.raw_set("flags", info.flags as i64)?;
        let s = lua.create_table()?;
        s.raw_set("time", opt_str(lua, info.strings_time)?)?;
        s.raw_set("perm", opt_str(lua, info.strings_perm)?)?;
        s.raw_set("user", opt_str(lua, info.strings_user)?)?;
        s.raw_set("group", opt_str(lua, info.strings_group)?)?;
        // libcurl (7.88 at least) does not reset the parser's symlink-target
        // offset between entries: for an entry listed after a symlink,
        // `strings.target` points at a stale index into the new entry's
        // buffer (uninitialised bytes, possibly past its end). It only has
        // a meaning for symlinks, so only those get one.
        if info.filetype as i64 == c::CURLFILETYPE_SYMLINK {
            s.raw_set("target", opt_str(lua, info.strings_target)?)?;
        }
        t.raw_set("strings", s)?;
        a.push_back(Value::Table(t));
        a.push_back(Value::Integer(remains as i64));
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURL_CHUNK_BGN_FUNC_OK as c_int,
        c::CURL_CHUNK_BGN_FUNC_SKIP as c_int,
        c::CURL_CHUNK_BGN_FUNC_FAIL as c_int,
        c::CURL_CHUNK_BGN_FUNC_OK as c_int,
    ) as i64
}

pub fn on_chunk_end(e: &EasyInner, ctx: &Ctx<'_>) -> i64 {
    let r = invoke(e, ctx, Cb::ChunkEnd, |_, _| Ok(()));
    code_result(
        ctx,
        r,
        c::CURL_CHUNK_END_FUNC_OK as c_int,
        c::CURL_CHUNK_END_FUNC_FAIL as c_int,
        c::CURL_CHUNK_END_FUNC_FAIL as c_int,
        c::CURL_CHUNK_END_FUNC_OK as c_int,
    ) as i64
}

pub fn on_fnmatch(
    e: &EasyInner,
    ctx: &Ctx<'_>,
    pattern: *const c_char,
    string: *const c_char,
) -> c_int {
    let r = invoke(e, ctx, Cb::FnMatch, |lua, a| {
        a.push_back(opt_str(lua, pattern)?);
        a.push_back(opt_str(lua, string)?);
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURL_FNMATCHFUNC_MATCH as c_int,
        c::CURL_FNMATCHFUNC_NOMATCH as c_int,
        c::CURL_FNMATCHFUNC_FAIL as c_int,
        c::CURL_FNMATCHFUNC_FAIL as c_int,
    )
}

fn khkey(lua: &Lua, k: *const KhKey) -> LuaResult<Value> {
    if k.is_null() {
        return Ok(Value::Nil);
    }
    // SAFETY: libcurl passes valid key structs for the duration of the call.
    let k = unsafe { &*k };
    let t = lua.create_table()?;
    // len 0 means a NUL-terminated base64 string
    let bytes = if k.len == 0 {
        raw::c_bytes(k.key).unwrap_or_default()
    } else {
        raw::c_slice(k.key, k.len).to_vec()
    };
    t.raw_set("key", lua.create_string(&bytes)?)?;
    t.raw_set("keytype", k.keytype as i64)?;
    Ok(Value::Table(t))
}

/// SSH known-host check: must return a CURLKHSTAT_* value; anything else
/// (or an error) rejects the key.
pub fn on_ssh_key(
    e: &EasyInner,
    ctx: &Ctx<'_>,
    known: *const KhKey,
    found: *const KhKey,
    m: c_int,
) -> c_int {
    let reject = c::CURLKHSTAT_REJECT as c_int;
    match invoke(e, ctx, Cb::SshKey, |lua, a| {
        a.push_back(khkey(lua, known)?);
        a.push_back(khkey(lua, found)?);
        a.push_back(Value::Integer(m as i64));
        Ok(())
    }) {
        Call::Done(r) => to_int(&first(&r)).map_or(reject, |n| n as c_int),
        _ => reject,
    }
}

pub fn on_ssh_hostkey(e: &EasyInner, ctx: &Ctx<'_>, keytype: c_int, key: &[u8]) -> c_int {
    let r = invoke(e, ctx, Cb::SshHostKey, |lua, a| {
        a.push_back(Value::Integer(keytype as i64));
        a.push_back(Value::String(lua.create_string(key)?));
        Ok(())
    });
    let mismatch = c::CURLKHMATCH_MISMATCH as c_int;
    match r {
        Call::Done(r) => match first(&r) {
            Value::Boolean(true) => c::CURLKHMATCH_OK as c_int,
            v => to_int(&v).map_or(mismatch, |n| n as c_int),
        },
        _ => mismatch,
    }
}

/// HSTS read: a table `{host =, include_subdomains =, expire =}` per call,
/// nil when there are no more entries.
pub fn on_hsts_read(e: &EasyInner, ctx: &Ctx<'_>, entry: &mut HstsEntry) -> c_int {
    let done = c::CURLSTS_DONE as c_int;
    let fail = c::CURLSTS_FAIL as c_int;
    let r = match invoke(e, ctx, Cb::HstsRead, |_, _| Ok(())) {
        Call::NoFn => return done,
        Call::Failed => return fail,
        Call::Done(r) => r,
    };
    let t = match first(&r) {
        Value::Nil | Value::Boolean(false) => return done,
        Value::Table(t) => t,
        v => {
            bad_return(ctx, "HSTS read", &v, "a table or nil");
            return fail;
        }
    };
    let host: Option<LuaString> = t.raw_get("host").ok().flatten();
    let Some(host) = host else {
        ctx.park(Fail::Usage(
            "the HSTS read callback's table needs a 'host' string".into(),
        ));
        return fail;
    };
    let host = host.as_bytes();
    if host.len() + 1 > entry.namelen || host.contains(&0) {
        ctx.park(Fail::Usage(
            "the HSTS read callback's host name is too long".into(),
        ));
        return fail;
    }
    let n = raw::fill(entry.name, entry.namelen, &host);
    raw::fill(entry.name.wrapping_add(n), 1, &[0]);
    let sub: bool = t
        .raw_get::<Option<bool>>("include_subdomains")
        .ok()
        .flatten()
        .unwrap_or(false);
    entry.flags = (entry.flags & !1) | sub as u8;
    let expire: Option<LuaString> = t.raw_get("expire").ok().flatten();
    let mut buf = [0 as c_char; 18];
    if let Some(x) = expire {
        let x = x.as_bytes();
        for (i, b) in x.iter().take(17).enumerate() {
            buf[i] = *b as c_char;
        }
    }
    entry.expire = buf;
    c::CURLSTS_OK as c_int
}

pub fn on_hsts_write(e: &EasyInner, ctx: &Ctx<'_>, entry: &HstsEntry, index: &HstsIndex) -> c_int {
    let r = invoke(e, ctx, Cb::HstsWrite, |lua, a| {
        let t = lua.create_table()?;
        t.raw_set("host", opt_str(lua, entry.name)?)?;
        t.raw_set("include_subdomains", entry.flags & 1 == 1)?;
        let end = entry
            .expire
            .iter()
            .position(|c| *c == 0)
            .unwrap_or(entry.expire.len());
        let x: Vec<u8> = entry.expire[..end].iter().map(|c| *c as u8).collect();
        t.raw_set("expire", lua.create_string(&x)?)?;
        a.push_back(Value::Table(t));
        let i = lua.create_table()?;
        i.raw_set("index", index.index as i64)?;
        i.raw_set("total", index.total as i64)?;
        a.push_back(Value::Table(i));
        Ok(())
    });
    code_result(
        ctx,
        r,
        c::CURLSTS_OK as c_int,
        c::CURLSTS_FAIL as c_int,
        c::CURLSTS_FAIL as c_int,
        c::CURLSTS_OK as c_int,
    )
}
