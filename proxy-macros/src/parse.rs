//! From the `#[proxy]` module's syntax to the [`model`](crate::model): every marker
//! attribute is read (and removed, so the items compile as plain Rust), every option
//! checked on its own; mistakes are recorded in the [`Ctxt`] and parsing goes on.

use proc_macro2::{Span, TokenStream};
use proxy_syntax::address::parse_address;
use proxy_syntax::pattern::parse_pattern;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, FnArg, Ident, Item, ItemFn, LitStr, Pat, ReturnType, Type};

use crate::args::{Options, expect_str, parse_args};
use crate::ctxt::{Ctxt, SpanRange, listing};
use crate::lit::error_in_lit;
use crate::model::*;
use crate::phases;

/// The marker attributes read inside a `#[proxy]` module.
const MARKERS: [&str; 5] = ["ctx", "upstream", "route", "cache", "phase"];

/// Names the expansion defines inside the module.
pub const RESERVED: [&str; 9] = [
    "Proxy",
    "RequestCtx",
    "Route",
    "ROUTES",
    "SPEC",
    "service",
    "run",
    "config",
    "match_route",
];

const PROXY_OPTIONS: &[&str] = &[
    "listen",
    "name",
    "threads",
    "grace_period",
    "crate",
    "normalize",
];
const UPSTREAM_OPTIONS: &[&str] = &[
    "addrs",
    "lb",
    "connect_timeout",
    "read_timeout",
    "write_timeout",
    "idle_timeout",
    "retries",
    "tls",
    "sni",
    "health",
    "h2",
    "passive",
    "resolve_every",
    "alpn",
    "transport",
];
const ROUTE_OPTIONS: &[&str] = &[
    "to",
    "host",
    "retries",
    "timeout",
    "connect_timeout",
    "strip_prefix",
    "rewrite",
    "redirect",
    "status",
    "respond",
    "body",
    "content_type",
    "set_request_headers",
    "add_request_headers",
    "remove_request_headers",
    "set_response_headers",
    "add_response_headers",
    "remove_response_headers",
    "on_param_error",
    "rate_limit",
    "burst",
    "concurrency",
    "by",
];
const CACHE_OPTIONS: &[&str] = &[
    "ttl",
    "stale_while_revalidate",
    "stale_if_error",
    "vary",
    "key",
    "bypass",
    "max_size",
    "lock_timeout",
];
const LB_POLICIES: &[&str] = &[
    "round_robin",
    "weighted_round_robin",
    "random",
    "least_loaded",
    "least_connections",
    "consistent",
];

fn marker_name(attr: &Attribute) -> Option<&'static str> {
    let last = attr.path().segments.last()?.ident.to_string();
    MARKERS.iter().copied().find(|m| *m == last)
}

/// Take the marker attributes off an attribute list.
fn take_markers(attrs: &mut Vec<Attribute>) -> Vec<(&'static str, Attribute)> {
    let mut taken = Vec::new();
    attrs.retain(|a| match marker_name(a) {
        Some(m) => {
            taken.push((m, a.clone()));
            false
        }
        None => true,
    });
    taken
}

fn attr_tokens(attr: &Attribute) -> TokenStream {
    match &attr.meta {
        syn::Meta::List(l) => l.tokens.clone(),
        _ => TokenStream::new(),
    }
}

/// Parse the module attribute and the module's items. Marker attributes are removed
/// from `items` whatever happens.
pub fn parse(attr: TokenStream, mod_ident: &Ident, items: &mut [Item], cx: &Ctxt) -> ProxyDecl {
    let (positionals, opts) = Options::new(parse_args(attr, cx), PROXY_OPTIONS, "#[proxy]", cx);
    for p in positionals {
        cx.error_spanned(
            p,
            "#[proxy] takes options only, e.g. #[proxy(listen = \"0.0.0.0:8080\")]",
        );
    }
    let krate: syn::Path = match opts.string("crate", cx) {
        Some(l) => match l.parse::<syn::Path>() {
            Ok(p) => p,
            Err(_) => {
                cx.error(l.span(), "`crate` must be a path, e.g. \"::proxy_runtime\"");
                syn::parse_quote!(::proxy_runtime)
            }
        },
        None => syn::parse_quote!(::proxy_runtime),
    };
    let (listen, tls_listen) = parse_listen(&opts, cx);
    let threads = opts.int::<usize>("threads", cx).and_then(|(t, span)| {
        if t == 0 {
            cx.error(span, "`threads` must be at least 1");
            None
        } else {
            Some(t)
        }
    });
    let name = opts.string("name", cx).map_or_else(
        || mod_ident.to_string(),
        |l| {
            // The name names environment variables (`<NAME>_LISTEN`) and log lines.
            let v = l.value();
            let ok = !v.is_empty()
                && v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                cx.error(
                    l.span(),
                    "`name` is letters, digits, `-`, `_` and `.` (it names environment variables and log lines)",
                );
            }
            v
        },
    );

    let mut decl = ProxyDecl {
        krate,
        name,
        listen,
        tls_listen,
        threads,
        grace_period: opts.duration("grace_period", cx),
        normalize: !opts.has("normalize") || opts.flag("normalize", cx),
        ctx: None,
        upstreams: Vec::new(),
        routes: Vec::new(),
        unparsed_routes: Vec::new(),
        phases: Vec::new(),
    };

    // First pass: the context type, so arguments can be recognized by it.
    let mut ctx_first: Option<Span> = None;
    for item in items.iter() {
        if let Item::Struct(s) = item
            && s.attrs.iter().any(|a| marker_name(a) == Some("ctx"))
        {
            match ctx_first {
                None => {
                    ctx_first = Some(s.ident.span());
                    decl.ctx = Some(s.ident.clone());
                }
                Some(first) => {
                    let mut e = syn::Error::new(
                        s.ident.span(),
                        "a proxy has one #[ctx] struct; this is a second one",
                    );
                    e.combine(syn::Error::new(
                        first,
                        "note: the first #[ctx] struct is here",
                    ));
                    cx.push(e);
                }
            }
        }
    }

    for item in items.iter_mut() {
        check_reserved(item, cx);
        match item {
            Item::Struct(s) => {
                let markers = take_markers(&mut s.attrs);
                check_conditional(&s.attrs, !markers.is_empty(), cx);
                if markers.iter().any(|(m, _)| *m == "ctx")
                    && let Some((_, up)) = markers.iter().find(|(m, _)| *m == "upstream")
                {
                    cx.error_spanned(
                        up,
                        "a struct is the #[ctx] or an #[upstream], not both: declare the upstream on its own unit struct",
                    );
                }
                for (m, a) in markers {
                    match m {
                        "ctx" => {
                            if !attr_tokens(&a).is_empty() {
                                cx.error_spanned(&a, "#[ctx] takes no options");
                            }
                            if !s.generics.params.is_empty() {
                                cx.error_spanned(
                                    &s.generics,
                                    "the #[ctx] struct cannot be generic or borrow: it is made anew for each request (`Default`) and owns its data",
                                );
                            }
                        }
                        "upstream" if decl.upstreams.iter().any(|u| u.ident == s.ident) => {
                            cx.error_spanned(&a, "#[upstream] is given twice on this struct");
                        }
                        "upstream" => {
                            if !matches!(s.fields, syn::Fields::Unit) {
                                cx.error(
                                    s.ident.span(),
                                    "an #[upstream] is a unit struct: `pub struct Api;`",
                                );
                            }
                            if let Some(u) = parse_upstream(&a, &s.ident, cx) {
                                decl.upstreams.push(u);
                            }
                        }
                        other => cx.error_spanned(
                            &a,
                            format!("#[{other}] goes on a function, not a struct"),
                        ),
                    }
                }
            }
            Item::Fn(f) => {
                let markers = take_markers(&mut f.attrs);
                check_conditional(&f.attrs, !markers.is_empty(), cx);
                parse_fn_markers(f, markers, &mut decl, cx);
            }
            other => {
                let attrs: Option<&mut Vec<Attribute>> = match other {
                    Item::Enum(i) => Some(&mut i.attrs),
                    Item::Const(i) => Some(&mut i.attrs),
                    Item::Static(i) => Some(&mut i.attrs),
                    Item::Impl(i) => Some(&mut i.attrs),
                    Item::Mod(i) => Some(&mut i.attrs),
                    Item::Type(i) => Some(&mut i.attrs),
                    Item::Use(i) => Some(&mut i.attrs),
                    Item::Trait(i) => Some(&mut i.attrs),
                    _ => None,
                };
                if let Some(attrs) = attrs {
                    for (m, a) in take_markers(attrs) {
                        cx.error_spanned(&a, format!("#[{m}] cannot be used on this item"));
                    }
                }
            }
        }
    }
    decl
}

/// Whether two upstream addresses are the same: host names compare without case, Unix
/// socket paths exactly.
fn same_address(a: &str, b: &str) -> bool {
    if a.starts_with("unix:") || b.starts_with("unix:") {
        a == b
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// Conditional compilation and the DSL: the route table, the context and the upstream
/// list are generated from every declared item, so an item that `#[cfg]` may remove
/// cannot be one (the generated code would name what is gone); and a marker cannot
/// come from `#[cfg_attr]`, which is expanded after `#[proxy]` reads the module.
fn check_conditional(attrs: &[Attribute], is_declared: bool, cx: &Ctxt) {
    for a in attrs {
        let Some(name) = a.path().get_ident().map(Ident::to_string) else {
            continue;
        };
        if name == "cfg" && is_declared {
            cx.error_spanned(
                a,
                "#[cfg] cannot remove a declared route, phase, upstream or context: the proxy's tables are built from every one\n  help: decide at run time in a phase, or put the whole #[proxy] module under #[cfg]",
            );
        } else if name == "cfg_attr"
            && attr_tokens(a)
                .into_iter()
                .any(|t| matches!(&t, proc_macro2::TokenTree::Ident(i) if MARKERS.iter().any(|m| i == m)))
        {
            cx.error_spanned(
                a,
                "a DSL marker cannot come from #[cfg_attr]: write it as an attribute of its own",
            );
        }
    }
}

fn socket_addr(lit: &LitStr, cx: &Ctxt) -> Option<String> {
    match lit.value().parse::<std::net::SocketAddr>() {
        Ok(_) => Some(lit.value()),
        Err(_) => {
            cx.error(
                lit.span(),
                format!(
                    "invalid listen address {:?}: expected \"ip:port\"",
                    lit.value()
                ),
            );
            None
        }
    }
}

const TLS_LISTEN_OPTIONS: &[&str] = &["cert", "key", "certs", "client_ca", "client_auth_required"];

/// `listen = ["0.0.0.0:80", tls("0.0.0.0:443", cert = "c.pem", key = "k.pem")]`.
fn parse_listen(opts: &Options, cx: &Ctxt) -> (Vec<String>, Vec<TlsListen>) {
    let mut plain = Vec::new();
    let mut tls = Vec::new();
    for e in opts.list("listen", cx).unwrap_or_default() {
        match &e {
            Expr::Call(call) if matches!(&*call.func, Expr::Path(p) if p.path.is_ident("tls")) => {
                let args = &call.args;
                let (positionals, t) = Options::new(
                    parse_args(quote::quote!(#args), cx),
                    TLS_LISTEN_OPTIONS,
                    "tls listener",
                    cx,
                );
                let mut pos = positionals.into_iter();
                let Some(addr) = pos
                    .next()
                    .and_then(|a| expect_str(&a, "tls listener address", cx))
                else {
                    cx.error_spanned(
                        &e,
                        "write tls(\"0.0.0.0:443\", cert = \"cert.pem\", key = \"key.pem\")",
                    );
                    continue;
                };
                let addr_lit = addr;
                let Some(addr) = socket_addr(&addr_lit, cx) else {
                    continue;
                };
                if listed_twice(&addr, &plain, &tls) {
                    cx.error(
                        addr_lit.span(),
                        format!("{addr:?} is listed twice in `listen`"),
                    );
                    continue;
                }
                let mut certs = Vec::new();
                match (t.string("cert", cx), t.string("key", cx)) {
                    (Some(c), Some(k)) => certs.push((c.value(), k.value())),
                    (None, None) => {}
                    _ => cx.error_spanned(&e, "`cert` and `key` go together"),
                }
                for pair in t.list("certs", cx).unwrap_or_default() {
                    match &pair {
                        Expr::Tuple(tp) if tp.elems.len() == 2 => {
                            let c = expect_str(&tp.elems[0], "certs", cx);
                            let k = expect_str(&tp.elems[1], "certs", cx);
                            if let (Some(c), Some(k)) = (c, k) {
                                certs.push((c.value(), k.value()));
                            }
                        }
                        other => cx.error_spanned(
                            other,
                            "`certs` takes pairs: [(\"cert.pem\", \"key.pem\"), ...]",
                        ),
                    }
                }
                if certs.is_empty() {
                    cx.error_spanned(
                        &e,
                        "a TLS listener needs `cert` and `key` (or `certs = [...]`)",
                    );
                }
                tls.push(TlsListen {
                    addr,
                    certs,
                    client_ca: t.string("client_ca", cx).map(|l| l.value()),
                    client_auth_required: t.flag("client_auth_required", cx),
                });
            }
            other => {
                if let Some(lit) = expect_str(other, "listen", cx)
                    && let Some(a) = socket_addr(&lit, cx)
                {
                    if listed_twice(&a, &plain, &tls) {
                        cx.error(lit.span(), format!("{a:?} is listed twice in `listen`"));
                    } else {
                        plain.push(a);
                    }
                }
            }
        }
    }
    (plain, tls)
}

/// Whether `addr` is already among the plain or TLS listen addresses (compared as
/// socket addresses: `127.0.0.1:80` and `127.0.0.1:080` are one).
fn listed_twice(addr: &str, plain: &[String], tls: &[TlsListen]) -> bool {
    let canonical = addr.parse::<std::net::SocketAddr>().ok();
    plain
        .iter()
        .chain(tls.iter().map(|t| &t.addr))
        .any(|p| p.parse::<std::net::SocketAddr>().ok() == canonical)
}

fn check_reserved(item: &Item, cx: &Ctxt) {
    let ident = match item {
        Item::Struct(i) => Some(&i.ident),
        Item::Enum(i) => Some(&i.ident),
        Item::Fn(i) => Some(&i.sig.ident),
        Item::Const(i) => Some(&i.ident),
        Item::Static(i) => Some(&i.ident),
        Item::Type(i) => Some(&i.ident),
        Item::Mod(i) => Some(&i.ident),
        Item::Trait(i) => Some(&i.ident),
        _ => None,
    };
    if let Some(i) = ident
        && (RESERVED.contains(&i.to_string().as_str()) || i.to_string().starts_with("__"))
    {
        cx.error(
            i.span(),
            format!(
                "`{i}` is defined by #[proxy] in this module; choose another name\n{}",
                listing(
                    "reserved",
                    &RESERVED
                        .iter()
                        .copied()
                        .chain(["names starting with `__`"])
                        .collect::<Vec<_>>()
                )
            ),
        );
    }
}

fn parse_fn_markers(
    f: &ItemFn,
    markers: Vec<(&'static str, Attribute)>,
    decl: &mut ProxyDecl,
    cx: &Ctxt,
) {
    let route_attrs: Vec<&Attribute> = markers
        .iter()
        .filter(|(m, _)| *m == "route")
        .map(|(_, a)| a)
        .collect();
    let cache_attrs: Vec<&Attribute> = markers
        .iter()
        .filter(|(m, _)| *m == "cache")
        .map(|(_, a)| a)
        .collect();
    let phase_attrs: Vec<&Attribute> = markers
        .iter()
        .filter(|(m, _)| *m == "phase")
        .map(|(_, a)| a)
        .collect();
    for (m, a) in &markers {
        if matches!(*m, "ctx" | "upstream") {
            cx.error_spanned(a, format!("#[{m}] goes on a struct, not a function"));
        }
    }
    if route_attrs.len() > 1 {
        cx.error_spanned(
            route_attrs[1],
            "one #[route] per function: declare another function for this route",
        );
    }
    if cache_attrs.len() > 1 {
        cx.error_spanned(cache_attrs[1], "#[cache] is given twice");
    }
    if !route_attrs.is_empty() && !phase_attrs.is_empty() {
        cx.error_spanned(
            phase_attrs[0],
            "a function is either a route handler or a phase, not both",
        );
        decl.unparsed_routes.push(f.sig.ident.clone());
        return;
    }
    if route_attrs.is_empty() && !cache_attrs.is_empty() {
        cx.error_spanned(cache_attrs[0], "#[cache] goes on a #[route] function");
    }
    let func = analyze_fn(f, decl.ctx.as_ref(), cx);
    if let Some(route_attr) = route_attrs.first() {
        let cache = cache_attrs.first().and_then(|a| parse_cache(a, cx));
        match parse_route(route_attr, func, cache, cx) {
            Some(r) => decl.routes.push(r),
            None => decl.unparsed_routes.push(f.sig.ident.clone()),
        }
    } else if let Some(phase_attr) = phase_attrs.first() {
        if phase_attrs.len() > 1 {
            cx.error_spanned(
                phase_attrs[1],
                "one #[phase] per function: declare another function",
            );
        }
        if let Some(p) = parse_phase(phase_attr, func, cx) {
            decl.phases.push(p);
        }
    }
}

/// Recognize a function's arguments and what its return type allows.
fn analyze_fn(f: &ItemFn, ctx: Option<&Ident>, cx: &Ctxt) -> Func {
    let mut args = Vec::new();
    for input in &f.sig.inputs {
        match input {
            FnArg::Receiver(r) => cx.error_spanned(
                r,
                "phase and route functions are free functions (no `self`)",
            ),
            FnArg::Typed(pt) => {
                let name = match &*pt.pat {
                    Pat::Ident(pi) => Some(pi.ident.clone()),
                    Pat::Wild(_) => None,
                    other => {
                        cx.error_spanned(other, "use a plain name for this argument");
                        None
                    }
                };
                let kind = classify(&pt.ty, name.as_ref(), ctx);
                args.push(Arg {
                    name,
                    ty: (*pt.ty).clone(),
                    kind,
                });
            }
        }
    }
    if !f.sig.generics.params.is_empty() {
        cx.error_spanned(
            &f.sig.generics,
            "phase and route functions cannot be generic",
        );
    }
    if let Some(u) = &f.sig.unsafety {
        cx.error_spanned(
            u,
            "phase and route functions cannot be `unsafe`: the proxy calls them with no contract to uphold\n  help: make the function safe and use an `unsafe` block inside it",
        );
    }
    let output = match &f.sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, t) => Some((**t).clone()),
    };
    Func {
        ident: f.sig.ident.clone(),
        is_async: f.sig.asyncness.is_some(),
        async_span: f.sig.asyncness.map(|a| a.span),
        args,
        outcome: outcome_of(output.as_ref()),
        trivial: f.sig.inputs.is_empty()
            && output.is_none()
            && f.sig.asyncness.is_none()
            && f.block.stmts.is_empty(),
        output,
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Paren(p) => last_segment(&p.elem),
        Type::Group(g) => last_segment(&g.elem),
        _ => None,
    }
}

fn first_generic(seg: &syn::PathSegment) -> Option<&Type> {
    match &seg.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name)
}

/// What an argument asks for, from how its type is written.
pub fn classify(ty: &Type, name: Option<&Ident>, ctx: Option<&Ident>) -> ArgKind {
    match ty {
        Type::Reference(r) => {
            let mutable = r.mutability.is_some();
            let inner = &*r.elem;
            let Some(seg) = last_segment(inner) else {
                return ArgKind::Unknown;
            };
            let id = seg.ident.to_string();
            if ctx.is_some_and(|c| seg.ident == *c) {
                return ArgKind::Ctx { mutable };
            }
            match id.as_str() {
                "Session" => ArgKind::Session { mutable },
                "RequestHeader" => ArgKind::RequestHeader { mutable },
                "ResponseHeader" => ArgKind::ResponseHeader { mutable },
                "Route" if !mutable => ArgKind::Route,
                "HttpPeer" if !mutable => ArgKind::Peer,
                "Error" if !mutable => ArgKind::ErrorRef,
                "HeaderMap" if mutable => ArgKind::Trailers,
                "HttpModules" if mutable => ArgKind::Modules,
                "Option" if mutable && first_generic(seg).is_some_and(|t| is_named(t, "Bytes")) => {
                    ArgKind::Body
                }
                _ => ArgKind::Unknown,
            }
        }
        _ => {
            if let Some(seg) = last_segment(ty) {
                let id = seg.ident.to_string();
                let generic_ref = first_generic(seg).and_then(|t| match t {
                    Type::Reference(r) if r.mutability.is_none() => {
                        last_segment(&r.elem).map(|s| s.ident.to_string())
                    }
                    _ => None,
                });
                match (id.as_str(), generic_ref.as_deref()) {
                    ("Option", Some("Route")) => return ArgKind::OptionRoute,
                    ("Option", Some("Error")) => return ArgKind::OptionErrorRef,
                    ("Box", _) if first_generic(seg).is_some_and(|t| is_named(t, "Error")) => {
                        return ArgKind::ErrorBox;
                    }
                    ("bool", _) => {
                        let n = name.map(|n| n.to_string()).unwrap_or_default();
                        match n.as_str() {
                            "end_of_stream" | "eos" | "_end_of_stream" => {
                                return ArgKind::EndOfStream;
                            }
                            "reused" | "client_reused" | "_reused" => return ArgKind::Reused,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            if name.is_some() {
                ArgKind::Param
            } else {
                ArgKind::Unknown
            }
        }
    }
}

fn outcome_of(output: Option<&Type>) -> Outcome {
    let Some(ty) = output else {
        return Outcome::Forwards;
    };
    if let Type::Tuple(t) = ty
        && t.elems.is_empty()
    {
        return Outcome::Forwards;
    }
    let Some(seg) = last_segment(ty) else {
        return Outcome::Either;
    };
    match seg.ident.to_string().as_str() {
        "Response" => Outcome::Answers,
        "Result" => match first_generic(seg) {
            Some(Type::Tuple(t)) if t.elems.is_empty() => Outcome::Forwards,
            Some(inner) if is_named(inner, "Response") => Outcome::Answers,
            _ => Outcome::Either,
        },
        _ => Outcome::Either,
    }
}

fn parse_upstream(attr: &Attribute, ident: &Ident, cx: &Ctxt) -> Option<Upstream> {
    let (positionals, opts) = Options::new(
        parse_args(attr_tokens(attr), cx),
        UPSTREAM_OPTIONS,
        "#[upstream]",
        cx,
    );
    for p in positionals {
        cx.error_spanned(
            p,
            "#[upstream] takes options only, e.g. #[upstream(addrs = [\"10.0.0.1:80\"])]",
        );
    }
    let mut addrs = Vec::new();
    let mut weights = Vec::new();
    let transport = opts.value("transport", cx).cloned();
    match opts.list("addrs", cx) {
        // A custom transport needs no address (an in-process handler has none).
        None if !opts.has("addrs") && transport.is_some() => {
            addrs.push("0.0.0.0:0".to_string());
            weights.push(1);
        }
        None if !opts.has("addrs") => {
            cx.error(
                ident.span(),
                format!("upstream `{ident}` needs `addrs = [\"ip:port\", ...]`"),
            );
        }
        None => {}
        Some(list) => {
            if list.is_empty() && opts.has("addrs") {
                cx.error(
                    opts.key_span("addrs").unwrap_or(ident.span()),
                    "`addrs` is empty: give at least one address",
                );
            }
            for e in list {
                // "ip:port", or ("ip:port", weight).
                let (lit, weight) = match &e {
                    Expr::Tuple(t) if t.elems.len() == 2 => {
                        let weight = match &t.elems[1] {
                            Expr::Lit(syn::ExprLit {
                                lit: syn::Lit::Int(i),
                                ..
                            }) => match i.base10_parse::<u32>() {
                                Ok(0) => {
                                    cx.error(i.span(), "a weight is at least 1");
                                    1
                                }
                                Ok(w) => w,
                                Err(err) => {
                                    cx.push(err);
                                    1
                                }
                            },
                            other => {
                                cx.error_spanned(
                                    other,
                                    "a weight is a number: (\"10.0.0.1:80\", 3)",
                                );
                                1
                            }
                        };
                        (expect_str(&t.elems[0], "addrs", cx), weight)
                    }
                    other => (expect_str(other, "addrs", cx), 1),
                };
                let Some(lit) = lit else { continue };
                match parse_address(&lit.value()) {
                    // Host names compare without case: `API:80` is `api:80`.
                    Ok(_) if addrs.iter().any(|a: &String| same_address(a, &lit.value())) => {
                        cx.error(
                            lit.span(),
                            format!("{:?} is listed twice\n  help: give it a weight instead: (\"{}\", 2)", lit.value(), lit.value()),
                        );
                    }
                    Ok(_) => {
                        addrs.push(lit.value());
                        weights.push(weight);
                    }
                    Err(err) => error_in_lit(cx, &lit, &err, "invalid upstream address"),
                }
            }
        }
    }
    let lb = opts.value("lb", cx).and_then(|e| parse_lb(e, cx));
    let weighted = weights.iter().any(|&w| w != 1);
    if weighted && matches!(lb, None | Some(Lb::RoundRobin) | Some(Lb::Random)) {
        cx.error(
            opts.key_span("addrs").unwrap_or(ident.span()),
            "weights are ignored by this policy: use lb = weighted_round_robin, least_loaded, least_connections or consistent(...)",
        );
    }
    let passive = opts.value("passive", cx).and_then(|e| parse_passive(e, cx));
    let sni = opts.string("sni", cx).map(|s| s.value());
    let tls = opts.flag("tls", cx);
    let health = opts.value("health", cx).and_then(|e| parse_health(e, cx));
    let alpn = opts.value("alpn", cx).and_then(|e| {
        let usage = "`alpn` is `h1`, `h2` or `h2_or_h1` (HTTP/2 preferred, HTTP/1.1 accepted)";
        let name = match e {
            Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
            _ => None,
        };
        match name.as_deref() {
            Some(n @ ("h1" | "h2" | "h2_or_h1")) => Some(n.to_string()),
            _ => {
                cx.error_spanned(e, usage);
                None
            }
        }
    });
    if alpn.is_some() && !tls {
        cx.error(
            opts.key_span("alpn").unwrap_or(ident.span()),
            "`alpn` needs `tls` (in cleartext, `h2` means HTTP/2 with prior knowledge)",
        );
    }
    if alpn.is_some() && opts.has("h2") {
        cx.error(
            opts.key_span("h2").unwrap_or(ident.span()),
            "`h2` and `alpn` say the same thing twice: keep `alpn` on a `tls` group",
        );
    }
    if sni.is_some() && !tls {
        cx.error(
            opts.key_span("sni").unwrap_or(ident.span()),
            "`sni` needs `tls`",
        );
    }
    let resolve_every = opts.duration("resolve_every", cx);
    if resolve_every.is_some_and(|d| d.is_zero()) {
        cx.error(
            opts.key_span("resolve_every").unwrap_or(ident.span()),
            "`resolve_every` must be longer than 0 (how often host names are resolved again)",
        );
    }
    Some(Upstream {
        ident: ident.clone(),
        addrs,
        connect_timeout: opts.timeout("connect_timeout", cx),
        read_timeout: opts.timeout("read_timeout", cx),
        write_timeout: opts.timeout("write_timeout", cx),
        idle_timeout: opts.duration("idle_timeout", cx),
        retries: opts.int::<u32>("retries", cx).map(|(r, _)| r),
        tls,
        sni,
        h2: opts.flag("h2", cx),
        alpn,
        transport,
        health,
        weights,
        lb: lb.unwrap_or(Lb::RoundRobin),
        passive,
        resolve_every,
    })
}

/// `round_robin`, `weighted_round_robin`, `random`, `least_loaded`, `least_connections`,
/// `consistent(header("x-user"), points = 160)`.
fn parse_lb(e: &Expr, cx: &Ctxt) -> Option<Lb> {
    let (name, span, args) = match e {
        Expr::Path(p) if p.path.get_ident().is_some() => {
            let i = p.path.get_ident()?;
            (i.to_string(), i.span(), None)
        }
        Expr::Call(c) => match &*c.func {
            Expr::Path(p) if p.path.get_ident().is_some() => {
                let i = p.path.get_ident()?;
                (i.to_string(), i.span(), Some(&c.args))
            }
            other => {
                cx.error_spanned(other, "expected a load-balancing policy");
                return None;
            }
        },
        other => {
            cx.error_spanned(
                other,
                "expected a load-balancing policy, e.g. `lb = least_loaded`",
            );
            return None;
        }
    };
    let simple = match name.as_str() {
        "round_robin" => Some(Lb::RoundRobin),
        "weighted_round_robin" => Some(Lb::WeightedRoundRobin),
        "random" => Some(Lb::Random),
        "least_loaded" => Some(Lb::LeastLoaded),
        "least_connections" => Some(Lb::LeastConnections),
        "consistent" => None,
        other => {
            let hint = proxy_syntax::suggest::closest(other, LB_POLICIES.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            cx.error(
                span,
                format!(
                    "unknown load-balancing policy `{other}`{hint}\n  valid policies: {}",
                    LB_POLICIES.join(", ")
                ),
            );
            return None;
        }
    };
    if let Some(simple) = simple {
        if args.is_some() {
            cx.error(span, format!("`{name}` takes no arguments"));
        }
        return Some(simple);
    }
    let usage = "write consistent(header(\"x-user\")), consistent(cookie(\"sid\")), consistent(client_addr), consistent(path) or consistent(uri)";
    let Some(args) = args else {
        cx.error(span, format!("consistent hashing needs a key: what part of the request is hashed?\n  help: {usage}"));
        return None;
    };
    let args_tokens = quote::quote!(#args);
    let (positionals, o) = Options::new(
        parse_args(args_tokens, cx),
        &["points"],
        "consistent hashing",
        cx,
    );
    let points = o.int::<u32>("points", cx).map_or(160, |(p, pspan)| {
        if p == 0 {
            cx.error(pspan, "`points` is at least 1 (nginx uses 160)");
        }
        p
    });
    let Some(key) = positionals.first() else {
        cx.error(
            span,
            format!("consistent hashing needs a key\n  help: {usage}"),
        );
        return None;
    };
    let key = match key {
        Expr::Path(p) if p.path.is_ident("client_addr") => HashKeyDecl::ClientAddr,
        Expr::Path(p) if p.path.is_ident("path") => HashKeyDecl::Path,
        Expr::Path(p) if p.path.is_ident("uri") => HashKeyDecl::Uri,
        Expr::Call(c) if c.args.len() == 1 => {
            let kind = match &*c.func {
                Expr::Path(p) => p.path.get_ident().map(ToString::to_string),
                _ => None,
            };
            let name = c
                .args
                .first()
                .and_then(|a| expect_str(a, "consistent", cx))?;
            match kind.as_deref() {
                Some("header") => HashKeyDecl::Header(name.value().to_ascii_lowercase()),
                Some("cookie") => HashKeyDecl::Cookie(name.value()),
                _ => {
                    cx.error_spanned(&c.func, format!("unknown hash key\n  help: {usage}"));
                    return None;
                }
            }
        }
        other => {
            cx.error_spanned(other, format!("unknown hash key\n  help: {usage}"));
            return None;
        }
    };
    Some(Lb::Consistent { key, points })
}

/// `passive(failures = 3, eject = "10s")`.
fn parse_passive(e: &Expr, cx: &Ctxt) -> Option<Passive> {
    let usage = "write passive(failures = 3, eject = \"10s\")";
    let Expr::Call(call) = e else {
        cx.error_spanned(e, usage);
        return None;
    };
    if !matches!(&*call.func, Expr::Path(p) if p.path.is_ident("passive")) {
        cx.error_spanned(&call.func, usage);
        return None;
    }
    let args = &call.args;
    let (positionals, o) = Options::new(
        parse_args(quote::quote!(#args), cx),
        &["failures", "eject"],
        "passive health check",
        cx,
    );
    for p in positionals {
        cx.error_spanned(p, usage);
    }
    let failures = match o.int::<u32>("failures", cx) {
        Some((0, span)) => {
            cx.error(span, "`failures` is at least 1");
            1
        }
        Some((f, _)) => f,
        None => 3,
    };
    let eject = o
        .duration("eject", cx)
        .unwrap_or(std::time::Duration::from_secs(10));
    if eject.is_zero() {
        cx.error(
            o.key_span("eject").unwrap_or(call.func.span()),
            "`eject` must be longer than 0",
        );
    }
    Some(Passive { failures, eject })
}

const HEALTH_OPTIONS: &[&str] = &[
    "every", "timeout", "rise", "fall", "path", "host", "expect", "body",
];

/// `tcp(every = "5s")` or `http(path = "/healthz", every = "5s", expect = 200)`.
fn parse_health(e: &Expr, cx: &Ctxt) -> Option<Health> {
    let usage = "`health` is `tcp(every = \"5s\")` or `http(path = \"/healthz\", every = \"5s\")`";
    let Expr::Call(call) = e else {
        cx.error_spanned(e, usage);
        return None;
    };
    let kind = match &*call.func {
        Expr::Path(p) => p.path.get_ident().map(|i| (i.to_string(), i.span())),
        _ => None,
    };
    let Some((kind, kind_span)) = kind else {
        cx.error_spanned(&call.func, usage);
        return None;
    };
    let http = match kind.as_str() {
        "tcp" => false,
        "http" => true,
        other => {
            let hint = proxy_syntax::suggest::closest(other, ["tcp", "http"])
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            cx.error(
                kind_span,
                format!("unknown health check `{other}`{hint}\n  {usage}"),
            );
            return None;
        }
    };
    let args = &call.args;
    let (positionals, opts) = Options::new(
        parse_args(quote::quote!(#args), cx),
        HEALTH_OPTIONS,
        "health check",
        cx,
    );
    for p in positionals {
        cx.error_spanned(p, usage);
    }
    let Some(every) = opts.duration("every", cx) else {
        if !opts.has("every") {
            cx.error(
                kind_span,
                "a health check needs `every = \"5s\"` (how often to probe)",
            );
        }
        return None;
    };
    if every.is_zero() {
        cx.error(
            opts.key_span("every").unwrap_or(kind_span),
            "`every` must be longer than 0",
        );
    }
    let threshold = |key: &str| {
        opts.int::<u32>(key, cx).map(|(v, span)| {
            if v == 0 {
                cx.error(
                    span,
                    format!("`{key}` is a count of consecutive probes: at least 1"),
                );
            }
            v
        })
    };
    let (rise, fall) = (threshold("rise"), threshold("fall"));
    let path = opts.string("path", cx);
    let host = opts.string("host", cx).map(|h| h.value());
    let expect = opts.int::<u16>("expect", cx).map(|(v, span)| {
        if !(100..=599).contains(&v) {
            cx.error(span, "`expect` is an HTTP status (100-599)");
        }
        v
    });
    let http_path = if http {
        match path {
            Some(p) if p.value().starts_with('/') => Some(p.value()),
            Some(p) => {
                cx.error(p.span(), "a health check path starts with `/`");
                None
            }
            None => {
                cx.error(
                    kind_span,
                    "an http health check needs `path = \"/healthz\"`",
                );
                None
            }
        }
    } else {
        for key in ["path", "host", "expect", "body"] {
            if let Some(span) = opts.key_span(key) {
                cx.error(
                    span,
                    format!("`{key}` goes with `http(...)` health checks, not `tcp(...)`"),
                );
            }
        }
        None
    };
    Some(Health {
        http_path,
        host,
        expect,
        body: opts.string("body", cx).map(|b| b.value()),
        every,
        timeout: opts.timeout("timeout", cx),
        rise,
        fall,
    })
}

const METHOD_NAMES: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `GET`, `GET | HEAD`, `ANY`.
fn parse_methods(e: &Expr, cx: &Ctxt) -> (u16, Vec<String>) {
    let mut idents = Vec::new();
    fn walk(e: &Expr, out: &mut Vec<Expr>) {
        match e {
            Expr::Binary(b) if matches!(b.op, syn::BinOp::BitOr(_)) => {
                walk(&b.left, out);
                walk(&b.right, out);
            }
            other => out.push(other.clone()),
        }
    }
    walk(e, &mut idents);
    let mut mask = 0u16;
    let mut names = Vec::new();
    let valid = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH, ANY";
    for m in idents {
        let ident = match &m {
            Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
            _ => None,
        };
        let Some(ident) = ident else {
            cx.error_spanned(
                &m,
                format!("expected a method, e.g. `GET` or `GET | HEAD` (valid: {valid})"),
            );
            continue;
        };
        let name = ident.to_string();
        if name == "ANY" {
            if mask != 0 || idents_len_gt1(e) {
                cx.error(ident.span(), "`ANY` already includes every method");
            }
            mask = (1 << 10) - 1;
            names = vec!["ANY".to_string()];
            continue;
        }
        if name == "CONNECT" {
            cx.error(
                ident.span(),
                "CONNECT cannot be routed: a reverse proxy refuses it with 405",
            );
            continue;
        }
        match METHOD_NAMES.iter().position(|n| *n == name) {
            Some(i) => {
                let bit = 1u16 << i;
                if mask & bit != 0 {
                    cx.error(ident.span(), format!("method `{name}` is listed twice"));
                }
                mask |= bit;
                names.push(name);
            }
            None => {
                let upper = name.to_ascii_uppercase();
                let hint = if METHOD_NAMES.contains(&upper.as_str()) || upper == "ANY" {
                    format!("; methods are upper case: `{upper}`")
                } else {
                    proxy_syntax::suggest::closest(
                        &name,
                        METHOD_NAMES.iter().copied().chain(["ANY"]),
                    )
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default()
                };
                cx.error(
                    ident.span(),
                    format!("unknown method `{name}`{hint}\n  valid: {valid}"),
                );
            }
        }
    }
    (mask, names)
}

fn idents_len_gt1(e: &Expr) -> bool {
    matches!(e, Expr::Binary(_))
}

fn parse_host(lit: &LitStr, cx: &Ctxt) -> Option<HostPattern> {
    let v = lit.value();
    let lower = v.to_ascii_lowercase();
    if v == "*" {
        cx.error(
            lit.span(),
            "`host = \"*\"` is the default: leave `host` out to match every host",
        );
        return None;
    }
    if lower.contains(':') {
        cx.error(
            lit.span(),
            "hosts are matched without the port: remove `:port`",
        );
        return None;
    }
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, lower.clone()),
    };
    if name.contains('*') {
        cx.error(
            lit.span(),
            "a wildcard host is written `*.example.com` (one leading `*.`)",
        );
        return None;
    }
    let valid = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        });
    if !valid {
        cx.error(
            lit.span(),
            format!(
                "invalid host {v:?}: expected a name like \"api.example.com\" or \"*.example.com\""
            ),
        );
        return None;
    }
    Some(if wild {
        HostPattern::Wildcard(format!(".{name}"))
    } else {
        HostPattern::Exact(name)
    })
}

fn header_pairs(opts: &Options, key: &str, cx: &Ctxt) -> Vec<(String, String)> {
    let Some(list) = opts.list(key, cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in list {
        match &e {
            Expr::Tuple(t) if t.elems.len() == 2 => {
                let name = expect_str(&t.elems[0], key, cx);
                let value = expect_str(&t.elems[1], key, cx);
                if let (Some(n), Some(v)) = (name, value)
                    && check_header_name(&n, cx)
                    && check_header_value(&v, cx)
                {
                    out.push((n.value(), v.value()));
                }
            }
            other => cx.error_spanned(
                other,
                format!("`{key}` takes pairs: [(\"name\", \"value\"), ...]"),
            ),
        }
    }
    out
}

fn header_names(opts: &Options, key: &str, cx: &Ctxt) -> Vec<String> {
    opts.strings(key, cx)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| check_header_name(l, cx))
        .map(|l| l.value())
        .collect()
}

/// A header name is an HTTP token (RFC 9110 §5.1); an error at the literal if not.
fn check_header_name(name: &LitStr, cx: &Ctxt) -> bool {
    let v = name.value();
    let ok = !v.is_empty() && v.bytes().all(is_token_byte);
    if !ok {
        cx.error(
            name.span(),
            format!("invalid header name {v:?}: letters, digits and !#$%&'*+-.^_`|~ only"),
        );
    }
    ok
}

/// A header value has no control characters but horizontal tab (RFC 9110 §5.5); an
/// error at the literal if it has.
fn check_header_value(value: &LitStr, cx: &Ctxt) -> bool {
    let ok = !value
        .value()
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f);
    if !ok {
        cx.error(
            value.span(),
            "a header value cannot contain control characters (CR, LF, NUL, DEL, ...)",
        );
    }
    ok
}

fn parse_route(
    attr: &Attribute,
    mut func: Func,
    cache: Option<CachePolicy>,
    cx: &Ctxt,
) -> Option<Route> {
    let errors_before = cx.error_count();
    let (positionals, opts) = Options::new(
        parse_args(attr_tokens(attr), cx),
        ROUTE_OPTIONS,
        "#[route]",
        cx,
    );
    let mut pos = positionals.into_iter();
    let Some(methods_expr) = pos.next() else {
        cx.error_spanned(
            attr,
            "#[route] needs methods and a path: #[route(GET, \"/path\", to = Upstream)]",
        );
        return None;
    };
    let (methods, method_names) = parse_methods(&methods_expr, cx);
    let Some(pattern_expr) = pos.next() else {
        cx.error_spanned(
            attr,
            "#[route] needs a path pattern after the methods: #[route(GET, \"/path\")]",
        );
        return None;
    };
    for extra in pos {
        cx.error_spanned(
            extra,
            "unexpected argument: after the methods and the path, only `key = value` options",
        );
    }
    let pattern_lit = expect_str(&pattern_expr, "path", cx)?;
    let pattern = match parse_pattern(&pattern_lit.value()) {
        Ok(p) => p,
        Err(e) => {
            error_in_lit(cx, &pattern_lit, &e, "invalid route pattern");
            return None;
        }
    };
    // A `bool` named like a phase flag (`reused`, `eos`) is a route parameter when the
    // pattern has one of that name: a route handler gets no flags.
    let params: Vec<&str> = pattern.params().collect();
    for arg in &mut func.args {
        if matches!(arg.kind, ArgKind::EndOfStream | ArgKind::Reused)
            && arg
                .name
                .as_ref()
                .is_some_and(|n| param_for(&n.to_string(), &params).is_some())
        {
            arg.kind = ArgKind::Param;
        }
    }
    let host = opts
        .string("host", cx)
        .and_then(|l| parse_host(&l, cx).map(|h| (h, l.span())));

    let to = opts.ident("to", cx);
    let redirect = opts.string("redirect", cx);
    let respond = opts.int::<u16>("respond", cx);
    let status = opts.int::<u16>("status", cx);
    let body = opts.string("body", cx);
    let content_type = opts.string("content_type", cx);
    let given: Vec<(&str, Span)> = ["to", "redirect", "respond"]
        .into_iter()
        .filter_map(|k| opts.key_span(k).map(|s| (k, s)))
        .collect();
    for (k, span) in given.iter().skip(1) {
        let (first, first_span) = given[0];
        let mut e = syn::Error::new(
            *span,
            format!(
                "`{k}` cannot go with `{first}`: a route either forwards (`to`), redirects (`redirect`) or answers itself (`respond`)"
            ),
        );
        e.combine(syn::Error::new(
            first_span,
            format!("note: `{first}` is given here"),
        ));
        cx.push(e);
    }
    let action = if let Some(up) = to {
        Action::Forward(up)
    } else if let Some(loc) = redirect {
        let code = status.map_or(302, |(s, span)| {
            if ![301, 302, 303, 307, 308].contains(&s) {
                cx.error(span, "a redirect status is 301, 302, 303, 307 or 308");
            }
            s
        });
        check_template(&loc, &pattern, "redirect", cx);
        Action::Redirect(code, loc)
    } else if let Some((code, span)) = respond {
        if !(200..=599).contains(&code) {
            cx.error(span, "`respond` takes a final status code (200-599)");
        }
        if matches!(code, 204 | 304)
            && let Some(b) = &body
        {
            cx.error(
                b.span(),
                format!("a {code} response has no body (RFC 9110 §15.3.5, §15.4.5): remove `body`"),
            );
        }
        if let Some(ct) = &content_type {
            check_header_value(ct, cx);
        }
        Action::Respond(
            code,
            body.as_ref().map(LitStr::value).unwrap_or_default(),
            content_type
                .as_ref()
                .map_or_else(|| "text/plain; charset=utf-8".to_string(), LitStr::value),
        )
    } else if given.is_empty() {
        Action::HandlerOnly
    } else {
        Action::Invalid
    };
    if status.is_some() && !opts.has("redirect") {
        cx.error(
            opts.key_span("status").unwrap_or(attr.span()),
            "`status` goes with `redirect`; for a local answer use `respond = CODE`",
        );
    }
    if (body.is_some() || content_type.is_some()) && !opts.has("respond") {
        cx.error(
            opts.key_span("body")
                .or(opts.key_span("content_type"))
                .unwrap_or(attr.span()),
            "`body` and `content_type` go with `respond = CODE`",
        );
    }
    let strip_prefix = opts.string("strip_prefix", cx);
    let rewrite = opts.string("rewrite", cx);
    if strip_prefix.is_some() && rewrite.is_some() {
        cx.error(
            opts.key_span("rewrite").unwrap_or(attr.span()),
            "use `strip_prefix` or `rewrite`, not both",
        );
    }
    if let Some(sp) = &strip_prefix {
        check_strip_prefix(sp, &pattern_lit, &pattern, cx);
    }
    if let Some(rw) = &rewrite {
        if !rw.value().starts_with('/') {
            cx.error(rw.span(), "`rewrite` is a path: it starts with `/`");
        }
        check_template(rw, &pattern, "rewrite", cx);
    }
    // A route without any target is reported once, by `check` ("neither forwards nor
    // answers"), unless its handler answers.
    let answers_locally = match &action {
        Action::Redirect(..) | Action::Respond(..) => true,
        Action::HandlerOnly => func.outcome == Outcome::Answers,
        Action::Forward(_) | Action::Invalid => false,
    };
    if answers_locally {
        for k in [
            "retries",
            "timeout",
            "connect_timeout",
            "strip_prefix",
            "rewrite",
            "set_request_headers",
            "add_request_headers",
            "remove_request_headers",
        ] {
            if let Some(span) = opts.key_span(k) {
                cx.error(
                    span,
                    format!("`{k}` only applies to a route that forwards (`to = Upstream`)"),
                );
            }
        }
    }
    let on_param_error = opts
        .int::<u16>("on_param_error", cx)
        .map_or(404, |(s, span)| {
            if !(400..=599).contains(&s) {
                cx.error(span, "`on_param_error` is an error status (400-599)");
            }
            s
        });
    let action_span = given.first().map_or_else(|| attr.span(), |(_, s)| *s);
    let mut route = Route {
        func,
        attr_range: SpanRange::of(attr),
        complete: false,
        methods,
        method_names,
        methods_range: SpanRange::of(&methods_expr),
        host,
        pattern,
        pattern_lit,
        action,
        action_span,
        retries: opts.int::<u32>("retries", cx).map(|(r, _)| r),
        timeout: opts.timeout("timeout", cx),
        connect_timeout: opts.timeout("connect_timeout", cx),
        strip_prefix: strip_prefix.map(|s| s.value()),
        rewrite,
        request_headers: HeaderOps {
            set: header_pairs(&opts, "set_request_headers", cx),
            add: header_pairs(&opts, "add_request_headers", cx),
            remove: header_names(&opts, "remove_request_headers", cx),
        },
        response_headers: HeaderOps {
            set: header_pairs(&opts, "set_response_headers", cx),
            add: header_pairs(&opts, "add_response_headers", cx),
            remove: header_names(&opts, "remove_response_headers", cx),
        },
        on_param_error,
        cache,
        rate_limit: parse_rate_limit(&opts, cx),
    };
    route.complete = cx.error_count() == errors_before;
    Some(route)
}

/// `strip_prefix` names whole leading static segments of the route's pattern (as the
/// pattern's segments, escapes of unreserved characters decoded): the upstream gets
/// the path from the next segment on.
fn check_strip_prefix(
    prefix: &LitStr,
    pattern_lit: &LitStr,
    pattern: &proxy_syntax::pattern::Pattern,
    cx: &Ctxt,
) {
    use proxy_syntax::pattern::{Segment, normalize_static};
    let v = prefix.value();
    let trimmed = v.trim_end_matches('/');
    let whole_segments = v.starts_with('/')
        && !trimmed.is_empty()
        && trimmed[1..].split('/').enumerate().all(|(i, part)| {
            matches!(pattern.segments.get(i), Some(Segment::Static(s)) if *s == normalize_static(part))
        });
    if !whole_segments {
        let leading: Vec<&str> = pattern
            .segments
            .iter()
            .map_while(|s| match s {
                Segment::Static(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        let help = match leading.first() {
            None => {
                "the path starts with a parameter: there is no fixed prefix to strip".to_string()
            }
            Some(first) => format!(
                "it can strip \"/{first}\"{}",
                if leading.len() > 1 {
                    format!(" up to \"/{}\"", leading.join("/"))
                } else {
                    String::new()
                }
            ),
        };
        cx.error(
            prefix.span(),
            format!(
                "`strip_prefix` {v:?} is not made of whole leading segments of the route's path {:?}\n  help: {help}",
                pattern_lit.value()
            ),
        );
    }
}

/// A byte allowed in an HTTP token (a header name): RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `rate_limit = "100/s"` with its companions `burst`, `concurrency` and `by`.
fn parse_rate_limit(opts: &Options, cx: &Ctxt) -> Option<RateLimitDecl> {
    let positive = |key: &str| {
        opts.int::<u32>(key, cx).map(|(v, span)| {
            if v == 0 {
                cx.error(span, format!("`{key}` is at least 1"));
            }
            v
        })
    };
    let burst = positive("burst");
    let concurrency = positive("concurrency");
    let by = opts.value("by", cx).and_then(|e| parse_limit_by(e, cx));
    let Some(lit) = opts.string("rate_limit", cx) else {
        if !opts.has("rate_limit") {
            for key in ["burst", "concurrency", "by"] {
                if let Some(span) = opts.key_span(key) {
                    cx.error(
                        span,
                        format!(
                            "`{key}` goes with `rate_limit`\n  help: add `rate_limit = \"100/s\"` (requests per period)"
                        ),
                    );
                }
            }
        }
        return None;
    };
    let rate = match proxy_syntax::rate::parse_rate(&lit.value()) {
        Ok(r) => r,
        Err(e) => {
            error_in_lit(cx, &lit, &e, "invalid rate for `rate_limit`");
            return None;
        }
    };
    // The limiter counts in nanoseconds (u64): about 584 years at most.
    if u64::try_from(rate.per.as_nanos()).is_err() {
        cx.error(
            lit.span(),
            "the rate's period is longer than the limiter can count (about 584 years)",
        );
        return None;
    }
    Some(RateLimitDecl {
        count: rate.count,
        per: rate.per,
        burst,
        concurrency,
        by: by.unwrap_or(LimitByDecl::ClientAddr),
    })
}

/// `client_addr`, `header("x-api-key")` or `route`.
fn parse_limit_by(e: &Expr, cx: &Ctxt) -> Option<LimitByDecl> {
    let usage = "`by` is `client_addr`, `header(\"x-api-key\")` or `route` (one budget for the whole route)";
    match e {
        Expr::Path(p) if p.path.is_ident("client_addr") => Some(LimitByDecl::ClientAddr),
        Expr::Path(p) if p.path.is_ident("route") => Some(LimitByDecl::Route),
        Expr::Call(c)
            if c.args.len() == 1
                && matches!(&*c.func, Expr::Path(p) if p.path.is_ident("header")) =>
        {
            let name = expect_str(&c.args[0], "header", cx)?;
            let value = name.value();
            if value.is_empty() || !value.bytes().all(is_token_byte) {
                cx.error(name.span(), "not a valid header name");
                return None;
            }
            Some(LimitByDecl::Header(value.to_ascii_lowercase()))
        }
        other => {
            cx.error_spanned(other, usage);
            None
        }
    }
}

/// `{name}` references in a redirect/rewrite template must be parameters of the pattern.
fn check_template(lit: &LitStr, pattern: &proxy_syntax::pattern::Pattern, what: &str, cx: &Ctxt) {
    let v = lit.value();
    if v.is_empty() {
        cx.error(
            lit.span(),
            format!("`{what}` is empty: give a path or a URL"),
        );
        return;
    }
    // Outside `{param}`s: what may stand in a URI as written (RFC 3986): no spaces,
    // control characters or raw non-ASCII, and no `}` without its `{`.
    let mut depth = 0usize;
    for (i, b) in v.bytes().enumerate() {
        let problem = match b {
            b'{' => {
                depth += 1;
                None
            }
            b'}' if depth == 0 => Some("a `}` without its `{`"),
            b'}' => {
                depth -= 1;
                None
            }
            _ if depth > 0 => None,
            0..=0x20 | 0x7f => Some("a space or control character; write it percent-encoded"),
            0x80.. => Some("a non-ASCII character; write it percent-encoded"),
            _ => None,
        };
        if let Some(problem) = problem {
            let e = proxy_syntax::SyntaxError::new(i, 1, problem);
            error_in_lit(cx, lit, &e, &format!("invalid `{what}` template"));
            return;
        }
    }
    let params: Vec<&str> = pattern.params().collect();
    let mut rest = v.as_str();
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            let e = proxy_syntax::SyntaxError::new(
                offset + open,
                rest.len() - open,
                "`{` is never closed",
            );
            error_in_lit(cx, lit, &e, &format!("invalid `{what}` template"));
            return;
        };
        let name = rest[open + 1..open + close].trim_start_matches('*');
        if !params.contains(&name) {
            let mut e = proxy_syntax::SyntaxError::new(
                offset + open,
                close + 1,
                format!("the route has no parameter `{name}`"),
            );
            if let Some(s) = proxy_syntax::suggest::closest(name, params.iter().copied()) {
                e = e.hint(format!("did you mean `{{{s}}}`?"));
            } else if !params.is_empty() {
                let written: Vec<String> = params.iter().map(|p| format!("{{{p}}}")).collect();
                e = e.hint(format!("the route's parameters: {}", written.join(", ")));
            } else {
                e = e.hint("the route has no parameters");
            }
            error_in_lit(cx, lit, &e, &format!("invalid `{what}` template"));
        }
        offset += open + close + 1;
        rest = &rest[open + close + 1..];
    }
}

fn request_parts(opts: &Options, key: &str, cx: &Ctxt) -> Vec<RequestPart> {
    let Some(list) = opts.list(key, cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in list {
        let parsed = match &e {
            Expr::Call(c) if c.args.len() == 1 => match (&*c.func, c.args.first()) {
                (Expr::Path(p), Some(arg)) => p.path.get_ident().map(|i| (i.clone(), arg.clone())),
                _ => None,
            },
            _ => None,
        };
        let Some((kind, arg)) = parsed else {
            cx.error_spanned(
                &e,
                format!("`{key}` takes header(\"name\"), cookie(\"name\") or query(\"name\")"),
            );
            continue;
        };
        let Some(name) = expect_str(&arg, key, cx) else {
            continue;
        };
        match kind.to_string().as_str() {
            // Header and cookie names are tokens (RFC 9110 §5.1, RFC 6265 §4.1.1).
            "header" | "cookie" if !check_header_name(&name, cx) => {}
            "query" if name.value().is_empty() => {
                cx.error(name.span(), "a query parameter name cannot be empty");
            }
            "header" => out.push(RequestPart::Header(name.value().to_ascii_lowercase())),
            "cookie" => out.push(RequestPart::Cookie(name.value())),
            "query" => out.push(RequestPart::Query(name.value())),
            other => cx.error(
                kind.span(),
                format!("unknown request part `{other}`: use header, cookie or query"),
            ),
        }
    }
    out
}

fn parse_cache(attr: &Attribute, cx: &Ctxt) -> Option<CachePolicy> {
    let (positionals, opts) = Options::new(
        parse_args(attr_tokens(attr), cx),
        CACHE_OPTIONS,
        "#[cache]",
        cx,
    );
    for p in positionals {
        cx.error_spanned(
            p,
            "#[cache] takes options only, e.g. #[cache(ttl = \"5m\")]",
        );
    }
    let policy = CachePolicy {
        range: SpanRange::of(attr),
        ttl: opts.duration("ttl", cx),
        stale_while_revalidate: opts.duration("stale_while_revalidate", cx),
        stale_if_error: opts.duration("stale_if_error", cx),
        vary: opts
            .strings("vary", cx)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| check_header_name(l, cx))
            .map(|l| l.value().to_ascii_lowercase())
            .collect(),
        key: request_parts(&opts, "key", cx),
        bypass: request_parts(&opts, "bypass", cx),
        max_size: opts.size("max_size", cx),
        lock_timeout: opts.duration("lock_timeout", cx),
    };
    if policy.max_size == Some(0) {
        cx.error(
            opts.key_span("max_size").unwrap_or(attr.span()),
            "`max_size = \"0\"` would store nothing: remove #[cache] instead",
        );
    }
    if policy.vary.iter().any(|v| v == "*") {
        cx.error(
            opts.key_span("vary").unwrap_or(attr.span()),
            "`vary = [\"*\"]` means never cache: remove #[cache] instead",
        );
    }
    Some(policy)
}

fn parse_phase(attr: &Attribute, func: Func, cx: &Ctxt) -> Option<PhaseFn> {
    let (positionals, opts) = Options::new(
        parse_args(attr_tokens(attr), cx),
        &["routes"],
        "#[phase]",
        cx,
    );
    let mut pos = positionals.into_iter();
    let Some(first) = pos.next() else {
        cx.error_spanned(
            attr,
            format!(
                "#[phase] needs a phase name, e.g. #[phase(request_filter)]\n{}",
                listing("phases", &phases::names())
            ),
        );
        return None;
    };
    for extra in pos {
        cx.error_spanned(
            extra,
            "#[phase] takes one phase name (and optionally `routes = [...]`)",
        );
    }
    let ident = match &first {
        Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
        _ => None,
    };
    let Some(ident) = ident else {
        cx.error_spanned(&first, "expected a phase name, e.g. `request_filter`");
        return None;
    };
    let name = ident.to_string();
    let Some(def) = phases::by_name(&name) else {
        let names = phases::names();
        let hint = proxy_syntax::suggest::closest(&name, names.iter().copied())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        let msg = match name.as_str() {
            "upstream_peer" => {
                "`upstream_peer` is generated from the routes: use #[route(..., to = Upstream)]"
                    .to_string()
            }
            "new_ctx" => {
                "`new_ctx` is generated: the #[ctx] struct's Default makes each request's context"
                    .to_string()
            }
            _ => format!(
                "unknown phase `{name}`{hint}\n{}",
                listing("phases", &names)
            ),
        };
        cx.error(ident.span(), msg);
        return None;
    };
    let routes: Vec<Ident> = match opts.list("routes", cx) {
        None => Vec::new(),
        Some(list) => {
            if list.is_empty() {
                cx.error(
                    opts.key_span("routes").unwrap_or(ident.span()),
                    "`routes = []` names no route\n  help: list the routes this phase runs for, or leave `routes` out to run it for every request",
                );
            }
            list.into_iter()
                .filter_map(|e| match &e {
                    Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
                    other => {
                        cx.error_spanned(
                            other,
                            "`routes` lists route function names: routes = [user, assets]",
                        );
                        None
                    }
                })
                .collect()
        }
    };
    for (i, r) in routes.iter().enumerate() {
        if routes[..i].contains(r) {
            cx.error(r.span(), format!("`{r}` is listed twice in `routes`"));
        }
    }
    Some(PhaseFn {
        phase: def.phase,
        phase_span: ident.span(),
        func,
        routes,
    })
}
