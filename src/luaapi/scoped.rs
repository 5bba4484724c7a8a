//! A slot holding a reference to a value on a caller's stack for the
//! duration of a closure (as the `scoped-tls` crate does for thread
//! locals): how a C callback finds the call context of the binding call
//! that is running it. The value may borrow from the caller's frame: it is
//! a family of types over a lifetime (`Family::Of<'a>`), and readers get
//! it for a lifetime they cannot name outside their closure.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr;

/// A type with a lifetime parameter, as the slot's value type.
pub trait Family: 'static {
    type Of<'a>;
}

/// While `set(v, f)` runs `f`, `with` hands out `&v`; otherwise `None`.
/// Nested `set`s restore the outer value when they end.
pub struct Scoped<F: Family>(Cell<*const ()>, PhantomData<F>);

impl<F: Family> Default for Scoped<F> {
    fn default() -> Self {
        Scoped(Cell::new(ptr::null()), PhantomData)
    }
}

/// Restores the previous value, also when `f` unwinds.
struct Reset<'s> {
    slot: &'s Cell<*const ()>,
    prev: *const (),
}

impl Drop for Reset<'_> {
    fn drop(&mut self) {
        self.slot.set(self.prev);
    }
}

impl<F: Family> Scoped<F> {
    /// Runs `f` with `v` installed.
    pub fn set<'a, R>(&self, v: &F::Of<'a>, f: impl FnOnce() -> R) -> R {
        let prev = self.0.replace(v as *const F::Of<'a> as *const ());
        let _reset = Reset {
            slot: &self.0,
            prev,
        };
        f()
    }

    pub fn is_set(&self) -> bool {
        !self.0.get().is_null()
    }

    /// Runs `f` with the installed value, if any.
    pub fn with<R>(&self, f: impl for<'a> FnOnce(Option<&'a F::Of<'a>>) -> R) -> R {
        let p = self.0.get() as *const F::Of<'static>;
        // SAFETY: a non-null pointer was stored by `set`, whose frame (and
        // so the value and everything it borrows) outlives the closure `set`
        // runs; the slot is reset when that closure ends, also on unwind,
        // and `set` cannot be escaped (there is no guard object to forget).
        // `with` runs while that `set` is on the stack. `f` accepts any
        // lifetime, so it can neither keep the reference nor anything the
        // value borrows beyond its own call: naming the value's lifetime
        // 'static for the call lends it nothing longer.
        f(unsafe { p.as_ref() })
    }
}
