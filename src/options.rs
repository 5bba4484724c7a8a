//! The option tables, one per Lua state, all derived from data: easy
//! options from libcurl's own `curl_easy_option_next` table (name, id,
//! kind), multi options and infos from the header constants (build.rs),
//! each with the binding's override where `SetOpt` does more than pass the
//! value by its kind. Code names for error values come from here too.

pub use crate::ffi::consts::{c, CONSTANTS};
pub use crate::ffi::ot;
use crate::ffi::{self, Cb};
use mlua::Lua;
use std::collections::HashMap;
use std::rc::Rc;

/// What `SetOpt` does with an option beyond passing the value by its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// By its kind (long, off_t, string, list, blob).
    None,
    /// Refused, for this reason.
    Refused(&'static str),
    /// An easy callback's `*FUNCTION` / `*DATA`.
    Callback(Cb),
    Data(Cb),
    /// A Lua value kept for `GetInfo(CURLINFO_PRIVATE)`.
    Private,
    /// `POSTFIELDS`, `COPYPOSTFIELDS`: bytes kept by the handle.
    PostFields,
    /// `POSTFIELDSIZE(_LARGE)`: checked against the kept body.
    PostFieldSize,
    /// `FORBID_REUSE`: stays on while a close-socket function is set.
    ForbidReuse,
    /// Objects: `SHARE`, `CURLU`, `MIMEPOST`.
    Share,
    Curlu,
    MimePost,
    /// `STREAM_DEPENDS(_E)`: checked, then ignored (see the docs' guards).
    StreamDepends,
    /// Multi callbacks and their data; the blocklist string arrays.
    MultiSocket,
    MultiTimer,
    MultiPush,
    MultiData,
    MultiStrings,
}

/// Options refused on purpose, and the options handled specially.
const EASY_OVERRIDES: &[(i64, Special)] = &[
    (
        c::CURLOPT_ERRORBUFFER,
        Special::Refused("is managed by the module: error details are part of raised errors"),
    ),
    (
        c::CURLOPT_STDERR,
        Special::Refused(
            "takes a C FILE*; use DEBUGFUNCTION (with VERBOSE) to receive verbose output",
        ),
    ),
    (
        c::CURLOPT_SSL_CTX_FUNCTION,
        Special::Refused("hands out the TLS library's SSL_CTX, which Lua cannot use"),
    ),
    (
        c::CURLOPT_SSL_CTX_DATA,
        Special::Refused("hands out the TLS library's SSL_CTX, which Lua cannot use"),
    ),
    (
        c::CURLOPT_IOCTLFUNCTION,
        Special::Refused("is deprecated since libcurl 7.18.0; use SEEKFUNCTION"),
    ),
    (
        c::CURLOPT_IOCTLDATA,
        Special::Refused("is deprecated since libcurl 7.18.0; use SEEKFUNCTION"),
    ),
    (
        c::CURLOPT_CONV_FROM_NETWORK_FUNCTION,
        Special::Refused("has no effect since libcurl 7.82.0"),
    ),
    (
        c::CURLOPT_CONV_TO_NETWORK_FUNCTION,
        Special::Refused("has no effect since libcurl 7.82.0"),
    ),
    (
        c::CURLOPT_CONV_FROM_UTF8_FUNCTION,
        Special::Refused("has no effect since libcurl 7.82.0"),
    ),
    (
        c::CURLOPT_HTTPPOST,
        Special::Refused("belongs to the deprecated form API; use curl.Mime and MIMEPOST"),
    ),
    (c::CURLOPT_PRIVATE, Special::Private),
    (c::CURLOPT_POSTFIELDS, Special::PostFields),
    (c::CURLOPT_COPYPOSTFIELDS, Special::PostFields),
    (c::CURLOPT_POSTFIELDSIZE, Special::PostFieldSize),
    (c::CURLOPT_POSTFIELDSIZE_LARGE, Special::PostFieldSize),
    (c::CURLOPT_FORBID_REUSE, Special::ForbidReuse),
    (c::CURLOPT_SHARE, Special::Share),
    (c::CURLOPT_CURLU, Special::Curlu),
    (c::CURLOPT_MIMEPOST, Special::MimePost),
    (c::CURLOPT_STREAM_DEPENDS, Special::StreamDepends),
    (c::CURLOPT_STREAM_DEPENDS_E, Special::StreamDepends),
];

const MULTI_OVERRIDES: &[(i64, Special)] = &[
    (c::CURLMOPT_SOCKETFUNCTION, Special::MultiSocket),
    (c::CURLMOPT_TIMERFUNCTION, Special::MultiTimer),
    (c::CURLMOPT_PUSHFUNCTION, Special::MultiPush),
    (c::CURLMOPT_SOCKETDATA, Special::MultiData),
    (c::CURLMOPT_TIMERDATA, Special::MultiData),
    (c::CURLMOPT_PUSHDATA, Special::MultiData),
    (c::CURLMOPT_PIPELINING_SITE_BL, Special::MultiStrings),
    (c::CURLMOPT_PIPELINING_SERVER_BL, Special::MultiStrings),
];

/// One option: its name without the prefix, its `CURLOT_*` kind and what
/// `SetOpt` does with it.
pub struct Opt {
    pub name: String,
    /// The C name (`CURLOPT_URL`), for messages without formatting per call.
    pub full: String,
    pub kind: i32,
    pub special: Special,
}

/// `CURLINFO_*` type bits.
pub use ffi::{
    INFO_DOUBLE, INFO_LONG, INFO_OFF_T, INFO_SLIST, INFO_SOCKET, INFO_STRING, INFO_TYPEMASK,
};
const INFO_MASK: i32 = 0x0fffff;

pub struct Tables {
    /// Easy option id → option (canonical name).
    pub easy: HashMap<i32, Opt>,
    /// Every easy option name (aliases too), normalised → id.
    pub easy_names: Vec<(String, i32)>,
    /// Multi option id → option.
    pub multi: HashMap<i32, Opt>,
    pub multi_names: Vec<(String, i32)>,
    /// CURLINFO id → name without `CURLINFO_`.
    pub info: HashMap<i32, String>,
    pub info_names: Vec<(String, i32)>,
    /// Code names by family prefix and value, enumerators preferred.
    pub codes: HashMap<(&'static str, i64), &'static str>,
}

pub const CODE_FAMILIES: &[&str] = &["CURLE_", "CURLM_", "CURLSHE_", "CURLUE_", "CURLHE_"];

/// `FollowLocation`, `FOLLOWLOCATION`, `follow_location` → `followlocation`.
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// The tables for this Lua state. Kept in mlua's app data, not in a static,
/// so they are freed with the state.
pub fn tables(lua: &Lua) -> Rc<Tables> {
    if let Some(t) = lua.app_data_ref::<Rc<Tables>>() {
        return t.clone();
    }
    let t = Rc::new(build());
    lua.set_app_data(t.clone());
    t
}

fn easy_special(id: i64) -> Special {
    if let Some(cb) = Cb::by_function(id) {
        return Special::Callback(cb);
    }
    if let Some(cb) = Cb::ALL.iter().find(|cb| cb.data_opt() == id) {
        return Special::Data(*cb);
    }
    EASY_OVERRIDES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or(Special::None, |(_, s)| *s)
}

/// A multi option's kind, from its id range (libcurl's option types).
fn multi_kind(id: i32) -> i32 {
    match id / 10000 {
        0 => ot::LONG,
        1 => ot::OBJECT,
        2 => ot::FUNCTION,
        3 => ot::OFF_T,
        _ => -1,
    }
}

/// Whether `id` is a `CURLINFO_*` of this build whose value is a number
/// (long, double, `off_t`): `GetInfo`'s fast path serves those.
pub fn numeric_info(id: i64) -> bool {
    // One bit per id, by type (the top nibble) and number (below 128: all
    // of libcurl's; an id past that would only take the full path): a test
    // per call instead of a search.
    static IDS: std::sync::OnceLock<[u128; 16]> = std::sync::OnceLock::new();
    let ids = IDS.get_or_init(|| {
        let mut bits = [0u128; 16];
        for &(name, value, _) in CONSTANTS {
            let v = value as i32;
            let ty = v & INFO_TYPEMASK;
            let n = v & INFO_MASK;
            if name.starts_with("CURLINFO_")
                && v as i64 == value
                && n != 0
                && n < 128
                && (ty == INFO_LONG || ty == INFO_DOUBLE || ty == INFO_OFF_T)
                && v & !(INFO_TYPEMASK | INFO_MASK) == 0
            {
                bits[(v >> 20) as usize & 15] |= 1 << n;
            }
        }
        bits
    });
    let v = id as i32;
    let n = v & INFO_MASK;
    v as i64 == id
        && v & !(INFO_TYPEMASK | INFO_MASK) == 0
        && n < 128
        && ids[(v >> 20) as usize & 15] & (1 << n) != 0
}

fn build() -> Tables {
    let mut easy = HashMap::new();
    let mut easy_names = Vec::new();
    for o in ffi::easy_options() {
        easy_names.push((normalize(&o.name), o.id));
        if !o.alias || !easy.contains_key(&o.id) {
            let special = easy_special(o.id as i64);
            easy.insert(
                o.id,
                Opt {
                    full: format!("CURLOPT_{}", o.name),
                    name: o.name,
                    kind: o.kind,
                    special,
                },
            );
        }
    }
    easy_names.sort();
    let mut multi = HashMap::new();
    let mut multi_names = Vec::new();
    let mut info = HashMap::new();
    let mut codes: HashMap<(&'static str, i64), &'static str> = HashMap::new();
    for &(name, value, is_enum) in CONSTANTS {
        if let Some(rest) = name.strip_prefix("CURLMOPT_") {
            if rest != "LASTENTRY" {
                let id = value as i32;
                multi_names.push((normalize(rest), id));
                multi.entry(id).or_insert_with(|| Opt {
                    name: rest.to_string(),
                    full: name.to_string(),
                    kind: multi_kind(id),
                    special: MULTI_OVERRIDES
                        .iter()
                        .find(|(i, _)| *i == value)
                        .map_or(Special::None, |(_, s)| *s),
                });
            }
        } else if let Some(rest) = name.strip_prefix("CURLINFO_") {
            let v = value as i32;
            let ty = v & INFO_TYPEMASK;
            if v & INFO_MASK != 0
                && (INFO_STRING..=INFO_OFF_T).contains(&ty)
                && v & !(INFO_TYPEMASK | INFO_MASK) == 0
            {
                // enumerators win over old macro aliases for the canonical name
                if is_enum || !info.contains_key(&v) {
                    info.insert(v, rest.to_string());
                }
            }
        }
        for fam in CODE_FAMILIES {
            if name.starts_with(fam) && !name.ends_with("_LAST") && !name.contains("OBSOLETE") {
                let key = (*fam, value);
                if is_enum || !codes.contains_key(&key) {
                    codes.insert(key, name);
                }
            }
        }
    }
    let mut info_names = Vec::new();
    for &(name, value, _) in CONSTANTS {
        if let Some(rest) = name.strip_prefix("CURLINFO_") {
            if info.contains_key(&(value as i32)) {
                info_names.push((normalize(rest), value as i32));
            }
        }
    }
    Tables {
        easy,
        easy_names,
        multi,
        multi_names,
        info,
        info_names,
        codes,
    }
}

/// `CURLE_COULDNT_CONNECT` for (`"CURLE_"`, 7).
pub fn code_name(lua: &Lua, family: &'static str, code: i64) -> String {
    tables(lua)
        .codes
        .get(&(family, code))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("{family}{code}"))
}

pub fn lookup(name: &str) -> Option<i64> {
    CONSTANTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, v, _)| *v)
}
