//! Boxing large values without a stack copy.
//!
//! `Box::new(value)` computes `value` first (on the stack) and copies it into the
//! allocation afterwards; for the multi-KiB futures of a request that copy shows up in
//! profiles (about 600 instructions per request for the request's phases alone).
//! Allocating first lets the compiler build the value directly in the allocation.

use std::future::Future;
use std::pin::Pin;

/// Box the value `make` returns, building it in place.
#[inline(always)]
pub(crate) fn in_place<T>(make: impl FnOnce() -> T) -> Box<T> {
    Box::write(Box::new_uninit(), make())
}

/// Pin a future on the heap, building it in place (see [`in_place`]).
#[inline(always)]
pub(crate) fn pin_in_place<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(in_place(make))
}
