//! `CURL*`: the owning [`Easy`] handle and what it keeps for libcurl
//! (lists, bodies, objects, the error buffer). Its callbacks are in
//! `easy_cb.rs`.

use super::consts::c;
use super::easy_cb::{bytes, register_closer, unregister_closer, Cb, EasyHandler, HandlerBox};
use super::guards::{CacheMix, Starts};
use super::mime::Posted;
use super::{code, cstr_bytes, option_kind, ot, refused, CURLcode, Fault, Res, Share, Url};
use super::{older_than, this_libcurl};
use curl_sys as sys;
use std::any::Any;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::ptr::{self, NonNull};
use std::rc::{Rc, Weak};

// ------------------------------------------------------------ the handle

/// An owned `curl_slist`.
pub(super) struct Slist(*mut sys::curl_slist);

impl Slist {
    pub(super) fn new(items: &[CString]) -> Option<Slist> {
        let mut l = Slist(ptr::null_mut());
        for s in items {
            // SAFETY: curl_slist_append copies the string; on failure it
            // returns NULL and leaves the old list (freed by `l`'s drop).
            let n = unsafe { sys::curl_slist_append(l.0, s.as_ptr()) };
            if n.is_null() {
                return None;
            }
            l.0 = n;
        }
        Some(l)
    }

    /// Gives the list away (libcurl frees it from now on).
    pub(super) fn into_raw(self) -> *mut sys::curl_slist {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Drop for Slist {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own the list.
            unsafe { sys::curl_slist_free_all(self.0) }
        }
    }
}

/// Copies a list libcurl made, then frees it.
///
/// # Safety
/// `p` is NULL or a well-formed list owned by the caller.
unsafe fn take_slist(p: *mut sys::curl_slist) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut n = p;
    while !n.is_null() {
        // SAFETY: walking a well-formed list.
        let node = unsafe { &*n };
        // SAFETY: node strings are NUL-terminated.
        if let Some(b) = unsafe { cstr_bytes(node.data) } {
            out.push(b);
        }
        n = node.next;
    }
    if !p.is_null() {
        // SAFETY: the caller owns the list.
        unsafe { sys::curl_slist_free_all(p) };
    }
    out
}

/// The `CURLOPT_ERRORBUFFER` of a handle.
pub(super) struct ErrBuf(Box<UnsafeCell<[u8; sys::CURL_ERROR_SIZE]>>);

impl ErrBuf {
    fn new() -> Self {
        ErrBuf(Box::new(UnsafeCell::new([0; sys::CURL_ERROR_SIZE])))
    }
    pub(super) fn ptr(&self) -> *const c_void {
        self.0.get() as *const c_void
    }
    fn clear(&self) {
        // SAFETY: libcurl writes the buffer only inside calls on its handle;
        // the module is single-threaded, so no call is running now.
        unsafe { (*self.0.get())[0] = 0 };
    }
    fn set(&self, text: &str) {
        let n = text.len().min(sys::CURL_ERROR_SIZE - 1);
        // SAFETY: as in clear.
        let b = unsafe { &mut *self.0.get() };
        b[..n].copy_from_slice(&text.as_bytes()[..n]);
        b[n] = 0;
    }
    fn read(&self) -> Option<String> {
        // SAFETY: as in clear; libcurl keeps the buffer NUL-terminated.
        let b = unsafe { &*self.0.get() };
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        (end > 0).then(|| String::from_utf8_lossy(&b[..end]).trim_end().to_string())
    }
}

/// What libcurl points at besides the handler: kept until replaced, and
/// replaced values until the transfer that may read them is over.
#[derive(Default)]
pub(super) struct Kept {
    /// List options, with the strings to rebuild them for a copy.
    pub(super) slists: HashMap<i32, (Slist, Vec<CString>)>,
    /// The POSTFIELDS bytes (with a NUL after them).
    pub(super) postfields: Option<Vec<u8>>,
    pub(super) share: Option<Rc<Share>>,
    pub(super) url: Option<Rc<Url>>,
    pub(super) mime: Option<Posted>,
    /// Replaced values a running transfer may still read.
    pub(super) graveyard: Vec<Box<dyn Any>>,
    /// `CURLOPT_HSTS` names a file (see `dup`).
    pub(super) hsts_files: bool,
    /// `CURLOPT_COOKIEFILE` was given a file since it was last unset (see
    /// `reset`).
    pub(super) cookie_files: bool,
}

/// What `Easy::free_cookie_files` took out of a handle before a reset.
struct CookiesKept {
    /// The handle uses a share of cookies (link it again).
    shared: bool,
    /// The handle's own cookies, as `CURLINFO_COOKIELIST` lines.
    lines: Vec<Vec<u8>>,
}

extern "C" {
    // Declared here: curl-sys has it only behind a feature (7.62+).
    fn curl_easy_upkeep(h: *mut sys::CURL) -> sys::CURLcode;
}

/// An easy handle, owned. Dropping it runs `curl_easy_cleanup` (libcurl
/// removes the handle from its multi first) and then frees what libcurl
/// pointed at.
pub struct Easy<H: EasyHandler> {
    ptr: NonNull<sys::CURL>,
    /// Every callback's data: freed after the cleanup.
    pub(super) handler: Box<HandlerBox<H>>,
    /// Options the guards applied at a transfer's start look at, and this
    /// handle's own connection cache's mix (`guards.rs`).
    pub(super) starts: RefCell<Starts>,
    pub(super) mix: CacheMix,
    /// A `CONNECT_ONLY` transfer started on this handle (never reset: the
    /// connection it leaves outlives `curl_easy_reset`).
    pub(super) connect_only_ran: Cell<bool>,
    /// The last transfer was a `CONNECT_ONLY` one that succeeded: `Send`,
    /// `Recv` and `WsRecv` have its connection (see `need_connection`).
    pub(super) co_conn: Cell<bool>,
    /// `Send`, `Recv` or a WebSocket call ran on that connection: libcurl
    /// attached the handle to it, and it stays attached until `RemoveHandle`, the
    /// next transfer or its cleanup (see `attached_conn_guard`).
    pub(super) co_attached: Cell<bool>,
    /// A transfer ended while its name was resolved over DoH: libcurl keeps
    /// the lookup's state until cleanup (see `doh_ended`). Survives Reset.
    pub(super) doh_left: Cell<bool>,
    /// The transfer started last may resolve over DoH: `DOH_URL` was set
    /// when it started, or while it ran (what `doh_ended` looks at, not the
    /// option as it is when the transfer ends).
    pub(super) doh_ran: Cell<bool>,
    /// `SSLENGINE` names an engine that failed to load: libcurl keeps the
    /// name, and `curl_easy_duphandle` then fails (see `dup`).
    bad_engine: Cell<bool>,
    /// The transfer started last has ended (removing it then closes no
    /// connection: no write, see `Multi::remove`).
    pub(super) done: Cell<bool>,
    /// libcurl made this handle its own TLS session cache (a transfer
    /// started without a share's), and whether the share set last shared
    /// its sessions when it was set (see `set_share`).
    pub(super) own_ssl_cache: Cell<bool>,
    pub(super) ssl_from_share: Cell<bool>,
    /// The close-socket data (see `closers`).
    pub(super) closer: usize,
    pub(super) errbuf: ErrBuf,
    pub(super) kept: RefCell<Kept>,
    /// Added to a multi (set by `Multi::add` / `remove`).
    pub(super) in_multi: Cell<bool>,
    /// Bit `1 << cb` for each callback whose function is ours.
    pub(super) callbacks_on: Cell<u32>,
    /// `perform` is running (a callback may replace options).
    pub(super) performing: Cell<bool>,
    /// For a handle libcurl made for a server push: whether the push was
    /// refused, after which libcurl frees the handle (see `multi::Pushed`).
    fate: Option<Rc<Cell<Fate>>>,
}

/// What became of a pushed handle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Offered to the handler.
    Offered,
    /// Wrapped in an `Easy` (`Pushed::adopt`).
    Adopted,
    /// Refused after it was adopted: libcurl frees it, not the `Easy`.
    Refused,
}

impl<H: EasyHandler> Drop for Easy<H> {
    fn drop(&mut self) {
        let refused = self.fate.as_ref().is_some_and(|f| f.get() == Fate::Refused);
        if !refused {
            // SAFETY: the handle is ours and freed once; what libcurl points
            // at (the handler box, kept values, the error buffer) is dropped
            // after this body returns. (A refused push was reset and handed
            // back to libcurl, which freed it.)
            super::maybe_without_sigpipe(|| unsafe { sys::curl_easy_cleanup(self.ptr.as_ptr()) });
        }
        unregister_closer(self.closer);
    }
}

impl<H: EasyHandler> Easy<H> {
    /// `curl_easy_init`, with the error buffer and every callback's data
    /// pointer set (the functions stay libcurl's defaults).
    pub fn new(handler: Weak<H>) -> Option<Self> {
        super::global_init();
        // SAFETY: plain constructor; NULL on allocation failure.
        let p = NonNull::new(unsafe { sys::curl_easy_init() })?;
        Some(Self::wrap(p, handler))
    }

    /// Wraps a handle libcurl made from `parent` for a server push, with
    /// `parent`'s kept values copied (see `take_state_of`).
    pub(super) fn adopt(
        ptr: NonNull<sys::CURL>,
        fate: Rc<Cell<Fate>>,
        parent: &Easy<H>,
        handler: Weak<H>,
    ) -> Res<Self> {
        let mut e = Self::wrap(ptr, handler);
        fate.set(Fate::Adopted);
        e.fate = Some(fate);
        if let Err(f) = e.take_state_of(parent) {
            e.give_back();
            return Err(f);
        }
        Ok(e)
    }

    fn wrap(ptr: NonNull<sys::CURL>, handler: Weak<H>) -> Self {
        let closer = register_closer(&handler);
        let e = Easy {
            ptr,
            handler: Box::new(HandlerBox {
                weak: handler,
                trailers_sent: Cell::new(false),
                resend_refused: Cell::new(false),
                no_pause: Cell::new(false),
                pause_refused: Cell::new(false),
            }),
            starts: RefCell::new(Starts::default()),
            connect_only_ran: Cell::new(false),
            co_conn: Cell::new(false),
            co_attached: Cell::new(false),
            doh_left: Cell::new(false),
            doh_ran: Cell::new(false),
            bad_engine: Cell::new(false),
            done: Cell::new(true),
            own_ssl_cache: Cell::new(false),
            ssl_from_share: Cell::new(false),
            mix: CacheMix::default(),
            closer,
            errbuf: ErrBuf::new(),
            kept: RefCell::new(Kept::default()),
            in_multi: Cell::new(false),
            callbacks_on: Cell::new(0),
            performing: Cell::new(false),
            fate: None,
        };
        e.point_data();
        e
    }

    /// The handle, unless it was a refused server push (libcurl freed it).
    pub(super) fn raw(&self) -> Res<*mut sys::CURL> {
        if self.fate.as_ref().is_some_and(|f| f.get() == Fate::Refused) {
            return refused("the pushed transfer was refused; its handle is gone");
        }
        Ok(self.ptr.as_ptr())
    }

    /// # Safety
    /// `p` stays valid as long as libcurl may read it for option `opt`.
    pub(super) unsafe fn setopt_ptr(&self, opt: i64, p: *const c_void) -> Res<()> {
        let h = self.raw()?;
        // SAFETY: live handle; the caller's contract for `p`.
        code(unsafe { sys::curl_easy_setopt(h, opt as sys::CURLoption, p) } as CURLcode)
    }

    /// The handle's address: how callbacks and messages name it.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    pub(super) fn as_ptr(&self) -> *mut sys::CURL {
        self.ptr.as_ptr()
    }

    pub(super) fn set_in_multi(&self, on: bool) {
        self.in_multi.set(on);
    }

    /// A pushed handle that is refused after all: reset (so libcurl, which
    /// frees it, points at nothing of ours) and no longer usable. Nothing
    /// for other handles.
    pub fn give_back(&self) {
        if let Some(f) = &self.fate {
            if f.get() == Fate::Adopted {
                // SAFETY: the handle is still alive (libcurl frees it after
                // the push callback returns); reset drops every option.
                unsafe { sys::curl_easy_reset(self.ptr.as_ptr()) };
                f.set(Fate::Refused);
            }
        }
    }

    /// Gives up the handle without cleaning it up (a process that is going
    /// away, or a call still running on it): libcurl may still use it.
    pub fn leak(self) {
        let kept = std::mem::take(&mut *self.kept.borrow_mut());
        std::mem::forget(kept);
        std::mem::forget(self);
    }

    // -------------------------------------------------------- options

    /// A long option. Guards: `CONNECT_ONLY` cannot change while the
    /// handle is in a multi (libcurl's RemoveHandle then closes the last
    /// connection the handle used, which another transfer may be using);
    /// `HSTS_CTRL` without `CURLHSTS_ENABLE` is refused while a share
    /// shares HSTS, before libcurl 8.21.0 (it frees the share's cache).
    pub fn set_long(&self, opt: i64, v: c_long) -> Res<()> {
        if !matches!(option_kind(opt as i32), ot::LONG | ot::VALUES) {
            return refused(format!("option {opt} does not take a long"));
        }
        if opt == c::CURLOPT_POSTFIELDSIZE {
            self.body_may_change()?;
        }
        if opt == c::CURLOPT_CONNECT_ONLY && self.in_multi.get() {
            return refused(
                "it cannot change while the easy is added to a multi; set it before AddHandle",
            );
        }
        if opt == c::CURLOPT_NOSIGNAL && v != 0 {
            // libcurl stops ignoring SIGPIPE for this handle: the binding
            // blocks it around its calls from now on
            super::note_nosignal();
        }
        if opt == c::CURLOPT_HSTS_CTRL
            && v & c::CURLHSTS_ENABLE as c_long == 0
            && older_than(0x081500)
            && self
                .kept
                .borrow()
                .share
                .as_ref()
                .is_some_and(|s| s.shares(c::CURL_LOCK_DATA_HSTS))
        {
            return refused(format!(
                "turning HSTS off is refused while the easy uses a share that shares HSTS ({} frees the shared cache; fixed in 8.21.0)",
                this_libcurl()
            ));
        }
        if opt == c::CURLOPT_HSTS_CTRL
            && v & c::CURLHSTS_ENABLE as c_long == 0
            && older_than(0x081500)
            && self.kept.borrow().hsts_files
        {
            // libcurl before 8.21.0 frees the HSTS cache but keeps the file
            // list, and the next transfer loads the files into the freed
            // cache: drop the list first, as 8.21.0 does.
            self.set_string(c::CURLOPT_HSTS, None)?;
        }
        if opt == c::CURLOPT_SSLENGINE_DEFAULT {
            // libcurl frees the engine name first, whatever follows
            self.bad_engine.set(false);
        }
        self.set_long_raw(opt, v)?;
        self.starts.borrow_mut().long_set(opt, v);
        Ok(())
    }

    /// `curl_easy_setopt` of a long option, without the checks.
    pub(super) fn set_long_raw(&self, opt: i64, v: c_long) -> Res<()> {
        let h = self.raw()?;
        // SAFETY: live handle; callers pass long options only.
        code(unsafe { sys::curl_easy_setopt(h, opt as sys::CURLoption, v) } as CURLcode)
    }

    /// `curl_easy_setopt` of a string option (copied), without the checks.
    pub(super) fn set_string_raw(&self, opt: i64, s: Option<&CStr>) -> Res<()> {
        let p = s.map_or(ptr::null(), |c| c.as_ptr() as *const c_void);
        // SAFETY: callers pass string options only, which libcurl copies
        // during the call.
        unsafe { self.setopt_ptr(opt, p) }
    }

    pub fn set_off_t(&self, opt: i64, v: i64) -> Res<()> {
        if option_kind(opt as i32) != ot::OFF_T {
            return refused(format!("option {opt} does not take an off_t"));
        }
        if opt == c::CURLOPT_POSTFIELDSIZE_LARGE {
            self.body_may_change()?;
        }
        let h = self.raw()?;
        // SAFETY: live handle; an off_t option receives a curl_off_t.
        code(
            unsafe { sys::curl_easy_setopt(h, opt as sys::CURLoption, v as sys::curl_off_t) }
                as CURLcode,
        )
    }

    /// A string option (libcurl copies it); `None` restores the default.
    pub fn set_string(&self, opt: i64, s: Option<&CStr>) -> Res<()> {
        if option_kind(opt as i32) != ot::STRING {
            return refused(format!("option {opt} does not take a string"));
        }
        let r = self.set_string_raw(opt, s);
        if opt == c::CURLOPT_SSLENGINE && s.is_some_and(|n| !n.is_empty()) {
            // (libcurl ignores NULL and "": the name set before stays)
            self.bad_engine.set(r.is_err());
        }
        r?;
        if opt == c::CURLOPT_HSTS {
            self.kept.borrow_mut().hsts_files = s.is_some();
        }
        if opt == c::CURLOPT_COOKIEFILE {
            // a file is added to the list; NULL frees the list
            self.kept.borrow_mut().cookie_files = s.is_some();
        }
        if Starts::watches_string(opt) {
            self.starts
                .borrow_mut()
                .string_set(opt, s.map(CStr::to_bytes));
        }
        if opt == c::CURLOPT_DOH_URL
            && s.is_some_and(|u| !u.is_empty())
            && (self.in_multi.get() || self.performing.get())
        {
            // a transfer that has not resolved its name yet uses it
            self.doh_ran.set(true);
        }
        Ok(())
    }

    /// A blob option (copied: `CURL_BLOB_COPY`); `None` clears it.
    pub fn set_blob(&self, opt: i64, data: Option<&[u8]>) -> Res<()> {
        if option_kind(opt as i32) != ot::BLOB {
            return refused(format!("option {opt} does not take a blob"));
        }
        match data {
            // SAFETY: NULL clears the blob.
            None => unsafe { self.setopt_ptr(opt, ptr::null()) },
            Some(b) => {
                let blob = sys::curl_blob {
                    data: b.as_ptr() as *mut c_void,
                    len: b.len(),
                    flags: sys::CURL_BLOB_COPY,
                };
                // SAFETY: CURL_BLOB_COPY: libcurl copies the bytes and the
                // struct during this call.
                unsafe { self.setopt_ptr(opt, &blob as *const sys::curl_blob as *const c_void) }
            }
        }
    }

    /// A list option; the handle keeps the list (`None` clears it).
    pub fn set_slist(&self, opt: i64, items: Option<Vec<CString>>) -> Res<()> {
        if option_kind(opt as i32) != ot::SLIST {
            return refused(format!("option {opt} does not take a list"));
        }
        let list = match items {
            None => None,
            Some(items) => {
                let l = Slist::new(&items).ok_or(Fault::Code(c::CURLE_OUT_OF_MEMORY as i32))?;
                Some((l, items))
            }
        };
        let p = list.as_ref().map_or(ptr::null_mut(), |(l, _)| l.0);
        // SAFETY: the list is kept below until replaced and the transfer
        // that may read it is over.
        (unsafe { self.setopt_ptr(opt, p as *const c_void) })?;
        let old = {
            let mut k = self.kept.borrow_mut();
            match list {
                Some(l) => k.slists.insert(opt as i32, l),
                None => k.slists.remove(&(opt as i32)),
            }
        };
        self.retire(old);
        Ok(())
    }

    /// `POSTFIELDS` (libcurl does not copy it): the handle keeps the bytes
    /// and gives libcurl their length, so any bytes work; `None` clears.
    pub fn set_postfields(&self, body: Option<&[u8]>) -> Res<()> {
        self.body_may_change()?;
        let bytes = body.map(|b| {
            let mut v = Vec::with_capacity(b.len() + 1);
            v.extend_from_slice(b);
            v.push(0); // a terminator: no size can make libcurl read past it
            v
        });
        // the size goes with the bytes: unset, it is libcurl's -1 again (a
        // size left from the old body would make libcurl wait for bytes the
        // empty read function never gives)
        let size = bytes.as_ref().map_or(-1, |b| b.len() as i64 - 1);
        self.set_off_t(c::CURLOPT_POSTFIELDSIZE_LARGE, size)?;
        let p = bytes
            .as_ref()
            .map_or(ptr::null(), |b| b.as_ptr() as *const c_void);
        // SAFETY: the bytes are kept below (moving the Vec keeps its heap
        // block) until replaced and the transfer is over.
        (unsafe { self.setopt_ptr(c::CURLOPT_POSTFIELDS, p) })?;
        let old = std::mem::replace(&mut self.kept.borrow_mut().postfields, bytes);
        self.retire(old);
        Ok(())
    }

    /// Guard: before 8.7.0 the request body (`POSTFIELDS` and its size)
    /// cannot change while the handle's transfer runs. 7.88 takes the new
    /// body into the state of the upload in progress: a chunked POST from a
    /// read function that then follows a 307 copies the new 70,000-byte
    /// body into its 64 KiB upload buffer (heap overflow; fuzz seed lua5.3
    /// 1592112580, `free(): invalid size` later). 8.7.0 rewrote the upload
    /// code; 8.22 is checked unaffected.
    fn body_may_change(&self) -> Res<()> {
        let running = self.performing.get() || (self.in_multi.get() && !self.done.get());
        if running && older_than(0x080700) {
            return refused(format!(
                "the request body (POSTFIELDS, POSTFIELDSIZE) cannot change while the easy's transfer runs: {} overflows its upload buffer when the transfer then follows a redirect (fixed in 8.7.0); set it before AddHandle or Perform, or RemoveHandle first",
                this_libcurl()
            ));
        }
        Ok(())
    }

    /// The length of the kept POSTFIELDS body, if there is one.
    pub fn postfields_len(&self) -> Option<usize> {
        self.kept.borrow().postfields.as_ref().map(|b| b.len() - 1)
    }

    /// `CURLOPT_SHARE`: the handle holds the share while it uses it.
    pub fn set_share(&self, s: Option<Rc<Share>>) -> Res<()> {
        self.attached_conn_guard("a share change")?;
        let ssl = s
            .as_ref()
            .is_some_and(|s| s.shares(c::CURL_LOCK_DATA_SSL_SESSION));
        if ssl && self.own_ssl_cache.get() && older_than(0x080C00) {
            // libcurl points the handle at the share's session cache
            // without freeing the one it made for the handle.
            return refused(format!(
                "this easy has run a transfer with its own TLS session cache, which {} leaks when a share that shares TLS sessions (CURL_LOCK_DATA_SSL_SESSION) replaces it (fixed in 8.12.0): set the share before the first transfer, or on a DupHandle copy",
                this_libcurl()
            ));
        }
        let p = s.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        // SAFETY: the share is held below while libcurl uses it.
        (unsafe { self.setopt_ptr(c::CURLOPT_SHARE, p) })?;
        let old = std::mem::replace(&mut self.kept.borrow_mut().share, s);
        self.ssl_from_share.set(ssl);
        self.retire(old);
        Ok(())
    }

    /// `CURLOPT_CURLU`: the handle holds the URL while it uses it.
    pub fn set_url(&self, u: Option<Rc<Url>>) -> Res<()> {
        let p = u.as_ref().map_or(ptr::null(), |u| u.as_ptr());
        // SAFETY: the URL is held below while libcurl uses it.
        (unsafe { self.setopt_ptr(c::CURLOPT_CURLU, p) })?;
        let old = std::mem::replace(&mut self.kept.borrow_mut().url, u);
        self.retire(old);
        Ok(())
    }

    /// `CURLOPT_MIMEPOST`: the handle holds the posted tree while it uses it.
    pub fn set_mime(&self, m: Option<Posted>) -> Res<()> {
        let p = m.as_ref().map_or(ptr::null(), |m| m.as_ptr());
        // SAFETY: the tree is held (and counted as posted) below.
        (unsafe { self.setopt_ptr(c::CURLOPT_MIMEPOST, p) })?;
        let old = std::mem::replace(&mut self.kept.borrow_mut().mime, m);
        self.retire(old);
        Ok(())
    }

    /// The mime this handle posts (`CURLOPT_MIMEPOST`), if any.
    pub fn posted_mime(&self) -> Option<super::Mime> {
        self.kept.borrow().mime.as_ref().map(|p| p.mime())
    }

    /// A replaced option value: freed now, or when the transfer that may
    /// be reading it is over (`flush`).
    fn retire<T: Any>(&self, old: Option<T>) {
        if let Some(old) = old {
            if self.in_multi.get() || self.performing.get() {
                self.kept.borrow_mut().graveyard.push(Box::new(old));
            }
        }
    }

    /// Frees replaced option values once no transfer can be reading them.
    pub fn flush(&self) {
        let old = std::mem::take(&mut self.kept.borrow_mut().graveyard);
        drop(old);
    }

    // -------------------------------------------------------- calls

    pub fn perform(&self) -> Res<()> {
        self.errbuf.clear();
        let h = self.raw()?;
        if !self.in_multi.get() {
            self.prepare(None)?;
            // (reached before 8.12.0 only by a handle not attached: from
            // 8.12.0 on, curl_easy_perform detaches it first)
            self.co_attached.set(false);
        }
        let was = self.performing.replace(true);
        let no_pause = self.handler.no_pause.replace(self.pause_never_ends());
        // SAFETY: live handle (libcurl refuses it inside a multi).
        let rc = super::maybe_without_sigpipe(|| unsafe { sys::curl_easy_perform(h) }) as CURLcode;
        self.performing.set(was);
        self.handler.no_pause.set(no_pause);
        self.transfer_done(rc);
        if self.handler.pause_refused.take() {
            self.errbuf.set(&Self::pause_refusal("refused to pause"));
        }
        if rc == sys::CURLE_ABORTED_BY_CALLBACK as CURLcode && self.handler.resend_refused.take() {
            self.errbuf.set(&format!(
                "refused to send the body again (redirect, authentication or retry) after its trailers: {} corrupts memory there (fixed in 8.7.0)",
                this_libcurl()
            ));
        }
        code(rc)
    }

    pub fn pause(&self, mask: c_int) -> Res<()> {
        let h = self.raw()?;
        if self.handler.no_pause.get() && mask & c::CURLPAUSE_RECV as c_int != 0 {
            return refused(Self::pause_refusal("pausing"));
        }
        // SAFETY: live handle.
        code(super::without_sigpipe(|| unsafe { sys::curl_easy_pause(h, mask) }) as CURLcode)
    }

    pub fn upkeep(&self) -> Res<()> {
        self.attached_conn_guard("Upkeep")?;
        self.upkeep_guard()?;
        let h = self.raw()?;
        // SAFETY: live handle.
        code(super::maybe_without_sigpipe(|| unsafe { curl_easy_upkeep(h) }) as CURLcode)
    }

    /// `curl_easy_reset`: options back to their defaults, kept values
    /// dropped, the data pointers set again. Before libcurl 8.5.0 reset
    /// forgets the `CURLOPT_HSTS` file list without freeing it: it is freed
    /// first. `CURLOPT_RESOLVE` is unset first (see below).
    pub fn reset(&self) {
        let Ok(h) = self.raw() else {
            return;
        };
        let hsts = std::mem::take(&mut self.kept.borrow_mut().hsts_files);
        if hsts && older_than(0x080500) {
            // SAFETY: NULL frees the list.
            let _ = unsafe { self.setopt_ptr(c::CURLOPT_HSTS, ptr::null()) };
        }
        // curl_easy_reset forgets CURLOPT_RESOLVE but not the copy of the
        // list pointer the next transfer reads (state.resolve, every libcurl
        // version so far), and the list is freed below: unset it first.
        // SAFETY: NULL unsets the option (both pointers).
        let _ = unsafe { self.setopt_ptr(c::CURLOPT_RESOLVE, ptr::null()) };
        let had_files = std::mem::take(&mut self.kept.borrow_mut().cookie_files);
        let cookies = if had_files {
            self.free_cookie_files()
        } else {
            None
        };
        // SAFETY: live handle.
        unsafe { sys::curl_easy_reset(h) };
        self.bad_engine.set(false); // (the engine name is freed with the rest)
        if let Some(lines) = cookies {
            self.restore_cookies(lines);
        }
        self.callbacks_on.set(0);
        self.point_data();
        // curl_easy_reset keeps the share (documented; the handle still
        // counts as one of its users and may point at its HSTS cache and
        // cookies), so the share stays held: letting it go would let the
        // guards that look at it pass and the share be freed under the
        // handle (a use after free of its HSTS cache).
        let old = std::mem::take(&mut *self.kept.borrow_mut());
        self.kept.borrow_mut().share = old.share.clone();
        drop(old);
        *self.starts.borrow_mut() = Starts::default();
    }

    /// Before libcurl 8.0.0 `curl_easy_reset` forgets the `COOKIEFILE` list
    /// without freeing it (fixed in 8.0.0, which frees it). Only
    /// `COOKIEFILE = NULL` frees it, and that also throws away the handle's
    /// cookies (or, with a share of cookies, unlinks the share's): the
    /// cookies are read first and given back by `restore_cookies` after the
    /// reset. Returns them (`None`: nothing to do).
    fn free_cookie_files(&self) -> Option<CookiesKept> {
        if !older_than(0x080000) {
            return None;
        }
        let shared = self
            .kept
            .borrow()
            .share
            .as_ref()
            .is_some_and(|s| s.shares(c::CURL_LOCK_DATA_COOKIE));
        let lines = if shared {
            Vec::new()
        } else {
            self.info_slist(c::CURLINFO_COOKIELIST as i32)
                .unwrap_or_default()
        };
        self.set_string_raw(c::CURLOPT_COOKIEFILE, None).ok()?;
        Some(CookiesKept { shared, lines })
    }

    /// After `curl_easy_reset`: the cookies `free_cookie_files` read go back
    /// in (which turns the cookie engine on again), or the share of cookies
    /// is linked again (setting the same share re-points the handle at its
    /// cookies).
    fn restore_cookies(&self, kept: CookiesKept) {
        if kept.shared {
            let share = self.kept.borrow().share.clone();
            if let Some(s) = share {
                // SAFETY: the share is held by this handle.
                let _ = unsafe { self.setopt_ptr(c::CURLOPT_SHARE, s.as_ptr()) };
            }
            return;
        }
        for line in kept.lines {
            if let Ok(l) = CString::new(line) {
                let _ = self.set_string_raw(c::CURLOPT_COOKIELIST, Some(&l));
            }
        }
    }

    /// `curl_easy_duphandle`: a copy with its own lists, body and callback
    /// data, the same share and URL, and no posted mime (libcurl's copy of
    /// a mime would share the data callbacks' argument).
    ///
    /// Refused before libcurl 8.5.0 while `CURLOPT_HSTS` names a file: the
    /// copy would share the file list and both handles free it.
    pub fn dup(&self, handler: Weak<H>) -> Res<Easy<H>> {
        if self.kept.borrow().hsts_files && older_than(0x080500) {
            return refused(format!(
                "refused while CURLOPT_HSTS names a file: {} gives the copy the same file list and both handles free it (fixed in 8.5.0); unset it first (SetOpt_HSTS(nil)) and set it on each handle",
                this_libcurl()
            ));
        }
        if self.bad_engine.get() {
            // duphandle loads the copy's engine by the kept name, fails, and
            // (before 8.5.0) leaks the copy's cookie store on the way out
            return refused(format!(
                "refused while SSLENGINE names an engine that failed to load: {} would fail to load it for the copy too (and leak memory before 8.5.0); set SSLENGINE to an engine that loads, or SSLENGINE_DEFAULT, first",
                this_libcurl()
            ));
        }
        let h = self.raw()?;
        let posted = self.kept.borrow().mime.as_ref().map(|m| m.as_ptr());
        if posted.is_some() {
            // SAFETY: NULL unsets the mime for the copy.
            (unsafe { self.setopt_ptr(c::CURLOPT_MIMEPOST, ptr::null()) })?;
        }
        // SAFETY: live handle; returns a new handle or NULL.
        let p = NonNull::new(unsafe { sys::curl_easy_duphandle(h) });
        if let Some(m) = posted {
            // SAFETY: the posted tree is still held by this handle.
            let _ = unsafe { self.setopt_ptr(c::CURLOPT_MIMEPOST, m) };
        }
        let p = p.ok_or(Fault::Code(c::CURLE_OUT_OF_MEMORY as i32))?;
        let copy = Easy::wrap(p, handler);
        copy.take_state_of(self)?;
        Ok(copy)
    }

    /// Gives a copy libcurl made of `src` (duphandle, server push) its own
    /// copies of what `src` kept: libcurl's copy points at `src`'s.
    fn take_state_of(&self, src: &Easy<H>) -> Res<()> {
        let (lists, body, share, url, hsts, cookie_files) = {
            let k = src.kept.borrow();
            let lists: Vec<(i32, Vec<CString>)> = k
                .slists
                .iter()
                .map(|(id, (_, s))| (*id, s.clone()))
                .collect();
            (
                lists,
                k.postfields.clone(),
                k.share.clone(),
                k.url.clone(),
                k.hsts_files,
                k.cookie_files,
            )
        };
        for (id, items) in lists {
            self.set_slist(id as i64, Some(items))?;
        }
        if let Some(b) = body {
            self.set_postfields(Some(&b[..b.len() - 1]))?;
        }
        // libcurl's copy does not take the share over: give it again.
        self.set_share(share)?;
        self.kept.borrow_mut().url = url;
        self.kept.borrow_mut().hsts_files = hsts;
        // libcurl's copy has its own copy of the COOKIEFILE list
        self.kept.borrow_mut().cookie_files = cookie_files;
        *self.starts.borrow_mut() = src.starts.borrow().clone();
        // The stream callbacks' data is ours only where our function is
        // set; and libcurl may have cleared a function it copied (the
        // trailer callback, once used): set every one we have on again.
        for cb in Cb::ALL {
            if src.callback_on(*cb) {
                self.set_callback(*cb, true)?;
            }
        }
        self.flush();
        Ok(())
    }

    pub fn escape(&self, s: &[u8]) -> Res<Vec<u8>> {
        let h = self.raw()?;
        let n = escape_len(s)?;
        if n == 0 {
            return Ok(Vec::new()); // 0 would mean "call strlen"
        }
        // SAFETY: live handle; (ptr, n) describe `s`; libcurl returns a new
        // NUL-terminated string we free with curl_free.
        unsafe {
            let p = sys::curl_easy_escape(h, s.as_ptr() as *const c_char, n);
            if p.is_null() {
                return Err(Fault::Code(c::CURLE_OUT_OF_MEMORY as i32));
            }
            let out = CStr::from_ptr(p).to_bytes().to_vec();
            sys::curl_free(p as *mut c_void);
            Ok(out)
        }
    }

    pub fn unescape(&self, s: &[u8]) -> Res<Vec<u8>> {
        let h = self.raw()?;
        let len = escape_len(s)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut n: c_int = 0;
        // SAFETY: as escape; libcurl reports the decoded length (may contain NUL).
        unsafe {
            let p = sys::curl_easy_unescape(h, s.as_ptr() as *const c_char, len, &mut n);
            if p.is_null() {
                return Err(Fault::Code(c::CURLE_OUT_OF_MEMORY as i32));
            }
            let out = bytes(p, n.max(0) as usize).to_vec();
            sys::curl_free(p as *mut c_void);
            Ok(out)
        }
    }

    /// Bytes sent; `Fault::Code(CURLE_AGAIN)` when the socket is not ready.
    /// A transfer on this handle ended with `result` (`Perform`, or the
    /// multi's `CURLMSG_DONE`).
    pub fn transfer_done(&self, result: CURLcode) {
        self.done.set(true);
        self.co_conn
            .set(result == 0 && self.starts.borrow().connect_only);
        if result != 0 {
            self.doh_ended();
        }
    }

    /// A transfer that used DoH ended other than with success. Before
    /// 8.22.0 libcurl frees a DoH lookup's state when the lookup finishes,
    /// or at cleanup; a transfer that ends while it runs (an abort, a
    /// timeout, `RemoveHandle`) leaves it in the handle, and the next
    /// transfer's start clears the request state without freeing it (7.88:
    /// found by the fuzzer under valgrind). No name lookup time means the
    /// lookup never finished.
    pub(super) fn doh_ended(&self) {
        if self.doh_ran.get()
            && older_than(0x081600)
            && self
                .info_off_t(c::CURLINFO_NAMELOOKUP_TIME_T as i32)
                .is_ok_and(|t| t == 0)
        {
            self.doh_left.set(true);
        }
    }

    /// `curl_easy_send`, `curl_easy_recv` and `curl_ws_recv` use the
    /// connection libcurl remembers as the handle's last one, which is the
    /// connection of an earlier, ordinary transfer when a `CONNECT_ONLY`
    /// transfer failed before connecting (7.88 then sends on an HTTP/2
    /// connection without a stream: a crash). They need the connection of
    /// a `CONNECT_ONLY` transfer that succeeded.
    pub(super) fn need_connection(&self) -> Res<()> {
        if self.co_conn.get() {
            return Ok(());
        }
        refused(
            "there is no connection from a CONNECT_ONLY transfer: Send, Recv and WsRecv work after a CONNECT_ONLY transfer on this easy succeeded (Perform returned, or InfoRead reported it done with CURLE_OK)",
        )
    }

    /// `need_connection`, for a call that makes libcurl attach the handle
    /// to the connection.
    pub(super) fn use_connection(&self) -> Res<()> {
        self.need_connection()?;
        self.co_attached.set(true);
        Ok(())
    }

    /// Before 8.22.0 a handle attached to its `CONNECT_ONLY` connection
    /// (`co_attached`) loses that connection for good when `what` runs:
    /// `curl_easy_upkeep` attaches the handle to every cached connection
    /// and detaches it once (the connection stays counted as in use and is
    /// never freed), and after a share change the handle's connection is
    /// looked up in another cache, so ACTIVESOCKET says -1 and the next
    /// transfer is let through while the handle is still attached.
    pub(super) fn attached_conn_guard(&self, what: &str) -> Res<()> {
        if self.co_attached.get() && older_than(0x081600) {
            return refused(format!(
                "this easy is attached to the connection of its CONNECT_ONLY transfer (Send, Recv or a WebSocket call used it), and {} loses that connection on {what} (fixed in 8.22.0): use DupHandle for a handle without it",
                this_libcurl()
            ));
        }
        Ok(())
    }

    /// Before 8.22.0 `curl_easy_upkeep` attaches the handle itself to each
    /// cached connection in turn and then detaches it: a handle whose
    /// transfer runs (inside `Perform`, from its own callbacks too, or added
    /// to a multi) is left without its connection, and the transfer then
    /// reads through a null pointer (7.88: a crash; from a callback, or a
    /// `CURLM_INTERNAL_ERROR` and a leaked connection between
    /// `multi:Perform` calls). 8.22 keeps the connections alive with the
    /// cache's own internal handle.
    pub(super) fn upkeep_guard(&self) -> Res<()> {
        if (self.performing.get() || self.in_multi.get()) && older_than(0x081600) {
            return refused(format!(
                "Upkeep cannot run on an easy whose transfer is running (inside Perform or its callbacks, or added to a multi until RemoveHandle): {} takes the transfer's connection away from it (a crash; fixed in 8.22.0); call it on an easy that is not transferring",
                this_libcurl()
            ));
        }
        Ok(())
    }

    pub fn send(&self, data: &[u8]) -> Res<usize> {
        self.use_connection()?;
        let h = self.raw()?;
        let mut n: usize = 0;
        // SAFETY: live handle; (ptr, len) describe `data`.
        let rc = super::without_sigpipe(|| unsafe {
            sys::curl_easy_send(h, data.as_ptr() as *const c_void, data.len(), &mut n)
        }) as CURLcode;
        code(rc).map(|()| n)
    }

    pub fn recv(&self, buf: &mut [u8]) -> Res<usize> {
        self.use_connection()?;
        let h = self.raw()?;
        let mut n: usize = 0;
        // SAFETY: live handle; libcurl writes at most buf.len() bytes.
        let rc =
            unsafe { sys::curl_easy_recv(h, buf.as_mut_ptr() as *mut c_void, buf.len(), &mut n) }
                as CURLcode;
        code(rc).map(|()| n)
    }

    /// The error buffer's text of the last failed call, if any.
    pub fn error_text(&self) -> Option<String> {
        self.errbuf.read()
    }

    // -------------------------------------------------------- infos

    /// # Safety
    /// `T` is the type libcurl writes for info `id` (checked by callers
    /// through the id's type bits).
    unsafe fn getinfo<T: Default>(&self, id: i32) -> Res<T> {
        let h = self.raw()?;
        let mut v = T::default();
        // SAFETY: live handle; the caller's contract on `T`.
        let rc =
            unsafe { sys::curl_easy_getinfo(h, id as sys::CURLINFO, &mut v as *mut T) } as CURLcode;
        code(rc).map(|()| v)
    }

    fn check_info(id: i32, ty: i32) -> Res<()> {
        if id & INFO_TYPEMASK == ty {
            Ok(())
        } else {
            refused(format!("CURLINFO {id} is not of the type asked for"))
        }
    }

    pub fn info_long(&self, id: i32) -> Res<i64> {
        Self::check_info(id, INFO_LONG)?;
        // SAFETY: a LONG info: libcurl writes one long.
        unsafe { self.getinfo::<c_long>(id) }.map(|v| v as i64)
    }

    pub fn info_off_t(&self, id: i32) -> Res<i64> {
        Self::check_info(id, INFO_OFF_T)?;
        // SAFETY: an OFF_T info: libcurl writes one curl_off_t.
        unsafe { self.getinfo::<sys::curl_off_t>(id) }.map(|v| v as i64)
    }

    pub fn info_double(&self, id: i32) -> Res<f64> {
        Self::check_info(id, INFO_DOUBLE)?;
        // SAFETY: a DOUBLE info: libcurl writes one double.
        unsafe { self.getinfo::<f64>(id) }
    }

    pub fn info_socket(&self, id: i32) -> Res<i64> {
        Self::check_info(id, INFO_SOCKET)?;
        // SAFETY: a SOCKET info: libcurl writes one curl_socket_t.
        unsafe { self.getinfo::<sys::curl_socket_t>(id) }.map(|v| v as i64)
    }

    pub fn info_string(&self, id: i32) -> Res<Option<Vec<u8>>> {
        Self::check_info(id, INFO_STRING)?;
        // SAFETY: a STRING info: libcurl writes one pointer to a string the
        // handle owns, copied before any other call.
        unsafe {
            let p = self.getinfo::<Ptr<c_char>>(id)?;
            Ok(cstr_bytes(p.0))
        }
    }

    /// `COOKIELIST`, `SSL_ENGINES`: lists libcurl makes for the caller.
    pub fn info_slist(&self, id: i32) -> Res<Vec<Vec<u8>>> {
        if id as i64 != c::CURLINFO_COOKIELIST && id as i64 != c::CURLINFO_SSL_ENGINES {
            return refused(format!("CURLINFO {id} does not hand out a list"));
        }
        // SAFETY: these infos write one list pointer that we own and free.
        unsafe {
            let p = self.getinfo::<Ptr<sys::curl_slist>>(id)?;
            Ok(take_slist(p.0 as *mut sys::curl_slist))
        }
    }

    /// `CURLINFO_CERTINFO`: one list of "Name:value" strings per certificate.
    pub fn info_certinfo(&self) -> Res<Vec<Vec<Vec<u8>>>> {
        // SAFETY: CERTINFO writes a pointer to a struct owned by the handle.
        let p = unsafe { self.getinfo::<Ptr<sys::curl_certinfo>>(c::CURLINFO_CERTINFO as i32) }?;
        let mut out = Vec::new();
        if p.0.is_null() {
            return Ok(out);
        }
        // SAFETY: non-null struct owned by the handle: num_of_certs lists.
        let ci = unsafe { &*p.0 };
        for i in 0..ci.num_of_certs.max(0) as usize {
            // SAFETY: certinfo has num_of_certs entries; each list is owned
            // by the handle (walked, not freed).
            let mut n = unsafe { *ci.certinfo.add(i) };
            let mut fields = Vec::new();
            while !n.is_null() {
                // SAFETY: a well-formed list with NUL-terminated strings.
                let node = unsafe { &*n };
                // SAFETY: as above.
                if let Some(b) = unsafe { cstr_bytes(node.data) } {
                    fields.push(b);
                }
                n = node.next;
            }
            out.push(fields);
        }
        Ok(out)
    }
}

/// A pointer with a NULL default (for `getinfo`).
#[repr(transparent)]
struct Ptr<T>(*const T);

impl<T> Default for Ptr<T> {
    fn default() -> Self {
        Ptr(ptr::null())
    }
}

pub const INFO_STRING: i32 = 0x100000;
pub const INFO_LONG: i32 = 0x200000;
pub const INFO_DOUBLE: i32 = 0x300000;
pub const INFO_SLIST: i32 = 0x400000;
pub const INFO_SOCKET: i32 = 0x500000;
pub const INFO_OFF_T: i32 = 0x600000;
pub const INFO_TYPEMASK: i32 = 0xf00000;

/// `curl_easy_escape` / `curl_easy_unescape` take an `int` length.
fn escape_len(s: &[u8]) -> Res<c_int> {
    c_int::try_from(s.len()).or_else(|_| refused("longer than 2147483647 bytes"))
}
