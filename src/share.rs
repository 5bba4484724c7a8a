//! `curl.Share`: a share handle (cookies, DNS cache, TLS sessions,
//! connections shared between easy handles).
//!
//! Every easy that uses a share holds an `Rc` of it, so libcurl's share is
//! destroyed only after the last easy stopped using it, whatever the order of
//! garbage collection; an explicit `Close` while easies use it is refused.

use crate::consts::c;
use crate::error::{reg, reg_fn, usage, Args, Fail, R};
use crate::raw::{self, SharePtr};
use mlua::prelude::*;
use mlua::{UserData, UserDataFields};
use std::cell::Cell;
use std::rc::Rc;

pub const CLASS: &str = "curl.Share";

pub struct ShareInner {
    raw: Cell<Option<SharePtr>>,
    /// Bit `1 << CURL_LOCK_DATA_*` for each kind of data shared.
    shared: Cell<u64>,
}

impl ShareInner {
    pub fn raw(&self) -> Option<SharePtr> {
        self.raw.get()
    }

    /// Whether `CURL_LOCK_DATA_*` `data` is shared.
    pub fn shares(&self, data: i64) -> bool {
        (0..64).contains(&data) && self.shared.get() & (1 << data) != 0
    }
}

impl Drop for ShareInner {
    fn drop(&mut self) {
        if let Some(s) = self.raw.take() {
            raw::share_cleanup(s);
        }
    }
}

pub struct Share(pub Rc<ShareInner>);

impl UserData for Share {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<ShareInner>> {
    Ok(ud
        .borrow::<Share>()
        .map_err(|_| Fail::Usage("the share handle was garbage-collected".into()))?
        .0
        .clone())
}

fn open(args: &Args) -> R<(Rc<ShareInner>, SharePtr)> {
    let ud = args.this::<Share>(CLASS)?;
    let s = inner_of(ud)?;
    let p = s
        .raw()
        .ok_or_else(|| Fail::Usage("the share handle is closed".into()))?;
    Ok((s, p))
}

fn set_opt(_lua: &Lua, args: Args) -> R<()> {
    let (s, p) = open(&args)?;
    let opt = args.int(1, "option")?;
    match opt {
        c::CURLSHOPT_SHARE | c::CURLSHOPT_UNSHARE => {
            let v = args.c_int(2, "value")?;
            let rc = raw::share_setopt_long(p, opt as i32, v as std::os::raw::c_long);
            if rc != 0 {
                return Err(Fail::Share(rc, None));
            }
            if (0..64).contains(&v) {
                let bit = 1u64 << v;
                let old = s.shared.get();
                s.shared.set(if opt == c::CURLSHOPT_SHARE {
                    old | bit
                } else {
                    old & !bit
                });
            }
            Ok(())
        }
        c::CURLSHOPT_LOCKFUNC | c::CURLSHOPT_UNLOCKFUNC | c::CURLSHOPT_USERDATA => usage(
            "bad argument #1 'option' (locking callbacks are for threads; a Lua state is single-threaded and needs none)",
        ),
        _ => usage(format!("bad argument #1 'option' (unknown share option {opt})")),
    }
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let ud = args.this::<Share>(CLASS)?;
    let s = inner_of(ud)?;
    let Some(p) = s.raw() else {
        return Ok(());
    };
    let users = Rc::strong_count(&s) - 2; // the userdata's and ours
    if users > 0 {
        return usage(format!(
            "the share is in use by {users} easy handle(s); unset their SHARE option or close them first"
        ));
    }
    let rc = raw::share_cleanup(p);
    if rc != 0 {
        return Err(Fail::Share(rc, None));
    }
    s.raw.set(None);
    Ok(())
}

fn create(_lua: &Lua) -> R<Share> {
    raw::global_init();
    let p = raw::share_init()
        .ok_or_else(|| Fail::Usage("curl_share_init failed (out of memory)".into()))?;
    Ok(Share(Rc::new(ShareInner {
        raw: Cell::new(Some(p)),
        shared: Cell::new(0),
    })))
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "SetOpt", "share:SetOpt", set_opt)?;
    reg(lua, &t, "Close", "share:Close", close)?;
    raw_t.raw_set("Share", t)?;
    reg_fn(lua, raw_t, "new_share", "curl.Share", |lua, _a| {
        Ok(lua.create_userdata(create(lua)?)?)
    })?;
    Ok(())
}
