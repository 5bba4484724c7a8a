//! `CURLSH*`: the owning [`Share`] handle.

use super::consts::c;
use super::guards::CacheMix;
use curl_sys as sys;
use std::cell::Cell;
use std::os::raw::{c_int, c_long, c_void};
use std::ptr::NonNull;

/// A share handle, owned. Easies using it hold it (`Rc<Share>`, see
/// `Easy::set_share`), so it is cleaned up after the last of them.
pub struct Share {
    ptr: NonNull<sys::CURLSH>,
    /// Bit `1 << CURL_LOCK_DATA_*` for each kind of data shared.
    shared: Cell<u64>,
    /// What ran in its connection cache (see `guards.rs`).
    mix: CacheMix,
    /// `CURL_LOCK_DATA_CONNECT` was shared once (see `set`).
    connect_made: Cell<bool>,
}

/// Before 8.22 (7.88 checked; 8.22 frees it), `CURLSHOPT_SHARE` of
/// `CURL_LOCK_DATA_CONNECT` makes a new connection cache each time, leaking
/// the one made before (UNSHARE keeps it): a repeated SHARE while it is
/// shared is a no-op here, and SHARE again after UNSHARE is refused.
fn reshare_leaks() -> bool {
    super::older_than(0x081600)
}

impl Drop for Share {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and no easy uses it any more (each one
        // holds the share while it does).
        super::without_sigpipe(|| unsafe { sys::curl_share_cleanup(self.ptr.as_ptr()) });
    }
}

impl Share {
    pub fn new() -> Option<Share> {
        super::global_init();
        // SAFETY: plain constructor.
        let ptr = NonNull::new(unsafe { sys::curl_share_init() })?;
        Some(Share {
            ptr,
            shared: Cell::new(0),
            mix: CacheMix::default(),
            connect_made: Cell::new(false),
        })
    }

    pub(super) fn as_ptr(&self) -> *const c_void {
        self.ptr.as_ptr() as *const c_void
    }

    /// `CURLSHOPT_SHARE` (`share` true) or `CURLSHOPT_UNSHARE` of a
    /// `CURL_LOCK_DATA_*` value; the `CURLSHcode` on failure.
    pub fn set(&self, share: bool, data: c_int) -> Result<(), c_int> {
        let connect = data as i64 == c::CURL_LOCK_DATA_CONNECT;
        if share && connect && reshare_leaks() && self.shares(data as i64) {
            return Ok(()); // shared already: a second cache would leak the first
        }
        let opt = if share {
            c::CURLSHOPT_SHARE
        } else {
            c::CURLSHOPT_UNSHARE
        };
        // SAFETY: live share; SHARE/UNSHARE take a long.
        let rc = unsafe {
            sys::curl_share_setopt(self.ptr.as_ptr(), opt as sys::CURLSHoption, data as c_long)
        } as c_int;
        if rc != 0 {
            return Err(rc);
        }
        if share && connect {
            self.connect_made.set(true);
        }
        if (0..64).contains(&data) {
            let bit = 1u64 << data;
            let old = self.shared.get();
            self.shared.set(if share { old | bit } else { old & !bit });
        }
        Ok(())
    }

    /// Why `CURLSHOPT_SHARE` of `data` is refused, if it is (`set`).
    pub fn share_refused(&self, data: c_int) -> Option<String> {
        let again = data as i64 == c::CURL_LOCK_DATA_CONNECT
            && reshare_leaks()
            && self.connect_made.get()
            && !self.shares(data as i64);
        again.then(|| {
            format!(
                "sharing connections again after UNSHARE: {} makes a second connection cache and leaks the first (fixed by 8.22); use a new share",
                super::this_libcurl()
            )
        })
    }

    pub(super) fn mix(&self) -> &CacheMix {
        &self.mix
    }

    /// Whether `CURL_LOCK_DATA_*` `data` is shared.
    pub fn shares(&self, data: i64) -> bool {
        (0..64).contains(&data) && self.shared.get() & (1 << data) != 0
    }
}
