//! Configuration: a TOML file, then `FLEET_*` environment variables and command-line
//! flags (see `cloud-ingest serve --help`). Every field has a default that runs on one
//! machine; unknown keys are refused so a typo does not pass silently. The
//! configuration builds the runtime objects (pipeline settings, workers); runtime code
//! never reads it again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::retry::Backoff;
use serde::{Deserialize, Serialize};

use crate::effects::commands::CommandWorker;
use crate::effects::export::{Exporter, InfluxTarget};
use crate::effects::webhooks::WebhookWorker;
use crate::ingest::PipelineSettings;
use crate::policy::PolicyConfig;
use crate::store::SqliteSync;

/// `mqtt.max_packet_bytes` by default: 256 KiB, above the 128 KiB `message_size_limit`
/// docs/ingest.md recommends for the broker.
pub const DEFAULT_MAX_PACKET_BYTES: usize = 256 * 1024;

/// The least `mqtt.max_packet_bytes` allowed: every valid message and its topic fit.
pub fn min_packet_bytes() -> usize {
    protocol::Limits::default().max_payload_bytes + 4096
}

/// `mqtt.url` by default: where the in-process broker listens.
pub const DEFAULT_MQTT_URL: &str = "mqtt://127.0.0.1:1883";

/// `http.listen` by default: the desk, the API and the operator endpoints.
pub const DEFAULT_HTTP_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The MQTT session.
    pub mqtt: MqttConfig,
    /// The operational store.
    pub store: StoreConfig,
    /// Raw telemetry to InfluxDB; off when absent.
    pub influx: Option<InfluxConfig>,
    /// The risk model.
    pub model: ModelConfig,
    /// Batching and scoring.
    pub ingest: IngestConfig,
    /// What to do about risky devices.
    pub policy: PolicyConfig,
    /// Endpoints told about every new ticket.
    pub webhooks: Vec<WebhookConfig>,
    /// `/healthz` and `/metrics`.
    pub http: HttpConfig,
    /// How long rows are kept.
    pub retention: crate::retention::RetentionConfig,
    /// The desks' settings.
    pub desk: DeskConfig,
    /// The recycling desk's grading, settlement and routing rules.
    pub tradein: crate::tradein::Rules,
    /// The cohort watch.
    pub cohorts: crate::cohorts::watch::WatchConfig,
}

/// `[desk]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeskConfig {
    /// The address customers reach the desk at, for their progress links
    /// (`https://service.example`); the request's host when unset.
    pub public_url: Option<String>,
    /// Days a customer's progress link works.
    pub progress_link_days: u32,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            public_url: None,
            progress_link_days: 30,
        }
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://HOST:PORT` or `mqtts://HOST:PORT`.
    pub url: String,
    /// Run an in-process broker listening on `url`'s address and connect to it. Unset,
    /// it does so exactly when `url` is left at its default (`mqtt://127.0.0.1:1883`):
    /// `serve` with no configuration runs the whole cloud side on one machine, and
    /// naming a broker uses that broker. Needs the `embedded-broker` feature.
    pub embedded: Option<bool>,
    /// The persistent session's client id: keep it stable per replica.
    pub client_id: String,
    /// Share the subscription with other replicas in this group (`$share/GROUP/...`).
    pub share_group: Option<String>,
    /// Only this tenant's devices (all tenants when unset).
    pub tenant: Option<String>,
    /// Subscription filters instead of every device-to-cloud channel.
    pub filters: Option<Vec<String>>,
    /// Username, when the broker wants one.
    pub username: Option<String>,
    /// Password (prefer the `FLEET_MQTT_PASSWORD` variable).
    pub password: Option<String>,
    /// CA bundle (PEM) for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Keep-alive, seconds.
    pub keep_alive_s: u64,
    /// Resend an unanswered command after this many seconds (doubling).
    pub command_resend_s: u64,
    /// Largest MQTT packet read before the connection refuses it. Set it above the
    /// broker's `message_size_limit` plus 1 KiB for topic and header; ingest still
    /// recovers when handed a larger one. At least the protocol's payload limit
    /// plus 4 KiB.
    pub max_packet_bytes: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: DEFAULT_MQTT_URL.into(),
            embedded: None,
            client_id: "cloud-ingest".into(),
            share_group: None,
            tenant: None,
            filters: None,
            username: None,
            password: None,
            ca_file: None,
            keep_alive_s: 30,
            command_resend_s: 60,
            max_packet_bytes: DEFAULT_MAX_PACKET_BYTES,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER:PASS@HOST:PORT/DB`.
    pub url: String,
    /// Connections to PostgreSQL (SQLite always uses one).
    pub max_connections: u32,
    /// SQLite commit durability: `full` (survives power loss) or `normal` (survives a
    /// crash of the process).
    pub sqlite_synchronous: SqliteSync,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://data/fleet.db".into(),
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Full,
        }
    }
}

/// `[influx]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Server URL.
    pub url: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token (prefer the `FLEET_INFLUX_TOKEN` variable).
    #[serde(default)]
    pub token: String,
    /// Rows per write.
    #[serde(default = "default_influx_batch")]
    pub batch: usize,
}

fn default_influx_batch() -> usize {
    5000
}

/// `[model]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// A model artifact from `models train`; the bundled model when unset.
    pub path: Option<PathBuf>,
    /// How often the file and the model registry are checked for a new model, seconds
    /// (SIGHUP reloads the file at once).
    pub reload_check_s: u64,
    /// `[model.gate]`: what a challenger must show before it is promoted.
    pub gate: crate::registry::gate::GateConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            reload_check_s: 10,
            gate: crate::registry::gate::GateConfig::default(),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Messages per transaction at most.
    pub batch_max: usize,
    /// Wait at most this long for a batch to fill, milliseconds. Short: the broker sends
    /// only its in-flight window before acknowledgements come back, so waiting for more
    /// mostly waits for nothing; under load batches fill while the last one commits.
    pub batch_wait_ms: u64,
    /// Contributions kept in an explanation.
    pub explain_top: usize,
    /// Devices whose feature state stays in memory.
    pub cache_devices: usize,
    /// Messages frozen into a ticket as its telemetry excerpt.
    pub excerpt_messages: usize,
    /// Hours an offer stays open to the customer.
    pub offer_valid_hours: u32,
    /// Seconds a device's clock may be ahead of the cloud's; a message dated further
    /// ahead is dead-lettered as `clock_skew`.
    pub max_clock_ahead_s: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            batch_max: 500,
            batch_wait_ms: 2,
            explain_top: 5,
            cache_devices: 100_000,
            excerpt_messages: 8,
            offer_valid_hours: 7 * 24,
            max_clock_ahead_s: 600,
        }
    }
}

/// `[[webhooks]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Endpoint.
    pub url: String,
    /// HMAC-SHA256 key for the `X-Fleet-Signature` header.
    pub secret: String,
    /// Attempts before giving up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    12
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Where the desk's pages and API, `/healthz` and `/metrics` listen; off when unset.
    pub listen: Option<SocketAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: Some(SocketAddr::from(DEFAULT_HTTP_LISTEN)),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its line.
        message: String,
    },
    /// Values that do not work together.
    #[error("{0}")]
    Invalid(String),
    /// `[policy]` settings that do not work together.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// `mqtt.url` is not a broker URL.
    #[error("mqtt.url: {0}")]
    Broker(#[from] protocol::BrokerUrlError),
}

impl Config {
    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Where the in-process broker is to listen, when it runs (see `mqtt.embedded`).
    pub fn embedded_broker(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let url = self.mqtt.url.parse::<protocol::BrokerUrl>()?;
        if !self
            .mqtt
            .embedded
            .unwrap_or(self.mqtt.url == DEFAULT_MQTT_URL)
        {
            return Ok(None);
        }
        if url.tls {
            return Err(ConfigError::Invalid(
                "mqtt.embedded: the in-process broker speaks mqtt://, not mqtts://".into(),
            ));
        }
        let host = url.host.trim_start_matches('[').trim_end_matches(']');
        let ip: std::net::IpAddr = host.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "mqtt.embedded: the in-process broker listens on an IP address, not {host:?}"
            ))
        })?;
        Ok(Some(SocketAddr::new(ip, url.port)))
    }

    /// Checks values that parse but do not make sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.url.parse::<protocol::BrokerUrl>()?;
        if self.embedded_broker()?.is_some() && !cfg!(feature = "embedded-broker") {
            return Err(ConfigError::Invalid(
                "this build has no in-process broker (feature embedded-broker): name your broker with mqtt.url, or set mqtt.embedded = false to use the one at the default address".into(),
            ));
        }
        if self.mqtt.max_packet_bytes < min_packet_bytes() {
            return Err(ConfigError::Invalid(format!(
                "mqtt.max_packet_bytes must be at least {} (the protocol's payload limit plus 4 KiB), not {}",
                min_packet_bytes(),
                self.mqtt.max_packet_bytes
            )));
        }
        if self.ingest.batch_max == 0 {
            return Err(ConfigError::Invalid(
                "ingest.batch_max must be at least 1".into(),
            ));
        }
        if let Some(g) = &self.mqtt.share_group {
            protocol::topic::shared_filter(g, "x")
                .map_err(|e| ConfigError::Invalid(format!("mqtt.share_group: {e}")))?;
        }
        for w in &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "webhook url {:?} must be http(s)://",
                    w.url
                )));
            }
        }
        self.retention.validate().map_err(ConfigError::Invalid)?;
        if let Some(u) = &self.desk.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "desk.public_url {u:?} must be http(s)://"
                )));
            }
        }
        if !(1..=365).contains(&self.desk.progress_link_days) {
            return Err(ConfigError::Invalid(format!(
                "desk.progress_link_days must be 1 to 365, not {}",
                self.desk.progress_link_days
            )));
        }
        self.tradein.validate().map_err(ConfigError::Invalid)?;
        self.cohorts.validate().map_err(ConfigError::Invalid)?;
        Ok(self.policy.validate()?)
    }

    /// The scheduled cohort watch.
    pub fn watcher(&self) -> crate::cohorts::watcher::Watcher {
        crate::cohorts::watcher::Watcher {
            config: self.cohorts.clone(),
        }
    }

    /// The campaign rollout: approved campaigns' members, a batch every few seconds.
    pub fn rollout(&self) -> crate::campaigns::rollout::Rollout {
        crate::campaigns::rollout::Rollout {
            policy: self.policy.clone(),
            settings: self.pipeline_settings(),
            batch: 200,
            poll: Duration::from_secs(5),
        }
    }

    /// The retention worker.
    pub fn pruner(&self) -> crate::retention::Pruner {
        crate::retention::Pruner {
            config: self.retention.clone(),
            influx: self.influx.is_some(),
        }
    }

    /// The subscription filters this configuration asks for.
    pub fn filters(&self) -> Result<Vec<String>, ConfigError> {
        let tenant = match &self.mqtt.tenant {
            Some(t) => Some(
                protocol::TenantId::new(t.clone())
                    .map_err(|e| ConfigError::Invalid(format!("mqtt.tenant: {e}")))?,
            ),
            None => None,
        };
        let base = match &self.mqtt.filters {
            Some(f) => f.clone(),
            None => protocol::topic::ingest_filters(tenant.as_ref()),
        };
        match &self.mqtt.share_group {
            Some(g) => base
                .iter()
                .map(|f| protocol::topic::shared_filter(g, f))
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError::Invalid(format!("mqtt.share_group: {e}"))),
            None => Ok(base),
        }
    }

    /// Batch wait as a duration.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.ingest.batch_wait_ms)
    }

    /// The pipeline's settings.
    pub fn pipeline_settings(&self) -> PipelineSettings {
        PipelineSettings {
            explain_top: self.ingest.explain_top,
            export_telemetry: self.influx.is_some(),
            webhooks: self.webhooks.iter().map(|w| w.url.clone()).collect(),
            offer_valid_hours: self.ingest.offer_valid_hours,
            cache_devices: self.ingest.cache_devices,
            excerpt_messages: self.ingest.excerpt_messages,
            clock_ahead_ms: self.ingest.max_clock_ahead_s.saturating_mul(1000),
        }
    }

    /// The command worker: resends after `mqtt.command_resend_s`, doubling.
    pub fn command_worker(&self) -> CommandWorker {
        CommandWorker::new(
            Duration::from_secs(self.mqtt.command_resend_s.max(1)),
            Duration::from_millis(250),
        )
    }

    /// The webhook worker, when webhooks are configured.
    pub fn webhook_worker(&self) -> Option<WebhookWorker> {
        let max_attempts = self.webhooks.iter().map(|w| w.max_attempts).max()?;
        Some(WebhookWorker {
            secrets: self
                .webhooks
                .iter()
                .map(|w| (w.url.clone(), w.secret.clone()))
                .collect(),
            max_attempts,
            retry: Backoff::new(Duration::from_millis(500), Duration::from_secs(3600)),
            poll: Duration::from_millis(250),
            timeout: Duration::from_secs(10),
        })
    }

    /// The SLA breach recorder (announcing to every configured webhook).
    pub fn breach_recorder(&self) -> crate::effects::breaches::BreachRecorder {
        crate::effects::breaches::BreachRecorder {
            webhooks: self.webhooks.iter().map(|w| w.url.clone()).collect(),
            poll: Duration::from_secs(30),
            batch: 100,
            tenant: self.mqtt.tenant.clone(),
        }
    }

    /// How the desk issues customers' progress links.
    pub fn link_settings(&self) -> crate::desk::api::LinkSettings {
        crate::desk::api::LinkSettings {
            public_url: self.desk.public_url.clone(),
            valid_ms: u64::from(self.desk.progress_link_days) * 86_400_000,
        }
    }

    /// The InfluxDB exporter, when `[influx]` is set.
    pub fn exporter(&self) -> Option<Exporter> {
        let influx = self.influx.as_ref()?;
        Some(Exporter {
            target: InfluxTarget {
                url: influx.url.clone(),
                org: influx.org.clone(),
                bucket: influx.bucket.clone(),
                token: influx.token.clone(),
            },
            batch: influx.batch.max(1),
            idle: Duration::from_millis(500),
            retry: Backoff::new(Duration::from_millis(400), Duration::from_secs(30)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's `ingest.toml` is a configuration this build reads, every key known.
    #[test]
    fn the_readme_example_configuration_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("# ingest.toml")
            .expect("README.md shows an ingest.toml");
        let text = readme[start..].split("```").next().unwrap();
        let c: Config = toml::from_str(text).unwrap_or_else(|e| panic!("README ingest.toml: {e}"));
        assert_eq!(c.ingest.max_clock_ahead_s, 600);
        assert_eq!(c.retention.messages_days, 35);
        assert_eq!(c.policy.safety_repeat_hours, 24);
    }

    #[test]
    fn defaults_run_and_a_file_overrides_only_what_it_names() {
        let c: Config = toml::from_str(
            r#"
            [mqtt]
            url = "mqtt://broker:1884"
            share_group = "ingest"
            [policy]
            cooldown_days = 3
            [[webhooks]]
            url = "https://crm.example/hook"
            secret = "s3"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.mqtt.keep_alive_s, 30);
        assert_eq!(c.policy.cooldown_days, 3);
        assert_eq!(c.policy.high_due_hours, 4);
        assert_eq!(c.webhooks[0].max_attempts, 12);
        let f = c.filters().unwrap();
        assert!(
            f.iter().all(|f| f.starts_with("$share/ingest/fleet/")),
            "{f:?}"
        );
        assert_eq!(f.len(), 4);
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_broker_is_embedded_by_default_and_not_once_one_is_named() {
        let mut c = Config::default();
        assert_eq!(
            c.embedded_broker().unwrap(),
            Some("127.0.0.1:1883".parse().unwrap())
        );
        assert_eq!(c.http.listen, Some("127.0.0.1:8080".parse().unwrap()));
        c.mqtt.url = "mqtt://mosquitto.internal:1883".into();
        assert_eq!(c.embedded_broker().unwrap(), None);
        c.mqtt.embedded = Some(true);
        let e = c.embedded_broker().unwrap_err().to_string();
        assert!(e.contains("IP address"), "{e}");
        c.mqtt.url = "mqtt://[::1]:1884".into();
        assert_eq!(
            c.embedded_broker().unwrap(),
            Some("[::1]:1884".parse().unwrap())
        );
        c.mqtt.url = DEFAULT_MQTT_URL.into();
        c.mqtt.embedded = Some(false);
        assert_eq!(c.embedded_broker().unwrap(), None);
    }

    #[test]
    fn typos_and_nonsense_are_refused_by_name() {
        let e = toml::from_str::<Config>("[mqtt]\nurll = \"x\"").unwrap_err();
        assert!(e.to_string().contains("urll"), "{e}");
        let mut c = Config::default();
        c.mqtt.url = "tcp://x".into();
        assert!(c.validate().unwrap_err().to_string().contains("mqtt://"));
        let mut c = Config::default();
        c.mqtt.share_group = Some("a/b".into());
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.mqtt.max_packet_bytes = 10_000;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("mqtt.max_packet_bytes must be at least"), "{e}");
        c.mqtt.max_packet_bytes = min_packet_bytes();
        c.validate().unwrap();
        let mut c = Config::default();
        c.desk.public_url = Some("service.example".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("desk.public_url"), "{e}");
        let mut c = Config::default();
        c.desk.progress_link_days = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("desk.progress_link_days"), "{e}");
        let e = toml::from_str::<Config>("[desk]\nlink_days = 3").unwrap_err();
        assert!(e.to_string().contains("link_days"), "{e}");
        // The cohort watch and the early-life rule.
        let e = toml::from_str::<Config>("[cohorts]\nfdr_level = 0.1").unwrap_err();
        assert!(e.to_string().contains("fdr_level"), "{e}");
        let c: Config = toml::from_str("[cohorts]\nfdr = 0.9").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cohorts.fdr"), "{e}");
        let c: Config = toml::from_str("[cohorts]\nearly_windows_days = [30, 0]").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("cohorts.early_windows_days"), "{e}");
        let e =
            toml::from_str::<Config>("[policy.early_life]\ncore_parts = [\"screen\"]").unwrap_err();
        assert!(e.to_string().contains("screen"), "{e}");
        let c: Config = toml::from_str("[policy.early_life]\ndays = 400").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("policy.early_life.days"), "{e}");
    }
}
