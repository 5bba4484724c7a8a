//! `curl.Mime` and its parts: libcurl's MIME API (`curl_mime_*`), for
//! `MIMEPOST` multipart bodies.
//!
//! Ownership: a top-level mime is freed when its Lua object and every easy
//! posting it are gone (easies hold an `Rc`). A mime attached to a part with
//! `SubParts` belongs to that part from then on: libcurl frees it with its
//! parent, and its Lua object can no longer be used. Parts belong to their
//! mime. Data callbacks (`part:DataCallback`) are kept in a Lua table shared
//! by the whole tree (the mime's user value `callbacks`), found at call time
//! through the easy that runs the transfer (its `MIMEPOST` user value).

use crate::callbacks;
use crate::consts::c;
use crate::ctx::Ctx;
use crate::easy::{self, Easy, EasyInner};
use crate::easy_cb;
use crate::error::{reg, reg_fn, type_name, usage, Args, Fail, R};
use crate::raw::{self, MimePtr, PartPtr};
use mlua::prelude::*;
use mlua::{MultiValue, UserData, UserDataFields, Value};
use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

pub const CLASS: &str = "curl.Mime";
pub const PART_CLASS: &str = "curl.MimePart";

pub struct MimeInner {
    raw: Cell<Option<MimePtr>>,
    /// Attached to a parent part: the parent frees it.
    owned_by_parent: Cell<bool>,
    /// How many easy handles post it (MIMEPOST).
    posted: Cell<usize>,
    /// The mime whose part this one is attached to (SubParts).
    parent: RefCell<Weak<MimeInner>>,
    /// The easy posting this tree (set on the root): its transfers run the
    /// data callbacks.
    poster: RefCell<Weak<EasyInner>>,
    /// Part address -> the mime attached to that part (SubParts): libcurl
    /// frees those with us, or when the part gets other content.
    attached: RefCell<std::collections::HashMap<usize, Rc<MimeInner>>>,
}

impl MimeInner {
    fn root(self: &Rc<Self>) -> Rc<MimeInner> {
        let mut m = self.clone();
        loop {
            let p = m.parent.borrow().upgrade();
            match p {
                Some(p) => m = p,
                None => return m,
            }
        }
    }

    /// The tree is posted by an easy: changing it now could free what a
    /// running transfer reads.
    fn frozen(self: &Rc<Self>) -> bool {
        self.root().posted.get() > 0
    }

    /// The part at `addr` gets new content: libcurl frees a mime attached to
    /// it, so forget that one.
    fn content_replaced(&self, addr: usize) {
        let gone = self.attached.borrow_mut().remove(&addr);
        if let Some(ch) = gone {
            ch.forget();
        }
    }
}

/// What an easy holds while it posts a mime: keeps it alive and counted.
pub struct PostGuard(pub Rc<MimeInner>);

impl PostGuard {
    pub fn new(m: Rc<MimeInner>) -> PostGuard {
        m.posted.set(m.posted.get() + 1);
        PostGuard(m)
    }
}

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.0.posted.set(self.0.posted.get().saturating_sub(1));
    }
}

impl MimeInner {
    pub fn raw(&self) -> Option<MimePtr> {
        self.raw.get()
    }
    /// libcurl freed this mime (with its parent): forget it and its children.
    fn forget(&self) {
        self.raw.set(None);
        for ch in self.attached.borrow().values() {
            ch.forget();
        }
    }

    /// Frees a top-level mime now (its attached mimes go with it).
    fn free_now(&self) {
        if let Some(m) = self.raw.get() {
            self.forget();
            raw::mime_free(m);
        }
    }
}

impl Drop for MimeInner {
    fn drop(&mut self) {
        if !self.owned_by_parent.get() {
            self.free_now();
        }
    }
}

pub struct Mime(pub Rc<MimeInner>);

impl UserData for Mime {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

pub struct MimePart {
    mime: Rc<MimeInner>,
    raw: PartPtr,
}

impl UserData for MimePart {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, PART_CLASS);
    }
}

/// What libcurl gets as the `arg` of a part's data callbacks.
pub struct PartCb {
    id: u64,
    /// The mime the part belongs to (its root's poster runs the transfer).
    mime: Weak<MimeInner>,
    pending: RefCell<Vec<u8>>,
}

pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<MimeInner>> {
    Ok(ud
        .borrow::<Mime>()
        .map_err(|_| Fail::Usage("the mime handle was garbage-collected".into()))?
        .0
        .clone())
}

fn check(rc: raw::CURLcode, what: &str) -> R<()> {
    if rc == raw::CURLE_OK {
        Ok(())
    } else {
        Err(Fail::Easy(rc, Some(what.to_string())))
    }
}

fn open_mime(args: &Args) -> R<(&LuaAnyUserData, Rc<MimeInner>, MimePtr)> {
    let ud = args.this::<Mime>(CLASS)?;
    let m = inner_of(ud)?;
    if m.owned_by_parent.get() {
        return usage("the mime is attached to a part (SubParts) and belongs to it now");
    }
    let p = m
        .raw()
        .ok_or_else(|| Fail::Usage("the mime handle is closed".into()))?;
    if m.frozen() {
        return usage(
            "the mime is posted by an easy handle (MIMEPOST); unset that first to change it",
        );
    }
    Ok((ud, m, p))
}

fn open_part(args: &Args) -> R<(&LuaAnyUserData, Rc<MimeInner>, PartPtr)> {
    let ud = args.this::<MimePart>(PART_CLASS)?;
    let (m, p) = {
        let part = ud
            .borrow::<MimePart>()
            .map_err(|_| Fail::Usage("the mime part was garbage-collected".into()))?;
        (part.mime.clone(), part.raw)
    };
    if m.raw().is_none() {
        return usage("the part's mime was freed");
    }
    if m.frozen() {
        return usage(
            "the mime is posted by an easy handle (MIMEPOST); unset that first to change it",
        );
    }
    Ok((ud, m, p))
}

fn create(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let eud = args.ud::<Easy>(1, "easy", "curl.Easy")?;
    let e = easy::inner_of(eud)?;
    let h = e
        .raw()
        .ok_or_else(|| Fail::Usage("bad argument #1 'easy' (the easy handle is closed)".into()))?;
    let m = raw::mime_init(h)
        .ok_or_else(|| Fail::Usage("curl_mime_init failed (out of memory)".into()))?;
    let inner = MimeInner {
        raw: Cell::new(Some(m)),
        owned_by_parent: Cell::new(false),
        posted: Cell::new(0),
        parent: RefCell::new(Weak::new()),
        poster: RefCell::new(Weak::new()),
        attached: RefCell::new(std::collections::HashMap::new()),
    };
    let ud = lua.create_userdata(Mime(Rc::new(inner)))?;
    let t = lua.create_table()?;
    t.raw_set("callbacks", lua.create_table()?)?;
    ud.set_user_value(t)?;
    Ok(ud)
}

fn add_part(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, m, p) = open_mime(&args)?;
    let part = raw::mime_addpart(p)
        .ok_or_else(|| Fail::Usage("curl_mime_addpart failed (out of memory)".into()))?;
    let pud = lua.create_userdata(MimePart { mime: m, raw: part })?;
    // The part keeps its mime's Lua object (and so its callbacks) alive.
    let t = lua.create_table()?;
    t.raw_set("mime", ud)?;
    pud.set_user_value(t)?;
    Ok(pud)
}

fn str_arg(args: &Args, i: usize, name: &str) -> R<Option<CString>> {
    match args.get(i) {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(CString::new(s.as_bytes().to_vec()).map_err(|_| {
            Fail::Usage(format!("bad argument #{i} '{name}' (contains a NUL byte)"))
        })?)),
        v => usage(format!(
            "bad argument #{i} '{name}' (expected string or nil, got {})",
            type_name(&v)
        )),
    }
}

fn part_str(args: Args, which: u8, name: &str, what: &str) -> R<LuaAnyUserData> {
    let (ud, m, p) = open_part(&args)?;
    let v = str_arg(&args, 1, name)?;
    if which == b'd' {
        // FileData replaces the content: libcurl frees an attached sub-mime
        // first, even when it then fails (a missing file).
        m.content_replaced(p.addr());
    }
    check(raw::part_set_str(p, which, v.as_deref()), what)?;
    Ok(ud.clone())
}

fn part_data(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, m, p) = open_part(&args)?;
    let Value::String(s) = args.get(1) else {
        return usage(format!(
            "bad argument #1 'data' (expected string, got {})",
            type_name(&args.get(1))
        ));
    };
    m.content_replaced(p.addr()); // freed by libcurl whatever the outcome
    check(raw::part_data(p, &s.as_bytes()), "curl_mime_data")?;
    Ok(ud.clone())
}

fn part_headers(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, _m, p) = open_part(&args)?;
    let mut items = Vec::new();
    match args.get(1) {
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
                type_name(&v)
            ))
        }
    }
    check(raw::part_headers(p, &items), "curl_mime_headers")?;
    Ok(ud.clone())
}

fn part_subparts(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, m, p) = open_part(&args)?;
    let sud = args.ud::<Mime>(1, "mime", "curl.Mime")?;
    let sub = inner_of(sud)?;
    if sub.owned_by_parent.get() {
        return usage("bad argument #1 'mime' (it is already attached to a part)");
    }
    if Rc::ptr_eq(&sub, &m.root()) {
        // libcurl refuses it too, but only after freeing the part's content.
        return usage("bad argument #1 'mime' (a mime cannot be a part of itself)");
    }
    let Some(sp) = sub.raw() else {
        return usage("bad argument #1 'mime' (the mime handle is closed)");
    };
    if sub.posted.get() > 0 {
        return usage("bad argument #1 'mime' (it is posted by an easy handle)");
    }
    // libcurl frees an earlier sub-mime of this part first, on every path.
    m.content_replaced(p.addr());
    check(raw::part_subparts(p, sp), "curl_mime_subparts")?;
    sub.owned_by_parent.set(true);
    *sub.parent.borrow_mut() = Rc::downgrade(&m);
    m.attached.borrow_mut().insert(p.addr(), sub);
    // The parent's Lua object lists its sub-mimes (their callbacks are found
    // through it) and the child keeps the tree alive.
    let mud: LuaAnyUserData = ud.user_value::<LuaTable>()?.raw_get("mime")?;
    let pt: LuaTable = mud.user_value()?;
    let subs: LuaTable = match pt.raw_get::<Option<LuaTable>>("subs")? {
        Some(t) => t,
        None => {
            let t = _lua.create_table()?;
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
fn part_data_cb(_lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, m, p) = open_part(&args)?;
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
    let entry = _lua.create_table()?;
    entry.raw_set("read", read)?;
    entry.raw_set("seek", seek)?;
    entry.raw_set("data", args.get(4))?;
    cbs.raw_set(id as i64, entry)?;
    m.content_replaced(p.addr()); // freed by libcurl whatever the outcome
    let arg = Box::into_raw(Box::new(PartCb {
        id,
        mime: Rc::downgrade(&m),
        pending: RefCell::new(Vec::new()),
    }));
    let rc = raw::part_data_cb(
        p,
        size,
        callbacks::mime_read_cb,
        callbacks::mime_seek_cb,
        callbacks::mime_free_cb,
        arg as *mut std::os::raw::c_void,
    );
    if rc != raw::CURLE_OK {
        free_part_cb(arg as *mut std::os::raw::c_void);
        return Err(Fail::Easy(rc, Some("curl_mime_data_cb".into())));
    }
    Ok(ud.clone())
}

/// libcurl's free callback for a part's `arg`.
pub fn free_part_cb(arg: *mut std::os::raw::c_void) {
    if !arg.is_null() {
        // SAFETY: arg came from Box::into_raw in part_data_cb; libcurl calls
        // the free callback once per arg.
        drop(unsafe { Box::from_raw(arg as *mut PartCb) });
    }
}

fn close(_lua: &Lua, args: Args) -> R<()> {
    let ud = args.this::<Mime>(CLASS)?;
    let m = inner_of(ud)?;
    if m.owned_by_parent.get() {
        return usage("the mime is attached to a part (SubParts); it is freed with its parent");
    }
    if m.raw().is_none() {
        return Ok(());
    }
    let users = m.posted.get();
    if users > 0 {
        return usage(format!(
            "the mime is in use by {users} easy handle(s) (MIMEPOST)"
        ));
    }
    m.free_now();
    Ok(())
}

// ------------------------------------------------------------- callbacks

/// The Lua entry `{read =, seek =, data =}` of a part callback, found
/// through the easy that runs the transfer.
fn entry(ctx: &Ctx<'_>, e: &EasyInner, id: u64) -> Option<LuaTable> {
    let eud = ctx.easy_ud(e.addr())?;
    let et: LuaTable = eud.user_value().ok()?;
    let mud: LuaAnyUserData = et.raw_get(c::CURLOPT_MIMEPOST).ok()?;
    find_entry(&mud, id, 0)
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

impl PartCb {
    /// The easy posting the tree this part is in.
    pub fn easy(&self) -> Option<Rc<EasyInner>> {
        let m = self.mime.upgrade()?;
        let root = m.root();
        let e = root.poster.borrow().upgrade();
        e
    }
}

pub fn on_read(pc: &PartCb, e: &EasyInner, ctx: &Ctx<'_>, buf: *mut c_char, max: usize) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    {
        let mut p = pc.pending.borrow_mut();
        if !p.is_empty() {
            let n = raw::fill(buf, max, &p);
            p.drain(..n);
            return n;
        }
    }
    let Some(t) = entry(ctx, e, pc.id) else {
        return abort;
    };
    let Ok(Value::Function(f)) = t.raw_get::<Value>("read") else {
        return abort;
    };
    let mut args = MultiValue::new();
    args.push_back(Value::Integer(max as i64));
    args.push_back(t.raw_get::<Value>("data").unwrap_or(Value::Nil));
    match ctx.call(f, args) {
        Some(r) => easy_cb::read_result(ctx, &r, buf, max, &pc.pending),
        None => abort,
    }
}

pub fn on_seek(pc: &PartCb, e: &EasyInner, ctx: &Ctx<'_>, offset: i64, origin: c_int) -> c_int {
    pc.pending.borrow_mut().clear();
    let cant = c::CURL_SEEKFUNC_CANTSEEK as c_int;
    let Some(t) = entry(ctx, e, pc.id) else {
        return cant;
    };
    let Ok(Value::Function(f)) = t.raw_get::<Value>("seek") else {
        return cant;
    };
    let mut args = MultiValue::new();
    args.push_back(Value::Integer(offset));
    args.push_back(Value::Integer(origin as i64));
    args.push_back(t.raw_get::<Value>("data").unwrap_or(Value::Nil));
    let r = match ctx.call(f, args) {
        Some(r) => easy_cb::Call::Done(r),
        None => easy_cb::Call::Failed,
    };
    easy_cb::code_result(
        ctx,
        r,
        c::CURL_SEEKFUNC_OK as c_int,
        cant,
        c::CURL_SEEKFUNC_FAIL as c_int,
        cant,
    )
}

/// Whether the easy option value is a usable top-level mime.
/// Whether the easy option value is a usable top-level mime; the guard
/// counts the easy as a user until dropped.
pub fn for_post(v: &LuaAnyUserData, poster: &Rc<EasyInner>) -> R<(PostGuard, MimePtr)> {
    let m = inner_of(v)?;
    if m.owned_by_parent.get() {
        return usage(
            "bad argument #2 'value' for CURLOPT_MIMEPOST (the mime is a part's SubParts)",
        );
    }
    let p = m.raw().ok_or_else(|| {
        Fail::Usage("bad argument #2 'value' for CURLOPT_MIMEPOST (the mime is closed)".into())
    })?;
    if m.posted.get() > 0 {
        return usage(
            "bad argument #2 'value' for CURLOPT_MIMEPOST (another easy handle posts this mime)",
        );
    }
    *m.poster.borrow_mut() = Rc::downgrade(poster);
    Ok((PostGuard::new(m), p))
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
    reg(lua, &p, "FileData", "part:FileData", |_l, a| {
        part_str(a, b'd', "path", "curl_mime_filedata")
    })?;
    reg(lua, &p, "Data", "part:Data", part_data)?;
    reg(lua, &p, "Headers", "part:Headers", part_headers)?;
    reg(lua, &p, "SubParts", "part:SubParts", part_subparts)?;
    reg(lua, &p, "DataCallback", "part:DataCallback", part_data_cb)?;
    raw_t.raw_set("MimePart", p)?;
    reg_fn(lua, raw_t, "new_mime", "curl.Mime", create)?;
    Ok(())
}
