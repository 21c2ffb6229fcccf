//! Broker URLs: `mqtt://[user[:password]@]host[:port]`, `mqtts://…` (TLS,
//! default port 8883), and MQTT over WebSocket for agents behind HTTP
//! proxies: `ws://host[:port][/path]` and `wss://…` (TLS; default ports 80
//! and 443 as for any web URL, default path `/mqtt`).

use std::fmt;
use std::str::FromStr;

/// Longest URL accepted (a guard against pasting a file into a flag).
const MAX_URL_LEN: usize = 2048;

/// Transport named by a URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain MQTT over TCP (`mqtt://`, default port 1883).
    Mqtt,
    /// MQTT over TLS (`mqtts://`, default port 8883).
    Mqtts,
    /// MQTT over WebSocket (`ws://`, default port 80).
    Ws,
    /// MQTT over WebSocket over TLS (`wss://`, default port 443).
    Wss,
}

impl Scheme {
    /// Whether the transport is TLS (`mqtts://`, `wss://`).
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    /// The URL scheme's name.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// A parsed broker address.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The HTTP path of a WebSocket URL (`/mqtt` unless given); empty for
    /// `mqtt://` and `mqtts://`, where a path means nothing and is ignored.
    pub path: String,
    /// Optional MQTT user name.
    pub username: Option<String>,
    /// Optional MQTT password (never printed).
    pub password: Option<String>,
}

/// Why a broker URL was rejected. The message quotes the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Empty string.
    #[error("broker URL is empty")]
    Empty,
    /// Longer than [`MAX_URL_LEN`].
    #[error("broker URL is {0} bytes long, limit {MAX_URL_LEN}")]
    TooLong(usize),
    /// A scheme this build cannot speak.
    #[error(
        "broker URL {url:?}: {scheme}:// needs a bot built with the `websocket` feature (the full build has it)"
    )]
    Unsupported {
        /// The whole URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A scheme we do not know.
    #[error(
        "broker URL {url:?}: unknown scheme {scheme:?}; use mqtt://, mqtts://, ws:// or wss://HOST:PORT"
    )]
    UnknownScheme {
        /// The whole URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// Missing or malformed host.
    #[error("broker URL {url:?}: {reason}")]
    BadHost {
        /// The whole URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Port not a number in 1..=65535.
    #[error("broker URL {url:?}: port {port:?} is not a number in 1..65535")]
    BadPort {
        /// The whole URL.
        url: String,
        /// The port text.
        port: String,
    },
}

impl FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(UrlError::Empty);
        }
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong(s.len()));
        }
        let url = s.to_owned();
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("mqtt".to_owned(), s),
        };
        let (scheme_kind, default_port) = match scheme.as_str() {
            "mqtt" | "tcp" => (Scheme::Mqtt, 1883),
            "mqtts" | "ssl" | "tls" => (Scheme::Mqtts, 8883),
            "ws" | "wss" if !cfg!(feature = "websocket") => {
                return Err(UrlError::Unsupported { url, scheme });
            }
            "ws" => (Scheme::Ws, 80),
            "wss" => (Scheme::Wss, 443),
            _ => return Err(UrlError::UnknownScheme { url, scheme }),
        };
        // The path matters to a WebSocket endpoint; for plain MQTT it is
        // dropped ("mqtt://host:1883/" is common in configs).
        let (rest, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = match scheme_kind {
            Scheme::Ws | Scheme::Wss if path.is_empty() || path == "/" => "/mqtt".to_owned(),
            Scheme::Ws | Scheme::Wss => {
                if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(UrlError::BadHost {
                        url,
                        reason: "path contains whitespace",
                    });
                }
                path.to_owned()
            }
            Scheme::Mqtt | Scheme::Mqtts => String::new(),
        };
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(user.to_owned()), Some(pass.to_owned())),
                None => (Some(u.to_owned()), None),
            },
        };
        let (host, port_text) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(UrlError::BadHost {
                    url,
                    reason: "unclosed '[' in IPv6 address",
                });
            };
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => {
                    return Err(UrlError::BadHost {
                        url,
                        reason: "junk after IPv6 address",
                    });
                }
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::BadHost {
                url,
                reason: "no host name",
            });
        }
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadHost {
                url,
                reason: "host name contains whitespace",
            });
        }
        let port = match port_text {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(UrlError::BadPort {
                        url,
                        port: p.to_owned(),
                    });
                }
            },
        };
        Ok(BrokerUrl {
            scheme: scheme_kind,
            host: host.to_owned(),
            port,
            path,
            username,
            password,
        })
    }
}

impl BrokerUrl {
    /// This URL logging in as `username` with `password`, unless it names
    /// a user itself (then it is kept as it is).
    pub fn or_credentials(&self, username: &str, password: &str) -> BrokerUrl {
        let mut u = self.clone();
        if u.username.is_none() {
            u.username = Some(username.to_owned());
            u.password = Some(password.to_owned());
        }
        u
    }

    /// The address handed to the MQTT client library: `host` for TCP and
    /// TLS, the whole `ws[s]://host:port/path` (no credentials) for WebSocket.
    pub fn client_address(&self) -> String {
        match self.scheme {
            Scheme::Mqtt | Scheme::Mqtts => self.host.clone(),
            Scheme::Ws | Scheme::Wss => format!("{}{}", self.authority(), self.path),
        }
    }

    /// `scheme://host:port` with IPv6 hosts in brackets, no credentials.
    fn authority(&self) -> String {
        let scheme = self.scheme.name();
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerUrl {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.name();
        let user = match &self.username {
            Some(u) => format!("{u}@"),
            None => String::new(),
        };
        if self.host.contains(':') {
            write!(
                f,
                "{scheme}://{user}[{}]:{}{}",
                self.host, self.port, self.path
            )
        } else {
            write!(
                f,
                "{scheme}://{user}{}:{}{}",
                self.host, self.port, self.path
            )
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> BrokerUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepted_forms() {
        let u = ok("mqtt://127.0.0.1:1884");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1884));
        assert_eq!(ok("mqtt://broker").port, 1883);
        assert_eq!(ok("broker:42").port, 42);
        assert_eq!(ok("tcp://b:1/").host, "b");
        let v6 = ok("mqtt://[::1]:1999");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 1999));
        assert_eq!(v6.to_string(), "mqtt://[::1]:1999");
        let tls = ok("mqtts://broker.example");
        assert_eq!((tls.scheme, tls.port), (Scheme::Mqtts, 8883));
        assert_eq!(tls.to_string(), "mqtts://broker.example:8883");
        assert_eq!(ok("ssl://b:1").scheme, Scheme::Mqtts);
        let cred = ok("mqtt://alice:s3cret@h:7");
        assert_eq!(cred.username.as_deref(), Some("alice"));
        assert_eq!(cred.password.as_deref(), Some("s3cret"));
        assert!(
            !cred.to_string().contains("s3cret"),
            "password never printed"
        );
        assert!(
            !format!("{cred:?}").contains("s3cret"),
            "password never printed"
        );
    }

    #[test]
    fn websocket_urls() {
        if !cfg!(feature = "websocket") {
            let e = "ws://h".parse::<BrokerUrl>().expect_err("no websocket");
            assert!(e.to_string().contains("websocket"), "{e}");
            return;
        }
        let ws = ok("ws://proxy.example");
        assert_eq!(
            (ws.scheme, ws.port, ws.path.as_str()),
            (Scheme::Ws, 80, "/mqtt")
        );
        assert_eq!(ws.client_address(), "ws://proxy.example:80/mqtt");
        let wss = ok("wss://u:pw@[::1]:9443/bus/mqtt");
        assert_eq!((wss.scheme, wss.port), (Scheme::Wss, 9443));
        assert!(wss.scheme.is_tls() && !ws.scheme.is_tls());
        assert_eq!(wss.client_address(), "wss://[::1]:9443/bus/mqtt");
        assert_eq!(wss.to_string(), "wss://u@[::1]:9443/bus/mqtt");
        assert_eq!(ok("wss://h:1/").path, "/mqtt");
        assert_eq!(ok("mqtt://h:1/ignored").client_address(), "h");
        let e = "ws://h/a b".parse::<BrokerUrl>().expect_err("space");
        assert!(e.to_string().contains("whitespace"), "{e}");
    }

    #[test]
    fn rejected_forms_name_the_bad_part() {
        let cases = [
            ("", "empty"),
            ("mqtt://", "no host"),
            ("mqtt://h:0", "port \"0\""),
            ("mqtt://h:99999", "port \"99999\""),
            ("mqtt://h:x", "port \"x\""),
            ("foo://h", "unknown scheme \"foo\""),
            ("mqtt://[::1", "unclosed"),
            ("mqtt://a b:1", "whitespace"),
        ];
        for (input, want) in cases {
            let err = input.parse::<BrokerUrl>().expect_err(input).to_string();
            assert!(err.contains(want), "{input:?} gave {err:?}, want {want:?}");
        }
        let long = "mqtt://".to_owned() + &"h".repeat(5000);
        assert!(
            long.parse::<BrokerUrl>()
                .expect_err("long")
                .to_string()
                .contains("limit")
        );
    }
}
