//! What every handle class shares: the [`Handle`] trait (class name,
//! inner state, open check) and its metatable fields.

use mlua::{UserData, UserDataFields, Value};

/// A userdata class of the module. The userdata holds the shared inner
/// state (`Inner`, usually an `Rc`) that libcurl's callbacks reach too.
pub trait Handle: UserData + 'static {
    /// The class name: the metatable's `__name` ("curl.Easy").
    const CLASS: &'static str;
    /// How messages name an object of the class ("the easy handle").
    const WHAT: &'static str;
    type Inner: Clone;
    fn inner(&self) -> Self::Inner;
    /// Not closed.
    fn is_open(_inner: &Self::Inner) -> bool {
        true
    }
}

/// The metatable fields of class `T`: `__name`, and `__index`,
/// `__tostring`, `__close` from the Lua layer (registry `"<class><field>"`,
/// set before the first object is made), so methods are the wrapped ones.
pub fn add_meta<T: Handle, F: UserDataFields<T>>(fields: &mut F) {
    fields.add_meta_field("__name", T::CLASS);
    for key in ["__index", "__tostring", "__close"] {
        fields.add_meta_field_with(key, move |lua| {
            lua.named_registry_value::<Value>(&format!("{}{key}", T::CLASS))
        });
    }
}

/// Declares a class over a newtype `$ty(inner)`: its `UserData` impl (the
/// fields of [`add_meta`]) and its [`Handle`] impl, with an optional open
/// check (`open(inner) => expr`; without one, always open).
macro_rules! lua_class {
    ($ty:ty, $class:literal, $what:literal, $inner:ty $(, open($i:ident) => $open:expr)?) => {
        impl mlua::UserData for $ty {
            fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
                $crate::luaapi::class::add_meta::<Self, F>(fields);
            }
        }

        impl $crate::luaapi::Handle for $ty {
            const CLASS: &'static str = $class;
            const WHAT: &'static str = $what;
            type Inner = $inner;
            fn inner(&self) -> $inner {
                self.0.clone()
            }
            $(fn is_open($i: &$inner) -> bool {
                $open
            })?
        }
    };
}
pub(crate) use lua_class;
