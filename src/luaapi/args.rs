//! Reading a method's arguments: positional values with checks that give
//! usage errors naming the argument (`bad argument #1 'socket' (expected
//! integer, got string)`).

use super::class::Handle;
use mlua::prelude::*;
use mlua::state::RawLua;
use mlua::{FromLuaMulti, MultiValue, Value};
use std::os::raw::c_int;

/// A usage error's message (the error layer turns it into a `curl.Error`).
#[derive(Debug)]
pub struct Usage(pub String);

pub fn usage<T>(msg: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(msg.into()))
}

type UR<T> = Result<T, Usage>;

/// Positional arguments. Index 0 is `self` for methods; user-facing
/// argument numbers start at 1 after it.
pub struct Args {
    vals: [Value; ARGS_KEPT],
    n: usize,
}

/// Arguments kept (self + 4): no method or function reads more; extra ones
/// are ignored. (Each slot costs a copy and a drop on every call.)
const ARGS_KEPT: usize = 5;

impl Args {
    fn from_iter(it: impl Iterator<Item = Value>, n: usize) -> Args {
        let mut vals: [Value; ARGS_KEPT] = Default::default();
        for (slot, v) in vals.iter_mut().zip(it) {
            *slot = v;
        }
        Args { vals, n }
    }

    /// For module functions: an empty `self`, so the first argument is #1.
    pub fn shifted(mut self) -> Args {
        self.vals.rotate_right(1);
        self.vals[0] = Value::Nil;
        self.n += 1;
        self
    }
}

impl FromLuaMulti for Args {
    fn from_lua_multi(values: MultiValue, _lua: &Lua) -> LuaResult<Self> {
        let n = values.len();
        Ok(Args::from_iter(values.into_iter(), n))
    }

    // Read the arguments straight from the stack into a fixed array: no
    // heap allocation per call (this runs on every method call).
    unsafe fn from_stack_multi(nvals: c_int, lua: &RawLua) -> LuaResult<Self> {
        let n = nvals.max(0) as usize;
        let mut vals: [Value; ARGS_KEPT] = Default::default();
        for (k, slot) in vals.iter_mut().enumerate().take(n) {
            // SAFETY: mlua calls this with `nvals` arguments on the stack;
            // -nvals + k addresses argument k.
            *slot = unsafe { Value::from_stack(-nvals + k as c_int, lua)? };
        }
        Ok(Args { vals, n })
    }
}

/// The type of a value for messages: a handle's class name (its
/// metatable's `__name`), or Lua's type name.
pub fn type_name(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(_) => "boolean".into(),
        Value::LightUserData(_) => "light userdata".into(),
        Value::Integer(_) | Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Table(_) => "table".into(),
        Value::Function(_) => "function".into(),
        Value::Thread(_) => "thread".into(),
        Value::UserData(ud) => ud
            .metatable()
            .and_then(|mt| mt.get::<Option<String>>("__name"))
            .ok()
            .flatten()
            .unwrap_or_else(|| "userdata".into()),
        _ => "value".into(),
    }
}

fn bad<T>(n: usize, name: &str, expected: &str, got: &Value) -> UR<T> {
    usage(format!(
        "bad argument #{n} '{name}' (expected {expected}, got {})",
        type_name(got)
    ))
}

/// A Lua number that is an exact integer.
pub fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.fract() == 0.0 && n.is_finite() && n.abs() < 9.3e18 => {
            Some(*n as i64)
        }
        _ => None,
    }
}

impl Args {
    pub fn get(&self, i: usize) -> Value {
        self.get_ref(i).clone()
    }

    /// Argument `i` without copying it (a copy of a reference value costs
    /// an allocation in mlua).
    pub fn get_ref(&self, i: usize) -> &Value {
        const NIL: &Value = &Value::Nil;
        if i < self.n && i < ARGS_KEPT {
            &self.vals[i]
        } else {
            NIL
        }
    }

    pub fn given(&self, i: usize) -> bool {
        i < self.n
    }

    pub fn int(&self, i: usize, name: &str) -> UR<i64> {
        let v = self.get_ref(i);
        to_int(v).map_or_else(|| bad(i, name, "integer", v), Ok)
    }

    pub fn opt_int(&self, i: usize, name: &str, default: i64) -> UR<i64> {
        match self.get_ref(i) {
            Value::Nil => Ok(default),
            _ => self.int(i, name),
        }
    }

    /// An integer within `min..=max` (so casts to C types never truncate).
    pub fn int_in(&self, i: usize, name: &str, min: i64, max: i64) -> UR<i64> {
        let n = self.int(i, name)?;
        if n < min || n > max {
            return usage(format!(
                "bad argument #{i} '{name}' (expected an integer from {min} to {max}, got {n})"
            ));
        }
        Ok(n)
    }

    pub fn opt_int_in(&self, i: usize, name: &str, default: i64, min: i64, max: i64) -> UR<i64> {
        match self.get_ref(i) {
            Value::Nil => Ok(default),
            _ => self.int_in(i, name, min, max),
        }
    }

    /// A C `int` argument.
    pub fn c_int(&self, i: usize, name: &str) -> UR<i32> {
        Ok(self.int_in(i, name, i32::MIN as i64, i32::MAX as i64)? as i32)
    }

    /// A descriptor, or -1 (`CURL_SOCKET_TIMEOUT`) where `allow_timeout`.
    pub fn fd(&self, i: usize, name: &str, allow_timeout: bool) -> UR<i32> {
        let min = if allow_timeout { -1 } else { 0 };
        Ok(self.int_in(i, name, min, i32::MAX as i64)? as i32)
    }

    /// A string argument's bytes.
    pub fn bytes(&self, i: usize, name: &str) -> UR<Vec<u8>> {
        match self.get_ref(i) {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            v => bad(i, name, "string", v),
        }
    }

    /// An optional string argument as text (nil: `None`).
    pub fn opt_text(&self, i: usize, name: &str) -> UR<Option<String>> {
        match self.get_ref(i) {
            Value::Nil => Ok(None),
            Value::String(s) => Ok(Some(String::from_utf8_lossy(&s.as_bytes()).into_owned())),
            v => bad(i, name, "string", v),
        }
    }

    /// `self`, a `T`, with its inner state (one type check).
    pub fn this<T: Handle>(&self) -> UR<(&LuaAnyUserData, T::Inner)> {
        let v = self.get_ref(0);
        borrow_as::<T>(v, || "bad self".into()).unwrap_or_else(|| {
            usage(format!(
                "bad self (expected {}, got {}); call it with ':'",
                T::CLASS,
                type_name(v)
            ))
        })
    }

    /// `self` as `this`, and open (not closed).
    pub fn open<T: Handle>(&self) -> UR<(&LuaAnyUserData, T::Inner)> {
        let (ud, inner) = self.this::<T>()?;
        if !T::is_open(&inner) {
            return usage(format!("{} is closed", T::WHAT));
        }
        Ok((ud, inner))
    }

    /// Argument `i`, a `T`, with its inner state (one type check).
    pub fn arg<T: Handle>(&self, i: usize, name: &str) -> UR<(&LuaAnyUserData, T::Inner)> {
        let v = self.get_ref(i);
        let place = || format!("bad argument #{i} '{name}'");
        borrow_as::<T>(v, place).unwrap_or_else(|| bad(i, name, T::CLASS, v))
    }
}

/// `v` borrowed as a `T` with its inner state; `None` if `v` is not a `T`.
/// A destructed `T` gives "... was garbage-collected", any other borrow
/// failure `"{place()}: ..."`.
fn borrow_as<T: Handle>(
    v: &Value,
    place: impl FnOnce() -> String,
) -> Option<UR<(&LuaAnyUserData, T::Inner)>> {
    let Value::UserData(ud) = v else {
        return None;
    };
    match ud.borrow::<T>() {
        Ok(b) => Some(Ok((ud, b.inner()))),
        Err(LuaError::UserDataDestructed) => {
            Some(usage(format!("{} was garbage-collected", T::WHAT)))
        }
        Err(e) if ud.is::<T>() => Some(usage(format!("{}: {e}", place()))),
        Err(_) => None,
    }
}

/// A method's outcome for the Lua layer: `true, results...` or
/// `false, err`, pushed without building a `MultiValue`.
pub enum Out<T> {
    Ok(T),
    Err(Value),
}

impl<T: mlua::IntoLuaMulti> mlua::IntoLuaMulti for Out<T> {
    fn into_lua_multi(self, lua: &Lua) -> LuaResult<MultiValue> {
        match self {
            Out::Ok(v) => (true, v).into_lua_multi(lua),
            Out::Err(e) => (false, e).into_lua_multi(lua),
        }
    }

    unsafe fn push_into_stack_multi(self, lua: &RawLua) -> LuaResult<c_int> {
        // SAFETY: forwards to mlua's own tuple implementations with the
        // RawLua mlua handed us.
        unsafe {
            match self {
                Out::Ok(v) => (true, v).push_into_stack_multi(lua),
                Out::Err(e) => (false, e).push_into_stack_multi(lua),
            }
        }
    }
}
