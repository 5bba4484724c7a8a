//! The `extern "C"` trampolines libcurl calls. Each one recovers its handle
//! from the pointer it registered, finds the running call's context, and hands
//! over to the Lua-facing code in multi.rs / easy.rs. Nothing unwinds into
//! libcurl: panics are caught and parked like Lua errors. The socket and timer
//! trampolines always return 0 (libcurl 7.88 can crash on -1).

use crate::consts::c;
use crate::ctx::Ctx;
use crate::easy::EasyInner;
use crate::easy_cb::{self, Cb};
use crate::error::Fail;
use crate::mime;
use crate::multi::{self, MultiInner};
use crate::raw;
use curl_sys as sys;
use mlua::Value;
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
            multi::on_socket(ctx, m, easy as usize, fd, what, !socketp.is_null())
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
        guarded(ctx, (), || multi::on_timer(ctx, m, ms as i64));
    }
    0
}

pub extern "C" fn push_cb(
    parent: *mut sys::CURL,
    easy: *mut sys::CURL,
    num: usize,
    headers: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    let deny = c::CURL_PUSH_DENY as c_int;
    if userp.is_null() {
        return deny;
    }
    // SAFETY: as in socket_cb (registered with PUSHDATA).
    let m = unsafe { &*(userp as *const MultiInner) };
    let hs = raw::push_headers(headers, num);
    match m.slot.get() {
        Some(ctx) => guarded(ctx, deny, || multi::on_push(ctx, parent as usize, easy, hs)),
        None => deny,
    }
}

/// Recovers the EasyInner registered as a callback's data pointer and runs
/// `f` with the running call's context; `no_ctx` when there is none (GC,
/// teardown), `fail` if `f` panics.
fn easy_call<T>(
    userp: *mut c_void,
    no_ctx: impl FnOnce() -> T,
    fail: T,
    f: impl FnOnce(&EasyInner, &Ctx<'_>) -> T,
) -> T {
    if userp.is_null() {
        return no_ctx();
    }
    // SAFETY: userp is the EasyInner pointer the module registered with the
    // callback's *DATA option; the EasyInner (in an Rc) outlives its libcurl
    // handle, which is the only caller of this callback (the close-socket
    // callback, which connections keep, has a token instead).
    let e = unsafe { &*(userp as *const EasyInner) };
    with_easy(e, no_ctx, fail, f)
}

/// `easy_call` for an easy already found.
fn with_easy<T>(
    e: &EasyInner,
    no_ctx: impl FnOnce() -> T,
    fail: T,
    f: impl FnOnce(&EasyInner, &Ctx<'_>) -> T,
) -> T {
    e.with_ctx(|ctx| match ctx {
        Some(ctx) => guarded(ctx, fail, || f(e, ctx)),
        None => no_ctx(),
    })
}

fn stream_cb(ptr: *mut c_char, size: usize, nmemb: usize, userp: *mut c_void, cb: Cb) -> usize {
    let data = raw::c_slice(ptr, size.saturating_mul(nmemb));
    easy_call(userp, || 0, 0, |e, ctx| easy_cb::on_data(e, ctx, data, cb))
}

pub extern "C" fn write_cb(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    stream_cb(ptr, size, nmemb, userp, Cb::Write)
}

pub extern "C" fn header_cb(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    stream_cb(ptr, size, nmemb, userp, Cb::Header)
}

pub extern "C" fn interleave_cb(
    ptr: *mut c_char,
    size: usize,
    nmemb: usize,
    userp: *mut c_void,
) -> usize {
    stream_cb(ptr, size, nmemb, userp, Cb::Interleave)
}

pub extern "C" fn read_cb(
    buf: *mut c_char,
    size: usize,
    nitems: usize,
    userp: *mut c_void,
) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    let max = size.saturating_mul(nitems);
    easy_call(
        userp,
        || abort,
        abort,
        |e, ctx| easy_cb::on_read(e, ctx, buf, max),
    )
}

pub extern "C" fn xferinfo_cb(
    userp: *mut c_void,
    dt: sys::curl_off_t,
    dn: sys::curl_off_t,
    ut: sys::curl_off_t,
    un: sys::curl_off_t,
) -> c_int {
    let v = [dt, dn, ut, un].map(|n| Value::Integer(n as i64));
    easy_call(
        userp,
        || 0,
        1,
        |e, ctx| easy_cb::on_progress(e, ctx, Cb::XferInfo, v),
    )
}

pub extern "C" fn progress_cb(userp: *mut c_void, dt: f64, dn: f64, ut: f64, un: f64) -> c_int {
    let v = [dt, dn, ut, un].map(Value::Number);
    easy_call(
        userp,
        || 0,
        1,
        |e, ctx| easy_cb::on_progress(e, ctx, Cb::Progress, v),
    )
}

pub extern "C" fn debug_cb(
    _h: *mut sys::CURL,
    kind: c_int,
    data: *mut c_char,
    size: usize,
    userp: *mut c_void,
) -> c_int {
    let data = raw::c_slice(data, size);
    easy_call(
        userp,
        || 0,
        0,
        |e, ctx| easy_cb::on_debug(e, ctx, kind, data),
    )
}

pub extern "C" fn seek_cb(userp: *mut c_void, offset: sys::curl_off_t, origin: c_int) -> c_int {
    let cant = c::CURL_SEEKFUNC_CANTSEEK as c_int;
    easy_call(
        userp,
        || cant,
        c::CURL_SEEKFUNC_FAIL as c_int,
        |e, ctx| easy_cb::on_seek(e, ctx, offset as i64, origin),
    )
}

pub extern "C" fn sockopt_cb(userp: *mut c_void, fd: sys::curl_socket_t, purpose: c_int) -> c_int {
    easy_call(
        userp,
        || 0,
        c::CURL_SOCKOPT_ERROR as c_int,
        |e, ctx| easy_cb::on_sockopt(e, ctx, fd as i64, purpose),
    )
}

pub extern "C" fn opensocket_cb(
    userp: *mut c_void,
    purpose: c_int,
    addr: *mut raw::SockAddr,
) -> sys::curl_socket_t {
    if addr.is_null() {
        return -1;
    }
    // SAFETY: libcurl passes a valid address struct for the call.
    let a = unsafe { &*addr };
    let own = || raw::open_socket(a.family, a.socktype, a.protocol);
    easy_call(userp, own, -1, |e, ctx| {
        easy_cb::on_opensocket(e, ctx, purpose, a) as sys::curl_socket_t
    })
}

/// `userp` is the easy's close-socket token (see `easy::closer`): the
/// connection calling may have outlived the easy.
pub extern "C" fn closesocket_cb(userp: *mut c_void, fd: sys::curl_socket_t) -> c_int {
    // Without the easy or a context (garbage collection) the socket is
    // still closed.
    let close = || {
        raw::close_socket(fd);
        0
    };
    match crate::easy::closer(userp as usize) {
        Some(e) => with_easy(&e, close, 0, |e, ctx| {
            easy_cb::on_closesocket(e, ctx, fd as i64)
        }),
        None => close(),
    }
}

pub extern "C" fn resolver_start_cb(
    _state: *mut c_void,
    _reserved: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    easy_call(userp, || 0, 1, easy_cb::on_resolver_start)
}

pub extern "C" fn prereq_cb(
    userp: *mut c_void,
    primary: *mut c_char,
    local: *mut c_char,
    pport: c_int,
    lport: c_int,
) -> c_int {
    let (p, l) = (raw::c_bytes(primary), raw::c_bytes(local));
    easy_call(
        userp,
        || 0,
        c::CURL_PREREQFUNC_ABORT as c_int,
        |e, ctx| easy_cb::on_prereq(e, ctx, p, l, pport, lport),
    )
}

pub extern "C" fn trailer_cb(list: *mut *mut raw::curl_slist, userp: *mut c_void) -> c_int {
    let abort = c::CURL_TRAILERFUNC_ABORT as c_int;
    easy_call(
        userp,
        || 0,
        abort,
        |e, ctx| easy_cb::on_trailer(e, ctx, list),
    )
}

pub extern "C" fn chunk_bgn_cb(info: *const c_void, userp: *mut c_void, remains: c_int) -> c_long {
    let fail = c::CURL_CHUNK_BGN_FUNC_FAIL as c_long;
    if info.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes a struct curl_fileinfo for the call.
    let fi = unsafe { &*(info as *const raw::FileInfo) };
    easy_call(
        userp,
        || 0,
        fail,
        |e, ctx| easy_cb::on_chunk_bgn(e, ctx, fi, remains) as c_long,
    )
}

pub extern "C" fn chunk_end_cb(userp: *mut c_void) -> c_long {
    easy_call(
        userp,
        || 0,
        c::CURL_CHUNK_END_FUNC_FAIL as c_long,
        |e, ctx| easy_cb::on_chunk_end(e, ctx) as c_long,
    )
}

pub extern "C" fn fnmatch_cb(
    userp: *mut c_void,
    pattern: *const c_char,
    string: *const c_char,
) -> c_int {
    let fail = c::CURL_FNMATCHFUNC_FAIL as c_int;
    easy_call(
        userp,
        || fail,
        fail,
        |e, ctx| easy_cb::on_fnmatch(e, ctx, pattern, string),
    )
}

pub extern "C" fn ssh_key_cb(
    _h: *mut sys::CURL,
    known: *const raw::KhKey,
    found: *const raw::KhKey,
    m: c_int,
    userp: *mut c_void,
) -> c_int {
    let reject = c::CURLKHSTAT_REJECT as c_int;
    easy_call(
        userp,
        || reject,
        reject,
        |e, ctx| easy_cb::on_ssh_key(e, ctx, known, found, m),
    )
}

pub extern "C" fn ssh_hostkey_cb(
    userp: *mut c_void,
    keytype: c_int,
    key: *const c_char,
    len: usize,
) -> c_int {
    let mismatch = c::CURLKHMATCH_MISMATCH as c_int;
    let k = raw::c_slice(key, len);
    easy_call(
        userp,
        || mismatch,
        mismatch,
        |e, ctx| easy_cb::on_ssh_hostkey(e, ctx, keytype, k),
    )
}

/// `CURLSTScode (*)(CURL *, struct curl_hstsentry *, void *clientp)`: three
/// arguments, unlike the write side.
pub extern "C" fn hsts_read_cb(
    _h: *mut sys::CURL,
    entry: *mut raw::HstsEntry,
    userp: *mut c_void,
) -> c_int {
    let fail = c::CURLSTS_FAIL as c_int;
    if entry.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes an entry to fill for the call.
    let en = unsafe { &mut *entry };
    easy_call(
        userp,
        || c::CURLSTS_DONE as c_int,
        fail,
        |e, ctx| easy_cb::on_hsts_read(e, ctx, en),
    )
}

pub extern "C" fn hsts_write_cb(
    _h: *mut sys::CURL,
    entry: *mut raw::HstsEntry,
    index: *mut raw::HstsIndex,
    userp: *mut c_void,
) -> c_int {
    let fail = c::CURLSTS_FAIL as c_int;
    if entry.is_null() || index.is_null() {
        return fail;
    }
    // SAFETY: libcurl passes the entry and its index for the call.
    let (en, ix) = unsafe { (&*entry, &*index) };
    easy_call(
        userp,
        || 0,
        fail,
        |e, ctx| easy_cb::on_hsts_write(e, ctx, en, ix),
    )
}

pub extern "C" fn mime_read_cb(
    buf: *mut c_char,
    size: usize,
    nitems: usize,
    arg: *mut c_void,
) -> usize {
    let abort = c::CURL_READFUNC_ABORT as usize;
    if arg.is_null() {
        return abort;
    }
    // SAFETY: arg is the PartCb box registered with curl_mime_data_cb; libcurl
    // frees it (through mime_free_cb) only after its last use.
    let pc = unsafe { &*(arg as *const mime::PartCb) };
    let Some(e) = pc.easy() else {
        return abort;
    };
    let max = size.saturating_mul(nitems);
    e.with_ctx(|ctx| match ctx {
        Some(ctx) => guarded(ctx, abort, || mime::on_read(pc, &e, ctx, buf, max)),
        None => abort,
    })
}

pub extern "C" fn mime_seek_cb(arg: *mut c_void, offset: sys::curl_off_t, origin: c_int) -> c_int {
    let fail = c::CURL_SEEKFUNC_FAIL as c_int;
    if arg.is_null() {
        return fail;
    }
    // SAFETY: as in mime_read_cb.
    let pc = unsafe { &*(arg as *const mime::PartCb) };
    let Some(e) = pc.easy() else {
        return fail;
    };
    e.with_ctx(|ctx| match ctx {
        Some(ctx) => guarded(ctx, fail, || {
            mime::on_seek(pc, &e, ctx, offset as i64, origin)
        }),
        None => fail,
    })
}

pub extern "C" fn mime_free_cb(arg: *mut c_void) {
    mime::free_part_cb(arg);
}

/// The C function for a callback kind, as the pointer libcurl's option takes.
pub fn pointer_for(cb: Cb) -> *const c_void {
    match cb {
        Cb::Write => write_cb as *const c_void,
        Cb::Header => header_cb as *const c_void,
        Cb::Interleave => interleave_cb as *const c_void,
        Cb::Read => read_cb as *const c_void,
        Cb::XferInfo => xferinfo_cb as *const c_void,
        Cb::Progress => progress_cb as *const c_void,
        Cb::Debug => debug_cb as *const c_void,
        Cb::Seek => seek_cb as *const c_void,
        Cb::SockOpt => sockopt_cb as *const c_void,
        Cb::OpenSocket => opensocket_cb as *const c_void,
        Cb::CloseSocket => closesocket_cb as *const c_void,
        Cb::ResolverStart => resolver_start_cb as *const c_void,
        Cb::Prereq => prereq_cb as *const c_void,
        Cb::Trailer => trailer_cb as *const c_void,
        Cb::ChunkBgn => chunk_bgn_cb as *const c_void,
        Cb::ChunkEnd => chunk_end_cb as *const c_void,
        Cb::FnMatch => fnmatch_cb as *const c_void,
        Cb::SshKey => ssh_key_cb as *const c_void,
        Cb::SshHostKey => ssh_hostkey_cb as *const c_void,
        Cb::HstsRead => hsts_read_cb as *const c_void,
        Cb::HstsWrite => hsts_write_cb as *const c_void,
    }
}
