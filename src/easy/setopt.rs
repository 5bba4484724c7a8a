//! `easy:SetOpt(option, value[, userdata])`: every `CURLOPT_*` the linked
//! libcurl reports, converted by the option's entry in the option table
//! (`options.rs`): its libcurl kind, or what the binding does instead
//! (callbacks, kept bodies, objects, refusals).

use super::{open, uv, EasyHandle, EasyInner};
use crate::buffer;
use crate::ctx::CtxSource;
use crate::error::{fault, usage, Fail, R};
use crate::ffi::Cb;
use crate::luaapi::{to_int, type_name, Args, Handle};
use crate::options::{c, ot, tables, Opt, Special};
use crate::{mime, share, url};
use mlua::prelude::*;
use mlua::Value;
use std::ffi::CString;
use std::rc::{Rc, Weak};

/// `easy:SetOpt(option, value[, userdata])`.
pub fn set_opt(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let id = args.c_int(1, "option")?;
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
    set_value(ud, &e, &h, id as i64, meta, args.get(2), userdata)
}

fn set_value(
    ud: &LuaAnyUserData,
    e: &Rc<EasyInner>,
    h: &EasyHandle,
    id: i64,
    meta: &Opt,
    v: Value,
    userdata: Option<Value>,
) -> R<()> {
    let opt = meta.full.as_str();
    match meta.special {
        Special::Refused(why) => usage(format!("{opt} {why}")),
        Special::Callback(cb) => set_callback(ud, h, cb, opt, v, userdata),
        Special::Data(cb) => {
            uv(ud)?.raw_set(id, v)?;
            if cb.is_stream() {
                refresh_stream(ud, h, cb)?;
            }
            Ok(())
        }
        Special::Private => Ok(uv(ud)?.raw_set(id, v)?),
        Special::PostFields => {
            // libcurl does not copy POSTFIELDS: the handle keeps the bytes,
            // and gives libcurl their length so binary bodies work.
            let bytes = match &v {
                Value::Nil => None,
                _ => match lua_bytes(&v) {
                    Some(b) => Some(b),
                    None => return bad_value(opt, "string or nil", &v),
                },
            };
            h.set_postfields(bytes.as_deref()).map_err(fault(opt))
        }
        Special::PostFieldSize => {
            // With a body kept by the handle, libcurl must not read past it.
            let n = to_int(&v).map_or_else(|| bad_value(opt, "integer", &v), Ok)?;
            if let Some(len) = h.postfields_len() {
                let len = len as i64;
                if n < 0 || n > len {
                    return usage(format!(
                        "bad argument #2 'value' for {opt} (the POSTFIELDS body has {len} bytes; expected 0 to {len})"
                    ));
                }
            }
            set_by_kind(h, id, meta.kind, opt, &v)
        }
        Special::ForbidReuse => {
            let closing_fn = matches!(
                uv(ud)?.raw_get::<Value>(c::CURLOPT_CLOSESOCKETFUNCTION)?,
                Value::Function(_)
            );
            if closing_fn && long_value(opt, &v)? == 0 {
                return usage(format!(
                    "{opt} must stay on while a CLOSESOCKETFUNCTION is set (cached connections would outlive the handle)"
                ));
            }
            set_by_kind(h, id, meta.kind, opt, &v)
        }
        Special::Share | Special::Curlu | Special::MimePost => {
            set_object(ud, e, h, id, meta.special, opt, v)
        }
        Special::StreamDepends => {
            // Checked, then ignored, on every libcurl: 8.21 made these
            // options no-ops, and from 7.88 to 8.20 libcurl keeps the
            // dependency links in the handle's options, which DupHandle
            // copies (both handles then free the same links) and Reset
            // forgets (the other handle keeps a pointer to a freed one).
            match &v {
                Value::Nil => Ok(()),
                Value::UserData(u) if u.is::<super::Easy>() => {
                    if super::inner_of(u)?.handle().is_none() {
                        return usage(format!("{opt}: the easy handle given is closed"));
                    }
                    Ok(())
                }
                _ => bad_value(opt, "curl.Easy or nil", &v),
            }
        }
        Special::None => set_by_kind(h, id, meta.kind, opt, &v),
        Special::MultiSocket
        | Special::MultiTimer
        | Special::MultiPush
        | Special::MultiData
        | Special::MultiStrings => usage(format!("{opt} is a multi option")),
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

/// Options in whole seconds that have a milliseconds twin (`<name>_MS`).
const HAS_MS: [&str; 3] = [
    "CURLOPT_TIMEOUT",
    "CURLOPT_CONNECTTIMEOUT",
    "CURLOPT_SERVER_RESPONSE_TIMEOUT",
];

/// Converts a long option's value: integer, or boolean (1 / 0). A fraction
/// is refused, naming the `_MS` twin of a seconds option.
pub fn long_value(opt: &str, v: &Value) -> R<i64> {
    match v {
        Value::Boolean(b) => Ok(*b as i64),
        Value::Number(f) if f.is_finite() && to_int(v).is_none() => {
            let hint = if HAS_MS.contains(&opt) {
                format!(
                    "; {opt} takes whole seconds: use {opt}_MS, in milliseconds ({})",
                    (f * 1000.0).round()
                )
            } else {
                String::new()
            };
            usage(format!(
                "bad argument #2 'value' for {opt} (expected integer or boolean, got the fraction {f}{hint})"
            ))
        }
        _ => to_int(v).map_or_else(|| bad_value(opt, "integer or boolean", v), Ok),
    }
}

fn string_list(opt: &str, v: &Value, headers: bool) -> R<Vec<CString>> {
    let Value::Table(t) = v else {
        return bad_value(opt, "array of strings or nil", v);
    };
    let n = t.raw_len();
    // keys other than 1..n: a map, which ipairs would silently skip
    let mut other: Option<Value> = None;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair?;
        let listed = match k {
            Value::Integer(i) => i >= 1 && (i as usize) <= n,
            // Lua 5.1 / LuaJIT keys are doubles
            Value::Number(f) => f.fract() == 0.0 && f >= 1.0 && f <= n as f64,
            _ => false,
        };
        if !listed {
            other = Some(k);
            break;
        }
    }
    if let Some(k) = other {
        if headers && n == 0 {
            return header_map(opt, t);
        }
        return usage(format!(
            "bad argument #2 'value' for {opt}: expected a list of strings, got a table with the key {} ({}){}",
            match &k {
                Value::String(s) => format!("{:?}", s.to_string_lossy()),
                _ => type_name(&k),
            },
            type_name(&k),
            if headers {
                "; headers may also be a map of names to values, with no list items"
            } else {
                ""
            }
        ));
    }
    let mut out = Vec::new();
    for i in 1..=n {
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

/// A header map (`{ ["X-A"] = "1", ["X-B"] = { "p", "q" }, Accept = false }`)
/// as `Name: value` lines, sorted by name: a list value repeats the header,
/// `false` removes one libcurl would send (`Name:`).
fn header_map(opt: &str, t: &LuaTable) -> R<Vec<CString>> {
    let mut items: Vec<(Vec<u8>, Value)> = Vec::new();
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Value::String(name) = &k else {
            return usage(format!(
                "bad argument #2 'value' for {opt}: a header map's keys are names, got a {}",
                type_name(&k)
            ));
        };
        items.push((name.as_bytes().to_vec(), v));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    let line = |name: &[u8], value: Option<&[u8]>| -> R<CString> {
        let mut l = name.to_vec();
        match value {
            Some(v) => {
                l.extend_from_slice(b": ");
                l.extend_from_slice(v);
            }
            None => l.push(b':'),
        }
        CString::new(l).map_err(|_| Fail::Usage(format!("{opt}: a header contains a NUL byte")))
    };
    for (name, v) in items {
        let shown = String::from_utf8_lossy(&name).into_owned();
        match &v {
            Value::Boolean(false) => out.push(line(&name, None)?),
            Value::Table(list) => {
                for x in list.clone().sequence_values::<Value>() {
                    let x = x?;
                    let Some(b) = lua_bytes(&x) else {
                        return usage(format!(
                            "bad argument #2 'value' for {opt}: header {shown:?} has a {} in its list (expected strings)",
                            type_name(&x)
                        ));
                    };
                    out.push(line(&name, Some(&b))?);
                }
            }
            _ => {
                let Some(b) = lua_bytes(&v) else {
                    return usage(format!(
                        "bad argument #2 'value' for {opt}: header {shown:?} is a {} (expected a string, a list of strings or false)",
                        type_name(&v)
                    ));
                };
                out.push(line(&name, Some(&b))?);
            }
        }
    }
    Ok(out)
}

/// Sets a long, off_t, string, blob or list option from its Lua value.
fn set_by_kind(h: &EasyHandle, id: i64, kind: i32, opt: &str, v: &Value) -> R<()> {
    let f = fault(opt);
    match kind {
        ot::LONG | ot::VALUES => {
            let n = long_value(opt, v)?;
            h.set_long(id, n as std::os::raw::c_long).map_err(f)
        }
        ot::OFF_T => {
            let Some(n) = to_int(v) else {
                return bad_value(opt, "integer", v);
            };
            h.set_off_t(id, n).map_err(f)
        }
        ot::STRING => match v {
            Value::Nil => h.set_string(id, None).map_err(f),
            _ => {
                let Some(b) = lua_bytes(v) else {
                    return bad_value(opt, "string or nil", v);
                };
                let cs = CString::new(b)
                    .map_err(|_| Fail::Usage(format!("{opt}: the string contains a NUL byte")))?;
                h.set_string(id, Some(&cs)).map_err(f)
            }
        },
        ot::BLOB => match v {
            Value::Nil => h.set_blob(id, None).map_err(f),
            Value::String(s) => h.set_blob(id, Some(&s.as_bytes())).map_err(f),
            _ => bad_value(opt, "string or nil", v),
        },
        ot::SLIST => match v {
            Value::Nil => h.set_slist(id, None).map_err(f),
            _ => {
                let headers = id == c::CURLOPT_HTTPHEADER || id == c::CURLOPT_PROXYHEADER;
                let items = string_list(opt, v, headers)?;
                h.set_slist(id, Some(items)).map_err(f)
            }
        },
        _ => usage(format!(
            "{opt} is not supported by this version of the module"
        )),
    }
}

/// `SHARE` (curl.Share), `CURLU` (curl.URL), `MIMEPOST` (curl.Mime): the
/// FFI handle holds the libcurl object while it uses it, the user value
/// the Lua object.
fn set_object(
    ud: &LuaAnyUserData,
    e: &Rc<EasyInner>,
    h: &EasyHandle,
    id: i64,
    special: Special,
    opt: &str,
    v: Value,
) -> R<()> {
    let closed = |what: &str| Fail::Usage(format!("{opt}: the {what} handle is closed"));
    match (special, &v) {
        (Special::Share, Value::Nil) => h.set_share(None).map_err(fault(opt))?,
        (Special::Share, Value::UserData(u)) if u.is::<share::Share>() => {
            let s = u.borrow::<share::Share>()?.inner();
            let sh = s.handle().ok_or_else(|| closed("share"))?;
            h.set_share(Some(sh)).map_err(fault(opt))?
        }
        (Special::Curlu, Value::Nil) => h.set_url(None).map_err(fault(opt))?,
        (Special::Curlu, Value::UserData(u)) if u.is::<url::Url>() => {
            let s = u.borrow::<url::Url>()?.inner();
            let uh = s.handle().ok_or_else(|| closed("URL"))?;
            h.set_url(Some(uh)).map_err(fault(opt))?
        }
        (Special::MimePost, Value::Nil) => h.set_mime(None).map_err(fault(opt))?,
        (Special::MimePost, Value::UserData(u)) if mime::is_mime(u) => {
            let m = mime::for_post(u)?;
            if h.posted_mime().is_some_and(|p| p.same(&m)) {
                return Ok(()); // the same mime again: nothing to do
            }
            let me: Weak<dyn CtxSource> = Rc::downgrade(e) as Weak<EasyInner>;
            let poster = Rc::new(mime::Poster(me));
            let posted = m.post(poster).map_err(|f| match f {
                crate::ffi::Fault::Refused(why) => {
                    Fail::Usage(format!("bad argument #2 'value' for {opt} ({why})"))
                }
                other => fault(opt)(other),
            })?;
            h.set_mime(Some(posted)).map_err(fault(opt))?
        }
        _ => {
            let expected = match special {
                Special::Share => "curl.Share or nil",
                Special::Curlu => "curl.URL or nil",
                _ => "curl.Mime or nil",
            };
            return bad_value(opt, expected, &v);
        }
    }
    uv(ud)?.raw_set(id, v)?;
    Ok(())
}

/// True when `v` has a callable field `method` (a Lua file, a buffer object).
fn has_method(v: &Value, method: &str) -> bool {
    let f: Option<Value> = match v {
        Value::Table(t) => t.get(method).ok(),
        Value::UserData(u) => u.get(method).ok(),
        _ => None,
    };
    matches!(f, Some(Value::Function(_)))
}

/// (Re)installs a stream callback (write, header, read): on when a Lua
/// function is set or the *DATA value is file-like (a `curl.Buffer`, or has
/// a `write` / `read` method); otherwise libcurl's default (stdout / stdin).
fn refresh_stream(ud: &LuaAnyUserData, h: &EasyHandle, cb: Cb) -> R<()> {
    let t = uv(ud)?;
    let f: Value = t.raw_get(cb.function_opt())?;
    let d: Value = t.raw_get(cb.data_opt())?;
    let method = if cb == Cb::Read { "read" } else { "write" };
    let on = matches!(f, Value::Function(_))
        || (cb != Cb::Read && buffer::is_buffer(&d))
        || has_method(&d, method);
    h.set_callback(cb, on).map_err(fault("callback"))
}

/// A `CURLOPT_*FUNCTION`: the Lua function (or nil) in the user value, and
/// the trampoline on or off.
fn set_callback(
    ud: &LuaAnyUserData,
    h: &EasyHandle,
    cb: Cb,
    opt: &str,
    v: Value,
    userdata: Option<Value>,
) -> R<()> {
    let on = match &v {
        Value::Function(_) => true,
        Value::Nil => false,
        _ => return bad_value(opt, "function or nil", &v),
    };
    let t = uv(ud)?;
    t.raw_set(cb.function_opt(), v)?;
    if let Some(d) = userdata {
        t.raw_set(cb.data_opt(), d)?;
    }
    if cb.is_stream() {
        return refresh_stream(ud, h, cb);
    }
    if on && cb == Cb::CloseSocket {
        // libcurl keeps the close-socket callback in each connection, and
        // cached connections outlive the easy's transfer: with a Lua
        // close-socket function, connections are closed when their
        // transfer ends, while the easy is still alive.
        h.set_long(c::CURLOPT_FORBID_REUSE, 1).map_err(fault(opt))?;
    }
    h.set_callback(cb, on).map_err(fault(opt))?;
    if matches!(cb, Cb::XferInfo | Cb::Progress) {
        // libcurl calls progress functions only with NOPROGRESS off.
        let any = matches!(
            t.raw_get::<Value>(Cb::XferInfo.function_opt())?,
            Value::Function(_)
        ) || matches!(
            t.raw_get::<Value>(Cb::Progress.function_opt())?,
            Value::Function(_)
        );
        h.set_long(c::CURLOPT_NOPROGRESS, (!any) as _)
            .map_err(fault(opt))?;
    }
    Ok(())
}
