//! The DSL compiler of `proxy-runtime`: a whole reverse proxy declared in one module.
//!
//! ```ignore
//! #[proxy(listen = "0.0.0.0:8080")]
//! mod edge {
//!     use super::*;
//!
//!     #[upstream(addrs = ["10.0.0.1:80", "10.0.0.2:80"])]
//!     pub struct Api;
//!
//!     #[route(GET | HEAD, "/api/users/{id}", to = Api)]
//!     fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
//!         req.insert_header("x-user-id", id.to_string())
//!     }
//! }
//! ```
//!
//! The stages, as in serde_derive: `parse` (syntax → model, spans kept),
//! `check` (cross-item rules), `expand` (code). Errors are accumulated in a
//! `ctxt::Ctxt` so one build reports every mistake; on error the user's items are
//! still emitted, so the IDE keeps working. See `docs/src/dsl.md` for the language.

#![forbid(unsafe_code)]

mod args;
mod check;
mod ctxt;
mod expand;
mod lit;
mod model;
mod parse;
mod phases;

use proc_macro::TokenStream;
use quote::quote;

/// Declare a proxy: an inline module of upstreams, routes, phases and a context.
#[proc_macro_attribute]
pub fn proxy(attr: TokenStream, item: TokenStream) -> TokenStream {
    proxy_impl(attr.into(), item.into()).into()
}

fn proxy_impl(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut module: syn::ItemMod = match syn::parse2(item.clone()) {
        Ok(m) => m,
        Err(_) => {
            let err = syn::Error::new_spanned(
                item_head(&item),
                "#[proxy] goes on an inline module: `#[proxy(...)] mod edge { ... }`",
            )
            .to_compile_error();
            return quote!(#err #item);
        }
    };
    let Some((_, items)) = module.content.as_mut() else {
        let err = syn::Error::new_spanned(
            &module,
            "#[proxy] needs an inline module: `mod edge { ... }`, not `mod edge;`",
        )
        .to_compile_error();
        return quote!(#err #module);
    };
    let cx = ctxt::Ctxt::new();
    let decl = parse::parse(attr, &module.ident, items, &cx);
    // Cross-item rules run even after parse errors, on what parsed, so one build shows
    // every mistake; they skip what a parse error left incomplete.
    check::check(&decl, &cx);
    let generated = match cx.check() {
        Ok(()) => expand::expand(&decl),
        Err(e) => e.to_compile_error(),
    };
    if let Some((_, items)) = module.content.as_mut() {
        items.push(syn::Item::Verbatim(generated));
    }
    quote!(#module)
}

/// An item's head without its attributes and body: `pub struct Edge`, `fn main`.
fn item_head(item: &proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    use proc_macro2::TokenTree;
    let mut head = proc_macro2::TokenStream::new();
    let mut tokens = item.clone().into_iter();
    while let Some(t) = tokens.next() {
        match &t {
            // An outer attribute: `#` and its `[...]`.
            TokenTree::Punct(p) if p.as_char() == '#' && head.is_empty() => {
                tokens.next();
            }
            // `pub(crate)`
            TokenTree::Group(_) if head.to_string() == "pub" => head.extend([t]),
            TokenTree::Group(_) => break,
            TokenTree::Punct(p) if matches!(p.as_char(), ';' | '=' | ':' | '<') => break,
            _ => head.extend([t]),
        }
    }
    if head.is_empty() { item.clone() } else { head }
}

fn misplaced(name: &str, item: TokenStream) -> TokenStream {
    let item: proc_macro2::TokenStream = item.into();
    let msg = format!(
        "#[{name}] only has a meaning on an item directly inside a #[proxy] module (not in a nested module, and not from a macro or #[cfg_attr])"
    );
    quote!(::core::compile_error!(#msg); #item).into()
}

/// Marks the per-request context struct (inside `#[proxy]`).
#[proc_macro_attribute]
pub fn ctx(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("ctx", item)
}

/// Declares an upstream group on a unit struct (inside `#[proxy]`).
#[proc_macro_attribute]
pub fn upstream(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("upstream", item)
}

/// Declares a route on a function (inside `#[proxy]`).
#[proc_macro_attribute]
pub fn route(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("route", item)
}

/// Declares a route's cache policy (inside `#[proxy]`, with `#[route]`).
#[proc_macro_attribute]
pub fn cache(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("cache", item)
}

/// Adds a function to a phase's pipeline (inside `#[proxy]`).
#[proc_macro_attribute]
pub fn phase(_attr: TokenStream, item: TokenStream) -> TokenStream {
    misplaced("phase", item)
}
