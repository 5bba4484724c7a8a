//! Every function the module hands to Lua passes through [`export`] (or is
//! made by [`function`]). On Lua 5.1 that puts a guard in front of it; on
//! the other versions it returns the function as it is.
//!
//! Why (Lua 5.1 only): before each protected call mlua makes its two C
//! functions under `lua_cpcall` and keeps them in the registry under two
//! fixed keys, then reads them back. In Lua 5.1 a garbage-collector step
//! runs at the end of `lua_cpcall`'s inner call, and a return hook runs
//! when that inner C function returns: both can run Lua code *between* the
//! store and the read back. If that code (a `__gc` finalizer, a
//! `debug.sethook` function) calls into this module, the nested call's own
//! protected calls overwrite the two registry entries, and the outer call
//! then runs the nested call's function with its own arguments: type
//! confusion, and a crash. The guard saves the two entries before the
//! function runs and puts them back after it returns or raises, so a
//! nested call leaves them as it found them.
//!
//! The two keys are found when the module loads ([`init`]): the registry
//! entries with a light-userdata key and a C-function value whose value
//! changes across one of mlua's protected calls (5.1 makes a new closure
//! object each time). LuaJIT's `lua_cpcall` runs neither a GC step nor a
//! hook at that point, and 5.2+ push the functions without a registry
//! round trip, so there is nothing to guard there
//! (`spec/crash_regressions_spec.lua` runs the finalizer and hook cases on
//! every interpreter).

use mlua::prelude::*;

/// `f` as the module hands it to Lua: on Lua 5.1 behind the guard (a C
/// closure with `f` as its upvalue), else `f` itself.
pub fn export(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
    #[cfg(feature = "lua51")]
    {
        guard::wrap(lua, f)
    }
    #[cfg(not(feature = "lua51"))]
    {
        let _ = lua;
        Ok(f)
    }
}

/// `lua.create_function(f)`, exported.
pub fn function<A, R, F>(lua: &Lua, f: F) -> LuaResult<LuaFunction>
where
    A: FromLuaMulti,
    R: IntoLuaMulti,
    F: Fn(&Lua, A) -> LuaResult<R> + 'static,
{
    #[allow(clippy::disallowed_methods)] // the one place functions are made
    let made = lua.create_function(f)?;
    export(lua, made)
}

/// Finds the registry keys the guard keeps (Lua 5.1; a no-op elsewhere).
/// Called once per state when the module loads, before any function is
/// exported.
pub fn init(lua: &Lua) -> LuaResult<()> {
    #[cfg(feature = "lua51")]
    {
        guard::init(lua)
    }
    #[cfg(not(feature = "lua51"))]
    {
        let _ = lua;
        Ok(())
    }
}

/// How many registry entries the guard keeps (2 on Lua 5.1 with this mlua,
/// 0 elsewhere): read by the spec that checks the guard is in place.
pub fn kept() -> usize {
    #[cfg(feature = "lua51")]
    {
        guard::keys().len()
    }
    #[cfg(not(feature = "lua51"))]
    {
        0
    }
}

#[cfg(feature = "lua51")]
mod guard {
    use mlua::ffi;
    use mlua::prelude::*;
    use std::os::raw::{c_int, c_void};
    use std::sync::OnceLock;

    /// The keys (addresses of mlua statics: the same for every state of
    /// the process).
    static KEYS: OnceLock<Vec<usize>> = OnceLock::new();

    pub fn keys() -> &'static [usize] {
        KEYS.get().map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// `key address -> value address` of the registry entries with a
    /// light-userdata key and a C-function value.
    fn snapshot(lua: &Lua) -> LuaResult<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        // SAFETY: inside exec_raw's protected call; `lua_next` over the
        // registry reads only. The closure holds a reference to `out`,
        // whose pushes cannot raise a Lua error.
        unsafe {
            lua.exec_raw::<()>((), |l| {
                ffi::lua_pushnil(l);
                while ffi::lua_next(l, ffi::LUA_REGISTRYINDEX) != 0 {
                    if ffi::lua_type(l, -2) == ffi::LUA_TLIGHTUSERDATA
                        && ffi::lua_iscfunction(l, -1) != 0
                    {
                        let k = ffi::lua_touserdata(l, -2) as usize;
                        out.push((k, ffi::lua_topointer(l, -1) as usize));
                    }
                    ffi::lua_pop(l, 1);
                }
            })?;
        }
        Ok(out)
    }

    pub fn init(lua: &Lua) -> LuaResult<()> {
        if KEYS.get().is_some() {
            return Ok(());
        }
        let before = snapshot(lua)?;
        drop(lua.create_table()?); // one of mlua's protected calls
        let after = snapshot(lua)?;
        let changed = after
            .iter()
            .filter(|(k, v)| before.iter().any(|(k0, v0)| k0 == k && v0 != v))
            .map(|(k, _)| *k)
            .collect();
        let _ = KEYS.set(changed);
        Ok(())
    }

    /// The guard: saves the kept registry entries, calls upvalue 1 with
    /// the arguments in protected mode, puts the entries back, then
    /// returns the results or raises the error value unchanged.
    unsafe extern "C-unwind" fn guard_call(l: *mut ffi::lua_State) -> c_int {
        // SAFETY: a C function called by Lua with its upvalue set by
        // `wrap`. Stack room is checked first; the registry reads and
        // the stores to keys that exist allocate nothing. Errors unwind
        // through this frame, which holds no destructors.
        unsafe {
            let keys = keys();
            let k = keys.len() as c_int;
            let n = ffi::lua_gettop(l);
            ffi::luaL_checkstack(l, k + 2, std::ptr::null());
            for key in keys {
                ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, *key as *const c_void);
                ffi::lua_insert(l, 1);
            }
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, k + 1);
            let status = ffi::lua_pcall(l, n, ffi::LUA_MULTRET, 0);
            // saved in reverse order: keys[i] is at k - i
            for (i, key) in keys.iter().enumerate() {
                ffi::lua_pushvalue(l, k - i as c_int);
                ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, *key as *const c_void);
            }
            if status != ffi::LUA_OK {
                ffi::lua_error(l);
            }
            ffi::lua_gettop(l) - k
        }
    }

    pub fn wrap(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
        if keys().is_empty() {
            return Ok(f);
        }
        // SAFETY: inside exec_raw's protected call with `f` at 1; pushing
        // the closure takes it as the upvalue.
        unsafe {
            lua.exec_raw(f, |l| {
                ffi::lua_settop(l, 1);
                ffi::lua_pushcclosure(l, guard_call, 1);
            })
        }
    }
}
