//! The `extern "C"` trampolines libcurl calls. Each one recovers its handle
//! from the pointer it registered, finds the running call's context, and hands
//! over to the Lua-facing code in multi.rs / easy.rs. Nothing unwinds into
//! libcurl: panics are caught and parked like Lua errors. The socket and timer
//! trampolines always return 0 (libcurl 7.88 can crash on -1).

use crate::ctx::Ctx;
use crate::easy::{self, EasyInner};
use crate::error::Fail;
use crate::multi::{self, MultiInner};
use curl_sys as sys;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn guarded<T>(ctx: &Ctx<'_>, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            ctx.park(Fail::Usage(format!(
                "internal error (panic in callback): {msg}"
            )));
            fallback
        }
    }
}

pub extern "C" fn socket_cb(
    easy: *mut sys::CURL,
    fd: sys::curl_socket_t,
    what: c_int,
    userp: *mut c_void,
    socketp: *mut c_void,
) -> c_int {
    if userp.is_null() {
        return 0;
    }
    // SAFETY: userp is the MultiInner pointer registered with SOCKETDATA; the
    // MultiInner (kept in an Rc by the Multi userdata) outlives the libcurl
    // multi, and the callback is unregistered before curl_multi_cleanup.
    let m = unsafe { &*(userp as *const MultiInner) };
    if let Some(ctx) = m.slot.get() {
        guarded(ctx, (), || {
            multi::on_socket(ctx, easy as usize, fd, what, !socketp.is_null())
        });
    }
    0
}

pub extern "C" fn timer_cb(_multi: *mut sys::CURLM, ms: c_long, userp: *mut c_void) -> c_int {
    if userp.is_null() {
        return 0;
    }
    // SAFETY: as in socket_cb (registered with TIMERDATA).
    let m = unsafe { &*(userp as *const MultiInner) };
    if let Some(ctx) = m.slot.get() {
        guarded(ctx, (), || multi::on_timer(ctx, ms as i64));
    }
    0
}

fn data_cb(ptr: *mut c_char, size: usize, nmemb: usize, userp: *mut c_void, header: bool) -> usize {
    if userp.is_null() {
        return 0;
    }
    // SAFETY: userp is the EasyInner pointer registered with WRITEDATA /
    // HEADERDATA; the EasyInner (in an Rc) outlives its libcurl handle.
    let e = unsafe { &*(userp as *const EasyInner) };
    let len = size.saturating_mul(nmemb);
    let data: &[u8] = if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: libcurl passes `size * nmemb` readable bytes at ptr, valid
        // for the duration of this call.
        unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
    };
    e.with_ctx(|ctx| match ctx {
        Some(ctx) => guarded(ctx, 0, || easy::on_data(e, ctx, data, header)),
        None => 0,
    })
}

pub extern "C" fn write_cb(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    data_cb(ptr, size, nmemb, userp, false)
}

pub extern "C" fn header_cb(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    data_cb(ptr, size, nmemb, userp, true)
}
