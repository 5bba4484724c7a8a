//! Raw Lua stack work for the per-transfer hot paths: linking an easy into a
//! multi's tables, finding the easy object of a `CURL*`, calling a
//! transfer's data, socket and timer callbacks, the C closure around every
//! method, the registry the fast paths use to recognise their arguments
//! and the C functions of the fast paths themselves (their logic is safe
//! code of the classes, handed in as function pointers). Each does a few raw stack operations instead of one protected
//! mlua call per table access (profiles showed 500–900 instructions per
//! access that way).
//!
//! The user-value layout is mlua's: `getuservalue(ud)` is a wrapper table
//! whose `[1]` is the object's own table (`set_user_value`), on every Lua
//! version. The closures passed to `exec_raw` keep nothing that needs a
//! destructor, so a Lua error (out of memory) unwinding through them to
//! `exec_raw`'s protected call skips no Rust cleanup.
//!
//! "Unprotected" below means outside a protected call: such code only
//! reads, pushes existing values, and stores nil to present keys, none of
//! which allocates. The exception is `lua_checkstack`, which on Lua 5.1 and
//! LuaJIT grows the stack with an allocation that raises when memory runs
//! out (5.2+ return 0 instead); mlua's own stack checks share that case.

use super::export::{alive, export_c, live, push_sentinel, raise_closed};
use crate::ffi::unwind_guard;
use mlua::ffi;
use mlua::prelude::*;
use mlua::state::RawLua;
use mlua::Value;
use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::raw::{c_int, c_void};
use std::rc::Rc;

/// Pushes the object's user-value tables: mlua's wrapper table and, on top
/// of it, the object's own table (`wrapper[1]`), and returns true; or
/// returns false with one or two other values pushed, when the userdata at
/// `idx` has none. The wrapper stays on the stack (removing it costs one
/// or two more API calls on every hot path): callers restore the stack.
///
/// # Safety
/// `l` is the running state, `idx` an absolute index of a full userdata
/// (checked by the caller: the Lua API does not check it, and a wrong type
/// is undefined behaviour), and there is stack room for 2 values (the
/// closures below use at most 10 of the `LUA_MINSTACK` = 20 slots a C
/// function is given).
unsafe fn push_uv_of(l: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: the caller's contract (above).
    unsafe {
        ffi::lua_getuservalue(l, idx) == ffi::LUA_TTABLE
            && ffi::lua_rawgeti(l, -1, 1) == ffi::LUA_TTABLE
    }
}

/// Whether a handles table keys an easy by its `CURL*` address as an
/// integer (Lua 5.3 and 5.4: a hash lookup of an integer key costs about a
/// third of a light userdata's there) or as a light userdata (Lua 5.1, 5.2
/// and LuaJIT, whose `lua_rawgeti` takes an `int`). An address fits an
/// integer exactly, and (being large) is never in a table's array part.
const INT_ADDR_KEYS: bool = cfg!(any(feature = "lua53", feature = "lua54"));

/// Pushes `t[addr]` (`t` an absolute index of a table) and returns its type.
/// Reads only.
///
/// # Safety
/// `l` is the running state with room for 1 value; `t` holds a table.
unsafe fn get_addr(l: *mut ffi::lua_State, t: c_int, addr: usize) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        if INT_ADDR_KEYS {
            ffi::lua_rawgeti(l, t, addr as ffi::lua_Integer)
        } else {
            ffi::lua_rawgetp(l, t, addr as *const c_void)
        }
    }
}

/// `t[addr] = v` for the value at `v` (absolute indices; `nil` when `v`
/// is 0). A new key can allocate: protected, or from a C function.
///
/// # Safety
/// `l` is the running state with room for 2 values; `t` holds a table.
unsafe fn set_addr(l: *mut ffi::lua_State, t: c_int, addr: usize, v: c_int) {
    // SAFETY: the caller's contract.
    unsafe {
        if !INT_ADDR_KEYS {
            ffi::lua_pushlightuserdata(l, addr as *mut c_void);
        }
        if v == 0 {
            ffi::lua_pushnil(l);
        } else {
            ffi::lua_pushvalue(l, v);
        }
        if INT_ADDR_KEYS {
            ffi::lua_rawseti(l, t, addr as ffi::lua_Integer);
        } else {
            ffi::lua_rawset(l, t);
        }
    }
}

/// Records the link between a multi and an easy it runs:
/// `multi.handles[addr] = easy` (see `INT_ADDR_KEYS`) and `easy[multi_key] =
/// multi`. Returns false if either object has lost its user-value table.
/// Protected: a new table key can allocate.
pub fn link(
    lua: &Lua,
    mud: &LuaAnyUserData,
    eud: &LuaAnyUserData,
    handles_key: i64,
    multi_key: i64,
    addr: usize,
) -> LuaResult<bool> {
    // SAFETY: the closure runs inside exec_raw's protected call with the two
    // userdata at 1 and 2 and leaves one boolean as its result. It holds no
    // value with a destructor (see the module comment).
    unsafe {
        lua.exec_raw((mud, eud), |l| {
            let ok = link_core(l, handles_key, multi_key, addr);
            ffi::lua_settop(l, 0);
            ffi::lua_pushboolean(l, ok as c_int);
        })
    }
}

/// Where a call context finds an object of the running call: an mlua
/// handle, or a slot of the module's anchor thread where a C path pinned it
/// for the call (`Pin`: no mlua handle to make and drop).
#[derive(Clone, Copy)]
pub enum Holder<'a> {
    Ud(&'a LuaAnyUserData),
    Pinned(Pin<'a>),
}

/// A value pinned on the anchor thread by a C path for the duration of a
/// call (made only here; the lifetime keeps it inside that call).
#[derive(Clone, Copy)]
pub struct Pin<'a> {
    th: *mut ffi::lua_State,
    idx: c_int,
    /// The userdata's block (checked on every push).
    block: usize,
    /// Where the anchor holds the userdata's user value (mlua's wrapper
    /// table), pinned with it; 0 when it has none. The callbacks of the
    /// call find the object's table through it without pushing the object.
    uv: c_int,
    _call: std::marker::PhantomData<&'a ()>,
}

impl Holder<'_> {
    /// Pushes the object on `l` (mlua's current state).
    ///
    /// # Safety
    /// `raw` is locked with `l` its state, with room for 1 value.
    unsafe fn push(&self, raw: &RawLua, l: *mut ffi::lua_State) -> LuaResult<()> {
        match self {
            Holder::Ud(u) => {
                // SAFETY: the caller's contract.
                unsafe { raw.push(*u) }
            }
            Holder::Pinned(p) => {
                // SAFETY: the anchor thread is the module's own, unreachable
                // from Lua, and holds the value at `idx` for the whole call
                // (`pinned`, which reserved room for this push); both threads
                // are of this state. The value is checked to be the pinned
                // userdata all the same.
                unsafe {
                    ffi::lua_pushvalue(p.th, p.idx);
                    ffi::lua_xmove(p.th, l, 1);
                    if ffi::lua_type(l, -1) != ffi::LUA_TUSERDATA
                        || ffi::lua_touserdata(l, -1) as usize != p.block
                    {
                        ffi::lua_pop(l, 1);
                        return Err(LuaError::runtime("the pinned object was lost"));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Pushes the held object's user-value tables as `push_uv_of` does (the
/// object's own table on top) above `top`, the current top, and returns
/// the table's index; `None` when it has none (with up to 3 values
/// pushed). For a pinned object they come from the wrapper table pinned
/// with it, without pushing the object itself.
///
/// # Safety
/// `raw` is locked with `l` its state, whose top is `top`, with room for
/// 3 values.
unsafe fn push_holder_uv(
    raw: &RawLua,
    l: *mut ffi::lua_State,
    h: Holder<'_>,
    top: c_int,
) -> LuaResult<Option<c_int>> {
    // SAFETY: the caller's contract; the anchor holds a table at `p.uv`
    // (`pinned` checked it) for the whole call, and both threads are of
    // this state; a held object is a full userdata.
    unsafe {
        match h {
            Holder::Pinned(p) if p.uv != 0 => {
                ffi::lua_pushvalue(p.th, p.uv);
                ffi::lua_xmove(p.th, l, 1);
                Ok((ffi::lua_rawgeti(l, -1, 1) == ffi::LUA_TTABLE).then_some(top + 2))
            }
            _ => {
                h.push(raw, l)?;
                Ok(push_uv_of(l, top + 1).then_some(top + 3))
            }
        }
    }
}

/// An mlua handle of a held object.
pub fn handle(lua: &Lua, h: Holder<'_>) -> LuaResult<LuaAnyUserData> {
    match h {
        Holder::Ud(u) => Ok(u.clone()),
        Holder::Pinned(_) => lua.exec_raw_lua(|raw| {
            let l = raw.state();
            // SAFETY: stack room is checked; `pop` takes the value pushed.
            unsafe {
                if ffi::lua_checkstack(l, 1) == 0 {
                    return Err(LuaError::runtime("stack overflow"));
                }
                h.push(raw, l)?;
                raw.pop::<LuaAnyUserData>()
            }
        }),
    }
}

/// Runs `f` outside a protected call with `values` pushed above the current
/// top (`f` gets that top; the values are at `top + 1..`), once there is
/// room for `room` more slots, and restores the stack afterwards. `f` may
/// only read, push existing values, store nil to present keys, or call in
/// protected mode (see the module comment).
fn on_stack<T>(
    lua: &Lua,
    values: &[Holder<'_>],
    room: c_int,
    f: impl FnOnce(&RawLua, *mut ffi::lua_State, c_int) -> LuaResult<T>,
) -> LuaResult<T> {
    lua.exec_raw_lua(|raw| {
        let l = raw.state();
        // SAFETY: stack room is checked before anything is pushed; pushing
        // existing values does not allocate; the stack is restored to `top`
        // on every path.
        unsafe {
            let top = ffi::lua_gettop(l);
            if ffi::lua_checkstack(l, room + values.len() as c_int) == 0 {
                return Err(LuaError::runtime("stack overflow"));
            }
            let mut r = Ok(());
            for v in values {
                r = v.push(raw, l);
                if r.is_err() {
                    break;
                }
            }
            let r = r.and_then(|()| f(raw, l, top));
            ffi::lua_settop(l, top);
            r
        }
    })
}

/// `lua_pcall` of the function below `nargs` arguments at the top, keeping
/// its first result (or error value).
///
/// # Safety
/// `l` is `raw`'s running state with the function and its arguments on top.
unsafe fn pcall_first(raw: &RawLua, l: *mut ffi::lua_State, nargs: c_int) -> LuaResult<Called> {
    // SAFETY: the caller's contract; the call is protected.
    let ok = unsafe { ffi::lua_pcall(l, nargs, 1, 0) } == ffi::LUA_OK;
    // SAFETY: lua_pcall left exactly one value.
    let v = unsafe { raw.pop::<Value>()? };
    Ok(if ok {
        Called::Returned(v)
    } else {
        Called::Raised(v)
    })
}

/// `pcall_first` for a caller that only asks whether the result is -1
/// (the socket and timer functions): a result of -1 comes back as the
/// integer -1, any other as nil, without making an mlua value of it. The
/// result stays on the stack (the caller restores it).
///
/// # Safety
/// As `pcall_first`.
unsafe fn pcall_minus_one(raw: &RawLua, l: *mut ffi::lua_State, nargs: c_int) -> LuaResult<Called> {
    // SAFETY: the caller's contract; the call is protected, and reading a
    // number allocates nothing.
    unsafe {
        if ffi::lua_pcall(l, nargs, 1, 0) != ffi::LUA_OK {
            return Ok(Called::Raised(raw.pop::<Value>()?));
        }
        // (-1 as a float counts too: `to_int` takes an integral float)
        let minus_one =
            ffi::lua_type(l, -1) == ffi::LUA_TNUMBER && ffi::lua_tonumber(l, -1) == -1.0;
        Ok(Called::Returned(if minus_one {
            Value::Integer(-1)
        } else {
            Value::Nil
        }))
    }
}

/// Clears what `link` recorded. Unprotected: only keys that hold a value
/// are set to nil, which never allocates on any Lua version.
pub fn unlink(
    lua: &Lua,
    mud: &LuaAnyUserData,
    eud: &LuaAnyUserData,
    handles_key: i64,
    multi_key: i64,
    addr: usize,
) -> LuaResult<()> {
    on_stack(lua, &[Holder::Ud(mud), Holder::Ud(eud)], 6, |_, l, top| {
        // SAFETY: the multi and the easy (full userdata) are at top + 1 and
        // top + 2.
        unsafe { unlink_core(l, top + 1, top + 2, handles_key, multi_key, addr) };
        Ok(())
    })
}

/// `multi.handles[addr]`: the easy object of a `CURL*`.
/// Reads only, so it runs unprotected: nothing here allocates.
pub fn handle_of(
    lua: &Lua,
    multi: Holder<'_>,
    handles_key: i64,
    addr: usize,
) -> LuaResult<Option<LuaAnyUserData>> {
    on_stack(lua, &[multi], 4, |raw, l, top| {
        // SAFETY: the multi (a full userdata: `on_stack` pushed a holder) is
        // at top + 1; raw reads only.
        unsafe {
            if push_uv_of(l, top + 1)
                && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE
                && get_addr(l, top + 4, addr) == ffi::LUA_TUSERDATA
            {
                raw.pop::<Option<LuaAnyUserData>>()
            } else {
                Ok(None)
            }
        }
    })
}

/// What calling a transfer's Lua callback gave.
pub enum Called {
    /// No function is set (or the handle is not known); the value stored
    /// for the callback's data.
    NoFn(Value),
    /// No function is set and the data value is a `ByteSink`, which took
    /// the bytes.
    Taken,
    /// It returned; its first result.
    Returned(Value),
    /// It raised this value.
    Raised(Value),
}

thread_local! {
    /// The bytes `call_with_bytes` hands to `bytes_call`: set just before
    /// its `lua_pcall` (and put back as it was after it), taken by
    /// `bytes_call` as it starts. A call from Lua
    /// (the function is reachable through the debug library) finds it
    /// empty and raises, instead of reading memory through an argument.
    static BYTES: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Protected part of `call_with_bytes`: `f, data` on the stack, the bytes
/// in `BYTES`; calls `f(bytes, data)` and returns its first result.
unsafe extern "C-unwind" fn bytes_call(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua with 20 free slots; the pointer
    // and length come from `call_with_bytes`, whose slice outlives this
    // call (it is taken, so a later call cannot reuse it). Errors unwind
    // through this frame, which holds nothing with a destructor.
    unsafe {
        // `call_with_bytes` passes exactly `f, data`; a call from Lua (a
        // hook of this very call can reach the function and call it while
        // the bytes are set) may pass any number, and is refused before it
        // takes them
        let bytes = if ffi::lua_gettop(l) == 2 {
            BYTES.with(|b| b.take())
        } else {
            None
        };
        let Some((p, n)) = bytes else {
            ffi::lua_pushstring(l, c"curl: internal function called from Lua".as_ptr());
            ffi::lua_error(l)
        };
        // f, data (a hook can change the values, not their number)
        ffi::lua_pushlstring(l, p as *const _, n);
        ffi::lua_insert(l, 2); // f, bytes, data
        ffi::lua_call(l, 2, 1);
        1
    }
}

/// The C function `call_with_bytes` runs in protected mode (made once per
/// state: a C function value costs an allocation on Lua 5.1 and LuaJIT).
pub fn bytes_caller(lua: &Lua) -> LuaResult<LuaFunction> {
    // Not exported: Lua code reaches it only through the debug library,
    // and it makes no call into mlua (so needs no re-entry guard).
    // SAFETY: `bytes_call` follows the lua_CFunction contract (above).
    #[allow(clippy::disallowed_methods)]
    unsafe {
        lua.create_c_function(bytes_call)
    }
}

/// An object of the module that takes a transfer's bytes itself (a
/// `curl.Buffer` given as the data value without a function):
/// `call_with_bytes` hands them over without making a Lua value of it.
/// Its objects are listed (`register_object`) under the type itself.
pub trait ByteSink: 'static {
    /// Takes `bytes`; false when it cannot now (the caller then gets the
    /// value as `Called::NoFn`). Must not call Lua.
    fn take_bytes(&self, bytes: &[u8]) -> bool;
}

/// Calls an easy's Lua function stored at `fkey` in its user-value table as
/// `f(bytes, data)`, `data` being the value stored at `dkey`, in protected
/// mode; without a function, an `S` as `data` takes the bytes. The easy is
/// `holder` itself, or (`via_multi`) the one that `holder`, a multi, maps
/// `addr` to. `caller` is `bytes_caller`'s function (`None`: `bytes_call`
/// is pushed as a light C function, which does not allocate from Lua 5.2
/// on).
#[allow(clippy::too_many_arguments)]
pub fn call_with_bytes<S: ByteSink>(
    lua: &Lua,
    caller: Option<&LuaFunction>,
    holder: Holder<'_>,
    via_multi: bool,
    handles_key: i64,
    addr: usize,
    fkey: i64,
    dkey: i64,
    bytes: &[u8],
) -> LuaResult<Called> {
    on_stack(lua, &[], 11, |raw, l, top| {
        // SAFETY: room is checked; a held object is a full userdata, and
        // so is the value `get_addr` says is one. Outside the lua_pcall
        // only values already alive are pushed and raw reads done; the
        // string is made inside the protected `bytes_call`.
        unsafe {
            let uv = if via_multi {
                // the multi's tables, then the easy it maps `addr` to
                let Some(muv) = push_holder_uv(raw, l, holder, top)? else {
                    return Ok(Called::NoFn(Value::Nil));
                };
                if !(ffi::lua_rawgeti(l, muv, handles_key) == ffi::LUA_TTABLE
                    && get_addr(l, muv + 1, addr) == ffi::LUA_TUSERDATA
                    && push_uv_of(l, muv + 2))
                {
                    return Ok(Called::NoFn(Value::Nil));
                }
                muv + 4 // handles, easy, wrapper, uv
            } else {
                match push_holder_uv(raw, l, holder, top)? {
                    Some(uv) => uv,
                    None => return Ok(Called::NoFn(Value::Nil)),
                }
            };
            match caller {
                Some(c) => raw.push(c)?,
                None if cfg!(any(feature = "lua51", feature = "luajit")) => {
                    return Err(LuaError::runtime("the bytes caller is missing"));
                }
                None => ffi::lua_pushcfunction(l, bytes_call),
            }
            if ffi::lua_rawgeti(l, uv, fkey) != ffi::LUA_TFUNCTION {
                // caller, not a function, data: a sink takes the bytes
                // here (its userdata, on the stack, keeps it alive; no Lua
                // runs before it is done)
                ffi::lua_rawgeti(l, uv, dkey);
                if let Some(sink) = object_at::<S>(l, uv + 3) {
                    if (*sink).take_bytes(bytes) {
                        return Ok(Called::Taken);
                    }
                }
                return raw.pop::<Value>().map(Called::NoFn);
            }
            // caller, f
            ffi::lua_rawgeti(l, uv, dkey);
            // Put back what the slot held after the call: a call hook of
            // `bytes_call` (or a finalizer) that runs before it takes the
            // bytes can make a nested write whose own `call_with_bytes`
            // uses the slot; this call's bytes must still be there when
            // `bytes_call` starts (and none left behind if a hook raised).
            let outer = BYTES.with(|b| b.replace(Some((bytes.as_ptr() as usize, bytes.len()))));
            let r = pcall_first(raw, l, 2);
            BYTES.with(|b| b.set(outer));
            r
        }
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
        let n = call_full(l);
        if ffi::lua_toboolean(l, 1) != 0 {
            return n - 1;
        }
        ffi::lua_settop(l, 2);
        ffi::lua_error(l)
    }
}

/// Wraps a raw method `f` (returning `true, ...` or `false, err`) into one
/// that returns the results or raises `err` as is. Not passed through
/// `export`: `checked_call` makes no call into mlua, and `f` is exported.
pub fn checked(lua: &Lua, f: LuaFunction) -> LuaResult<LuaFunction> {
    // SAFETY: runs inside exec_raw's protected call with `f` at 1; pushing a
    // C closure takes the upvalue from the stack and leaves the closure.
    unsafe {
        lua.exec_raw(f, |l| {
            ffi::lua_pushcclosure(l, checked_call, 1);
        })
    }
}

/// A table `{[name] = integer}` of `n` entries from `get(i)`, built in one
/// protected call (one `raw_set` each costs a protected call in module
/// mode; `require "curl"` makes over a thousand of them).
pub fn int_table<'a>(
    lua: &Lua,
    n: usize,
    get: impl Fn(usize) -> (&'a str, i64),
) -> LuaResult<LuaTable> {
    // SAFETY: runs inside exec_raw's protected call and leaves one table.
    // The closure holds only references (nothing with a destructor), so an
    // out-of-memory error unwinding through it skips no cleanup.
    unsafe {
        lua.exec_raw((), |l| {
            ffi::lua_createtable(l, 0, n.min(c_int::MAX as usize) as c_int);
            for i in 0..n {
                let (k, v) = get(i);
                ffi::lua_pushlstring(l, k.as_ptr().cast(), k.len());
                ffi::lua_pushinteger(l, v as ffi::lua_Integer);
                ffi::lua_rawset(l, -3);
            }
        })
    }
}

/// Hashing for addresses: one multiply (the default SipHash showed up in
/// per-transfer profiles; the keys are our own pointers, not input).
#[derive(Default, Clone, Copy)]
pub struct AddrHash;

pub struct AddrHasher(u64);

impl std::hash::BuildHasher for AddrHash {
    type Hasher = AddrHasher;
    fn build_hasher(&self) -> AddrHasher {
        AddrHasher(0)
    }
}

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        let x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = x ^ (x >> 29); // the low bits of an aligned address are zero
    }
}

/// Live userdata of the classes with fast paths, by the address of their
/// Lua block, with their inner state's type and address (an `Rc`'s) and
/// their metatable's address: how a fast path recognises an argument
/// without mlua's type check. An entry is added when the userdata is made
/// and removed by its `Drop` (run by `__gc` before Lua frees the block),
/// so a listed block is a live object of that type. The metatable is
/// compared too: a block freed without its `__gc` (a script can remove the
/// metatable with the debug library) leaves a stale entry, and another
/// userdata at that address has another metatable. Per thread: a Lua
/// state and its objects stay on one thread.
struct Entry {
    ty: TypeId,
    inner: usize,
    mt: usize,
}

thread_local! {
    static OBJECTS: RefCell<HashMap<usize, Entry, AddrHash>> =
        const { RefCell::new(HashMap::with_hasher(AddrHash)) };
}

/// Lists `ud` (whose userdata value holds a clone of `inner`).
pub fn register_object<T: 'static>(lua: &Lua, ud: &LuaAnyUserData, inner: &Rc<T>) {
    let mt = on_stack(lua, &[Holder::Ud(ud)], 1, |_, l, top| {
        // SAFETY: the userdata is at top + 1; reading its metatable does not
        // allocate.
        let mt = unsafe {
            if ffi::lua_getmetatable(l, top + 1) == 0 {
                return Ok(0);
            }
            ffi::lua_topointer(l, -1) as usize
        };
        Ok(mt)
    })
    .unwrap_or(0);
    if mt != 0 {
        let e = Entry {
            ty: TypeId::of::<T>(),
            inner: Rc::as_ptr(inner) as usize,
            mt,
        };
        let _ = OBJECTS.try_with(|m| m.borrow_mut().insert(ud.to_pointer() as usize, e));
    }
}

/// Unlists the block at `block` (from the userdata's `Drop`).
pub fn unregister_object(block: usize) {
    if block == 0 {
        return;
    }
    let _ = OBJECTS.try_with(|m| {
        let mut m = m.borrow_mut();
        m.remove(&block);
        if m.is_empty() {
            // Free the storage: nothing is left behind when the library is
            // unloaded after `lua_close`.
            *m = HashMap::with_hasher(AddrHash);
        }
    });
}

type Objects = HashMap<usize, Entry, AddrHash>;

/// The inner state of the `T` object at `idx` in `objects`, if it is one.
///
/// # Safety
/// `l` is the running state with room for 1 value; `idx` is a valid index.
unsafe fn object_in<T: 'static>(
    l: *mut ffi::lua_State,
    idx: c_int,
    objects: &Objects,
) -> Option<*const T> {
    // SAFETY: the caller's contract; reads only.
    let block = unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TUSERDATA {
            return None;
        }
        ffi::lua_touserdata(l, idx) as usize
    };
    let e = objects.get(&block).filter(|e| e.ty == TypeId::of::<T>())?;
    // SAFETY: as above; reads the metatable and pops it.
    let same = unsafe {
        if ffi::lua_getmetatable(l, idx) == 0 {
            return None;
        }
        let here = ffi::lua_topointer(l, -1) as usize;
        ffi::lua_pop(l, 1);
        here == e.mt
    };
    same.then_some(e.inner as *const T)
}

/// The inner state of the `T` object at `idx`, if it is one.
///
/// # Safety
/// As `object_in`.
unsafe fn object_at<T: 'static>(l: *mut ffi::lua_State, idx: c_int) -> Option<*const T> {
    OBJECTS
        // SAFETY: the caller's contract.
        .try_with(|m| unsafe { object_in::<T>(l, idx, &m.borrow()) })
        .ok()
        .flatten()
}

/// The inner states of the `A` object at 1 and the `B` object at 2 (one
/// registry access).
///
/// # Safety
/// As `object_in`.
unsafe fn objects_at<A: 'static, B: 'static>(
    l: *mut ffi::lua_State,
) -> Option<(*const A, *const B)> {
    OBJECTS
        .try_with(|m| {
            let m = m.borrow();
            // SAFETY: the caller's contract.
            unsafe { Some((object_in::<A>(l, 1, &m)?, object_in::<B>(l, 2, &m)?)) }
        })
        .ok()
        .flatten()
}

/// Runs `f` with new strong references to two listed inner states.
///
/// # Safety
/// `a` and `b` come from `object_at` for objects that are arguments of the
/// running call (so their userdata, each holding an `Rc`, are alive).
unsafe fn with_rcs<A, B, R>(a: *const A, b: *const B, f: impl FnOnce(&Rc<A>, &Rc<B>) -> R) -> R {
    // SAFETY: the caller's contract: each count is at least 1.
    let (a, b) = unsafe {
        Rc::increment_strong_count(a);
        Rc::increment_strong_count(b);
        (Rc::from_raw(a), Rc::from_raw(b))
    };
    f(&a, &b)
}

/// What a fast path's logic did.
pub enum Fast {
    /// Nothing: let the full method do the call.
    Full,
    /// Done: return `true`.
    Done,
    /// Done, with an error the logic left for the pending function
    /// (upvalue 2) to hand over: return what it returns. `unlink`: undo
    /// the link made before the call (the easy did not join).
    Failed { unlink: bool },
}

/// A fast path for `method(a, b)` (`AddHandle`, `RemoveHandle`): a type
/// whose functions its C function calls (monomorphised: no upvalue to
/// read, nothing called through a pointer).
pub trait PairPath: 'static {
    type A: 'static;
    type B: 'static;
    /// Record the link before `run` (undone when `run` says `Full` or
    /// `Failed { unlink: true }`): `(handles key, multi key)` as `link`
    /// takes them.
    const LINK: Option<(i64, i64)>;
    /// Clear the link after `run` (unless it says `Full`).
    const UNLINK: Option<(i64, i64)>;
    /// Whether the call can be served here; the easy handle's address to
    /// link or unlink if so.
    fn ready(a: &Self::A, b: &Self::B) -> Option<usize>;
    /// The call; `ah` holds the object `a` for the call's context.
    fn run(lua: &Lua, ah: Holder<'_>, a: &Rc<Self::A>, b: &Rc<Self::B>) -> Fast;
    /// `run` panicked (a bug): keep the error for the pending function.
    fn panicked(a: &Self::A, msg: String);
}

/// A panic in a C path's logic (a bug), for its `panicked`: the text
/// `ffi::unwind_guard` gives it, marked as ours.
fn panic_text(msg: String) -> String {
    format!("internal error (panic): {msg}")
}

/// The module's anchor thread: a Lua thread (never run, kept in mlua's
/// app data, so no Lua code can reach it) on whose stack the C paths pin
/// the objects of a running call, so that callbacks find them without an
/// mlua handle.
struct Anchor {
    _keep: LuaThread,
}

/// Pins at most this deep on the anchor (nested C paths beyond it take the
/// full method); the anchor's stack is grown to `ANCHOR_ROOM` when it is
/// made, so pinning never allocates (Lua 5.1 and LuaJIT raise, with no
/// handler on that thread, when growing a stack runs out of memory).
const ANCHOR_DEPTH: c_int = 24;
const ANCHOR_ROOM: c_int = ANCHOR_DEPTH + 8;

/// Makes the anchor thread for this state (the sentinel records it for
/// `pinned`; mlua's app data keeps it alive).
pub fn init_anchor(lua: &Lua) -> LuaResult<()> {
    // SAFETY: inside exec_raw's protected call: making the thread may
    // raise (out of memory), which the call catches. A new thread's stack
    // (40 slots or more on every version) has `ANCHOR_ROOM` free, so the
    // check allocates nothing on it (an error raised on the anchor itself
    // would have no handler). Leaves the thread and its address.
    let (keep, p) = unsafe {
        lua.exec_raw::<(LuaThread, mlua::LightUserData)>((), |l| {
            let th = ffi::lua_newthread(l);
            if ffi::lua_checkstack(th, ANCHOR_ROOM) == 0 {
                ffi::luaL_error(l, c"curl: no stack for the anchor thread".as_ptr());
            }
            ffi::lua_pushlightuserdata(l, th.cast());
        })?
    };
    lua.set_app_data(Anchor { _keep: keep });
    super::export::set_anchor(lua, p.0.cast())
}

/// Whether `pinned` may pin for a call on `l`: there is an anchor, `l` is
/// the thread mlua has as current, and the anchor is not nested too deep.
///
/// # Safety
/// `th` is null or the anchor of `l`'s state (`export::live`).
unsafe fn can_pin(lua: &Lua, th: *mut ffi::lua_State, l: *mut ffi::lua_State) -> bool {
    // SAFETY: the caller's contract: a live anchor thread.
    !th.is_null()
        && lua.exec_raw_lua(|raw| raw.state()) == l
        && unsafe { ffi::lua_gettop(th) } <= ANCHOR_DEPTH
}

/// Runs `f` with the objects at 1..=`n` of the running C call pinned on
/// the anchor thread (the first given to `f`), then puts them back in
/// their argument slots (Lua code run by a callback can change a C
/// frame's slots with `debug.setlocal`) and unpins them. `None` when that
/// cannot be done, or when the call does not run on the thread mlua has
/// as current: then the full method takes the call (mlua runs it, and the
/// Lua callbacks it causes, on the calling thread, where these would run
/// on mlua's current one).
///
/// # Safety
/// Called from a C function on `l` with userdata at 1..=`n` (`n` ≤ 2),
/// with room for 2 more values; `lua` and `th` (the anchor, or null) are
/// what the live sentinel of `l`'s state gave (`export::live`). `f` must
/// not raise a Lua error (it runs with values pushed on the anchor).
unsafe fn pinned<R>(
    lua: &Lua,
    th: *mut ffi::lua_State,
    l: *mut ffi::lua_State,
    n: c_int,
    f: impl FnOnce(Holder<'_>) -> R,
) -> Option<R> {
    // SAFETY: the caller's contract; the anchor is this state's (made by
    // `init_anchor`) and its stack is restored.
    unsafe {
        if !can_pin(lua, th, l) || ffi::lua_checkstack(th, n + 3) == 0 {
            return None;
        }
        let top = ffi::lua_gettop(th);
        for i in 1..=n {
            ffi::lua_pushvalue(l, i);
        }
        ffi::lua_xmove(l, th, n);
        // the first object's wrapper table (the objects are full userdata:
        // the caller's contract)
        let uv = if ffi::lua_getuservalue(th, top + 1) == ffi::LUA_TTABLE {
            top + n + 1
        } else {
            ffi::lua_settop(th, top + n);
            0
        };
        let pin = Pin {
            th,
            idx: top + 1,
            block: ffi::lua_touserdata(l, 1) as usize,
            uv,
            _call: std::marker::PhantomData,
        };
        let r = f(Holder::Pinned(pin));
        // (the settop drops the wrapper table, and anything a nested path
        // might have left above the pins; the move takes the pins off the
        // anchor)
        ffi::lua_settop(th, top + n);
        ffi::lua_xmove(th, l, n);
        pop_into_args(l, n);
        Some(r)
    }
}

/// Pops the `n` values on top of `l` into its slots `1..=n` (the first
/// of them into 1).
///
/// # Safety
/// `l` is the running state with at least `2 * n` values.
unsafe fn pop_into_args(l: *mut ffi::lua_State, n: c_int) {
    // SAFETY: the caller's contract. (`lua_replace` is one API call on
    // Lua 5.1 and LuaJIT, two on later versions, where `lua_copy` is one.)
    unsafe {
        if cfg!(any(feature = "lua51", feature = "luajit")) {
            for i in (1..=n).rev() {
                ffi::lua_replace(l, i);
            }
        } else {
            for i in 1..=n {
                ffi::lua_copy(l, i - n - 1, i);
            }
            ffi::lua_settop(l, -n - 1);
        }
    }
}

/// The C function of a `PairPath` (upvalues: the checked method, the
/// pending function).
unsafe extern "C-unwind" fn pair_call<P: PairPath>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots; at most 9
    // used), made by `pair_path`. The objects are this call's arguments
    // (their userdata hold them alive for the call). The table stores of
    // `link_here` can raise (out of memory) while this frame holds nothing
    // with a destructor; `run` runs inside `with_rcs`, which drops the
    // strong references it makes and calls no Lua itself.
    unsafe {
        // the module's state (upvalue 3) first: after it died nothing
        // here may run (see `export`)
        let Some((lua, th)) = live(l, ffi::lua_upvalueindex(3)) else {
            raise_closed(l);
        };
        let n = ffi::lua_gettop(l);
        if n == 2 {
            if let Some((a, b)) = objects_at::<P::A, P::B>(l) {
                if let Some(addr) = P::ready(&*a, &*b) {
                    let linked = match P::LINK {
                        Some((hk, mk)) => link_here(l, hk, mk, addr),
                        None => true,
                    };
                    if linked {
                        let outcome = pinned(lua, th, l, 2, |ah| {
                            unwind_guard(
                                || with_rcs(a, b, |a, b| P::run(lua, ah, a, b)),
                                |msg| P::panicked(&*a, panic_text(msg)),
                                Fast::Failed { unlink: true },
                            )
                        })
                        .unwrap_or(Fast::Full);
                        let full = matches!(outcome, Fast::Full);
                        if full || matches!(outcome, Fast::Failed { unlink: true }) {
                            if let Some((hk, mk)) = P::LINK {
                                unlink_here(l, hk, mk, addr);
                            }
                        }
                        if !full {
                            if let Some((hk, mk)) = P::UNLINK {
                                unlink_here(l, hk, mk, addr);
                            }
                        }
                        match outcome {
                            Fast::Full => {}
                            Fast::Done => return 0,
                            Fast::Failed { .. } => return raise_pending(l),
                        }
                    }
                }
            }
        }
        ffi::lua_settop(l, n);
        call_full(l)
    }
}

/// Calls the pending function (upvalue 2) with the object at 1, which
/// returns `false, err` for the error a fast path kept, and raises `err`
/// as the checked method would (a `true, ...` is returned as `...`).
///
/// # Safety
/// Called from a C closure whose upvalue 2 is a function, with a value at
/// 1, whose frame holds nothing with a destructor.
unsafe fn raise_pending(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        ffi::lua_settop(l, 1);
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, 1, ffi::LUA_MULTRET);
        if ffi::lua_toboolean(l, 1) == 0 {
            ffi::lua_settop(l, 2);
            ffi::lua_error(l);
        }
        ffi::lua_remove(l, 1);
        ffi::lua_gettop(l)
    }
}

/// The checked method `full` with path `P` in front of it; `pending` (for
/// `Fast::Failed`) is called with the first argument and returns `false,
/// err`.
pub fn pair_path<P: PairPath>(
    lua: &Lua,
    full: LuaFunction,
    pending: LuaFunction,
) -> LuaResult<LuaFunction> {
    path_closure(lua, pair_call::<P>, full, pending)
}

/// The C closure `f` with upvalues: the checked method and the pending
/// function (what `pair_call` and `action_call` use).
fn path_closure(
    lua: &Lua,
    f: ffi::lua_CFunction,
    full: LuaFunction,
    pending: LuaFunction,
) -> LuaResult<LuaFunction> {
    // SAFETY: inside exec_raw's protected call with the two upvalues at
    // 1 and 2; pushing the closure takes them from the stack.
    let made = unsafe {
        lua.exec_raw((full, pending), move |l| {
            ffi::lua_settop(l, 2);
            push_sentinel(l);
            ffi::lua_pushcclosure(l, f, 3);
        })
    }?;
    export_c(lua, made)
}

/// What an `ActionPath` did.
pub enum Act {
    /// Let the full method do the call.
    Full,
    /// Done: return this number.
    Done(i64),
    /// Done, with an error the logic left for the pending function
    /// (upvalue 2) to hand over: raise it.
    Failed,
}

/// A C path for `method(a, x[, y])` with integer arguments
/// (`SocketAction`), in front of the checked method.
pub trait ActionPath: 'static {
    type A: 'static;
    /// The range of `x`.
    const X: (i64, i64);
    /// The range of `y`; nil or absent: `Y_DEFAULT`.
    const Y: (i64, i64);
    const Y_DEFAULT: i64;
    /// The call; `ah` holds the object `a` for the call's context.
    fn run(lua: &Lua, ah: Holder<'_>, a: &Rc<Self::A>, x: i64, y: i64) -> Act;
    /// `run` panicked (a bug): keep the error for the pending function.
    fn panicked(a: &Self::A, msg: String);
}

/// The integer at `idx` if it is a number with an integer value within
/// `range` (what `Args::int_in` accepts from a number).
///
/// # Safety
/// `l` is the running state; `idx` a valid index.
unsafe fn int_at(l: *mut ffi::lua_State, idx: c_int, range: (i64, i64)) -> Option<i64> {
    // SAFETY: the caller's contract; reads only.
    let x = unsafe {
        if ffi::lua_type(l, idx) != ffi::LUA_TNUMBER {
            return None;
        }
        ffi::lua_tonumber(l, idx)
    };
    // (the range test first: a cast out of range would saturate; NaN fails)
    (x >= range.0 as f64 && x <= range.1 as f64 && x == (x as i64) as f64).then_some(x as i64)
}

/// The C function of an `ActionPath` (upvalues: the checked method, the
/// pending function).
unsafe extern "C-unwind" fn action_call<P: ActionPath>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 4
    // used), made by `action_path`; the object is this call's argument (its
    // userdata holds it alive for the call). `run` runs inside `with_rc`,
    // which drops the strong reference it makes; the calls below run with
    // nothing that has a destructor in this frame.
    unsafe {
        // the module's state (upvalue 3) first: after it died nothing
        // here may run (see `export`)
        let Some((lua, th)) = live(l, ffi::lua_upvalueindex(3)) else {
            raise_closed(l);
        };
        let n = ffi::lua_gettop(l);
        if n == 2 || n == 3 {
            let y = if n == 3 && ffi::lua_type(l, 3) != ffi::LUA_TNIL {
                int_at(l, 3, P::Y)
            } else {
                Some(P::Y_DEFAULT)
            };
            if let (Some(x), Some(y), Some(a)) = (int_at(l, 2, P::X), y, object_at::<P::A>(l, 1)) {
                let outcome = pinned(lua, th, l, 1, |ah| {
                    unwind_guard(
                        || with_rc(a, |a| P::run(lua, ah, a, x, y)),
                        |msg| P::panicked(&*a, panic_text(msg)),
                        Act::Failed,
                    )
                });
                match outcome.unwrap_or(Act::Full) {
                    Act::Full => {}
                    Act::Done(r) => {
                        ffi::lua_pushinteger(l, r as ffi::lua_Integer);
                        return 1;
                    }
                    Act::Failed => return raise_pending(l),
                }
            }
        }
        ffi::lua_settop(l, n);
        call_full(l)
    }
}

/// The checked method `full` with path `P` in front of it; `pending` (for
/// `Act::Failed`) is called with the object and returns `false, err`.
pub fn action_path<P: ActionPath>(
    lua: &Lua,
    full: LuaFunction,
    pending: LuaFunction,
) -> LuaResult<LuaFunction> {
    path_closure(lua, action_call::<P>, full, pending)
}

/// Runs `f` with a new strong reference to a listed inner state.
///
/// # Safety
/// As `with_rcs`.
unsafe fn with_rc<A, R>(a: *const A, f: impl FnOnce(&Rc<A>) -> R) -> R {
    // SAFETY: the caller's contract: the count is at least 1.
    let a = unsafe {
        Rc::increment_strong_count(a);
        Rc::from_raw(a)
    };
    f(&a)
}

/// What a fast `InfoRead` found.
pub enum Info {
    /// Let the full method do the call.
    Full,
    /// No message: return `code, 0, 0, nil`.
    Empty(i64),
    /// A message: `msg, result, remaining` and the easy handle's address,
    /// whose object is looked up in the holder's user-value table.
    Msg(i64, i64, i64, usize),
}

/// A fast path for a `method(a)` that returns a message (`InfoRead`).
pub trait InfoPath: 'static {
    type A: 'static;
    /// The user-value key of the holder's `address → object` table.
    const HANDLES_KEY: i64;
    /// The message that says an object's work is done (for a drain).
    const DONE: i64;
    fn run(a: &Self::A) -> Info;
}

/// The C function of an `InfoPath` (upvalue: the full method).
unsafe extern "C-unwind" fn info_call<P: InfoPath>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 8
    // used), made by `info_path`; the object is this call's argument (its
    // userdata holds it alive: the reference `run` gets is valid for the
    // call). Nothing here raises, and the frame holds no destructors.
    unsafe {
        // the module's state (upvalue 2) first: after it died nothing
        // here may run (see `export`)
        if !alive(l, ffi::lua_upvalueindex(2)) {
            raise_closed(l);
        }
        let n = ffi::lua_gettop(l);
        if n == 1 {
            if let Some(a) = object_at::<P::A>(l, 1) {
                match P::run(&*a) {
                    Info::Full => {}
                    Info::Empty(code) => {
                        ffi::lua_pushinteger(l, code as ffi::lua_Integer);
                        ffi::lua_pushinteger(l, 0);
                        ffi::lua_pushinteger(l, 0);
                        ffi::lua_pushnil(l);
                        return 4;
                    }
                    Info::Msg(msg, result, remaining, addr) => {
                        ffi::lua_pushinteger(l, msg as ffi::lua_Integer);
                        ffi::lua_pushinteger(l, result as ffi::lua_Integer);
                        ffi::lua_pushinteger(l, remaining as ffi::lua_Integer);
                        // (the object at 1 is a full userdata: `object_at`)
                        if push_uv_of(l, 1)
                            && ffi::lua_rawgeti(l, -1, P::HANDLES_KEY) == ffi::LUA_TTABLE
                        {
                            get_addr(l, ffi::lua_gettop(l), addr);
                        } else {
                            ffi::lua_pushnil(l);
                        }
                        // msg, result, remaining, [wrapper, uv, handles,]
                        // easy: keep the three numbers and the easy
                        ffi::lua_replace(l, 5);
                        ffi::lua_settop(l, 5);
                        return 4;
                    }
                }
            }
        }
        ffi::lua_settop(l, n);
        call_full(l)
    }
}

/// The C function of a drain (`curl._drain(multi, transfers, out)`): the
/// messages of `I` with the removal of `P` for each, in one call
/// (upvalues: the checked full method, the pending function). For each
/// `CURLMSG_DONE` message whose object (looked up as `info_call` does) is
/// a key of `transfers`, it removes the object (`P`, when `P::ready`) and
/// appends `object, result` to `out`; it returns how many values it
/// appended. An error `P` kept is raised (through the pending function)
/// once its pair is appended.
unsafe extern "C-unwind" fn drain_call<I: InfoPath, P: PairPath<A = I::A>>(
    l: *mut ffi::lua_State,
) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 10
    // used), made by `drain_path`. The objects are this call's argument (the
    // multi) and a value of its handles table held in slot 2 (pinned, and
    // put back, for the removal). Slots 3 and 4 are checked to hold tables
    // before every raw access (Lua code run by a callback can change a C
    // frame's slots with `debug.setlocal`). The stores into `out` can raise
    // (out of memory) while this frame holds nothing with a destructor;
    // `run` runs inside `with_rcs`, which drops the strong references it
    // makes and calls no Lua itself.
    unsafe {
        let Some((lua, th)) = live(l, ffi::lua_upvalueindex(3)) else {
            raise_closed(l);
        };
        let nargs = ffi::lua_gettop(l);
        if nargs != 3
            || ffi::lua_type(l, 2) != ffi::LUA_TTABLE
            || ffi::lua_type(l, 3) != ffi::LUA_TTABLE
        {
            return call_full(l);
        }
        let Some(a) = object_at::<I::A>(l, 1) else {
            return call_full(l);
        };
        // (a removal this C path cannot pin for, from a coroutine mlua is not
        // running, goes to the full method before any message is taken)
        if !can_pin(lua, th, l) {
            return call_full(l);
        }
        // multi, (the easy of each message), transfers, out
        ffi::lua_pushnil(l);
        ffi::lua_insert(l, 2);
        let start = ffi::lua_rawlen(l, 4) as ffi::lua_Integer;
        let mut n = start;
        let tables =
            |l| ffi::lua_type(l, 3) == ffi::LUA_TTABLE && ffi::lua_type(l, 4) == ffi::LUA_TTABLE;
        loop {
            ffi::lua_settop(l, 4);
            if !tables(l) {
                break;
            }
            let (result, addr) = match I::run(&*a) {
                Info::Msg(msg, result, _, addr) if msg == I::DONE => (result, addr),
                Info::Msg(..) => continue,
                Info::Empty(_) => break,
                Info::Full => {
                    if n == start {
                        ffi::lua_remove(l, 2);
                        return call_full(l);
                    }
                    break;
                }
            };
            // the message's object into slot 2, if it is a key of transfers
            if !(push_uv_of(l, 1)
                && ffi::lua_rawgeti(l, -1, I::HANDLES_KEY) == ffi::LUA_TTABLE
                && get_addr(l, 7, addr) == ffi::LUA_TUSERDATA)
            {
                continue;
            }
            ffi::lua_pushvalue(l, -1);
            if ffi::lua_rawget(l, 3) == ffi::LUA_TNIL {
                continue;
            }
            ffi::lua_settop(l, 8);
            ffi::lua_replace(l, 2);
            ffi::lua_settop(l, 4);
            let mut failed = false;
            if let Some(b) = object_at::<P::B>(l, 2) {
                if let Some(b_addr) = P::ready(&*a, &*b) {
                    let outcome = pinned(lua, th, l, 2, |ah| {
                        unwind_guard(
                            || with_rcs(a, b, |a, b| P::run(lua, ah, a, b)),
                            |msg| P::panicked(&*a, panic_text(msg)),
                            Fast::Failed { unlink: true },
                        )
                    });
                    match outcome {
                        Some(Fast::Done) => unlink_removed::<P>(l, b_addr),
                        Some(Fast::Failed { .. }) => {
                            unlink_removed::<P>(l, b_addr);
                            failed = true;
                        }
                        // (not removed: the pair is reported all the same,
                        // as the loop did when RemoveHandle failed)
                        Some(Fast::Full) => {}
                        // (no room on the anchor: out of memory)
                        None => {
                            P::panicked(&*a, "no stack space to remove the easy".into());
                            failed = true;
                        }
                    }
                }
            }
            if !tables(l) {
                break;
            }
            ffi::lua_pushvalue(l, 2);
            ffi::lua_rawseti(l, 4, n + 1);
            ffi::lua_pushinteger(l, result as ffi::lua_Integer);
            ffi::lua_rawseti(l, 4, n + 2);
            n += 2;
            if failed {
                ffi::lua_remove(l, 2);
                return raise_pending(l);
            }
        }
        ffi::lua_pushinteger(l, n - start);
        1
    }
}

/// `P::UNLINK` for the multi at 1 and the easy at 2.
///
/// # Safety
/// As `unlink_here`.
unsafe fn unlink_removed<P: PairPath>(l: *mut ffi::lua_State, addr: usize) {
    if let Some((hk, mk)) = P::UNLINK {
        // SAFETY: the caller's contract.
        unsafe { unlink_here(l, hk, mk, addr) };
    }
}

/// `curl._drain`: the checked full method `full` with the drain of `I`
/// and `P` in front of it (see `drain_call`).
pub fn drain_path<I: InfoPath, P: PairPath<A = I::A>>(
    lua: &Lua,
    full: LuaFunction,
    pending: LuaFunction,
) -> LuaResult<LuaFunction> {
    path_closure(lua, drain_call::<I, P>, full, pending)
}

/// The method `full` with path `P` in front of it.
pub fn info_path<P: InfoPath>(lua: &Lua, full: LuaFunction) -> LuaResult<LuaFunction> {
    full_closure(lua, info_call::<P>, full)
}

/// The C closure `f` with upvalues: the full method and the sentinel
/// (what `info_call` and `unary_call` use).
fn full_closure(lua: &Lua, f: ffi::lua_CFunction, full: LuaFunction) -> LuaResult<LuaFunction> {
    // SAFETY: inside exec_raw's protected call with the full method at 1.
    let made = unsafe {
        lua.exec_raw(full, move |l| {
            ffi::lua_settop(l, 1);
            push_sentinel(l);
            ffi::lua_pushcclosure(l, f, 2);
        })
    }?;
    export_c(lua, made)
}

/// What a `NumPath` or a `UnaryPath` read: one result, or none.
pub enum Num {
    Int(i64),
    Float(f64),
    /// No result.
    Nothing,
    /// The value under this key of the object's own user-value table.
    Field(i64),
}

/// Pushes what `v` says for the object at 1 (a full userdata: `object_at`
/// found it) and returns how many values that is; `None` (with up to 2
/// values pushed) for a `Field` of an object without its table, which the
/// full method reports.
///
/// # Safety
/// `l` is the running state, in a C function with room for 3 values.
unsafe fn push_num(l: *mut ffi::lua_State, v: Num) -> Option<c_int> {
    // SAFETY: the caller's contract; pushes and raw reads only.
    unsafe {
        match v {
            Num::Int(i) => ffi::lua_pushinteger(l, i as ffi::lua_Integer),
            Num::Float(x) => ffi::lua_pushnumber(l, x),
            Num::Nothing => return Some(0),
            Num::Field(k) => {
                if !push_uv_of(l, 1) {
                    return None;
                }
                ffi::lua_rawgeti(l, -1, k);
            }
        }
        Some(1)
    }
}

/// A fast path for a getter `method(a, id)` that returns a number
/// (`GetInfo` of a numeric info); `None` leaves the call to the full method.
pub trait NumPath: 'static {
    type A: 'static;
    fn run(a: &Self::A, id: i64) -> Option<Num>;
}

/// The C function of a `NumPath`. Upvalues: the fallback, and the id or
/// nil. With an id (`GetInfo_X`): `(a)` returns the number, the fallback
/// is the checked method, called as `fallback(a, id)`. Without (the raw
/// `GetInfo`): `(a, id)` returns `true, number`, the fallback is the raw
/// method, called with the same arguments.
unsafe extern "C-unwind" fn num_call<P: NumPath>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 7
    // used), made by `num_path`; the object is this call's argument (its
    // userdata holds it alive for the call). Nothing here raises before the
    // fallback call, and the frame holds no destructors.
    unsafe {
        // the module's state (upvalue 3) first: after it died nothing
        // here may run (see `export`)
        if !alive(l, ffi::lua_upvalueindex(3)) {
            raise_closed(l);
        }
        let n = ffi::lua_gettop(l);
        let bound = ffi::lua_type(l, ffi::lua_upvalueindex(2)) == ffi::LUA_TNUMBER;
        let (want, id_idx) = if bound {
            (1, ffi::lua_upvalueindex(2))
        } else {
            (2, 2)
        };
        // (a bound id is a number: `bound` says so)
        if n == want && (bound || ffi::lua_type(l, id_idx) == ffi::LUA_TNUMBER) {
            let f = ffi::lua_tonumber(l, id_idx);
            // integral and within ±2^31 (NaN fails the first test)
            if f == (f as i32) as f64 {
                if let Some(a) = object_at::<P::A>(l, 1) {
                    if let Some(v) = P::run(&*a, f as i64) {
                        let field = matches!(v, Num::Field(_));
                        if !bound && !field {
                            ffi::lua_pushboolean(l, 1);
                        }
                        if let Some(k) = push_num(l, v) {
                            if bound {
                                return k;
                            }
                            if !field {
                                return k + 1;
                            }
                            // the results are the top values: `true` goes
                            // just below the value (the tables `Field`
                            // pushed first stay under it)
                            ffi::lua_pushboolean(l, 1);
                            ffi::lua_insert(l, -1 - k);
                            return k + 1;
                        }
                    }
                }
            }
        }
        ffi::lua_settop(l, n);
        if bound {
            // `fallback(a, id, ...)`: `a` is nil when no argument was given
            let n = n.max(1);
            ffi::lua_settop(l, n);
            ffi::luaL_checkstack(l, 2, std::ptr::null());
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
            ffi::lua_insert(l, 1);
            ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
            ffi::lua_insert(l, 3);
            ffi::lua_call(l, n + 1, ffi::LUA_MULTRET);
            return ffi::lua_gettop(l);
        }
        call_full(l)
    }
}

/// The getter `fallback` with path `P` in front of it; `id`: bound to one
/// id (see `num_call`).
pub fn num_path<P: NumPath>(
    lua: &Lua,
    fallback: LuaFunction,
    id: Option<i64>,
) -> LuaResult<LuaFunction> {
    // SAFETY: inside exec_raw's protected call with the fallback and the id
    // (or nil) at 1 and 2.
    let made = unsafe {
        lua.exec_raw((fallback, id), move |l| {
            ffi::lua_settop(l, 2);
            push_sentinel(l);
            ffi::lua_pushcclosure(l, num_call::<P>, 3);
        })
    }?;
    export_c(lua, made)
}

/// A fast path for a `method(a)` that returns one value or none and calls
/// no Lua (`buffer:Len`, `buffer:Clear`); `None` leaves the call to the
/// full method.
pub trait UnaryPath: 'static {
    type A: 'static;
    fn run(a: &Self::A) -> Option<Num>;
}

/// The C function of a `UnaryPath` (upvalues: the full method, the
/// sentinel).
unsafe extern "C-unwind" fn unary_call<P: UnaryPath>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 4
    // used), made by `unary_path`; the object is this call's argument (its
    // userdata holds it alive for the call). Nothing here raises before the
    // fallback call, and the frame holds no destructors.
    unsafe {
        if !alive(l, ffi::lua_upvalueindex(2)) {
            raise_closed(l);
        }
        let n = ffi::lua_gettop(l);
        if n == 1 {
            if let Some(a) = object_at::<P::A>(l, 1) {
                if let Some(k) = P::run(&*a).and_then(|v| push_num(l, v)) {
                    return k;
                }
            }
        }
        ffi::lua_settop(l, n);
        call_full(l)
    }
}

/// The method `full` with path `P` in front of it.
pub fn unary_path<P: UnaryPath>(lua: &Lua, full: LuaFunction) -> LuaResult<LuaFunction> {
    full_closure(lua, unary_call::<P>, full)
}

/// The C function of `uv_any_path` (upvalues: the full function, two
/// user-value keys).
unsafe extern "C-unwind" fn uv_any_call<T: 'static>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free stack slots, at most 5
    // used), made by `uv_any_path`; reads only, nothing raises before the
    // fallback call, and the frame holds no destructors.
    unsafe {
        // the module's state (upvalue 4) first: after it died nothing
        // here may run (see `export`)
        if !alive(l, ffi::lua_upvalueindex(4)) {
            raise_closed(l);
        }
        let n = ffi::lua_gettop(l);
        // (`object_at` found a full userdata at 1)
        if n == 1 && object_at::<T>(l, 1).is_some() && push_uv_of(l, 1) {
            let k1 = ffi::lua_tointeger(l, ffi::lua_upvalueindex(2));
            let k2 = ffi::lua_tointeger(l, ffi::lua_upvalueindex(3));
            let any = ffi::lua_rawgeti(l, -1, k1) != ffi::LUA_TNIL
                || ffi::lua_rawgeti(l, -2, k2) != ffi::LUA_TNIL;
            ffi::lua_settop(l, n);
            ffi::lua_pushboolean(l, any as c_int);
            return 1;
        }
        ffi::lua_settop(l, n);
        call_full(l)
    }
}

/// `full(obj)` with a fast path in front: whether the `T` object's
/// user-value table has a value under `keys[0]` or `keys[1]`.
pub fn uv_any_path<T: 'static>(
    lua: &Lua,
    full: LuaFunction,
    keys: [i64; 2],
) -> LuaResult<LuaFunction> {
    // SAFETY: inside exec_raw's protected call with the full function and
    // the keys at 1..3.
    let made = unsafe {
        lua.exec_raw((full, keys[0], keys[1]), move |l| {
            ffi::lua_settop(l, 3);
            push_sentinel(l);
            ffi::lua_pushcclosure(l, uv_any_call::<T>, 4);
        })
    }?;
    export_c(lua, made)
}

/// `link` for a raw fast path, with the multi at 1 and the easy at 2 of
/// the running C call. May raise (out of memory) like any table store.
///
/// # Safety
/// Called from a C function whose frame holds nothing with a destructor,
/// with a Multi at 1 and an Easy at 2 (checked to be those objects) and
/// room for 7 values.
unsafe fn link_here(l: *mut ffi::lua_State, handles_key: i64, multi_key: i64, addr: usize) -> bool {
    // SAFETY: the caller's contract; the stack is restored.
    unsafe {
        let top = ffi::lua_gettop(l);
        let ok = link_core(l, handles_key, multi_key, addr);
        ffi::lua_settop(l, top);
        ok
    }
}

/// The stores of `link`, with the multi at 1 and the easy at 2 (full
/// userdata, checked by the caller): both tables are found before anything
/// is written, so a failure changes nothing. Leaves up to 5 values on the
/// stack.
///
/// # Safety
/// As `link_here`, inside a protected call or a C function.
unsafe fn link_core(l: *mut ffi::lua_State, handles_key: i64, multi_key: i64, addr: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe {
        if !(push_uv_of(l, 1) && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE) {
            return false;
        }
        let handles = ffi::lua_gettop(l);
        if !push_uv_of(l, 2) {
            return false;
        }
        // multi wrapper, multi uv, handles, easy wrapper, easy uv
        ffi::lua_pushvalue(l, 1);
        ffi::lua_rawseti(l, -2, multi_key);
        set_addr(l, handles, addr, 2);
        true
    }
}

/// `unlink` for a raw fast path (multi at 1, easy at 2). Never raises.
///
/// # Safety
/// As `link_here`.
unsafe fn unlink_here(l: *mut ffi::lua_State, handles_key: i64, multi_key: i64, addr: usize) {
    // SAFETY: the caller's contract.
    unsafe { unlink_core(l, 1, 2, handles_key, multi_key, addr) }
}

/// The stores of `unlink`, with the multi at `m` and the easy at `e`
/// (absolute indices of full userdata): only keys holding a value are set
/// to nil, which never allocates. The stack is restored.
///
/// # Safety
/// `l` is the running state with room for 6 values; `m` and `e` hold full
/// userdata.
unsafe fn unlink_core(
    l: *mut ffi::lua_State,
    m: c_int,
    e: c_int,
    handles_key: i64,
    multi_key: i64,
    addr: usize,
) {
    // SAFETY: the caller's contract; raw reads and nil stores.
    unsafe {
        let top = ffi::lua_gettop(l);
        if push_uv_of(l, m)
            && ffi::lua_rawgeti(l, -1, handles_key) == ffi::LUA_TTABLE
            && get_addr(l, top + 3, addr) != ffi::LUA_TNIL
        {
            // wrapper, uv, handles, easy
            set_addr(l, top + 3, addr, 0);
        }
        ffi::lua_settop(l, top);
        if push_uv_of(l, e) && ffi::lua_rawgeti(l, -1, multi_key) != ffi::LUA_TNIL {
            // wrapper, uv, multi
            ffi::lua_pushnil(l);
            ffi::lua_rawseti(l, -3, multi_key);
        }
        ffi::lua_settop(l, top);
    }
}

/// Calls upvalue 1 (the full method) with this call's arguments and returns
/// its results: the way out of a fast path for anything unusual.
///
/// # Safety
/// Called from a C closure whose upvalue 1 is a function.
pub(super) unsafe fn call_full(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: the caller's contract; the frame below holds no destructors.
    unsafe {
        let n = ffi::lua_gettop(l);
        ffi::luaL_checkstack(l, 1, std::ptr::null());
        ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
        ffi::lua_insert(l, 1);
        ffi::lua_call(l, n, ffi::LUA_MULTRET);
        ffi::lua_gettop(l)
    }
}

/// An argument of `call_field`, pushed without allocating.
pub enum Arg {
    Nil,
    Int(i64),
    /// `uv[key]` of the holder.
    Field(i64),
    /// `uv[table][n]`, or nil.
    IntIn(i64, i64),
    /// `uv[table][addr]` (a handles table: see `INT_ADDR_KEYS`), or nil.
    AddrIn(i64, usize),
}

/// Calls the function stored at `fkey` in `holder`'s user-value table with
/// `args`, in protected mode, keeping its first result if that is -1
/// (else nil: see `pcall_minus_one`): the socket and timer callbacks,
/// without building mlua values for the arguments or the result.
pub fn call_field<const N: usize>(
    lua: &Lua,
    holder: Holder<'_>,
    fkey: i64,
    args: &[Arg; N],
) -> LuaResult<Called> {
    /// Arguments read from a table (`IntIn`, `AddrIn`) at most.
    const TABLES: usize = 4;
    on_stack(lua, &[], 2 * N as c_int + 6, |raw, l, top| {
        // SAFETY: room for the holder's tables is checked. Outside the
        // lua_pcall only existing values and integers are pushed and raw
        // reads done.
        unsafe {
            let Some(uv) = push_holder_uv(raw, l, holder, top)? else {
                return Ok(Called::NoFn(Value::Nil));
            };
            // The tables `IntIn` and `AddrIn` read from go below the
            // function (one read each instead of a push and a remove): the
            // slot of each, or 0 when it holds no table.
            let mut at = [0 as c_int; TABLES];
            let mut next = uv;
            let mut n = 0;
            for a in args {
                if let Arg::IntIn(t, _) | Arg::AddrIn(t, _) = *a {
                    if n == TABLES {
                        return Err(LuaError::runtime("call_field: too many table arguments"));
                    }
                    next += 1;
                    if ffi::lua_rawgeti(l, uv, t) == ffi::LUA_TTABLE {
                        at[n] = next;
                    }
                    n += 1;
                }
            }
            if ffi::lua_rawgeti(l, uv, fkey) != ffi::LUA_TFUNCTION {
                return Ok(Called::NoFn(Value::Nil));
            }
            let mut n = 0;
            for a in args {
                match *a {
                    Arg::Nil => ffi::lua_pushnil(l),
                    Arg::Int(i) => ffi::lua_pushinteger(l, i as ffi::lua_Integer),
                    Arg::Field(k) => {
                        ffi::lua_rawgeti(l, uv, k);
                    }
                    Arg::IntIn(_, i) => {
                        match at[n] {
                            0 => ffi::lua_pushnil(l),
                            t => {
                                ffi::lua_rawgeti(l, t, i as ffi::lua_Integer);
                            }
                        }
                        n += 1;
                    }
                    Arg::AddrIn(_, p) => {
                        match at[n] {
                            0 => ffi::lua_pushnil(l),
                            t => {
                                get_addr(l, t, p);
                            }
                        }
                        n += 1;
                    }
                }
            }
            pcall_minus_one(raw, l, N as c_int)
        }
    })
}

/// mlua gives a userdata whose `__gc` ran (resurrected by a finalizer) a
/// shared "destructed" metatable whose metamethods raise mlua's own error.
/// This module's copy of mlua keeps that metatable for this module's
/// objects only: here its `__index` and `__newindex` become `index` (which
/// raises the binding's usage error), `__tostring` becomes `tostring`, and
/// `__eq` is removed (identity).
pub fn patch_collected(lua: &Lua, index: LuaFunction, tostring: LuaFunction) -> LuaResult<()> {
    struct Probe;
    impl mlua::UserData for Probe {}
    let probe = lua.create_userdata(Probe)?;
    probe.destroy()?;
    // SAFETY: inside exec_raw's protected call with the probe, `index` and
    // `tostring` at 1..3; only table stores into the probe's metatable.
    unsafe {
        lua.exec_raw::<()>((probe, index, tostring), |l| {
            if ffi::lua_getmetatable(l, 1) == 0 {
                return;
            }
            ffi::lua_pushvalue(l, 2);
            ffi::lua_setfield(l, 4, c"__index".as_ptr());
            ffi::lua_pushvalue(l, 2);
            ffi::lua_setfield(l, 4, c"__newindex".as_ptr());
            ffi::lua_pushvalue(l, 3);
            ffi::lua_setfield(l, 4, c"__tostring".as_ptr());
            ffi::lua_pushnil(l);
            ffi::lua_setfield(l, 4, c"__eq".as_ptr());
            ffi::lua_settop(l, 0);
        })
    }
}

/// The key (its address, as a light userdata) a class metatable gets once
/// its `__gc` is `gc_guard`.
static GC_GUARDED: u8 = 0;

/// The `__gc` of each class `T` in each state: `(registry address,
/// TypeId)` → (the class metatable's address, mlua's destructor for `T`).
/// Kept in Rust, where Lua code cannot reach it (an upvalue of `__gc` can
/// be replaced with `debug.setupvalue`). An entry is made with the class's
/// first object in a state; a later state at the same registry address
/// makes its own before any object of the class exists there.
type GcClasses = HashMap<(usize, TypeId), (usize, ffi::lua_CFunction), AddrHash>;

thread_local! {
    static GC_CLASSES: RefCell<GcClasses> =
        const { RefCell::new(HashMap::with_hasher(AddrHash)) };
    /// The block of every object `new_object` made and `gc_guard` has not
    /// destroyed yet, with its class: the metatable alone does not say what
    /// a block holds (`debug.setmetatable` can give any userdata a class's
    /// metatable). A block freed without its `__gc` (its metatable removed)
    /// leaves a stale entry until a new object takes the address; the
    /// metatable test still stands in front of that.
    static GC_BLOCKS: RefCell<HashMap<usize, TypeId, AddrHash>> =
        const { RefCell::new(HashMap::with_hasher(AddrHash)) };
}

/// `__gc` of class `T`, in place of mlua's destructor. Lua calls `__gc`
/// with the object, but Lua code can call it too
/// (`debug.getmetatable(obj).__gc`): mlua's destructor takes whatever
/// block it is given and drops it, so a second call, or a call with an
/// object of another class, would drop freed memory or memory of another
/// type. Here the destructor runs only for a userdata whose metatable is
/// the class's own (once it ran, mlua has given the object its
/// "destructed" metatable, and later calls do nothing), and it is called
/// as a C function, not through `lua_call`: no hook runs between the check
/// and the destruction (a call hook could call `__gc` again on the same
/// object, or replace the argument with `debug.setlocal`), and the
/// destructor is never a Lua value (a hook could take it with
/// `debug.getinfo` and call it on anything).
unsafe extern "C-unwind" fn gc_guard<T: 'static>(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function called by Lua (20 free slots; 2 used). The
    // destructor is mlua's for `T` (an upvalue-less C function, checked by
    // `new_object`), called with the object, a userdata of class `T`, as
    // its only argument, as Lua's own call does.
    unsafe {
        if ffi::lua_type(l, 1) != ffi::LUA_TUSERDATA || ffi::lua_getmetatable(l, 1) == 0 {
            return 0;
        }
        let mt = ffi::lua_topointer(l, -1) as usize;
        ffi::lua_settop(l, 1);
        let key = (
            ffi::lua_topointer(l, ffi::LUA_REGISTRYINDEX) as usize,
            TypeId::of::<T>(),
        );
        let found = GC_CLASSES
            .try_with(|g| g.borrow().get(&key).copied())
            .ok()
            .flatten();
        let Some((class_mt, destroy)) = found else {
            return 0;
        };
        if class_mt != mt {
            return 0;
        }
        // (taken out of the list before the destructor runs)
        let block = ffi::lua_touserdata(l, 1) as usize;
        let ours = GC_BLOCKS
            .try_with(|b| {
                let mut b = b.borrow_mut();
                let ours = b.get(&block) == Some(&TypeId::of::<T>());
                if ours {
                    b.remove(&block);
                    if b.is_empty() {
                        *b = HashMap::with_hasher(AddrHash); // (frees the storage)
                    }
                }
                ours
            })
            .unwrap_or(false);
        if ours {
            destroy(l);
        }
        0
    }
}

/// A new object of class `T` whose metatable's `__gc` is `gc_guard::<T>`
/// (set the first time an object of the class is made in this state).
pub fn new_object<T: mlua::UserData + 'static>(lua: &Lua, v: T) -> LuaResult<LuaAnyUserData> {
    let ud = lua.create_userdata(v)?;
    let block = ud.to_pointer() as usize;
    let _ = GC_BLOCKS.try_with(|b| b.borrow_mut().insert(block, TypeId::of::<T>()));
    let key = &GC_GUARDED as *const u8 as *const c_void;
    let guarded = on_stack(lua, &[Holder::Ud(&ud)], 2, |_, l, top| {
        // SAFETY: the userdata is at top + 1; reading its metatable and a
        // light-userdata key does not allocate.
        unsafe {
            Ok(ffi::lua_getmetatable(l, top + 1) == 0
                || ffi::lua_rawgetp(l, -1, key) != ffi::LUA_TNIL)
        }
    })?;
    if !guarded {
        // SAFETY: inside exec_raw's protected call with the userdata at 1;
        // reads, and stores into its metatable (which can allocate:
        // protected; the class's entry is made first, so a `__gc` it
        // installed always finds one).
        unsafe {
            lua.exec_raw::<()>(&ud, |l| {
                if ffi::lua_getmetatable(l, 1) == 0 {
                    return;
                }
                // ud, mt
                ffi::lua_pushstring(l, c"__gc".as_ptr());
                ffi::lua_rawget(l, 2);
                // ud, mt, mlua's __gc: an upvalue-less C function, called
                // directly by the guard (else the class keeps mlua's own:
                // crash_regressions_spec.lua checks every class has the
                // guard)
                let Some(destroy) = ffi::lua_tocfunction(l, 3) else {
                    ffi::lua_settop(l, 0);
                    return;
                };
                if !ffi::lua_getupvalue(l, 3, 1).is_null() {
                    ffi::lua_settop(l, 0);
                    return;
                }
                let reg = ffi::lua_topointer(l, ffi::LUA_REGISTRYINDEX) as usize;
                let mt = ffi::lua_topointer(l, 2) as usize;
                let made = GC_CLASSES
                    .try_with(|g| {
                        g.borrow_mut()
                            .insert((reg, TypeId::of::<T>()), (mt, destroy));
                    })
                    .is_ok();
                if made {
                    ffi::lua_pushstring(l, c"__gc".as_ptr());
                    ffi::lua_pushcfunction(l, gc_guard::<T>);
                    ffi::lua_rawset(l, 2);
                    ffi::lua_pushboolean(l, 1);
                    ffi::lua_rawsetp(l, 2, key);
                }
                ffi::lua_settop(l, 0);
            })?;
        }
    }
    Ok(ud)
}
