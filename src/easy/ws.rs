//! `easy:WsSend`, `easy:WsRecv`, `easy:WsMeta`: libcurl's WebSocket API
//! (`curl_ws_send`, `curl_ws_recv`, `curl_ws_meta`). Where libcurl has no
//! WebSockets each is a usage error saying which libcurl has them.

use super::{open, run_with_ctx};
use crate::error::{usage, Fail, R};
use crate::ffi::{Fault, WsFrame};
use crate::luaapi::Args;
use crate::options::c;
use mlua::prelude::*;
use mlua::Value;

/// `CURLWS_TEXT` (websockets.h; the system headers of a libcurl older
/// than 7.86 do not have it).
const CURLWS_TEXT: i64 = 1;

/// A frame's metadata as a table: `age`, `flags` (`CURLWS_*` bits),
/// `offset`, `bytesleft`, `len`.
fn frame_table(lua: &Lua, f: &WsFrame) -> LuaResult<LuaTable> {
    let t = lua.create_table_with_capacity(0, 5)?;
    t.raw_set("age", f.age)?;
    t.raw_set("flags", f.flags)?;
    t.raw_set("offset", f.offset)?;
    t.raw_set("bytesleft", f.bytesleft)?;
    t.raw_set("len", f.len as i64)?;
    Ok(t)
}

fn fail(what: &'static str, h_err: Option<String>) -> impl Fn(Fault) -> Fail {
    move |f| match f {
        Fault::Code(rc) => Fail::Easy(rc, h_err.clone().or_else(|| Some(what.to_string()))),
        Fault::Refused(why) => Fail::Usage(why),
        Fault::Multi(rc) => Fail::Multi(rc, None),
    }
}

/// `easy:WsSend(data[, flags[, fragsize]])` → bytes sent; 0 when the
/// socket is not ready (`CURLE_AGAIN`: call again with the same
/// arguments). `flags` defaults to `CURLWS_TEXT`.
pub(super) fn ws_send(lua: &Lua, args: Args) -> R<i64> {
    let (ud, e, h) = open(&args)?;
    let data = args.bytes(1, "data")?;
    let flags = args.opt_int_in(2, "flags", CURLWS_TEXT, 0, u32::MAX as i64)?;
    let fragsize = args.opt_int_in(3, "fragsize", 0, 0, i64::MAX)?;
    if fragsize != 0 && fragsize < data.len() as i64 {
        return usage("bad argument #3 'fragsize' (smaller than the data)");
    }
    let (r, err) = run_with_ctx(lua, ud, &e, || h.ws_send(&data, fragsize, flags as u32))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok(n) => Ok(n as i64),
        Err(Fault::Code(rc)) if rc as i64 == c::CURLE_AGAIN => Ok(0),
        Err(f) => Err(fail("curl_ws_send", h.error_text())(f)),
    }
}

/// `easy:WsRecv([max])` → data, frame metadata; nil when nothing is
/// there yet (`CURLE_AGAIN`). `max` defaults to 64 KiB.
pub(super) fn ws_recv(lua: &Lua, args: Args) -> R<(Value, Value)> {
    let (ud, e, h) = open(&args)?;
    let max = args.opt_int_in(1, "max", 64 * 1024, 1, 64 * 1024 * 1024)?;
    let mut buf = vec![0u8; max as usize];
    let (r, err) = run_with_ctx(lua, ud, &e, || h.ws_recv(&mut buf))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok((n, frame)) => {
            let meta = match frame {
                Some(f) => Value::Table(frame_table(lua, &f)?),
                None => Value::Nil,
            };
            Ok((Value::String(lua.create_string(&buf[..n])?), meta))
        }
        Err(Fault::Code(rc)) if rc as i64 == c::CURLE_AGAIN => Ok((Value::Nil, Value::Nil)),
        Err(f) => Err(fail("curl_ws_recv", h.error_text())(f)),
    }
}

/// `easy:WsMeta()` → the metadata of the frame the write callback is
/// getting, or nil outside one.
pub(super) fn ws_meta(lua: &Lua, args: Args) -> R<Value> {
    let (_ud, _e, h) = open(&args)?;
    match h.ws_meta().map_err(fail("curl_ws_meta", None))? {
        Some(f) => Ok(Value::Table(frame_table(lua, &f)?)),
        None => Ok(Value::Nil),
    }
}
