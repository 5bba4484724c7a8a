//! `curl.Share`: a share handle (cookies, DNS cache, TLS sessions,
//! connections shared between easy handles).
//!
//! Every easy that uses a share holds the libcurl share (`Rc<ffi::Share>`),
//! so it is destroyed only after the last easy stopped using it, whatever
//! the order of garbage collection; an explicit `Close` while easies use
//! it is refused.

use crate::error::{reg, reg_fn, usage, Fail, R};
use crate::ffi;
use crate::luaapi::class::lua_class;
use crate::luaapi::Args;
use crate::options::c;
use mlua::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

pub struct ShareInner {
    handle: RefCell<Option<Rc<ffi::Share>>>,
}

impl ShareInner {
    /// The libcurl share, unless closed.
    pub fn handle(&self) -> Option<Rc<ffi::Share>> {
        self.handle.borrow().clone()
    }
}

pub struct Share(Rc<ShareInner>);

lua_class!(Share, "curl.Share", "the share handle", Rc<ShareInner>,
    open(inner) => inner.handle.borrow().is_some());

fn set_opt(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, s) = args.open::<Share>()?;
    let opt = args.int(1, "option")?;
    match opt {
        c::CURLSHOPT_SHARE | c::CURLSHOPT_UNSHARE => {
            let v = args.c_int(2, "value")?;
            let Some(h) = s.handle() else {
                return usage("the share handle is closed");
            };
            if opt == c::CURLSHOPT_SHARE {
                if let Some(why) = h.share_refused(v) {
                    return usage(why);
                }
            }
            h.set(opt == c::CURLSHOPT_SHARE, v)
                .map_err(|rc| Fail::Share(rc, None))
        }
        c::CURLSHOPT_LOCKFUNC | c::CURLSHOPT_UNLOCKFUNC | c::CURLSHOPT_USERDATA => usage(
            "bad argument #1 'option' (locking callbacks are for threads; a Lua state is single-threaded and needs none)",
        ),
        _ => usage(format!("bad argument #1 'option' (unknown share option {opt})")),
    }
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, s) = args.this::<Share>()?;
    let Some(h) = s.handle() else {
        return Ok(());
    };
    let users = Rc::strong_count(&h) - 2; // ours and the one just taken
    if users > 0 {
        return usage(format!(
            "the share is in use by {users} easy handle(s); unset their SHARE option or close them first"
        ));
    }
    drop(h);
    s.handle.borrow_mut().take(); // the last holder: curl_share_cleanup
    Ok(())
}

fn create(lua: &Lua) -> R<LuaAnyUserData> {
    let h = ffi::Share::new()
        .ok_or_else(|| Fail::Usage("curl_share_init failed (out of memory)".into()))?;
    Ok(crate::luaapi::raw::new_object(
        lua,
        Share(Rc::new(ShareInner {
            handle: RefCell::new(Some(Rc::new(h))),
        })),
    )?)
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "SetOpt", "share:SetOpt", set_opt)?;
    reg(lua, &t, "Close", "share:Close", close)?;
    raw_t.raw_set("Share", t)?;
    reg_fn(lua, raw_t, "new_share", "curl.Share", |lua, _a| create(lua))?;
    Ok(())
}
