//! Broker addresses as both sides write them: `mqtt://host[:port]` (port 1883 by
//! default) or `mqtts://host[:port]` (TLS, port 8883 by default).

use std::fmt;
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
}
