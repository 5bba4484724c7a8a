//! `curl.URL`: libcurl's URL API (`curl_url_*`).
//!
//! Easy handles using a URL object (`CURLU` option) hold the libcurl URL
//! (`Rc<ffi::Url>`), so it lives as long as any transfer may read it.

use crate::error::{reg, reg_fn, usage, Fail, R};
use crate::ffi;
use crate::luaapi::class::lua_class;
use crate::luaapi::{type_name, Args};
use crate::options::c;
use mlua::prelude::*;
use mlua::Value;
use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_int, c_uint};
use std::rc::Rc;

pub struct UrlInner {
    handle: RefCell<Option<Rc<ffi::Url>>>,
}

impl UrlInner {
    /// The libcurl URL, unless closed.
    pub fn handle(&self) -> Option<Rc<ffi::Url>> {
        self.handle.borrow().clone()
    }
}

pub struct Url(Rc<UrlInner>);

lua_class!(Url, "curl.URL", "the URL handle", Rc<UrlInner>,
    open(inner) => inner.handle.borrow().is_some());

fn open(args: &Args) -> R<Rc<ffi::Url>> {
    let (_ud, u) = args.open::<Url>()?;
    u.handle()
        .ok_or_else(|| Fail::Usage("the URL handle is closed".into()))
}

/// `CURLUE_NO_SCHEME` ... `CURLUE_NO_ZONEID`: the part is absent.
fn is_absent(code: c_int) -> bool {
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

fn set_part(u: &ffi::Url, part: i64, v: &Value, flags: i64, n: usize) -> R<()> {
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
    u.set(part as c_int, cs.as_deref(), flags as c_uint)
        .map_err(|rc| Fail::Url(rc, None))
}

fn set(_lua: &Lua, args: Args) -> R<()> {
    let u = open(&args)?;
    let part = args.c_int(1, "part")? as i64;
    let flags = args.opt_int_in(3, "flags", 0, 0, u32::MAX as i64)?;
    set_part(&u, part, args.get_ref(2), flags, 2)
}

/// The part's text, or nil when the URL has no such part.
fn get(lua: &Lua, args: Args) -> R<Value> {
    let u = open(&args)?;
    let part = args.c_int(1, "part")?;
    let flags = args.opt_int_in(2, "flags", 0, 0, u32::MAX as i64)?;
    if let Err(why) = u.punycode_guard(part, flags as c_uint) {
        return Err(Fail::Usage(why));
    }
    match u.get(part, flags as c_uint) {
        Ok(b) => Ok(Value::String(lua.create_string(&b)?)),
        Err(rc) if is_absent(rc) => Ok(Value::Nil),
        Err(rc) => Err(Fail::Url(rc, None)),
    }
}

fn wrap(lua: &Lua, h: ffi::Url) -> R<LuaAnyUserData> {
    Ok(crate::luaapi::raw::new_object(
        lua,
        Url(Rc::new(UrlInner {
            handle: RefCell::new(Some(Rc::new(h))),
        })),
    )?)
}

fn dup(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let u = open(&args)?;
    let n = u
        .dup()
        .ok_or_else(|| Fail::Usage("curl_url_dup failed (out of memory)".into()))?;
    wrap(lua, n)
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, u) = args.this::<Url>()?;
    let Some(h) = u.handle() else {
        return Ok(());
    };
    let users = Rc::strong_count(&h) - 2; // ours and the one just taken
    if users > 0 {
        return usage(format!(
            "the URL is in use by {users} easy handle(s) (CURLU option)"
        ));
    }
    drop(h);
    u.handle.borrow_mut().take(); // the last holder: curl_url_cleanup
    Ok(())
}

fn create(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let h = ffi::Url::new().ok_or_else(|| Fail::Usage("curl_url failed (out of memory)".into()))?;
    let v = args.get_ref(1);
    if !v.is_nil() {
        let flags = args.opt_int_in(2, "flags", 0, 0, u32::MAX as i64)?;
        set_part(&h, c::CURLUPART_URL, v, flags, 1)?;
    }
    wrap(lua, h)
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
