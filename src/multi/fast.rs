//! Fast paths of `InfoRead`, `AddHandle`, `RemoveHandle` and
//! `SocketAction`, which run once or more per transfer. Their C functions
//! (`luaapi::raw`) serve the common case without mlua's per-call machinery
//! (argument conversion, userdata type checks, a protected call); the
//! logic is here. The C function pins the multi on the anchor thread for
//! the call (`raw::Holder::Pinned`), so the callbacks libcurl makes during
//! it (Lua socket and timer functions, the easies' callbacks) find it
//! without an mlua handle. Anything unusual (a wrong argument, a closed or
//! busy handle, a call from a coroutine mlua is not running) goes to the
//! full method, which makes the same checks and the errors; an error met
//! here is kept for the method's pending function, which hands it over as
//! the full method would.

use super::{act, added, with_holder, Multi, MultiInner, UV_HANDLES};
use crate::easy::{EasyInner, UV_MULTI};
use crate::error::{finish, multi_fail, Fail, R};
use crate::luaapi::raw::{
    action_path, drain_path, info_path, pair_path, Act, ActionPath, Fast, Info,
};
use crate::luaapi::raw::{Holder, InfoPath, PairPath};
use crate::luaapi::Args;
use crate::options::c;
use mlua::prelude::*;
use std::os::raw::c_int;
use std::rc::Rc;

impl MultiInner {
    /// A call may take a fast path: the multi is open and not inside one
    /// of its own calls (the full method's first checks).
    fn idle_handle(&self) -> Option<Rc<super::MultiHandle>> {
        if self.slot.is_set() {
            return None;
        }
        self.handle()
    }

    /// Keeps a fast path's error for its pending function.
    fn park(&self, f: Fail) {
        *self.pending.borrow_mut() = Some(f);
    }
}

struct InfoRead;

impl InfoPath for InfoRead {
    type A = MultiInner;
    const HANDLES_KEY: i64 = UV_HANDLES;
    const DONE: i64 = c::CURLMSG_DONE as i64;

    fn run(m: &MultiInner) -> Info {
        // curl_multi_info_read calls nothing back: a borrow is fine here.
        let h = m.handle.borrow();
        let Some(h) = h.as_ref() else {
            return Info::Full;
        };
        match m.info_read(h) {
            None => Info::Empty(c::CURLMSG_NONE),
            Some(msg) => Info::Msg(
                msg.msg as i64,
                msg.result as i64,
                msg.remaining as i64,
                msg.easy,
            ),
        }
    }
}

struct AddHandle;

impl PairPath for AddHandle {
    type A = MultiInner;
    type B = EasyInner;
    const LINK: Option<(i64, i64)> = Some((UV_HANDLES, UV_MULTI));
    const UNLINK: Option<(i64, i64)> = None;

    /// The full method's checks, except that an easy whose earlier
    /// transfer kept a callback error (`cause`, cleared with the mlua
    /// handle) goes there.
    fn ready(m: &MultiInner, e: &EasyInner) -> Option<usize> {
        let ok = m.handle.borrow().is_some()
            && !m.slot.is_set()
            && e.is_open()
            && !e.slot.is_set()
            && e.multi.borrow().is_none()
            && !e.has_cause.get();
        ok.then(|| e.addr())
    }

    fn run(lua: &Lua, mh: Holder<'_>, m: &Rc<MultiInner>, e: &Rc<EasyInner>) -> Fast {
        let (Some(h), Some(eh)) = (m.handle(), e.handle()) else {
            return Fast::Full;
        };
        m.hold(e, &eh);
        let (rc, err) = with_holder(lua, mh, m, || h.add(&eh));
        match added(m, e, rc, err) {
            Ok(()) => Fast::Done,
            Err((f, joined)) => {
                m.park(f);
                Fast::Failed { unlink: !joined }
            }
        }
    }

    fn panicked(m: &MultiInner, msg: String) {
        m.park(Fail::Usage(msg));
    }
}

struct RemoveHandle;

impl PairPath for RemoveHandle {
    type A = MultiInner;
    type B = EasyInner;
    const LINK: Option<(i64, i64)> = None;
    const UNLINK: Option<(i64, i64)> = Some((UV_HANDLES, UV_MULTI));

    fn ready(m: &MultiInner, e: &EasyInner) -> Option<usize> {
        let ok = m.handle.borrow().is_some() && !m.slot.is_set() && e.is_open() && m.owns(e);
        ok.then(|| e.addr())
    }

    fn run(lua: &Lua, mh: Holder<'_>, m: &Rc<MultiInner>, e: &Rc<EasyInner>) -> Fast {
        let (Some(h), Some(eh)) = (m.handle(), e.handle()) else {
            return Fast::Full;
        };
        let (rc, err) = with_holder(lua, mh, m, || h.remove(&eh));
        m.let_go(e);
        eh.flush();
        match err.or_else(|| rc.err().map(multi_fail)) {
            Some(f) => {
                m.park(f);
                Fast::Failed { unlink: true }
            }
            None => Fast::Done,
        }
    }

    fn panicked(m: &MultiInner, msg: String) {
        m.park(Fail::Usage(msg));
    }
}

struct SocketAction;

impl ActionPath for SocketAction {
    type A = MultiInner;
    const X: (i64, i64) = (-1, i32::MAX as i64);
    const Y: (i64, i64) = (0, 7);
    const Y_DEFAULT: i64 = 0;

    fn run(lua: &Lua, mh: Holder<'_>, m: &Rc<MultiInner>, fd: i64, mask: i64) -> Act {
        let Some(h) = m.idle_handle() else {
            return Act::Full;
        };
        match act(lua, mh, m, &h, fd as c_int, mask as c_int) {
            Ok(n) => Act::Done(n),
            Err(f) => {
                m.park(f);
                Act::Failed
            }
        }
    }

    fn panicked(m: &MultiInner, msg: String) {
        m.park(Fail::Usage(msg));
    }
}

/// The pending function of a fast path: the error it kept.
fn take_pending(args: &Args) -> R<()> {
    let (_ud, inner) = args.this::<Multi>()?;
    let f = inner.pending.borrow_mut().take();
    match f {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The pending function of `method`'s fast path: `false, err` for the
/// error it kept, as the full method returns it.
fn pending_fn(lua: &Lua, method: &'static str) -> LuaResult<LuaFunction> {
    crate::luaapi::function(lua, move |lua, args: Args| {
        finish(lua, method, take_pending(&args))
    })
}

/// A C path maker: `(lua, checked method, pending function)`.
type Maker = fn(&Lua, LuaFunction, LuaFunction) -> LuaResult<LuaFunction>;

/// Registers `make` as the fast path of `method` ("multi:X", installed
/// over `curl.Multi.X`), with its pending function.
fn install(lua: &Lua, t: &LuaTable, method: &'static str, make: Maker) -> LuaResult<()> {
    let key = format!("curl.Multi.{}", method.trim_start_matches("multi:"));
    let f = crate::luaapi::function(lua, move |lua, full: LuaFunction| {
        make(lua, full, pending_fn(lua, method)?)
    })?;
    t.raw_set(key, f)
}

/// `raw.fast`: the fast paths, by class and method, each a function that
/// takes the full (checked) method and returns the method to install, a
/// C closure that falls back to it.
pub fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.raw_set(
        "curl.Multi.InfoRead",
        crate::luaapi::function(lua, |lua, full: LuaFunction| {
            info_path::<InfoRead>(lua, full)
        })?,
    )?;
    install(lua, t, "multi:AddHandle", pair_path::<AddHandle>)?;
    install(lua, t, "multi:RemoveHandle", pair_path::<RemoveHandle>)?;
    install(lua, t, "multi:SocketAction", action_path::<SocketAction>)?;
    t.raw_set(
        "curl._drain",
        crate::luaapi::function(lua, |lua, full: LuaFunction| {
            drain_path::<InfoRead, RemoveHandle>(lua, full, pending_fn(lua, "curl._drain")?)
        })?,
    )?;
    Ok(())
}
