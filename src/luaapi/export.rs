//! Every function the module hands to Lua passes through [`export`] (or is
//! made by [`function`]): a C closure in front of it that checks the
//! module's state is still alive and, on Lua 5.1, keeps mlua's registry
//! entries across the call. The module's own C functions (the fast paths
//! in `raw.rs`) check [`alive`] themselves.
//!
//! **The module's state can die before the last finalizer runs.** mlua
//! keeps its per-state data in a userdata with a `__gc`, made when the
//! module loads. At `lua_close` finalizers run in the reverse order their
//! objects got them, so an object given a `__gc` *before* `require "curl"`
//! is finalized after mlua's data was freed; if its finalizer calls the
//! module, mlua reads freed memory (a crash on every version). The
//! sentinel, a small userdata made right after mlua's, gets its `__gc`
//! later and so runs before mlua's: it marks the state dead, and from then
//! on every exported function raises an error instead of entering mlua.
//!
//! **Lua 5.1: mlua's protected-call setup is not re-entrant.** Before each
//! protected call mlua makes its two C functions under `lua_cpcall` and
//! keeps them in the registry under two fixed keys, then reads them back.
//! In Lua 5.1 a garbage-collector step runs at the end of `lua_cpcall`'s
//! inner call, and a return hook runs when that inner C function returns:
//! both can run Lua code *between* the store and the read back. If that
//! code (a `__gc` finalizer, a `debug.sethook` function) calls into this
//! module, the nested call's own protected calls overwrite the two
//! registry entries, and the outer call then runs the nested call's
//! function with its own arguments: type confusion, and a crash. On 5.1 the
//! closure saves the two entries before the function runs and puts them
//! back after it returns or raises, so a nested call leaves them as it
//! found them. The two keys are found when the module loads ([`init`]):
//! the registry entries with a light-userdata key and a C-function value
//! whose value changes across one of mlua's protected calls (5.1 makes a
//! new closure object each time). LuaJIT's `lua_cpcall` runs neither a GC
//! step nor a hook at that point, and 5.2+ push the functions without a
//! registry round trip, so there is nothing to keep there.
//!
//! `spec/crash_regressions_spec.lua` runs both cases on every interpreter.

use mlua::ffi;
use mlua::prelude::*;
use std::os::raw::{c_int, c_void};

/// The registry key of the sentinel (its address).
static SENTINEL_KEY: u8 = 0;

/// The sentinel's block: its own address (a userdata Lua code made cannot
/// hold that, so a substituted upvalue is not taken for it), the flag, and
/// what the fast paths would otherwise look up on every call: the state's
/// `Lua` (inside mlua's per-state data, which the flag says is alive) and
/// the anchor thread (0 until `set_anchor`).
#[repr(C)]
struct Sentinel {
    this: usize,
    alive: u8,
    lua: usize,
    anchor: usize,
}

/// `__gc` of the sentinel: the module's state is going away.
unsafe extern "C-unwind" fn sentinel_gc(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua; `sentinel_at` checks the block
    // before it is written.
    unsafe {
        if let Some(p) = sentinel_at(l, 1) {
            (*p).alive = 0;
        }
    }
    0
}

/// The sentinel at `idx`, if the value there is one.
///
/// # Safety
/// `l` is a running state and `idx` a valid index.
unsafe fn sentinel_at(l: *mut ffi::lua_State, idx: c_int) -> Option<*mut Sentinel> {
    // SAFETY: the caller's contract; the block is read only after its
    // type and size say it is large enough.
    unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TUSERDATA
            || (ffi::lua_rawlen(l, idx) as usize) < std::mem::size_of::<Sentinel>()
        {
            return None;
        }
        let p = ffi::lua_touserdata(l, idx) as *mut Sentinel;
        (!p.is_null() && (*p).this == p as usize).then_some(p)
    }
}

/// Whether the sentinel at `idx` (an upvalue of the module's C closures)
/// says the module's state is alive.
///
/// # Safety
/// `l` is a running state and `idx` a valid index.
pub unsafe fn alive(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: the caller's contract.
    unsafe { sentinel_at(l, idx).is_some_and(|p| (*p).alive == 1) }
}

/// For a live sentinel at `idx`: the state's `Lua` and the anchor thread
/// (null before `set_anchor`). `None` once the state is dying.
///
/// # Safety
/// `l` is a running state and `idx` a valid index. The `Lua` may be used
/// only during the running C call (mlua's data lives while the sentinel
/// says alive, and is freed only after the sentinel's `__gc`).
pub unsafe fn live<'a>(
    l: *mut ffi::lua_State,
    idx: c_int,
) -> Option<(&'a Lua, *mut ffi::lua_State)> {
    // SAFETY: the caller's contract; `lua` was set by `init` from mlua's
    // per-state data of this state.
    unsafe {
        let p = sentinel_at(l, idx)?;
        if (*p).alive != 1 || (*p).lua == 0 {
            return None;
        }
        Some((
            &*((*p).lua as *const Lua),
            (*p).anchor as *mut ffi::lua_State,
        ))
    }
}

/// Records the anchor thread (`raw::init_anchor`) in the sentinel.
pub fn set_anchor(lua: &Lua, th: *mut ffi::lua_State) -> LuaResult<()> {
    // SAFETY: inside exec_raw's protected call; a registry read and a
    // write into the sentinel's block after `sentinel_at` checked it.
    unsafe {
        lua.exec_raw::<()>((), move |l| {
            push_sentinel(l);
            if let Some(p) = sentinel_at(l, -1) {
                (*p).anchor = th as usize;
            }
            ffi::lua_pop(l, 1);
        })
    }
}

/// Raises the error of a call made after the module's state died.
///
/// # Safety
/// `l` is the running state, in a C function called by Lua whose frame
/// holds nothing with a destructor.
pub unsafe fn raise_closed(l: *mut ffi::lua_State) -> ! {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_pushstring(
            l,
            c"curl: the module's Lua state is closing (a finalizer called it after the module was finalized)"
                .as_ptr(),
        );
        ffi::lua_error(l)
    }
}

/// Pushes the sentinel (for a C closure's upvalues).
///
/// # Safety
/// `l` is the running state with room for 1 value.
pub unsafe fn push_sentinel(l: *mut ffi::lua_State) {
    // SAFETY: the caller's contract; a registry read.
    unsafe {
        ffi::lua_rawgetp(
            l,
            ffi::LUA_REGISTRYINDEX,
            &SENTINEL_KEY as *const u8 as *const c_void,
        );
    }
}

/// `f` as the module hands it to Lua: a C closure (upvalues `f` and the
/// sentinel) that checks the state is alive and calls `f`.
pub fn export(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
    // SAFETY: inside exec_raw's protected call with `f` at 1; pushing the
    // closure takes `f` and the sentinel as its upvalues.
    unsafe {
        lua.exec_raw(f, |l| {
            ffi::lua_settop(l, 1);
            push_sentinel(l);
            ffi::lua_pushcclosure(l, guard_call, 2);
        })
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

/// For the module's own C closures, which check [`alive`] themselves:
/// on Lua 5.1 behind the closure of [`export`] (for mlua's registry
/// entries), else `f` as it is.
pub fn export_c(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
    if cfg!(feature = "lua51") {
        export(lua, f)
    } else {
        Ok(f)
    }
}

/// Makes the sentinel, then (Lua 5.1) finds the registry keys the
/// closures keep. Called when the module loads, before any function is
/// exported: the sentinel must get its `__gc` right after mlua's data.
pub fn init(lua: &Lua) -> LuaResult<()> {
    // SAFETY: inside exec_raw's protected call: the userdata, its
    // metatable and the registry store may raise (out of memory), which
    // the call catches; nothing here has a destructor.
    unsafe {
        lua.exec_raw::<()>((), |l| {
            let p = ffi::lua_newuserdata(l, std::mem::size_of::<Sentinel>()) as *mut Sentinel;
            p.write(Sentinel {
                this: p as usize,
                alive: 1,
                lua: Lua::get_or_init_from_ptr(l) as *const Lua as usize,
                anchor: 0,
            });
            ffi::lua_createtable(l, 0, 2);
            ffi::lua_pushcfunction(l, sentinel_gc);
            ffi::lua_setfield(l, -2, c"__gc".as_ptr());
            ffi::lua_pushboolean(l, 0);
            ffi::lua_setfield(l, -2, c"__metatable".as_ptr());
            ffi::lua_setmetatable(l, -2);
            ffi::lua_rawsetp(
                l,
                ffi::LUA_REGISTRYINDEX,
                &SENTINEL_KEY as *const u8 as *const c_void,
            );
        })?;
    }
    #[cfg(feature = "lua51")]
    keep51::init(lua)?;
    Ok(())
}

/// How many registry entries the closures keep (2 on Lua 5.1 with this
/// mlua, 0 elsewhere): read by the spec that checks the guard is in place.
pub fn kept() -> usize {
    #[cfg(feature = "lua51")]
    {
        keep51::keys().len()
    }
    #[cfg(not(feature = "lua51"))]
    {
        0
    }
}

/// The closure of [`export`]: checks the sentinel (upvalue 2), then calls
/// `f` (upvalue 1) with the arguments and returns its results. On Lua 5.1
/// the kept registry entries are saved before and put back after the call
/// (which is then protected, so they are put back when it raises too,
/// before the error value is raised again unchanged).
unsafe extern "C-unwind" fn guard_call(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua with the upvalues set by
    // `export`. Stack room is checked first; registry reads and stores to
    // keys that exist allocate nothing. Errors unwind through this frame,
    // which holds no destructors.
    unsafe {
        if !alive(l, ffi::lua_upvalueindex(2)) {
            raise_closed(l);
        }
        #[cfg(feature = "lua51")]
        {
            keep51::call(l)
        }
        #[cfg(not(feature = "lua51"))]
        {
            super::raw::call_full(l)
        }
    }
}

#[cfg(feature = "lua51")]
mod keep51 {
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
                    // (upvalue-less: `call` keeps the function pointer)
                    let plain = ffi::lua_iscfunction(l, -1) != 0 && {
                        let up = !ffi::lua_getupvalue(l, -1, 1).is_null();
                        if up {
                            ffi::lua_pop(l, 1);
                        }
                        !up
                    };
                    if ffi::lua_type(l, -2) == ffi::LUA_TLIGHTUSERDATA && plain {
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
            .take(MAX_KEYS)
            .collect();
        let _ = KEYS.set(changed);
        Ok(())
    }

    /// At most this many kept entries (mlua has two).
    const MAX_KEYS: usize = 4;

    /// Saves the kept entries, calls upvalue 1 with the arguments in
    /// protected mode, puts the entries back, then returns the results or
    /// raises the error value unchanged. The saved values stay on this
    /// frame's Lua stack, where `debug.setlocal` (Lua 5.1 lets it reach a C
    /// frame) could replace them: each is put back only if its slot still
    /// holds the same value; otherwise an upvalue-less C function (what
    /// mlua keeps there) is pushed again from its function pointer, and
    /// anything else is cleared.
    ///
    /// # Safety
    /// Called by `guard_call` (its contract).
    pub unsafe fn call(l: *mut ffi::lua_State) -> c_int {
        // SAFETY: the caller's contract; the frame holds only plain values
        // (the pushes after the call can raise on memory errors).
        unsafe {
            let keys = keys();
            let k = keys.len() as c_int;
            let n = ffi::lua_gettop(l);
            ffi::luaL_checkstack(l, k + 2, std::ptr::null());
            // what each saved value is: type, address, and the function
            // pointer of an upvalue-less C function
            let mut seen = [(ffi::LUA_TNIL, 0usize, None); MAX_KEYS];
            for (slot, key) in seen.iter_mut().zip(keys) {
                let t = ffi::lua_rawgetp(l, ffi::LUA_REGISTRYINDEX, *key as *const c_void);
                let f = ffi::lua_tocfunction(l, -1).filter(|_| {
                    let up = !ffi::lua_getupvalue(l, -1, 1).is_null();
                    if up {
                        ffi::lua_pop(l, 1);
                    }
                    !up
                });
                *slot = (t, ffi::lua_topointer(l, -1) as usize, f);
                ffi::lua_insert(l, 1);
            }
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, k + 1);
            let status = ffi::lua_pcall(l, n, ffi::LUA_MULTRET, 0);
            // saved in reverse order: keys[i] is at k - i
            for (i, (key, (t, p, f))) in keys.iter().zip(seen).enumerate() {
                let at = k - i as c_int;
                if ffi::lua_type(l, at) == t && ffi::lua_topointer(l, at) as usize == p {
                    ffi::lua_pushvalue(l, at);
                } else if let Some(f) = f {
                    ffi::lua_pushcfunction(l, f);
                } else {
                    ffi::lua_pushnil(l);
                }
                ffi::lua_rawsetp(l, ffi::LUA_REGISTRYINDEX, *key as *const c_void);
            }
            if status != ffi::LUA_OK {
                ffi::lua_error(l);
            }
            ffi::lua_gettop(l) - k
        }
    }
}
