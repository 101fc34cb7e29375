//! The route matcher, compiled to straight-line Rust.
//!
//! Routes are grouped by host (exact hosts, then wildcard hosts longest suffix first,
//! then routes without a host), and each group becomes nested `match`es over path
//! segments. At every position a static segment is tried before a parameter, and a
//! parameter before a catch-all; when a branch fails, the next one is tried
//! (backtracking), so precedence never depends on declaration order. A path that
//! matches with the wrong method remembers the methods that would have matched, for
//! `405` and `Allow`.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use proxy_syntax::pattern::Segment;
use quote::{format_ident, quote};

use crate::model::{HostPattern, ProxyDecl};

#[derive(Default)]
struct Node {
    /// Routes whose pattern ends exactly here.
    leaves: Vec<usize>,
    statics: BTreeMap<String, Node>,
    param: Option<Box<Node>>,
    /// Routes whose catch-all starts here.
    catch_all: Vec<usize>,
    /// The parameter slot of a parameter or catch-all at this position.
    slot: usize,
}

impl Node {
    fn insert(&mut self, route: usize, segments: &[Segment], slot: usize) {
        self.slot = slot;
        match segments.split_first() {
            None => self.leaves.push(route),
            Some((Segment::Static(s), rest)) => {
                self.statics
                    .entry(s.clone())
                    .or_default()
                    .insert(route, rest, slot);
            }
            Some((Segment::Param(_), rest)) => {
                self.param
                    .get_or_insert_with(Box::default)
                    .insert(route, rest, slot + 1);
            }
            Some((Segment::CatchAll(_), _)) => self.catch_all.push(route),
        }
    }
}

/// The most parameters any route has (the size of the slot array).
pub fn max_params(decl: &ProxyDecl) -> usize {
    decl.routes
        .iter()
        .map(|r| r.pattern.params().count())
        .max()
        .unwrap_or(0)
}

fn leaf_checks(decl: &ProxyDecl, routes: &[usize], krate: &syn::Path) -> TokenStream {
    let checks = routes.iter().map(|&i| {
        let mask = decl.routes[i].methods;
        quote! {
            if #mask & __method != 0 {
                return #krate::dsl::routing::Matched::Found(#i, __p);
            }
            __allowed |= #mask;
        }
    });
    quote! { #(#checks)* }
}

fn gen_node(decl: &ProxyDecl, node: &Node, depth: usize, krate: &syn::Path) -> TokenStream {
    let r = format_ident!("__r{}", depth);
    let next = format_ident!("__r{}", depth + 1);
    let mut out = TokenStream::new();
    if !node.leaves.is_empty() {
        let checks = leaf_checks(decl, &node.leaves, krate);
        out.extend(quote! {
            if #r.is_none() { #checks }
        });
    }
    if node.statics.is_empty() && node.param.is_none() && node.catch_all.is_empty() {
        return out;
    }
    let mut inner = TokenStream::new();
    if !node.statics.is_empty() || node.param.is_some() {
        // Split the segment once; every branch below reads it.
        inner.extend(quote! {
            let (__seg, #next) = #krate::dsl::routing::split_segment(__s);
        });
    }
    if !node.statics.is_empty() {
        // Compare only the texts of the segment's length: one integer match, then at
        // most a few equal-length comparisons.
        let mut by_len: BTreeMap<usize, Vec<(&String, &Node)>> = BTreeMap::new();
        for (text, child) in &node.statics {
            by_len.entry(text.len()).or_default().push((text, child));
        }
        let len_arms = by_len.iter().map(|(len, group)| {
            let arms = group.iter().map(|(text, child)| {
                let body = gen_node(decl, child, depth + 1, krate);
                quote! { #text => { #body } }
            });
            quote! {
                #len => match __seg {
                    #(#arms)*
                    _ => {}
                },
            }
        });
        inner.extend(quote! {
            match __seg.len() {
                #(#len_arms)*
                _ => {}
            }
        });
    }
    if let Some(child) = &node.param {
        let slot = node.slot;
        let body = gen_node(decl, child, depth + 1, krate);
        inner.extend(quote! {
            if !__seg.is_empty() {
                __p[#slot] = __seg;
                #body
            }
        });
    }
    if !node.catch_all.is_empty() {
        let slot = node.slot;
        let checks = leaf_checks(decl, &node.catch_all, krate);
        inner.extend(quote! {
            __p[#slot] = __s;
            #checks
        });
    }
    out.extend(quote! {
        if let ::core::option::Option::Some(__s) = #r {
            #inner
        }
    });
    out
}

fn group(decl: &ProxyDecl, routes: &[usize], krate: &syn::Path) -> TokenStream {
    let mut root = Node::default();
    for &i in routes {
        root.insert(i, &decl.routes[i].pattern.segments, 0);
    }
    gen_node(decl, &root, 0, krate)
}

/// `pub fn match_route(method_bit, host, normalized_path) -> Matched<'_, N>`.
pub fn matcher(decl: &ProxyDecl) -> TokenStream {
    let krate = &decl.krate;
    let n = max_params(decl);
    let mut exact: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut wild: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut default = Vec::new();
    for (i, r) in decl.routes.iter().enumerate() {
        match &r.host {
            Some((HostPattern::Exact(h), _)) => exact.entry(h.clone()).or_default().push(i),
            Some((HostPattern::Wildcard(s), _)) => wild.entry(s.clone()).or_default().push(i),
            None => default.push(i),
        }
    }
    let exact_groups = exact.iter().map(|(host, routes)| {
        let body = group(decl, routes, krate);
        quote! { if __host.eq_ignore_ascii_case(#host) { #body } }
    });
    let mut wild_sorted: Vec<(&String, &Vec<usize>)> = wild.iter().collect();
    wild_sorted.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
    let wild_groups = wild_sorted.into_iter().map(|(suffix, routes)| {
        let body = group(decl, routes, krate);
        quote! { if #krate::dsl::routing::host_matches_wildcard(__host, #suffix) { #body } }
    });
    let default_group = group(decl, &default, krate);
    quote! {
        /// The compiled route matcher: `method_bit` from
        /// `dsl::routing::method_bit`, the host without port, and the (normalized) path.
        /// Returns the route's index in `ROUTES` and its raw parameter values.
        ///
        /// A HEAD request goes to a route that declares HEAD (or `ANY`); when none
        /// matches, to the route a GET would reach (RFC 9110 §9.3.2: HEAD is GET
        /// without the body).
        #[allow(clippy::all)]
        pub fn match_route<'p>(
            __method: u16,
            __host: &str,
            __path: &'p str,
        ) -> #krate::dsl::routing::Matched<'p, #n> {
            use #krate::dsl::routing::{Matched, methods};
            match __match_method(__method, __host, __path) {
                Matched::MethodNotAllowed(__allowed)
                    if __method == methods::HEAD && __allowed & methods::GET != 0 =>
                {
                    __match_method(methods::GET, __host, __path)
                }
                __other => __other,
            }
        }

        #[allow(unused_variables, unused_mut, unused_assignments, clippy::all)]
        fn __match_method<'p>(
            __method: u16,
            __host: &str,
            __path: &'p str,
        ) -> #krate::dsl::routing::Matched<'p, #n> {
            let mut __allowed: u16 = 0;
            let mut __p: [&'p str; #n] = [""; #n];
            let __r0: ::core::option::Option<&'p str> = __path.strip_prefix('/');
            #(#exact_groups)*
            #(#wild_groups)*
            #default_group
            if __allowed != 0 {
                #krate::dsl::routing::Matched::MethodNotAllowed(__allowed)
            } else {
                #krate::dsl::routing::Matched::NotFound
            }
        }
    }
}
