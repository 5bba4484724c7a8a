//! The Lua side of a multi's callbacks (`ffi::MultiHandler`): the socket
//! and timer functions (or a Poller given instead, updated without Lua)
//! and the HTTP/2 push function. They run only in the context of a call on
//! the multi; errors are parked there.

use super::{link_both, uv, Multi, MultiInner};
use super::{UV_ASSIGNED, UV_PUSHDATA, UV_PUSHFN, UV_SOCKETDATA, UV_SOCKETFN};
use super::{UV_TIMERDATA, UV_TIMERFN};
use crate::ctx::{Ctx, UV_HANDLES};
use crate::easy::{self, EasyInner, UV_MULTI};
use crate::error::{Fail, R};
use crate::ffi::{self, Pushed, CURLM_ABORTED_BY_CALLBACK};
use crate::luaapi::raw::{call_field, unlink, Arg, Called};
use crate::luaapi::{to_int, Handle};
use crate::options::c;
use curl_sys as sys;
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::os::raw::c_int;
use std::rc::Rc;

impl ffi::MultiHandler for MultiInner {
    fn socket(&self, easy: usize, fd: sys::curl_socket_t, what: c_int, has_socketp: bool) {
        self.slot.with(|ctx| {
            if let Some(ctx) = ctx {
                on_socket(ctx, self, easy, fd, what, has_socketp);
            }
        })
    }

    fn timer(&self, ms: i64) {
        self.slot.with(|ctx| {
            if let Some(ctx) = ctx {
                on_timer(ctx, self, ms);
            }
        })
    }

    fn push(&self, parent: usize, pushed: Pushed, headers: Vec<Vec<u8>>) -> bool {
        self.slot
            .with(|ctx| ctx.is_some_and(|ctx| on_push(ctx, parent, pushed, headers)))
    }

    fn panicked(&self, msg: String) {
        self.slot.with(|ctx| {
            if let Some(ctx) = ctx {
                ctx.park_panic(msg);
            }
        })
    }
}

fn on_socket(
    ctx: &Ctx,
    m: &MultiInner,
    easy: usize,
    fd: sys::curl_socket_t,
    what: c_int,
    has_socketp: bool,
) {
    let fast = m.sock_poller.borrow().clone();
    if let Some(p) = fast {
        // A Poller given as the socket function: update it here, no Lua.
        if let Err(f) = p.apply(fd, what) {
            ctx.park(f);
        }
        if !(what as i64 == c::CURL_POLL_REMOVE && m.assigned.get()) {
            return;
        }
    }
    let Some(mh) = ctx.multi else {
        return;
    };
    let sockp = if has_socketp && m.assigned.get() {
        Arg::IntIn(UV_ASSIGNED, fd as i64)
    } else {
        Arg::Nil
    };
    let args = [
        Arg::AddrIn(UV_HANDLES, easy),
        Arg::Int(fd as i64),
        Arg::Int(what as i64),
        Arg::Field(UV_SOCKETDATA),
        sockp,
    ];
    let called = call_field(ctx.lua, mh, UV_SOCKETFN, &args);
    returned_minus_one(ctx, called, "the socket callback returned -1");
    if what as i64 == c::CURL_POLL_REMOVE && m.assigned.get() {
        // libcurl forgets the Assign association on REMOVE; so do we.
        if let Some(Ok(t)) = ctx.multi_ud().map(|u| u.user_value::<LuaTable>()) {
            if let Ok(a) = t.raw_get::<LuaTable>(UV_ASSIGNED) {
                let _ = a.raw_set(fd as i64, Value::Nil);
            }
        }
    }
}

/// Parks what a socket or timer function's call gave: its error, or
/// `CURLM_ABORTED_BY_CALLBACK` for a -1 (never handed to libcurl).
fn returned_minus_one(ctx: &Ctx, called: LuaResult<Called>, what: &str) {
    match called {
        Ok(Called::Returned(v)) => {
            if to_int(&v) == Some(-1) {
                ctx.park(Fail::Multi(CURLM_ABORTED_BY_CALLBACK, Some(what.into())));
            }
        }
        Ok(Called::Raised(v)) => ctx.park(Fail::Raise(v)),
        Ok(Called::NoFn(_) | Called::Taken) => {}
        Err(e) => ctx.park(Fail::Lua(e)),
    }
}

fn on_timer(ctx: &Ctx, m: &MultiInner, ms: i64) {
    let fast = m.timer_poller.borrow().clone();
    if let Some(p) = fast {
        // A Poller given as the timer function: arm it here, no Lua.
        p.arm(ms);
        return;
    }
    let Some(mh) = ctx.multi else {
        return;
    };
    let args = [Arg::Int(ms), Arg::Field(UV_TIMERDATA)];
    let called = call_field(ctx.lua, mh, UV_TIMERFN, &args);
    returned_minus_one(ctx, called, "the timer callback returned -1");
}

/// HTTP/2 server push: libcurl made a handle from `parent`'s options and
/// adds it to the multi if the Lua function accepts (returns true or
/// CURL_PUSH_OK). The new Easy object is linked first so the function can
/// set options on it; a refusal leaves the handle to libcurl.
fn on_push(ctx: &Ctx, parent: usize, pushed: Pushed, headers: Vec<Vec<u8>>) -> bool {
    let Some(mud) = ctx.multi_ud() else {
        return false;
    };
    let lua = ctx.lua;
    let f = match uv(mud).and_then(|t| Ok(t.raw_get::<Value>(UV_PUSHFN)?)) {
        Ok(Value::Function(f)) => f,
        _ => return false,
    };
    let Some(pud) = ctx.easy_ud(parent) else {
        return false;
    };
    let nud = match easy::adopt_pushed(lua, &pud, pushed) {
        Ok(u) => u,
        Err(f) => {
            ctx.park(f);
            return false;
        }
    };
    let linked = (|| -> R<(Rc<EasyInner>, Rc<MultiInner>)> {
        let ne = easy::inner_of(&nud)?;
        let inner = mud.borrow::<Multi>()?.inner();
        link_both(lua, mud, &inner, &nud, &ne)?;
        Ok((ne, inner))
    })();
    let (ne, inner) = match linked {
        Ok(x) => x,
        Err(f) => {
            let _ = easy::disown(lua, &nud);
            ctx.park(f);
            return false;
        }
    };
    let accepted = (|| -> R<bool> {
        let t = lua.create_table_with_capacity(headers.len(), 0)?;
        for (i, h) in headers.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(h)?)?;
        }
        let data: Value = uv(mud)?.raw_get(UV_PUSHDATA)?;
        let mut args = MultiValue::new();
        args.push_back(Value::UserData(pud.clone()));
        args.push_back(Value::UserData(nud.clone()));
        args.push_back(Value::Table(t));
        args.push_back(data);
        Ok(match ctx.call(f, args) {
            Some(r) => match r.front() {
                Some(Value::Boolean(true)) => true,
                Some(v) => to_int(v) == Some(c::CURL_PUSH_OK),
                None => false,
            },
            None => false,
        })
    })();
    match accepted {
        Ok(true) => true,
        other => {
            if let Err(f) = other {
                ctx.park(f);
            }
            inner.let_go(&ne);
            let _ = unlink(lua, mud, &nud, UV_HANDLES, UV_MULTI, ne.addr());
            let _ = easy::disown(lua, &nud);
            false
        }
    }
}
