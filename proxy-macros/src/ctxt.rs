//! The error accumulator: every stage records mistakes here and keeps going, so one
//! build shows the user all of them. It must be turned into a result with
//! [`Ctxt::check`]; dropping it unchecked is a bug in the compiler (it panics in debug
//! builds of the macro, like serde_derive's).

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::Span;

/// Collects compile errors.
#[derive(Default)]
pub struct Ctxt {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    /// A new, empty accumulator.
    pub fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Record an error at `span`.
    pub fn error(&self, span: Span, msg: impl Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// Record an error spanning a syntax node.
    pub fn error_spanned(&self, tokens: impl quote::ToTokens, msg: impl Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

    /// Record a `syn::Error` (possibly several combined).
    pub fn push(&self, e: syn::Error) {
        if let Some(errors) = self.errors.borrow_mut().as_mut() {
            errors.push(e);
        }
    }

    /// Whether anything went wrong so far.
    pub fn has_errors(&self) -> bool {
        self.errors.borrow().as_ref().is_some_and(|e| !e.is_empty())
    }

    /// Consume: `Ok` if nothing went wrong, else every error combined.
    pub fn check(self) -> Result<(), syn::Error> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut iter = errors.into_iter();
        match iter.next() {
            None => Ok(()),
            Some(mut first) => {
                for e in iter {
                    first.combine(e);
                }
                Err(first)
            }
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            debug_assert!(false, "Ctxt dropped without check()");
        }
    }
}
