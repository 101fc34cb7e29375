//! The error accumulator: every stage records mistakes here and keeps going, so one
//! build shows the user all of them. It must be turned into a result with
//! [`Ctxt::check`]; dropping it unchecked is a bug in the compiler (it panics in debug
//! builds of the macro, like serde_derive's).

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;

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

    /// How many errors were recorded so far (to tell whether one item parsed cleanly).
    pub fn error_count(&self) -> usize {
        self.errors.borrow().as_ref().map_or(0, Vec::len)
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

/// The source range of a syntax node (its first and last token). A plain [`Span`] of a
/// node is only its first token on stable Rust; an error made from a `SpanRange`
/// underlines the whole node (`&mut RequestHeader`, `#[cache(ttl = "1m")]`).
#[derive(Clone, Copy)]
pub struct SpanRange {
    first: Span,
    last: Span,
}

impl SpanRange {
    /// The range of `node`.
    pub fn of(node: &impl ToTokens) -> Self {
        let tokens = node.to_token_stream();
        let mut iter = tokens.into_iter();
        let first = iter.next().map_or_else(Span::call_site, |t| t.span());
        let last = iter.last().map_or(first, |t| t.span());
        SpanRange { first, last }
    }

    /// An error underlining the range.
    pub fn error(&self, msg: impl Display) -> syn::Error {
        syn::Error::new_spanned(self, msg)
    }
}

impl ToTokens for SpanRange {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for span in [self.first, self.last] {
            let mut p = Punct::new('#', Spacing::Alone);
            p.set_span(span);
            tokens.extend([TokenTree::Punct(p)]);
        }
    }
}

/// A list of names for an error message, wrapped so that no line gets too long:
///
/// ```text
///   phases: early_request_filter, request_filter, request_body_filter,
///           proxy_upstream_filter, ...
/// ```
pub fn listing(label: &str, names: &[&str]) -> String {
    const WIDTH: usize = 88;
    let indent = " ".repeat(label.len() + 4);
    let mut out = format!("  {label}: ");
    let mut line_len = out.len();
    for (i, n) in names.iter().enumerate() {
        let item = if i + 1 == names.len() {
            (*n).to_string()
        } else {
            format!("{n},")
        };
        if i > 0 {
            if line_len + 1 + item.len() > WIDTH {
                out.push('\n');
                out.push_str(&indent);
                line_len = indent.len();
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(&item);
        line_len += item.len();
    }
    out
}
