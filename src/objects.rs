//! Object-valued easy options: `SHARE`, `CURLU`, `MIMEPOST`.

use crate::error::{usage, R};
use crate::raw::EasyPtr;
use mlua::prelude::*;
use mlua::Value;

pub fn set_object(_ud: &LuaAnyUserData, _h: EasyPtr, _id: i32, opt: &str, _v: Value) -> R<()> {
    usage(format!(
        "{opt} is not supported by this version of the module"
    ))
}

/// After `curl_easy_duphandle`: re-point object options at the new handle's
/// own state where libcurl's copy would share ours.
pub fn after_dup(_nud: &LuaAnyUserData, _nh: EasyPtr) -> R<()> {
    Ok(())
}
