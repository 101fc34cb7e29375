//! Attribute arguments: `#[route(GET | HEAD, "/a/{b}", to = Api, retries = 2)]`.
//!
//! Every argument list is parsed as comma-separated Rust expressions, so spans are
//! exact and the syntax is familiar: positional values (`GET | HEAD`, `"/a"`), options
//! (`key = value`) and flags (`tls`). Values are read with typed accessors that report
//! errors into the [`Ctxt`] and keep going.

use std::time::Duration;

use proc_macro2::Span;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Token};

use crate::ctxt::{Ctxt, listing};
use crate::lit::error_in_lit;

/// One argument.
pub enum Arg {
    /// A value without a key.
    Positional(Expr),
    /// `key = value`.
    Keyed(syn::Ident, Expr),
    /// A bare identifier (also how a positional identifier looks; the caller decides).
    Flag(syn::Ident),
}

/// Parse an attribute's argument tokens.
pub fn parse_args(tokens: proc_macro2::TokenStream, cx: &Ctxt) -> Vec<Arg> {
    let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
    let exprs = match parser.parse2(tokens) {
        Ok(e) => e,
        Err(e) => {
            cx.push(e);
            return Vec::new();
        }
    };
    exprs
        .into_iter()
        .map(|e| match e {
            Expr::Assign(a) => match *a.left {
                Expr::Path(p) if p.path.get_ident().is_some() => {
                    let ident = p
                        .path
                        .get_ident()
                        .cloned()
                        .unwrap_or_else(|| syn::Ident::new("_", Span::call_site()));
                    Arg::Keyed(ident, *a.right)
                }
                other => Arg::Positional(Expr::Assign(syn::ExprAssign {
                    attrs: a.attrs,
                    left: Box::new(other),
                    eq_token: a.eq_token,
                    right: a.right,
                })),
            },
            Expr::Path(p) if p.path.get_ident().is_some() && p.qself.is_none() => Arg::Flag(
                p.path
                    .get_ident()
                    .cloned()
                    .unwrap_or_else(|| syn::Ident::new("_", Span::call_site())),
            ),
            other => Arg::Positional(other),
        })
        .collect()
}

/// Options by name, with duplicates and unknown names reported.
pub struct Options {
    entries: Vec<(syn::Ident, Option<Expr>)>,
}

impl Options {
    /// Collect `key = value` and flags; report duplicates; keep positionals apart.
    pub fn new(args: Vec<Arg>, known: &[&str], what: &str, cx: &Ctxt) -> (Vec<Expr>, Self) {
        let mut positionals = Vec::new();
        let mut entries: Vec<(syn::Ident, Option<Expr>)> = Vec::new();
        for arg in args {
            let (key, value) = match arg {
                Arg::Positional(e) => {
                    positionals.push(e);
                    continue;
                }
                Arg::Keyed(k, v) => (k, Some(v)),
                Arg::Flag(k) => (k, None),
            };
            let name = key.to_string();
            if !known.contains(&name.as_str()) {
                if value.is_none() && positionals.is_empty() && entries.is_empty() {
                    // A bare identifier in first position is positional (e.g. `GET`).
                    positionals.push(syn::parse_quote!(#key));
                    continue;
                }
                let hint = proxy_syntax::suggest::closest(&name, known.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                cx.error(
                    key.span(),
                    format!(
                        "unknown {what} option `{name}`{hint}\n{}",
                        listing("valid options", known)
                    ),
                );
                continue;
            }
            if let Some((first, _)) = entries.iter().find(|(k, _)| *k == key) {
                let mut e = syn::Error::new(key.span(), format!("option `{name}` is given twice"));
                e.combine(syn::Error::new(
                    first.span(),
                    format!("note: `{name}` first given here"),
                ));
                cx.push(e);
                continue;
            }
            entries.push((key, value));
        }
        (positionals, Options { entries })
    }

    /// Whether `key` was given (as a flag or with a value).
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The span of `key`, if given.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, _)| k.span())
    }

    /// The value of `key`; a flag without value is reported.
    pub fn value(&self, key: &str, cx: &Ctxt) -> Option<&Expr> {
        let (k, v) = self.entries.iter().find(|(k, _)| k == key)?;
        if v.is_none() {
            cx.error(
                k.span(),
                format!("option `{key}` needs a value: `{key} = ...`"),
            );
        }
        v.as_ref()
    }

    /// A flag (`tls`) — or `tls = true/false`.
    pub fn flag(&self, key: &str, cx: &Ctxt) -> bool {
        match self.entries.iter().find(|(k, _)| k == key) {
            None => false,
            Some((_, None)) => true,
            Some((_, Some(e))) => match e {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => b.value,
                other => {
                    cx.error_spanned(
                        other,
                        format!("`{key}` is a flag: write `{key}` or `{key} = false`"),
                    );
                    false
                }
            },
        }
    }

    /// A string option.
    pub fn string(&self, key: &str, cx: &Ctxt) -> Option<LitStr> {
        self.value(key, cx).and_then(|e| expect_str(e, key, cx))
    }

    /// An integer option.
    pub fn int<T: std::str::FromStr>(&self, key: &str, cx: &Ctxt) -> Option<(T, Span)>
    where
        T::Err: std::fmt::Display,
    {
        let e = self.value(key, cx)?;
        match e {
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) if !i.suffix().is_empty() && !is_int_type(i.suffix()) => {
                cx.error(
                    i.span(),
                    format!("`{key}` takes a plain number: remove `{}`", i.suffix()),
                );
                None
            }
            Expr::Lit(ExprLit {
                lit: Lit::Int(i), ..
            }) => match i.base10_parse::<T>() {
                Ok(v) => Some((v, i.span())),
                Err(err) => {
                    cx.push(err);
                    None
                }
            },
            Expr::Unary(syn::ExprUnary {
                op: syn::UnOp::Neg(_),
                ..
            }) => {
                cx.error_spanned(e, format!("`{key}` cannot be negative"));
                None
            }
            other => {
                cx.error_spanned(other, format!("`{key}` takes a number"));
                None
            }
        }
    }

    /// A duration option (`"5s"`), checked now.
    pub fn duration(&self, key: &str, cx: &Ctxt) -> Option<Duration> {
        let lit = self.string(key, cx)?;
        match proxy_syntax::duration::parse_duration(&lit.value()) {
            Ok(d) => Some(d),
            Err(e) => {
                error_in_lit(cx, &lit, &e, &format!("invalid duration for `{key}`"));
                None
            }
        }
    }

    /// A timeout (`"5s"`): a duration longer than zero (a zero limit would fail every
    /// attempt at its first wait).
    pub fn timeout(&self, key: &str, cx: &Ctxt) -> Option<Duration> {
        let d = self.duration(key, cx)?;
        if d.is_zero() {
            let span = self.key_span(key).unwrap_or_else(Span::call_site);
            cx.error(
                span,
                format!("`{key}` must be longer than 0: every attempt would time out at once"),
            );
            return None;
        }
        Some(d)
    }

    /// A size option (`"10MiB"`), checked now.
    pub fn size(&self, key: &str, cx: &Ctxt) -> Option<u64> {
        let lit = self.string(key, cx)?;
        match proxy_syntax::size::parse_size(&lit.value()) {
            Ok(d) => Some(d),
            Err(e) => {
                error_in_lit(cx, &lit, &e, &format!("invalid size for `{key}`"));
                None
            }
        }
    }

    /// An identifier option (`to = Api`).
    pub fn ident(&self, key: &str, cx: &Ctxt) -> Option<syn::Ident> {
        let e = self.value(key, cx)?;
        match e {
            Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
            other => {
                cx.error_spanned(other, format!("`{key}` takes a name, e.g. `{key} = Api`"));
                None
            }
        }
    }

    /// A list of strings (`["a", "b"]`; a single string is a list of one).
    pub fn strings(&self, key: &str, cx: &Ctxt) -> Option<Vec<LitStr>> {
        let e = self.value(key, cx)?;
        Some(expect_str_list(e, key, cx))
    }

    /// A list of expressions (`[a, b(c)]`).
    pub fn list(&self, key: &str, cx: &Ctxt) -> Option<Vec<Expr>> {
        let e = self.value(key, cx)?;
        match e {
            Expr::Array(a) => Some(a.elems.iter().cloned().collect()),
            other => Some(vec![other.clone()]),
        }
    }
}

/// An integer literal's suffix that names an integer type (`8u16`).
fn is_int_type(suffix: &str) -> bool {
    matches!(
        suffix,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
    )
}

/// A string literal, or an error.
pub fn expect_str(e: &Expr, key: &str, cx: &Ctxt) -> Option<LitStr> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if !s.suffix().is_empty() => {
            cx.error(
                s.span(),
                format!(
                    "`{key}` takes a plain string literal: remove the suffix `{}`",
                    s.suffix()
                ),
            );
            None
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            cx.error(other.span(), format!("`{key}` takes a string literal"));
            None
        }
    }
}

/// `"a"` or `["a", "b"]`.
pub fn expect_str_list(e: &Expr, key: &str, cx: &Ctxt) -> Vec<LitStr> {
    match e {
        Expr::Array(a) => a
            .elems
            .iter()
            .filter_map(|x| expect_str(x, key, cx))
            .collect(),
        other => expect_str(other, key, cx).into_iter().collect(),
    }
}
