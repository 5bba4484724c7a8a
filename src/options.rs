//! Constants and option metadata, all derived from data: the integer
//! constants from the headers (build.rs), the easy options from libcurl's own
//! `curl_easy_option_next` table, multi options and infos from the constants'
//! names and value ranges.

use crate::raw;
use mlua::Lua;
use std::collections::HashMap;
use std::rc::Rc;

include!(concat!(env!("OUT_DIR"), "/constants.rs"));

/// `CURLOT_*`: how an easy option's value is passed.
#[allow(dead_code)] // the full list, for the option types still to come
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

/// `CURLINFO_*` type bits.
pub mod it {
    pub const STRING: i32 = 0x100000;
    pub const LONG: i32 = 0x200000;
    pub const DOUBLE: i32 = 0x300000;
    pub const SLIST: i32 = 0x400000;
    pub const SOCKET: i32 = 0x500000;
    pub const OFF_T: i32 = 0x600000;
    pub const TYPEMASK: i32 = 0xf00000;
    pub const MASK: i32 = 0x0fffff;
}

pub struct EasyOpt {
    pub name: String,
    pub kind: i32,
}

pub struct Tables {
    /// Easy option id → metadata (name without `CURLOPT_`, canonical).
    pub easy: HashMap<i32, EasyOpt>,
    /// Every easy option name (aliases too), normalised → id.
    pub easy_names: Vec<(String, i32)>,
    /// Multi option id → name without `CURLMOPT_`.
    pub multi: HashMap<i32, String>,
    /// CURLINFO id → name without `CURLINFO_`.
    pub info: HashMap<i32, String>,
    /// code names by family prefix and value, enumerators preferred.
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
/// so they are freed with the state (a static would leak on every unload of
/// the module).
pub fn tables(lua: &Lua) -> Rc<Tables> {
    if let Some(t) = lua.app_data_ref::<Rc<Tables>>() {
        return t.clone();
    }
    let t = Rc::new(build());
    lua.set_app_data(t.clone());
    t
}

fn build() -> Tables {
    let mut easy = HashMap::new();
    let mut easy_names = Vec::new();
    for o in raw::easy_options() {
        easy_names.push((normalize(&o.name), o.id));
        if !o.alias || !easy.contains_key(&o.id) {
            easy.insert(
                o.id,
                EasyOpt {
                    name: o.name,
                    kind: o.kind,
                },
            );
        }
    }
    let mut multi = HashMap::new();
    let mut info = HashMap::new();
    let mut codes: HashMap<(&'static str, i64), &'static str> = HashMap::new();
    for &(name, value, is_enum) in CONSTANTS {
        if let Some(rest) = name.strip_prefix("CURLMOPT_") {
            if rest != "LASTENTRY" {
                multi
                    .entry(value as i32)
                    .or_insert_with(|| rest.to_string());
            }
        } else if let Some(rest) = name.strip_prefix("CURLINFO_") {
            let v = value as i32;
            let ty = v & it::TYPEMASK;
            if v & it::MASK != 0
                && (it::STRING..=it::OFF_T).contains(&ty)
                && v & !(it::TYPEMASK | it::MASK) == 0
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
    Tables {
        easy,
        easy_names,
        multi,
        info,
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

/// Names that every Lua-side `SetOpt_X` / `GetInfo_X` resolves through.
pub fn multi_names() -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = Vec::new();
    for &(name, value, _) in CONSTANTS {
        if let Some(rest) = name.strip_prefix("CURLMOPT_") {
            if rest != "LASTENTRY" {
                v.push((normalize(rest), value as i32));
            }
        }
    }
    v
}

pub fn info_names(lua: &Lua) -> Vec<(String, i32)> {
    let t = tables(lua);
    let mut v: Vec<(String, i32)> = Vec::new();
    for &(name, value, _) in CONSTANTS {
        if let Some(rest) = name.strip_prefix("CURLINFO_") {
            if t.info.contains_key(&(value as i32)) {
                v.push((normalize(rest), value as i32));
            }
        }
    }
    v
}

pub fn lookup(name: &str) -> Option<i64> {
    CONSTANTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, v, _)| *v)
}
