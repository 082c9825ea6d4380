//! MQTT topics: `fleet/{tenant}/{device}/{channel}`.
//!
//! | channel     | direction      | QoS | retained |
//! |-------------|----------------|-----|----------|
//! | `heartbeat` | device → cloud | 1   | no       |
//! | `event`     | device → cloud | 1   | no       |
//! | `state`     | device → cloud | 1   | yes (birth, and the Last Will that marks death) |
//! | `cmd`       | cloud → device | 1   | no       |
//! | `ack`       | device → cloud | 1   | no       |

use std::fmt;
use std::str::FromStr;

use crate::ids::{DeviceId, IdError, TenantId};

/// The first level of every topic of this protocol.
pub const ROOT: &str = "fleet";

/// The QoS every message of this protocol is published with.
pub const QOS: u8 = 1;

/// The kind of traffic a topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Periodic aggregated telemetry.
    Heartbeat,
    /// Immediate events (unexpected reboot, crash, battery drop, ...).
    Event,
    /// Retained liveness: birth on connect, death by Last Will.
    State,
    /// Cloud-to-device commands.
    Command,
    /// The device's acknowledgements of commands.
    Ack,
}

/// Who publishes on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The device publishes, the cloud subscribes.
    DeviceToCloud,
    /// The cloud publishes, the device subscribes.
    CloudToDevice,
}

impl Channel {
    /// Every channel, in topic-table order.
    pub const ALL: [Channel; 5] = [
        Channel::Heartbeat,
        Channel::Event,
        Channel::State,
        Channel::Command,
        Channel::Ack,
    ];

    /// The channel's last topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Heartbeat => "heartbeat",
            Channel::Event => "event",
            Channel::State => "state",
            Channel::Command => "cmd",
            Channel::Ack => "ack",
        }
    }

    /// Whether messages on this channel are published with the retain flag.
    pub fn retained(self) -> bool {
        self == Channel::State
    }

    /// Who publishes on this channel.
    pub fn direction(self) -> Direction {
        match self {
            Channel::Command => Direction::CloudToDevice,
            _ => Direction::DeviceToCloud,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| TopicError::UnknownChannel(s.to_owned()))
    }
}

/// Why a topic string is not one of this protocol's topics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The first level is not [`ROOT`].
    #[error("topic must start with `{ROOT}/`")]
    WrongRoot,
    /// The topic does not have exactly four levels.
    #[error("topic has {0} levels; expected 4: {ROOT}/{{tenant}}/{{device}}/{{channel}}")]
    WrongLevelCount(usize),
    /// The last level names no channel.
    #[error("unknown channel `{0}`; expected one of heartbeat, event, state, cmd, ack")]
    UnknownChannel(String),
    /// The tenant level is not a valid tenant id.
    #[error("bad tenant level: {0}")]
    Tenant(IdError),
    /// The device level is not a valid device id.
    #[error("bad device level: {0}")]
    Device(IdError),
    /// A shared-subscription group name is not valid.
    #[error("bad shared-subscription group: {0}")]
    ShareGroup(IdError),
}

/// A parsed topic of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    /// The fleet operator.
    pub tenant: TenantId,
    /// The device the topic belongs to.
    pub device: DeviceId,
    /// What the topic carries.
    pub channel: Channel,
}

impl Topic {
    /// A topic for a device and channel.
    pub fn new(tenant: TenantId, device: DeviceId, channel: Channel) -> Self {
        Topic {
            tenant,
            device,
            channel,
        }
    }

    /// Parses a topic string, yielding typed ids.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        let mut levels = s.split('/');
        let root = levels.next();
        let (tenant, device, channel, rest) =
            (levels.next(), levels.next(), levels.next(), levels.next());
        if root != Some(ROOT) {
            return Err(TopicError::WrongRoot);
        }
        let (Some(tenant), Some(device), Some(channel), None) = (tenant, device, channel, rest)
        else {
            return Err(TopicError::WrongLevelCount(s.split('/').count()));
        };
        Ok(Topic {
            tenant: TenantId::new(tenant).map_err(TopicError::Tenant)?,
            device: DeviceId::new(device).map_err(TopicError::Device)?,
            channel: channel.parse()?,
        })
    }
}

impl FromStr for Topic {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Topic::parse(s)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/{}/{}", self.tenant, self.device, self.channel)
    }
}

/// A subscription filter for one channel of every device, of one tenant or of all.
pub fn channel_filter(channel: Channel, tenant: Option<&TenantId>) -> String {
    match tenant {
        Some(t) => format!("{ROOT}/{t}/+/{channel}"),
        None => format!("{ROOT}/+/+/{channel}"),
    }
}

/// The filters cloud ingest subscribes to: every device-to-cloud channel.
pub fn ingest_filters(tenant: Option<&TenantId>) -> Vec<String> {
    Channel::ALL
        .into_iter()
        .filter(|c| c.direction() == Direction::DeviceToCloud)
        .map(|c| channel_filter(c, tenant))
        .collect()
}

/// Wraps a filter in an MQTT 5 shared subscription, `$share/{group}/{filter}`, so that
/// replicas in one group split the messages between them.
pub fn shared_filter(group: &str, filter: &str) -> Result<String, TopicError> {
    // A group name is one topic level with no wildcards: the id charset fits.
    crate::ids::check_name("share group", group, 64).map_err(TopicError::ShareGroup)?;
    Ok(format!("$share/{group}/{filter}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(t: &str, d: &str, c: Channel) -> Topic {
        Topic::new(t.parse().unwrap(), d.parse().unwrap(), c)
    }

    #[test]
    fn formats_and_parses_every_channel() {
        for c in Channel::ALL {
            let t = topic("acme", "dev-1", c);
            let s = t.to_string();
            assert_eq!(s, format!("fleet/acme/dev-1/{}", c.as_str()));
            assert_eq!(Topic::parse(&s).unwrap(), t);
        }
    }

    #[test]
    fn rejects_malformed_topics() {
        assert_eq!(
            Topic::parse("other/acme/d/event"),
            Err(TopicError::WrongRoot)
        );
        assert_eq!(
            Topic::parse("fleet/acme/d"),
            Err(TopicError::WrongLevelCount(3))
        );
        assert_eq!(
            Topic::parse("fleet/acme/d/event/x"),
            Err(TopicError::WrongLevelCount(5))
        );
        assert_eq!(
            Topic::parse("fleet/acme/d/telemetry"),
            Err(TopicError::UnknownChannel("telemetry".into()))
        );
        assert!(matches!(
            Topic::parse("fleet/acme/+/event"),
            Err(TopicError::Device(IdError::BadChar { ch: '+', .. }))
        ));
        assert!(matches!(
            Topic::parse("fleet//d/event"),
            Err(TopicError::Tenant(IdError::Empty { .. }))
        ));
    }

    #[test]
    fn only_state_is_retained_and_only_cmd_flows_down() {
        for c in Channel::ALL {
            assert_eq!(c.retained(), c == Channel::State);
            assert_eq!(
                c.direction() == Direction::CloudToDevice,
                c == Channel::Command
            );
        }
    }

    #[test]
    fn ingest_filters_cover_device_channels_only() {
        let all = ingest_filters(None);
        assert_eq!(
            all,
            [
                "fleet/+/+/heartbeat",
                "fleet/+/+/event",
                "fleet/+/+/state",
                "fleet/+/+/ack"
            ]
        );
        let acme: TenantId = "acme".parse().unwrap();
        assert_eq!(ingest_filters(Some(&acme))[0], "fleet/acme/+/heartbeat");
    }

    #[test]
    fn shared_filter_validates_group() {
        assert_eq!(
            shared_filter("ingest", "fleet/+/+/event").unwrap(),
            "$share/ingest/fleet/+/+/event"
        );
        assert!(matches!(
            shared_filter("a/b", "fleet/+/+/event"),
            Err(TopicError::ShareGroup(IdError::BadChar {
                kind: "share group",
                ..
            }))
        ));
    }
}
