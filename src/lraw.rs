//! Raw Lua stack work for the per-transfer hot paths: linking an easy into a
//! multi's tables, finding the easy object of a `CURL*`, and calling a
//! transfer's data callback. Each is one protected `exec_raw` call doing a
//! few raw table operations, instead of one protected mlua call per table
//! access (profiles showed 500–900 instructions per access that way).
//!
//! The user-value layout is mlua's: `getuservalue(ud)` is a wrapper table
//! whose `[1]` is the object's own table (`set_user_value`), on every Lua
//! version. The closures passed to `exec_raw` keep nothing that needs a
//! destructor, so a Lua error (out of memory) unwinding through them to
//! `exec_raw`'s protected call skips no Rust cleanup.

use mlua::ffi;
use mlua::prelude::*;
use mlua::Value;
use std::os::raw::{c_int, c_void};

/// Pushes one value: the object's own user-value table (true), or something
/// else (false) when the userdata at `idx` has none.
///
/// # Safety
/// `l` is the running state, `idx` an absolute index of a userdata, and
/// there is stack room for 2 values (the closures below use at most 8 of
/// the `LUA_MINSTACK` = 20 slots a C function is given).
unsafe fn push_uv(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: the caller's contract (above).
    unsafe {
        if ffi::lua_getuservalue(l, idx) != ffi::LUA_TTABLE {
            return false;
        }
        let t = ffi::lua_rawgeti(l, -1, 1);
        ffi::lua_remove(l, -2);
        t == ffi::LUA_TTABLE
    }
}

/// Records (`on`) or clears the link between a multi and an easy it runs:
/// `multi.handles[lightuserdata(addr)] = easy` and `easy[multi_key] =
/// multi`. Returns false if either object has lost its user-value table.
pub fn link(
    lua: &Lua,
    mud: &LuaAnyUserData,
    eud: &LuaAnyUserData,
    handles_key: i64,
    multi_key: i64,
    addr: usize,
    on: bool,
) -> LuaResult<bool> {
    // SAFETY: the closure runs inside exec_raw's protected call with the two
    // userdata at 1 and 2; it checks every table before writing to it and
    // leaves one boolean as its result. It holds no value with a destructor
    // (see the module comment).
    unsafe {
        lua.exec_raw((mud, eud), |l| {
            let mut ok = false;
            if push_uv(l, 1) && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE {
                ffi::lua_pushlightuserdata(l, addr as *mut c_void);
                if on {
                    ffi::lua_pushvalue(l, 2);
                } else {
                    ffi::lua_pushnil(l);
                }
                ffi::lua_rawset(l, -3);
                if push_uv(l, 2) {
                    if on {
                        ffi::lua_pushvalue(l, 1);
                    } else {
                        ffi::lua_pushnil(l);
                    }
                    ffi::lua_rawseti(l, -2, multi_key);
                    ok = true;
                }
            }
            ffi::lua_settop(l, 0);
            ffi::lua_pushboolean(l, ok as c_int);
        })
    }
}

/// `multi.handles[lightuserdata(addr)]`: the easy object of a `CURL*`.
pub fn handle_of(
    lua: &Lua,
    mud: &LuaAnyUserData,
    handles_key: i64,
    addr: usize,
) -> LuaResult<Option<LuaAnyUserData>> {
    // SAFETY: as in `link`; reads only, leaves one value.
    unsafe {
        lua.exec_raw(mud, |l| {
            if push_uv(l, 1) && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE {
                ffi::lua_rawgetp(l, -1, addr as *const c_void);
            } else {
                ffi::lua_pushnil(l);
            }
            ffi::lua_replace(l, 1);
            ffi::lua_settop(l, 1);
        })
    }
}

/// What calling a transfer's Lua callback gave.
pub enum Called {
    /// No function is set (or the handle is not known).
    NoFn,
    /// It returned; its first result.
    Returned(Value),
    /// It raised this value.
    Raised(Value),
}

/// Calls an easy's Lua function stored at `fkey` in its user-value table as
/// `f(bytes, data)`, `data` being the value stored at `dkey`, in protected
/// mode. The easy is `holder` itself, or (`via_multi`) the one that
/// `holder`, a multi, maps `addr` to.
#[allow(clippy::too_many_arguments)]
pub fn call_with_bytes(
    lua: &Lua,
    holder: &LuaAnyUserData,
    via_multi: bool,
    handles_key: i64,
    addr: usize,
    fkey: i64,
    dkey: i64,
    bytes: &[u8],
) -> LuaResult<Called> {
    let (p, n) = (bytes.as_ptr(), bytes.len());
    // SAFETY: as in `link`. `p..p+n` stays valid for the call (it borrows
    // `bytes`). The closure leaves exactly (status, value): status 0 no
    // function, 1 returned, 2 raised.
    let (status, v): (i64, Value) = unsafe {
        lua.exec_raw(holder, |l| {
            let mut status = 0;
            let mut easy_at = 1;
            if via_multi {
                if push_uv(l, 1) && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE {
                    ffi::lua_rawgetp(l, -1, addr as *const c_void);
                }
                easy_at = ffi::lua_gettop(l);
            }
            if ffi::lua_type(l, easy_at) == ffi::LUA_TUSERDATA && push_uv(l, easy_at) {
                let uv = ffi::lua_gettop(l);
                if ffi::lua_rawgeti(l, uv, fkey) == ffi::LUA_TFUNCTION {
                    ffi::lua_pushlstring(l, p.cast(), n);
                    ffi::lua_rawgeti(l, uv, dkey);
                    status = if ffi::lua_pcall(l, 2, 1, 0) == ffi::LUA_OK {
                        1
                    } else {
                        2
                    };
                }
            }
            if status == 0 {
                ffi::lua_pushnil(l);
            }
            // [holder, ..., value] -> [status, value]
            ffi::lua_insert(l, 1);
            ffi::lua_pushinteger(l, status);
            ffi::lua_insert(l, 1);
            ffi::lua_settop(l, 2);
        })?
    };
    Ok(match status {
        1 => Called::Returned(v),
        2 => Called::Raised(v),
        _ => Called::NoFn,
    })
}

/// The body of every wrapped method: calls the raw method (upvalue 1),
/// which returns `true, results...` or `false, err`, and returns the results
/// or raises `err` unchanged. The same as the Lua `check(f(...))` it
/// replaces, without a vararg Lua function per call.
unsafe extern "C-unwind" fn checked_call(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C closure with one upvalue (made by
    // `checked`); it only moves values on its own stack frame. Errors from
    // the call, and the `lua_error` below, unwind through this frame, which
    // holds nothing with a destructor.
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::luaL_checkstack(l, 1, std::ptr::null());
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        if ffi::lua_toboolean(l, 1) != 0 {
            return ffi::lua_gettop(l) - 1;
        }
        ffi::lua_settop(l, 2);
        ffi::lua_error(l)
    }
}

/// Wraps a raw method `f` (returning `true, ...` or `false, err`) into one
/// that returns the results or raises `err` as is.
pub fn checked(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
    // SAFETY: runs inside exec_raw's protected call with `f` at 1; pushing a
    // C closure takes the upvalue from the stack and leaves the closure.
    unsafe {
        lua.exec_raw(f, |l| {
            ffi::lua_pushcclosure(l, checked_call, 1);
        })
    }
}
