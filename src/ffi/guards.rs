//! Guards applied when a transfer starts (`Easy::prepare`, called by
//! `Easy::perform` and `Multi::add`), for libcurl bugs that depend on more
//! than one option or on what ran before:
//!
//! - before 8.7.0, a handle whose trailer callback ran stays in its
//!   "trailers done" state, and its next chunked upload writes before its
//!   upload buffer: such a handle cannot start another transfer;
//! - a file:// transfer's connection is never kept in a connection cache
//!   (`FORBID_REUSE` while the URL is file://): a transfer that later
//!   prunes it as dead frees its own protocol state as the file one;
//! - before 8.22.0, a file:// transfer runs without progress callbacks
//!   (`NOPROGRESS` while the URL is file://): one that aborts at a certain
//!   point skips the transfer's "done" step, and the file's path and
//!   descriptor are never freed;
//! - `CONNECT_ONLY` over TLS may negotiate HTTP/2, after which `easy:Recv`
//!   crashes in the HTTP/2 code (before 8.1.0) or fails (8.22): on every
//!   version `CONNECT_ONLY` transfers are made with `HTTP_VERSION` 1.1;
//! - before 8.1.0, checking whether an idle HTTP/2 connection is dead, with
//!   a new transfer of another protocol as the checker, reads that
//!   transfer's HTTP state, which it does not have (a crash for `dict://`,
//!   `gopher://`, `telnet://`; reads out of bounds for the others): a
//!   connection cache (a multi's, a share's, a handle's own for `Perform`)
//!   runs either transfers that may use HTTP/2 or transfers of other
//!   protocols, not both, and redirects go to http and https only;
//! - before 8.12.0, a handle that holds the connection of its
//!   `CONNECT_ONLY` transfer leaks it when it starts another transfer: it
//!   cannot start one while it holds it (and, checked in `set_share`, a
//!   handle that made its own TLS session cache leaks it when a share of
//!   TLS sessions is set: refused);
//! - before 8.22.0, a transfer that ends while its name is resolved over
//!   DoH (an abort, a timeout, `RemoveHandle`) leaves the lookup's state
//!   in the handle, and the handle's next transfer loses it: the handle
//!   cannot start one (`Easy::doh_ended`);
//! - before 8.22.0, a handle that `Send`, `Recv` or a WebSocket call
//!   attached to its `CONNECT_ONLY` connection loses that connection on
//!   `curl_easy_upkeep` and on a share change (`Easy::attached_conn_guard`,
//!   checked by `upkeep` and `set_share`);
//! - from 8.0 (8.22 checked; 7.88 unaffected), `CONNECT_ONLY` 2 with
//!   `CUSTOMREQUEST` "HEAD": libcurl sends the request, then never ends the
//!   transfer, its `TIMEOUT` ignored (`Perform` never returns): refused;
//!   `CONNECT_ONLY` 2 with a URL that is not ws:// or wss:// (undefined,
//!   libcurl's documentation says): the same wait for a server that does
//!   not answer: refused;
//!   and the same for a `CONNECT_ONLY` 2 transfer paused inside `Perform`
//!   (a header callback returning `CURL_WRITEFUNC_PAUSE`, or `easy:Pause`
//!   with `CURLPAUSE_RECV` from a callback): refused (`pause_never_ends`,
//!   checked by `Easy::perform`, `Easy::pause` and the data trampolines).

use super::consts::c;
use super::easy::Easy;
use super::easy_cb::EasyHandler;
use super::{older_than, refused, this_libcurl, Res};
use std::cell::Cell;
use std::ffi::CString;
use std::os::raw::c_long;

/// What ran in a connection cache (for the HTTP/2 guard).
#[derive(Default)]
pub struct CacheMix {
    h2: Cell<bool>,
    other: Cell<bool>,
}

/// The options the guards look at, as set, and what they applied.
#[derive(Default, Clone)]
pub struct Starts {
    pub(super) connect_only: bool,
    /// `CONNECT_ONLY` 2 (WebSocket) as set, and `CUSTOMREQUEST` is "HEAD".
    connect_only_ws: bool,
    custom_head: bool,
    follow: bool,
    /// `HTTP_VERSION` as set.
    version: c_long,
    /// The version applied last, if the guard changed it.
    applied_version: Option<c_long>,
    /// `FORBID_REUSE` as set, and whether the guard turned it on (file://).
    forbid_reuse: c_long,
    forbid_applied: bool,
    /// `DOH_URL` is set.
    pub(super) doh: bool,
    /// `NOPROGRESS` as set (`None`: libcurl's default, 1), and whether the
    /// guard turned it on (file://, before 8.22.0).
    noprogress: Option<c_long>,
    noprogress_applied: bool,
    /// The URL option's scheme, or the one libcurl guesses for a URL
    /// without one (`None` as guessed: `DEFAULT_PROTOCOL` applies first).
    url: Option<(Scheme, bool)>,
    default_protocol: Option<Scheme>,
    /// `REDIR_PROTOCOLS_STR` or `REDIR_PROTOCOLS` as set.
    redir: Redir,
    /// The guard narrowed the redirect protocols.
    redir_narrowed: bool,
}

#[derive(Default, Clone)]
enum Redir {
    #[default]
    Default,
    Mask(c_long),
    List(String),
}

/// A transfer's scheme, without allocating for the common two.
#[derive(Clone, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Named(Box<str>),
}

impl Scheme {
    fn of(name: &[u8]) -> Scheme {
        if name.eq_ignore_ascii_case(b"http") {
            Scheme::Http
        } else if name.eq_ignore_ascii_case(b"https") {
            Scheme::Https
        } else {
            Scheme::Named(String::from_utf8_lossy(name).to_ascii_lowercase().into())
        }
    }

    fn name(&self) -> &str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Named(s) => s,
        }
    }
}

/// libcurl's `MAX_SCHEME_LEN`: a longer run of scheme characters is no
/// scheme.
const MAX_SCHEME_LEN: usize = 40;

/// A URL's scheme (`scheme:/...`), or the one libcurl guesses from the host
/// of a URL without one; the flag says it was guessed.
fn url_scheme(url: &[u8]) -> (Scheme, bool) {
    let end = url
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"+-.".contains(&b)))
        .unwrap_or(url.len());
    // libcurl's rule (`Curl_is_absolute_url` while guessing schemes): up
    // to 40 scheme characters, then ":/" (one slash is enough: "file:/x"
    // is a file URL); anything else has its scheme guessed from the host.
    if (1..=MAX_SCHEME_LEN).contains(&end) && url[end..].starts_with(b":/") {
        return (Scheme::of(&url[..end]), false);
    }
    for p in ["ftp", "dict", "ldap", "imap", "smtp", "pop3"] {
        let n = p.len();
        if url.len() > n && url[..n].eq_ignore_ascii_case(p.as_bytes()) && url[n] == b'.' {
            return (Scheme::Named(p.into()), true);
        }
    }
    (Scheme::Http, true)
}

impl Starts {
    /// Notes a long option the guards look at.
    pub(super) fn long_set(&mut self, opt: i64, v: c_long) {
        match opt {
            c::CURLOPT_CONNECT_ONLY => {
                self.connect_only = v != 0;
                self.connect_only_ws = v == 2;
            }
            c::CURLOPT_FOLLOWLOCATION => self.follow = v != 0,
            c::CURLOPT_FORBID_REUSE => {
                self.forbid_reuse = v;
                self.forbid_applied = false;
            }
            c::CURLOPT_NOPROGRESS => {
                self.noprogress = Some(v);
                self.noprogress_applied = false;
            }
            c::CURLOPT_HTTP_VERSION => {
                self.version = v;
                self.applied_version = None;
            }
            c::CURLOPT_REDIR_PROTOCOLS => {
                self.redir = Redir::Mask(v);
                self.redir_narrowed = false;
            }
            _ => {}
        }
    }

    /// Whether the guards look at string option `opt`.
    pub(super) fn watches_string(opt: i64) -> bool {
        matches!(
            opt,
            c::CURLOPT_URL
                | c::CURLOPT_DOH_URL
                | c::CURLOPT_DEFAULT_PROTOCOL
                | c::CURLOPT_REDIR_PROTOCOLS_STR
                | c::CURLOPT_CUSTOMREQUEST
        )
    }

    /// Notes a string option the guards look at.
    pub(super) fn string_set(&mut self, opt: i64, v: Option<&[u8]>) {
        match opt {
            c::CURLOPT_URL => self.url = v.map(url_scheme),
            c::CURLOPT_DOH_URL => self.doh = v.is_some_and(|u| !u.is_empty()),
            c::CURLOPT_DEFAULT_PROTOCOL => self.default_protocol = v.map(Scheme::of),
            c::CURLOPT_CUSTOMREQUEST => {
                self.custom_head = v.is_some_and(|m| m.eq_ignore_ascii_case(b"HEAD"))
            }
            c::CURLOPT_REDIR_PROTOCOLS_STR => {
                self.redir = v.map_or(Redir::Default, |s| {
                    Redir::List(String::from_utf8_lossy(s).into_owned())
                });
                self.redir_narrowed = false;
            }
            _ => {}
        }
    }
}

/// Whether a transfer of `scheme` with `HTTP_VERSION` `v` may use HTTP/2.
fn may_h2(scheme: &Scheme, v: c_long) -> bool {
    let v = v as i64;
    match scheme {
        Scheme::Https => v != c::CURL_HTTP_VERSION_1_0 && v != c::CURL_HTTP_VERSION_1_1,
        Scheme::Http => {
            v == c::CURL_HTTP_VERSION_2_0 || v == c::CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
        }
        Scheme::Named(_) => false,
    }
}

/// The redirect protocols as set, narrowed to http and https, as a
/// `REDIR_PROTOCOLS_STR` value.
fn narrowed(r: &Redir) -> String {
    let keep = |name: &str| -> bool { name == "http" || name == "https" };
    let out: Vec<&str> = match r {
        Redir::Default => vec!["http", "https"],
        Redir::Mask(m) => {
            let mut v = Vec::new();
            if *m as i64 & c::CURLPROTO_HTTP != 0 {
                v.push("http");
            }
            if *m as i64 & c::CURLPROTO_HTTPS != 0 {
                v.push("https");
            }
            v
        }
        Redir::List(s) => {
            let l = s.to_ascii_lowercase();
            if l.split(',').any(|p| p.trim() == "all") {
                vec!["http", "https"]
            } else {
                let mut v: Vec<&str> = Vec::new();
                for p in ["http", "https"] {
                    if l.split(',').any(|q| q.trim() == p) && keep(p) {
                        v.push(p);
                    }
                }
                v
            }
        }
    };
    out.join(",")
}

impl<H: EasyHandler> Easy<H> {
    /// The scheme the next transfer uses (its URL's, guessed as libcurl
    /// would, or the CURLU object's).
    fn scheme(&self) -> Scheme {
        if let Some(u) = self.kept.borrow().url.as_ref() {
            if let Ok(s) = u.get(c::CURLUPART_SCHEME as i32, 0) {
                return Scheme::of(&s);
            }
        }
        let st = self.starts.borrow();
        match &st.url {
            Some((s, false)) => s.clone(),
            Some((guess, true)) => st.default_protocol.clone().unwrap_or_else(|| guess.clone()),
            None => Scheme::Http,
        }
    }

    /// A `CONNECT_ONLY` 2 transfer that libcurl (8.0 on; 8.22 checked, 7.88
    /// times out as it should) never ends once a callback paused it inside
    /// `curl_easy_perform`, its `TIMEOUT` ignored.
    pub(super) fn pause_never_ends(&self) -> bool {
        self.starts.borrow().connect_only_ws && !older_than(0x080000)
    }

    /// Why such a pause is refused (`Easy::perform`, `Easy::pause`), after
    /// `what` ("pausing ...").
    pub(super) fn pause_refusal(what: &str) -> String {
        format!(
            "{what} a CONNECT_ONLY 2 transfer inside Perform: {} never ends it once paused, whatever its TIMEOUT (Perform would never return)",
            this_libcurl()
        )
    }

    /// Applies the guards before a transfer starts in the connection cache
    /// `cache` (a multi's; `None`: the handle's own, for `perform`). A
    /// share that shares connections has the cache instead.
    /// Sets long option `opt` to 1 while `on`, and back to the script's
    /// own value `own` once not; `applied`: whether it is forced now.
    /// Returns whether it is forced after the call.
    fn force_on(&self, opt: i64, on: bool, applied: bool, own: c_long) -> Res<bool> {
        if on != applied {
            self.set_long_raw(opt, if on { 1 } else { own })?;
        }
        Ok(on)
    }

    pub(super) fn prepare(&self, cache: Option<&CacheMix>) -> Res<()> {
        if self.handler.trailers_sent.get() && older_than(0x080700) {
            return refused(format!(
                "this easy handle sent trailers (TRAILERFUNCTION), and {} cannot run another transfer on it without corrupting memory (fixed in 8.7.0): use DupHandle for a fresh handle with the same options",
                this_libcurl()
            ));
        }
        if self.doh_left.get() && older_than(0x081600) {
            return refused(format!(
                "this easy's last transfer ended while its host name was being resolved over DNS-over-HTTPS (DOH_URL), and {} loses that lookup's memory when the handle starts another transfer (8.22.0 does not): use DupHandle for a fresh handle with the same options",
                this_libcurl()
            ));
        }
        if older_than(0x080C00) && self.connect_only_ran.get() {
            // The connection a CONNECT_ONLY transfer left for Send/Recv is
            // still attached when its socket is known, and always once
            // Send, Recv or a WebSocket call used it (ACTIVESOCKET can say
            // -1 then: after a share change it looks in another cache).
            let held = self.co_attached.get()
                || self
                    .info_socket(c::CURLINFO_ACTIVESOCKET as i32)
                    .is_ok_and(|s| s != -1);
            if held {
                return refused(format!(
                    "this easy holds the connection of its CONNECT_ONLY transfer (for Send and Recv), and {} cannot start another transfer on it without leaking that connection (fixed in 8.12.0): use DupHandle for a fresh handle with the same options",
                    this_libcurl()
                ));
            }
        }
        let (ws, head) = {
            let st = self.starts.borrow();
            (st.connect_only_ws, st.custom_head)
        };
        if ws && head && !older_than(0x080000) {
            return refused(format!(
                "CONNECT_ONLY 2 with CUSTOMREQUEST \"HEAD\": {} sends the request and then never ends the transfer, whatever its TIMEOUT (easy:Perform would never return); unset one of them",
                this_libcurl()
            ));
        }
        if ws && !older_than(0x080000) {
            let scheme = self.scheme();
            if !matches!(scheme.name(), "ws" | "wss") {
                return refused(format!(
                    "CONNECT_ONLY 2 is for ws:// and wss:// URLs (libcurl leaves it undefined for other protocols), and this URL's scheme is {}: {} waits for the server's response whatever the TIMEOUT (easy:Perform would never return from a server that does not answer); use CONNECT_ONLY 1 for a connection of another protocol",
                    scheme.name(),
                    this_libcurl()
                ));
            }
        }
        if self.starts.borrow().connect_only {
            self.connect_only_ran.set(true);
        }
        self.doh_ran.set(self.starts.borrow().doh);
        self.co_conn.set(false); // a new transfer: no CONNECT_ONLY connection yet
        self.done.set(false);
        if !(self.ssl_from_share.get() && self.kept.borrow().share.is_some()) {
            self.own_ssl_cache.set(true);
        }
        let (connect_only, version, follow) = {
            let st = self.starts.borrow();
            (st.connect_only, st.version, st.follow)
        };
        // CONNECT_ONLY: HTTP/1.1, on every version: Send and Recv carry the
        // script's own bytes, which an HTTP/2 connection cannot (before
        // 8.1.0 Recv crashes in the HTTP/2 code, 8.22 fails it with
        // CURLE_HTTP2).
        let want = if connect_only {
            Some(c::CURL_HTTP_VERSION_1_1 as c_long)
        } else {
            None
        };
        let applied = self.starts.borrow().applied_version;
        if want != applied {
            self.set_long_raw(c::CURLOPT_HTTP_VERSION, want.unwrap_or(version))?;
            self.starts.borrow_mut().applied_version = want;
        }
        // file://: the connection is never kept. libcurl puts a file://
        // "connection" in the connection cache, and the transfer that later
        // prunes it as dead frees that transfer's own protocol state as if
        // it were the file one (7.88: an invalid free; fuzz seed
        // 1737867550, an smb:// transfer pruning).
        let scheme = self.scheme();
        let file = matches!(&scheme, Scheme::Named(n) if n.eq_ignore_ascii_case("file"));
        let (forbid_applied, forbid_reuse) = {
            let st = self.starts.borrow();
            (st.forbid_applied, st.forbid_reuse)
        };
        let applied = self.force_on(c::CURLOPT_FORBID_REUSE, file, forbid_applied, forbid_reuse)?;
        self.starts.borrow_mut().forbid_applied = applied;
        // file://, before 8.22.0: no progress callbacks. A progress
        // callback that aborts at the end of the loop pass in which the
        // transfer (which has no socket) went to DONE makes libcurl jump to
        // COMPLETED without its "done" step, so the file protocol's state
        // (the file's path, and its descriptor) is never freed (7.88: found
        // by the fuzzer under valgrind; 8.22 frees it with the handle).
        let quiet = file && older_than(0x081600);
        let (noprogress_applied, noprogress) = {
            let st = self.starts.borrow();
            (st.noprogress_applied, st.noprogress)
        };
        let own = noprogress.unwrap_or(1);
        let applied = self.force_on(c::CURLOPT_NOPROGRESS, quiet, noprogress_applied, own)?;
        self.starts.borrow_mut().noprogress_applied = applied;
        if !older_than(0x080100) {
            return Ok(());
        }
        let h2 = !connect_only && may_h2(&scheme, version);
        let other = matches!(scheme, Scheme::Named(_));
        // Redirects: http and https only, so a transfer stays in its class.
        let narrow = follow && !other;
        let (narrowed_now, redir) = {
            let st = self.starts.borrow();
            (st.redir_narrowed, st.redir.clone())
        };
        if narrow && !narrowed_now {
            let list = CString::new(narrowed(&redir)).unwrap_or_default();
            self.set_string_raw(c::CURLOPT_REDIR_PROTOCOLS_STR, Some(&list))?;
            self.starts.borrow_mut().redir_narrowed = true;
        } else if !narrow && narrowed_now {
            match &redir {
                Redir::Default => self.set_string_raw(c::CURLOPT_REDIR_PROTOCOLS_STR, None)?,
                Redir::Mask(m) => self.set_long_raw(c::CURLOPT_REDIR_PROTOCOLS, *m)?,
                Redir::List(s) => {
                    let s = CString::new(s.as_str()).unwrap_or_default();
                    self.set_string_raw(c::CURLOPT_REDIR_PROTOCOLS_STR, Some(&s))?
                }
            }
            self.starts.borrow_mut().redir_narrowed = false;
        }
        // The connection cache: a share's, the multi's or the handle's own.
        let share = self
            .kept
            .borrow()
            .share
            .clone()
            .filter(|s| s.shares(c::CURL_LOCK_DATA_CONNECT));
        let mix = match (&share, cache) {
            (Some(s), _) => s.mix(),
            (None, Some(m)) => m,
            (None, None) => &self.mix,
        };
        if (h2 && mix.other.get()) || (other && mix.h2.get()) {
            return refused(format!(
                "a {}:// transfer cannot share a connection cache with transfers that may use HTTP/2 ({} crashes when it checks an idle HTTP/2 connection for such a transfer; fixed in 8.1.0): use another multi (or share), or HTTP_VERSION 1.1 for the HTTPS transfers",
                scheme.name(),
                this_libcurl()
            ));
        }
        if h2 {
            mix.h2.set(true);
        }
        if other {
            mix.other.set(true);
        }
        Ok(())
    }
}
