//! The call context. Every binding method that calls a libcurl function able
//! to call back installs a `Ctx` on the handle for the duration of that call.
//! Trampolines look the context up through the handle; when none is installed
//! (garbage collection, teardown) they do nothing and call no Lua. Errors
//! raised by callbacks are parked in the context and raised by the method once
//! libcurl has returned.

use crate::error::Fail;
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::cell::{Cell, RefCell};
use std::ptr;

/// Per-Lua-state values the trampolines need, kept in mlua's app data.
pub struct Shared {
    pub pcall: LuaFunction,
    /// `lraw::bytes_caller`'s function.
    pub bytes_caller: LuaFunction,
}

pub struct Ctx<'a> {
    pub lua: &'a Lua,
    /// `pcall`, fetched on the first callback of the call (most calls run
    /// none from Lua).
    pcall: RefCell<Option<LuaFunction>>,
    /// `Shared::bytes_caller`, fetched on first use.
    bytes_caller: RefCell<Option<LuaFunction>>,
    /// The multi whose method is running, if any.
    pub multi: Option<&'a LuaAnyUserData>,
    /// The easy of a running `easy:Perform`, with its `CURL*` address.
    pub easy: Option<(&'a LuaAnyUserData, usize)>,
    err: RefCell<Option<Fail>>,
}

impl<'a> Ctx<'a> {
    pub fn new(lua: &'a Lua) -> Self {
        Ctx {
            lua,
            pcall: RefCell::new(None),
            bytes_caller: RefCell::new(None),
            multi: None,
            easy: None,
            err: RefCell::new(None),
        }
    }

    /// Keeps the first error; later ones in the same call are dropped.
    pub fn park(&self, f: Fail) {
        let mut e = self.err.borrow_mut();
        if e.is_none() {
            *e = Some(f);
        }
    }

    pub fn take_err(&self) -> Option<Fail> {
        self.err.borrow_mut().take()
    }

    /// `Shared::bytes_caller` (cached for the rest of the call).
    pub fn bytes_caller(&self) -> Option<LuaFunction> {
        if self.bytes_caller.borrow().is_none() {
            let f = self
                .lua
                .app_data_ref::<Shared>()
                .map(|s| s.bytes_caller.clone());
            *self.bytes_caller.borrow_mut() = f;
        }
        self.bytes_caller.borrow().clone()
    }

    /// Calls `f(args...)` in protected mode. On error the error value is
    /// parked unchanged and `None` is returned.
    pub fn call(&self, f: LuaFunction, args: MultiValue) -> Option<MultiValue> {
        if self.pcall.borrow().is_none() {
            let p = self.lua.app_data_ref::<Shared>().map(|s| s.pcall.clone());
            *self.pcall.borrow_mut() = p;
        }
        let cached = self.pcall.borrow().clone();
        let pcall = match cached {
            Some(p) => p,
            None => {
                self.park(Fail::Usage("curl module state missing".into()));
                return None;
            }
        };
        let mut a = args;
        a.push_front(Value::Function(f));
        match pcall.call::<MultiValue>(a) {
            Ok(mut r) => match r.pop_front() {
                Some(Value::Boolean(true)) => Some(r),
                _ => {
                    self.park(Fail::Raise(r.pop_front().unwrap_or(Value::Nil)));
                    None
                }
            },
            Err(e) => {
                self.park(Fail::Lua(e));
                None
            }
        }
    }

    /// The Easy userdata for a `CURL*` seen in a callback: the performing
    /// easy, or one added to the running multi. `None` for handles libcurl
    /// made itself.
    pub fn easy_ud(&self, addr: usize) -> Option<LuaAnyUserData> {
        if let Some((ud, a)) = self.easy {
            if a == addr {
                return Some(ud.clone());
            }
        }
        let m = self.multi?;
        crate::lraw::handle_of(self.lua, m, crate::multi::UV_HANDLES, addr)
            .ok()
            .flatten()
    }
}

/// Where a handle keeps the context of the call running on it.
pub struct CtxSlot(Cell<*const Ctx<'static>>);

impl Default for CtxSlot {
    fn default() -> Self {
        CtxSlot(Cell::new(ptr::null()))
    }
}

impl CtxSlot {
    pub fn busy(&self) -> bool {
        !self.0.get().is_null()
    }

    pub fn get(&self) -> Option<&Ctx<'_>> {
        let p = self.0.get();
        if p.is_null() {
            None
        } else {
            // SAFETY: a non-null pointer was stored by `install`, whose guard
            // lives on the stack frame of the method that owns the Ctx and
            // clears the slot before that frame ends. Trampolines only run
            // inside that frame (libcurl calls them from the method's call).
            Some(unsafe { &*p })
        }
    }

    /// Installs `ctx` until the guard drops (also on unwind).
    pub fn install<'s>(&'s self, ctx: &Ctx<'_>) -> Installed<'s> {
        let prev = self
            .0
            .replace((ctx as *const Ctx<'_>).cast::<Ctx<'static>>());
        Installed { slot: self, prev }
    }
}

pub struct Installed<'s> {
    slot: &'s CtxSlot,
    prev: *const Ctx<'static>,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        self.slot.0.set(self.prev);
    }
}
