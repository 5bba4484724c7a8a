//! `curl.Mime` and its parts: libcurl's MIME API (`curl_mime_*`), for
//! `MIMEPOST` multipart bodies.
//!
//! Which mimes and parts libcurl still has, and whether a tree is posted
//! (frozen), is the FFI layer's bookkeeping (`ffi::Mime`). Here: the Lua
//! objects and the parts' data callbacks. Those (`part:DataCallback`) are
//! kept in a Lua table shared by the whole tree (the mime's user value
//! `callbacks`), found at call time through the easy that posts the tree
//! (its `MIMEPOST` user value), in the context of the call running the
//! transfer.

use crate::ctx::{take_pending, Ctx, CtxSource};
use crate::error::{reg, usage, Fail, R};
use crate::ffi::{self, Fault, MimeState, OutBuf};
use crate::luaapi::class::lua_class;
use crate::luaapi::{type_name, Args};
use crate::options::c;
use mlua::prelude::*;
use mlua::{MultiValue, Value};
use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::c_int;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Mime(ffi::Mime);

lua_class!(Mime, "curl.Mime", "the mime handle", ffi::Mime,
    open(inner) => inner.state() != MimeState::Freed);

pub struct MimePart(Rc<ffi::Part>);

lua_class!(MimePart, "curl.MimePart", "the mime part", Rc<ffi::Part>);

/// A refusal as a usage error, a libcurl code naming `what`.
fn mime_fault(what: &str) -> impl Fn(Fault) -> Fail + '_ {
    move |f| match f {
        Fault::Code(rc) => Fail::Easy(rc, Some(what.to_string())),
        Fault::Refused(why) => Fail::Usage(why),
        Fault::Multi(rc) => Fail::Multi(rc, None),
    }
}

/// The Lua object of a new mime (`curl.Mime(easy)`, made by the easy).
pub fn wrap(lua: &Lua, m: ffi::Mime) -> R<LuaAnyUserData> {
    let ud = crate::luaapi::raw::new_object(lua, Mime(m))?;
    let t = lua.create_table()?;
    t.raw_set("callbacks", lua.create_table()?)?;
    ud.set_user_value(t)?;
    Ok(ud)
}

/// The tree a `MIMEPOST` value names, for the easy to post.
pub fn for_post(v: &LuaAnyUserData) -> R<ffi::Mime> {
    let b = v
        .borrow::<Mime>()
        .map_err(|_| Fail::Usage("the mime handle was garbage-collected".into()))?;
    Ok(b.0.clone())
}

pub fn is_mime(v: &LuaAnyUserData) -> bool {
    v.is::<Mime>()
}

fn add_part(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, m) = args.this::<Mime>()?;
    let part = m.add_part().map_err(mime_fault("curl_mime_addpart"))?;
    let pud = crate::luaapi::raw::new_object(lua, MimePart(Rc::new(part)))?;
    // The part keeps its mime's Lua object (and so its callbacks) alive.
    let t = lua.create_table()?;
    t.raw_set("mime", ud)?;
    pud.set_user_value(t)?;
    Ok(pud)
}

fn str_arg(args: &Args, i: usize, name: &str) -> R<Option<CString>> {
    match args.get_ref(i) {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(CString::new(s.as_bytes().to_vec()).map_err(|_| {
            Fail::Usage(format!("bad argument #{i} '{name}' (contains a NUL byte)"))
        })?)),
        v => usage(format!(
            "bad argument #{i} '{name}' (expected string or nil, got {})",
            type_name(v)
        )),
    }
}

/// Name, filename, type, encoder.
fn part_str(args: Args, which: u8, name: &str, what: &str) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let v = str_arg(&args, 1, name)?;
    p.set_str(which, v.as_deref()).map_err(mime_fault(what))?;
    Ok(ud.clone())
}

fn part_filedata(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let v = str_arg(&args, 1, "path")?;
    p.filedata(v.as_deref())
        .map_err(mime_fault("curl_mime_filedata"))?;
    Ok(ud.clone())
}

fn part_data(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let Value::String(s) = args.get_ref(1) else {
        return usage(format!(
            "bad argument #1 'data' (expected string, got {})",
            type_name(args.get_ref(1))
        ));
    };
    p.data(&s.as_bytes())
        .map_err(mime_fault("curl_mime_data"))?;
    Ok(ud.clone())
}

fn part_headers(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let mut items = Vec::new();
    match args.get_ref(1) {
        Value::Nil => {}
        Value::Table(t) => {
            for i in 1..=t.raw_len() {
                let Value::String(s) = t.raw_get::<Value>(i)? else {
                    return usage(format!(
                        "bad argument #1 'headers': item {i} is not a string"
                    ));
                };
                items.push(CString::new(s.as_bytes().to_vec()).map_err(|_| {
                    Fail::Usage(format!(
                        "bad argument #1 'headers': item {i} contains a NUL byte"
                    ))
                })?);
            }
        }
        v => {
            return usage(format!(
                "bad argument #1 'headers' (expected array of strings, got {})",
                type_name(v)
            ))
        }
    }
    p.headers(&items).map_err(mime_fault("curl_mime_headers"))?;
    Ok(ud.clone())
}

fn part_subparts(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let (sud, sub) = args.arg::<Mime>(1, "mime")?;
    p.subparts(&sub).map_err(|f| match f {
        Fault::Refused(why) if why.starts_with("the mime is posted") || why.contains("freed") => {
            Fail::Usage(why)
        }
        Fault::Refused(why) => Fail::Usage(format!("bad argument #1 'mime' ({why})")),
        other => mime_fault("curl_mime_subparts")(other),
    })?;
    // The parent's Lua object lists its sub-mimes (their callbacks are found
    // through it) and the child keeps the tree alive.
    let mud: LuaAnyUserData = ud.user_value::<LuaTable>()?.raw_get("mime")?;
    let pt: LuaTable = mud.user_value()?;
    let subs: LuaTable = match pt.raw_get::<Option<LuaTable>>("subs")? {
        Some(t) => t,
        None => {
            let t = lua.create_table()?;
            pt.raw_set("subs", &t)?;
            t
        }
    };
    subs.raw_set(subs.raw_len() + 1, sud)?;
    let st: LuaTable = sud.user_value()?;
    st.raw_set("parent", mud)?;
    Ok(ud.clone())
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// `part:DataCallback(size, read[, seek[, userdata]])`: the part's body
/// comes from `read(maxbytes, userdata)` (like READFUNCTION); `size` is its
/// length, or -1 when unknown (chunked). `seek(offset, origin, userdata)`
/// rewinds it when libcurl must send it again.
fn part_data_cb(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, p) = args.this::<MimePart>()?;
    let size = args.int(1, "size")?;
    let read = args.get(2);
    if !matches!(read, Value::Function(_)) {
        return usage(format!(
            "bad argument #2 'read' (expected function, got {})",
            type_name(&read)
        ));
    }
    let seek = args.get(3);
    if !matches!(seek, Value::Function(_) | Value::Nil) {
        return usage(format!(
            "bad argument #3 'seek' (expected function or nil, got {})",
            type_name(&seek)
        ));
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mt: LuaTable = ud
        .user_value::<LuaTable>()?
        .raw_get::<LuaAnyUserData>("mime")?
        .user_value()?;
    let cbs: LuaTable = mt.raw_get("callbacks")?;
    let entry = lua.create_table()?;
    entry.raw_set("read", read)?;
    entry.raw_set("seek", seek)?;
    entry.raw_set("data", args.get(4))?;
    cbs.raw_set(id as i64, entry)?;
    let handler = PartCb {
        id,
        mime: p.mime().downgrade(),
        pending: RefCell::new(Vec::new()),
    };
    p.data_cb(size, handler)
        .map_err(mime_fault("curl_mime_data_cb"))?;
    Ok(ud.clone())
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let (_ud, m) = args.this::<Mime>()?;
    m.free().map_err(mime_fault("curl_mime_free"))
}

// ------------------------------------------------------------- callbacks

/// The handler of a part's data callbacks (libcurl owns it).
struct PartCb {
    id: u64,
    /// The mime the part belongs to (its tree's poster runs the transfer).
    mime: ffi::WeakMime,
    /// What `read` returned beyond the buffer libcurl offered.
    pending: RefCell<Vec<u8>>,
}

/// Who posts a tree: what `ffi::Mime::post` keeps for the data callbacks.
pub struct Poster(pub std::rc::Weak<dyn CtxSource>);

impl PartCb {
    /// Runs `f` in the context of the call driving the easy that posts
    /// the tree (`None` outside one).
    fn with_ctx<T: Default>(&self, f: impl FnOnce(Option<&Ctx<'_>>, usize) -> T) -> T {
        let poster = self
            .mime
            .poster()
            .and_then(|p| p.downcast::<Poster>().ok())
            .and_then(|p| p.0.upgrade());
        let Some(p) = poster else {
            return f(None, 0);
        };
        let addr = p.addr();
        let mut f = Some(f);
        let mut out = None;
        p.with_ctx_dyn(&mut |ctx| {
            if let Some(f) = f.take() {
                out = Some(f(ctx, addr));
            }
        });
        match (out, f) {
            (Some(v), _) => v,
            (None, Some(f)) => f(None, addr),
            (None, None) => T::default(), // not reached: the closure ran
        }
    }

    /// The Lua entry `{read =, seek =, data =}` of this part's callbacks,
    /// found through the easy that posts the tree.
    fn entry(&self, ctx: &Ctx, poster: usize) -> Option<LuaTable> {
        let eud = ctx.easy_ud(poster)?;
        let et: LuaTable = eud.user_value().ok()?;
        let mud: LuaAnyUserData = et.raw_get(c::CURLOPT_MIMEPOST).ok()?;
        find_entry(&mud, self.id, 0)
    }
}

/// The callback entry `id` in this mime or one attached below it.
fn find_entry(mud: &LuaAnyUserData, id: u64, depth: usize) -> Option<LuaTable> {
    let mt: LuaTable = mud.user_value().ok()?;
    let cbs: LuaTable = mt.raw_get("callbacks").ok()?;
    if let Ok(Some(t)) = cbs.raw_get::<Option<LuaTable>>(id as i64) {
        return Some(t);
    }
    if depth > 64 {
        return None;
    }
    let subs: LuaTable = mt.raw_get::<Option<LuaTable>>("subs").ok()??;
    for i in 1..=subs.raw_len() {
        if let Ok(s) = subs.raw_get::<LuaAnyUserData>(i) {
            if let Some(t) = find_entry(&s, id, depth + 1) {
                return Some(t);
            }
        }
    }
    None
}

impl ffi::PartHandler for PartCb {
    fn read(&self, buf: &OutBuf<'_>) -> usize {
        let abort = c::CURL_READFUNC_ABORT as usize;
        if let Some(n) = take_pending(&self.pending, buf) {
            return n;
        }
        self.with_ctx(|ctx, poster| {
            let Some(ctx) = ctx else {
                return abort;
            };
            let Some(t) = self.entry(ctx, poster) else {
                return abort;
            };
            let Ok(Value::Function(f)) = t.raw_get::<Value>("read") else {
                return abort;
            };
            let mut args = MultiValue::new();
            args.push_back(Value::Integer(buf.capacity() as i64));
            args.push_back(t.raw_get::<Value>("data").unwrap_or(Value::Nil));
            match ctx.call(f, args) {
                Some(r) => ctx.read_result(&r, buf, &self.pending),
                None => abort,
            }
        })
    }

    fn seek(&self, offset: i64, origin: c_int) -> c_int {
        self.pending.borrow_mut().clear();
        let cant = c::CURL_SEEKFUNC_CANTSEEK as c_int;
        self.with_ctx(|ctx, poster| {
            let Some(ctx) = ctx else {
                return cant;
            };
            let Some(t) = self.entry(ctx, poster) else {
                return cant;
            };
            let Ok(Value::Function(f)) = t.raw_get::<Value>("seek") else {
                return cant;
            };
            let mut args = MultiValue::new();
            args.push_back(Value::Integer(offset));
            args.push_back(Value::Integer(origin as i64));
            args.push_back(t.raw_get::<Value>("data").unwrap_or(Value::Nil));
            let r = ctx.call(f, args);
            ctx.code_result(
                r,
                c::CURL_SEEKFUNC_OK as c_int,
                cant,
                c::CURL_SEEKFUNC_FAIL as c_int,
            )
        })
    }

    fn panicked(&self, msg: String) {
        self.with_ctx(|ctx, _| {
            if let Some(ctx) = ctx {
                ctx.park_panic(msg);
            }
        })
    }
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let t = lua.create_table()?;
    reg(lua, &t, "AddPart", "mime:AddPart", add_part)?;
    reg(lua, &t, "Close", "mime:Close", close)?;
    raw_t.raw_set("Mime", t)?;
    let p = lua.create_table()?;
    reg(lua, &p, "Name", "part:Name", |_l, a| {
        part_str(a, b'n', "name", "curl_mime_name")
    })?;
    reg(lua, &p, "Filename", "part:Filename", |_l, a| {
        part_str(a, b'f', "filename", "curl_mime_filename")
    })?;
    reg(lua, &p, "Type", "part:Type", |_l, a| {
        part_str(a, b't', "type", "curl_mime_type")
    })?;
    reg(lua, &p, "Encoder", "part:Encoder", |_l, a| {
        part_str(a, b'e', "encoder", "curl_mime_encoder")
    })?;
    reg(lua, &p, "FileData", "part:FileData", part_filedata)?;
    reg(lua, &p, "Data", "part:Data", part_data)?;
    reg(lua, &p, "Headers", "part:Headers", part_headers)?;
    reg(lua, &p, "SubParts", "part:SubParts", part_subparts)?;
    reg(lua, &p, "DataCallback", "part:DataCallback", part_data_cb)?;
    raw_t.raw_set("MimePart", p)?;
    Ok(())
}
