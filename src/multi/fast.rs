//! Fast paths of `InfoRead`, `AddHandle` and `RemoveHandle`, which run once
//! per transfer. Their C functions (`luaapi::raw`) serve the common case
//! without mlua's per-call machinery (argument conversion, userdata type
//! checks, a protected call); the logic is here. Anything unusual (a wrong
//! argument, a closed or busy handle, Lua socket/timer functions, an easy
//! with Lua callbacks that could run during the call, a libcurl error)
//! goes to the full method, which makes the same checks and the errors.

use super::{Multi, MultiInner, UV_HANDLES};
use crate::ctx::Ctx;
use crate::easy::{EasyInner, UV_MULTI};
use crate::error::{finish, multi_fail, Fail, R};
use crate::luaapi::raw::{info_path, pair_path, Fast, Info, InfoPath, PairPath};
use crate::luaapi::Args;
use crate::options::c;
use mlua::prelude::*;
use std::rc::Rc;

impl MultiInner {
    /// A call may take the fast path: the multi is open and idle, with
    /// Pollers (open) as socket and timer functions and no `Assign`ed
    /// values, so libcurl's socket and timer callbacks need no Lua.
    fn fast_ready(&self) -> bool {
        let open = |p: &std::cell::RefCell<Option<Rc<crate::poller::PollerState>>>| {
            p.borrow().as_ref().is_some_and(|p| p.is_open())
        };
        self.handle.borrow().is_some()
            && !self.slot.is_set()
            && !self.assigned.get()
            && open(&self.sock_poller)
            && open(&self.timer_poller)
    }

    /// Runs a libcurl call with a context that has no multi object: a
    /// callback that would need Lua finds none (the fast path is only
    /// taken when none can).
    fn fast_call<T>(&self, lua: &Lua, f: impl FnOnce() -> T) -> (T, Option<Fail>) {
        Ctx::new(lua).run(&self.slot, f)
    }
}

/// The easy can join or leave without any Lua running: no Lua callback
/// besides write/header/read, and no call running on it.
fn easy_quiet(e: &EasyInner) -> bool {
    !e.slot.is_set() && e.lua_cbs.get() == 0 && !e.has_cause.get()
}

struct InfoRead;

impl InfoPath for InfoRead {
    type A = MultiInner;
    const HANDLES_KEY: i64 = UV_HANDLES;

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

    fn ready(m: &MultiInner, e: &EasyInner) -> Option<usize> {
        let ok = m.fast_ready() && e.is_open() && e.multi.borrow().is_none() && easy_quiet(e);
        ok.then(|| e.addr())
    }

    fn run(lua: &Lua, m: &Rc<MultiInner>, e: &Rc<EasyInner>) -> Fast {
        let (Some(h), Some(eh)) = (m.handle(), e.handle()) else {
            return Fast::Full;
        };
        m.hold(e, &eh);
        let (rc, err) = m.fast_call(lua, || h.add(&eh));
        if rc.is_ok() && err.is_none() {
            return Fast::Done;
        }
        if rc.is_ok() {
            let _ = m.fast_call(lua, || h.remove(&eh));
        }
        m.let_go(e);
        Fast::Full
    }
}

struct RemoveHandle;

impl PairPath for RemoveHandle {
    type A = MultiInner;
    type B = EasyInner;
    const LINK: Option<(i64, i64)> = None;
    const UNLINK: Option<(i64, i64)> = Some((UV_HANDLES, UV_MULTI));

    fn ready(m: &MultiInner, e: &EasyInner) -> Option<usize> {
        let ok = m.fast_ready() && e.is_open() && m.owns(e) && e.finished.get() && easy_quiet(e);
        ok.then(|| e.addr())
    }

    fn run(lua: &Lua, m: &Rc<MultiInner>, e: &Rc<EasyInner>) -> Fast {
        let (Some(h), Some(eh)) = (m.handle(), e.handle()) else {
            return Fast::Full;
        };
        let (rc, err) = m.fast_call(lua, || h.remove(&eh));
        m.let_go(e);
        eh.flush();
        match err.or_else(|| rc.err().map(multi_fail)) {
            Some(f) => {
                *m.pending.borrow_mut() = Some(f);
                Fast::Failed
            }
            None => Fast::Done,
        }
    }
}

/// The pending function of the fast `RemoveHandle`: the error its
/// callbacks parked.
fn take_pending(args: &Args) -> R<()> {
    let (_ud, inner) = args.this::<Multi>()?;
    let f = inner.pending.borrow_mut().take();
    match f {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// `raw.fast`: the fast paths, by class and method, each a function that
/// takes the full method and returns the method to install. `InfoRead`'s
/// wraps the checked method; the others wrap the raw one (they return
/// `true` or the full method's `false, err`) and are checked after.
pub fn register(lua: &Lua, t: &LuaTable) -> LuaResult<()> {
    t.raw_set(
        "curl.Multi.InfoRead",
        lua.create_function(|lua, full: LuaFunction| info_path::<InfoRead>(lua, full))?,
    )?;
    t.raw_set(
        "raw:curl.Multi.AddHandle",
        lua.create_function(|lua, full: LuaFunction| pair_path::<AddHandle>(lua, full, None))?,
    )?;
    t.raw_set(
        "raw:curl.Multi.RemoveHandle",
        lua.create_function(|lua, full: LuaFunction| {
            let pending = lua.create_function(|lua, args: Args| {
                finish(lua, "multi:RemoveHandle", take_pending(&args))
            })?;
            pair_path::<RemoveHandle>(lua, full, Some(pending))
        })?,
    )?;
    Ok(())
}
