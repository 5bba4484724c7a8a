//! Object-valued easy options: `SHARE` (curl.Share), `CURLU` (curl.URL),
//! `MIMEPOST` (curl.Mime). The easy keeps an `Rc` of the object's state for
//! as long as libcurl may use it, and its Lua object in a user value.

use crate::consts::c;
use crate::easy::EasyInner;
use crate::error::{type_name, usage, Fail, R};
use crate::raw::{self, EasyPtr};
use crate::{mime, share, url};
use mlua::prelude::*;
use mlua::Value;
use std::any::Any;
use std::os::raw::c_void;
use std::rc::Rc;

fn check(rc: raw::CURLcode, what: &str) -> R<()> {
    if rc == raw::CURLE_OK {
        Ok(())
    } else {
        Err(Fail::Easy(rc, Some(what.to_string())))
    }
}

pub fn set_object(
    ud: &LuaAnyUserData,
    e: &EasyInner,
    h: EasyPtr,
    id: i32,
    opt: &str,
    v: Value,
) -> R<()> {
    let id64 = id as i64;
    let (ptr, keep): (*const c_void, Option<Rc<dyn Any>>) = match (&v, id64) {
        (Value::Nil, c::CURLOPT_SHARE | c::CURLOPT_CURLU | c::CURLOPT_MIMEPOST) => {
            (std::ptr::null(), None)
        }
        (Value::UserData(u), c::CURLOPT_SHARE) if u.is::<share::Share>() => {
            let s = share::inner_of(u)?;
            let p = s
                .raw()
                .ok_or_else(|| Fail::Usage(format!("{opt}: the share handle is closed")))?;
            (p.as_ptr(), Some(s as Rc<dyn Any>))
        }
        (Value::UserData(u), c::CURLOPT_CURLU) if u.is::<url::Url>() => {
            let s = url::inner_of(u)?;
            let p = s
                .raw()
                .ok_or_else(|| Fail::Usage(format!("{opt}: the URL handle is closed")))?;
            (p.as_ptr(), Some(s as Rc<dyn Any>))
        }
        (Value::UserData(u), c::CURLOPT_MIMEPOST) if u.is::<mime::Mime>() => {
            // the same mime again: nothing to do
            let same = match e.objects().borrow().get(&id64) {
                Some(o) => match (o.clone().downcast::<mime::PostGuard>(), mime::inner_of(u)) {
                    (Ok(g), Ok(m)) => Rc::ptr_eq(&g.0, &m),
                    _ => false,
                },
                None => false,
            };
            if same {
                return Ok(());
            }
            let (g, p) = mime::for_post(u, &crate::easy::inner_of(ud)?)?;
            (p.as_ptr(), Some(Rc::new(g) as Rc<dyn Any>))
        }
        _ => {
            let expected = match id64 {
                c::CURLOPT_SHARE => "curl.Share or nil",
                c::CURLOPT_CURLU => "curl.URL or nil",
                c::CURLOPT_MIMEPOST => "curl.Mime or nil",
                _ => {
                    return usage(format!(
                        "{opt} is not supported by this version of the module"
                    ))
                }
            };
            return usage(format!(
                "bad argument #2 'value' for {opt} (expected {expected}, got {})",
                type_name(&v)
            ));
        }
    };
    check(raw::setopt_ptr(h, id, ptr), opt)?;
    let old = match keep {
        Some(k) => e.objects().borrow_mut().insert(id64, k),
        None => e.objects().borrow_mut().remove(&id64),
    };
    if let Some(old) = old {
        // A transfer under way may still read the old object: keep it until
        // the handle is idle.
        if e.busy() {
            e.bury(Box::new(old));
        }
    }
    ud.user_value::<LuaTable>()?.raw_set(id64, v)?;
    Ok(())
}

/// After `curl_easy_duphandle`: the copy uses the same share (set again:
/// libcurl's copy does not take it over) and URL objects, held for it too. A
/// mime is not copied (DupHandle detaches it around the copy).
pub fn after_dup(old: &EasyInner, new: &EasyInner, nh: EasyPtr) -> R<()> {
    let objs: Vec<(i64, Rc<dyn Any>)> = old
        .objects()
        .borrow()
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for (id, o) in objs {
        if id == c::CURLOPT_MIMEPOST {
            continue; // a mime has one poster: the copy posts none (DupHandle)
        }
        if let Ok(s) = o.clone().downcast::<share::ShareInner>() {
            // libcurl's copy does not take the share over: give it again
            if let Some(p) = s.raw() {
                check(raw::setopt_ptr(nh, id as i32, p.as_ptr()), "DupHandle")?;
            }
        }
        new.objects().borrow_mut().insert(id, o);
    }
    Ok(())
}
