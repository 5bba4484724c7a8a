//! `curl.Easy`: one libcurl easy handle.
//!
//! Lua callbacks and their userdata live in the userdata's user-value table,
//! keyed by the `CURLOPT_*FUNCTION` / `*DATA` option ids (GC-visible, so a
//! callback that captures its own handle is still collected). The Rust side
//! keeps what libcurl borrows: slists, POSTFIELDS bytes, the error buffer.

use crate::callbacks;
use crate::consts::{c, it, ot, tables, EasyOpt};
use crate::ctx::{Ctx, CtxSlot};
use crate::easy_cb::{self, Cb};
use crate::error::{reg, reg_fn, to_int, type_name, usage, Args, Fail, R};
use crate::multi::{self, MultiInner};
use crate::raw::{self, EasyPtr, ErrBuf, Slist};
use mlua::prelude::*;
use mlua::{UserData, UserDataFields, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::raw::c_void;
use std::rc::Rc;

pub const CLASS: &str = "curl.Easy";

/// User-value key of the multi an easy is added to (option ids, the other
/// keys, are all positive).
pub const UV_MULTI: i64 = -1;

pub struct EasyInner {
    raw: Cell<Option<EasyPtr>>,
    /// The handle's address, kept after close: callbacks libcurl runs while
    /// cleaning up still find the object (whose methods then say "closed").
    id: usize,
    /// The multi this easy is added to (strong; the multi holds us back, and
    /// whichever side closes first breaks the cycle).
    pub multi: RefCell<Option<Rc<MultiInner>>>,
    /// Context of a running `easy:Perform` (or another call made on the easy
    /// alone: `Pause`, `Upkeep`, `Send`, `Recv`).
    pub slot: CtxSlot,
    /// List options libcurl points at, with the strings to rebuild them
    /// (`DupHandle`).
    slists: RefCell<HashMap<i32, (Slist, Vec<CString>)>>,
    postfields: RefCell<Option<Vec<u8>>>,
    /// Replaced lists / bodies libcurl may still point at until the transfer
    /// using them is over; freed when the handle is idle.
    graveyard: RefCell<Vec<Box<dyn std::any::Any>>>,
    /// What a read callback returned beyond the buffer libcurl offered.
    pending_read: RefCell<Vec<u8>>,
    /// Share / URL / Mime objects the handle points at (dropped after the
    /// libcurl handle is cleaned up).
    objects: RefCell<HashMap<i64, Rc<dyn std::any::Any>>>,
    errbuf: ErrBuf,
    /// Bit `1 << cb` for each callback other than write/header/read with a
    /// Lua function set: a handle with none can be added to and removed
    /// from a multi without any Lua running (the multi's fast path).
    pub lua_cbs: Cell<u32>,
    /// `InfoRead` returned this handle's CURLMSG_DONE since it was added:
    /// libcurl has finished with the transfer, so removing it runs no
    /// transfer callbacks (the condition for `RemoveHandle`'s fast path).
    pub finished: Cell<bool>,
    /// The address of this easy's Lua block (see `lraw::register_object`).
    block: Cell<usize>,
    /// This handle's `CLOSESOCKETDATA` (see `closer`).
    closer: usize,
    /// `CURLOPT_HSTS` names a file: libcurl keeps a list of them that
    /// libcurl before 8.5.0 gives a `DupHandle` copy too (freed twice).
    hsts_files: Cell<bool>,
}

/// `CLOSESOCKETDATA` tokens → their easy. libcurl copies the close-socket
/// function and its data into every connection a handle opens, and a
/// connection can outlive the handle (cached in the multi or a share after
/// the function was cleared and `FORBID_REUSE` turned off, or closed when
/// the multi is): the data is a token looked up here, never the
/// `EasyInner`'s address, so a connection that outlives its easy only
/// finds nothing (and the socket is closed as libcurl would). Tokens are
/// never reused.
mod closers {
    use super::EasyInner;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::{Rc, Weak};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NEXT: AtomicUsize = AtomicUsize::new(1);

    thread_local! {
        static LIVE: RefCell<HashMap<usize, Weak<EasyInner>>> = RefCell::new(HashMap::new());
    }

    pub fn next() -> usize {
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    pub fn register(token: usize, e: &Rc<EasyInner>) {
        let _ = LIVE.try_with(|m| m.borrow_mut().insert(token, Rc::downgrade(e)));
    }

    pub fn unregister(token: usize) {
        let _ = LIVE.try_with(|m| m.borrow_mut().remove(&token));
    }

    pub fn find(token: usize) -> Option<Rc<EasyInner>> {
        LIVE.try_with(|m| m.borrow().get(&token).and_then(Weak::upgrade))
            .ok()
            .flatten()
    }
}

/// The easy whose `CLOSESOCKETDATA` is `token`, if it is still alive.
pub fn closer(token: usize) -> Option<Rc<EasyInner>> {
    closers::find(token)
}

pub struct Easy(pub Rc<EasyInner>);

impl Drop for Easy {
    fn drop(&mut self) {
        crate::lraw::unregister_object(self.0.block.replace(0));
        // Garbage collection: detach from the multi and free, calling no Lua
        // (no context is installed, so trampolines do nothing).
        self.0.close_raw();
    }
}

impl Drop for EasyInner {
    fn drop(&mut self) {
        if let Some(h) = self.raw.take() {
            raw::easy_cleanup(h);
        }
        closers::unregister(self.closer);
    }
}

impl UserData for Easy {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        crate::add_meta(fields, CLASS);
    }
}

impl EasyInner {
    pub fn raw(&self) -> Option<EasyPtr> {
        self.raw.get()
    }

    pub fn addr(&self) -> usize {
        self.id
    }

    fn ptr(&self) -> *const c_void {
        self as *const EasyInner as *const c_void
    }

    /// The `*DATA` pointer libcurl passes to the trampoline of `cb`: this
    /// state, or for the close-socket callback the token of `closers`.
    fn data_ptr(&self, cb: Cb) -> *const c_void {
        if cb == Cb::CloseSocket {
            self.closer as *const c_void
        } else {
            self.ptr()
        }
    }

    /// Runs `f` with the context of the call that is driving this easy:
    /// its own `Perform`, or a call on the multi it is added to.
    pub fn with_ctx<T>(&self, f: impl FnOnce(Option<&Ctx<'_>>) -> T) -> T {
        if let Some(c) = self.slot.get() {
            return f(Some(c));
        }
        let m = self.multi.borrow().clone();
        match &m {
            Some(m) => f(m.slot.get()),
            None => f(None),
        }
    }

    /// Detaches from the multi (if any) and frees the libcurl handle. Used by
    /// `__gc`; `Close` does the Lua-side part first.
    pub fn close_raw(&self) {
        let busy = self.slot.busy() || self.multi.borrow().as_ref().is_some_and(|m| m.slot.busy());
        if busy {
            // Collected while a call on it is running (lua_close from inside a
            // callback, os.exit(0, true)): libcurl would refuse the removal,
            // so freeing would leave a dangling handle in the multi. Leave the
            // handle to the exiting process instead.
            self.raw.take();
            self.multi.borrow_mut().take();
            return;
        }
        self.cleanup_now();
    }

    /// Detaches and frees now. `Close` calls it with the easy's own context
    /// installed, so callbacks libcurl runs while cleaning up (HSTS saving,
    /// closing sockets) reach Lua; from `__gc` no context is installed.
    fn cleanup_now(&self) {
        let m = self.multi.borrow_mut().take();
        if let (Some(m), Some(h)) = (m, self.raw.get()) {
            m.forget(h);
        }
        if let Some(h) = self.raw.take() {
            raw::easy_cleanup(h);
        }
        self.slists.borrow_mut().clear();
        self.postfields.borrow_mut().take();
        self.graveyard.borrow_mut().clear();
        self.pending_read.borrow_mut().clear();
        self.objects.borrow_mut().clear();
    }

    /// Frees replaced option data once no transfer can be using it.
    pub fn flush_graveyard(&self) {
        let old = std::mem::take(&mut *self.graveyard.borrow_mut());
        drop(old);
    }

    /// A transfer may be using the handle's options now.
    pub fn busy(&self) -> bool {
        self.slot.busy() || self.multi.borrow().is_some()
    }

    pub fn bury(&self, x: Box<dyn std::any::Any>) {
        self.graveyard.borrow_mut().push(x);
    }

    pub fn pending_read(&self) -> &RefCell<Vec<u8>> {
        &self.pending_read
    }

    pub fn objects(&self) -> &RefCell<HashMap<i64, Rc<dyn std::any::Any>>> {
        &self.objects
    }
}

fn new_inner(h: EasyPtr) -> EasyInner {
    EasyInner {
        raw: Cell::new(Some(h)),
        id: h.addr(),
        multi: RefCell::new(None),
        slot: CtxSlot::default(),
        slists: RefCell::new(HashMap::new()),
        postfields: RefCell::new(None),
        graveyard: RefCell::new(Vec::new()),
        pending_read: RefCell::new(Vec::new()),
        objects: RefCell::new(HashMap::new()),
        errbuf: ErrBuf::default(),
        lua_cbs: Cell::new(0),
        finished: Cell::new(false),
        block: Cell::new(0),
        closer: closers::next(),
        hsts_files: Cell::new(false),
    }
}

/// What every handle gets from the module (also after `Reset` and
/// `DupHandle`): the error buffer, and this EasyInner as the data pointer of
/// every callback whose data libcurl does not use as a `FILE*`.
fn init_handle(e: &EasyInner, h: EasyPtr) {
    raw::setopt_ptr(h, c::CURLOPT_ERRORBUFFER as i32, e.errbuf.ptr());
    for (cb, _, did) in easy_cb::CALLBACKS {
        if !matches!(cb, Cb::Write | Cb::Header | Cb::Read) {
            raw::setopt_ptr(h, *did as i32, e.data_ptr(*cb));
        }
    }
}

fn wrap(lua: &Lua, inner: EasyInner) -> R<LuaAnyUserData> {
    let inner = Rc::new(inner);
    closers::register(inner.closer, &inner);
    let ptr = Rc::as_ptr(&inner);
    let ud = lua.create_userdata(Easy(inner.clone()))?;
    inner.block.set(ud.to_pointer() as usize);
    crate::lraw::register_object(lua, &ud, crate::lraw::KIND_EASY, ptr.cast());
    ud.set_user_value(lua.create_table()?)?;
    Ok(ud)
}

pub fn create(lua: &Lua) -> R<LuaAnyUserData> {
    raw::global_init();
    let h = raw::easy_init()
        .ok_or_else(|| Fail::Usage("curl_easy_init failed (out of memory)".into()))?;
    let ud = wrap(lua, new_inner(h))?;
    let e = inner_of(&ud)?;
    init_handle(&e, h);
    Ok(ud)
}

/// `self`, its inner state and its live handle, or a usage error.
pub fn open(args: &Args) -> R<(&LuaAnyUserData, Rc<EasyInner>, EasyPtr)> {
    let ud = args.this::<Easy>(CLASS)?;
    let inner = inner_of(ud)?;
    let h = inner
        .raw()
        .ok_or_else(|| Fail::Usage("the easy handle is closed".into()))?;
    Ok((ud, inner, h))
}

pub fn inner_of(ud: &LuaAnyUserData) -> R<Rc<EasyInner>> {
    Ok(ud
        .borrow::<Easy>()
        .map_err(|_| Fail::Usage("the easy handle was garbage-collected".into()))?
        .0
        .clone())
}

fn uv(ud: &LuaAnyUserData) -> R<LuaTable> {
    Ok(ud.user_value::<LuaTable>()?)
}

fn check(rc: raw::CURLcode, what: &str) -> R<()> {
    if rc == raw::CURLE_OK {
        Ok(())
    } else {
        Err(Fail::Easy(rc, Some(what.to_string())))
    }
}

fn lua_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => Some(v.to_string().ok()?.into_bytes()),
        _ => None,
    }
}

fn bad_value<T>(opt: &str, expected: &str, got: &Value) -> R<T> {
    usage(format!(
        "bad argument #2 'value' for {opt} (expected {expected}, got {})",
        type_name(got)
    ))
}

/// Converts a long option's value: integer, or boolean (1 / 0).
pub fn long_value(opt: &str, v: &Value) -> R<i64> {
    match v {
        Value::Boolean(b) => Ok(*b as i64),
        _ => to_int(v).map_or_else(|| bad_value(opt, "integer or boolean", v), Ok),
    }
}

fn string_list(opt: &str, v: &Value) -> R<Vec<CString>> {
    let Value::Table(t) = v else {
        return bad_value(opt, "array of strings or nil", v);
    };
    let mut out = Vec::new();
    for i in 1..=t.raw_len() {
        let item: Value = t.raw_get(i)?;
        let Some(b) = lua_bytes(&item) else {
            return usage(format!(
                "bad argument #2 'value' for {opt}: item {i} is a {} (expected string)",
                type_name(&item)
            ));
        };
        out.push(
            CString::new(b)
                .map_err(|_| Fail::Usage(format!("{opt}: item {i} contains a NUL byte")))?,
        );
    }
    Ok(out)
}

/// Options refused on purpose, with the reason given to the user.
fn refused(id: i64) -> Option<&'static str> {
    Some(match id {
        c::CURLOPT_ERRORBUFFER => {
            "is managed by the module: error details are part of raised errors"
        }
        c::CURLOPT_STDERR => {
            "takes a C FILE*; use DEBUGFUNCTION (with VERBOSE) to receive verbose output"
        }
        c::CURLOPT_SSL_CTX_FUNCTION | c::CURLOPT_SSL_CTX_DATA => {
            "hands out the TLS library's SSL_CTX, which Lua cannot use"
        }
        c::CURLOPT_IOCTLFUNCTION | c::CURLOPT_IOCTLDATA => {
            "is deprecated since libcurl 7.18.0; use SEEKFUNCTION"
        }
        c::CURLOPT_CONV_FROM_NETWORK_FUNCTION
        | c::CURLOPT_CONV_TO_NETWORK_FUNCTION
        | c::CURLOPT_CONV_FROM_UTF8_FUNCTION => "has no effect since libcurl 7.82.0",
        c::CURLOPT_HTTPPOST => "belongs to the deprecated form API; use curl.Mime and MIMEPOST",
        _ => return None,
    })
}

/// `easy:SetOpt(option, value[, userdata])`.
fn set_opt(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let id = args.c_int(1, "option")?;
    let t = tables(lua);
    let Some(meta) = t.easy.get(&id) else {
        return usage(format!(
            "bad argument #1 'option' (unknown easy option {id})"
        ));
    };
    let userdata = if args.given(3) {
        Some(args.get(3))
    } else {
        None
    };
    set_value(ud, &e, h, id, meta, args.get(2), userdata)
}

/// (Re)installs a stream callback (write, header, read): our trampoline is
/// active when a Lua function is set or the *DATA value is file-like (has a
/// `write` / `read` method); otherwise libcurl's default (stdout / stdin).
fn refresh_stream(ud: &LuaAnyUserData, e: &EasyInner, h: EasyPtr, cb: Cb) -> R<()> {
    let (fid, did) = easy_cb::ids(cb);
    let t = uv(ud)?;
    let f: Value = t.raw_get(fid)?;
    let d: Value = t.raw_get(did)?;
    let method = if cb == Cb::Read { "read" } else { "write" };
    let on = matches!(f, Value::Function(_))
        || (cb != Cb::Read && crate::buffer::is_buffer(&d))
        || easy_cb::has_method(&d, method);
    let (fp, dp) = if on {
        (callbacks::pointer_for(cb), e.ptr())
    } else {
        // libcurl's defaults: fwrite to stdout, fread from stdin, no headers.
        let d = match cb {
            Cb::Write => raw::c_stdout(),
            Cb::Read => raw::c_stdin(),
            _ => std::ptr::null(),
        };
        (std::ptr::null(), d)
    };
    check(raw::setopt_ptr(h, fid as i32, fp), "callback")?;
    check(raw::setopt_ptr(h, did as i32, dp), "callback data")
}

fn set_callback(
    ud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
    cb: Cb,
    opt: &str,
    v: Value,
    userdata: Option<Value>,
) -> R<()> {
    let (fid, did) = easy_cb::ids(cb);
    let on = match &v {
        Value::Function(_) => true,
        Value::Nil => false,
        _ => return bad_value(opt, "function or nil", &v),
    };
    let t = uv(ud)?;
    t.raw_set(fid, v)?;
    if let Some(d) = userdata {
        t.raw_set(did, d)?;
    }
    match cb {
        Cb::Write | Cb::Header | Cb::Read => refresh_stream(ud, e, h, cb),
        _ => {
            // Marked before libcurl can call it, unmarked once it cannot.
            let bit = 1u32 << (cb as u32);
            if on {
                e.lua_cbs.set(e.lua_cbs.get() | bit);
            }
            let fp = if on {
                callbacks::pointer_for(cb)
            } else {
                std::ptr::null()
            };
            if on && cb == Cb::CloseSocket {
                // libcurl keeps the close-socket callback and its data in
                // each connection, and cached connections outlive the easy:
                // with a Lua close-socket function, connections are closed
                // when their transfer ends, while the easy is still alive.
                check(raw::setopt_long(h, c::CURLOPT_FORBID_REUSE as i32, 1), opt)?;
            }
            check(raw::setopt_ptr(h, fid as i32, fp), opt)?;
            check(raw::setopt_ptr(h, did as i32, e.data_ptr(cb)), opt)?;
            if matches!(cb, Cb::XferInfo | Cb::Progress) {
                // libcurl calls progress functions only with NOPROGRESS off.
                let (xi, pr) = (easy_cb::ids(Cb::XferInfo).0, easy_cb::ids(Cb::Progress).0);
                let any = matches!(t.raw_get::<Value>(xi)?, Value::Function(_))
                    || matches!(t.raw_get::<Value>(pr)?, Value::Function(_));
                check(
                    raw::setopt_long(h, c::CURLOPT_NOPROGRESS as i32, (!any) as _),
                    opt,
                )?;
            }
            if !on {
                e.lua_cbs.set(e.lua_cbs.get() & !bit);
            }
            Ok(())
        }
    }
}

fn set_value(
    ud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
    id: i32,
    meta: &EasyOpt,
    v: Value,
    userdata: Option<Value>,
) -> R<()> {
    let name = format!("CURLOPT_{}", meta.name);
    let opt = name.as_str();
    let id64 = id as i64;
    if let Some(why) = refused(id64) {
        return usage(format!("{opt} {why}"));
    }
    if let Some(cb) = easy_cb::by_function(id64) {
        return set_callback(ud, e, h, cb, opt, v, userdata);
    }
    if easy_cb::is_data(id64) {
        uv(ud)?.raw_set(id64, v)?;
        for cb in [Cb::Write, Cb::Header, Cb::Read] {
            if easy_cb::ids(cb).1 == id64 {
                refresh_stream(ud, e, h, cb)?;
            }
        }
        return Ok(());
    }
    match id64 {
        c::CURLOPT_FORBID_REUSE => {
            let closing_fn = matches!(
                uv(ud)?.raw_get::<Value>(easy_cb::ids(Cb::CloseSocket).0)?,
                Value::Function(_)
            );
            if closing_fn && long_value(opt, &v)? == 0 {
                return usage(format!(
                    "{opt} must stay on while a CLOSESOCKETFUNCTION is set (cached connections would outlive the handle)"
                ));
            }
        }
        c::CURLOPT_POSTFIELDSIZE | c::CURLOPT_POSTFIELDSIZE_LARGE => {
            // With a body kept by the handle, libcurl must not read past it.
            let n = to_int(&v).map_or_else(|| bad_value(opt, "integer", &v), Ok)?;
            if let Some(b) = e.postfields.borrow().as_ref() {
                let len = b.len() as i64 - 1; // without the NUL we keep
                if n < 0 || n > len {
                    return usage(format!(
                        "bad argument #2 'value' for {opt} (the POSTFIELDS body has {len} bytes; expected 0 to {len})"
                    ));
                }
            }
        }
        c::CURLOPT_PRIVATE => {
            uv(ud)?.raw_set(id64, v)?;
            return Ok(());
        }
        c::CURLOPT_POSTFIELDS | c::CURLOPT_COPYPOSTFIELDS => {
            // libcurl does not copy POSTFIELDS: keep the bytes, and give
            // libcurl their length so binary bodies work.
            let bytes = match &v {
                Value::Nil => None,
                _ => match lua_bytes(&v) {
                    Some(mut b) => {
                        b.push(0); // a terminator: no size can make libcurl read past it
                        Some(b)
                    }
                    None => return bad_value(opt, "string or nil", &v),
                },
            };
            if let Some(b) = &bytes {
                check(
                    raw::setopt_off_t(h, c::CURLOPT_POSTFIELDSIZE_LARGE as i32, b.len() as i64 - 1),
                    opt,
                )?;
            }
            let p = bytes
                .as_ref()
                .map_or(std::ptr::null(), |b| b.as_ptr() as *const c_void);
            check(raw::setopt_ptr(h, c::CURLOPT_POSTFIELDS as i32, p), opt)?;
            let old = std::mem::replace(&mut *e.postfields.borrow_mut(), bytes);
            if let Some(old) = old {
                e.bury(Box::new(old));
            }
            return Ok(());
        }
        c::CURLOPT_STREAM_DEPENDS | c::CURLOPT_STREAM_DEPENDS_E => {
            // Checked, then ignored, on every libcurl: 8.21 made these
            // options no-ops, and from 7.88 to 8.20 libcurl keeps the
            // dependency links in the handle's options, which DupHandle
            // copies (both handles then free the same links) and Reset
            // forgets (the other handle keeps a pointer to a freed one).
            match &v {
                Value::Nil => {}
                Value::UserData(u) if u.is::<Easy>() => {
                    if inner_of(u)?.raw().is_none() {
                        return usage(format!("{opt}: the easy handle given is closed"));
                    }
                }
                _ => return bad_value(opt, "curl.Easy or nil", &v),
            }
            return Ok(());
        }
        c::CURLOPT_CONNECT_ONLY if e.multi.borrow().is_some() => {
            // libcurl's RemoveHandle closes the handle's last connection
            // when CONNECT_ONLY is set; set while added, that can be a
            // cached connection another transfer is using now.
            return usage(format!(
                "{opt} cannot change while the easy is added to a multi; set it before AddHandle"
            ));
        }
        c::CURLOPT_HSTS_CTRL if raw::older_than(0x081500) && shares_hsts(e) => {
            // libcurl before 8.21.0 frees the share's HSTS cache when an
            // easy using it turns HSTS off (a double free later).
            let n = long_value(opt, &v)?;
            if n & c::CURLHSTS_ENABLE == 0 {
                return usage(format!(
                    "{opt} without CURLHSTS_ENABLE is refused while the easy uses a share that shares HSTS (libcurl {} frees the shared cache; fixed in 8.21.0)",
                    raw::version_info().version
                ));
            }
        }
        c::CURLOPT_HSTS => {
            // Tracked for DupHandle and Reset (see `hsts_files`).
            let r = set_by_kind(e, h, id, meta, opt, &v);
            if r.is_ok() {
                e.hsts_files.set(!v.is_nil());
            }
            return r;
        }
        _ => {}
    }
    if meta.kind == ot::OBJECT {
        return crate::objects::set_object(ud, e, h, id, opt, v);
    }
    set_by_kind(e, h, id, meta, opt, &v)
}

/// Whether the easy uses a share that shares HSTS.
fn shares_hsts(e: &EasyInner) -> bool {
    e.objects()
        .borrow()
        .get(&c::CURLOPT_SHARE)
        .and_then(|o| o.clone().downcast::<crate::share::ShareInner>().ok())
        .is_some_and(|s| s.shares(c::CURL_LOCK_DATA_HSTS))
}

/// Sets a long, off_t, string, blob or list option from its Lua value.
fn set_by_kind(e: &EasyInner, h: EasyPtr, id: i32, meta: &EasyOpt, opt: &str, v: &Value) -> R<()> {
    let v = v.clone();
    match meta.kind {
        ot::LONG | ot::VALUES => {
            let n = long_value(opt, &v)?;
            check(raw::setopt_long(h, id, n as std::os::raw::c_long), opt)
        }
        ot::OFF_T => {
            let Some(n) = to_int(&v) else {
                return bad_value(opt, "integer", &v);
            };
            check(raw::setopt_off_t(h, id, n), opt)
        }
        ot::STRING => match &v {
            Value::Nil => check(raw::setopt_cstr(h, id, None), opt),
            _ => {
                let Some(b) = lua_bytes(&v) else {
                    return bad_value(opt, "string or nil", &v);
                };
                let cs = CString::new(b)
                    .map_err(|_| Fail::Usage(format!("{opt}: the string contains a NUL byte")))?;
                // libcurl copies string options.
                check(raw::setopt_cstr(h, id, Some(&cs)), opt)
            }
        },
        ot::BLOB => match &v {
            Value::Nil => check(raw::setopt_blob(h, id, None), opt),
            Value::String(s) => check(raw::setopt_blob(h, id, Some(&s.as_bytes())), opt),
            _ => bad_value(opt, "string or nil", &v),
        },
        ot::SLIST => match &v {
            Value::Nil => {
                check(raw::setopt_ptr(h, id, std::ptr::null()), opt)?;
                if let Some(old) = e.slists.borrow_mut().remove(&id) {
                    e.bury(Box::new(old));
                }
                Ok(())
            }
            _ => {
                let items = string_list(opt, &v)?;
                set_slist(e, h, id, items, opt)
            }
        },
        _ => usage(format!(
            "{opt} is not supported by this version of the module"
        )),
    }
}

fn set_slist(e: &EasyInner, h: EasyPtr, id: i32, items: Vec<CString>, opt: &str) -> R<()> {
    let l = Slist::new(&items).ok_or(Fail::Easy(c::CURLE_OUT_OF_MEMORY as i32, None))?;
    check(raw::setopt_ptr(h, id, l.as_ptr()), opt)?;
    if let Some(old) = e.slists.borrow_mut().insert(id, (l, items)) {
        e.bury(Box::new(old));
    }
    Ok(())
}

/// Runs a libcurl call on an easy that may call back: with the context of
/// the call already running (inside a callback), of its multi, or its own.
fn run_with_ctx<T>(
    lua: &Lua,
    ud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
    f: impl FnOnce() -> T,
) -> R<(T, Option<Fail>)> {
    let m = e.multi.borrow().clone();
    if e.slot.busy() || m.as_ref().is_some_and(|m| m.slot.busy()) {
        // The running call's context receives any callback error.
        return Ok((f(), None));
    }
    if let Some(m) = m {
        let mud: LuaAnyUserData = uv(ud)?.raw_get(UV_MULTI)?;
        return Ok(multi::with_ctx(lua, &mud, &m, f));
    }
    let mut ctx = Ctx::new(lua);
    ctx.easy = Some((ud, h.addr()));
    let r = {
        let _g = e.slot.install(&ctx);
        f()
    };
    Ok((r, ctx.take_err()))
}

fn perform(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.busy() {
        return usage("called from inside one of this easy's own callbacks");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first or drive the multi");
    }
    e.flush_graveyard();
    e.errbuf.clear();
    e.pending_read.borrow_mut().clear();
    let (rc, err) = run_with_ctx(lua, ud, &e, h, || raw::easy_perform(h))?;
    e.flush_graveyard();
    if let Some(err) = err {
        return Err(err);
    }
    if rc != raw::CURLE_OK {
        return Err(Fail::Easy(rc, e.errbuf.read()));
    }
    Ok(())
}

fn get_info(lua: &Lua, args: Args) -> R<Value> {
    let (ud, _e, h) = open(&args)?;
    let id = args.c_int(1, "info")?;
    let t = tables(lua);
    let Some(name) = t.info.get(&id) else {
        return usage(format!("bad argument #1 'info' (unknown CURLINFO {id})"));
    };
    let what = format!("CURLINFO_{name}");
    let fail = |rc| Fail::Easy(rc, Some(what.clone()));
    let id64 = id as i64;
    if id64 == c::CURLINFO_PRIVATE {
        return Ok(uv(ud)?.raw_get(c::CURLOPT_PRIVATE)?);
    }
    if id64 == c::CURLINFO_CERTINFO {
        let certs = raw::getinfo_certinfo(h, id).map_err(fail)?;
        let out = lua.create_table_with_capacity(certs.len(), 0)?;
        for (i, fields) in certs.iter().enumerate() {
            let ct = lua.create_table()?;
            for f in fields {
                let s = String::from_utf8_lossy(f);
                if let Some((k, v)) = s.split_once(':') {
                    ct.raw_set(k, v)?;
                }
            }
            out.raw_set(i + 1, ct)?;
        }
        return Ok(Value::Table(out));
    }
    Ok(match id & it::TYPEMASK {
        it::STRING => match raw::getinfo_string(h, id).map_err(fail)? {
            Some(b) => Value::String(lua.create_string(&b)?),
            None => Value::Nil,
        },
        it::LONG => Value::Integer(raw::getinfo_long(h, id).map_err(fail)? as i64),
        it::DOUBLE => Value::Number(raw::getinfo_double(h, id).map_err(fail)?),
        it::OFF_T => Value::Integer(raw::getinfo_off_t(h, id).map_err(fail)?),
        it::SOCKET => Value::Integer(raw::getinfo_socket(h, id).map_err(fail)?),
        it::SLIST if id64 == c::CURLINFO_COOKIELIST || id64 == c::CURLINFO_SSL_ENGINES => {
            let items = raw::getinfo_slist(h, id).map_err(fail)?;
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, s) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(s)?)?;
            }
            Value::Table(t)
        }
        _ => {
            return usage(format!(
                "{what} hands out a TLS library pointer, which Lua cannot use"
            ))
        }
    })
}

/// Clears the Lua values an easy holds (callbacks, userdata, objects).
fn clear_uv(lua: &Lua, ud: &LuaAnyUserData, keep_multi: bool) -> R<()> {
    let t = uv(ud)?;
    let m: Value = t.raw_get(UV_MULTI)?;
    let fresh = lua.create_table()?;
    if keep_multi {
        fresh.raw_set(UV_MULTI, m)?;
    }
    ud.set_user_value(fresh)?;
    Ok(())
}

fn close(lua: &Lua, args: Args) -> R<()> {
    let ud = args.this::<Easy>(CLASS)?;
    let e = inner_of(ud)?;
    if e.raw().is_none() {
        return Ok(()); // Close twice is harmless
    }
    if e.slot.busy() {
        return usage("cannot close an easy from inside its own callback");
    }
    let mut parked = None;
    let m = e.multi.borrow().clone();
    if let Some(m) = m {
        if m.slot.busy() {
            return usage(
                "cannot close an easy while its multi is running a call (inside a callback); close it after the call returns",
            );
        }
        let mud: Option<LuaAnyUserData> = uv(ud)?.raw_get(UV_MULTI)?;
        if let Some(mud) = mud {
            parked = multi::detach_easy(lua, &mud, &m, ud, &e)?;
        }
    }
    let mut ctx = Ctx::new(lua);
    if let Some(h) = e.raw() {
        ctx.easy = Some((ud, h.addr()));
    }
    {
        let _g = e.slot.install(&ctx);
        e.cleanup_now();
    }
    if parked.is_none() {
        parked = ctx.take_err();
    }
    clear_uv(lua, ud, false)?;
    match parked {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn reset(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    if e.slot.busy() {
        return usage("cannot reset an easy from inside its own callback");
    }
    if e.multi.borrow().is_some() {
        return usage("the easy is added to a multi; remove it first");
    }
    if e.hsts_files.replace(false) && raw::older_than(0x080500) {
        // libcurl before 8.5.0 forgets the HSTS file list on reset
        // without freeing it: free it first.
        raw::setopt_ptr(h, c::CURLOPT_HSTS as i32, std::ptr::null());
    }
    raw::easy_reset(h);
    e.lua_cbs.set(0);
    init_handle(&e, h);
    e.slists.borrow_mut().clear();
    e.postfields.borrow_mut().take();
    e.pending_read.borrow_mut().clear();
    e.objects.borrow_mut().clear();
    e.flush_graveyard();
    clear_uv(lua, ud, true)?;
    Ok(())
}

/// `easy:Pause(bitmask)`: `curl_easy_pause`. Unpausing can deliver buffered
/// data at once, so the write callback may run inside this call.
fn pause(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let mask = args.int_in(1, "bitmask", 0, c::CURLPAUSE_ALL)? as std::os::raw::c_int;
    let (rc, err) = run_with_ctx(lua, ud, &e, h, || raw::easy_pause(h, mask))?;
    if let Some(f) = err {
        return Err(f);
    }
    check(rc, "curl_easy_pause")
}

fn upkeep(lua: &Lua, args: Args) -> R<()> {
    let (ud, e, h) = open(&args)?;
    let (rc, err) = run_with_ctx(lua, ud, &e, h, || raw::easy_upkeep(h))?;
    if let Some(f) = err {
        return Err(f);
    }
    check(rc, "curl_easy_upkeep")
}

/// Argument `i` as bytes, or a usage error naming it.
fn bytes_arg(args: &Args, i: usize, name: &str) -> R<Vec<u8>> {
    match args.get(i) {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        v => usage(format!(
            "bad argument #{i} '{name}' (expected string, got {})",
            type_name(&v)
        )),
    }
}

/// `Escape` / `Unescape`: `curl_easy_escape` / `curl_easy_unescape`.
fn escaping(lua: &Lua, args: Args, f: fn(EasyPtr, &[u8]) -> raw::Escaped) -> R<LuaString> {
    let (_ud, _e, h) = open(&args)?;
    let s = bytes_arg(&args, 1, "string")?;
    let out = f(h, &s)
        .or_else(|raw::TooLong| usage("bad argument #1 'string' (longer than 2147483647 bytes)"))?
        .ok_or(Fail::Easy(c::CURLE_OUT_OF_MEMORY as i32, None))?;
    Ok(lua.create_string(&out)?)
}

/// `easy:Send(data)`: bytes sent (0 when the socket is not ready:
/// CURLE_AGAIN). Needs `CONNECT_ONLY`.
fn send(lua: &Lua, args: Args) -> R<i64> {
    let (ud, e, h) = open(&args)?;
    let bytes = bytes_arg(&args, 1, "data")?;
    let (r, err) = run_with_ctx(lua, ud, &e, h, || raw::easy_send(h, &bytes))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok(n) => Ok(n as i64),
        Err(rc) if rc as i64 == c::CURLE_AGAIN => Ok(0),
        Err(rc) => Err(Fail::Easy(rc, e.errbuf.read())),
    }
}

/// `easy:Recv(max)`: a string ("" when the peer closed), or nil when nothing
/// is available yet (CURLE_AGAIN). Needs `CONNECT_ONLY`.
fn recv(lua: &Lua, args: Args) -> R<Value> {
    let (ud, e, h) = open(&args)?;
    let max = args.int(1, "max")?;
    if !(1..=64 * 1024 * 1024).contains(&max) {
        return usage("bad argument #1 'max' (expected 1 to 67108864)");
    }
    let mut buf = vec![0u8; max as usize];
    let (r, err) = run_with_ctx(lua, ud, &e, h, || raw::easy_recv(h, &mut buf))?;
    if let Some(f) = err {
        return Err(f);
    }
    match r {
        Ok(n) => Ok(Value::String(lua.create_string(&buf[..n])?)),
        Err(rc) if rc as i64 == c::CURLE_AGAIN => Ok(Value::Nil),
        Err(rc) => Err(Fail::Easy(rc, e.errbuf.read())),
    }
}

/// `easy:DupHandle()`: `curl_easy_duphandle`, with the module's own state
/// (callbacks, userdata, kept strings and lists, objects) copied too.
fn dup_handle(lua: &Lua, args: Args) -> R<LuaAnyUserData> {
    let (ud, e, h) = open(&args)?;
    if e.hsts_files.get() && raw::older_than(0x080500) {
        return usage(format!(
            "refused while CURLOPT_HSTS names a file: libcurl {} gives the copy the same file list and both handles free it (fixed in 8.5.0); unset it first (SetOpt_HSTS(nil)) and set it on each handle",
            raw::version_info().version
        ));
    }
    // libcurl would copy a posted mime with its data callbacks' argument and
    // free function, which the original owns: detach the mime around the
    // copy (the copy posts none; a mime has one poster).
    let mime = e.objects.borrow().get(&c::CURLOPT_MIMEPOST).and_then(|o| {
        o.clone()
            .downcast::<crate::mime::PostGuard>()
            .ok()
            .and_then(|g| g.0.raw())
    });
    if mime.is_some() {
        check(
            raw::setopt_ptr(h, c::CURLOPT_MIMEPOST as i32, std::ptr::null()),
            "DupHandle",
        )?;
    }
    let nh = raw::easy_duphandle(h);
    if let Some(m) = mime {
        check(
            raw::setopt_ptr(h, c::CURLOPT_MIMEPOST as i32, m.as_ptr()),
            "DupHandle",
        )?;
    }
    let nh = nh.ok_or(Fail::Easy(c::CURLE_OUT_OF_MEMORY as i32, None))?;
    adopt(lua, ud, &e, nh, false)
}

/// Wraps a handle libcurl copied from `src` (`curl_easy_duphandle`, or an
/// HTTP/2 server push): the module's state is copied too (callbacks,
/// userdata, kept strings and lists, objects), and every data pointer that
/// libcurl copied from `src` is pointed at the new handle's own state.
/// With `libcurl_owns` (a push not yet accepted), a failure gives the handle
/// back untouched instead of freeing it.
pub fn adopt(
    lua: &Lua,
    ud: &LuaAnyUserData,
    e: &EasyInner,
    nh: EasyPtr,
    libcurl_owns: bool,
) -> R<LuaAnyUserData> {
    let nud = match wrap(lua, new_inner(nh)) {
        Ok(u) => u,
        Err(f) => {
            if !libcurl_owns {
                raw::easy_cleanup(nh);
            }
            return Err(f);
        }
    };
    match copy_state(ud, e, &nud, nh) {
        Ok(()) => Ok(nud),
        Err(f) => {
            if libcurl_owns {
                let _ = disown(lua, &nud);
            }
            Err(f)
        }
    }
}

fn copy_state(ud: &LuaAnyUserData, e: &EasyInner, nud: &LuaAnyUserData, nh: EasyPtr) -> R<()> {
    let ne = inner_of(nud)?;
    init_handle(&ne, nh);
    ne.lua_cbs.set(e.lua_cbs.get()); // libcurl's copy has the same callbacks
    ne.hsts_files.set(e.hsts_files.get());
    // Lua values: everything but the multi membership.
    let src = uv(ud)?;
    let dst = uv(nud)?;
    for pair in src.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if !matches!(
            &k,
            Value::Integer(UV_MULTI) | Value::Integer(c::CURLOPT_MIMEPOST)
        ) {
            dst.raw_set(k, v)?;
        }
    }
    // libcurl's copy points at *our* lists and body: give it its own.
    let lists: Vec<(i32, Vec<CString>)> = e
        .slists
        .borrow()
        .iter()
        .map(|(id, (_, s))| (*id, s.clone()))
        .collect();
    for (id, items) in lists {
        set_slist(&ne, nh, id, items, "DupHandle")?;
    }
    let body = e.postfields.borrow().clone();
    if let Some(b) = body {
        check(
            raw::setopt_ptr(
                nh,
                c::CURLOPT_POSTFIELDS as i32,
                b.as_ptr() as *const c_void,
            ),
            "DupHandle",
        )?;
        *ne.postfields.borrow_mut() = Some(b);
    }
    for cb in [Cb::Write, Cb::Header, Cb::Read] {
        refresh_stream(nud, &ne, nh, cb)?;
    }
    crate::objects::after_dup(e, &ne, nh)
}

/// Gives up a handle libcurl owns after all (a refused server push): no
/// cleanup from our side.
pub fn disown(lua: &Lua, ud: &LuaAnyUserData) -> R<()> {
    let e = inner_of(ud)?;
    e.raw.take();
    e.multi.borrow_mut().take();
    e.slists.borrow_mut().clear();
    clear_uv(lua, ud, false)
}

pub fn register(lua: &Lua, raw_t: &LuaTable) -> LuaResult<()> {
    let m = lua.create_table()?;
    reg(lua, &m, "SetOpt", "easy:SetOpt", set_opt)?;
    reg(lua, &m, "GetInfo", "easy:GetInfo", get_info)?;
    reg(lua, &m, "Perform", "easy:Perform", perform)?;
    reg(lua, &m, "Close", "easy:Close", close)?;
    reg(lua, &m, "Reset", "easy:Reset", reset)?;
    reg(lua, &m, "Pause", "easy:Pause", pause)?;
    reg(lua, &m, "Upkeep", "easy:Upkeep", upkeep)?;
    reg(lua, &m, "Escape", "easy:Escape", |l, a| {
        escaping(l, a, raw::escape)
    })?;
    reg(lua, &m, "Unescape", "easy:Unescape", |l, a| {
        escaping(l, a, raw::unescape)
    })?;
    reg(lua, &m, "Send", "easy:Send", send)?;
    reg(lua, &m, "Recv", "easy:Recv", recv)?;
    reg(lua, &m, "DupHandle", "easy:DupHandle", dup_handle)?;
    raw_t.raw_set("Easy", m)?;
    reg_fn(lua, raw_t, "new_easy", "curl.Easy", |lua, _a| create(lua))?;
    Ok(())
}
