//! `curl.Buffer`: a byte buffer that takes a transfer's body (or headers)
//! without a Lua call per chunk: `easy:SetOpt_WriteData(buf)` with no write
//! function appends every chunk in Rust.

use crate::error::{reg, reg_fn, usage, R};
use crate::luaapi::class::lua_class;
use crate::luaapi::{type_name, Args};
use mlua::prelude::*;
use mlua::Value;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default)]
pub struct BufferInner {
    data: RefCell<Vec<u8>>,
    /// Bytes taken in all, `Clear`/`Take` included.
    total: std::cell::Cell<u64>,
}

#[derive(Default)]
pub struct Buffer(Rc<BufferInner>);

lua_class!(Buffer, "curl.Buffer", "the buffer", Rc<BufferInner>);

impl BufferInner {
    pub fn append(&self, bytes: &[u8]) {
        self.data.borrow_mut().extend_from_slice(bytes);
        self.total.set(self.total.get() + bytes.len() as u64);
    }
}

/// The Buffer behind a userdata value, if it is one.
pub fn append_to(v: &Value, bytes: &[u8]) -> bool {
    match v {
        Value::UserData(u) => match u.borrow::<Buffer>() {
            Ok(b) => {
                b.0.append(bytes);
                true
            }
            Err(_) => false,
        },
        _ => false,
    }
}

pub fn is_buffer(v: &Value) -> bool {
    matches!(v, Value::UserData(u) if u.is::<Buffer>())
}

fn with<T>(args: &Args, f: impl FnOnce(&BufferInner) -> T) -> R<T> {
    let (_ud, b) = args.this::<Buffer>()?;
    Ok(f(&b))
}

fn take(lua: &Lua, args: Args) -> R<LuaString> {
    let bytes = with(&args, |b| std::mem::take(&mut *b.data.borrow_mut()))?;
    Ok(lua.create_string(&bytes)?)
}

fn peek(lua: &Lua, args: Args) -> R<LuaString> {
    let bytes = with(&args, |b| b.data.borrow().clone())?;
    Ok(lua.create_string(&bytes)?)
}

fn write(_lua: &Lua, args: Args) -> R<()> {
    let s = match args.get(1) {
        Value::String(s) => s,
        v => {
            return usage(format!(
                "bad argument #1 'data' (expected string, got {})",
                type_name(&v)
            ))
        }
    };
    with(&args, |b| b.append(&s.as_bytes()))
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "Take", "buffer:Take", take)?;
    reg(lua, &t, "Peek", "buffer:Peek", peek)?;
    reg(lua, &t, "Write", "buffer:Write", write)?;
    reg(lua, &t, "Len", "buffer:Len", |_l, a| {
        with(&a, |b| b.data.borrow().len() as i64)
    })?;
    reg(lua, &t, "Total", "buffer:Total", |_l, a| {
        with(&a, |b| b.total.get() as i64)
    })?;
    reg(lua, &t, "Clear", "buffer:Clear", |_l, a| {
        with(&a, |b| b.data.borrow_mut().clear())
    })?;
    raw_t.raw_set("Buffer", t)?;
    reg_fn(lua, raw_t, "new_buffer", "curl.Buffer", |lua, _a| {
        Ok(lua.create_userdata(Buffer::default())?)
    })?;
    Ok(())
}
