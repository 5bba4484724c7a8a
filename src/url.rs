//! `curl.URL`: libcurl's URL API (`curl_url_*`).
//!
//! Easy handles using a URL object (`CURLU` option) hold an `Rc` of it, so
//! it lives as long as any transfer may read it.

use crate::error::{reg, reg_fn, type_name, usage, Args, Fail, R};
use crate::raw::{self, UrlPtr};
use mlua::prelude::*;
use mlua::{UserData, UserDataFields, Value};
use std::cell::Cell;
use std::ffi::CString;
use std::os::raw::{c_int, c_uint};
use std::rc::Rc;

pub const CLASS: &str = "curl.URL";

pub struct UrlInner {
    raw: Cell<Option<UrlPtr>>,
}

impl UrlInner {
    pub fn raw(&self) -> Option<UrlPtr> {
        self.raw.get()
    }
}

impl Drop for UrlInner {
    fn drop(&mut self) {
        if let Some(u) = self.raw.take() {
            raw::url_cleanup(u);
        }
    }
}

pub struct Url(pub Rc<UrlInner>);

impl UserData for Url {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<UrlInner>> {
    Ok(ud
        .borrow::<Url>()
        .map_err(|_| Fail::Usage("the URL handle was garbage-collected".into()))?
        .0
        .clone())
}

fn open(args: &Args) -> R<(Rc<UrlInner>, UrlPtr)> {
    let ud = args.this::<Url>(CLASS)?;
    let u = inner_of(ud)?;
    let p = u
        .raw()
        .ok_or_else(|| Fail::Usage("the URL handle is closed".into()))?;
    Ok((u, p))
}

/// `CURLUE_NO_SCHEME` ... `CURLUE_NO_ZONEID`: the part is absent.
fn is_absent(code: c_int) -> bool {
    use crate::consts::c;
    [
        c::CURLUE_NO_SCHEME,
        c::CURLUE_NO_USER,
        c::CURLUE_NO_PASSWORD,
        c::CURLUE_NO_OPTIONS,
        c::CURLUE_NO_HOST,
        c::CURLUE_NO_PORT,
        c::CURLUE_NO_QUERY,
        c::CURLUE_NO_FRAGMENT,
        c::CURLUE_NO_ZONEID,
    ]
    .contains(&(code as i64))
}

fn set_part(p: UrlPtr, part: i64, v: &Value, flags: i64, n: usize) -> R<()> {
    let cs = match v {
        Value::Nil => None,
        Value::String(s) => Some(CString::new(s.as_bytes().to_vec()).map_err(|_| {
            Fail::Usage(format!("bad argument #{n} 'value' (contains a NUL byte)"))
        })?),
        Value::Integer(_) | Value::Number(_) => {
            Some(CString::new(v.to_string()?).map_err(|_| Fail::Usage("bad number".into()))?)
        }
        _ => {
            return usage(format!(
                "bad argument #{n} 'value' (expected string or nil, got {})",
                type_name(v)
            ))
        }
    };
    // libcurl 7.88 turns an empty value it URL-encodes into NULL (which
    // crashes curl_url_set for a host), and stores an empty path that
    // crashes the transfer using the URL. An empty value needs no encoding,
    // and an empty path is no path.
    let (cs, flags) = match cs {
        Some(c) if c.is_empty() && part == crate::consts::c::CURLUPART_PATH => (None, flags),
        Some(c) if c.is_empty() => (Some(c), flags & !crate::consts::c::CURLU_URLENCODE),
        other => (other, flags),
    };
    let rc = raw::url_set(p, part as c_int, cs.as_deref(), flags as c_uint);
    if rc != 0 {
        return Err(Fail::Url(rc, None));
    }
    Ok(())
}

fn set(_lua: &Lua, args: Args) -> R<()> {
    let (_u, p) = open(&args)?;
    let part = args.c_int(1, "part")? as i64;
    let flags = args.opt_int_in(3, "flags", 0, 0, u32::MAX as i64)?;
    set_part(p, part, &args.get(2), flags, 2)
}

/// The part's text, or nil when the URL has no such part.
fn get(lua: &Lua, args: Args) -> R<Value> {
    let (_u, p) = open(&args)?;
    let part = args.c_int(1, "part")?;
    let flags = args.opt_int_in(2, "flags", 0, 0, u32::MAX as i64)?;
    match raw::url_get(p, part, flags as c_uint) {
        Ok(b) => Ok(Value::String(lua.create_string(&b)?)),
        Err(rc) if is_absent(rc) => Ok(Value::Nil),
        Err(rc) => Err(Fail::Url(rc, None)),
    }
}

fn dup(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (_u, p) = open(&args)?;
    let n =
        raw::url_dup(p).ok_or_else(|| Fail::Usage("curl_url_dup failed (out of memory)".into()))?;
    Ok(lua.create_userdata(Url(Rc::new(UrlInner {
        raw: Cell::new(Some(n)),
    })))?)
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let ud = args.this::<Url>(CLASS)?;
    let u = inner_of(ud)?;
    let Some(p) = u.raw() else {
        return Ok(());
    };
    let users = Rc::strong_count(&u) - 2;
    if users > 0 {
        return usage(format!(
            "the URL is in use by {users} easy handle(s) (CURLU option)"
        ));
    }
    u.raw.set(None);
    raw::url_cleanup(p);
    Ok(())
}

fn create(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    raw::global_init();
    let p = raw::url_new().ok_or_else(|| Fail::Usage("curl_url failed (out of memory)".into()))?;
    let ud = lua.create_userdata(Url(Rc::new(UrlInner {
        raw: Cell::new(Some(p)),
    })))?;
    let v = args.get(1);
    if !v.is_nil() {
        let flags = args.opt_int_in(2, "flags", 0, 0, u32::MAX as i64)?;
        set_part(p, crate::consts::c::CURLUPART_URL, &v, flags, 1)?;
    }
    Ok(ud)
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "Set", "url:Set", set)?;
    reg(lua, &t, "Get", "url:Get", get)?;
    reg(lua, &t, "Dup", "url:Dup", dup)?;
    reg(lua, &t, "Close", "url:Close", close)?;
    raw_t.raw_set("URL", t)?;
    reg_fn(lua, raw_t, "new_url", "curl.URL", create)?;
    Ok(())
}
