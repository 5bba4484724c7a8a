//! The Lua side of every easy callback (`ffi::EasyHandler` for the easy's
//! state): argument conversion, the call (in the running call's context, so
//! errors are parked, never thrown through libcurl) and the mapping of Lua
//! results to libcurl's return codes. Without a context (garbage
//! collection, teardown) each does libcurl's default and calls no Lua.
//!
//! Each callback's Lua function lives in the easy's user-value table under
//! its `CURLOPT_*FUNCTION` id, its userdata under the matching `*DATA` id.

use super::{EasyInner, CAUSE_KEY};
use crate::buffer::{self, BufferInner};
use crate::ctx::{first, take_pending, Ctx, UV_HANDLES};
use crate::error::Fail;
use crate::ffi::{
    self, Cb, FileInfo, HstsRead, HstsWrite, KhKey, OutBuf, SockAddr, Stream, TrailerList,
};
use crate::luaapi::raw::{call_with_bytes, Called, Holder};
use crate::luaapi::to_int;
use crate::options::c;
use curl_sys as sys;
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::ffi::CString;
use std::os::raw::{c_int, c_long};

/// What calling a Lua callback gave.
enum Call {
    /// No Lua function is set (or the handle is not known to the context).
    NoFn,
    /// The callback raised; the error is parked in the context.
    Failed,
    Done(MultiValue),
}

impl Call {
    /// The results, `None` when it raised; `no_fn` when there was no function.
    fn or_none(self) -> Result<Option<MultiValue>, ()> {
        match self {
            Call::NoFn => Err(()),
            Call::Failed => Ok(None),
            Call::Done(r) => Ok(Some(r)),
        }
    }
}

/// Calls the Lua function stored for `cb` with `build`'s arguments plus the
/// callback's userdata.
fn invoke(
    e: &EasyInner,
    ctx: &Ctx,
    cb: Cb,
    build: impl FnOnce(&Lua, &mut MultiValue) -> LuaResult<()>,
) -> Call {
    let Some(ud) = ctx.easy_ud(e.addr()) else {
        return Call::NoFn;
    };
    let Ok(t) = ud.user_value::<LuaTable>() else {
        return Call::NoFn;
    };
    let f = match t.raw_get::<Value>(cb.function_opt()) {
        Ok(Value::Function(f)) => f,
        _ => return Call::NoFn,
    };
    let mut args = MultiValue::new();
    if let Err(err) = build(ctx.lua, &mut args) {
        ctx.park(Fail::Lua(err));
        return Call::Failed;
    }
    args.push_back(t.raw_get::<Value>(cb.data_opt()).unwrap_or(Value::Nil));
    match ctx.call_err(f, args) {
        Ok(r) => Call::Done(r),
        Err(raised) => {
            if let Some(v) = raised {
                keep_cause(e, &t, v);
            }
            Call::Failed
        }
    }
}

/// Keeps the value a callback of `e` raised in its user value table, for
/// `easy:TransferError`'s `cause` (the first one of a transfer).
fn keep_cause(e: &EasyInner, t: &LuaTable, v: Value) {
    if !e.has_cause.get() && t.raw_set(CAUSE_KEY, v).is_ok() {
        e.has_cause.set(true);
    }
}

/// `invoke` for a callback whose result follows `Ctx::code_result`:
/// `no_fn` when no function is set.
fn code_call(
    e: &EasyInner,
    ctx: &Ctx,
    cb: Cb,
    codes: [i64; 4],
    build: impl FnOnce(&Lua, &mut MultiValue) -> LuaResult<()>,
) -> c_int {
    let [ok, on_false, on_error, no_fn] = codes.map(|n| n as c_int);
    match invoke(e, ctx, cb, build).or_none() {
        Err(()) => no_fn,
        Ok(r) => ctx.code_result(r, ok, on_false, on_error),
    }
}

/// The user value table of the easy object of `e`, if the context knows it.
fn uv_of(e: &EasyInner, ctx: &Ctx) -> Option<LuaTable> {
    ctx.easy_ud(e.addr())
        .and_then(|ud| ud.user_value::<LuaTable>().ok())
}

/// The userdata stored for `cb` (a file-like object for stream callbacks).
fn data_of(e: &EasyInner, ctx: &Ctx, cb: Cb) -> Value {
    uv_of(e, ctx)
        .and_then(|t| t.raw_get::<Value>(cb.data_opt()).ok())
        .unwrap_or(Value::Nil)
}

/// Calls `obj:method(arg)` on a file-like value.
fn call_method(ctx: &Ctx, obj: &Value, method: &str, arg: Value) -> Option<MultiValue> {
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

fn opt_str(lua: &Lua, b: Option<&[u8]>) -> LuaResult<Value> {
    Ok(match b {
        Some(b) => Value::String(lua.create_string(b)?),
        None => Value::Nil,
    })
}

// ------------------------------------------------------------ data streams

/// Write, header and interleave data.
fn on_data(e: &EasyInner, ctx: &Ctx, data: &[u8], stream: Stream) -> usize {
    let cb = match stream {
        Stream::Write => Cb::Write,
        Stream::Header => Cb::Header,
        Stream::Interleave => Cb::Interleave,
    };
    let holder = match (&ctx.easy, ctx.multi) {
        (Some((ud, a)), _) if *a == e.addr() => Some((Holder::Ud(ud), false)),
        (_, Some(m)) => Some((m, true)),
        _ => None,
    };
    // The C function that makes the string inside the protected call: a
    // plain push from Lua 5.2 on, a value made once per state on 5.1 and
    // LuaJIT (where pushing a C function allocates).
    let caller = if cfg!(any(feature = "lua51", feature = "luajit")) {
        ctx.bytes_caller().map(Some)
    } else {
        Some(None)
    };
    let called = match (holder, caller) {
        (Some((h, via_multi)), Some(caller)) => {
            let r = call_with_bytes::<BufferInner>(
                ctx.lua,
                caller.as_ref(),
                h,
                via_multi,
                UV_HANDLES,
                e.addr(),
                cb.function_opt(),
                cb.data_opt(),
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
        Called::Taken => return data.len(),
        Called::Raised(v) => {
            if let Some(t) = uv_of(e, ctx) {
                keep_cause(e, &t, v.clone());
            }
            ctx.park(Fail::Raise(v));
            return 0;
        }
        Called::NoFn(obj) => {
            // A curl.Buffer as *DATA: append in Rust, no Lua call.
            if buffer::append_to(&obj, data) {
                return data.len();
            }
            // A file-like *DATA without a function: write into it.
            let s = match ctx.lua.create_string(data) {
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
                ctx.bad_return(
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
fn on_read(e: &EasyInner, ctx: &Ctx, buf: &OutBuf<'_>) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    if let Some(n) = take_pending(e.pending_read(), buf) {
        return n;
    }
    let max = buf.capacity() as i64;
    let r = match invoke(e, ctx, Cb::Read, |_, a| {
        a.push_back(Value::Integer(max));
        Ok(())
    }) {
        Call::Done(r) => r,
        Call::Failed => return abort,
        Call::NoFn => {
            let obj = data_of(e, ctx, Cb::Read);
            match call_method(ctx, &obj, "read", Value::Integer(max)) {
                Some(r) => r,
                None => return abort,
            }
        }
    };
    ctx.read_result(&r, buf, e.pending_read())
}

/// XFERINFO and PROGRESS: true or a non-zero number aborts the transfer.
fn on_progress(e: &EasyInner, ctx: &Ctx, cb: Cb, nums: [Value; 4]) -> c_int {
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
                        ctx.bad_return("progress", &v, "nothing, a boolean or a number");
                        1
                    }
                },
            }
        }
    }
}

/// An HSTS entry's text fields as Lua values.
fn hsts_entry(lua: &Lua, entry: &HstsWrite) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.raw_set("host", opt_str(lua, entry.host.as_deref())?)?;
    t.raw_set("include_subdomains", entry.include_subdomains)?;
    t.raw_set("expire", lua.create_string(&entry.expire)?)?;
    Ok(t)
}

fn khkey(lua: &Lua, k: Option<KhKey>) -> LuaResult<Value> {
    let Some(k) = k else {
        return Ok(Value::Nil);
    };
    let t = lua.create_table()?;
    t.raw_set("key", lua.create_string(&k.key)?)?;
    t.raw_set("keytype", k.keytype as i64)?;
    Ok(Value::Table(t))
}

impl ffi::EasyHandler for EasyInner {
    fn write(&self, stream: Stream, data: &[u8]) -> usize {
        self.with_ctx(|ctx| match ctx {
            Some(ctx) => on_data(self, ctx, data, stream),
            None => 0,
        })
    }

    fn read(&self, buf: &OutBuf<'_>) -> usize {
        self.with_ctx(|ctx| match ctx {
            Some(ctx) => on_read(self, ctx, buf),
            None => c::CURL_READFUNC_ABORT as usize,
        })
    }

    fn xferinfo(&self, now: [i64; 4]) -> c_int {
        let v = now.map(Value::Integer);
        self.with_ctx(|ctx| ctx.map_or(0, |ctx| on_progress(self, ctx, Cb::XferInfo, v)))
    }

    fn progress(&self, now: [f64; 4]) -> c_int {
        let v = now.map(Value::Number);
        self.with_ctx(|ctx| ctx.map_or(0, |ctx| on_progress(self, ctx, Cb::Progress, v)))
    }

    fn debug(&self, kind: c_int, data: &[u8]) -> c_int {
        self.with_ctx(|ctx| {
            if let Some(ctx) = ctx {
                let _ = invoke(self, ctx, Cb::Debug, |lua, a| {
                    a.push_back(Value::Integer(kind as i64));
                    a.push_back(Value::String(lua.create_string(data)?));
                    Ok(())
                });
            }
            0
        })
    }

    fn seek(&self, offset: i64, origin: c_int) -> c_int {
        self.pending_read().borrow_mut().clear(); // the upload restarts elsewhere
        let cant = c::CURL_SEEKFUNC_CANTSEEK;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return cant as c_int;
            };
            code_call(
                self,
                ctx,
                Cb::Seek,
                [c::CURL_SEEKFUNC_OK, cant, c::CURL_SEEKFUNC_FAIL, cant],
                |_, a| {
                    a.push_back(Value::Integer(offset));
                    a.push_back(Value::Integer(origin as i64));
                    Ok(())
                },
            )
        })
    }

    fn sockopt(&self, fd: sys::curl_socket_t, purpose: c_int) -> c_int {
        let (ok, err) = (c::CURL_SOCKOPT_OK, c::CURL_SOCKOPT_ERROR);
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok as c_int;
            };
            code_call(self, ctx, Cb::SockOpt, [ok, err, err, ok], |_, a| {
                a.push_back(Value::Integer(fd as i64));
                a.push_back(Value::Integer(purpose as i64));
                Ok(())
            })
        })
    }

    /// nil lets the binding open the socket as libcurl would; an integer is
    /// the descriptor to use; false refuses the connection.
    fn opensocket(&self, purpose: c_int, addr: &SockAddr<'_>) -> sys::curl_socket_t {
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return addr.open();
            };
            let (ip, port) = addr.ip_port();
            let r = invoke(self, ctx, Cb::OpenSocket, |lua, a| {
                a.push_back(Value::Integer(purpose as i64));
                let t = lua.create_table()?;
                t.raw_set("family", addr.family())?;
                t.raw_set("socktype", addr.socktype())?;
                t.raw_set("protocol", addr.protocol())?;
                t.raw_set("ip", ip)?;
                t.raw_set("port", port)?;
                a.push_back(Value::Table(t));
                Ok(())
            });
            match r {
                Call::NoFn => addr.open(),
                Call::Failed => -1,
                Call::Done(r) => match first(&r) {
                    Value::Nil | Value::Boolean(true) => addr.open(),
                    Value::Boolean(false) => -1,
                    v => to_int(&v)
                        .filter(|n| (0..=c_int::MAX as i64).contains(n))
                        .map(|n| n as sys::curl_socket_t)
                        .unwrap_or_else(|| {
                            ctx.bad_return("open-socket", &v, "nil, false or a descriptor");
                            -1
                        }),
                },
            }
        })
    }

    /// The binding closes the descriptor after the callback unless it
    /// returns false (meaning "I closed it").
    fn closesocket(&self, fd: sys::curl_socket_t) -> c_int {
        let keep = self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return false;
            };
            let r = invoke(self, ctx, Cb::CloseSocket, |_, a| {
                a.push_back(Value::Integer(fd as i64));
                Ok(())
            });
            matches!(&r, Call::Done(r) if matches!(first(r), Value::Boolean(false)))
        });
        if !keep {
            ffi::close_socket(fd);
        }
        0
    }

    fn resolver_start(&self) -> c_int {
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return 0;
            };
            match invoke(self, ctx, Cb::ResolverStart, |_, _| Ok(())) {
                Call::NoFn => 0,
                Call::Failed => 1,
                Call::Done(r) => match first(&r) {
                    Value::Nil | Value::Boolean(false) => 0,
                    Value::Boolean(true) => 1,
                    v => (to_int(&v).unwrap_or(1) != 0) as c_int,
                },
            }
        })
    }

    fn prereq(
        &self,
        primary: Option<&[u8]>,
        local: Option<&[u8]>,
        pport: c_int,
        lport: c_int,
    ) -> c_int {
        let (ok, abort) = (c::CURL_PREREQFUNC_OK, c::CURL_PREREQFUNC_ABORT);
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok as c_int;
            };
            code_call(self, ctx, Cb::Prereq, [ok, abort, abort, ok], |lua, a| {
                a.push_back(opt_str(lua, primary)?);
                a.push_back(opt_str(lua, local)?);
                a.push_back(Value::Integer(pport as i64));
                a.push_back(Value::Integer(lport as i64));
                Ok(())
            })
        })
    }

    /// An array of "Name: value" strings (or nil for none).
    fn trailer(&self, list: &TrailerList<'_>) -> c_int {
        let ok = c::CURL_TRAILERFUNC_OK as c_int;
        let abort = c::CURL_TRAILERFUNC_ABORT as c_int;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok;
            };
            let r = match invoke(self, ctx, Cb::Trailer, |_, _| Ok(())) {
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
                    list.append(&items);
                    ok
                }
                v => {
                    ctx.bad_return("trailer", &v, "an array of strings, nil or false");
                    abort
                }
            }
        })
    }

    /// FTP wildcard chunk start: `fn(info, remains, ud)`.
    fn chunk_bgn(&self, info: &FileInfo<'_>, remains: c_int) -> c_long {
        let ok = c::CURL_CHUNK_BGN_FUNC_OK;
        let codes = [
            ok,
            c::CURL_CHUNK_BGN_FUNC_SKIP,
            c::CURL_CHUNK_BGN_FUNC_FAIL,
            ok,
        ];
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok as c_long;
            };
            code_call(self, ctx, Cb::ChunkBgn, codes, |lua, a| {
                let t = lua.create_table()?;
                t.raw_set("filename", opt_str(lua, info.filename())?)?;
                t.raw_set("filetype", info.filetype())?;
                t.raw_set("time", info.time())?;
                t.raw_set("perm", info.perm())?;
                t.raw_set("uid", info.uid())?;
                t.raw_set("gid", info.gid())?;
                t.raw_set("size", info.size())?;
                t.raw_set("hardlinks", info.hardlinks())?;
                t.raw_set("flags", info.flags())?;
                let [time, perm, user, group, target] = info.strings();
                let s = lua.create_table()?;
                s.raw_set("time", opt_str(lua, time)?)?;
                s.raw_set("perm", opt_str(lua, perm)?)?;
                s.raw_set("user", opt_str(lua, user)?)?;
                s.raw_set("group", opt_str(lua, group)?)?;
                if target.is_some() {
                    s.raw_set("target", opt_str(lua, target)?)?;
                }
                t.raw_set("strings", s)?;
                a.push_back(Value::Table(t));
                a.push_back(Value::Integer(remains as i64));
                Ok(())
            }) as c_long
        })
    }

    fn chunk_end(&self) -> c_long {
        let ok = c::CURL_CHUNK_END_FUNC_OK;
        let fail = c::CURL_CHUNK_END_FUNC_FAIL;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok as c_long;
            };
            code_call(self, ctx, Cb::ChunkEnd, [ok, fail, fail, ok], |_, _| Ok(())) as c_long
        })
    }

    fn fnmatch(&self, pattern: Option<&[u8]>, string: Option<&[u8]>) -> c_int {
        let fail = c::CURL_FNMATCHFUNC_FAIL;
        let codes = [
            c::CURL_FNMATCHFUNC_MATCH,
            c::CURL_FNMATCHFUNC_NOMATCH,
            fail,
            fail,
        ];
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return fail as c_int;
            };
            code_call(self, ctx, Cb::FnMatch, codes, |lua, a| {
                a.push_back(opt_str(lua, pattern)?);
                a.push_back(opt_str(lua, string)?);
                Ok(())
            })
        })
    }

    /// Must return a CURLKHSTAT_* value; anything else (or an error)
    /// rejects the key.
    fn ssh_key(&self, known: Option<KhKey>, found: Option<KhKey>, m: c_int) -> c_int {
        let reject = c::CURLKHSTAT_REJECT as c_int;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return reject;
            };
            match invoke(self, ctx, Cb::SshKey, |lua, a| {
                a.push_back(khkey(lua, known)?);
                a.push_back(khkey(lua, found)?);
                a.push_back(Value::Integer(m as i64));
                Ok(())
            }) {
                Call::Done(r) => to_int(&first(&r))
                    .filter(|n| (0..=c_int::MAX as i64).contains(n))
                    .map_or(reject, |n| n as c_int),
                _ => reject,
            }
        })
    }

    fn ssh_hostkey(&self, keytype: c_int, key: &[u8]) -> c_int {
        let mismatch = c::CURLKHMATCH_MISMATCH as c_int;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return mismatch;
            };
            let r = invoke(self, ctx, Cb::SshHostKey, |lua, a| {
                a.push_back(Value::Integer(keytype as i64));
                a.push_back(Value::String(lua.create_string(key)?));
                Ok(())
            });
            match r {
                Call::Done(r) => match first(&r) {
                    Value::Boolean(true) => c::CURLKHMATCH_OK as c_int,
                    v => to_int(&v)
                        .filter(|n| (0..=c_int::MAX as i64).contains(n))
                        .map_or(mismatch, |n| n as c_int),
                },
                _ => mismatch,
            }
        })
    }

    /// A table `{host =, include_subdomains =, expire =}` per call, nil
    /// when there are no more entries.
    fn hsts_read(&self, entry: &HstsRead<'_>) -> c_int {
        let done = c::CURLSTS_DONE as c_int;
        let fail = c::CURLSTS_FAIL as c_int;
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return done;
            };
            let r = match invoke(self, ctx, Cb::HstsRead, |_, _| Ok(())) {
                Call::NoFn => return done,
                Call::Failed => return fail,
                Call::Done(r) => r,
            };
            let t = match first(&r) {
                Value::Nil | Value::Boolean(false) => return done,
                Value::Table(t) => t,
                v => {
                    ctx.bad_return("HSTS read", &v, "a table or nil");
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
            if !entry.set_host(&host.as_bytes()) {
                ctx.park(Fail::Usage(
                    "the HSTS read callback's host name is too long".into(),
                ));
                return fail;
            }
            let sub: bool = t
                .raw_get::<Option<bool>>("include_subdomains")
                .ok()
                .flatten()
                .unwrap_or(false);
            entry.set_include_subdomains(sub);
            let expire: Option<LuaString> = t.raw_get("expire").ok().flatten();
            entry.set_expire(&expire.map(|x| x.as_bytes().to_vec()).unwrap_or_default());
            c::CURLSTS_OK as c_int
        })
    }

    fn hsts_write(&self, entry: &HstsWrite, index: usize, total: usize) -> c_int {
        let (ok, fail) = (c::CURLSTS_OK, c::CURLSTS_FAIL);
        self.with_ctx(|ctx| {
            let Some(ctx) = ctx else {
                return ok as c_int;
            };
            code_call(self, ctx, Cb::HstsWrite, [ok, fail, fail, ok], |lua, a| {
                a.push_back(Value::Table(hsts_entry(lua, entry)?));
                let i = lua.create_table()?;
                i.raw_set("index", index as i64)?;
                i.raw_set("total", total as i64)?;
                a.push_back(Value::Table(i));
                Ok(())
            })
        })
    }

    fn panicked(&self, msg: String) {
        self.with_ctx(|ctx| {
            if let Some(ctx) = ctx {
                ctx.park_panic(msg);
            }
        })
    }
}
