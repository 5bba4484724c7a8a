//! An easy handle's callbacks: the [`EasyHandler`] they call, one table
//! ([`Cb`]) naming each callback's `CURLOPT_*FUNCTION`, `*DATA` and
//! trampoline, each trampoline written beside the C struct it reads, and
//! how a handle turns them on and off.

use super::consts::c;
use super::easy::Easy;
use super::{cstr_bytes, older_than, Res};
use curl_sys as sys;
use std::cell::{Cell, UnsafeCell};
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::ptr;
use std::rc::{Rc, Weak};

// ------------------------------------------------------------ handler

/// What an easy handle's callbacks call. Each method gets the callback's
/// arguments already read from C and returns libcurl's return value.
/// A method runs only while its handler is alive (otherwise the trampoline
/// does libcurl's default: see each trampoline), and a panic inside one is
/// caught and handed to [`EasyHandler::panicked`] before it could unwind
/// into libcurl.
pub trait EasyHandler: Sized + 'static {
    /// Write, header and interleave data: bytes taken (see CURLOPT_WRITEFUNCTION).
    fn write(&self, stream: Stream, data: &[u8]) -> usize;
    /// Upload data into `buf`: bytes written, 0 at the end, or a
    /// `CURL_READFUNC_*` code.
    fn read(&self, buf: &OutBuf<'_>) -> usize;
    fn xferinfo(&self, now: [i64; 4]) -> c_int;
    fn progress(&self, now: [f64; 4]) -> c_int;
    fn debug(&self, kind: c_int, data: &[u8]) -> c_int;
    fn seek(&self, offset: i64, origin: c_int) -> c_int;
    fn sockopt(&self, fd: sys::curl_socket_t, purpose: c_int) -> c_int;
    fn opensocket(&self, purpose: c_int, addr: &SockAddr<'_>) -> sys::curl_socket_t;
    /// Close `fd` (or leave it open when the application closed it).
    fn closesocket(&self, fd: sys::curl_socket_t) -> c_int;
    fn resolver_start(&self) -> c_int;
    fn prereq(
        &self,
        primary: Option<&[u8]>,
        local: Option<&[u8]>,
        pport: c_int,
        lport: c_int,
    ) -> c_int;
    fn trailer(&self, list: &TrailerList<'_>) -> c_int;
    fn chunk_bgn(&self, info: &FileInfo<'_>, remains: c_int) -> c_long;
    fn chunk_end(&self) -> c_long;
    fn fnmatch(&self, pattern: Option<&[u8]>, string: Option<&[u8]>) -> c_int;
    fn ssh_key(&self, known: Option<KhKey>, found: Option<KhKey>, m: c_int) -> c_int;
    fn ssh_hostkey(&self, keytype: c_int, key: &[u8]) -> c_int;
    fn hsts_read(&self, entry: &HstsRead<'_>) -> c_int;
    fn hsts_write(&self, entry: &HstsWrite, index: usize, total: usize) -> c_int;
    /// A method panicked; `msg` is the panic text.
    fn panicked(&self, msg: String);
}

/// The three callbacks that receive a transfer's byte stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Write,
    Header,
    Interleave,
}

/// Runs `f` with the handler registered as `userp` (the box an [`Easy`]
/// owns): `dead()` when it is gone, `fail` when `f` panics.
/// What every callback's data pointer points at: the handler, and what
/// the trampolines note for the handle.
pub(super) struct HandlerBox<H> {
    pub(super) weak: Weak<H>,
    /// The trailer callback ran: libcurl before 8.7.0 keeps the handle in
    /// its "trailers done" state (see `Easy::prepare`).
    pub(super) trailers_sent: Cell<bool>,
    /// The pre-request trampoline stopped a second request of a transfer
    /// whose trailers were sent (see `prereq_cb`).
    pub(super) resend_refused: Cell<bool>,
    /// `Easy::perform` runs a `CONNECT_ONLY` 2 transfer on libcurl 8,
    /// which never ends it once paused (see `Easy::perform`).
    pub(super) no_pause: Cell<bool>,
    /// A data callback asked to pause such a transfer: refused.
    pub(super) pause_refused: Cell<bool>,
}

/// A write or header callback's result `r`: a pause refused while
/// `no_pause` is set becomes 0 (libcurl ends the transfer with
/// `CURLE_WRITE_ERROR`; `Easy::perform` says why).
fn data_result<H>(userp: *mut c_void, r: usize) -> usize {
    if r != c::CURL_WRITEFUNC_PAUSE as usize || userp.is_null() {
        return r;
    }
    // SAFETY: as in `with_handler`.
    let hb = unsafe { &*(userp as *const HandlerBox<H>) };
    if hb.no_pause.get() {
        hb.pause_refused.set(true);
        return 0;
    }
    r
}

fn with_handler<H: EasyHandler, T>(
    userp: *mut c_void,
    dead: impl FnOnce() -> T,
    fail: T,
    f: impl FnOnce(&H) -> T,
) -> T {
    if userp.is_null() {
        return dead();
    }
    // SAFETY: every callback's data pointer is the `HandlerBox<H>` of the
    // `Easy<H>` whose handle calls it (set by `Easy::point_data`); the box
    // is freed only after `curl_easy_cleanup` of that handle, which is the
    // last moment libcurl calls it. (The close-socket callback, which
    // connections keep, has a token instead: see `closers`.)
    let hb = unsafe { &*(userp as *const HandlerBox<H>) };
    let Some(h) = hb.weak.upgrade() else {
        return dead();
    };
    super::unwind_guard(|| f(&h), |msg| h.panicked(msg), fail)
}

/// A byte range libcurl hands to a callback.
///
/// # Safety
/// `p` is NULL or points to `len` bytes readable for the call.
pub(super) unsafe fn bytes<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(p as *const u8, len) }
    }
}

/// A NUL-terminated string libcurl hands to a callback.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

// ------------------------------------------------------------ the table

macro_rules! callbacks {
    ($($name:ident: $fopt:ident, $dopt:ident, $tramp:ident;)*) => {
        /// The callbacks the binding supports.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub enum Cb { $($name),* }

        impl Cb {
            pub const ALL: &'static [Cb] = &[$(Cb::$name),*];

            /// Its `CURLOPT_*FUNCTION`.
            pub fn function_opt(self) -> i64 {
                match self { $(Cb::$name => c::$fopt),* }
            }

            /// Its `CURLOPT_*DATA`.
            pub fn data_opt(self) -> i64 {
                match self { $(Cb::$name => c::$dopt),* }
            }

            /// The callback whose `CURLOPT_*FUNCTION` is `id`.
            pub fn by_function(id: i64) -> Option<Cb> {
                match id { $(c::$fopt => Some(Cb::$name),)* _ => None }
            }

            fn trampoline<H: EasyHandler>(self) -> *const c_void {
                match self { $(Cb::$name => $tramp::<H> as *const c_void),* }
            }
        }
    };
}

callbacks! {
    Write: CURLOPT_WRITEFUNCTION, CURLOPT_WRITEDATA, write_cb;
    Header: CURLOPT_HEADERFUNCTION, CURLOPT_HEADERDATA, header_cb;
    Read: CURLOPT_READFUNCTION, CURLOPT_READDATA, read_cb;
    XferInfo: CURLOPT_XFERINFOFUNCTION, CURLOPT_XFERINFODATA, xferinfo_cb;
    Progress: CURLOPT_PROGRESSFUNCTION, CURLOPT_PROGRESSDATA, progress_cb;
    Debug: CURLOPT_DEBUGFUNCTION, CURLOPT_DEBUGDATA, debug_cb;
    Seek: CURLOPT_SEEKFUNCTION, CURLOPT_SEEKDATA, seek_cb;
    SockOpt: CURLOPT_SOCKOPTFUNCTION, CURLOPT_SOCKOPTDATA, sockopt_cb;
    OpenSocket: CURLOPT_OPENSOCKETFUNCTION, CURLOPT_OPENSOCKETDATA, opensocket_cb;
    CloseSocket: CURLOPT_CLOSESOCKETFUNCTION, CURLOPT_CLOSESOCKETDATA, closesocket_cb;
    ResolverStart: CURLOPT_RESOLVER_START_FUNCTION, CURLOPT_RESOLVER_START_DATA, resolver_start_cb;
    Prereq: CURLOPT_PREREQFUNCTION, CURLOPT_PREREQDATA, prereq_cb;
    Trailer: CURLOPT_TRAILERFUNCTION, CURLOPT_TRAILERDATA, trailer_cb;
    ChunkBgn: CURLOPT_CHUNK_BGN_FUNCTION, CURLOPT_CHUNK_DATA, chunk_bgn_cb;
    ChunkEnd: CURLOPT_CHUNK_END_FUNCTION, CURLOPT_CHUNK_DATA, chunk_end_cb;
    FnMatch: CURLOPT_FNMATCH_FUNCTION, CURLOPT_FNMATCH_DATA, fnmatch_cb;
    SshKey: CURLOPT_SSH_KEYFUNCTION, CURLOPT_SSH_KEYDATA, ssh_key_cb;
    SshHostKey: CURLOPT_SSH_HOSTKEYFUNCTION, CURLOPT_SSH_HOSTKEYDATA, ssh_hostkey_cb;
    HstsRead: CURLOPT_HSTSREADFUNCTION, CURLOPT_HSTSREADDATA, hsts_read_cb;
    HstsWrite: CURLOPT_HSTSWRITEFUNCTION, CURLOPT_HSTSWRITEDATA, hsts_write_cb;
    Interleave: CURLOPT_INTERLEAVEFUNCTION, CURLOPT_INTERLEAVEDATA, interleave_cb;
}

impl Cb {
    /// The stream callbacks whose data is a `FILE*` when no function is
    /// set: their data pointer is ours only while our function is.
    pub fn is_stream(self) -> bool {
        matches!(self, Cb::Write | Cb::Header | Cb::Read)
    }
}

// ------------------------------------------------------------ trampolines

extern "C" fn write_cb<H: EasyHandler>(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    // SAFETY: libcurl passes size * nmemb readable bytes for the call.
    let data = unsafe { bytes(ptr, size.saturating_mul(nmemb)) };
    let r = with_handler(userp, || 0, 0, |h: &H| h.write(Stream::Write, data));
    data_result::<H>(userp, r)
}

extern "C" fn header_cb<H: EasyHandler>(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    // SAFETY: as write_cb.
    let data = unsafe { bytes(ptr, size.saturating_mul(nmemb)) };
    let r = with_handler(userp, || 0, 0, |h: &H| h.write(Stream::Header, data));
    data_result::<H>(userp, r)
}

extern "C" fn interleave_cb<H: EasyHandler>(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    // SAFETY: as write_cb.
    let data = unsafe { bytes(ptr, size.saturating_mul(nmemb)) };
    with_handler(userp, || 0, 0, |h: &H| h.write(Stream::Interleave, data))
}

/// A buffer libcurl lends a callback to fill (uninitialised memory: it is
/// only written).
pub struct OutBuf<'a> {
    ptr: *mut u8,
    cap: usize,
    _lent: PhantomData<&'a mut u8>,
}

impl OutBuf<'_> {
    /// # Safety
    /// `ptr` is NULL or writable for `cap` bytes for the lifetime chosen.
    pub(super) unsafe fn new(ptr: *mut c_char, cap: usize) -> Self {
        OutBuf {
            ptr: ptr as *mut u8,
            cap: if ptr.is_null() { 0 } else { cap },
            _lent: PhantomData,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Copies as much of `src` as fits; returns the count.
    pub fn fill(&self, src: &[u8]) -> usize {
        let n = src.len().min(self.cap);
        if n > 0 {
            // SAFETY: the buffer is writable for `cap` ≥ n bytes (`new`).
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.ptr, n) };
        }
        n
    }
}

extern "C" fn read_cb<H: EasyHandler>(
    buf: *mut c_char,
    size: usize,
    nitems: usize,
    userp: *mut c_void,
) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    // SAFETY: libcurl lends size * nitems writable bytes for the call.
    let out = unsafe { OutBuf::new(buf, size.saturating_mul(nitems)) };
    with_handler(userp, || abort, abort, |h: &H| h.read(&out))
}

extern "C" fn xferinfo_cb<H: EasyHandler>(
    userp: *mut c_void,
    dt: sys::curl_off_t,
    dn: sys::curl_off_t,
    ut: sys::curl_off_t,
    un: sys::curl_off_t,
) -> c_int {
    let now = [dt, dn, ut, un].map(|n| n as i64);
    with_handler(userp, || 0, 1, |h: &H| h.xferinfo(now))
}

extern "C" fn progress_cb<H: EasyHandler>(
    userp: *mut c_void,
    dt: f64,
    dn: f64,
    ut: f64,
    un: f64,
) -> c_int {
    with_handler(userp, || 0, 1, |h: &H| h.progress([dt, dn, ut, un]))
}

extern "C" fn debug_cb<H: EasyHandler>(
    _h: *mut sys::CURL,
    kind: c_int,
    data: *mut c_char,
    size: usize,
    userp: *mut c_void,
) -> c_int {
    // SAFETY: libcurl passes `size` readable bytes for the call.
    let data = unsafe { bytes(data, size) };
    with_handler(userp, || 0, 0, |h: &H| h.debug(kind, data))
}

extern "C" fn seek_cb<H: EasyHandler>(
    userp: *mut c_void,
    offset: sys::curl_off_t,
    origin: c_int,
) -> c_int {
    let cant = c::CURL_SEEKFUNC_CANTSEEK as c_int;
    let fail = c::CURL_SEEKFUNC_FAIL as c_int;
    with_handler(userp, || cant, fail, |h: &H| h.seek(offset as i64, origin))
}

extern "C" fn sockopt_cb<H: EasyHandler>(
    userp: *mut c_void,
    fd: sys::curl_socket_t,
    purpose: c_int,
) -> c_int {
    let err = c::CURL_SOCKOPT_ERROR as c_int;
    with_handler(userp, || 0, err, |h: &H| h.sockopt(fd, purpose))
}

/// The address libcurl is about to connect to (open-socket callback).
pub struct SockAddr<'a>(&'a sys::curl_sockaddr);

impl SockAddr<'_> {
    pub fn family(&self) -> c_int {
        self.0.family
    }
    pub fn socktype(&self) -> c_int {
        self.0.socktype
    }
    pub fn protocol(&self) -> c_int {
        self.0.protocol
    }
    /// "ip" and port (empty and 0 for families other than IPv4/IPv6).
    pub fn ip_port(&self) -> (String, u16) {
        let a = self.0;
        let base = &a.addr as *const libc::sockaddr;
        match a.family {
            libc::AF_INET if a.addrlen as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: family and length say this is a sockaddr_in.
                let sin = unsafe { &*(base as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                (ip.to_string(), u16::from_be(sin.sin_port))
            }
            libc::AF_INET6 if a.addrlen as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: family and length say this is a sockaddr_in6
                // (libcurl's storage is large enough for the length it reports).
                let sin6 = unsafe { &*(base as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                (ip.to_string(), u16::from_be(sin6.sin6_port))
            }
            _ => (String::new(), 0),
        }
    }
    /// A socket opened as libcurl would open it.
    pub fn open(&self) -> sys::curl_socket_t {
        super::open_socket(self.family(), self.socktype(), self.protocol())
    }
}

extern "C" fn opensocket_cb<H: EasyHandler>(
    userp: *mut c_void,
    purpose: c_int,
    addr: *mut sys::curl_sockaddr,
) -> sys::curl_socket_t {
    if addr.is_null() {
        return -1;
    }
    // SAFETY: libcurl passes a valid address struct for the call.
    let a = SockAddr(unsafe { &*addr });
    with_handler(userp, || a.open(), -1, |h: &H| h.opensocket(purpose, &a))
}

/// Close-socket tokens → their handler. libcurl copies the close-socket
/// function and its data into every connection a handle opens, and a
/// connection can outlive the handle (cached in the multi or a share after
/// the function was cleared and reuse allowed again, then closed by the
/// multi or the share): the data is a token looked up here, never an
/// address, so a connection that outlives its easy finds nothing and
/// closes the socket as libcurl would. Tokens are never reused.
mod closers {
    use super::{sys, EasyHandler};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::os::raw::c_int;
    use std::rc::{Rc, Weak};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The object-safe part of an `EasyHandler` the registry needs.
    pub trait Closer {
        /// `None` when the handler is gone or panicked.
        fn close(&self, fd: sys::curl_socket_t) -> Option<c_int>;
    }

    impl<H: EasyHandler> Closer for Weak<H> {
        fn close(&self, fd: sys::curl_socket_t) -> Option<c_int> {
            let h = self.upgrade()?;
            super::super::unwind_guard(|| Some(h.closesocket(fd)), |msg| h.panicked(msg), None)
        }
    }

    static NEXT: AtomicUsize = AtomicUsize::new(1);

    thread_local! {
        static LIVE: RefCell<HashMap<usize, Rc<dyn Closer>>> = RefCell::new(HashMap::new());
    }

    pub fn register(c: Rc<dyn Closer>) -> usize {
        let token = NEXT.fetch_add(1, Ordering::Relaxed);
        let _ = LIVE.try_with(|m| m.borrow_mut().insert(token, c));
        token
    }

    pub fn unregister(token: usize) {
        let _ = LIVE.try_with(|m| {
            let mut m = m.borrow_mut();
            m.remove(&token);
            if m.is_empty() {
                *m = HashMap::new(); // nothing left behind at unload
            }
        });
    }

    /// Runs the handler of `token`. The handler runs with no borrow of the
    /// map held: it may make or drop easies, which register and unregister.
    pub fn close(token: usize, fd: sys::curl_socket_t) -> Option<c_int> {
        let c = LIVE
            .try_with(|m| m.borrow().get(&token).cloned())
            .ok()
            .flatten()?;
        c.close(fd)
    }
}

extern "C" fn closesocket_cb<H: EasyHandler>(userp: *mut c_void, fd: sys::curl_socket_t) -> c_int {
    match closers::close(userp as usize, fd) {
        Some(rc) => rc,
        None => {
            super::close_socket(fd);
            0
        }
    }
}

extern "C" fn resolver_start_cb<H: EasyHandler>(
    _state: *mut c_void,
    _reserved: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    with_handler(userp, || 0, 1, |h: &H| h.resolver_start())
}

extern "C" fn prereq_cb<H: EasyHandler>(
    userp: *mut c_void,
    primary: *mut c_char,
    local: *mut c_char,
    pport: c_int,
    lport: c_int,
) -> c_int {
    let abort = c::CURL_PREREQFUNC_ABORT as c_int;
    if !userp.is_null() {
        // SAFETY: as in `with_handler`.
        let hb = unsafe { &*(userp as *const HandlerBox<H>) };
        // Before 8.7.0 a handle whose trailers went out stays in the
        // "trailers done" state, and sending a chunked body again (a
        // redirect, authentication, a retry: each a new request of the same
        // transfer) writes before its upload buffer. Every such request
        // passes here first: stop it.
        if hb.trailers_sent.get() && older_than(0x080700) {
            hb.resend_refused.set(true);
            return abort;
        }
    }
    // SAFETY: libcurl passes NUL-terminated address strings for the call.
    let (p, l) = unsafe { (text(primary), text(local)) };
    with_handler(userp, || 0, abort, |h: &H| h.prereq(p, l, pport, lport))
}

/// The trailer callback's list, which libcurl owns and frees.
pub struct TrailerList<'a> {
    list: *mut *mut sys::curl_slist,
    _lent: PhantomData<&'a mut ()>,
}

impl TrailerList<'_> {
    /// Appends "Name: value" strings (libcurl copies them).
    pub fn append(&self, items: &[CString]) {
        if self.list.is_null() {
            return;
        }
        // SAFETY: libcurl passes a valid pointer to its list for the call.
        let mut l = unsafe { *self.list };
        for s in items {
            // SAFETY: curl_slist_append copies the string; on failure the
            // list is unchanged.
            let n = unsafe { sys::curl_slist_append(l, s.as_ptr()) };
            if n.is_null() {
                break;
            }
            l = n;
        }
        // SAFETY: as above.
        unsafe { *self.list = l };
    }
}

extern "C" fn trailer_cb<H: EasyHandler>(
    list: *mut *mut sys::curl_slist,
    userp: *mut c_void,
) -> c_int {
    let abort = c::CURL_TRAILERFUNC_ABORT as c_int;
    if !userp.is_null() {
        // SAFETY: as in `with_handler`.
        unsafe { &*(userp as *const HandlerBox<H>) }
            .trailers_sent
            .set(true);
    }
    let l = TrailerList {
        list,
        _lent: PhantomData,
    };
    with_handler(userp, || 0, abort, |h: &H| h.trailer(&l))
}

/// `struct curl_fileinfo` (FTP wildcard chunk callback), read-only.
pub struct FileInfo<'a>(&'a sys::curl_fileinfo);

impl FileInfo<'_> {
    pub fn filename(&self) -> Option<&[u8]> {
        // SAFETY: libcurl's strings in the struct are valid for the call.
        unsafe { text(self.0.filename) }
    }
    pub fn filetype(&self) -> i64 {
        self.0.filetype as i64
    }
    pub fn time(&self) -> i64 {
        self.0.time as i64
    }
    pub fn perm(&self) -> i64 {
        self.0.perm as i64
    }
    pub fn uid(&self) -> i64 {
        self.0.uid as i64
    }
    pub fn gid(&self) -> i64 {
        self.0.gid as i64
    }
    pub fn size(&self) -> i64 {
        self.0.size as i64
    }
    pub fn hardlinks(&self) -> i64 {
        self.0.hardlinks as i64
    }
    pub fn flags(&self) -> i64 {
        self.0.flags as i64
    }
    /// `strings.time`, `.perm`, `.user`, `.group`; `target` only for
    /// symlinks: libcurl (7.88 at least) does not reset the parser's
    /// symlink-target offset between entries, so for an entry listed after
    /// a symlink it points at a stale index into the new entry's buffer.
    pub fn strings(&self) -> [Option<&[u8]>; 5] {
        let s = self.0;
        let target = if self.filetype() == c::CURLFILETYPE_SYMLINK {
            s.strings_target
        } else {
            ptr::null_mut()
        };
        // SAFETY: as filename.
        unsafe {
            [
                text(s.strings_time),
                text(s.strings_perm),
                text(s.strings_user),
                text(s.strings_group),
                text(target),
            ]
        }
    }
}

extern "C" fn chunk_bgn_cb<H: EasyHandler>(
    info: *const c_void,
    userp: *mut c_void,
    remains: c_int,
) -> c_long {
    let fail = c::CURL_CHUNK_BGN_FUNC_FAIL as c_long;
    if info.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes a struct curl_fileinfo for the call.
    let fi = FileInfo(unsafe { &*(info as *const sys::curl_fileinfo) });
    with_handler(userp, || 0, fail, |h: &H| h.chunk_bgn(&fi, remains))
}

extern "C" fn chunk_end_cb<H: EasyHandler>(userp: *mut c_void) -> c_long {
    let fail = c::CURL_CHUNK_END_FUNC_FAIL as c_long;
    with_handler(userp, || 0, fail, |h: &H| h.chunk_end())
}

extern "C" fn fnmatch_cb<H: EasyHandler>(
    userp: *mut c_void,
    pattern: *const c_char,
    string: *const c_char,
) -> c_int {
    let fail = c::CURL_FNMATCHFUNC_FAIL as c_int;
    // SAFETY: libcurl passes NUL-terminated strings for the call.
    let (p, s) = unsafe { (text(pattern), text(string)) };
    with_handler(userp, || fail, fail, |h: &H| h.fnmatch(p, s))
}

/// `struct curl_khkey` (SSH key callback).
#[repr(C)]
struct RawKhKey {
    key: *const c_char,
    len: usize,
    keytype: c_int,
}

/// An SSH key: its bytes (for `len` 0 libcurl gives base64 text) and type.
pub struct KhKey {
    pub key: Vec<u8>,
    pub keytype: c_int,
}

/// # Safety
/// `k` is NULL or a valid `struct curl_khkey` for the call.
unsafe fn khkey(k: *const RawKhKey) -> Option<KhKey> {
    if k.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    let k = unsafe { &*k };
    // SAFETY: len 0 means a NUL-terminated string, else `len` bytes.
    let key = unsafe {
        if k.len == 0 {
            cstr_bytes(k.key).unwrap_or_default()
        } else {
            bytes(k.key, k.len).to_vec()
        }
    };
    Some(KhKey {
        key,
        keytype: k.keytype,
    })
}

extern "C" fn ssh_key_cb<H: EasyHandler>(
    _h: *mut sys::CURL,
    known: *const c_void,
    found: *const c_void,
    m: c_int,
    userp: *mut c_void,
) -> c_int {
    let reject = c::CURLKHSTAT_REJECT as c_int;
    // SAFETY: libcurl passes valid key structs (or NULL) for the call.
    let (k, f) = unsafe { (khkey(known.cast()), khkey(found.cast())) };
    with_handler(userp, || reject, reject, |h: &H| h.ssh_key(k, f, m))
}

extern "C" fn ssh_hostkey_cb<H: EasyHandler>(
    userp: *mut c_void,
    keytype: c_int,
    key: *const c_char,
    len: usize,
) -> c_int {
    let mismatch = c::CURLKHMATCH_MISMATCH as c_int;
    // SAFETY: libcurl passes `len` readable bytes for the call.
    let k = unsafe { bytes(key, len) };
    with_handler(
        userp,
        || mismatch,
        mismatch,
        |h: &H| h.ssh_hostkey(keytype, k),
    )
}

/// `struct curl_hstsentry`. `includeSubDomains` is a 1-bit bitfield; GCC
/// puts it in the byte at offset 16 and `expire` right after it (offset 17,
/// size 40): bit 0 of `flags` is the bitfield.
#[repr(C)]
struct RawHsts {
    name: *mut c_char,
    namelen: usize,
    flags: u8,
    expire: [c_char; 18],
}

// The layout gcc gives the C struct on 64-bit Linux (checked with offsetof).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const _: () =
    assert!(std::mem::offset_of!(RawHsts, expire) == 17 && std::mem::size_of::<RawHsts>() == 40);

/// `struct curl_index`.
#[repr(C)]
struct RawIndex {
    index: usize,
    total: usize,
}

/// The entry the HSTS read callback fills.
pub struct HstsRead<'a>(&'a UnsafeCell<RawHsts>);

impl HstsRead<'_> {
    /// Copies `host` with its NUL; false when it does not fit or has a NUL.
    pub fn set_host(&self, host: &[u8]) -> bool {
        let e = self.0.get();
        // SAFETY: libcurl lends the entry to this one callback; reads of
        // two fields, no reference kept.
        let (name, namelen) = unsafe { ((*e).name, (*e).namelen) };
        if name.is_null() || host.len() + 1 > namelen || host.contains(&0) {
            return false;
        }
        // SAFETY: `name` has room for `namelen` > host.len() bytes.
        unsafe {
            ptr::copy_nonoverlapping(host.as_ptr(), name as *mut u8, host.len());
            *name.add(host.len()) = 0;
        }
        true
    }

    pub fn set_include_subdomains(&self, on: bool) {
        let e = self.0.get();
        // SAFETY: as in set_host; one field written in place.
        unsafe { (*e).flags = ((*e).flags & !1) | on as u8 };
    }

    /// "YYYYMMDD HH:MM:SS" (at most 17 bytes are kept).
    pub fn set_expire(&self, x: &[u8]) {
        let mut buf = [0 as c_char; 18];
        for (i, b) in x.iter().take(17).enumerate() {
            buf[i] = *b as c_char;
        }
        // SAFETY: as in set_host; one field written in place.
        unsafe { (*self.0.get()).expire = buf };
    }
}

extern "C" fn hsts_read_cb<H: EasyHandler>(
    _h: *mut sys::CURL,
    entry: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    let fail = c::CURLSTS_FAIL as c_int;
    if entry.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes an entry to fill, valid for the call.
    let en = HstsRead(unsafe { &*(entry as *const UnsafeCell<RawHsts>) });
    let done = c::CURLSTS_DONE as c_int;
    with_handler(userp, || done, fail, |h: &H| h.hsts_read(&en))
}

/// An HSTS entry libcurl saves (HSTS write callback).
pub struct HstsWrite {
    pub host: Option<Vec<u8>>,
    pub include_subdomains: bool,
    pub expire: Vec<u8>,
}

extern "C" fn hsts_write_cb<H: EasyHandler>(
    _h: *mut sys::CURL,
    entry: *mut c_void,
    index: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    let fail = c::CURLSTS_FAIL as c_int;
    if entry.is_null() || index.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes the entry and its index for the call.
    let (en, ix) = unsafe { (&*(entry as *const RawHsts), &*(index as *const RawIndex)) };
    let end = en
        .expire
        .iter()
        .position(|c| *c == 0)
        .unwrap_or(en.expire.len());
    let w = HstsWrite {
        // SAFETY: a NUL-terminated host name valid for the call.
        host: unsafe { cstr_bytes(en.name) },
        include_subdomains: en.flags & 1 == 1,
        expire: en.expire[..end].iter().map(|c| *c as u8).collect(),
    };
    with_handler(
        userp,
        || 0,
        fail,
        |h: &H| h.hsts_write(&w, ix.index, ix.total),
    )
}

extern "C" {
    // glibc's standard output: libcurl's default WRITEDATA.
    static stdout: *mut libc::FILE;
}

impl<H: EasyHandler> Easy<H> {
    /// Points the error buffer and every non-stream callback's data at
    /// what this handle owns (also after `Reset` and in a copy, whose data
    /// pointers libcurl copied from the original).
    pub(super) fn point_data(&self) {
        if !self.callback_on(Cb::Read) {
            let _ = self.no_stdin();
        }
        let h = &*self.handler as *const HandlerBox<H> as *const c_void;
        // SAFETY: the error buffer and the handler box live as long as the
        // handle; the close-socket data is a token, not a pointer.
        unsafe {
            let _ = self.setopt_ptr(c::CURLOPT_ERRORBUFFER, self.errbuf.ptr());
            for cb in Cb::ALL {
                if cb.is_stream() {
                    continue;
                }
                let d = if *cb == Cb::CloseSocket {
                    self.closer as *const c_void
                } else {
                    h
                };
                let _ = self.setopt_ptr(cb.data_opt(), d);
            }
        }
    }

    /// The read function when the script set none: an empty body.
    /// libcurl's default reads the process's stdin, which a Lua host never
    /// means to send (a POST whose POSTFIELDS was unset, an upload without
    /// a read function).
    fn no_stdin(&self) -> Res<()> {
        // SAFETY: `empty_read` has the read callback's type and ignores its
        // data, which is NULL.
        unsafe {
            self.setopt_ptr(c::CURLOPT_READFUNCTION, empty_read as *const c_void)?;
            self.setopt_ptr(c::CURLOPT_READDATA, ptr::null())
        }
    }

    /// Turns callback `cb` on (its trampoline, with this handle's handler)
    /// or off (libcurl's default; for write that includes the default
    /// `FILE*`, stdout; for read, an empty body instead of stdin).
    pub fn set_callback(&self, cb: Cb, on: bool) -> Res<()> {
        if cb == Cb::Read && !on {
            self.no_stdin()?;
            self.callbacks_on
                .set(self.callbacks_on.get() & !(1u32 << cb as u32));
            return Ok(());
        }
        let f = if on {
            cb.trampoline::<H>()
        } else {
            ptr::null()
        };
        // SAFETY: the trampoline matches the option's function type.
        (unsafe { self.setopt_ptr(cb.function_opt(), f) })?;
        if cb.is_stream() {
            let d = if on {
                &*self.handler as *const HandlerBox<H> as *const c_void
            } else {
                match cb {
                    // SAFETY: reading glibc's process-wide stream pointers.
                    Cb::Write => unsafe { stdout as *const c_void },
                    _ => ptr::null(),
                }
            };
            // SAFETY: the handler box lives as long as the handle; the
            // standard streams live as long as the process.
            (unsafe { self.setopt_ptr(cb.data_opt(), d) })?;
        }
        let bit = 1u32 << cb as u32;
        let old = self.callbacks_on.get();
        self.callbacks_on
            .set(if on { old | bit } else { old & !bit });
        if matches!(cb, Cb::Prereq | Cb::Trailer) {
            self.sync_prereq()?;
        }
        Ok(())
    }

    /// The pre-request trampoline is on while the script's pre-request
    /// function is, and (before 8.7.0) while a trailer function is: it
    /// guards against sending a body again after its trailers.
    fn sync_prereq(&self) -> Res<()> {
        let on =
            self.callback_on(Cb::Prereq) || (self.callback_on(Cb::Trailer) && older_than(0x080700));
        let f = if on {
            Cb::Prereq.trampoline::<H>()
        } else {
            ptr::null()
        };
        // SAFETY: the trampoline matches the option's function type.
        unsafe { self.setopt_ptr(Cb::Prereq.function_opt(), f) }
    }

    /// Whether our trampoline is the function of callback `cb`.
    pub(super) fn callback_on(&self, cb: Cb) -> bool {
        self.callbacks_on.get() & (1 << cb as u32) != 0
    }
}

/// The read function of a handle whose script set none: the end of the
/// body at once (see `no_stdin`).
extern "C" fn empty_read(_buf: *mut c_char, _size: usize, _n: usize, _data: *mut c_void) -> usize {
    0
}

/// Registers a close-socket token for `handler` (see `closers`).
pub(super) fn register_closer<H: EasyHandler>(handler: &Weak<H>) -> usize {
    closers::register(Rc::new(handler.clone()))
}

/// Forgets a close-socket token.
pub(super) fn unregister_closer(token: usize) {
    closers::unregister(token)
}
