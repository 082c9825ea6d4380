//! The addresses of the real services, from the environment the test command sets.

use std::time::Duration;

/// How to get the services, for failure messages.
const HOW: &str = "Run the suite with `scripts/test.sh`, which installs and starts \
                   every service on loopback, or export the variable for a server of your own";

fn var(name: &str, service: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("{name} is not set: this test needs {service}. {HOW}."),
    }
}

/// An MQTT broker listener.
#[derive(Debug, Clone)]
pub struct Mqtt {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Mqtt {
    fn from_url(name: &str, url: &str) -> Mqtt {
        let parsed: protocol::BrokerUrl = url
            .parse()
            .unwrap_or_else(|e| panic!("{name}={url} must look like mqtt://HOST:PORT: {e}"));
        Mqtt {
            host: parsed.host,
            port: parsed.port,
        }
    }
}

/// Mosquitto's anonymous listener (MQTT 3.1.1 and 5).
pub fn mqtt() -> Mqtt {
    const NAME: &str = "FLEET_TEST_MQTT_URL";
    Mqtt::from_url(NAME, &var(NAME, "the Mosquitto MQTT broker"))
}

/// Mosquitto's listener that requires a password and enforces the device ACL, with the
/// password every test user shares. Users: `ingest` (reads all device channels, writes
/// commands) and the devices `dev-0001` to `dev-0004` (each only its own topics).
pub fn mqtt_with_auth() -> (Mqtt, String) {
    const NAME: &str = "FLEET_TEST_MQTT_AUTH_URL";
    let m = Mqtt::from_url(NAME, &var(NAME, "the Mosquitto MQTT broker with ACLs"));
    (
        m,
        var(
            "FLEET_TEST_MQTT_PASSWORD",
            "the Mosquitto test users' password",
        ),
    )
}

/// PostgreSQL connection URL (`postgres://user:pass@host:port/db`).
pub fn postgres_url() -> String {
    var("FLEET_TEST_PG_URL", "PostgreSQL")
}

/// A new, empty database of its own in the shared PostgreSQL server, for a test whose
/// figures range over the whole store (a model gate, a report) and so must not see other
/// tests' rows. Returns its connection URL.
pub async fn postgres_database(prefix: &str) -> String {
    use sqlx::Connection;
    let url = postgres_url();
    let name = crate::unique(prefix).replace('-', "_").to_lowercase();
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL at FLEET_TEST_PG_URL: {e}"));
    // The name is ours: letters, digits and underscores from `unique`.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    format!("{base}/{name}")
}

/// An InfluxDB v2 write-API server (VictoriaMetrics in the test command).
#[derive(Debug, Clone)]
pub struct Influx {
    /// Base URL, such as `http://127.0.0.1:18428`.
    pub url: String,
    /// Organisation to write to.
    pub org: String,
    /// Bucket to write to.
    pub bucket: String,
    /// API token.
    pub token: String,
}

/// The InfluxDB v2 write-API server.
pub fn influx() -> Influx {
    const SERVICE: &str = "an InfluxDB v2 write-API server (VictoriaMetrics)";
    Influx {
        url: var("FLEET_TEST_INFLUX_URL", SERVICE),
        org: var("FLEET_TEST_INFLUX_ORG", SERVICE),
        bucket: var("FLEET_TEST_INFLUX_BUCKET", SERVICE),
        token: var("FLEET_TEST_INFLUX_TOKEN", SERVICE),
    }
}

/// How long a test waits for a service before it fails.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(20);

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(
        expected = "FLEET_TEST_NEVER_SET is not set: this test needs PostgreSQL. Run the suite with `scripts/test.sh`"
    )]
    fn a_missing_service_fails_loudly_naming_it() {
        super::var("FLEET_TEST_NEVER_SET", "PostgreSQL");
    }

    #[test]
    fn parses_mqtt_urls() {
        let m = super::Mqtt::from_url("X", "mqtt://127.0.0.1:18830");
        assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 18830));
    }

    #[test]
    #[should_panic(expected = "must look like mqtt://HOST:PORT")]
    fn rejects_other_urls() {
        super::Mqtt::from_url("X", "tcp://127.0.0.1:1883");
    }
}
