//! The agent binary's configuration: a TOML file, then environment variables, then
//! flags, each overriding the one before. Every field has a default that runs, except
//! the device's identity, which a real device must be given.

use std::path::PathBuf;

use protocol::broker::{BrokerUrl, Endpoint, EndpointError};
use protocol::ids::TenantId;
use serde::Deserialize;

use crate::session::SessionConfig;
use crate::settings::Settings;

/// The broker flags every binary that connects a device shares.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct BrokerArgs {
    /// Broker URL: mqtt://host:port or mqtts://host:port [default: mqtt://127.0.0.1:1883].
    #[arg(long, env = "FLEET_MQTT_URL")]
    pub broker: Option<String>,
    /// Broker username.
    #[arg(long, env = "FLEET_MQTT_USERNAME")]
    pub username: Option<String>,
    /// Broker password.
    #[arg(long, env = "FLEET_MQTT_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// CA bundle (PEM) for mqtts://; the system roots are not used.
    #[arg(long, env = "FLEET_MQTT_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Why the broker settings do not make a session.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The URL is not one we can connect to.
    #[error("broker: {0}")]
    Url(#[from] protocol::BrokerUrlError),
    /// TLS without a CA bundle.
    #[error("{0} uses TLS: give the CA bundle with --tls-ca (or tls_ca in the file)")]
    NoCa(String),
    /// The CA bundle is unreadable.
    #[error("reading the CA bundle {path}: {source}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl BrokerArgs {
    /// These flags, with what they leave unset taken from the file.
    pub fn or_file(&self, file: &FileConfig) -> BrokerArgs {
        BrokerArgs {
            broker: self.broker.clone().or(file.broker.clone()),
            username: self.username.clone().or(file.username.clone()),
            password: self.password.clone().or(file.password.clone()),
            tls_ca: self.tls_ca.clone().or(file.tls_ca.clone()),
        }
    }

    /// The session these settings describe, with the CA bundle read.
    pub fn session(&self, tenant: TenantId) -> Result<SessionConfig, BrokerError> {
        let url: BrokerUrl = self
            .broker
            .as_deref()
            .unwrap_or("mqtt://127.0.0.1:1883")
            .parse()?;
        let endpoint = Endpoint::new(url)
            .with_credentials(self.username.clone(), self.password.clone())
            .with_ca_file(self.tls_ca.as_deref())
            .map_err(|e| match e {
                EndpointError::NoCa(url) => BrokerError::NoCa(url),
                EndpointError::Ca { path, source } => BrokerError::Ca { path, source },
            })?;
        Ok(SessionConfig::new(endpoint, tenant))
    }
}

/// The TOML file, all fields optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The device's id.
    pub device_id: Option<String>,
    /// The tenant (second topic level).
    pub tenant: Option<String>,
    /// Broker URL, `mqtt://host:port` or `mqtts://host:port`.
    pub broker: Option<String>,
    /// Broker username.
    pub username: Option<String>,
    /// Broker password (prefer the FLEET_MQTT_PASSWORD variable).
    pub password: Option<String>,
    /// CA bundle (PEM) for `mqtts://`; the system roots are not used.
    pub tls_ca: Option<PathBuf>,
    /// Where the state file and the spool live.
    pub state_dir: Option<PathBuf>,
    /// The file-system root the Linux backend reads (`/`; tests point it elsewhere).
    pub sysfs_root: Option<PathBuf>,
    /// What the birth message announces.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Sampling and reporting; a config command from the cloud overrides these later.
    #[serde(default)]
    pub settings: Option<Settings>,
    /// The spool.
    #[serde(default)]
    pub spool: SpoolFileConfig,
}

/// The device's self-description.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Model (SKU).
    pub model: String,
    /// phone, tablet, speaker, wearable, hub or other.
    pub device_class: String,
    /// Hardware revision.
    pub hw_revision: String,
    /// Production batch.
    pub batch: String,
    /// Firmware version.
    pub firmware: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            model: "linux-generic".into(),
            device_class: "other".into(),
            hw_revision: "unknown".into(),
            batch: "unknown".into(),
            firmware: "unknown".into(),
        }
    }
}

/// Spool sizing in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolFileConfig {
    /// Most payload bytes kept while offline.
    pub budget_bytes: u64,
    /// fsync every write (survives power loss).
    pub fsync: bool,
}

impl Default for SpoolFileConfig {
    fn default() -> Self {
        SpoolFileConfig {
            budget_bytes: 1024 * 1024,
            fsync: true,
        }
    }
}

impl FileConfig {
    /// Parses a TOML file's text.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_flags_win_over_the_file_and_tls_needs_a_ca() {
        let file =
            FileConfig::parse("broker = \"mqtt://file:1\"\nusername = \"u\"\npassword = \"p\"")
                .unwrap();
        let flags = BrokerArgs {
            broker: Some("mqtt://flag:2".into()),
            ..Default::default()
        };
        let s = flags
            .or_file(&file)
            .session(TenantId::new("t").unwrap())
            .unwrap();
        assert_eq!(s.endpoint.address(), "flag:2");
        let c = s.endpoint.credentials.expect("credentials from the file");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let tls = BrokerArgs {
            broker: Some("mqtts://h".into()),
            ..Default::default()
        };
        assert!(matches!(
            tls.session(TenantId::new("t").unwrap()),
            Err(BrokerError::NoCa(_))
        ));
        let missing = BrokerArgs {
            tls_ca: Some("/no/such/ca.pem".into()),
            ..tls
        };
        assert!(matches!(
            missing.session(TenantId::new("t").unwrap()),
            Err(BrokerError::Ca { .. })
        ));
        let bad = BrokerArgs {
            broker: Some("http://h".into()),
            ..Default::default()
        };
        assert!(matches!(
            bad.session(TenantId::new("t").unwrap()),
            Err(BrokerError::Url(_))
        ));
    }

    #[test]
    fn a_full_file_parses_and_unknown_keys_are_refused() {
        let c = FileConfig::parse(
            r#"
            device_id = "dev-0001"
            tenant = "acme"
            broker = "mqtts://broker.example:8883"
            state_dir = "/var/lib/fleet-agent"
            [identity]
            model = "phone-a12"
            device_class = "phone"
            [settings]
            sample_interval_s = 30
            heartbeat_interval_s = 1800
            [spool]
            budget_bytes = 65536
            "#,
        )
        .unwrap();
        assert_eq!(c.device_id.as_deref(), Some("dev-0001"));
        assert_eq!(c.identity.model, "phone-a12");
        assert_eq!(c.identity.firmware, "unknown");
        let s = c.settings.unwrap();
        assert_eq!((s.sample_interval_s, s.heartbeat_interval_s), (30, 1800));
        assert_eq!(
            s.over_temp_threshold_c,
            Settings::default().over_temp_threshold_c
        );
        assert_eq!(c.spool.budget_bytes, 65536);
        assert!(c.spool.fsync);
        let err = FileConfig::parse("devce_id = \"x\"").unwrap_err();
        assert!(err.to_string().contains("devce_id"), "{err}");
    }
}
