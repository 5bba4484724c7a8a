//! Every direct call into libcurl and epoll lives here, behind small safe
//! wrappers. The handle newtypes are created only by `*_init` below and are
//! only destroyed through `*_cleanup`; their owners (`EasyInner`,
//! `MultiInner`) drop their copy before cleanup and never give one to Lua, so
//! a handle value reaching these wrappers always names a live libcurl handle.

use curl_sys as sys;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};
use std::ptr::{self, NonNull};
use std::sync::Once;

pub use sys::CURLMcode;
/// Easy result codes as plain integers (curl-sys types them per platform).
pub type CURLcode = i32;
pub const CURLE_OK: CURLcode = 0;

extern "C" {
    // Declared here: missing from curl-sys' bindings (both exist in 7.88).
    fn curl_multi_poll(
        m: *mut sys::CURLM,
        extra_fds: *mut sys::curl_waitfd,
        extra_nfds: c_uint,
        timeout_ms: c_int,
        ret: *mut c_int,
    ) -> CURLMcode;
    fn curl_multi_wakeup(m: *mut sys::CURLM) -> CURLMcode;
    fn curl_easy_upkeep(h: *mut sys::CURL) -> sys::CURLcode;
    fn curl_pushheader_bynum(h: *mut c_void, num: usize) -> *mut c_char;
}

pub type PushCb =
    extern "C" fn(*mut sys::CURL, *mut sys::CURL, usize, *mut c_void, *mut c_void) -> c_int;

/// The "name:value" header strings of a server push (valid in the callback).
pub fn push_headers(h: *mut c_void, n: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: libcurl's push-headers handle is valid during the push
        // callback; indexes below num_headers are valid.
        if let Some(b) = c_bytes(unsafe { curl_pushheader_bynum(h, i) }) {
            out.push(b);
        }
    }
    out
}

/// Missing from curl-sys' multi codes.
pub const CURLM_ABORTED_BY_CALLBACK: CURLMcode = 11;
pub const CURLM_RECURSIVE_API_CALL: CURLMcode = 8;
pub const CURLM_ADDED_ALREADY: CURLMcode = 7;

pub type SocketCb =
    extern "C" fn(*mut sys::CURL, sys::curl_socket_t, c_int, *mut c_void, *mut c_void) -> c_int;
pub type TimerCb = extern "C" fn(*mut sys::CURLM, c_long, *mut c_void) -> c_int;

#[repr(C)]
struct CurlEasyOption {
    name: *const c_char,
    id: sys::CURLoption,
    kind: c_int,
    flags: c_uint,
}

extern "C" {
    fn curl_easy_option_next(prev: *const CurlEasyOption) -> *const CurlEasyOption;
}

/// One entry of libcurl's own easy-option metadata.
pub struct EasyOptMeta {
    pub name: String,
    pub id: i32,
    pub kind: i32,
    pub alias: bool,
}

/// `curl_easy_option_next` over the whole list (libcurl ≥ 7.73).
pub fn easy_options() -> Vec<EasyOptMeta> {
    let mut v = Vec::new();
    let mut p: *const CurlEasyOption = ptr::null();
    loop {
        // SAFETY: libcurl walks its static option table; NULL starts the walk,
        // each returned pointer is valid for the life of the process.
        p = unsafe { curl_easy_option_next(p) };
        if p.is_null() {
            break;
        }
        // SAFETY: p is non-null and points into libcurl's static table; name is
        // a NUL-terminated static string.
        let o = unsafe { &*p };
        // SAFETY: see above.
        let name = unsafe { CStr::from_ptr(o.name) }
            .to_string_lossy()
            .into_owned();
        v.push(EasyOptMeta {
            name,
            id: o.id as i32,
            kind: o.kind,
            alias: o.flags & 1 != 0,
        });
    }
    v
}

pub fn global_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: called once per process before any other libcurl use from
        // this module; never paired with curl_global_cleanup (other users of
        // libcurl in the process may still need it).
        unsafe {
            sys::curl_global_init(sys::CURL_GLOBAL_DEFAULT);
        }
    });
}

fn cstr_opt(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: libcurl returns NUL-terminated strings that live at least
        // until the next call on the same handle; we copy at once.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

pub fn easy_strerror(code: CURLcode) -> String {
    // SAFETY: curl_easy_strerror accepts any value and returns a static string.
    cstr_opt(unsafe { sys::curl_easy_strerror(code as sys::CURLcode) }).unwrap_or_default()
}

pub fn multi_strerror(code: CURLMcode) -> String {
    // SAFETY: as curl_easy_strerror.
    cstr_opt(unsafe { sys::curl_multi_strerror(code) }).unwrap_or_default()
}

pub fn share_strerror(code: c_int) -> String {
    // SAFETY: as curl_easy_strerror.
    cstr_opt(unsafe { sys::curl_share_strerror(code as sys::CURLSHcode) }).unwrap_or_default()
}

pub fn version() -> String {
    // SAFETY: returns a static string.
    cstr_opt(unsafe { sys::curl_version() }).unwrap_or_default()
}

/// The parts of `curl_version_info` a Lua user reads.
pub struct VersionInfo {
    pub version: String,
    pub version_num: u32,
    pub host: String,
    pub features: i64,
    pub ssl_version: Option<String>,
    pub libz_version: Option<String>,
    pub protocols: Vec<String>,
    pub ares: Option<String>,
    pub libidn: Option<String>,
    pub libssh_version: Option<String>,
    pub brotli_version: Option<String>,
    pub nghttp2_version: Option<String>,
    pub zstd_version: Option<String>,
}

pub fn version_info() -> VersionInfo {
    // SAFETY: CURLVERSION_NOW asks for the struct layout of the headers we
    // were built with; libcurl returns a pointer to static data.
    let d = unsafe { &*sys::curl_version_info(sys::CURLVERSION_FOURTH) };
    let mut protocols = Vec::new();
    if !d.protocols.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: protocols is a NULL-terminated array of static strings.
            let p = unsafe { *d.protocols.add(i) };
            if p.is_null() {
                break;
            }
            if let Some(s) = cstr_opt(p) {
                protocols.push(s);
            }
            i += 1;
        }
    }
    let n = d.version_num;
    VersionInfo {
        version: cstr_opt(d.version).unwrap_or_default(),
        version_num: n,
        host: cstr_opt(d.host).unwrap_or_default(),
        features: d.features as i64,
        ssl_version: cstr_opt(d.ssl_version),
        libz_version: cstr_opt(d.libz_version),
        protocols,
        ares: cstr_opt(d.ares),
        libidn: cstr_opt(d.libidn),
        libssh_version: cstr_opt(d.libssh_version),
        // The fields below exist from the struct version we asked for.
        brotli_version: if n >= 0x073900 {
            cstr_opt(d.brotli_version)
        } else {
            None
        },
        nghttp2_version: if n >= 0x074200 {
            cstr_opt(d.nghttp2_version)
        } else {
            None
        },
        zstd_version: None,
    }
}

/// Runtime libcurl version number (0xXXYYZZ).
pub fn version_num() -> u32 {
    static NUM: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: as in version_info.
    *NUM.get_or_init(|| unsafe { (*sys::curl_version_info(sys::CURLVERSION_FOURTH)).version_num })
}

/// The linked libcurl is older than `num` (0xXXYYZZ): its bugs below that
/// version need the binding's guards.
pub fn older_than(num: u32) -> bool {
    version_num() < num
}

// ---------------------------------------------------------------- easy

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EasyPtr(NonNull<sys::CURL>);

impl EasyPtr {
    pub fn as_ptr(self) -> *mut sys::CURL {
        self.0.as_ptr()
    }
    pub fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// A handle libcurl created itself (HTTP/2 server push).
pub fn easy_from_libcurl(p: *mut sys::CURL) -> Option<EasyPtr> {
    NonNull::new(p).map(EasyPtr)
}

pub fn easy_init() -> Option<EasyPtr> {
    // SAFETY: plain constructor; NULL on allocation failure.
    NonNull::new(unsafe { sys::curl_easy_init() }).map(EasyPtr)
}

pub fn easy_cleanup(h: EasyPtr) {
    // SAFETY: the owner calls this once, after removing the handle from any
    // multi and after dropping its own copy of the pointer.
    unsafe { sys::curl_easy_cleanup(h.as_ptr()) }
}

pub fn easy_reset(h: EasyPtr) {
    // SAFETY: live handle (module invariant).
    unsafe { sys::curl_easy_reset(h.as_ptr()) }
}

pub fn easy_perform(h: EasyPtr) -> CURLcode {
    // SAFETY: live handle, not in a multi (checked by the caller).
    unsafe { sys::curl_easy_perform(h.as_ptr()) as CURLcode }
}

pub fn easy_pause(h: EasyPtr, mask: c_int) -> CURLcode {
    // SAFETY: live handle.
    unsafe { sys::curl_easy_pause(h.as_ptr(), mask) as CURLcode }
}

pub fn setopt_long(h: EasyPtr, opt: i32, v: c_long) -> CURLcode {
    // SAFETY: live handle; a long-typed option receives a long.
    unsafe { sys::curl_easy_setopt(h.as_ptr(), opt as sys::CURLoption, v) as CURLcode }
}

pub fn setopt_off_t(h: EasyPtr, opt: i32, v: i64) -> CURLcode {
    // SAFETY: live handle; an off_t option receives a curl_off_t (i64).
    unsafe {
        sys::curl_easy_setopt(h.as_ptr(), opt as sys::CURLoption, v as sys::curl_off_t) as CURLcode
    }
}

/// A pointer-typed option. The caller keeps `p` alive for as long as libcurl
/// may read it (libcurl copies strings itself, except POSTFIELDS; slists and
/// callback data are kept by the owner).
pub fn setopt_ptr(h: EasyPtr, opt: i32, p: *const c_void) -> CURLcode {
    // SAFETY: live handle; the option takes a pointer (see the doc comment for
    // the lifetime contract).
    unsafe { sys::curl_easy_setopt(h.as_ptr(), opt as sys::CURLoption, p) as CURLcode }
}

extern "C" {
    // glibc's standard streams: libcurl's defaults for WRITEDATA / READDATA.
    static stdout: *mut libc::FILE;
    static stdin: *mut libc::FILE;
}

/// The C `stdout` stream (libcurl's default WRITEDATA).
pub fn c_stdout() -> *const c_void {
    // SAFETY: reading the process-wide stream pointer glibc initialises.
    unsafe { stdout as *const c_void }
}

/// The C `stdin` stream (libcurl's default READDATA).
pub fn c_stdin() -> *const c_void {
    // SAFETY: as c_stdout.
    unsafe { stdin as *const c_void }
}

pub fn setopt_cstr(h: EasyPtr, opt: i32, s: Option<&CStr>) -> CURLcode {
    setopt_ptr(
        h,
        opt,
        s.map_or(ptr::null(), |c| c.as_ptr() as *const c_void),
    )
}

pub fn getinfo_long(h: EasyPtr, info: i32) -> Result<c_long, CURLcode> {
    let mut v: c_long = 0;
    // SAFETY: live handle; the info id has the LONG type bits, so libcurl
    // writes one long.
    let rc = unsafe {
        sys::curl_easy_getinfo(h.as_ptr(), info as sys::CURLINFO, &mut v as *mut c_long) as CURLcode
    };
    if rc == CURLE_OK {
        Ok(v)
    } else {
        Err(rc)
    }
}

pub fn getinfo_off_t(h: EasyPtr, info: i32) -> Result<i64, CURLcode> {
    let mut v: sys::curl_off_t = 0;
    // SAFETY: OFF_T-typed info: libcurl writes one curl_off_t.
    let rc = unsafe {
        sys::curl_easy_getinfo(
            h.as_ptr(),
            info as sys::CURLINFO,
            &mut v as *mut sys::curl_off_t,
        ) as CURLcode
    };
    if rc == CURLE_OK {
        Ok(v)
    } else {
        Err(rc)
    }
}

pub fn getinfo_double(h: EasyPtr, info: i32) -> Result<f64, CURLcode> {
    let mut v: f64 = 0.0;
    // SAFETY: DOUBLE-typed info: libcurl writes one double.
    let rc = unsafe {
        sys::curl_easy_getinfo(h.as_ptr(), info as sys::CURLINFO, &mut v as *mut f64) as CURLcode
    };
    if rc == CURLE_OK {
        Ok(v)
    } else {
        Err(rc)
    }
}

pub fn getinfo_socket(h: EasyPtr, info: i32) -> Result<i64, CURLcode> {
    let mut v: sys::curl_socket_t = -1;
    // SAFETY: SOCKET-typed info: libcurl writes one curl_socket_t.
    let rc = unsafe {
        sys::curl_easy_getinfo(
            h.as_ptr(),
            info as sys::CURLINFO,
            &mut v as *mut sys::curl_socket_t,
        ) as CURLcode
    };
    if rc == CURLE_OK {
        Ok(v as i64)
    } else {
        Err(rc)
    }
}

pub fn getinfo_string(h: EasyPtr, info: i32) -> Result<Option<Vec<u8>>, CURLcode> {
    let mut v: *const c_char = ptr::null();
    // SAFETY: STRING-typed info: libcurl writes one char pointer (owned by
    // the handle); we copy it before any other call.
    let rc = unsafe {
        sys::curl_easy_getinfo(
            h.as_ptr(),
            info as sys::CURLINFO,
            &mut v as *mut *const c_char,
        ) as CURLcode
    };
    if rc != CURLE_OK {
        return Err(rc);
    }
    if v.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, NUL-terminated, owned by the live handle.
    Ok(Some(unsafe { CStr::from_ptr(v) }.to_bytes().to_vec()))
}

/// SLIST-typed infos that hand out a list the caller frees.
pub fn getinfo_slist(h: EasyPtr, info: i32) -> Result<Vec<Vec<u8>>, CURLcode> {
    let mut v: *mut sys::curl_slist = ptr::null_mut();
    // SAFETY: SLIST-typed info (COOKIELIST, SSL_ENGINES): libcurl writes one
    // list pointer that we own and free below.
    let rc = unsafe {
        sys::curl_easy_getinfo(
            h.as_ptr(),
            info as sys::CURLINFO,
            &mut v as *mut *mut sys::curl_slist,
        ) as CURLcode
    };
    if rc != CURLE_OK {
        return Err(rc);
    }
    let out = slist_to_vec(v);
    // SAFETY: the list was allocated by libcurl for us.
    unsafe { sys::curl_slist_free_all(v) };
    Ok(out)
}

fn slist_to_vec(mut p: *mut sys::curl_slist) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !p.is_null() {
        // SAFETY: walking a well-formed list libcurl or we built.
        let node = unsafe { &*p };
        if !node.data.is_null() {
            // SAFETY: node strings are NUL-terminated.
            out.push(unsafe { CStr::from_ptr(node.data) }.to_bytes().to_vec());
        }
        p = node.next;
    }
    out
}

/// An owned `curl_slist`.
pub struct Slist(*mut sys::curl_slist);

impl Slist {
    pub fn new(items: &[CString]) -> Option<Slist> {
        let mut l: *mut sys::curl_slist = ptr::null_mut();
        for s in items {
            // SAFETY: curl_slist_append copies the string; on failure it
            // returns NULL and leaves the old list for us to free.
            let n = unsafe { sys::curl_slist_append(l, s.as_ptr()) };
            if n.is_null() {
                drop(Slist(l));
                return None;
            }
            l = n;
        }
        Some(Slist(l))
    }
    pub fn as_ptr(&self) -> *const c_void {
        self.0 as *const c_void
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

// ---------------------------------------------------------------- multi

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MultiPtr(NonNull<sys::CURLM>);

pub fn multi_init() -> Option<MultiPtr> {
    // SAFETY: plain constructor.
    NonNull::new(unsafe { sys::curl_multi_init() }).map(MultiPtr)
}

pub fn multi_cleanup(m: MultiPtr) -> CURLMcode {
    // SAFETY: the owner calls this once, after clearing the callbacks and
    // removing every easy handle.
    unsafe { sys::curl_multi_cleanup(m.0.as_ptr()) }
}

pub fn multi_setopt_long(m: MultiPtr, opt: i32, v: c_long) -> CURLMcode {
    // SAFETY: live multi; long option.
    unsafe { sys::curl_multi_setopt(m.0.as_ptr(), opt as sys::CURLMoption, v) }
}

pub fn multi_setopt_off_t(m: MultiPtr, opt: i32, v: i64) -> CURLMcode {
    // SAFETY: live multi; off_t option.
    unsafe { sys::curl_multi_setopt(m.0.as_ptr(), opt as sys::CURLMoption, v as sys::curl_off_t) }
}

/// Pointer options; the caller keeps the pointee alive while libcurl may use it.
pub fn multi_setopt_ptr(m: MultiPtr, opt: i32, p: *const c_void) -> CURLMcode {
    // SAFETY: live multi; pointer option (lifetime contract in the doc).
    unsafe { sys::curl_multi_setopt(m.0.as_ptr(), opt as sys::CURLMoption, p) }
}

pub fn multi_set_socket_cb(m: MultiPtr, f: Option<SocketCb>, data: *const c_void) -> CURLMcode {
    let fp = f.map_or(ptr::null(), |f| f as *const c_void);
    let rc = multi_setopt_ptr(m, sys::CURLMOPT_SOCKETFUNCTION as i32, fp);
    if rc != sys::CURLM_OK {
        return rc;
    }
    multi_setopt_ptr(m, sys::CURLMOPT_SOCKETDATA as i32, data)
}

pub fn multi_set_timer_cb(m: MultiPtr, f: Option<TimerCb>, data: *const c_void) -> CURLMcode {
    let fp = f.map_or(ptr::null(), |f| f as *const c_void);
    let rc = multi_setopt_ptr(m, sys::CURLMOPT_TIMERFUNCTION as i32, fp);
    if rc != sys::CURLM_OK {
        return rc;
    }
    multi_setopt_ptr(m, sys::CURLMOPT_TIMERDATA as i32, data)
}

pub fn multi_add(m: MultiPtr, e: EasyPtr) -> CURLMcode {
    // SAFETY: both live.
    unsafe { sys::curl_multi_add_handle(m.0.as_ptr(), e.as_ptr()) }
}

pub fn multi_remove(m: MultiPtr, e: EasyPtr) -> CURLMcode {
    // SAFETY: both live.
    unsafe { sys::curl_multi_remove_handle(m.0.as_ptr(), e.as_ptr()) }
}

pub fn multi_socket_action(
    m: MultiPtr,
    fd: sys::curl_socket_t,
    mask: c_int,
) -> Result<c_int, CURLMcode> {
    let mut running: c_int = 0;
    // SAFETY: live multi; out-pointer to a local.
    let rc = unsafe { sys::curl_multi_socket_action(m.0.as_ptr(), fd, mask, &mut running) };
    if rc == sys::CURLM_OK {
        Ok(running)
    } else {
        Err(rc)
    }
}

pub fn multi_perform(m: MultiPtr) -> Result<c_int, CURLMcode> {
    let mut running: c_int = 0;
    // SAFETY: live multi; out-pointer to a local.
    let rc = unsafe { sys::curl_multi_perform(m.0.as_ptr(), &mut running) };
    if rc == sys::CURLM_OK {
        Ok(running)
    } else {
        Err(rc)
    }
}

pub fn multi_timeout(m: MultiPtr) -> Result<c_long, CURLMcode> {
    let mut ms: c_long = -1;
    // SAFETY: live multi; out-pointer to a local.
    let rc = unsafe { sys::curl_multi_timeout(m.0.as_ptr(), &mut ms) };
    if rc == sys::CURLM_OK {
        Ok(ms)
    } else {
        Err(rc)
    }
}

pub fn multi_assign(m: MultiPtr, fd: sys::curl_socket_t, p: *mut c_void) -> CURLMcode {
    // SAFETY: live multi; p is an opaque marker libcurl only stores.
    unsafe { sys::curl_multi_assign(m.0.as_ptr(), fd, p) }
}

pub fn multi_wakeup(m: MultiPtr) -> CURLMcode {
    // SAFETY: live multi.
    unsafe { curl_multi_wakeup(m.0.as_ptr()) }
}

/// `curl_multi_wait` (poll = false) or `curl_multi_poll` (poll = true).
pub fn multi_wait(
    m: MultiPtr,
    fds: &mut [sys::curl_waitfd],
    ms: c_int,
    poll: bool,
) -> Result<c_int, CURLMcode> {
    let mut n: c_int = 0;
    let p = if fds.is_empty() {
        ptr::null_mut()
    } else {
        fds.as_mut_ptr()
    };
    // SAFETY: live multi; the array and its length match.
    let rc = unsafe {
        if poll {
            curl_multi_poll(m.0.as_ptr(), p, fds.len() as c_uint, ms, &mut n)
        } else {
            sys::curl_multi_wait(m.0.as_ptr(), p, fds.len() as c_uint, ms, &mut n)
        }
    };
    if rc == sys::CURLM_OK {
        Ok(n)
    } else {
        Err(rc)
    }
}

/// One finished transfer from `curl_multi_info_read`.
pub struct Msg {
    pub msg: c_int,
    pub easy: *mut sys::CURL,
    pub result: CURLcode,
    pub remaining: c_int,
}

pub fn multi_info_read(m: MultiPtr) -> Option<Msg> {
    let mut remaining: c_int = 0;
    // SAFETY: live multi; out-pointer to a local.
    let p = unsafe { sys::curl_multi_info_read(m.0.as_ptr(), &mut remaining) };
    if p.is_null() {
        return None;
    }
    // SAFETY: p points to a CURLMsg owned by the multi, valid until the next
    // call on it; `data` is a C union whose CURLcode member sits at offset 0.
    let (msg, easy, result) = unsafe {
        let m = &*p;
        let result = *(&m.data as *const *mut c_void as *const sys::CURLcode) as CURLcode;
        (m.msg as c_int, m.easy_handle, result)
    };
    Some(Msg {
        msg,
        easy,
        result,
        remaining,
    })
}

// ---------------------------------------------------------------- epoll

pub fn epoll_create() -> std::io::Result<c_int> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

pub fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, events: u32) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u32 as u64,
    };
    // SAFETY: ep is our epoll descriptor; ev is a local.
    let rc = unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn epoll_wait(
    ep: c_int,
    buf: &mut Vec<libc::epoll_event>,
    ms: c_int,
) -> std::io::Result<usize> {
    let cap = buf.capacity().max(1);
    buf.clear();
    // SAFETY: the kernel writes at most `cap` events into the spare capacity;
    // set_len below covers exactly what it reported.
    let n = unsafe { libc::epoll_wait(ep, buf.as_mut_ptr(), cap as c_int, ms) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: n ≤ cap elements were initialised by epoll_wait.
    unsafe { buf.set_len(n as usize) };
    Ok(n as usize)
}

pub fn close_fd(fd: c_int) {
    // SAFETY: closes a descriptor this module opened and owns.
    unsafe {
        libc::close(fd);
    }
}

/// The `CURLOPT_ERRORBUFFER` of an easy handle.
pub struct ErrBuf(Box<std::cell::UnsafeCell<[u8; sys::CURL_ERROR_SIZE]>>);

impl Default for ErrBuf {
    fn default() -> Self {
        ErrBuf(Box::new(std::cell::UnsafeCell::new(
            [0; sys::CURL_ERROR_SIZE],
        )))
    }
}

impl ErrBuf {
    pub fn ptr(&self) -> *const c_void {
        self.0.get() as *const c_void
    }
    pub fn clear(&self) {
        // SAFETY: libcurl writes the buffer only inside calls on its handle;
        // the module is single-threaded, so no call is running now.
        unsafe { (*self.0.get())[0] = 0 };
    }
    pub fn read(&self) -> Option<String> {
        // SAFETY: as in clear; libcurl keeps the buffer NUL-terminated.
        let b = unsafe { &*self.0.get() };
        let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
        if end == 0 {
            None
        } else {
            Some(String::from_utf8_lossy(&b[..end]).trim_end().to_string())
        }
    }
}

// ------------------------------------------------------------ more easy

/// `struct curl_khkey` (SSH key callback).
#[repr(C)]
pub struct KhKey {
    pub key: *const c_char,
    pub len: usize,
    pub keytype: c_int,
}

/// `struct curl_hstsentry`. `includeSubDomains` is a 1-bit bitfield; GCC
/// puts it in the byte at offset 16 and `expire` right after it (offset 17,
/// size 40): bit 0 of `flags` is the bitfield.
#[repr(C)]
pub struct HstsEntry {
    pub name: *mut c_char,
    pub namelen: usize,
    pub flags: u8,
    pub expire: [c_char; 18],
}

// The layout gcc gives the C struct on 64-bit Linux (checked with offsetof).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const _: () = assert!(
    std::mem::offset_of!(HstsEntry, expire) == 17 && std::mem::size_of::<HstsEntry>() == 40
);

/// `struct curl_index`.
#[repr(C)]
pub struct HstsIndex {
    pub index: usize,
    pub total: usize,
}

pub use sys::{curl_fileinfo as FileInfo, curl_slist, curl_sockaddr as SockAddr};

pub fn setopt_blob(h: EasyPtr, opt: i32, data: Option<&[u8]>) -> CURLcode {
    match data {
        None => setopt_ptr(h, opt, ptr::null()),
        Some(b) => {
            let blob = sys::curl_blob {
                data: b.as_ptr() as *mut c_void,
                len: b.len(),
                flags: sys::CURL_BLOB_COPY,
            };
            // CURL_BLOB_COPY: libcurl copies the bytes during this call.
            setopt_ptr(h, opt, &blob as *const sys::curl_blob as *const c_void)
        }
    }
}

/// Copies a C string that libcurl hands to a callback (may be NULL).
pub fn c_bytes(p: *const c_char) -> Option<Vec<u8>> {
    if p.is_null() {
        None
    } else {
        // SAFETY: libcurl passes NUL-terminated strings valid for the call.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    }
}

/// Copies `len` bytes libcurl hands to a callback.
pub fn c_slice<'a>(p: *const c_char, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: libcurl passes `len` readable bytes at p, valid for the
        // duration of the callback that receives them.
        unsafe { std::slice::from_raw_parts(p as *const u8, len) }
    }
}

/// Writes `src` into a buffer libcurl gave a callback (`cap` bytes at `dst`).
pub fn fill(dst: *mut c_char, cap: usize, src: &[u8]) -> usize {
    let n = src.len().min(cap);
    if n > 0 && !dst.is_null() {
        // SAFETY: libcurl's buffer has room for `cap` bytes; we write n ≤ cap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, n) };
    }
    n
}

/// Appends to a list libcurl owns and frees (the trailer callback's
/// `struct curl_slist **`).
pub fn slist_append_into(list: *mut *mut sys::curl_slist, items: &[CString]) {
    if list.is_null() {
        return;
    }
    // SAFETY: libcurl passes a valid pointer to its list for this call.
    let mut l = unsafe { *list };
    for s in items {
        // SAFETY: curl_slist_append copies the string.
        let n = unsafe { sys::curl_slist_append(l, s.as_ptr()) };
        if n.is_null() {
            break;
        }
        l = n;
    }
    // SAFETY: as above.
    unsafe { *list = l };
}

/// `curl_easy_escape` / `curl_easy_unescape` take an `int` length where 0
/// means "call strlen": an empty input never reaches libcurl (its result
/// is empty), and one longer than `INT_MAX` is refused (`Err`).
fn escape_len(s: &[u8]) -> Result<c_int, TooLong> {
    c_int::try_from(s.len()).map_err(|_| TooLong)
}

/// An input longer than a C `int` can describe.
pub struct TooLong;

/// `escape` / `unescape`: the result, `None` when libcurl fails (memory).
pub type Escaped = Result<Option<Vec<u8>>, TooLong>;

pub fn escape(h: EasyPtr, s: &[u8]) -> Escaped {
    if s.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let n = escape_len(s)?;
    // SAFETY: live handle; (ptr, n) describe `s`, n > 0; libcurl returns a
    // new NUL-terminated string we free with curl_free.
    unsafe {
        let p = sys::curl_easy_escape(h.as_ptr(), s.as_ptr() as *const c_char, n);
        if p.is_null() {
            return Ok(None);
        }
        let out = CStr::from_ptr(p).to_bytes().to_vec();
        sys::curl_free(p as *mut c_void);
        Ok(Some(out))
    }
}

pub fn unescape(h: EasyPtr, s: &[u8]) -> Escaped {
    if s.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let len = escape_len(s)?;
    let mut n: c_int = 0;
    // SAFETY: as escape; libcurl reports the decoded length (may contain NUL).
    unsafe {
        let p = sys::curl_easy_unescape(h.as_ptr(), s.as_ptr() as *const c_char, len, &mut n);
        if p.is_null() {
            return Ok(None);
        }
        let out = std::slice::from_raw_parts(p as *const u8, n.max(0) as usize).to_vec();
        sys::curl_free(p as *mut c_void);
        Ok(Some(out))
    }
}

pub fn easy_duphandle(h: EasyPtr) -> Option<EasyPtr> {
    // SAFETY: live handle; returns a new handle or NULL.
    NonNull::new(unsafe { sys::curl_easy_duphandle(h.as_ptr()) }).map(EasyPtr)
}

pub fn easy_upkeep(h: EasyPtr) -> CURLcode {
    // SAFETY: live handle.
    unsafe { curl_easy_upkeep(h.as_ptr()) as CURLcode }
}

pub fn easy_send(h: EasyPtr, data: &[u8]) -> Result<usize, CURLcode> {
    let mut n: usize = 0;
    // SAFETY: live handle; (ptr, len) describe `data`.
    let rc = unsafe {
        sys::curl_easy_send(
            h.as_ptr(),
            data.as_ptr() as *const c_void,
            data.len(),
            &mut n,
        )
    } as CURLcode;
    if rc == CURLE_OK {
        Ok(n)
    } else {
        Err(rc)
    }
}

pub fn easy_recv(h: EasyPtr, buf: &mut [u8]) -> Result<usize, CURLcode> {
    let mut n: usize = 0;
    // SAFETY: live handle; libcurl writes at most buf.len() bytes.
    let rc = unsafe {
        sys::curl_easy_recv(
            h.as_ptr(),
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
            &mut n,
        )
    } as CURLcode;
    if rc == CURLE_OK {
        Ok(n)
    } else {
        Err(rc)
    }
}

/// `CURLINFO_CERTINFO`: one list of "Name:value" strings per certificate.
pub fn getinfo_certinfo(h: EasyPtr, info: i32) -> Result<Vec<Vec<Vec<u8>>>, CURLcode> {
    let mut p: *mut sys::curl_certinfo = ptr::null_mut();
    // SAFETY: CERTINFO writes a pointer to a struct owned by the handle.
    let rc = unsafe {
        sys::curl_easy_getinfo(
            h.as_ptr(),
            info as sys::CURLINFO,
            &mut p as *mut *mut sys::curl_certinfo,
        )
    } as CURLcode;
    if rc != CURLE_OK {
        return Err(rc);
    }
    let mut out = Vec::new();
    if p.is_null() {
        return Ok(out);
    }
    // SAFETY: non-null struct owned by the handle: num_of_certs lists.
    let ci = unsafe { &*p };
    for i in 0..ci.num_of_certs.max(0) as usize {
        // SAFETY: certinfo has num_of_certs entries.
        let l = unsafe { *ci.certinfo.add(i) };
        out.push(slist_to_vec(l));
    }
    Ok(out)
}

pub fn close_socket(fd: sys::curl_socket_t) {
    // SAFETY: closes a descriptor libcurl hands to the close-socket callback,
    // which makes closing it our job.
    unsafe {
        libc::close(fd);
    }
}

pub fn open_socket(family: c_int, socktype: c_int, protocol: c_int) -> sys::curl_socket_t {
    // SAFETY: plain syscall.
    unsafe { libc::socket(family, socktype | libc::SOCK_CLOEXEC, protocol) }
}

/// "ip", port of a socket address libcurl hands to the open-socket callback.
pub fn sockaddr_parts(a: &sys::curl_sockaddr) -> (String, u16) {
    let base = &a.addr as *const libc::sockaddr;
    match a.family {
        libc::AF_INET if a.addrlen as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in.
            let sin = unsafe { &*(base as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            (ip.to_string(), u16::from_be(sin.sin_port))
        }
        libc::AF_INET6 if a.addrlen as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6 (libcurl's
            // storage is large enough for the length it reports).
            let sin6 = unsafe { &*(base as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            (ip.to_string(), u16::from_be(sin6.sin6_port))
        }
        _ => (String::new(), 0),
    }
}

// ------------------------------------------------------------ share, url, mime

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SharePtr(NonNull<sys::CURLSH>);

pub fn share_init() -> Option<SharePtr> {
    // SAFETY: plain constructor.
    NonNull::new(unsafe { sys::curl_share_init() }).map(SharePtr)
}

pub fn share_cleanup(s: SharePtr) -> c_int {
    // SAFETY: the owner calls this once, when no easy handle uses the share.
    unsafe { sys::curl_share_cleanup(s.0.as_ptr()) as c_int }
}

pub fn share_setopt_long(s: SharePtr, opt: c_int, v: c_long) -> c_int {
    // SAFETY: live share; SHARE/UNSHARE take a long.
    unsafe { sys::curl_share_setopt(s.0.as_ptr(), opt as sys::CURLSHoption, v) as c_int }
}

impl SharePtr {
    pub fn as_ptr(self) -> *const c_void {
        self.0.as_ptr() as *const c_void
    }
}

#[repr(C)]
pub struct CurlU {
    _private: [u8; 0],
}
#[repr(C)]
pub struct CurlMime {
    _private: [u8; 0],
}
#[repr(C)]
pub struct CurlMimePart {
    _private: [u8; 0],
}

pub type MimeReadCb = extern "C" fn(*mut c_char, usize, usize, *mut c_void) -> usize;
pub type MimeSeekCb = extern "C" fn(*mut c_void, sys::curl_off_t, c_int) -> c_int;
pub type MimeFreeCb = extern "C" fn(*mut c_void);

extern "C" {
    fn curl_url() -> *mut CurlU;
    fn curl_url_cleanup(h: *mut CurlU);
    fn curl_url_dup(h: *const CurlU) -> *mut CurlU;
    fn curl_url_get(h: *const CurlU, what: c_int, part: *mut *mut c_char, flags: c_uint) -> c_int;
    fn curl_url_set(h: *mut CurlU, what: c_int, part: *const c_char, flags: c_uint) -> c_int;
    fn curl_url_strerror(code: c_int) -> *const c_char;
    fn curl_mime_init(easy: *mut sys::CURL) -> *mut CurlMime;
    fn curl_mime_free(mime: *mut CurlMime);
    fn curl_mime_addpart(mime: *mut CurlMime) -> *mut CurlMimePart;
    fn curl_mime_name(part: *mut CurlMimePart, name: *const c_char) -> sys::CURLcode;
    fn curl_mime_filename(part: *mut CurlMimePart, name: *const c_char) -> sys::CURLcode;
    fn curl_mime_type(part: *mut CurlMimePart, t: *const c_char) -> sys::CURLcode;
    fn curl_mime_encoder(part: *mut CurlMimePart, e: *const c_char) -> sys::CURLcode;
    fn curl_mime_data(part: *mut CurlMimePart, data: *const c_char, size: usize) -> sys::CURLcode;
    fn curl_mime_filedata(part: *mut CurlMimePart, name: *const c_char) -> sys::CURLcode;
    fn curl_mime_data_cb(
        part: *mut CurlMimePart,
        size: sys::curl_off_t,
        read: Option<MimeReadCb>,
        seek: Option<MimeSeekCb>,
        free: Option<MimeFreeCb>,
        arg: *mut c_void,
    ) -> sys::CURLcode;
    fn curl_mime_subparts(part: *mut CurlMimePart, sub: *mut CurlMime) -> sys::CURLcode;
    fn curl_mime_headers(
        part: *mut CurlMimePart,
        headers: *mut sys::curl_slist,
        take: c_int,
    ) -> sys::CURLcode;
}

pub fn url_strerror(code: c_int) -> String {
    // SAFETY: returns a static string for any code.
    cstr_opt(unsafe { curl_url_strerror(code) }).unwrap_or_default()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UrlPtr(NonNull<CurlU>);

impl UrlPtr {
    pub fn as_ptr(self) -> *const c_void {
        self.0.as_ptr() as *const c_void
    }
}

pub fn url_new() -> Option<UrlPtr> {
    // SAFETY: plain constructor.
    NonNull::new(unsafe { curl_url() }).map(UrlPtr)
}

pub fn url_cleanup(u: UrlPtr) {
    // SAFETY: the owner calls this once, when no easy handle uses it.
    unsafe { curl_url_cleanup(u.0.as_ptr()) }
}

pub fn url_dup(u: UrlPtr) -> Option<UrlPtr> {
    // SAFETY: live handle; returns a new one or NULL.
    NonNull::new(unsafe { curl_url_dup(u.0.as_ptr()) }).map(UrlPtr)
}

pub fn url_set(u: UrlPtr, part: c_int, value: Option<&CStr>, flags: c_uint) -> c_int {
    let p = value.map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: live handle; libcurl copies the string.
    unsafe { curl_url_set(u.0.as_ptr(), part, p, flags) }
}

pub fn url_get(u: UrlPtr, part: c_int, flags: c_uint) -> Result<Vec<u8>, c_int> {
    let mut p: *mut c_char = ptr::null_mut();
    // SAFETY: live handle; libcurl allocates the result, freed below.
    let rc = unsafe { curl_url_get(u.0.as_ptr(), part, &mut p, flags) };
    if rc != 0 {
        return Err(rc);
    }
    let out = c_bytes(p).unwrap_or_default();
    // SAFETY: allocated by libcurl for us.
    unsafe { sys::curl_free(p as *mut c_void) };
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MimePtr(NonNull<CurlMime>);

impl MimePtr {
    pub fn as_ptr(self) -> *const c_void {
        self.0.as_ptr() as *const c_void
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PartPtr(NonNull<CurlMimePart>);

impl PartPtr {
    pub fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
}

pub fn mime_init(e: EasyPtr) -> Option<MimePtr> {
    // SAFETY: live easy handle.
    NonNull::new(unsafe { curl_mime_init(e.as_ptr()) }).map(MimePtr)
}

pub fn mime_free(m: MimePtr) {
    // SAFETY: the owner frees a top-level mime once, when no easy uses it;
    // this frees its parts and attached sub-mimes too.
    unsafe { curl_mime_free(m.0.as_ptr()) }
}

pub fn mime_addpart(m: MimePtr) -> Option<PartPtr> {
    // SAFETY: live mime; the part belongs to it.
    NonNull::new(unsafe { curl_mime_addpart(m.0.as_ptr()) }).map(PartPtr)
}

/// Name, filename, type or encoder of a part (libcurl copies the string).
pub fn part_set_str(p: PartPtr, which: u8, v: Option<&CStr>) -> CURLcode {
    let s = v.map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: live part (its mime is alive, checked by the caller).
    unsafe {
        (match which {
            b'n' => curl_mime_name(p.0.as_ptr(), s),
            b'f' => curl_mime_filename(p.0.as_ptr(), s),
            b't' => curl_mime_type(p.0.as_ptr(), s),
            b'd' => curl_mime_filedata(p.0.as_ptr(), s),
            _ => curl_mime_encoder(p.0.as_ptr(), s),
        }) as CURLcode
    }
}

pub fn part_data(p: PartPtr, data: &[u8]) -> CURLcode {
    // SAFETY: live part; libcurl copies `data`.
    unsafe { curl_mime_data(p.0.as_ptr(), data.as_ptr() as *const c_char, data.len()) as CURLcode }
}

/// Attaches callbacks with `arg`; libcurl calls `free(arg)` when the part's
/// data is replaced or the part is freed.
pub fn part_data_cb(
    p: PartPtr,
    size: i64,
    read: MimeReadCb,
    seek: MimeSeekCb,
    free: MimeFreeCb,
    arg: *mut c_void,
) -> CURLcode {
    // SAFETY: live part; arg ownership passes to libcurl's free callback.
    unsafe {
        curl_mime_data_cb(p.0.as_ptr(), size, Some(read), Some(seek), Some(free), arg) as CURLcode
    }
}

pub fn part_subparts(p: PartPtr, sub: MimePtr) -> CURLcode {
    // SAFETY: live part and mime; the part takes ownership of `sub`.
    unsafe { curl_mime_subparts(p.0.as_ptr(), sub.0.as_ptr()) as CURLcode }
}

pub fn part_headers(p: PartPtr, items: &[CString]) -> CURLcode {
    let l = Slist::new(items);
    let Some(l) = l else {
        return sys::CURLE_OUT_OF_MEMORY as CURLcode;
    };
    let raw_list = l.0;
    std::mem::forget(l);
    // SAFETY: live part; take_ownership = 1 hands the list to libcurl.
    let rc = unsafe { curl_mime_headers(p.0.as_ptr(), raw_list, 1) as CURLcode };
    if rc != CURLE_OK {
        drop(Slist(raw_list));
    }
    rc
}
