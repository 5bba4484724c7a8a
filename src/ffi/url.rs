//! `CURLU*`: the owning [`Url`] handle.

use super::consts::c;
use super::cstr_bytes;
use curl_sys as sys;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_void};
use std::ptr::{self, NonNull};

#[repr(C)]
pub(super) struct CurlU {
    _private: [u8; 0],
}

extern "C" {
    fn curl_url() -> *mut CurlU;
    fn curl_url_cleanup(h: *mut CurlU);
    fn curl_url_dup(h: *const CurlU) -> *mut CurlU;
    fn curl_url_get(h: *const CurlU, what: c_int, part: *mut *mut c_char, flags: c_uint) -> c_int;
    fn curl_url_set(h: *mut CurlU, what: c_int, part: *const c_char, flags: c_uint) -> c_int;
    pub(super) fn curl_url_strerror(code: c_int) -> *const c_char;
}

/// A URL handle, owned. Easies using it hold it (`Rc<Url>`, see
/// `Easy::set_url`).
pub struct Url(NonNull<CurlU>);

impl Drop for Url {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and no easy uses it any more.
        unsafe { curl_url_cleanup(self.0.as_ptr()) }
    }
}

impl Url {
    pub fn new() -> Option<Url> {
        super::global_init();
        // SAFETY: plain constructor.
        NonNull::new(unsafe { curl_url() }).map(Url)
    }

    pub(super) fn as_ptr(&self) -> *const c_void {
        self.0.as_ptr() as *const c_void
    }

    pub fn dup(&self) -> Option<Url> {
        // SAFETY: live handle; returns a new one or NULL.
        NonNull::new(unsafe { curl_url_dup(self.0.as_ptr()) }).map(Url)
    }

    /// `curl_url_set`; `None` clears the part. Guards for libcurl 7.88: an
    /// empty value it URL-encodes becomes NULL (a crash for a host), and
    /// an empty path crashes the transfer using the URL. An empty value
    /// needs no encoding, and an empty path is no path.
    pub fn set(&self, part: c_int, value: Option<&CStr>, flags: c_uint) -> Result<(), c_int> {
        let (value, flags) = match value {
            Some(v) if v.is_empty() && part as i64 == c::CURLUPART_PATH => (None, flags),
            Some(v) if v.is_empty() => (Some(v), flags & !(c::CURLU_URLENCODE as c_uint)),
            other => (other, flags),
        };
        let p = value.map_or(ptr::null(), |c| c.as_ptr());
        // SAFETY: live handle; libcurl copies the string.
        let rc = unsafe { curl_url_set(self.0.as_ptr(), part, p, flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(rc)
        }
    }

    /// Guard: before 8.22.0 (7.88 checked) `curl_url_get` of the host with
    /// `CURLU_PUNYCODE` loses its copy of the host when converting a host
    /// that is not ASCII fails (7.88 says `CURLUE_OUT_OF_MEMORY`, as in a
    /// locale libidn2 cannot convert from; found by review under
    /// valgrind). 8.22 frees it. Refused for such a host: the whole URL
    /// with `CURLU_PUNYCODE` converts it without the loss.
    pub fn punycode_guard(&self, part: c_int, flags: c_uint) -> Result<(), String> {
        if part as i64 != c::CURLUPART_HOST
            || flags & c::CURLU_PUNYCODE as c_uint == 0
            || !super::older_than(0x081600)
        {
            return Ok(());
        }
        match self.get(part, 0) {
            Ok(host) if !host.is_ascii() => Err(format!(
                "CURLU_PUNYCODE for a host that is not ASCII: {} loses memory when the conversion fails (fixed in 8.22.0); get CURLUPART_URL with CURLU_PUNYCODE instead",
                super::this_libcurl()
            )),
            _ => Ok(()),
        }
    }

    /// `curl_url_get`: the part's text, or the `CURLUcode`.
    pub fn get(&self, part: c_int, flags: c_uint) -> Result<Vec<u8>, c_int> {
        let mut p: *mut c_char = ptr::null_mut();
        // SAFETY: live handle; libcurl allocates the result, freed below.
        let rc = unsafe { curl_url_get(self.0.as_ptr(), part, &mut p, flags) };
        if rc != 0 {
            return Err(rc);
        }
        // SAFETY: a NUL-terminated string libcurl made for us.
        let out = unsafe { cstr_bytes(p) }.unwrap_or_default();
        // SAFETY: allocated by libcurl for us.
        unsafe { sys::curl_free(p as *mut c_void) };
        Ok(out)
    }
}
