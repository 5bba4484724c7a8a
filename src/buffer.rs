//! `curl.Buffer`: a byte buffer that takes a transfer's body (or headers)
//! without a Lua call per chunk: `easy:SetOpt_WriteData(buf)` with no write
//! function appends every chunk in Rust.

use crate::error::{reg, reg_fn, usage, R};
use crate::luaapi::class::lua_class;
use crate::luaapi::raw::{
    register_object, unary_path, unregister_object, ByteSink, Num, UnaryPath,
};
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
    /// The address of this buffer's Lua block (see `register_object`).
    block: std::cell::Cell<usize>,
}

pub struct Buffer(Rc<BufferInner>);

impl Drop for Buffer {
    fn drop(&mut self) {
        unregister_object(self.0.block.replace(0));
    }
}

lua_class!(Buffer, "curl.Buffer", "the buffer", Rc<BufferInner>);

impl BufferInner {
    /// Appends `bytes`; false (nothing changed) while the data is borrowed,
    /// which no call that can run Lua does.
    pub fn append(&self, bytes: &[u8]) -> bool {
        let Ok(mut data) = self.data.try_borrow_mut() else {
            return false;
        };
        data.extend_from_slice(bytes);
        self.total.set(self.total.get() + bytes.len() as u64);
        true
    }
}

/// A buffer given as WRITEDATA or HEADERDATA without a function takes the
/// bytes straight from the write callback's trampoline.
impl ByteSink for BufferInner {
    fn take_bytes(&self, bytes: &[u8]) -> bool {
        self.append(bytes)
    }
}

/// The Buffer behind a userdata value, if it is one.
pub fn append_to(v: &Value, bytes: &[u8]) -> bool {
    match v {
        Value::UserData(u) => match u.borrow::<Buffer>() {
            Ok(b) => b.0.append(bytes),
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
    if !with(&args, |b| b.append(&s.as_bytes()))? {
        return usage("the buffer is in use");
    }
    Ok(())
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
        let inner = Rc::new(BufferInner::default());
        let ud = crate::luaapi::raw::new_object(lua, Buffer(inner.clone()))?;
        inner.block.set(ud.to_pointer() as usize);
        register_object(lua, &ud, &inner);
        Ok(ud)
    })?;
    Ok(())
}

/// `buffer:Len()`, `buffer:Total()` and `buffer:Clear()` as C paths (no
/// argument conversion, no Lua value made): the per-transfer calls of a
/// loop that reuses its buffers.
struct Len;
impl UnaryPath for Len {
    type A = BufferInner;
    fn run(b: &BufferInner) -> Option<Num> {
        Some(Num::Int(b.data.try_borrow().ok()?.len() as i64))
    }
}

struct Total;
impl UnaryPath for Total {
    type A = BufferInner;
    fn run(b: &BufferInner) -> Option<Num> {
        Some(Num::Int(b.total.get() as i64))
    }
}

struct Clear;
impl UnaryPath for Clear {
    type A = BufferInner;
    fn run(b: &BufferInner) -> Option<Num> {
        b.data.try_borrow_mut().ok()?.clear();
        Some(Num::Nothing)
    }
}

/// Adds the C paths above to `raw.fast` (see `multi::fast::register`).
pub fn register_fast(lua: &Lua, fast: &LuaTable) -> LuaResult<()> {
    type Maker = fn(&Lua, LuaFunction) -> LuaResult<LuaFunction>;
    let paths: [(&str, Maker); 3] = [
        ("curl.Buffer.Len", unary_path::<Len>),
        ("curl.Buffer.Total", unary_path::<Total>),
        ("curl.Buffer.Clear", unary_path::<Clear>),
    ];
    for (key, make) in paths {
        fast.raw_set(
            key,
            crate::luaapi::function(lua, move |lua, full: LuaFunction| make(lua, full))?,
        )?;
    }
    Ok(())
}
