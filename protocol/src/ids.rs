//! Identifiers that travel on the wire: validated once at the edge, typed everywhere after.
//!
//! Every identifier may appear as an MQTT topic level or an InfluxDB tag, so the
//! charset is deliberately narrow: ASCII letters, digits, `.`, `_`, `-` (and `+` for
//! versions). That excludes the MQTT wildcards `+`/`#` in topic ids, the level
//! separator `/` and a leading `$`, which brokers reserve.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier was being parsed.
        kind: &'static str,
    },
    /// The string is longer than allowed.
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The string holds a character outside the identifier's charset.
    #[error("{kind} contains {ch:?} at byte {pos}; allowed are {allowed}")]
    BadChar {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        pos: usize,
        /// A description of the allowed charset.
        allowed: &'static str,
    },
}

const ID_CHARS: &str = "ASCII letters, digits, '.', '_' and '-'";
const VERSION_CHARS: &str = "ASCII letters, digits, '.', '_', '-' and '+'";

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn is_version_char(c: char) -> bool {
    is_id_char(c) || c == '+'
}

/// Checks `s` as a one-level name of the id charset, reporting it as `kind`.
pub(crate) fn check_name(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    check(kind, s, max, is_id_char, ID_CHARS)
}

fn check(
    kind: &'static str,
    s: &str,
    max: usize,
    allowed: fn(char) -> bool,
    allowed_desc: &'static str,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong {
            kind,
            len: s.len(),
            max,
        });
    }
    if let Some((pos, ch)) = s.char_indices().find(|&(_, c)| !allowed(c)) {
        return Err(IdError::BadChar {
            kind,
            ch,
            pos,
            allowed: allowed_desc,
        });
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $allowed:ident, $desc:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps a string.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value, $max, $allowed, $desc)?;
                Ok(Self(value))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A device's identity, unique within its tenant; also its MQTT topic level.
    DeviceId, "device id", 64, is_id_char, ID_CHARS
);
text_id!(
    /// A fleet operator (customer of the service); the first topic level after the root.
    TenantId, "tenant id", 64, is_id_char, ID_CHARS
);
text_id!(
    /// Identifies one boot of a device (a UUID such as Linux's `boot_id` fits).
    BootId, "boot id", 64, is_id_char, ID_CHARS
);
text_id!(
    /// Identifies one cloud-to-device command; the device acknowledges it by this id.
    CommandId, "command id", 64, is_id_char, ID_CHARS
);
text_id!(
    /// The service ticket an offer belongs to.
    TicketRef, "ticket reference", 64, is_id_char, ID_CHARS
);
text_id!(
    /// A device model or SKU, such as `phone-x2-128`.
    ModelId, "model", 64, is_id_char, ID_CHARS
);
text_id!(
    /// A hardware revision, such as `rev-c`.
    HardwareRevision, "hardware revision", 64, is_version_char, VERSION_CHARS
);
text_id!(
    /// A manufacturing batch (lot) the device was built in.
    BatchId, "batch", 64, is_id_char, ID_CHARS
);
text_id!(
    /// A firmware or software version, such as `4.2.1+b77`.
    FirmwareVersion, "firmware version", 64, is_version_char, VERSION_CHARS
);
text_id!(
    /// A vendor-specific code, such as a reboot reason outside the standard table.
    VendorCode, "vendor code", 32, is_id_char, ID_CHARS
);

/// A per-device sequence number. It only ever increases, also across reboots, so
/// `(device_id, seq)` identifies a message for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The sequence number that follows this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Names one run of a device's `seq` count (schema 2): chosen at random when the
/// device starts counting from the beginning (first start, or a lost state file), so
/// `(device_id, epoch, seq)` stays unique when the count starts again. 0 is no epoch:
/// every schema-1 message.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The epoch of schema-1 messages, which carry none.
    pub const NONE: Epoch = Epoch(0);

    /// An epoch from random bits (0 is taken as 1: 0 means none).
    pub fn from_random(bits: u32) -> Epoch {
        Epoch(bits.max(1))
    }

    /// True for [`Epoch::NONE`].
    pub fn is_none(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A wall-clock instant as milliseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_unix_ms(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_ms(self) -> u64 {
        self.0
    }

    /// From a `SystemTime`; instants before the epoch clamp to it.
    pub fn from_system_time(t: std::time::SystemTime) -> Self {
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        for ok in [
            "dev-0001",
            "A.b_c-9",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            assert_eq!(DeviceId::new(ok).unwrap().as_str(), ok);
        }
        assert!(FirmwareVersion::new("4.2.1+b77").is_ok());
    }

    #[test]
    fn rejects_topic_metacharacters_and_bad_lengths() {
        assert_eq!(DeviceId::new(""), Err(IdError::Empty { kind: "device id" }));
        for bad in ["a/b", "a+b", "a#", "$SYS", "a b", "é"] {
            assert!(
                matches!(DeviceId::new(bad), Err(IdError::BadChar { .. })),
                "{bad:?} should be rejected"
            );
        }
        let long = "x".repeat(65);
        assert!(matches!(
            DeviceId::new(long),
            Err(IdError::TooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
        assert!(DeviceId::new("x".repeat(64)).is_ok());
        // '+' is fine in a version, never in a topic-level id.
        assert!(DeviceId::new("1.0+b").is_err());
    }

    #[test]
    fn serde_validates_ids() {
        let id: Result<DeviceId, _> = serde_json::from_str("\"ok-1\"");
        assert_eq!(id.unwrap().as_str(), "ok-1");
        let bad: Result<DeviceId, _> = serde_json::from_str("\"no/slash\"");
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("device id contains '/'"));
    }

    #[test]
    fn seq_orders_and_advances() {
        assert!(Seq(1) < Seq(2));
        assert_eq!(Seq(41).next(), Seq(42));
    }
}
