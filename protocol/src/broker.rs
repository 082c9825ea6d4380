//! Brokers as both sides reach them: the address as written, `mqtt://host[:port]`
//! (port 1883 by default) or `mqtts://host[:port]` (TLS, port 8883 by default), and the
//! [`Endpoint`] a session connects to, with its CA bundle and credentials.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Host name or address (IPv6 in brackets, as written).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the connection uses TLS (`mqtts://`).
    pub tls: bool,
}

/// Why a broker URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    /// Neither `mqtt://` nor `mqtts://`.
    #[error("{0:?}: expected mqtt://host:port or mqtts://host:port")]
    Scheme(String),
    /// The port is not a number from 1 to 65535.
    #[error("{url:?}: bad port {port:?}")]
    Port {
        /// The URL as given.
        url: String,
        /// The port text.
        port: String,
    },
    /// Nothing between the scheme and the port.
    #[error("{0:?}: no host")]
    NoHost(String),
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(BrokerUrlError::Scheme(url.to_owned()));
        };
        let rest = rest.trim_end_matches('/');
        // A colon after an IPv6 literal's closing bracket (or in a plain host) names the port.
        let port_at = match rest.rfind(']') {
            Some(close) => rest[close..].find(':').map(|i| close + i),
            None => rest.rfind(':'),
        };
        let (host, port) = match port_at {
            Some(i) => {
                let p = &rest[i + 1..];
                let port = p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| {
                    BrokerUrlError::Port {
                        url: url.to_owned(),
                        port: p.to_owned(),
                    }
                })?;
                (&rest[..i], port)
            }
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(BrokerUrlError::NoHost(url.to_owned()));
        }
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

/// A broker to connect to: where, the CA bundle (PEM) when it speaks TLS, and the
/// credentials when it wants them.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub url: BrokerUrl,
    /// The CA bundle for `mqtts://`.
    pub ca_pem: Option<Vec<u8>>,
    /// Username and password.
    pub credentials: Option<Credentials>,
}

/// A username and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Why an endpoint cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// `mqtts://` without a CA bundle.
    #[error("{0} uses TLS: a CA bundle for the broker is needed")]
    NoCa(String),
    /// The CA bundle is unreadable.
    #[error("reading the CA bundle {}: {source}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl Endpoint {
    /// An endpoint without CA bundle or credentials (yet).
    pub fn new(url: BrokerUrl) -> Self {
        Endpoint {
            url,
            ca_pem: None,
            credentials: None,
        }
    }

    /// With credentials, when a username is given (the password defaults to empty).
    pub fn with_credentials(mut self, username: Option<String>, password: Option<String>) -> Self {
        self.credentials = username.map(|username| Credentials {
            username,
            password: password.unwrap_or_default(),
        });
        self
    }

    /// With the CA bundle read from `path`, which TLS needs and plain MQTT ignores.
    pub fn with_ca_file(mut self, path: Option<&Path>) -> Result<Self, EndpointError> {
        if !self.url.tls {
            return Ok(self);
        }
        let path = path.ok_or_else(|| EndpointError::NoCa(self.url.to_string()))?;
        let pem = std::fs::read(path).map_err(|source| EndpointError::Ca {
            path: path.to_owned(),
            source,
        })?;
        self.ca_pem = Some(pem);
        Ok(self)
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        format!("{}:{}", self.url.host, self.url.port)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.to_string())
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password never reaches a log.
        write!(f, "Credentials({:?}, ***)", self.username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BrokerUrl, BrokerUrlError> {
        s.parse()
    }

    #[test]
    fn schemes_ports_and_defaults() {
        let u = parse("mqtt://127.0.0.1:18830").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("127.0.0.1", 18830, false)
        );
        assert_eq!(parse("mqtt://broker").unwrap().port, 1883);
        let t = parse("mqtts://broker.example/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("broker.example", 8883, true)
        );
        assert_eq!(parse("mqtts://[::1]:8884").unwrap().host, "[::1]");
        assert_eq!(parse("mqtt://[::1]").unwrap().port, 1883);
        assert_eq!(t.to_string(), "mqtts://broker.example:8883");
        assert_eq!(parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(matches!(parse("tcp://h:1"), Err(BrokerUrlError::Scheme(_))));
        assert!(matches!(parse("h:1883"), Err(BrokerUrlError::Scheme(_))));
        assert!(matches!(
            parse("mqtt://h:x"),
            Err(BrokerUrlError::Port { .. })
        ));
        assert!(matches!(
            parse("mqtt://h:0"),
            Err(BrokerUrlError::Port { .. })
        ));
        assert!(matches!(
            parse("mqtt://h:70000"),
            Err(BrokerUrlError::Port { .. })
        ));
        assert!(matches!(
            parse("mqtt://:1883"),
            Err(BrokerUrlError::NoHost(_))
        ));
        let e = parse("http://h").unwrap_err().to_string();
        assert!(e.contains("expected mqtt://host:port"), "{e}");
    }

    #[test]
    fn an_endpoint_reads_its_ca_only_for_tls_and_hides_its_password() {
        let plain = Endpoint::new(parse("mqtt://h").unwrap())
            .with_ca_file(None)
            .unwrap()
            .with_credentials(Some("u".into()), Some("secret".into()));
        assert_eq!(plain.address(), "h:1883");
        assert!(plain.ca_pem.is_none());
        assert!(!format!("{plain:?}").contains("secret"));
        let tls = Endpoint::new(parse("mqtts://h").unwrap());
        assert!(matches!(
            tls.clone().with_ca_file(None),
            Err(EndpointError::NoCa(_))
        ));
        let missing = tls.clone().with_ca_file(Some(Path::new("/no/such/ca.pem")));
        assert!(matches!(missing, Err(EndpointError::Ca { .. })));
        let dir = std::env::temp_dir().join(format!("fleet-ca-{}", std::process::id()));
        std::fs::write(&dir, b"PEM").unwrap();
        let read = tls.with_ca_file(Some(&dir)).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(read.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(
            Endpoint::new(parse("mqtt://h").unwrap())
                .with_credentials(None, Some("x".into()))
                .credentials,
            None
        );
    }
}
