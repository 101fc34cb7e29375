//! From the checked model to code: the route enum and request context, the compiled
//! matcher, the `ProxyHttp` implementation (generated phases plus the user's pipelines),
//! the route table and start-up data, and `service()`/`run()`.

mod calls;
mod matcher;

use proc_macro2::TokenStream;
use proxy_syntax::pattern::Segment;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::*;
use crate::phases::{self, Combine, Phase};
use calls::{PhaseCall, call_phase_fn, route_handler_call};

/// Retries of a forwarding route that declares none, nor does its upstream group.
const DEFAULT_RETRIES: u32 = 2;

/// `user_profile` → `UserProfile`.
pub fn variant_name(ident: &syn::Ident) -> syn::Ident {
    let camel: String = ident
        .to_string()
        .trim_start_matches("r#")
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect();
    format_ident!(
        "{}",
        if camel.is_empty() { "Route_" } else { &camel },
        span = ident.span()
    )
}

fn duration_tokens(d: Option<std::time::Duration>) -> TokenStream {
    match d {
        Some(d) => {
            let ms = d.as_millis() as u64;
            quote!(::core::option::Option::Some(::std::time::Duration::from_millis(#ms)))
        }
        None => quote!(::core::option::Option::None),
    }
}

fn opt_tokens<T: quote::ToTokens>(v: Option<T>) -> TokenStream {
    match v {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// The type of each route parameter: the handler argument's type when the handler takes
/// it, else `String`.
fn param_types(r: &Route) -> Vec<(String, syn::Type)> {
    r.pattern
        .params()
        .map(|p| {
            let ty = r
                .func
                .args
                .iter()
                .find(|a| {
                    a.kind == ArgKind::Param
                        && a.name
                            .as_ref()
                            .and_then(|n| param_for(&n.to_string(), &[p]))
                            .is_some()
                })
                .map(|a| a.ty.clone())
                .unwrap_or_else(|| syn::parse_quote!(::std::string::String));
            (p.to_string(), ty)
        })
        .collect()
}

/// The constant holding the parse/pass operations of parameter `k` of route `route_idx`.
pub fn param_ops_const(route_idx: usize, k: usize) -> syn::Ident {
    format_ident!("__PARAM_{}_{}", route_idx, k)
}

/// Everything the module gains.
pub fn expand(decl: &ProxyDecl) -> TokenStream {
    let krate = &decl.krate;
    let ctx_ty: TokenStream = match &decl.ctx {
        Some(c) => quote!(#c),
        None => quote!(()),
    };
    let mut assertions: Vec<TokenStream> = Vec::new();
    // Made where the `#[ctx]` struct is named, so a missing `Default` is reported there.
    let new_user_ctx = match &decl.ctx {
        Some(c) => quote_spanned! {c.span()=> #krate::dsl::args::new_context::<#c>() },
        None => quote!(()),
    };

    // ---- the route enum
    let variants = decl.routes.iter().map(|r| {
        let v = variant_name(&r.func.ident);
        let fields = param_types(r).into_iter().map(|(name, ty)| {
            let f = param_ident(&name);
            quote!(#f: #ty)
        });
        let doc = format!("`{} {}`", r.method_names.join("|"), r.pattern_lit.value());
        quote! { #[doc = #doc] #v { #(#fields),* } }
    });
    let names = decl.routes.iter().map(|r| {
        let v = variant_name(&r.func.ident);
        let n = route_name(r);
        quote! { Route::#v { .. } => #n }
    });
    let cache_arms = decl.routes.iter().filter(|r| r.cache.is_some()).map(|r| {
        let v = variant_name(&r.func.ident);
        let policy = cache_policy_tokens(krate, r.cache.as_ref());
        quote! { Route::#v { .. } => { const P: #krate::dsl::CachePolicy = #policy; ::core::option::Option::Some(&P) } }
    });
    let route_enum = quote! {
        /// The routes of this proxy, with their typed parameters.
        #[allow(dead_code)]
        pub enum Route {
            #(#variants,)*
        }

        #[allow(dead_code, unreachable_patterns)]
        impl Route {
            /// The name of the function the route is declared on.
            pub fn name(&self) -> &'static str {
                match *self { #(#names,)* }
            }

            /// The route's declared cache policy.
            pub fn cache_policy(&self) -> ::core::option::Option<&'static #krate::dsl::CachePolicy> {
                match self {
                    #(#cache_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    };

    // ---- building a route from a match
    let n = matcher::max_params(decl);
    let mut param_ops: Vec<TokenStream> = Vec::new();
    let build_arms = decl
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let v = variant_name(&r.func.ident);
            let status = r.on_param_error;
            let fields = param_types(r)
                .into_iter()
                .enumerate()
                .map(|(k, (name, ty))| {
                    let f = param_ident(&name);
                    let ops = param_ops_const(i, k);
                    // One item per parameter names its type as a `RouteParam`, so a type that
                    // cannot be a parameter is reported once, on the handler's argument.
                    let ops_ty = quote_spanned! {ty.span()=> #krate::dsl::args::ParamOps<#ty> };
                    let ops_value =
                        quote_spanned! {ty.span()=> #krate::dsl::args::route_param::<#ty>() };
                    param_ops.push(quote! { const #ops: #ops_ty = #ops_value; });
                    quote! { #f: (#ops.parse)(__p[#k]).ok_or(#status)? }
                })
                .collect::<Vec<_>>();
            quote! { #i => ::core::result::Result::Ok(Route::#v { #(#fields),* }), }
        })
        .collect::<Vec<_>>();
    let builder = quote! {
        #[allow(unused_variables, clippy::all)]
        fn __build_route(__idx: usize, __p: &[&str; #n]) -> ::core::result::Result<Route, u16> {
            match __idx {
                #(#build_arms)*
                _ => ::core::result::Result::Err(404),
            }
        }
    };

    // ---- path templates (redirect, rewrite, strip_prefix), from the raw matched slots
    let template_arms = decl.routes.iter().enumerate().filter_map(|(i, r)| {
        let params: Vec<String> = r.pattern.params().map(String::from).collect();
        let (template, kind) = match (&r.action, &r.rewrite, &r.strip_prefix) {
            (Action::Redirect(_, loc), _, _) => (loc.value(), 0u8),
            (_, Some(rw), _) => (rw.value(), 1u8),
            (_, _, Some(prefix)) => {
                // Checked by `parse`: whole leading static segments of the pattern.
                let segments = prefix.trim_end_matches('/').matches('/').count();
                return Some(quote! {
                    #i => {
                        let __s = #krate::dsl::routing::strip_segments(__path, #segments);
                        ::core::option::Option::Some(#krate::dsl::routing::with_query(__s, __query, false))
                    }
                });
            }
            _ => return None,
        };
        let pieces = template_pieces(&template, &params);
        let pushes = pieces.iter().map(|p| match p {
            TemplatePiece::Text(t) => quote! { __s.push_str(#t); },
            TemplatePiece::Param(k) => quote! { __s.push_str(__p[#k]); },
        });
        let is_redirect = kind == 0;
        Some(quote! {
            #i => {
                let mut __s = ::std::string::String::new();
                #(#pushes)*
                ::core::option::Option::Some(#krate::dsl::routing::with_query(__s, __query, #is_redirect))
            }
        })
    }).collect::<Vec<_>>();
    let templates = quote! {
        #[allow(unused_variables, clippy::all)]
        fn __expand_target(__idx: usize, __p: &[&str; #n], __path: &str, __query: ::core::option::Option<&str>) -> ::core::option::Option<::std::string::String> {
            match __idx {
                #(#template_arms)*
                _ => ::core::option::Option::None,
            }
        }
    };

    // Custom transports: each expression must implement `CustomTransport` (the error
    // points at it otherwise).
    let transports = decl
        .upstreams
        .iter()
        .enumerate()
        .filter_map(|(i, u)| {
            let expr = u.transport.as_ref()?;
            let span = expr.span();
            let checked = quote_spanned! {span=>
                #krate::dsl::upstreams::transport_of(#expr)
            };
            Some(quote! { __upstreams[#i].set_transport(#checked); })
        })
        .collect::<Vec<_>>();
    let limit_specs = decl
        .routes
        .iter()
        .filter_map(|r| Some((r, r.rate_limit.as_ref()?)))
        .map(|(r, l)| limit_spec_tokens(krate, &route_name(r), l));
    let matcher = matcher::matcher(decl);
    let (phase_methods, phase_asserts) = phase_methods(decl);
    assertions.extend(phase_asserts);
    let upstream_specs = decl
        .upstreams
        .iter()
        .map(|u| upstream_spec_tokens(krate, u));
    let upstream_idents: Vec<&syn::Ident> = decl.upstreams.iter().map(|u| &u.ident).collect();
    let route_fns: Vec<&syn::Ident> = decl.routes.iter().map(|r| &r.func.ident).collect();
    let route_infos = decl.routes.iter().map(|r| route_info_tokens(krate, r));
    let name = &decl.name;
    let listen = &decl.listen;
    let tls_listen = decl.tls_listen.iter().map(|t| {
        let addr = &t.addr;
        let certs = t.certs.iter().map(|(c, k)| quote!((#c, #k)));
        let ca = opt_tokens(t.client_ca.as_deref());
        let required = t.client_auth_required;
        quote! {
            #krate::dsl::app::TlsListenSpec {
                addr: #addr,
                certs: &[#(#certs),*],
                client_ca: #ca,
                client_auth_required: #required,
            }
        }
    });
    let threads = opt_tokens(decl.threads);
    let grace = duration_tokens(decl.grace_period);
    let max_retries = decl
        .routes
        .iter()
        .filter_map(|r| r.retries)
        .chain(decl.upstreams.iter().filter_map(|u| u.retries))
        .chain([DEFAULT_RETRIES])
        .max()
        .unwrap_or(DEFAULT_RETRIES);

    quote! {
        #route_enum

        /// The per-request context: the `#[ctx]` fields (`user`) and the matched route.
        pub struct RequestCtx {
            /// The user's `#[ctx]` state.
            pub user: #ctx_ty,
            /// The matched route, with its typed parameters (`None` if nothing matched).
            pub route: ::core::option::Option<Route>,
            __outcome: #krate::dsl::routing::RouteOutcome,
            __target: ::core::option::Option<::std::string::String>,
            __pick: ::core::option::Option<#krate::dsl::CurrentPick>,
            __tried: #krate::dsl::TriedBackends,
            __permit: ::core::option::Option<#krate::ratelimit::Permit>,
        }

        /// The proxy: a `ProxyHttp` generated from the declaration.
        #[derive(Debug)]
        pub struct Proxy {
            __upstreams: ::std::vec::Vec<#krate::dsl::UpstreamGroup>,
            __limiters: ::std::vec::Vec<#krate::ratelimit::RateLimiter>,
            __cache: ::core::option::Option<::std::sync::Arc<#krate::cache::Cache>>,
        }

        /// The routes' rate limits, in the order of `Proxy::__limiters`.
        const __LIMITS: &[#krate::dsl::RouteLimitSpec] = &[#(#limit_specs),*];

        impl Proxy {
            /// Build the proxy: upstream groups from the declaration, with addresses
            /// overridden by `conf` (host names are resolved now).
            pub fn new(conf: &#krate::dsl::ProxyConfig) -> #krate::Result<Self> {
                let mut __upstreams = ::std::vec::Vec::new();
                for __spec in SPEC.upstreams {
                    let __addrs = conf.upstream_addrs.get(__spec.name).map(|v| v.as_slice());
                    let __timeouts = conf.upstream_options.get(__spec.name);
                    __upstreams.push(#krate::dsl::UpstreamGroup::build_with(__spec, __addrs, __timeouts)?);
                }
                #(#transports)*
                let __limiters = __LIMITS.iter().map(|l| l.limiter()).collect();
                // A response cache when routes declare a policy (`cache_size = 0`: none).
                let __cache = match conf.cache_size {
                    _ if !ROUTES.0.iter().any(|r| r.cached) => ::core::option::Option::None,
                    ::core::option::Option::Some(0) => ::core::option::Option::None,
                    __size => ::core::option::Option::Some(#krate::cache::Cache::in_memory(
                        __size.unwrap_or(#krate::dsl::cache_policy::DEFAULT_CACHE_SIZE) as usize,
                    )),
                };
                ::core::result::Result::Ok(Proxy { __upstreams, __limiters, __cache })
            }

            /// The response cache (its counters, its storage), if routes use one.
            pub fn cache(&self) -> ::core::option::Option<&::std::sync::Arc<#krate::cache::Cache>> {
                self.__cache.as_ref()
            }

            /// The live upstream group called `name`.
            pub fn upstream(&self, name: &str) -> ::core::option::Option<&#krate::dsl::UpstreamGroup> {
                self.__upstreams.iter().find(|u| u.name == name)
            }
        }

        impl #krate::ProxyHttp for Proxy {
            type CTX = RequestCtx;

            fn new_ctx(&self) -> RequestCtx {
                RequestCtx {
                    user: #new_user_ctx,
                    route: ::core::option::Option::None,
                    __outcome: #krate::dsl::routing::RouteOutcome::Pending,
                    __target: ::core::option::Option::None,
                    __pick: ::core::option::Option::None,
                    __tried: ::core::default::Default::default(),
                    __permit: ::core::option::Option::None,
                }
            }

            #(#phase_methods)*
        }

        /// The declared routes, as data (`--print-routes` prints them).
        pub const ROUTES: #krate::dsl::RouteTable = #krate::dsl::RouteTable(&[#(#route_infos),*]);

        /// What the compiler knows about this proxy.
        pub static SPEC: #krate::dsl::AppSpec = #krate::dsl::AppSpec {
            name: #name,
            listen: &[#(#listen),*],
            tls_listen: &[#(#tls_listen),*],
            threads: #threads,
            grace_period: #grace,
            upstreams: &[#(#upstream_specs),*],
            routes: ROUTES,
            max_retries: #max_retries,
        };

        /// The declared configuration (listen addresses, threads, grace period), to
        /// change before calling [`service`].
        pub fn config() -> #krate::dsl::ProxyConfig {
            SPEC.declared_config()
        }

        /// A proxy service with `conf`'s listeners, ready to add to a `Server`.
        pub fn service(conf: &#krate::dsl::ProxyConfig) -> #krate::Result<#krate::server::HttpProxyService<Proxy>> {
            SPEC.service(Proxy::new(conf)?, conf)
        }

        /// Run the proxy: command line (`--config`, `--listen`, `--print-routes`,
        /// `--check`), configuration, logging, and the server until SIGTERM/SIGINT.
        pub fn run() -> ! {
            #krate::dsl::app::run(&SPEC, Proxy::new)
        }

        #matcher
        #(#param_ops)*
        #builder
        #templates

        #[allow(dead_code, unreachable_code, path_statements, clippy::all)]
        fn __assertions() {
            #(#assertions)*
            // Declared items are used by the generated code through their names only.
            #(let _ = #upstream_idents;)*
            #(let _ = #route_fns;)*
        }
    }
}

enum TemplatePiece {
    Text(String),
    Param(usize),
}

fn template_pieces(template: &str, params: &[String]) -> Vec<TemplatePiece> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            out.push(TemplatePiece::Text(rest[..open].to_string()));
        }
        let name = rest[open + 1..open + close].trim_start_matches('*');
        if let Some(k) = params.iter().position(|p| p == name) {
            out.push(TemplatePiece::Param(k));
        }
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(TemplatePiece::Text(rest.to_string()));
    }
    out
}

fn cache_policy_tokens(krate: &syn::Path, c: Option<&CachePolicy>) -> TokenStream {
    let Some(c) = c else { return quote!() };
    let part = |p: &RequestPart| match p {
        RequestPart::Header(h) => quote!(#krate::dsl::cache_policy::RequestPart::Header(#h)),
        RequestPart::Cookie(h) => quote!(#krate::dsl::cache_policy::RequestPart::Cookie(#h)),
        RequestPart::Query(h) => quote!(#krate::dsl::cache_policy::RequestPart::Query(#h)),
    };
    let ttl = duration_tokens(c.ttl);
    let swr = duration_tokens(c.stale_while_revalidate);
    let sie = duration_tokens(c.stale_if_error);
    let lock = duration_tokens(c.lock_timeout);
    let vary = &c.vary;
    let key = c.key.iter().map(part);
    let bypass = c.bypass.iter().map(part);
    let max_size = opt_tokens(c.max_size);
    quote! {
        #krate::dsl::CachePolicy {
            ttl: #ttl,
            stale_while_revalidate: #swr,
            stale_if_error: #sie,
            vary: &[#(#vary),*],
            key: &[#(#key),*],
            bypass: &[#(#bypass),*],
            max_size: #max_size,
            lock_timeout: #lock,
        }
    }
}

/// The `RouteLimitSpec` of a route's `rate_limit`.
fn limit_spec_tokens(krate: &syn::Path, route: &str, l: &RateLimitDecl) -> TokenStream {
    let count = l.count;
    let per_ns = l.per.as_nanos() as u64;
    let burst = opt_tokens(l.burst);
    let concurrency = opt_tokens(l.concurrency);
    let by = match &l.by {
        LimitByDecl::ClientAddr => quote!(#krate::dsl::LimitBy::ClientAddr),
        LimitByDecl::Header(h) => quote!(#krate::dsl::LimitBy::Header(#h)),
        LimitByDecl::Route => quote!(#krate::dsl::LimitBy::Route),
    };
    quote! {
        #krate::dsl::RouteLimitSpec {
            route: #route,
            rate: #krate::ratelimit::Rate {
                count: #count,
                per: ::std::time::Duration::from_nanos(#per_ns),
            },
            burst: #burst,
            concurrency: #concurrency,
            by: #by,
            max_keys: #krate::ratelimit::DEFAULT_MAX_KEYS,
        }
    }
}

fn upstream_spec_tokens(krate: &syn::Path, u: &Upstream) -> TokenStream {
    let name = u.ident.to_string();
    let addrs = &u.addrs;
    let ct = duration_tokens(u.connect_timeout);
    let rt = duration_tokens(u.read_timeout);
    let wt = duration_tokens(u.write_timeout);
    let it = duration_tokens(u.idle_timeout);
    let retries = opt_tokens(u.retries);
    let tls = u.tls;
    let sni = opt_tokens(u.sni.as_deref());
    let h2 = u.h2;
    let alpn = match u.alpn.as_deref() {
        Some("h1") => quote!(::core::option::Option::Some(#krate::protocols::tls::Alpn::H1)),
        Some("h2") => quote!(::core::option::Option::Some(#krate::protocols::tls::Alpn::H2)),
        Some(_) => quote!(::core::option::Option::Some(#krate::protocols::tls::Alpn::H2H1)),
        None => quote!(::core::option::Option::None),
    };
    let weights = if u.weights.iter().all(|&w| w == 1) {
        Vec::new()
    } else {
        u.weights.clone()
    };
    let lb = match &u.lb {
        Lb::RoundRobin => quote!(#krate::dsl::LbPolicy::RoundRobin),
        Lb::WeightedRoundRobin => quote!(#krate::dsl::LbPolicy::WeightedRoundRobin),
        Lb::Random => quote!(#krate::dsl::LbPolicy::Random),
        Lb::LeastLoaded => quote!(#krate::dsl::LbPolicy::LeastLoaded),
        Lb::LeastConnections => quote!(#krate::dsl::LbPolicy::LeastConnections),
        Lb::Consistent { key, points } => {
            let key = match key {
                HashKeyDecl::Header(h) => quote!(#krate::dsl::HashKey::Header(#h)),
                HashKeyDecl::Cookie(c) => quote!(#krate::dsl::HashKey::Cookie(#c)),
                HashKeyDecl::ClientAddr => quote!(#krate::dsl::HashKey::ClientAddr),
                HashKeyDecl::Path => quote!(#krate::dsl::HashKey::Path),
                HashKeyDecl::Uri => quote!(#krate::dsl::HashKey::Uri),
            };
            quote!(#krate::dsl::LbPolicy::Consistent { key: #key, points: #points })
        }
    };
    let passive = match &u.passive {
        None => quote!(::core::option::Option::None),
        Some(p) => {
            let failures = p.failures;
            let ms = p.eject.as_millis() as u64;
            quote!(::core::option::Option::Some(#krate::dsl::PassiveSpec {
                failures: #failures,
                eject: ::std::time::Duration::from_millis(#ms),
            }))
        }
    };
    let resolve_every = duration_tokens(u.resolve_every);
    let health = match &u.health {
        None => quote!(::core::option::Option::None),
        Some(h) => {
            let path = opt_tokens(h.http_path.as_deref());
            let host = opt_tokens(h.host.as_deref());
            let expect = opt_tokens(h.expect);
            let body = opt_tokens(h.body.as_deref());
            let every_ms = h.every.as_millis() as u64;
            let timeout = duration_tokens(h.timeout);
            let rise = opt_tokens(h.rise);
            let fall = opt_tokens(h.fall);
            quote!(::core::option::Option::Some(#krate::dsl::HealthSpec {
                http_path: #path,
                host: #host,
                expect: #expect,
                body: #body,
                every: ::std::time::Duration::from_millis(#every_ms),
                timeout: #timeout,
                rise: #rise,
                fall: #fall,
            }))
        }
    };
    quote! {
        #krate::dsl::UpstreamSpec {
            name: #name,
            addrs: &[#(#addrs),*],
            weights: &[#(#weights),*],
            lb: #lb,
            connect_timeout: #ct,
            read_timeout: #rt,
            write_timeout: #wt,
            idle_timeout: #it,
            retries: #retries,
            tls: #tls,
            sni: #sni,
            h2: #h2,
            alpn: #alpn,
            health: #health,
            passive: #passive,
            resolve_every: #resolve_every,
        }
    }
}

fn route_info_tokens(krate: &syn::Path, r: &Route) -> TokenStream {
    let name = route_name(r);
    let methods = &r.method_names;
    let host = opt_tokens(r.host.as_ref().map(|(h, _)| h.display()));
    let pattern = r.pattern_lit.value();
    let target = match &r.action {
        Action::Forward(u) => {
            let u = u.to_string();
            quote!(#krate::dsl::RouteTarget::Upstream(#u))
        }
        Action::Redirect(s, l) => {
            let l = l.value();
            quote!(#krate::dsl::RouteTarget::Redirect(#s, #l))
        }
        Action::Respond(s, _, _) => quote!(#krate::dsl::RouteTarget::Respond(#s)),
        Action::HandlerOnly | Action::Invalid => quote!(#krate::dsl::RouteTarget::Handler),
    };
    let cached = r.cache.is_some();
    quote! {
        #krate::dsl::RouteInfo {
            name: #name,
            methods: &[#(#methods),*],
            host: #host,
            pattern: #pattern,
            target: #target,
            cached: #cached,
        }
    }
}

/// A `matches!` pattern for a set of routes.
fn route_pattern(decl: &ProxyDecl, names: &[syn::Ident]) -> TokenStream {
    let pats = names.iter().filter_map(|n| {
        decl.routes.iter().find(|r| r.func.ident == *n).map(|r| {
            let v = variant_name(&r.func.ident);
            quote!(Route::#v { .. })
        })
    });
    quote!(#(#pats)|*)
}

/// The user's functions of one phase as pipeline statements.
fn pipeline(
    decl: &ProxyDecl,
    phase: Phase,
    asserts: &mut Vec<TokenStream>,
) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let krate = &decl.krate;
    let def = phases::def(phase);
    let mut stmts = Vec::new();
    let mut singles = Vec::new();
    for p in decl.phases.iter().filter(|p| p.phase == phase) {
        let PhaseCall {
            call,
            needs_route,
            asserts: a,
        } = call_phase_fn(krate, def, &p.func);
        asserts.extend(a);
        let out_span = p
            .func
            .output
            .as_ref()
            .map_or(p.func.ident.span(), |t| t.span());
        let stmt = match def.combine {
            Combine::Unit => {
                let conv = convert(krate, &p.func, "IntoUnitResult", "into_unit_result");
                quote_spanned! {out_span=> #conv(#call)?; }
            }
            Combine::Always => {
                let conv = exactly(krate, def, &p.func);
                quote_spanned! {out_span=> let () = #conv(#call); }
            }
            Combine::Flow => {
                let conv = convert(krate, &p.func, "IntoFlow", "into_flow");
                quote_spanned! {out_span=>
                if #krate::dsl::apply_flow(#conv(#call)?, session).await? {
                    return ::core::result::Result::Ok(true);
                }
                }
            }
            Combine::All => {
                let conv = convert(krate, &p.func, "IntoDecision", "into_decision");
                quote_spanned! {out_span=>
                if !#conv(#call)? {
                    return ::core::result::Result::Ok(false);
                }
                }
            }
            Combine::Any => {
                let conv = convert(krate, &p.func, "IntoDecision", "into_decision");
                quote_spanned! {out_span=>
                if #conv(#call)? {
                    return ::core::result::Result::Ok(true);
                }
                }
            }
            Combine::AnyPlain => {
                let conv = exactly(krate, def, &p.func);
                quote_spanned! {out_span=> if #conv(#call) { return true; } }
            }
            Combine::Delay => {
                let conv = convert(krate, &p.func, "IntoDelay", "into_delay");
                quote_spanned! {out_span=>
                if let ::core::option::Option::Some(__d) = #conv(#call)? {
                    __delay = ::core::option::Option::Some(__delay.map_or(__d, |__x: ::std::time::Duration| __x.max(__d)));
                }
                }
            }
            Combine::ErrorChain => {
                // Scoped or route-bound functions leave the error unchanged when skipped.
                let conv = exactly(krate, def, &p.func);
                let call = wrap_scope(decl, p, needs_route, quote!(#conv(#call)), quote!(e));
                let conv = exactly(krate, def, &p.func);
                stmts.push(quote! { let e = #conv(#call); });
                continue;
            }
            Combine::Single => {
                let conv = exactly(krate, def, &p.func);
                singles.push(quote! { #conv(#call) });
                continue;
            }
        };
        stmts.push(wrap_scope(decl, p, needs_route, stmt, quote!()));
    }
    (stmts, singles)
}

/// The conversion of a user function's result to what its phase needs, named through
/// the declared return type (`<Option<Response> as IntoFlow>::into_flow`): a type that
/// does not convert is reported on the return type, with the trait's message.
fn convert(krate: &syn::Path, f: &Func, trait_name: &str, method: &str) -> TokenStream {
    let trait_ident = format_ident!("{}", trait_name);
    let method = format_ident!("{}", method);
    match &f.output {
        Some(syn::Type::ImplTrait(_)) => quote!(#krate::dsl::#trait_ident::#method),
        Some(ty) => quote_spanned! {ty.span()=> <#ty as #krate::dsl::#trait_ident>::#method },
        None => quote!(<() as #krate::dsl::#trait_ident>::#method),
    }
}

/// For phases whose functions return exactly the phase's type (`String`, `bool`,
/// `Box<Error>`...): the identity, named through the declared return type, so a wrong
/// type is reported on it with the message of `dsl::args::PhaseReturn` (not as a
/// mismatch inside the generated method).
fn exactly(krate: &syn::Path, def: &phases::PhaseDef, f: &Func) -> TokenStream {
    let rt = quote!(#krate).to_string();
    let expected: TokenStream = def.ret.replace("RT", &rt).parse().unwrap_or_default();
    match &f.output {
        Some(syn::Type::ImplTrait(_)) => quote!(::core::convert::identity),
        Some(ty) => quote_spanned! {ty.span()=>
            <#ty as #krate::dsl::args::PhaseReturn<#expected>>::into_expected
        },
        None => {
            let unit = quote_spanned! {f.ident.span()=> () };
            quote_spanned! {f.ident.span()=>
                <#unit as #krate::dsl::args::PhaseReturn<#expected>>::into_expected
            }
        }
    }
}

/// Run `body` only for the phase's routes and when the route it needs is there; as an
/// expression, `otherwise` when skipped.
fn wrap_scope(
    decl: &ProxyDecl,
    p: &PhaseFn,
    needs_route: bool,
    body: TokenStream,
    otherwise: TokenStream,
) -> TokenStream {
    let mut body = body;
    let expr = !otherwise.is_empty();
    if needs_route {
        body = if expr {
            quote! { if let ::core::option::Option::Some(__route) = ctx.route.as_ref() { #body } else { #otherwise } }
        } else {
            quote! { if let ::core::option::Option::Some(__route) = ctx.route.as_ref() { #body } }
        };
    }
    if !p.routes.is_empty() {
        let pat = route_pattern(decl, &p.routes);
        body = if expr {
            quote! { if ::core::matches!(ctx.route, ::core::option::Option::Some(#pat)) { #body } else { #otherwise } }
        } else {
            quote! { if ::core::matches!(ctx.route, ::core::option::Option::Some(#pat)) { #body } }
        };
    }
    body
}

fn signature(decl: &ProxyDecl, phase: Phase) -> TokenStream {
    let def = phases::def(phase);
    let krate = &decl.krate;
    let rt = quote!(#krate).to_string();
    let params = def.params.replace("RT", &rt).replace("CTX", "RequestCtx");
    let ret = def.ret.replace("RT", &rt);
    let text = format!(
        "{}fn {}(&self, {params}) -> {ret}",
        if def.is_async { "async " } else { "" },
        def.name
    );
    text.parse().unwrap_or_default()
}

/// Every `ProxyHttp` method the declaration needs.
fn phase_methods(decl: &ProxyDecl) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let krate = &decl.krate;
    let mut asserts = Vec::new();
    let mut methods = Vec::new();
    for def in phases::PHASES {
        let (stmts, singles) = pipeline(decl, def.phase, &mut asserts);
        let generated = generated_part(decl, def.phase);
        if stmts.is_empty() && singles.is_empty() && generated.is_none() {
            continue;
        }
        let sig = signature(decl, def.phase);
        let (pre, post) = generated.unwrap_or_default();
        let tail = match def.combine {
            Combine::Single => match singles.into_iter().next() {
                Some(call) => call,
                None => continue,
            },
            Combine::Unit => quote!(::core::result::Result::Ok(())),
            Combine::Always => quote!(()),
            Combine::Flow => quote!(::core::result::Result::Ok(false)),
            Combine::All => quote!(::core::result::Result::Ok(true)),
            Combine::Any => quote!(::core::result::Result::Ok(false)),
            Combine::AnyPlain => quote!(false),
            Combine::Delay => quote!(::core::result::Result::Ok(__delay)),
            Combine::ErrorChain => quote!(e),
        };
        let delay_init = if def.combine == Combine::Delay {
            quote!(let mut __delay: ::core::option::Option<::std::time::Duration> = ::core::option::Option::None;)
        } else {
            quote!()
        };
        methods.push(quote! {
            // `unreachable_code`: an argument the phase cannot provide is an error
            // (see `calls::cannot_provide`) passed as `unreachable!()`.
            #[allow(unused_variables, unused_mut, unreachable_code, clippy::all)]
            #sig {
                #delay_init
                #pre
                #(#stmts)*
                #post
                #tail
            }
        });
    }
    methods.push(upstream_peer(decl));
    // No body filter phase: nothing of the proxy's own needs the response body bytes,
    // so the engine may relay them in the kernel (it still checks cache and modules).
    let filters_bodies = decl.phases.iter().any(|p| {
        matches!(
            p.phase,
            Phase::UpstreamResponseBodyFilter | Phase::ResponseBodyFilter
        )
    });
    if !filters_bodies {
        methods.push(quote! {
            fn response_body_passthrough(&self, _session: &#krate::Session, _ctx: &RequestCtx) -> bool {
                true
            }
        });
    }
    (methods, asserts)
}

/// Code the compiler adds to a phase around the user's pipeline: (before, after).
fn generated_part(decl: &ProxyDecl, phase: Phase) -> Option<(TokenStream, TokenStream)> {
    let krate = &decl.krate;
    let normalize = decl.normalize;
    match phase {
        Phase::EarlyRequestFilter => Some((
            quote! {
                {
                    let (__outcome, __route, __target, __normalized) = {
                        let __req = session.req_header();
                        let __raw_path = __req.path();
                        let __path = if #normalize {
                            #krate::dsl::routing::normalize_path(__raw_path)
                        } else {
                            ::std::borrow::Cow::Borrowed(__raw_path)
                        };
                        let __normalized = match &__path {
                            ::std::borrow::Cow::Owned(__p) => ::core::option::Option::Some(__p.clone()),
                            ::std::borrow::Cow::Borrowed(_) => ::core::option::Option::None,
                        };
                        let __host = #krate::dsl::routing::match_host(__req.host());
                        let __bit = #krate::dsl::routing::method_bit(&__req.method);
                        let __query = __req.uri.query();
                        match match_route(__bit, __host, &__path) {
                            #krate::dsl::routing::Matched::Found(__idx, __p) => match __build_route(__idx, &__p) {
                                ::core::result::Result::Ok(__r) => (
                                    #krate::dsl::routing::RouteOutcome::Matched,
                                    ::core::option::Option::Some(__r),
                                    __expand_target(__idx, &__p, &__path, __query),
                                    __normalized,
                                ),
                                ::core::result::Result::Err(__status) => (
                                    #krate::dsl::routing::RouteOutcome::ParamError(__status),
                                    ::core::option::Option::None,
                                    ::core::option::Option::None,
                                    __normalized,
                                ),
                            },
                            #krate::dsl::routing::Matched::MethodNotAllowed(__m) => (
                                #krate::dsl::routing::RouteOutcome::MethodNotAllowed(__m),
                                ::core::option::Option::None,
                                ::core::option::Option::None,
                                __normalized,
                            ),
                            #krate::dsl::routing::Matched::NotFound => (
                                #krate::dsl::routing::RouteOutcome::NotFound,
                                ::core::option::Option::None,
                                ::core::option::Option::None,
                                __normalized,
                            ),
                        }
                    };
                    if let ::core::option::Option::Some(__p) = __normalized {
                        // Route on and forward the same path the origin will see.
                        #krate::dsl::routing::replace_path(session.req_header_mut(), &__p)?;
                    }
                    ctx.__outcome = __outcome;
                    ctx.route = __route;
                    ctx.__target = __target;
                }
            },
            quote!(),
        )),
        Phase::RequestFilter => {
            // Rate limits first: a request over its route's limit costs nothing more.
            let limit_arms = decl
                .routes
                .iter()
                .filter(|r| r.rate_limit.is_some())
                .enumerate()
                .map(|(k, r)| {
                    let v = variant_name(&r.func.ident);
                    quote!(::core::option::Option::Some(Route::#v { .. }) => ::core::option::Option::Some(#k),)
                })
                .collect::<Vec<_>>();
            let limits = if limit_arms.is_empty() {
                quote!()
            } else {
                quote! {
                    let __limit: ::core::option::Option<usize> = match ctx.route.as_ref() {
                        #(#limit_arms)*
                        _ => ::core::option::Option::None,
                    };
                    if let ::core::option::Option::Some(__k) = __limit {
                        match #krate::dsl::limits::enforce(&self.__limiters[__k], &__LIMITS[__k], session).await? {
                            ::core::option::Option::Some(__permit) => ctx.__permit = ::core::option::Option::Some(__permit),
                            ::core::option::Option::None => return ::core::result::Result::Ok(true),
                        }
                    }
                }
            };
            // Routes whose function is empty and which forward need no arm at all:
            // fewer arms in this async fn keep compile times low for large tables.
            let actions = decl
                .routes
                .iter()
                .enumerate()
                .filter(|(_, r)| !(r.func.trivial && matches!(r.action, Action::Forward(_))))
                .map(|(i, r)| route_action(decl, i, r));
            Some((
                limits,
                quote! {
                    match ctx.__outcome {
                        #krate::dsl::routing::RouteOutcome::Matched => {}
                        __other => {
                            #krate::dsl::routing::answer_unrouted(__other, session).await?;
                            return ::core::result::Result::Ok(true);
                        }
                    }
                    if let ::core::option::Option::Some(__route) = ctx.route.as_ref() {
                        #[allow(unreachable_patterns)]
                        match __route {
                            #(#actions)*
                            _ => {}
                        }
                    }
                },
            ))
        }
        Phase::UpstreamRequestFilter => {
            let arms = decl.routes.iter().filter_map(|r| {
                let ops = &r.request_headers;
                if ops.set.is_empty() && ops.add.is_empty() && ops.remove.is_empty() {
                    return None;
                }
                let v = variant_name(&r.func.ident);
                let header_ops = header_ops_tokens(ops, quote!(upstream_request));
                Some(quote! { Route::#v { .. } => { #header_ops } })
            });
            Some((
                quote! {
                    if let ::core::option::Option::Some(__t) = ctx.__target.as_deref() {
                        #krate::dsl::routing::replace_path_and_query(upstream_request, __t)?;
                    }
                    if let ::core::option::Option::Some(__route) = ctx.route.as_ref() {
                        #[allow(unreachable_patterns)]
                        match __route {
                            #(#arms)*
                            _ => {}
                        }
                    }
                },
                quote!(),
            ))
        }
        Phase::RequestCacheFilter if decl.routes.iter().any(|r| r.cache.is_some()) => Some((
            quote! {
                if let (::core::option::Option::Some(__cache), ::core::option::Option::Some(__policy)) =
                    (self.__cache.as_ref(), ctx.route.as_ref().and_then(|r| r.cache_policy()))
                {
                    #krate::dsl::cache_policy::apply(__policy, __cache, session);
                }
            },
            quote!(),
        )),
        Phase::UpstreamResponseFilter => Some((
            quote! {
                // Passive health: a 5xx counts as a failure of the backend.
                if let ::core::option::Option::Some(__p) = ctx.__pick.as_ref() {
                    self.__upstreams[__p.group].report(__p, upstream_response.status.as_u16() < 500);
                }
            },
            quote!(),
        )),
        Phase::ResponseFilter => {
            let arms: Vec<TokenStream> = decl
                .routes
                .iter()
                .filter_map(|r| {
                    let ops = &r.response_headers;
                    if ops.set.is_empty() && ops.add.is_empty() && ops.remove.is_empty() {
                        return None;
                    }
                    let v = variant_name(&r.func.ident);
                    let header_ops = header_ops_tokens(ops, quote!(upstream_response));
                    Some(quote! { Route::#v { .. } => { #header_ops } })
                })
                .collect();
            if arms.is_empty() {
                return None;
            }
            Some((
                quote! {
                    if let ::core::option::Option::Some(__route) = ctx.route.as_ref() {
                        #[allow(unreachable_patterns)]
                        match __route {
                            #(#arms)*
                            _ => {}
                        }
                    }
                },
                quote!(),
            ))
        }
        Phase::FailToConnect | Phase::ErrorWhileProxy => {
            let mut by_limit: std::collections::BTreeMap<u32, Vec<syn::Ident>> = Default::default();
            for r in &decl.routes {
                let Action::Forward(up) = &r.action else {
                    continue;
                };
                // The route's own limit, else its group's, else the documented default
                // (the service's limit is the largest of them all).
                let limit = r
                    .retries
                    .or_else(|| {
                        decl.upstreams
                            .iter()
                            .find(|u| u.ident == *up)
                            .and_then(|u| u.retries)
                    })
                    .unwrap_or(DEFAULT_RETRIES);
                by_limit
                    .entry(limit)
                    .or_default()
                    .push(variant_name(&r.func.ident));
            }
            let arms = by_limit.iter().map(|(limit, variants)| {
                quote! { ::core::option::Option::Some(#(Route::#variants { .. })|*) => ::core::option::Option::Some(#limit), }
            });
            Some((
                quote! {
                    let mut e = e;
                    // The cache's refetch after an unusable 304: neither a try the route's
                    // limit counts nor a failure of the backend.
                    if e.kind == #krate::ErrorKind::NotModifiedElsewhere {
                        return e;
                    }
                    #[allow(unreachable_patterns)]
                    let __limit: ::core::option::Option<u32> = match ctx.route.as_ref() {
                        #(#arms)*
                        _ => ::core::option::Option::None,
                    };
                    if let ::core::option::Option::Some(__limit) = __limit
                        && session.upstream_tries() > __limit
                    {
                        e.retry = #krate::RetryType::Decided(false);
                    }
                    // Passive health: the chosen backend failed.
                    if e.source == #krate::ErrorSource::Upstream
                        && let ::core::option::Option::Some(__p) = ctx.__pick.as_ref()
                    {
                        self.__upstreams[__p.group].report(__p, false);
                    }
                },
                quote!(),
            ))
        }
        _ => None,
    }
}

fn header_ops_tokens(ops: &HeaderOps, target: TokenStream) -> TokenStream {
    let removes = ops
        .remove
        .iter()
        .map(|n| quote! { #target.remove_header(#n); });
    let sets = ops
        .set
        .iter()
        .map(|(n, v)| quote! { #target.insert_header(#n, #v)?; });
    let adds = ops
        .add
        .iter()
        .map(|(n, v)| quote! { #target.append_header(#n, #v)?; });
    quote! { #(#removes)* #(#sets)* #(#adds)* }
}

/// What a matched route does in `request_filter`: answer, redirect, or run its handler.
fn route_action(decl: &ProxyDecl, idx: usize, r: &Route) -> TokenStream {
    let krate = &decl.krate;
    let v = variant_name(&r.func.ident);
    match &r.action {
        Action::Redirect(status, _) => quote! {
            Route::#v { .. } => {
                let __location = ctx.__target.clone().unwrap_or_default();
                #krate::dsl::Response::redirect(#status, __location).send(session).await?;
                return ::core::result::Result::Ok(true);
            }
        },
        Action::Respond(status, body, ct) => quote! {
            Route::#v { .. } => {
                #krate::dsl::Response::new(#status)
                    .header("content-type", #ct)
                    .body(#body)
                    .send(session)
                    .await?;
                return ::core::result::Result::Ok(true);
            }
        },
        Action::Forward(_) | Action::HandlerOnly | Action::Invalid => {
            let params = r.pattern.params().map(|name| {
                let (field, local) = (param_ident(name), param_local(name));
                quote!(#field: #local)
            });
            let call = route_handler_call(krate, idx, r);
            let conv = convert(krate, &r.func, "IntoFlow", "into_flow");
            let out_span = r
                .func
                .output
                .as_ref()
                .map_or(r.func.ident.span(), |t| t.span());
            let no_upstream = if matches!(r.action, Action::HandlerOnly) {
                let name = route_name(r);
                quote! {
                    return ::core::result::Result::Err(#krate::Error::explain(
                        #krate::ErrorKind::Internal,
                        #krate::ErrorSource::Internal,
                        ::std::format!("route `{}` continued, but it has no upstream", #name),
                    ));
                }
            } else {
                quote!()
            };
            quote_spanned! {out_span=>
                Route::#v { #(#params,)* .. } => {
                    let __flow = #conv(#call)?;
                    if #krate::dsl::apply_flow(__flow, session).await? {
                        return ::core::result::Result::Ok(true);
                    }
                    #no_upstream
                }
            }
        }
    }
}

fn upstream_peer(decl: &ProxyDecl) -> TokenStream {
    let krate = &decl.krate;
    // One arm per (upstream, timeout overrides): routes that share them share the arm.
    // (upstream index, read timeout ms, connect timeout ms) → the routes sharing them.
    type PeerKey = (usize, Option<u64>, Option<u64>);
    let mut groups: Vec<(PeerKey, Vec<syn::Ident>)> = Vec::new();
    for r in &decl.routes {
        let Action::Forward(up) = &r.action else {
            continue;
        };
        let Some(idx) = decl.upstreams.iter().position(|u| u.ident == *up) else {
            continue;
        };
        let key = (
            idx,
            r.timeout.map(|d| d.as_millis() as u64),
            r.connect_timeout.map(|d| d.as_millis() as u64),
        );
        let v = variant_name(&r.func.ident);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, vs)) => vs.push(v),
            None => groups.push((key, vec![v])),
        }
    }
    let arms = groups.iter().map(|((idx, read, connect), variants)| {
        let read = read.map(
            |ms| quote!(__peer.options.read_timeout = ::std::time::Duration::from_millis(#ms);),
        );
        let connect = connect.map(
            |ms| quote!(__peer.options.connect_timeout = ::std::time::Duration::from_millis(#ms);),
        );
        quote! {
            ::core::option::Option::Some(#(Route::#variants { .. })|*) => {
                let (mut __peer, __backend, __guard) =
                    self.__upstreams[#idx].pick(::core::option::Option::Some(&*session), ctx.__tried.as_slice())?;
                ctx.__tried.push(__backend);
                ctx.__pick = ::core::option::Option::Some(#krate::dsl::CurrentPick {
                    group: #idx,
                    backend: __backend,
                    guard: __guard,
                });
                #read
                #connect
                ::core::result::Result::Ok(__peer)
            }
        }
    });
    quote! {
        #[allow(unused_variables, unreachable_patterns, clippy::all)]
        async fn upstream_peer(&self, session: &mut #krate::Session, ctx: &mut RequestCtx) -> #krate::Result<#krate::upstream::HttpPeer> {
            match ctx.route.as_ref() {
                #(#arms)*
                _ => ::core::result::Result::Err(#krate::Error::explain(
                    #krate::ErrorKind::NoUpstream,
                    #krate::ErrorSource::Internal,
                    "no upstream for this request",
                )),
            }
        }
    }
}

/// Whether a segment list has a catch-all (used by docs/tests).
#[allow(dead_code)]
pub fn has_catch_all(segments: &[Segment]) -> bool {
    segments.iter().any(|s| matches!(s, Segment::CatchAll(_)))
}
