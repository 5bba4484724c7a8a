//! The FFI layer: every call into libcurl and epoll, with no Lua in sight.
//!
//! Each libcurl handle has an owning type (`Easy`, `Multi`, `Share`, `Url`,
//! `Mime`) that is neither `Copy` nor `Clone` and frees the handle in its
//! `Drop`, so safe code cannot free a handle twice or use it after the free.
//! Whatever libcurl keeps a pointer to (lists, bodies, the error buffer,
//! callback data, share/URL/mime objects) is owned by the handle's owner
//! for as long as libcurl may read it. Callback data is a box holding a
//! `Weak` reference to the handler, owned by the handle, so a callback can
//! never reach a handler that is gone.
//!
//! Functions that take raw pointers are `unsafe fn` with a `# Safety`
//! section; everything else here is safe to call with any argument.
//! libcurl bugs that safe calls could reach are guarded here (refused with
//! [`Fault::Refused`] or worked around); docs/reference.md lists them.

pub mod consts;
mod easy;
mod easy_cb;
mod epoll;
mod guards;
mod mime;
mod multi;
mod share;
mod url;
mod ws;

pub use easy::{
    Easy, INFO_DOUBLE, INFO_LONG, INFO_OFF_T, INFO_SLIST, INFO_SOCKET, INFO_STRING, INFO_TYPEMASK,
};
pub use easy_cb::{
    Cb, EasyHandler, FileInfo, HstsRead, HstsWrite, KhKey, OutBuf, SockAddr, Stream, TrailerList,
};
pub use epoll::Epoll;
pub use mime::{Mime, MimeState, Part, PartHandler, WeakMime};
pub use multi::{Msg, Multi, MultiHandler, Pushed, WaitFd};
pub use share::Share;
pub use url::Url;
pub use ws::WsFrame;

use curl_sys as sys;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::{Once, OnceLock};

/// Easy result codes as plain integers (curl-sys types them per platform).
pub type CURLcode = i32;
pub const CURLE_OK: CURLcode = 0;
pub use sys::CURLMcode;
pub const CURLM_OK: CURLMcode = sys::CURLM_OK;
/// Missing from curl-sys' multi codes.
pub const CURLM_ADDED_ALREADY: CURLMcode = 7;
pub const CURLM_RECURSIVE_API_CALL: CURLMcode = 8;
pub const CURLM_ABORTED_BY_CALLBACK: CURLMcode = 11;

/// Why a call did not happen or failed.
#[derive(Debug)]
pub enum Fault {
    /// libcurl's code.
    Code(CURLcode),
    /// Refused before libcurl was called: the reason (a libcurl bug the
    /// call would reach, or an object in the wrong state).
    Refused(String),
    /// A multi call's `CURLMcode`.
    Multi(CURLMcode),
}

pub type Res<T> = Result<T, Fault>;

fn code(rc: CURLcode) -> Res<()> {
    if rc == CURLE_OK {
        Ok(())
    } else {
        Err(Fault::Code(rc))
    }
}

fn refused<T>(why: impl Into<String>) -> Res<T> {
    Err(Fault::Refused(why.into()))
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

/// Copies a NUL-terminated string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for this call.
unsafe fn cstr_bytes(p: *const c_char) -> Option<Vec<u8>> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec())
    }
}

/// A static string libcurl returns (version texts, error texts).
fn static_str(p: *const c_char) -> String {
    // SAFETY: only called with libcurl's static, NUL-terminated strings.
    unsafe { cstr_bytes(p) }
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub fn easy_strerror(code: CURLcode) -> String {
    // SAFETY: accepts any value and returns a static string.
    static_str(unsafe { sys::curl_easy_strerror(code as sys::CURLcode) })
}

pub fn multi_strerror(code: CURLMcode) -> String {
    // SAFETY: as curl_easy_strerror.
    static_str(unsafe { sys::curl_multi_strerror(code) })
}

pub fn share_strerror(code: c_int) -> String {
    // SAFETY: as curl_easy_strerror.
    static_str(unsafe { sys::curl_share_strerror(code as sys::CURLSHcode) })
}

pub fn url_strerror(code: c_int) -> String {
    // SAFETY: as curl_easy_strerror.
    static_str(unsafe { url::curl_url_strerror(code) })
}

pub fn version() -> String {
    // SAFETY: returns a static string.
    static_str(unsafe { sys::curl_version() })
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
}

fn opt_static(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| static_str(p))
}

fn version_data() -> &'static sys::curl_version_info_data {
    // SAFETY: CURLVERSION_FOURTH asks for the struct layout of the headers
    // curl-sys declares; libcurl returns a pointer to static data.
    unsafe { &*sys::curl_version_info(sys::CURLVERSION_FOURTH) }
}

pub fn version_info() -> VersionInfo {
    let d = version_data();
    let mut protocols = Vec::new();
    if !d.protocols.is_null() {
        for i in 0.. {
            // SAFETY: protocols is a NULL-terminated array of static strings.
            let p = unsafe { *d.protocols.add(i) };
            if p.is_null() {
                break;
            }
            protocols.push(static_str(p));
        }
    }
    let n = d.version_num;
    VersionInfo {
        version: static_str(d.version),
        version_num: n,
        host: static_str(d.host),
        features: d.features as i64,
        ssl_version: opt_static(d.ssl_version),
        libz_version: opt_static(d.libz_version),
        protocols,
        ares: opt_static(d.ares),
        libidn: opt_static(d.libidn),
        libssh_version: opt_static(d.libssh_version),
        // The fields below exist from the struct version we asked for.
        brotli_version: if n >= 0x073900 {
            opt_static(d.brotli_version)
        } else {
            None
        },
        nghttp2_version: if n >= 0x074200 {
            opt_static(d.nghttp2_version)
        } else {
            None
        },
    }
}

/// Runs a handler's work for a trampoline: a panic never unwinds into
/// libcurl; its text goes to `panicked` (itself guarded) and `fail` is
/// returned.
pub(crate) fn unwind_guard<T>(f: impl FnOnce() -> T, panicked: impl FnOnce(String), fail: T) -> T {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let _ = catch_unwind(AssertUnwindSafe(|| panicked(msg)));
            fail
        }
    }
}

/// Runtime libcurl version number (0xXXYYZZ), asked once: each
/// `curl_version_info` call rebuilds its text (thousands of instructions).
pub fn version_num() -> u32 {
    static NUM: OnceLock<u32> = OnceLock::new();
    *NUM.get_or_init(|| version_data().version_num)
}

/// The linked libcurl is older than `num` (0xXXYYZZ): its bugs below that
/// version need guards.
pub fn older_than(num: u32) -> bool {
    version_num() < num
}

/// "libcurl 7.88.1" (for messages about guarded bugs).
pub fn this_libcurl() -> String {
    format!("libcurl {}", static_str(version_data().version))
}

/// One entry of libcurl's own easy-option metadata.
pub struct EasyOptMeta {
    pub name: String,
    pub id: i32,
    pub kind: i32,
    pub alias: bool,
}

#[cfg(not(feature = "vendored"))]
mod option_walk {
    use super::*;
    use std::os::raw::c_uint;

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

    /// Walks libcurl's static option table (libcurl ≥ 7.73): name, id,
    /// `CURLOT_*` kind, alias.
    pub(super) fn for_each_option(mut f: impl FnMut(&str, i32, i32, bool)) {
        let mut p: *const CurlEasyOption = ptr::null();
        loop {
            // SAFETY: libcurl walks its static option table; NULL starts the
            // walk, each returned pointer is valid for the life of the process.
            p = unsafe { curl_easy_option_next(p) };
            if p.is_null() {
                break;
            }
            // SAFETY: non-null pointer into libcurl's static table.
            let o = unsafe { &*p };
            f(&static_str(o.name), o.id as i32, o.kind, o.flags & 1 != 0);
        }
    }
}

#[cfg(feature = "vendored")]
mod option_walk {
    include!(concat!(env!("OUT_DIR"), "/easy_options.rs"));

    /// The bundled libcurl is built without `curl_easy_option_next`: its
    /// table comes from its own header (build.rs), the same entries.
    pub(super) fn for_each_option(mut f: impl FnMut(&str, i32, i32, bool)) {
        for &(name, id, kind, alias) in EASY_OPTIONS {
            f(name, id, kind, alias);
        }
    }
}

use option_walk::for_each_option;

/// libcurl's easy-option table over the whole list.
pub fn easy_options() -> Vec<EasyOptMeta> {
    let mut v = Vec::new();
    for_each_option(|name, id, kind, alias| {
        v.push(EasyOptMeta {
            name: name.to_string(),
            id,
            kind,
            alias,
        })
    });
    v
}

/// `CURLOT_*`: how an easy option's value is passed.
pub mod ot {
    pub const LONG: i32 = 0;
    pub const VALUES: i32 = 1;
    pub const OFF_T: i32 = 2;
    pub const OBJECT: i32 = 3;
    pub const STRING: i32 = 4;
    pub const SLIST: i32 = 5;
    pub const CBPTR: i32 = 6;
    pub const BLOB: i32 = 7;
    pub const FUNCTION: i32 = 8;
}

/// The `CURLOT_*` kind of easy option `id` as the linked libcurl reports
/// it, or -1 for an unknown option: a fixed table (no heap: nothing is
/// left behind when the module is unloaded), filled once.
pub fn option_kind(id: i32) -> i32 {
    const SLOTS: usize = 1000;
    static KINDS: OnceLock<[[i8; SLOTS]; 5]> = OnceLock::new();
    let t = KINDS.get_or_init(|| {
        let mut t = [[-1i8; SLOTS]; 5];
        for_each_option(|_, id, kind, _| {
            let (base, n) = (id / 10000, id % 10000);
            if (0..5).contains(&base) && (0..SLOTS as i32).contains(&n) {
                t[base as usize][n as usize] = kind as i8;
            }
        });
        t
    });
    let (base, n) = (id / 10000, id % 10000);
    if (0..5).contains(&base) && (0..SLOTS as i32).contains(&n) && id >= 0 {
        t[base as usize][n as usize] as i32
    } else {
        -1
    }
}

/// A script set `CURLOPT_NOSIGNAL` on some handle: libcurl then stops
/// ignoring SIGPIPE inside its calls, so every call that can write goes
/// through [`without_sigpipe`].
static NOSIGNAL_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn note_nosignal() {
    NOSIGNAL_SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Restores the thread's signal mask (also when the call unwinds). The
/// sets stay `MaybeUninit`, only ever passed by pointer: sigemptyset and
/// pthread_sigmask need not write all of a `sigset_t` (glibc's kernel call
/// fills 8 of its 128 bytes), and zeroing both on every call costs more
/// than the rest of the guard.
struct MaskGuard {
    old: MaybeUninit<libc::sigset_t>,
    set: MaybeUninit<libc::sigset_t>,
}

impl Drop for MaskGuard {
    fn drop(&mut self) {
        // SAFETY: sets built by sigemptyset/pthread_sigmask, passed by
        // pointer to calls that read the parts those wrote.
        unsafe {
            // a SIGPIPE raised while it was blocked: discard it here (it
            // would terminate the process the moment the mask is restored)
            if libc::sigismember(self.old.as_ptr(), libc::SIGPIPE) == 0 {
                let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
                if libc::sigpending(pending.as_mut_ptr()) == 0
                    && libc::sigismember(pending.as_ptr(), libc::SIGPIPE) == 1
                {
                    let zero = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    libc::sigtimedwait(self.set.as_ptr(), ptr::null_mut(), &zero);
                }
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, self.old.as_ptr(), ptr::null_mut());
        }
    }
}

/// Runs a libcurl call that may write to a connection with SIGPIPE blocked
/// in this thread, and discards a SIGPIPE it raised. A write to a
/// connection whose peer is gone raises SIGPIPE unless the writer asks not
/// to; libcurl asks (or ignores the signal) in its transfer calls, but not
/// everywhere (removing a transfer half-way closes its connection, and a
/// protocol library such as OpenLDAP writes its goodbye with a plain
/// write), and not at all once `CURLOPT_NOSIGNAL` is set. A Lua script has
/// no way to handle the signal: it would end the host process.
pub(crate) fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain signal-mask calls on local sets (see `MaskGuard`):
    // `set` is made by sigemptyset, `old` written by a pthread_sigmask
    // that succeeded (none is made otherwise: the mask did not change).
    let guard = unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        (libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr()) == 0)
            .then_some(MaskGuard { old, set })
    };
    let r = f();
    drop(guard);
    r
}

/// [`without_sigpipe`] for the calls libcurl protects itself, unless a
/// script turned that off with `CURLOPT_NOSIGNAL`.
pub(crate) fn maybe_without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    if NOSIGNAL_SEEN.load(std::sync::atomic::Ordering::Relaxed) {
        without_sigpipe(f)
    } else {
        f()
    }
}

/// Closes a descriptor (the close-socket callback makes that our job).
pub fn close_socket(fd: sys::curl_socket_t) {
    // SAFETY: a plain syscall on a number; the caller owns the descriptor.
    unsafe {
        libc::close(fd);
    }
}

/// Opens a socket as libcurl would (the open-socket callback's default).
pub fn open_socket(family: c_int, socktype: c_int, protocol: c_int) -> sys::curl_socket_t {
    // SAFETY: plain syscall.
    unsafe { libc::socket(family, socktype | libc::SOCK_CLOEXEC, protocol) }
}

/// The path this library was loaded from, as the loader keeps it (valid
/// while the library is loaded).
fn own_file() -> Option<*const c_char> {
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: ptr::null(),
        dli_fbase: ptr::null_mut(),
        dli_sname: ptr::null(),
        dli_saddr: ptr::null_mut(),
    };
    let addr = own_file as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables for an address inside
    // this library and fills the local struct.
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    (ok != 0 && !info.dli_fname.is_null()).then_some(info.dli_fname)
}

/// Keeps this library mapped until the process ends. Lua 5.1 and LuaJIT
/// unload a C module (`dlclose`) when its loader's handle is finalized at
/// `lua_close`, which comes before the finalizers of objects made before
/// `require "curl"`; one of those calling the module would jump into
/// unmapped code. A second, never-closed reference (`RTLD_NODELETE`)
/// keeps the code in place; the module then refuses the call (its state
/// is dead, see `luaapi::export`).
pub fn pin_library() {
    if let Some(file) = own_file() {
        // SAFETY: dlopen of the file this library was loaded from (already
        // loaded) only takes a reference to it.
        unsafe { libc::dlopen(file, libc::RTLD_NOW | libc::RTLD_NODELETE) };
    }
}

/// The file this module was loaded from (for specs that check which
/// `curl.so` `require` found).
pub fn module_path() -> Option<String> {
    own_file().map(static_str)
}
