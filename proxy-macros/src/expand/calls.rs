//! Calls to user functions: each argument bound to what the phase provides, by how its
//! type is written; an argument the phase cannot provide becomes a spanned assertion,
//! so rustc's error lands on that argument with the phase's list of what it offers.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::check::slot_for;
use crate::model::{ArgKind, Func, Route, param_for, param_local};
use crate::phases::{PhaseDef, Slot};

/// A generated call and what it needs around it.
pub struct PhaseCall {
    /// The call expression (awaited if the function is async).
    pub call: TokenStream,
    /// Whether it uses `__route` (so it runs only when a route matched).
    pub needs_route: bool,
    /// Assertions for arguments that cannot be provided.
    pub asserts: Vec<TokenStream>,
}

/// A direct use of `ty` as the phase's marker trait (which nothing implements): rustc
/// reports the marker's `on_unimplemented` message on the argument's type, with no
/// "required by a bound" notes pointing into generated code.
fn cannot_provide(krate: &syn::Path, marker: &str, ty: &syn::Type) -> TokenStream {
    let marker = format_ident!("{}", marker);
    quote_spanned! {ty.span()=>
        let _ = <#ty as #krate::dsl::args::#marker>::PROVIDED;
    }
}

/// The call, through `self::` so that a generated local (`session`, `body`, a route
/// parameter...) of the same name as the function cannot shadow it. It is spanned at
/// the declared return type: a result the phase cannot use is reported there.
fn finish_call(f: &Func, args: Vec<TokenStream>) -> TokenStream {
    let ident = &f.ident;
    let span = f.output.as_ref().map_or(ident.span(), |t| t.span());
    if f.is_async {
        quote_spanned! {span=> self::#ident(#(#args),*).await }
    } else {
        quote_spanned! {span=> self::#ident(#(#args),*) }
    }
}

/// A phase function's call.
pub fn call_phase_fn(krate: &syn::Path, def: &PhaseDef, f: &Func) -> PhaseCall {
    let mut asserts = Vec::new();
    let mut needs_route = false;
    let args = f
        .args
        .iter()
        .map(|a| {
            let provided =
                slot_for(&a.kind).and_then(|slot| def.provides.iter().find(|(s, _)| *s == slot));
            match provided {
                Some((slot, expr)) => {
                    if *slot == Slot::Route {
                        needs_route = true;
                    }
                    let e: TokenStream = expr.parse().unwrap_or_default();
                    let ty = &a.ty;
                    // The expected type at the argument's span: a mismatch is reported there.
                    quote_spanned! {ty.span()=> #e }
                }
                None => {
                    asserts.push(cannot_provide(krate, def.marker, &a.ty));
                    quote!(::core::unreachable!())
                }
            }
        })
        .collect();
    PhaseCall {
        call: finish_call(f, args),
        needs_route,
        asserts,
    }
}

/// A route handler's call, inside the `match` arm that bound its parameters.
pub fn route_handler_call(krate: &syn::Path, route_idx: usize, r: &Route) -> TokenStream {
    let f = &r.func;
    let args = f
        .args
        .iter()
        .map(|a| {
            let ty = &a.ty;
            match &a.kind {
                ArgKind::Param => {
                    let params: Vec<&str> = r.pattern.params().collect();
                    let param = a
                        .name
                        .as_ref()
                        .and_then(|n| param_for(&n.to_string(), &params));
                    let k = param
                        .as_ref()
                        .and_then(|p| params.iter().position(|q| q == p))
                        .unwrap_or_default();
                    let name = param.map_or_else(|| format_ident!("_"), |n| param_local(&n));
                    let ops = super::param_ops_const(route_idx, k);
                    quote_spanned! {ty.span()=> (#ops.pass)(#name) }
                }
                ArgKind::Session { mutable: true } => quote_spanned! {ty.span()=> &mut *session },
                ArgKind::Session { mutable: false } => quote_spanned! {ty.span()=> &*session },
                ArgKind::RequestHeader { mutable: true } => {
                    quote_spanned! {ty.span()=> session.req_header_mut() }
                }
                ArgKind::RequestHeader { mutable: false } => {
                    quote_spanned! {ty.span()=> session.req_header() }
                }
                ArgKind::Ctx { mutable: true } => quote_spanned! {ty.span()=> &mut ctx.user },
                ArgKind::Ctx { mutable: false } => quote_spanned! {ty.span()=> &ctx.user },
                ArgKind::Route => quote_spanned! {ty.span()=> __route },
                ArgKind::OptionRoute => {
                    quote_spanned! {ty.span()=> ::core::option::Option::Some(__route) }
                }
                _ => {
                    let check = cannot_provide(krate, "RouteHandlerArg", ty);
                    quote! { { #check ::core::unreachable!() } }
                }
            }
        })
        .collect();
    finish_call(f, args)
}
