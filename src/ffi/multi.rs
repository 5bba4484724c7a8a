//! `CURLM*`: the owning [`Multi`] handle and the [`MultiHandler`] its
//! socket, timer and push callbacks call, each trampoline beside the
//! method it calls.

use super::consts::c;
use super::easy::{Easy, Fate};
use super::easy_cb::EasyHandler;
use super::guards::CacheMix;
use super::{cstr_bytes, CURLMcode, Fault, Res, CURLM_OK};
use curl_sys as sys;
use std::cell::Cell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_long, c_uint, c_void};
use std::ptr::{self, NonNull};
use std::rc::{Rc, Weak};

/// What a multi handle's callbacks call. A method runs only while its
/// handler is alive; a panic inside one is caught and handed to
/// [`MultiHandler::panicked`]. The socket and timer callbacks always
/// return 0 to libcurl (7.88 can crash or strand transfers on -1).
pub trait MultiHandler: Sized + 'static {
    /// `CURLMOPT_SOCKETFUNCTION`: `easy` is the address of the easy handle
    /// (see [`Easy::addr`]); `has_socketp` whether `assign` gave the socket
    /// a value.
    fn socket(&self, easy: usize, fd: sys::curl_socket_t, what: c_int, has_socketp: bool);
    /// `CURLMOPT_TIMERFUNCTION`: -1 deletes the timer.
    fn timer(&self, ms: i64);
    /// `CURLMOPT_PUSHFUNCTION`: a server push for the easy at `parent`.
    /// Return true to accept; an accepted push must have been adopted
    /// ([`Pushed::adopt`]), otherwise it is refused.
    fn push(&self, parent: usize, pushed: Pushed, headers: Vec<Vec<u8>>) -> bool;
    /// A method panicked; `msg` is the panic text.
    fn panicked(&self, msg: String);
}

fn with_handler<M: MultiHandler, T>(userp: *mut c_void, dead: T, f: impl FnOnce(&M) -> T) -> T {
    if userp.is_null() {
        return dead;
    }
    // SAFETY: the data of every multi callback is the `Box<Weak<M>>` of the
    // `Multi<M>` whose handle calls it; the box is freed only after the
    // callbacks are unset and the handle is cleaned up.
    let weak = unsafe { &*(userp as *const Weak<M>) };
    let Some(h) = weak.upgrade() else {
        return dead;
    };
    super::unwind_guard(|| f(&h), |msg| h.panicked(msg), dead)
}

extern "C" fn socket_cb<M: MultiHandler>(
    easy: *mut sys::CURL,
    fd: sys::curl_socket_t,
    what: c_int,
    userp: *mut c_void,
    socketp: *mut c_void,
) -> c_int {
    with_handler(userp, (), |h: &M| {
        h.socket(easy as usize, fd, what, !socketp.is_null())
    });
    0
}

extern "C" fn timer_cb<M: MultiHandler>(
    _m: *mut sys::CURLM,
    ms: c_long,
    userp: *mut c_void,
) -> c_int {
    with_handler(userp, (), |h: &M| h.timer(ms as i64));
    0
}

extern "C" {
    fn curl_pushheader_bynum(h: *mut c_void, num: usize) -> *mut c_char;
    // Declared here: curl-sys has them only behind a feature (7.66+, 7.68+).
    fn curl_multi_poll(
        m: *mut sys::CURLM,
        extra_fds: *mut sys::curl_waitfd,
        extra_nfds: c_uint,
        timeout_ms: c_int,
        ret: *mut c_int,
    ) -> CURLMcode;
    fn curl_multi_wakeup(m: *mut sys::CURLM) -> CURLMcode;
}

/// A handle libcurl made for a server push, offered to the push handler.
pub struct Pushed {
    ptr: NonNull<sys::CURL>,
    fate: Rc<Cell<Fate>>,
}

impl Pushed {
    /// Wraps the pushed handle: libcurl made it from `parent`'s options, so
    /// it gets copies of what `parent` keeps and its own callback data.
    pub fn adopt<H: EasyHandler>(self, parent: &Easy<H>, handler: Weak<H>) -> Res<Easy<H>> {
        Easy::adopt(self.ptr, self.fate, parent, handler)
    }
}

extern "C" fn push_cb<M: MultiHandler>(
    parent: *mut sys::CURL,
    easy: *mut sys::CURL,
    num: usize,
    headers: *mut c_void,
    userp: *mut c_void,
) -> c_int {
    let deny = c::CURL_PUSH_DENY as c_int;
    let Some(ptr) = NonNull::new(easy) else {
        return deny;
    };
    let mut hs = Vec::with_capacity(num);
    for i in 0..num {
        // SAFETY: libcurl's push-headers handle is valid during the push
        // callback; indexes below num_headers are valid; strings copied.
        if let Some(b) = unsafe { cstr_bytes(curl_pushheader_bynum(headers, i)) } {
            hs.push(b);
        }
    }
    let fate = Rc::new(Cell::new(Fate::Offered));
    let pushed = Pushed {
        ptr,
        fate: fate.clone(),
    };
    let ok = with_handler(userp, false, |h: &M| h.push(parent as usize, pushed, hs));
    if ok && fate.get() == Fate::Adopted {
        return c::CURL_PUSH_OK as c_int;
    }
    if fate.get() == Fate::Adopted {
        // Refused after it was wrapped: libcurl frees the handle once we
        // return, so the `Easy` must neither use nor free it, and libcurl
        // must find nothing of ours in it.
        // SAFETY: the handle is alive until libcurl frees it after this call.
        unsafe { sys::curl_easy_reset(ptr.as_ptr()) };
        fate.set(Fate::Refused);
    }
    deny
}

/// `struct curl_waitfd` for `wait`: a descriptor, the events to wait for
/// and, after the call, the events that happened.
pub type WaitFd = sys::curl_waitfd;

/// One message of `curl_multi_info_read`.
pub struct Msg {
    pub msg: c_int,
    /// The easy handle's address (see [`Easy::addr`]).
    pub easy: usize,
    pub result: i32,
    pub remaining: c_int,
}

/// A multi handle, owned. Dropping it unsets the socket, timer and push
/// callbacks (the rusqlite order: unhook, then destroy) and runs
/// `curl_multi_cleanup`; easies still added are detached by libcurl and
/// stay usable.
pub struct Multi<M: MultiHandler> {
    ptr: NonNull<sys::CURLM>,
    handler: Box<Weak<M>>,
    /// What ran in its connection cache (see `guards.rs`).
    mix: CacheMix,
}

impl<M: MultiHandler> Drop for Multi<M> {
    fn drop(&mut self) {
        let _ = self.set_socket(false);
        let _ = self.set_timer(false);
        let _ = self.set_push(false);
        // SAFETY: the handle is ours and freed once; the handler box is
        // dropped after this body, when no callback can run any more.
        super::without_sigpipe(|| unsafe { sys::curl_multi_cleanup(self.ptr.as_ptr()) });
    }
}

fn mcode(rc: CURLMcode) -> Result<(), CURLMcode> {
    if rc == CURLM_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

impl<M: MultiHandler> Multi<M> {
    pub fn new(handler: Weak<M>) -> Option<Self> {
        super::global_init();
        // SAFETY: plain constructor; NULL on allocation failure.
        let ptr = NonNull::new(unsafe { sys::curl_multi_init() })?;
        Some(Multi {
            ptr,
            handler: Box::new(handler),
            mix: CacheMix::default(),
        })
    }

    /// Gives up the handle without cleaning it up (a call is still running
    /// on it: libcurl would refuse; the process is going away).
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// # Safety
    /// `p` matches option `opt`'s type and stays valid as long as libcurl
    /// may use it.
    unsafe fn setopt_ptr(&self, opt: i64, p: *const c_void) -> Result<(), CURLMcode> {
        // SAFETY: live handle; the caller's contract.
        mcode(unsafe { sys::curl_multi_setopt(self.ptr.as_ptr(), opt as sys::CURLMoption, p) })
    }

    fn data(&self) -> *const c_void {
        &*self.handler as *const Weak<M> as *const c_void
    }

    /// Turns a callback on (its trampoline, with this handle's handler as
    /// data) or off.
    fn set_callback(
        &self,
        fopt: i64,
        dopt: i64,
        f: *const c_void,
        on: bool,
    ) -> Result<(), CURLMcode> {
        let (f, d) = if on {
            (f, self.data())
        } else {
            (ptr::null(), ptr::null())
        };
        // SAFETY: the trampolines match the options' function types; the
        // handler box lives as long as the handle.
        unsafe {
            self.setopt_ptr(fopt, f)?;
            self.setopt_ptr(dopt, d)
        }
    }

    pub fn set_socket(&self, on: bool) -> Result<(), CURLMcode> {
        let f = socket_cb::<M> as *const c_void;
        self.set_callback(c::CURLMOPT_SOCKETFUNCTION, c::CURLMOPT_SOCKETDATA, f, on)
    }

    pub fn set_timer(&self, on: bool) -> Result<(), CURLMcode> {
        let f = timer_cb::<M> as *const c_void;
        self.set_callback(c::CURLMOPT_TIMERFUNCTION, c::CURLMOPT_TIMERDATA, f, on)
    }

    pub fn set_push(&self, on: bool) -> Result<(), CURLMcode> {
        let f = push_cb::<M> as *const c_void;
        self.set_callback(c::CURLMOPT_PUSHFUNCTION, c::CURLMOPT_PUSHDATA, f, on)
    }

    /// A long option (ids below 10000).
    pub fn set_long(&self, opt: i64, v: c_long) -> Result<(), CURLMcode> {
        if !(0..10000).contains(&opt) {
            return Err(sys::CURLM_UNKNOWN_OPTION);
        }
        // SAFETY: live handle; a long option receives a long.
        mcode(unsafe { sys::curl_multi_setopt(self.ptr.as_ptr(), opt as sys::CURLMoption, v) })
    }

    /// An off_t option (ids from 30000).
    pub fn set_off_t(&self, opt: i64, v: i64) -> Result<(), CURLMcode> {
        if !(30000..40000).contains(&opt) {
            return Err(sys::CURLM_UNKNOWN_OPTION);
        }
        // SAFETY: live handle; an off_t option receives a curl_off_t.
        mcode(unsafe {
            sys::curl_multi_setopt(
                self.ptr.as_ptr(),
                opt as sys::CURLMoption,
                v as sys::curl_off_t,
            )
        })
    }

    /// `PIPELINING_SITE_BL` / `PIPELINING_SERVER_BL`: a NULL-terminated
    /// `char*` array libcurl copies (ignored since HTTP/1 pipelining went
    /// away in 7.62); `None` clears it.
    pub fn set_strings(&self, opt: i64, items: Option<&[CString]>) -> Result<(), CURLMcode> {
        if opt != c::CURLMOPT_PIPELINING_SITE_BL && opt != c::CURLMOPT_PIPELINING_SERVER_BL {
            return Err(sys::CURLM_UNKNOWN_OPTION);
        }
        let mut ptrs: Vec<*const c_char> = Vec::new();
        if let Some(items) = items {
            ptrs.extend(items.iter().map(|c| c.as_ptr()));
            ptrs.push(ptr::null());
        }
        let p = if items.is_some() {
            ptrs.as_ptr() as *const c_void
        } else {
            ptr::null()
        };
        // SAFETY: libcurl copies the strings during the call.
        unsafe { self.setopt_ptr(opt, p) }
    }

    /// `curl_multi_add_handle`, after the guards for a transfer start.
    pub fn add<H: EasyHandler>(&self, e: &Easy<H>) -> Res<()> {
        e.raw()?;
        e.prepare(Some(&self.mix))?;
        // SAFETY: both handles are alive; the easy removes itself from the
        // multi when it is cleaned up, and the multi detaches its easies
        // when it is.
        mcode(unsafe { sys::curl_multi_add_handle(self.ptr.as_ptr(), e.as_ptr()) })
            .map_err(Fault::Multi)?;
        e.set_in_multi(true);
        // (reached before 8.12.0 only by a handle not attached: `prepare`)
        e.co_attached.set(false);
        Ok(())
    }

    /// `curl_multi_remove_handle`.
    pub fn remove<H: EasyHandler>(&self, e: &Easy<H>) -> Result<(), CURLMcode> {
        if e.raw().is_err() {
            return Err(sys::CURLM_BAD_EASY_HANDLE);
        }
        // SAFETY: both handles are alive.
        let remove = || unsafe { sys::curl_multi_remove_handle(self.ptr.as_ptr(), e.as_ptr()) };
        // removing a transfer that has not ended closes its connection,
        // which may write (SIGPIPE); one that ended writes nothing
        mcode(if e.done.get() {
            remove()
        } else {
            super::without_sigpipe(remove)
        })?;
        e.set_in_multi(false);
        e.co_attached.set(false); // libcurl detaches a removed handle
        if !e.done.get() {
            e.doh_ended(); // (removed half-way)
        }
        Ok(())
    }

    pub fn socket_action(&self, fd: sys::curl_socket_t, mask: c_int) -> Result<c_int, CURLMcode> {
        let mut running: c_int = 0;
        // SAFETY: live handle; out-pointer to a local.
        mcode(super::maybe_without_sigpipe(|| unsafe {
            sys::curl_multi_socket_action(self.ptr.as_ptr(), fd, mask, &mut running)
        }))?;
        Ok(running)
    }

    pub fn perform(&self) -> Result<c_int, CURLMcode> {
        let mut running: c_int = 0;
        // SAFETY: live handle; out-pointer to a local.
        mcode(super::maybe_without_sigpipe(|| unsafe {
            sys::curl_multi_perform(self.ptr.as_ptr(), &mut running)
        }))?;
        Ok(running)
    }

    pub fn timeout(&self) -> Result<i64, CURLMcode> {
        let mut ms: c_long = -1;
        // SAFETY: live handle; out-pointer to a local.
        mcode(unsafe { sys::curl_multi_timeout(self.ptr.as_ptr(), &mut ms) })?;
        Ok(ms as i64)
    }

    /// `curl_multi_assign` with a marker (the value itself is kept by the
    /// caller): `on` false clears it.
    pub fn assign(&self, fd: sys::curl_socket_t, on: bool) -> Result<(), CURLMcode> {
        let marker = if on {
            ptr::dangling_mut::<c_void>()
        } else {
            ptr::null_mut()
        };
        // SAFETY: live handle; libcurl only stores the marker and hands it
        // back to the socket callback, which only tests it for NULL.
        mcode(unsafe { sys::curl_multi_assign(self.ptr.as_ptr(), fd, marker) })
    }

    pub fn wakeup(&self) -> Result<(), CURLMcode> {
        // SAFETY: live handle.
        mcode(unsafe { curl_multi_wakeup(self.ptr.as_ptr()) })
    }

    /// `curl_multi_wait` (`poll` false) or `curl_multi_poll` (true).
    pub fn wait(&self, fds: &mut [WaitFd], ms: c_int, poll: bool) -> Result<c_int, CURLMcode> {
        let mut n: c_int = 0;
        let p = if fds.is_empty() {
            ptr::null_mut()
        } else {
            fds.as_mut_ptr()
        };
        let len = fds.len().min(c_uint::MAX as usize) as c_uint;
        // SAFETY: live handle; the array and its length match.
        mcode(unsafe {
            if poll {
                curl_multi_poll(self.ptr.as_ptr(), p, len, ms, &mut n)
            } else {
                sys::curl_multi_wait(self.ptr.as_ptr(), p, len, ms, &mut n)
            }
        })?;
        Ok(n)
    }

    pub fn info_read(&self) -> Option<Msg> {
        let mut remaining: c_int = 0;
        // SAFETY: live handle; out-pointer to a local.
        let p = unsafe { sys::curl_multi_info_read(self.ptr.as_ptr(), &mut remaining) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points to a CURLMsg owned by the multi, valid until the
        // next call on it; `data` is a C union whose CURLcode member sits at
        // offset 0.
        let (msg, easy, result) = unsafe {
            let m = &*p;
            let result = *(&m.data as *const *mut c_void as *const sys::CURLcode) as i32;
            (m.msg as c_int, m.easy_handle as usize, result)
        };
        Some(Msg {
            msg,
            easy,
            result,
            remaining,
        })
    }
}
