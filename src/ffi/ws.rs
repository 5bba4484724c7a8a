//! libcurl's WebSocket API: `curl_ws_send`, `curl_ws_recv`, `curl_ws_meta`.
//!
//! The functions exist from 7.86 on (as stubs that say "not built in"
//! unless libcurl was built with WebSockets), and the module still loads on
//! older libcurl: for the system libcurl they are looked up at run time in
//! the library that holds `curl_easy_init`; the bundled libcurl (feature
//! `vendored`) is linked into this module and has them. They are usable
//! when both the functions and the `ws` protocol are there.

use super::easy::Easy;
use super::easy_cb::EasyHandler;
use super::{code, version_info, CURLcode, Fault, Res};
use curl_sys as sys;
use std::os::raw::{c_int, c_uint, c_void};
use std::sync::OnceLock;

/// `struct curl_ws_frame`: what libcurl says about the frame being read.
#[repr(C)]
struct RawFrame {
    age: c_int,
    flags: c_int,
    offset: sys::curl_off_t,
    bytesleft: sys::curl_off_t,
    len: usize,
}

/// A frame's metadata (`curl_ws_meta`, or `curl_ws_recv`'s).
#[derive(Clone, Copy, Debug)]
pub struct WsFrame {
    pub age: i32,
    pub flags: i32,
    pub offset: i64,
    pub bytesleft: i64,
    pub len: usize,
}

impl WsFrame {
    fn from_raw(f: &RawFrame) -> WsFrame {
        WsFrame {
            age: f.age,
            flags: f.flags,
            offset: f.offset,
            bytesleft: f.bytesleft,
            len: f.len,
        }
    }
}

type SendFn = unsafe extern "C" fn(
    *mut sys::CURL,
    *const c_void,
    usize,
    *mut usize,
    sys::curl_off_t,
    c_uint,
) -> sys::CURLcode;
type RecvFn = unsafe extern "C" fn(
    *mut sys::CURL,
    *mut c_void,
    usize,
    *mut usize,
    *mut *const RawFrame,
) -> sys::CURLcode;
type MetaFn = unsafe extern "C" fn(*mut sys::CURL) -> *const RawFrame;

struct Api {
    send: SendFn,
    recv: RecvFn,
    meta: MetaFn,
}

#[cfg(feature = "vendored")]
fn lookup() -> Option<Api> {
    extern "C" {
        fn curl_ws_send(
            h: *mut sys::CURL,
            buf: *const c_void,
            len: usize,
            sent: *mut usize,
            fragsize: sys::curl_off_t,
            flags: c_uint,
        ) -> sys::CURLcode;
        fn curl_ws_recv(
            h: *mut sys::CURL,
            buf: *mut c_void,
            len: usize,
            recv: *mut usize,
            meta: *mut *const RawFrame,
        ) -> sys::CURLcode;
        fn curl_ws_meta(h: *mut sys::CURL) -> *const RawFrame;
    }
    Some(Api {
        send: curl_ws_send,
        recv: curl_ws_recv,
        meta: curl_ws_meta,
    })
}

#[cfg(not(feature = "vendored"))]
fn lookup() -> Option<Api> {
    use std::ffi::CStr;
    // The library that holds curl_easy_init (the module is loaded with
    // RTLD_LOCAL, so the global scope does not see it).
    let mut info: libc::Dl_info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr reads the address of a function of the loaded libcurl
    // and fills `info`.
    if unsafe { libc::dladdr(sys::curl_easy_init as *const c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return None;
    }
    // SAFETY: a NUL-terminated path from dladdr; RTLD_NOLOAD only returns a
    // handle to the library that is already loaded (its count goes up, so
    // the symbols stay valid for the life of the process).
    let lib = unsafe { libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
    if lib.is_null() {
        return None;
    }
    let sym = |name: &CStr| {
        // SAFETY: a live handle and a NUL-terminated name.
        let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
        (!p.is_null()).then_some(p)
    };
    let (s, r, m) = (
        sym(c"curl_ws_send")?,
        sym(c"curl_ws_recv")?,
        sym(c"curl_ws_meta")?,
    );
    // SAFETY: these symbols are libcurl's functions with the signatures of
    // its websockets.h (unchanged since 7.86).
    unsafe {
        Some(Api {
            send: std::mem::transmute::<*mut c_void, SendFn>(s),
            recv: std::mem::transmute::<*mut c_void, RecvFn>(r),
            meta: std::mem::transmute::<*mut c_void, MetaFn>(m),
        })
    }
}

/// The API when this libcurl has WebSockets (the functions and the `ws`
/// protocol), or why not.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        let v = version_info();
        let has_ws = v.protocols.iter().any(|p| p == "ws");
        match lookup() {
            Some(a) if has_ws => Ok(a),
            _ => Err(format!(
                "WebSockets need a libcurl built with them (8.x with ws/wss, such as this module's bundled build, cargo feature `vendored`); this is libcurl {}{}",
                v.version,
                if has_ws { "" } else { ", without ws" }
            )),
        }
    })
    .as_ref()
    .map_err(|e| e.clone())
}

impl<H: EasyHandler> Easy<H> {
    /// `curl_ws_send`: bytes of `data` sent (a frame of `fragsize` when not
    /// 0: `data` is its first part).
    pub fn ws_send(&self, data: &[u8], fragsize: i64, flags: u32) -> Res<usize> {
        let api = api().map_err(Fault::Refused)?;
        // callback mode: the transfer runs; CONNECT_ONLY mode: it succeeded
        if !(self.in_multi.get() || self.performing.get()) {
            self.use_connection()?;
        } else if self.co_conn.get() {
            // a CONNECT_ONLY 2 transfer done and still in its multi: libcurl
            // attaches the handle to its connection here too
            self.co_attached.set(true);
        }
        let h = self.raw()?;
        let mut n: usize = 0;
        // SAFETY: live handle; (ptr, len) describe `data`.
        let rc = super::without_sigpipe(|| unsafe {
            (api.send)(
                h,
                data.as_ptr() as *const c_void,
                data.len(),
                &mut n,
                fragsize as sys::curl_off_t,
                flags as c_uint,
            )
        });
        code(rc as CURLcode).map(|()| n)
    }

    /// `curl_ws_recv` into `buf`: bytes received and the frame's metadata.
    pub fn ws_recv(&self, buf: &mut [u8]) -> Res<(usize, Option<WsFrame>)> {
        let api = api().map_err(Fault::Refused)?;
        self.use_connection()?;
        let h = self.raw()?;
        let mut n: usize = 0;
        let mut meta: *const RawFrame = std::ptr::null();
        // SAFETY: live handle; libcurl writes at most buf.len() bytes and
        // points `meta` at its own frame data.
        let rc = unsafe {
            (api.recv)(
                h,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                &mut n,
                &mut meta,
            )
        };
        code(rc as CURLcode)?;
        // SAFETY: NULL or libcurl's frame data, valid until the next call.
        let frame = unsafe { meta.as_ref() }.map(WsFrame::from_raw);
        Ok((n, frame))
    }

    /// `curl_ws_meta`: the frame being delivered to the write callback.
    pub fn ws_meta(&self) -> Res<Option<WsFrame>> {
        let api = api().map_err(Fault::Refused)?;
        let h = self.raw()?;
        // SAFETY: live handle; NULL outside a WebSocket write callback.
        let p = unsafe { (api.meta)(h) };
        // SAFETY: NULL or libcurl's frame data, valid during the callback.
        Ok(unsafe { p.as_ref() }.map(WsFrame::from_raw))
    }
}
