//! The configuration of a DSL-declared proxy at start-up: the declaration's defaults,
//! then the configuration file (`--config`, TOML), then the environment, then the
//! command line. Routes are compiled in; addresses and operational settings are not.
//!
//! ```toml
//! listen = ["0.0.0.0:8080"]
//! tls_listen = [{ addr = "0.0.0.0:8443", cert = "/etc/edge/cert.pem", key = "/etc/edge/key.pem" }]
//! threads = 4
//! runtime = "per_core"
//! grace_period = "10s"
//! log = "info"
//! keepalive_timeout = "75s"
//! cache_size = "256MiB"
//! splice = true
//!
//! [upstreams.Api]
//! addrs = ["10.0.0.3:80", "10.0.0.4:80"]
//! read_timeout = "10s"
//! tls = true
//! sni = "api.internal"
//! h2 = true
//! ```
//!
//! Environment: `<NAME>_LISTEN=addr,addr` and `<NAME>_UPSTREAM_<UPSTREAM>=addr,addr`,
//! where `<NAME>` is the proxy's name and `<UPSTREAM>` the upstream struct's name, both
//! upper-cased with non-alphanumerics as `_` (`EDGE_UPSTREAM_API`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::upstreams::UpstreamSpec;

/// A configuration problem, located in the file when it came from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The configuration file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listen addresses (replace the declared ones).
    pub listen: Option<Vec<Spanned<String>>>,
    /// TLS listeners (replace the declared ones).
    pub tls_listen: Option<Vec<TlsListenFile>>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Runtime layout: `"work_stealing"` or `"per_core"`.
    pub runtime: Option<Spanned<String>>,
    /// Grace period for shutdown (`"10s"`).
    pub grace_period: Option<Spanned<String>>,
    /// Log filter (`"info"`, `"proxy_runtime=debug"`); `RUST_LOG` wins.
    pub log: Option<String>,
    /// Idle time between requests on a client connection.
    pub keepalive_timeout: Option<Spanned<String>>,
    /// Time allowed to receive a request head.
    pub header_read_timeout: Option<Spanned<String>>,
    /// Size of the response cache (`"256MiB"`; `"0"` turns it off).
    pub cache_size: Option<Spanned<String>>,
    /// Relay large response bodies socket to socket in the kernel (`splice(2)`).
    pub splice: Option<bool>,
    /// Address overrides per upstream group.
    #[serde(default)]
    pub upstreams: BTreeMap<Spanned<String>, UpstreamOverride>,
}

/// A TLS listener, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenFile {
    /// `ip:port`.
    pub addr: String,
    /// Certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Private key (PEM).
    pub key: std::path::PathBuf,
    /// More certificates chosen by SNI: `[["b.pem", "b.key"], ...]`.
    #[serde(default)]
    pub more_certs: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// CA bundle for client certificates.
    pub client_ca: Option<std::path::PathBuf>,
    /// Refuse clients without a certificate.
    #[serde(default)]
    pub client_auth_required: bool,
}

/// Overrides for one upstream group, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamOverride {
    /// The group's addresses.
    pub addrs: Option<Spanned<Vec<Spanned<String>>>>,
    /// Connect timeout (`"1s"`).
    pub connect_timeout: Option<Spanned<String>>,
    /// Read timeout.
    pub read_timeout: Option<Spanned<String>>,
    /// Write timeout.
    pub write_timeout: Option<Spanned<String>>,
    /// Pool idle timeout.
    pub idle_timeout: Option<Spanned<String>>,
    /// Speak TLS to the group.
    pub tls: Option<bool>,
    /// TLS server name.
    pub sni: Option<String>,
    /// Verify the upstream certificate (`false`: test origins only).
    pub verify: Option<bool>,
    /// Trust this CA bundle instead of the system roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Speak HTTP/2 (prior knowledge in cleartext; offered by ALPN over TLS).
    pub h2: Option<bool>,
}

/// Settings that replace an upstream group's declared ones at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Connect timeout.
    pub connect: Option<Duration>,
    /// Read timeout.
    pub read: Option<Duration>,
    /// Write timeout.
    pub write: Option<Duration>,
    /// Pool idle timeout.
    pub idle: Option<Duration>,
    /// Speak TLS.
    pub tls: Option<bool>,
    /// TLS server name.
    pub sni: Option<String>,
    /// Verify the certificate.
    pub verify: Option<bool>,
    /// CA bundle to trust.
    pub ca_file: Option<std::path::PathBuf>,
    /// Speak HTTP/2.
    pub h2: Option<bool>,
}

/// The settings a proxy starts with, after every source was applied.
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    /// Listen addresses.
    pub listen: Vec<String>,
    /// TLS listeners: address and certificates.
    pub tls_listen: Vec<(String, crate::protocols::tls::TlsServerSettings)>,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// Runtime layout (`None`: the server's default, per core).
    pub runtime: Option<crate::server::RuntimeLayout>,
    /// Shutdown grace period.
    pub grace_period: Option<Duration>,
    /// Log filter.
    pub log: Option<String>,
    /// Client keep-alive idle timeout.
    pub keepalive_timeout: Option<Duration>,
    /// Request head timeout.
    pub header_read_timeout: Option<Duration>,
    /// Response cache size in bytes (`None`: the default when routes are cached; 0:
    /// no cache).
    pub cache_size: Option<u64>,
    /// Kernel relay of response bodies (`None`: the engine's default, on; see
    /// [`crate::proxy::ProxyOptions::splice`]).
    pub splice: Option<bool>,
    /// Address overrides by upstream name.
    pub upstream_addrs: HashMap<String, Vec<String>>,
    /// Option overrides by upstream name.
    pub upstream_options: HashMap<String, UpstreamOptions>,
}

impl ProxyConfig {
    /// The declaration's own settings.
    pub fn declared(
        listen: &[&str],
        threads: Option<usize>,
        grace_period: Option<Duration>,
    ) -> Self {
        ProxyConfig {
            listen: listen.iter().map(|s| s.to_string()).collect(),
            threads,
            grace_period,
            ..ProxyConfig::default()
        }
    }

    /// Replace the addresses of upstream `name` (as the config file would).
    pub fn with_upstream(mut self, name: &str, addrs: &[&str]) -> Self {
        self.upstream_addrs.insert(
            name.to_string(),
            addrs.iter().map(|s| s.to_string()).collect(),
        );
        self
    }

    /// Apply a configuration file's text (`path` is used in messages).
    pub fn apply_file_text(
        &mut self,
        path: &str,
        text: &str,
        upstreams: &[UpstreamSpec],
    ) -> Result<(), ConfigError> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigError(format!("{path}: {e}")))?;
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let at = |offset: usize, key: &str, what: &dyn fmt::Display| {
            ConfigError(format!("{path}:{}: key `{key}`: {what}", line_of(offset)))
        };
        let duration = |v: &Spanned<String>, key: &str| {
            proxy_syntax::duration::parse_duration(v.get_ref())
                .map_err(|e| at(v.span().start, key, &e))
        };
        // A timeout of 0 would fail every wait at once.
        let timeout = |v: &Spanned<String>, key: &str| {
            let d = duration(v, key)?;
            if d.is_zero() {
                return Err(at(v.span().start, key, &"must be longer than 0"));
            }
            Ok(d)
        };
        if let Some(l) = file.listen {
            let mut listen = Vec::new();
            for a in l {
                check_listen(a.get_ref(), &listen).map_err(|e| at(a.span().start, "listen", &e))?;
                listen.push(a.into_inner());
            }
            self.listen = listen;
        }
        if let Some(t) = file.tls_listen {
            self.tls_listen = t
                .into_iter()
                .map(|t| {
                    let mut s = crate::protocols::tls::TlsServerSettings::new(t.cert, t.key);
                    for (c, k) in t.more_certs {
                        s = s.with_cert(c, k);
                    }
                    s.client_ca = t.client_ca;
                    s.client_auth_required = t.client_auth_required;
                    (t.addr, s)
                })
                .collect();
            for (i, (addr, _)) in self.tls_listen.iter().enumerate() {
                // Neither twice among themselves nor also a cleartext listener (with
                // SO_REUSEPORT both would bind, and TLS clients would land on either).
                let before: Vec<String> = self.tls_listen[..i]
                    .iter()
                    .map(|t| t.0.clone())
                    .chain(self.listen.iter().cloned())
                    .collect();
                check_listen(addr, &before)
                    .map_err(|e| ConfigError(format!("{path}: key `tls_listen`: {e}")))?;
            }
        }
        if let Some(t) = file.threads {
            if t == 0 {
                return Err(ConfigError(format!(
                    "{path}: key `threads`: must be at least 1"
                )));
            }
            self.threads = Some(t);
        }
        if let Some(r) = &file.runtime {
            let layout = r.get_ref().parse().map_err(|e| {
                ConfigError(format!(
                    "{path}:{}: key `runtime`: {e}",
                    line_of(r.span().start)
                ))
            })?;
            self.runtime = Some(layout);
        }
        if let Some(g) = &file.grace_period {
            self.grace_period = Some(duration(g, "grace_period")?);
        }
        if let Some(k) = &file.keepalive_timeout {
            self.keepalive_timeout = Some(timeout(k, "keepalive_timeout")?);
        }
        if let Some(h) = &file.header_read_timeout {
            self.header_read_timeout = Some(timeout(h, "header_read_timeout")?);
        }
        if file.log.is_some() {
            self.log = file.log;
        }
        if let Some(v) = &file.cache_size {
            let size = proxy_syntax::size::parse_size(v.get_ref()).map_err(|e| {
                ConfigError(format!(
                    "{path}:{}: key `cache_size`: {e}",
                    line_of(v.span().start)
                ))
            })?;
            self.cache_size = Some(size);
        }
        if file.splice.is_some() {
            self.splice = file.splice;
        }
        for (name, o) in file.upstreams {
            if !upstreams.iter().any(|u| u.name == name.get_ref()) {
                let known: Vec<&str> = upstreams.iter().map(|u| u.name).collect();
                let hint = proxy_syntax::suggest::closest(name.get_ref(), known.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(ConfigError(format!(
                    "{path}:{}: key `upstreams.{}`: no upstream of that name (declared: {}){hint}",
                    line_of(name.span().start),
                    name.get_ref(),
                    known.join(", ")
                )));
            }
            let key = |k: &str| format!("upstreams.{}.{k}", name.get_ref());
            if let Some(list) = &o.addrs {
                if list.get_ref().is_empty() {
                    return Err(at(
                        list.span().start,
                        &key("addrs"),
                        &"empty: give at least one address",
                    ));
                }
                for a in list.get_ref() {
                    check_upstream_address(a.get_ref())
                        .map_err(|e| at(a.span().start, &key("addrs"), &e))?;
                }
            }
            let parse = |v: &Option<Spanned<String>>, k: &str| {
                v.as_ref().map(|v| timeout(v, &key(k))).transpose()
            };
            let options = UpstreamOptions {
                connect: parse(&o.connect_timeout, "connect_timeout")?,
                read: parse(&o.read_timeout, "read_timeout")?,
                write: parse(&o.write_timeout, "write_timeout")?,
                // 0: no pooling.
                idle: o
                    .idle_timeout
                    .as_ref()
                    .map(|v| duration(v, &key("idle_timeout")))
                    .transpose()?,
                tls: o.tls,
                sni: o.sni.clone(),
                verify: o.verify,
                ca_file: o.ca_file.clone(),
                h2: o.h2,
            };
            if options != UpstreamOptions::default() {
                self.upstream_options
                    .insert(name.get_ref().clone(), options);
            }
            if let Some(addrs) = o.addrs {
                let addrs = addrs
                    .into_inner()
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect();
                self.upstream_addrs.insert(name.into_inner(), addrs);
            }
        }
        Ok(())
    }

    /// Replace settings of upstream `name` (as the config file would).
    pub fn with_upstream_options(mut self, name: &str, options: UpstreamOptions) -> Self {
        self.upstream_options.insert(name.to_string(), options);
        self
    }

    /// Apply a configuration file.
    pub fn apply_file(
        &mut self,
        path: &Path,
        upstreams: &[UpstreamSpec],
    ) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        self.apply_file_text(&path.display().to_string(), &text, upstreams)
    }

    /// Apply `<PREFIX>_LISTEN` and `<PREFIX>_UPSTREAM_<NAME>` from `env`.
    pub fn apply_env(
        &mut self,
        proxy_name: &str,
        upstreams: &[UpstreamSpec],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let prefix = env_name(proxy_name);
        let split = |v: String| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        let var = format!("{prefix}_LISTEN");
        if let Some(v) = env(&var) {
            let mut listen = Vec::new();
            for a in split(v) {
                check_listen(&a, &listen)
                    .map_err(|e| ConfigError(format!("environment variable {var}: {e}")))?;
                listen.push(a);
            }
            if listen.is_empty() {
                return Err(ConfigError(format!(
                    "environment variable {var}: no address"
                )));
            }
            self.listen = listen;
        }
        for u in upstreams {
            let var = format!("{prefix}_UPSTREAM_{}", env_name(u.name));
            if let Some(v) = env(&var) {
                let addrs = split(v);
                if addrs.is_empty() {
                    return Err(ConfigError(format!(
                        "environment variable {var}: no address"
                    )));
                }
                for a in &addrs {
                    check_upstream_address(a)
                        .map_err(|e| ConfigError(format!("environment variable {var}: {e}")))?;
                }
                self.upstream_addrs.insert(u.name.to_string(), addrs);
            }
        }
        Ok(())
    }

    /// Environment variables that look meant for this proxy but name no upstream
    /// (`EDGE_UPSTREAM_APII`): an error, with the closest name, rather than a setting
    /// silently not applied. `names` are the variables' names.
    pub fn check_env_names(
        proxy_name: &str,
        upstreams: &[UpstreamSpec],
        names: impl Iterator<Item = String>,
    ) -> Result<(), ConfigError> {
        let prefix = format!("{}_UPSTREAM_", env_name(proxy_name));
        let known: Vec<String> = upstreams.iter().map(|u| env_name(u.name)).collect();
        for var in names {
            let Some(upstream) = var.strip_prefix(&prefix) else {
                continue;
            };
            if !known.iter().any(|k| k == upstream) {
                let hint =
                    proxy_syntax::suggest::closest(upstream, known.iter().map(String::as_str))
                        .map(|s| format!("; did you mean {prefix}{s}?"))
                        .unwrap_or_default();
                return Err(ConfigError(format!(
                    "environment variable {var}: no upstream of that name (declared: {}){hint}",
                    upstreams
                        .iter()
                        .map(|u| u.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// A listen address: `ip:port` or `host:port`, not given twice (after `before`).
pub(crate) fn check_listen(addr: &str, before: &[String]) -> Result<(), String> {
    let valid = addr.parse::<std::net::SocketAddr>().is_ok()
        || (!addr.starts_with("unix:") && proxy_syntax::address::parse_address(addr).is_ok());
    if !valid {
        return Err(format!(
            "{addr:?} is not a listen address (write \"ip:port\", e.g. \"0.0.0.0:8080\")"
        ));
    }
    if before.iter().any(|b| b.eq_ignore_ascii_case(addr)) {
        return Err(format!("{addr:?} is given twice"));
    }
    Ok(())
}

/// An upstream address: what the declaration accepts, and a port that can be connected to.
fn check_upstream_address(addr: &str) -> Result<(), String> {
    proxy_syntax::address::parse_address(addr).map_err(|e| format!("{addr:?}: {e}"))?;
    if addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.port() == 0)
    {
        return Err(format!("{addr:?}: port 0 cannot be connected to"));
    }
    Ok(())
}

/// `my-edge` → `MY_EDGE`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::upstreams::LbPolicy;

    const UPSTREAMS: &[UpstreamSpec] = &[UpstreamSpec {
        name: "Api",
        addrs: &["127.0.0.1:1"],
        weights: &[],
        lb: LbPolicy::RoundRobin,
        connect_timeout: None,
        read_timeout: None,
        write_timeout: None,
        idle_timeout: None,
        retries: None,
        tls: false,
        sni: None,
        h2: false,
        health: None,
        passive: None,
        resolve_every: None,
        alpn: None,
    }];

    #[test]
    fn file_overrides_and_errors_name_key_and_line() {
        let mut c = ProxyConfig::declared(&["0.0.0.0:80"], None, None);
        c.apply_file_text(
            "edge.toml",
            "listen = [\"127.0.0.1:9\"]\ngrace_period = \"2s\"\n[upstreams.Api]\naddrs = [\"10.0.0.1:80\"]\n",
            UPSTREAMS,
        )
        .unwrap();
        assert_eq!(c.listen, ["127.0.0.1:9"]);
        assert_eq!(c.grace_period, Some(Duration::from_secs(2)));
        assert_eq!(c.upstream_addrs["Api"], ["10.0.0.1:80"]);

        let e = c
            .apply_file_text(
                "edge.toml",
                "threads = 2\ngrace_period = \"2 s\"\n",
                UPSTREAMS,
            )
            .unwrap_err();
        assert!(e.0.starts_with("edge.toml:2: key `grace_period`"), "{e}");
        let e = c
            .apply_file_text("edge.toml", "\n[upstreams.Apy]\naddrs = []\n", UPSTREAMS)
            .unwrap_err();
        assert!(
            e.0.contains("edge.toml:2") && e.0.contains("did you mean `Api`"),
            "{e}"
        );
        let e = c
            .apply_file_text("edge.toml", "listn = []\n", UPSTREAMS)
            .unwrap_err();
        assert!(e.0.contains("line 1") && e.0.contains("listn"), "{e}");
    }

    #[test]
    fn addresses_and_timeouts_are_checked_with_their_line() {
        let mut c = ProxyConfig::declared(&["0.0.0.0:80"], None, None);
        let cases = [
            (
                "threads = 2\nlisten = [\"nope\"]\n",
                "edge.toml:2: key `listen`",
            ),
            (
                "listen = [\"127.0.0.1:8\", \"127.0.0.1:8\"]\n",
                "is given twice",
            ),
            (
                "[upstreams.Api]\nread_timeout = \"1s\"\n\naddrs = [\"10.0.0.1:80\", \"bad host:1\"]\n",
                "edge.toml:4: key `upstreams.Api.addrs`",
            ),
            (
                "[upstreams.Api]\naddrs = []\n",
                "edge.toml:2: key `upstreams.Api.addrs`: empty",
            ),
            ("[upstreams.Api]\naddrs = [\"127.0.0.1:0\"]\n", "port 0"),
            (
                "[upstreams.Api]\nconnect_timeout = \"0s\"\n",
                "edge.toml:2: key `upstreams.Api.connect_timeout`: must be longer than 0",
            ),
            ("keepalive_timeout = \"0ms\"\n", "key `keepalive_timeout`"),
        ];
        for (text, expected) in cases {
            let e = c.apply_file_text("edge.toml", text, UPSTREAMS).unwrap_err();
            assert!(e.0.contains(expected), "{text:?}: {e}");
        }
        // An idle timeout of 0 is valid: no pooling.
        c.apply_file_text(
            "edge.toml",
            "[upstreams.Api]\nidle_timeout = \"0s\"\n",
            UPSTREAMS,
        )
        .unwrap();
    }

    #[test]
    fn environment_names_meant_for_no_upstream_are_errors() {
        let names = |v: &[&str]| {
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        ProxyConfig::check_env_names(
            "my-edge",
            UPSTREAMS,
            names(&["MY_EDGE_UPSTREAM_API", "PATH"]),
        )
        .unwrap();
        let e =
            ProxyConfig::check_env_names("my-edge", UPSTREAMS, names(&["MY_EDGE_UPSTREAM_APII"]))
                .unwrap_err();
        assert!(e.0.contains("did you mean MY_EDGE_UPSTREAM_API"), "{e}");
        let mut c = ProxyConfig::default();
        for empty in ["", " , "] {
            let e = c
                .apply_env("my-edge", UPSTREAMS, |k| {
                    (k == "MY_EDGE_UPSTREAM_API").then(|| empty.to_string())
                })
                .unwrap_err();
            assert!(e.0.contains("MY_EDGE_UPSTREAM_API: no address"), "{e}");
        }
    }

    #[test]
    fn the_kernel_relay_can_be_turned_off_in_the_file() {
        let mut c = ProxyConfig::declared(&["0.0.0.0:80"], None, None);
        assert_eq!(
            c.splice, None,
            "the engine's default (on) unless the file says"
        );
        c.apply_file_text("edge.toml", "splice = false\n", UPSTREAMS)
            .unwrap();
        assert_eq!(c.splice, Some(false));
        let e = c
            .apply_file_text("edge.toml", "splice = \"no\"\n", UPSTREAMS)
            .unwrap_err();
        assert!(e.0.contains("line 1") && e.0.contains("splice"), "{e}");
    }

    #[test]
    fn runtime_layout_from_the_file() {
        let mut c = ProxyConfig::declared(&["0.0.0.0:80"], None, None);
        assert_eq!(c.runtime, None);
        c.apply_file_text("edge.toml", "runtime = \"per_core\"\n", UPSTREAMS)
            .unwrap();
        assert_eq!(c.runtime, Some(crate::server::RuntimeLayout::PerCore));
        let e = c
            .apply_file_text(
                "edge.toml",
                "threads = 2\nruntime = \"per_thread\"\n",
                UPSTREAMS,
            )
            .unwrap_err();
        assert!(
            e.0.starts_with("edge.toml:2: key `runtime`: unknown runtime layout `per_thread`"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides() {
        let mut c = ProxyConfig::default();
        c.apply_env("my-edge", UPSTREAMS, |k| match k {
            "MY_EDGE_UPSTREAM_API" => Some("127.0.0.1:5, 127.0.0.1:6".into()),
            "MY_EDGE_LISTEN" => Some("127.0.0.1:7".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.upstream_addrs["Api"], ["127.0.0.1:5", "127.0.0.1:6"]);
        assert_eq!(c.listen, ["127.0.0.1:7"]);
        let e = c
            .apply_env("my-edge", UPSTREAMS, |k| {
                (k == "MY_EDGE_UPSTREAM_API").then(|| "nope".into())
            })
            .unwrap_err();
        assert!(e.0.contains("MY_EDGE_UPSTREAM_API"));
    }
}
