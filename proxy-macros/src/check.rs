//! Rules across items: routes against upstreams, routes against each other (duplicates,
//! collisions, conflicting parameter names), handler and phase arguments against what
//! can be provided, cache policies against methods. Each broken rule is an error at
//! the offending token, with a note at the other place that matters.

use std::collections::BTreeMap;

use proxy_syntax::SyntaxError;
use proxy_syntax::pattern::Segment;

use crate::ctxt::{Ctxt, SpanRange};
use crate::lit::lit_error;
use crate::model::*;
use crate::phases::{self, Combine, Slot};

/// Run every cross-item check.
pub fn check(decl: &ProxyDecl, cx: &Ctxt) {
    check_upstreams(decl, cx);
    for r in &decl.routes {
        check_route_target(decl, r, cx);
        check_handler_args(r, cx);
        check_cache(r, cx);
    }
    check_route_names(decl, cx);
    check_collisions(decl, cx);
    check_param_names(decl, cx);
    check_phases(decl, cx);
}

fn check_upstreams(decl: &ProxyDecl, cx: &Ctxt) {
    for (i, u) in decl.upstreams.iter().enumerate() {
        if let Some(first) = decl.upstreams[..i].iter().find(|o| o.ident == u.ident) {
            let mut e = syn::Error::new(
                u.ident.span(),
                format!("upstream `{}` is declared twice", u.ident),
            );
            e.combine(syn::Error::new(
                first.ident.span(),
                "note: first declared here",
            ));
            cx.push(e);
        }
    }
}

/// Each route is a variant of the generated `Route` enum, named after its function in
/// upper camel case: two functions that differ only in underscores or case
/// (`user_profile`, `userProfile`) would make the same variant.
fn check_route_names(decl: &ProxyDecl, cx: &Ctxt) {
    for (i, r) in decl.routes.iter().enumerate() {
        let variant = crate::expand::variant_name(&r.func.ident);
        let Some(first) = decl.routes[..i]
            .iter()
            .find(|o| crate::expand::variant_name(&o.func.ident) == variant)
        else {
            continue;
        };
        let (name, other) = (&r.func.ident, &first.func.ident);
        let message = if name == other {
            format!("a second route named `{name}`; route names are unique")
        } else {
            format!(
                "routes `{other}` and `{name}` would both be `Route::{variant}`\n  help: rename one (route names differ in more than case and underscores)"
            )
        };
        let mut e = syn::Error::new(name.span(), message);
        e.combine(syn::Error::new(
            other.span(),
            "note: the other route is here",
        ));
        cx.push(e);
    }
}

fn check_route_target(decl: &ProxyDecl, r: &Route, cx: &Ctxt) {
    let name = &r.func.ident;
    match &r.action {
        Action::Forward(up) => {
            if !decl.upstreams.iter().any(|u| u.ident == *up) {
                let names: Vec<String> = decl.upstreams.iter().map(|u| u.ident.to_string()).collect();
                let hint = proxy_syntax::suggest::closest(&up.to_string(), names.iter().map(String::as_str))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                let declared = if names.is_empty() {
                    "no upstream is declared: add `#[upstream(addrs = [...])] pub struct Name;`".to_string()
                } else {
                    format!("declared upstreams: {}", names.join(", "))
                };
                cx.error(up.span(), format!("no upstream named `{up}`{hint}\n  {declared}"));
            }
            if r.func.outcome == Outcome::Answers {
                cx.push(output_range(&r.func).error(
                    format!("route `{name}` forwards to `{up}`, but its handler always answers (returns a Response); remove `to` or return Result<()>/Flow"),
                ));
            }
        }
        Action::Redirect(..) | Action::Respond(..) => {
            if r.func.outcome != Outcome::Forwards || !r.func.args.is_empty() {
                cx.error(
                    r.action_span,
                    format!("route `{name}` answers with `redirect`/`respond`; its function must be empty: `fn {name}() {{}}`"),
                );
            }
        }
        Action::HandlerOnly => match r.func.outcome {
            Outcome::Answers => {}
            Outcome::Forwards => cx.push(r.attr_range.error(format!(
                "route `{name}` neither forwards nor answers\n  help: add `to = Upstream`, `respond = 200` or `redirect = \"...\"`, or return a Response from `{name}`"
            ))),
            Outcome::Either => cx.push(output_range(&r.func).error(format!(
                "route `{name}` may continue to an upstream (its handler returns a Flow/Option/bool) but has no `to = Upstream`\n  help: add `to = ...`, or return Response"
            ))),
        },
        // The bad `to`/`redirect`/`respond` value is reported already.
        Action::Invalid => {}
    }
}

/// Where a function's return type is written (its name when it returns `()`).
fn output_range(f: &Func) -> SpanRange {
    match &f.output {
        Some(t) => SpanRange::of(t),
        None => SpanRange::of(&f.ident),
    }
}

/// Route handler arguments: parameters by name, the rest by type.
fn check_handler_args(r: &Route, cx: &Ctxt) {
    let params: Vec<&str> = r.pattern.params().collect();
    let mut seen: Vec<(&ArgKind, SpanRange)> = Vec::new();
    for a in &r.func.args {
        if a.kind == ArgKind::Param {
            let Some(name) = &a.name else { continue };
            let n = name.to_string();
            if param_for(&n, &params).is_none() {
                let hint = proxy_syntax::suggest::closest(&n, params.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                let listed = if params.is_empty() {
                    "it has no parameters".to_string()
                } else {
                    format!("its parameters: {}", params.join(", "))
                };
                cx.error(
                    name.span(),
                    format!(
                        "route pattern {:?} has no parameter `{n}`{hint}\n  {listed}\n  (other arguments are recognized by type: &mut Session, &mut RequestHeader, &mut Ctx, &Route)",
                        r.pattern_lit.value()
                    ),
                );
            }
            continue;
        }
        // A reference named like a parameter: `name: &str` for `{name}`.
        if a.kind == ArgKind::Unknown
            && matches!(a.ty, syn::Type::Reference(_))
            && let Some(name) = &a.name
            && param_for(&name.to_string(), &params).is_some()
        {
            cx.push(SpanRange::of(&a.ty).error(format!(
                "route parameter `{name}` is passed by value\n  help: take `{name}: String`, or a type that implements FromStr and Clone"
            )));
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(k, _)| same_slot(k, &a.kind)) {
            let mut e = SpanRange::of(&a.ty).error("this argument is asked for twice");
            e.combine(first.error("note: first asked for here"));
            cx.push(e);
        }
        seen.push((&a.kind, SpanRange::of(&a.ty)));
    }
    check_session_conflict(&r.func, true, cx);
}

fn same_slot(a: &ArgKind, b: &ArgKind) -> bool {
    use ArgKind::*;
    matches!(
        (a, b),
        (Session { .. }, Session { .. })
            | (RequestHeader { .. }, RequestHeader { .. })
            | (ResponseHeader { .. }, ResponseHeader { .. })
            | (Ctx { .. }, Ctx { .. })
            | (Route | OptionRoute, Route | OptionRoute)
            | (Body, Body)
            | (Peer, Peer)
            | (Trailers, Trailers)
    )
}

/// `&mut Session` and the client's `&mut RequestHeader` cannot be borrowed together.
fn check_session_conflict(f: &Func, request_in_session: bool, cx: &Ctxt) {
    if !request_in_session {
        return;
    }
    let session = f
        .args
        .iter()
        .find(|a| matches!(a.kind, ArgKind::Session { .. }));
    let req = f
        .args
        .iter()
        .find(|a| matches!(a.kind, ArgKind::RequestHeader { .. }));
    if let (Some(s), Some(r)) = (session, req) {
        let mutable = matches!(s.kind, ArgKind::Session { mutable: true })
            || matches!(r.kind, ArgKind::RequestHeader { mutable: true });
        if mutable {
            let mut e = SpanRange::of(&r.ty).error(
                "the request head is part of the session: take `&mut Session` or `&mut RequestHeader`, not both\n  help: use `session.req_header_mut()`",
            );
            e.combine(SpanRange::of(&s.ty).error("note: the session is taken here"));
            cx.push(e);
        }
    }
}

const CACHEABLE: u16 = 1 | 2; // GET | HEAD

fn check_cache(r: &Route, cx: &Ctxt) {
    let Some(c) = &r.cache else { return };
    // `ANY` is fine: GET and HEAD are cached, other methods pass (unsafe ones
    // invalidate what is stored).
    let any = r.method_names.iter().any(|m| m == "ANY");
    if r.methods & !CACHEABLE != 0 && !any {
        let bad: Vec<&str> = [
            "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ]
        .iter()
        .enumerate()
        .filter(|(i, _)| r.methods & (1 << (i + 2)) != 0)
        .map(|(_, n)| *n)
        .collect();
        let mut e = c.range.error(
            format!(
                "a cache policy on a route that accepts {}: only GET and HEAD responses are cached\n  help: limit the route to `GET | HEAD`, or split it in two",
                bad.join(", ")
            ),
        );
        e.combine(r.methods_range.error("note: the route's methods"));
        cx.push(e);
    }
    if !matches!(r.action, Action::Forward(_) | Action::Invalid) {
        cx.push(c.range.error("a cache policy needs a route that forwards (`to = Upstream`): local answers are not cached"));
    }
}

fn host_key(r: &Route) -> String {
    r.host
        .as_ref()
        .map_or_else(String::new, |(h, _)| h.display())
}

/// Whether two routes answer the same requests: same host, overlapping methods, and
/// patterns matching the same paths. Only routes whose attribute parsed cleanly are
/// compared (a bad host or method would make a false match).
fn collide(a: &Route, b: &Route) -> bool {
    a.complete
        && b.complete
        && host_key(a) == host_key(b)
        && a.methods & b.methods != 0
        && a.pattern.shape() == b.pattern.shape()
}

/// Two routes that answer the same requests.
fn check_collisions(decl: &ProxyDecl, cx: &Ctxt) {
    for (i, b) in decl.routes.iter().enumerate() {
        for a in &decl.routes[..i] {
            if !collide(a, b) {
                continue;
            }
            let same = a.pattern_lit.value() == b.pattern_lit.value() && a.methods == b.methods;
            let msg = if same {
                format!(
                    "duplicate route: `{}` repeats `{}` ({} {:?})",
                    b.func.ident,
                    a.func.ident,
                    b.method_names.join("|"),
                    b.pattern_lit.value()
                )
            } else {
                format!(
                    "route `{}` matches the same requests as route `{}`: {:?} and {:?} match the same paths and both accept {}",
                    b.func.ident,
                    a.func.ident,
                    b.pattern_lit.value(),
                    a.pattern_lit.value(),
                    overlap_names(a.methods & b.methods)
                )
            };
            let mut e = syn::Error::new(b.pattern_lit.span(), msg);
            e.combine(syn::Error::new(
                a.pattern_lit.span(),
                format!("note: route `{}` is declared here", a.func.ident),
            ));
            cx.push(e);
        }
    }
}

fn overlap_names(mask: u16) -> String {
    if mask == (1 << 10) - 1 {
        return "every method".to_string();
    }
    [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ]
    .iter()
    .enumerate()
    .filter(|(i, _)| mask & (1 << i) != 0)
    .map(|(_, n)| *n)
    .collect::<Vec<_>>()
    .join(", ")
}

/// Where segment `k` of a route's pattern is written, to point at it.
fn segment_error(r: &Route, k: usize, message: String) -> SyntaxError {
    let len = match &r.pattern.segments[k] {
        Segment::Static(s) => s.len(),
        Segment::Param(n) => n.len() + 2,
        Segment::CatchAll(n) => n.len() + 3,
    };
    SyntaxError::new(r.pattern.offsets[k], len, message)
}

/// At one position under the same prefix, parameters must share a name (the matcher has
/// one parameter branch per position).
fn check_param_names(decl: &ProxyDecl, cx: &Ctxt) {
    // (host, shape of the prefix, catch-all?) → (name, route index, segment index)
    let mut seen: BTreeMap<(String, String, bool), (String, usize, usize)> = BTreeMap::new();
    for (i, r) in decl.routes.iter().enumerate() {
        if !r.complete {
            continue;
        }
        let mut prefix = String::new();
        for (k, seg) in r.pattern.segments.iter().enumerate() {
            let (name, catch_all) = match seg {
                Segment::Static(s) => {
                    prefix.push('/');
                    prefix.push_str(s);
                    continue;
                }
                Segment::Param(n) => (n, false),
                Segment::CatchAll(n) => (n, true),
            };
            let key = (host_key(r), prefix.clone(), catch_all);
            match seen.get(&key) {
                // Routes that match the same requests are reported as such, once.
                Some((other, j, _)) if other != name && collide(&decl.routes[*j], r) => {}
                Some((other, j, other_k)) if other != name => {
                    let a = &decl.routes[*j];
                    let written = if catch_all {
                        format!("{{*{other}}}")
                    } else {
                        format!("{{{other}}}")
                    };
                    let e = segment_error(
                        r,
                        k,
                        format!(
                            "`{name}` in route `{}` is at the same position as `{other}` in route `{}`",
                            r.func.ident, a.func.ident
                        ),
                    )
                    .hint(format!(
                        "routes that share a prefix must name the parameter the same: write `{written}`"
                    ));
                    let mut e = lit_error(&r.pattern_lit, &e, "parameter names differ");
                    e.combine(lit_error(
                        &a.pattern_lit,
                        &segment_error(a, *other_k, format!("`{other}` is named here")),
                        "note",
                    ));
                    cx.push(e);
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (name.clone(), i, k));
                }
            }
            prefix.push_str(if catch_all { "/{*}" } else { "/{}" });
        }
    }
}

/// Phase functions: scoped routes exist; single-valued phases are declared once;
/// arguments that cannot be provided are reported at expansion (spanned assertions).
fn check_phases(decl: &ProxyDecl, cx: &Ctxt) {
    let route_names: Vec<String> = decl
        .routes
        .iter()
        .map(|r| r.func.ident.to_string())
        .collect();
    for (i, p) in decl.phases.iter().enumerate() {
        let def = phases::def(p.phase);
        for r in &p.routes {
            if !route_names.iter().any(|n| r == n) && !decl.unparsed_routes.contains(r) {
                let hint = proxy_syntax::suggest::closest(
                    &r.to_string(),
                    route_names.iter().map(String::as_str),
                )
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
                cx.error(r.span(), format!("no route named `{r}`{hint}"));
            }
        }
        if def.combine == Combine::Single
            && let Some(first) = decl.phases[..i].iter().find(|o| o.phase == p.phase)
        {
            let mut e = syn::Error::new(
                p.phase_span,
                format!(
                    "`{}` decides one value: declare it once (it cannot be a pipeline)",
                    def.name
                ),
            );
            e.combine(syn::Error::new(
                first.phase_span,
                "note: already declared here",
            ));
            cx.push(e);
        }
        if def.combine == Combine::Single {
            if let Some(r) = p.routes.first() {
                cx.error(
                    r.span(),
                    format!(
                        "`{}` decides one value for every request: it cannot be scoped to routes",
                        def.name
                    ),
                );
            }
            if let Some(a) = p.func.args.iter().find(|a| a.kind == ArgKind::Route) {
                cx.error_spanned(
                    &a.ty,
                    format!("`{}` runs for every request, matched or not: take `Option<&Route>` instead of `&Route`", def.name),
                );
            }
        }
        if !p.routes.is_empty() && p.phase == phases::Phase::InitDownstreamModules {
            cx.error(
                p.phase_span,
                "`init_downstream_modules` runs once per service: it cannot be scoped to routes",
            );
        }
        let mut seen: Vec<&ArgKind> = Vec::new();
        for a in &p.func.args {
            if a.kind != ArgKind::Param && a.kind != ArgKind::Unknown {
                if seen.iter().any(|k| same_slot(k, &a.kind)) {
                    cx.error_spanned(&a.ty, "this argument is asked for twice");
                }
                seen.push(&a.kind);
            }
        }
        check_session_conflict(&p.func, def.request_in_session, cx);
        if let Some(span) = p.func.async_span
            && !def.is_async
        {
            cx.error(
                span,
                format!(
                    "`{}` is not an async phase: its functions cannot be `async`\n  help: remove `async` from `{}`",
                    def.name, p.func.ident
                ),
            );
        }
        if def.combine == Combine::ErrorChain
            && !p.func.args.iter().any(|a| a.kind == ArgKind::ErrorBox)
        {
            cx.error(
                p.func.ident.span(),
                format!("a `{}` function takes the error by value and returns it: add `e: Box<Error>` and return `Box<Error>`", def.name),
            );
        }
    }
}

/// Which slot an argument kind takes in a phase, if the phase provides it.
pub fn slot_for(kind: &ArgKind) -> Option<Slot> {
    Some(match kind {
        ArgKind::Session { mutable: true } => Slot::SessionMut,
        ArgKind::Session { mutable: false } => Slot::SessionRef,
        ArgKind::RequestHeader { mutable: true } => Slot::RequestMut,
        ArgKind::RequestHeader { mutable: false } => Slot::RequestRef,
        ArgKind::ResponseHeader { mutable: true } => Slot::ResponseMut,
        ArgKind::ResponseHeader { mutable: false } => Slot::ResponseRef,
        ArgKind::Ctx { mutable: true } => Slot::CtxMut,
        ArgKind::Ctx { mutable: false } => Slot::CtxRef,
        ArgKind::Route => Slot::Route,
        ArgKind::OptionRoute => Slot::OptionRoute,
        ArgKind::Body => Slot::Body,
        ArgKind::EndOfStream => Slot::EndOfStream,
        ArgKind::Reused => Slot::Reused,
        ArgKind::Peer => Slot::Peer,
        ArgKind::ErrorRef => Slot::ErrorRef,
        ArgKind::OptionErrorRef => Slot::OptionErrorRef,
        ArgKind::ErrorBox => Slot::ErrorBox,
        ArgKind::Trailers => Slot::Trailers,
        ArgKind::Modules => Slot::Modules,
        ArgKind::Param | ArgKind::Unknown => return None,
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use crate::ctxt::Ctxt;

    /// Parse and check a module body; the error messages, in order.
    fn errors(body: proc_macro2::TokenStream) -> Vec<String> {
        let mut module: syn::ItemMod = syn::parse2(quote!(mod edge { #body })).unwrap();
        let ident = module.ident.clone();
        let items = &mut module.content.as_mut().unwrap().1;
        let cx = Ctxt::new();
        let decl = crate::parse::parse(quote!(), &ident, items, &cx);
        super::check(&decl, &cx);
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn upstream() -> proc_macro2::TokenStream {
        quote! {
            #[upstream(addrs = ["127.0.0.1:1"])]
            pub struct Api;
        }
    }

    #[test]
    fn equivalent_patterns_with_overlapping_methods_collide() {
        let up = upstream();
        let e = errors(quote! {
            #up
            #[route(GET | POST, "/users/{id}", to = Api)] fn a() {}
            #[route(POST | PUT, "/users/{name}", to = Api)] fn b() {}
        });
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("route `b` matches the same requests as route `a`")
                && e[0].contains("POST"),
            "{e:?}"
        );
        assert!(e[1].contains("note: route `a` is declared here"), "{e:?}");
    }

    #[test]
    fn disjoint_methods_hosts_or_shapes_do_not_collide() {
        let up = upstream();
        let e = errors(quote! {
            #up
            #[route(GET, "/users/{id}", to = Api)] fn a() {}
            #[route(POST, "/users/{id}", to = Api)] fn b() {}
            #[route(GET, "/users/{id}", host = "a.example", to = Api)] fn c() {}
            #[route(GET, "/users/me", to = Api)] fn d() {}
            #[route(GET, "/users/{*rest}", to = Api)] fn e() {}
            #[route(GET, "/users/{id}/", to = Api)] fn f() {}
        });
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn identical_routes_are_duplicates() {
        let up = upstream();
        let e = errors(quote! {
            #up
            #[route(GET, "/a", to = Api)] fn a() {}
            #[route(GET, "/a", to = Api)] fn b() {}
        });
        assert!(e[0].starts_with("duplicate route"), "{e:?}");
    }

    #[test]
    fn any_overlaps_every_method() {
        let up = upstream();
        let e = errors(quote! {
            #up
            #[route(ANY, "/a/{x}", to = Api)] fn a() {}
            #[route(PATCH, "/a/{y}", to = Api)] fn b() {}
        });
        assert!(e[0].contains("matches the same requests"), "{e:?}");
    }

    #[test]
    fn parameters_at_one_position_share_a_name() {
        let up = upstream();
        let e = errors(quote! {
            #up
            #[route(GET, "/users/{id}", to = Api)] fn a() {}
            #[route(GET, "/users/{name}/posts", to = Api)] fn b() {}
        });
        assert!(
            e[0].starts_with("parameter names differ: `name` in route `b`"),
            "{e:?}"
        );
        assert!(e[0].contains("write `{id}`"), "{e:?}");
    }
}
