//! `curl_mime*`: mime trees. libcurl frees a sub-mime (attached to a part
//! with `curl_mime_subparts`) together with its parent, and also as soon
//! as the part gets other content — before it checks anything else, so
//! also when that call then fails. This module tracks which mimes and
//! parts are still alive, so a [`Mime`] or [`Part`] whose memory libcurl
//! freed is refused, never used.

use super::easy::Easy;
use super::easy_cb::{EasyHandler, OutBuf};
use super::{code, refused, CURLcode, Fault, Res};
use curl_sys as sys;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::rc::{Rc, Weak};

#[repr(C)]
struct CurlMime {
    _private: [u8; 0],
}
#[repr(C)]
struct CurlMimePart {
    _private: [u8; 0],
}

type ReadCb = extern "C" fn(*mut c_char, usize, usize, *mut c_void) -> usize;
type SeekCb = extern "C" fn(*mut c_void, sys::curl_off_t, c_int) -> c_int;
type FreeCb = extern "C" fn(*mut c_void);

extern "C" {
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
        read: Option<ReadCb>,
        seek: Option<SeekCb>,
        free: Option<FreeCb>,
        arg: *mut c_void,
    ) -> sys::CURLcode;
    fn curl_mime_subparts(part: *mut CurlMimePart, sub: *mut CurlMime) -> sys::CURLcode;
    fn curl_mime_headers(
        part: *mut CurlMimePart,
        headers: *mut sys::curl_slist,
        take: c_int,
    ) -> sys::CURLcode;
}

/// The most mimes on a path from a tree's top-level mime down (`SubParts`
/// nests them).
pub const MAX_DEPTH: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A top-level mime: freed when its last holder goes.
    Root,
    /// A part's body: libcurl frees it with the part's mime or content.
    Attached,
    /// libcurl freed it.
    Freed,
}

struct Node {
    ptr: NonNull<CurlMime>,
    state: Cell<State>,
    /// (Root) an easy posts it: nothing in the tree may change.
    posted: Cell<bool>,
    /// (Root) who posts it (held by the `Posted` guard), for the handlers
    /// of its parts' data callbacks.
    poster: RefCell<Option<Weak<dyn Any>>>,
    /// The mime whose part this one is the body of.
    parent: RefCell<Weak<Node>>,
    /// Part address → the mime attached to that part.
    subs: RefCell<Vec<(usize, Rc<Node>)>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.state.get() == State::Root {
            self.mark_freed();
            // SAFETY: a top-level mime is ours to free once; its parts and
            // attached mimes go with it (marked above).
            unsafe { curl_mime_free(self.ptr.as_ptr()) };
        }
    }
}

impl Node {
    fn alive(&self) -> bool {
        self.state.get() != State::Freed
    }

    /// libcurl freed this mime (and so everything attached below it).
    fn mark_freed(&self) {
        self.state.set(State::Freed);
        let subs = std::mem::take(&mut *self.subs.borrow_mut());
        for (_, s) in subs {
            s.mark_freed();
        }
    }

    fn root(self: &Rc<Self>) -> Rc<Node> {
        self.root_and_level().0
    }

    fn frozen(self: &Rc<Self>) -> bool {
        self.root().posted.get()
    }

    /// The top-level mime of this one's tree, and the levels of mimes
    /// above this one (0 for a top-level mime).
    fn root_and_level(self: &Rc<Self>) -> (Rc<Node>, usize) {
        let mut n = self.clone();
        let mut level = 0;
        loop {
            let p = n.parent.borrow().upgrade();
            match p {
                Some(p) => {
                    n = p;
                    level += 1;
                }
                None => return (n, level),
            }
        }
    }

    /// Levels of mimes attached below this one (0: none). Bounded by
    /// `MAX_DEPTH`, which every attachment checks.
    fn height(&self) -> usize {
        let subs = self.subs.borrow();
        subs.iter().map(|(_, s)| 1 + s.height()).max().unwrap_or(0)
    }

    /// The part at `addr` gets new content: libcurl frees its sub-mime.
    fn content_replaced(&self, addr: usize) {
        let mut subs = self.subs.borrow_mut();
        if let Some(i) = subs.iter().position(|(a, _)| *a == addr) {
            let (_, s) = subs.remove(i);
            drop(subs);
            s.mark_freed();
        }
    }
}

/// A mime (top-level, or attached to a part), shared by its holders.
#[derive(Clone)]
pub struct Mime(Rc<Node>);

/// A mime whose holders may be gone (for data callbacks).
#[derive(Clone)]
pub struct WeakMime(Weak<Node>);

impl WeakMime {
    /// Whoever posts the tree this mime is in (see [`Mime::post`]).
    pub fn poster(&self) -> Option<Rc<dyn Any>> {
        let root = self.0.upgrade()?.root();
        let w = root.poster.borrow().clone()?;
        w.upgrade()
    }
}

/// The state of a mime, for messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MimeState {
    Open,
    Attached,
    Freed,
}

impl Mime {
    /// `curl_mime_init` (libcurl uses the easy only during the call).
    pub fn new<H: EasyHandler>(easy: &Easy<H>) -> Res<Mime> {
        let h = easy.raw()?;
        // SAFETY: live easy handle.
        let p = NonNull::new(unsafe { curl_mime_init(h) })
            .ok_or(Fault::Code(super::consts::c::CURLE_OUT_OF_MEMORY as i32))?;
        Ok(Mime(Rc::new(Node {
            ptr: p,
            state: Cell::new(State::Root),
            posted: Cell::new(false),
            poster: RefCell::new(None),
            parent: RefCell::new(Weak::new()),
            subs: RefCell::new(Vec::new()),
        })))
    }

    pub fn downgrade(&self) -> WeakMime {
        WeakMime(Rc::downgrade(&self.0))
    }

    pub fn state(&self) -> MimeState {
        match self.0.state.get() {
            State::Root => MimeState::Open,
            State::Attached => MimeState::Attached,
            State::Freed => MimeState::Freed,
        }
    }

    pub fn same(&self, other: &Mime) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// `curl_mime_free` now: refused for a posted or attached mime.
    pub fn free(&self) -> Res<()> {
        match self.0.state.get() {
            State::Freed => Ok(()),
            State::Attached => {
                refused("the mime is attached to a part (SubParts); it is freed with its parent")
            }
            State::Root if self.0.posted.get() => {
                refused("the mime is in use by an easy handle (MIMEPOST)")
            }
            State::Root => {
                self.0.mark_freed();
                // SAFETY: a live top-level mime, freed once (marked freed).
                unsafe { curl_mime_free(self.0.ptr.as_ptr()) };
                Ok(())
            }
        }
    }

    fn open_for_change(&self) -> Res<()> {
        match self.0.state.get() {
            State::Freed => refused("the mime was freed"),
            State::Attached => {
                refused("the mime is attached to a part (SubParts) and belongs to it now")
            }
            State::Root if self.0.posted.get() => refused(
                "the mime is posted by an easy handle (MIMEPOST); unset that first to change it",
            ),
            State::Root => Ok(()),
        }
    }

    /// `curl_mime_addpart`.
    pub fn add_part(&self) -> Res<Part> {
        self.open_for_change()?;
        // SAFETY: a live mime; the part belongs to it.
        let p = NonNull::new(unsafe { curl_mime_addpart(self.0.ptr.as_ptr()) })
            .ok_or(Fault::Code(super::consts::c::CURLE_OUT_OF_MEMORY as i32))?;
        Ok(Part {
            node: self.0.clone(),
            ptr: p,
        })
    }

    /// Marks the tree posted by `poster` (one at a time), which the guard
    /// holds; the guard unmarks it. Refused for an attached, freed or
    /// already posted mime.
    pub fn post(&self, poster: Rc<dyn Any>) -> Res<Posted> {
        match self.0.state.get() {
            State::Freed => refused("the mime is closed"),
            State::Attached => refused("the mime is a part's SubParts"),
            State::Root if self.0.posted.get() => refused("another easy handle posts this mime"),
            State::Root => {
                self.0.posted.set(true);
                *self.0.poster.borrow_mut() = Some(Rc::downgrade(&poster));
                Ok(Posted(self.0.clone(), poster))
            }
        }
    }
}

/// An easy's hold on the mime tree it posts (`CURLOPT_MIMEPOST`), with
/// the poster.
pub struct Posted(Rc<Node>, #[allow(dead_code)] Rc<dyn Any>);

impl Posted {
    pub(super) fn as_ptr(&self) -> *const c_void {
        self.0.ptr.as_ptr() as *const c_void
    }

    pub fn mime(&self) -> Mime {
        Mime(self.0.clone())
    }
}

impl Drop for Posted {
    fn drop(&mut self) {
        self.0.posted.set(false);
        self.0.poster.borrow_mut().take();
    }
}

/// A part of a mime. Usable while its mime is alive and not posted.
pub struct Part {
    node: Rc<Node>,
    ptr: NonNull<CurlMimePart>,
}

/// What a part's data callbacks (`curl_mime_data_cb`) call. libcurl owns
/// the handler from then on and drops it when the part's content is
/// replaced or the part freed.
pub trait PartHandler: 'static {
    fn read(&self, buf: &OutBuf<'_>) -> usize;
    fn seek(&self, offset: i64, origin: c_int) -> c_int;
    fn panicked(&self, msg: String);
}

fn with_part<P: PartHandler, T>(arg: *mut c_void, fail: T, f: impl FnOnce(&P) -> T) -> T {
    if arg.is_null() {
        return fail;
    }
    // SAFETY: arg is the `Box<P>` given to curl_mime_data_cb; libcurl frees
    // it (through free_cb) only after its last use.
    let h = unsafe { &*(arg as *const P) };
    super::unwind_guard(|| f(h), |msg| h.panicked(msg), fail)
}

extern "C" fn read_cb<P: PartHandler>(
    buf: *mut c_char,
    size: usize,
    nitems: usize,
    arg: *mut c_void,
) -> usize {
    let abort = super::consts::c::CURL_READFUNC_ABORT as usize;
    // SAFETY: libcurl lends size * nitems writable bytes for the call.
    let out = unsafe { OutBuf::new(buf, size.saturating_mul(nitems)) };
    with_part(arg, abort, |h: &P| h.read(&out))
}

extern "C" fn seek_cb<P: PartHandler>(
    arg: *mut c_void,
    offset: sys::curl_off_t,
    origin: c_int,
) -> c_int {
    let fail = super::consts::c::CURL_SEEKFUNC_FAIL as c_int;
    with_part(arg, fail, |h: &P| h.seek(offset as i64, origin))
}

extern "C" fn free_cb<P: PartHandler>(arg: *mut c_void) {
    if !arg.is_null() {
        // SAFETY: arg came from Box::into_raw in `Part::data_cb`; libcurl
        // calls the free callback once per arg.
        drop(unsafe { Box::from_raw(arg as *mut P) });
    }
}

impl Part {
    fn open(&self) -> Res<*mut CurlMimePart> {
        if !self.node.alive() {
            return refused("the part's mime was freed");
        }
        if self.node.frozen() {
            return refused(
                "the mime is posted by an easy handle (MIMEPOST); unset that first to change it",
            );
        }
        Ok(self.ptr.as_ptr())
    }

    fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The mime this part belongs to.
    pub fn mime(&self) -> Mime {
        Mime(self.node.clone())
    }

    /// Name, filename, type or encoder (`b'n'`, `b'f'`, `b't'`, `b'e'`);
    /// libcurl copies the string.
    pub fn set_str(&self, which: u8, v: Option<&CStr>) -> Res<()> {
        let p = self.open()?;
        let s = v.map_or(ptr::null(), |c| c.as_ptr());
        // SAFETY: a live part; the string is copied.
        code(unsafe {
            match which {
                b'n' => curl_mime_name(p, s),
                b'f' => curl_mime_filename(p, s),
                b't' => curl_mime_type(p, s),
                _ => curl_mime_encoder(p, s),
            }
        } as CURLcode)
    }

    /// `curl_mime_filedata` (content: an attached mime is freed first).
    pub fn filedata(&self, path: Option<&CStr>) -> Res<()> {
        let p = self.open()?;
        self.node.content_replaced(self.addr());
        let s = path.map_or(ptr::null(), |c| c.as_ptr());
        // SAFETY: a live part; the path is copied.
        code(unsafe { curl_mime_filedata(p, s) } as CURLcode)
    }

    /// `curl_mime_data` (copied, any bytes).
    pub fn data(&self, bytes: &[u8]) -> Res<()> {
        let p = self.open()?;
        self.node.content_replaced(self.addr());
        // A size of CURL_ZERO_TERMINATED (-1) would mean strlen: never
        // reached (a slice is shorter).
        // SAFETY: a live part; libcurl copies `bytes`.
        code(unsafe { curl_mime_data(p, bytes.as_ptr() as *const c_char, bytes.len()) } as CURLcode)
    }

    /// `curl_mime_data_cb`: the handler is libcurl's from now on.
    pub fn data_cb<P: PartHandler>(&self, size: i64, handler: P) -> Res<()> {
        let p = self.open()?;
        self.node.content_replaced(self.addr());
        let arg = Box::into_raw(Box::new(handler)) as *mut c_void;
        // SAFETY: a live part; the trampolines match the callback types;
        // arg's ownership passes to libcurl's free callback.
        let rc = unsafe {
            curl_mime_data_cb(
                p,
                size,
                Some(read_cb::<P>),
                Some(seek_cb::<P>),
                Some(free_cb::<P>),
                arg,
            )
        } as CURLcode;
        if rc != super::CURLE_OK {
            // libcurl did not take it.
            free_cb::<P>(arg);
        }
        code(rc)
    }

    /// `curl_mime_headers` with a list libcurl takes over.
    pub fn headers(&self, items: &[CString]) -> Res<()> {
        let p = self.open()?;
        let l = super::easy::Slist::new(items)
            .ok_or(Fault::Code(super::consts::c::CURLE_OUT_OF_MEMORY as i32))?;
        let raw = l.into_raw();
        // SAFETY: a live part; take_ownership = 1 hands the list to libcurl.
        let rc = unsafe { curl_mime_headers(p, raw, 1) } as CURLcode;
        if rc != super::CURLE_OK && !raw.is_null() {
            // SAFETY: libcurl did not take the list.
            unsafe { sys::curl_slist_free_all(raw) };
        }
        code(rc)
    }

    /// `curl_mime_subparts`: `sub` (top-level, not posted, not the root of
    /// this part's own tree) becomes this part's body; libcurl frees it
    /// with the tree from now on.
    pub fn subparts(&self, sub: &Mime) -> Res<()> {
        let p = self.open()?;
        let s = &sub.0;
        match s.state.get() {
            State::Freed => return refused("the mime is closed"),
            State::Attached => return refused("it is already attached to a part"),
            State::Root if s.posted.get() => return refused("it is posted by an easy handle"),
            State::Root => {}
        }
        let (root, level) = self.node.root_and_level();
        if Rc::ptr_eq(&root, s) {
            // libcurl refuses it too, but only after freeing the content.
            return refused("a mime cannot be a part of itself");
        }
        // (mimes on the deepest path: this part's mime and those above it,
        // then `sub` and those below it)
        if (level + 1) + (s.height() + 1) > MAX_DEPTH {
            // libcurl frees, reads and sizes a tree recursively, and so do
            // the binding's own drops: a deep enough tree overflows the
            // stack (a crash at some 100,000 levels)
            return refused(format!(
                "the tree of mimes would be more than {MAX_DEPTH} levels deep (libcurl handles trees recursively)"
            ));
        }
        self.node.content_replaced(self.addr());
        // SAFETY: a live part and a live top-level mime; on success the part
        // owns the mime.
        code(unsafe { curl_mime_subparts(p, s.ptr.as_ptr()) } as CURLcode)?;
        s.state.set(State::Attached);
        *s.parent.borrow_mut() = Rc::downgrade(&self.node);
        self.node.subs.borrow_mut().push((self.addr(), s.clone()));
        Ok(())
    }
}
