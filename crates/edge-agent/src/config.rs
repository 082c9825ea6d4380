//! The agent binary's configuration: a TOML file, then environment variables, then
//! flags, each overriding the one before. Every field has a default that runs, except
//! the device's identity, which a real device must be given.

use std::path::PathBuf;

use serde::Deserialize;

use crate::settings::Settings;

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
