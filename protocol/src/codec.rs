//! Decoding and encoding: the only place JSON meets the typed messages.
//!
//! Decoding runs, in order: topic, size limit, JSON shape (serde, with the failing
//! field's path), schema version, value checks ([`Validate`]), and that topic and
//! payload name the same device. Each failure is its own [`DecodeError`] variant, with
//! a stable [`DecodeError::reason`] code for dead-letter records and metrics.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandAck};
use crate::envelope::{Envelope, SUPPORTED_SCHEMAS};
use crate::event::Event;
use crate::heartbeat::Heartbeat;
use crate::ids::{DeviceId, Epoch, TenantId};
use crate::state::State;
use crate::topic::{Channel, Topic, TopicError};
use crate::validate::{FieldError, Limits, Problem, Validate};

/// A message type that travels on one channel.
pub trait Payload: Serialize + DeserializeOwned + Validate {
    /// The channel this type is published on.
    const CHANNEL: Channel;
    /// The schema version the message declares.
    fn schema(&self) -> u32;
    /// The device the message is from or for.
    fn device_id(&self) -> &DeviceId;
}

macro_rules! device_payload {
    ($body:ty, $channel:expr) => {
        impl Payload for Envelope<$body> {
            const CHANNEL: Channel = $channel;
            fn schema(&self) -> u32 {
                self.schema
            }
            fn device_id(&self) -> &DeviceId {
                &self.device_id
            }
        }
    };
}

device_payload!(Heartbeat, Channel::Heartbeat);
device_payload!(Event, Channel::Event);
device_payload!(State, Channel::State);
device_payload!(CommandAck, Channel::Ack);

impl Payload for Command {
    const CHANNEL: Channel = Channel::Command;
    fn schema(&self) -> u32 {
        self.schema
    }
    fn device_id(&self) -> &DeviceId {
        &self.device_id
    }
}

/// Where a device message sits among its device's: see [`Message::header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Schema version.
    pub schema: u32,
    /// The run of seqs ([`Epoch::NONE`] in schema 1).
    pub epoch: Epoch,
    /// Sequence number.
    pub seq: crate::ids::Seq,
    /// The boot.
    pub boot_id: &'a crate::ids::BootId,
}

/// Any message of the protocol, typed by its channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// From the `heartbeat` channel.
    Heartbeat(Envelope<Heartbeat>),
    /// From the `event` channel.
    Event(Envelope<Event>),
    /// From the `state` channel.
    State(Envelope<State>),
    /// From the `cmd` channel.
    Command(Command),
    /// From the `ack` channel.
    Ack(Envelope<CommandAck>),
}

impl Message {
    /// The channel the message belongs on.
    pub fn channel(&self) -> Channel {
        match self {
            Message::Heartbeat(_) => Channel::Heartbeat,
            Message::Event(_) => Channel::Event,
            Message::State(_) => Channel::State,
            Message::Command(_) => Channel::Command,
            Message::Ack(_) => Channel::Ack,
        }
    }

    /// The device the message is from or for.
    pub fn device_id(&self) -> &DeviceId {
        match self {
            Message::Heartbeat(m) => &m.device_id,
            Message::Event(m) => &m.device_id,
            Message::State(m) => &m.device_id,
            Message::Command(m) => &m.device_id,
            Message::Ack(m) => &m.device_id,
        }
    }

    /// The topic this message is published on, for a tenant.
    pub fn topic(&self, tenant: &TenantId) -> Topic {
        Topic::new(tenant.clone(), self.device_id().clone(), self.channel())
    }

    /// Marks a device-originated message as sent late from the device's spool.
    pub fn set_historical(&mut self) {
        match self {
            Message::Heartbeat(m) => m.historical = true,
            Message::Event(m) => m.historical = true,
            Message::State(m) => m.historical = true,
            Message::Ack(m) => m.historical = true,
            Message::Command(_) => {}
        }
    }

    /// The sequence number of a device-originated message.
    pub fn seq(&self) -> Option<crate::ids::Seq> {
        match self {
            Message::Heartbeat(m) => Some(m.seq),
            Message::Event(m) => Some(m.seq),
            Message::State(m) => Some(m.seq),
            Message::Ack(m) => Some(m.seq),
            Message::Command(_) => None,
        }
    }

    /// The header fields that place a device-originated message among its device's:
    /// schema, epoch, seq and boot.
    pub fn header(&self) -> Option<Header<'_>> {
        fn of<B>(m: &Envelope<B>) -> Header<'_> {
            Header {
                schema: m.schema,
                epoch: m.epoch,
                seq: m.seq,
                boot_id: &m.boot_id,
            }
        }
        match self {
            Message::Heartbeat(m) => Some(of(m)),
            Message::Event(m) => Some(of(m)),
            Message::State(m) => Some(of(m)),
            Message::Ack(m) => Some(of(m)),
            Message::Command(_) => None,
        }
    }

    /// When the message was made, by its sender's clock.
    pub fn ts(&self) -> crate::ids::Timestamp {
        match self {
            Message::Heartbeat(m) => m.ts_ms,
            Message::Event(m) => m.ts_ms,
            Message::State(m) => m.ts_ms,
            Message::Ack(m) => m.ts_ms,
            Message::Command(m) => m.ts_ms,
        }
    }

    /// Validates and serialises the message.
    pub fn encode(&self, limits: &Limits) -> Result<Vec<u8>, EncodeError> {
        match self {
            Message::Heartbeat(m) => encode_with(m, limits),
            Message::Event(m) => encode_with(m, limits),
            Message::State(m) => encode_with(m, limits),
            Message::Command(m) => encode_with(m, limits),
            Message::Ack(m) => encode_with(m, limits),
        }
    }
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The topic is not one of the protocol's.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The payload exceeds the size limit.
    #[error("payload is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The payload ends before the JSON document does.
    #[error("payload is truncated: {0}")]
    Truncated(String),
    /// The payload is not well-formed JSON (this includes `NaN`, infinities and numbers
    /// too large for any type).
    #[error("payload is not valid JSON at `{at}`: {message}")]
    Syntax {
        /// Where the parser was, as a dotted path.
        at: String,
        /// What the parser found.
        message: String,
    },
    /// The message declares a schema version this build does not read.
    #[error("unsupported schema version {found}; this build reads {SUPPORTED_SCHEMAS:?}")]
    UnsupportedSchema {
        /// The declared version.
        found: u64,
    },
    /// A field is missing, of the wrong type or has a bad value.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The topic and the payload name different devices.
    #[error("topic names device `{topic}` but the payload names `{payload}`")]
    DeviceMismatch {
        /// The device in the topic.
        topic: DeviceId,
        /// The device in the payload.
        payload: DeviceId,
    },
}

impl DecodeError {
    /// Every code [`DecodeError::reason`] returns, for documentation and for metrics
    /// that pre-register their labels.
    pub const REASONS: [&'static str; 10] = [
        "bad_topic",
        "too_large",
        "truncated",
        "bad_json",
        "unsupported_schema",
        "missing_field",
        "wrong_type",
        "out_of_range",
        "invalid_value",
        "device_mismatch",
    ];

    /// A short stable code for the kind of rejection, for dead-letter records and
    /// metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Topic(_) => "bad_topic",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::Syntax { .. } => "bad_json",
            DecodeError::UnsupportedSchema { .. } => "unsupported_schema",
            DecodeError::Field(f) => match f.problem {
                Problem::Missing => "missing_field",
                Problem::WrongType(_) => "wrong_type",
                // JSON cannot carry NaN or infinities (they fail as bad_json); a
                // non-finite value can only come from code, and is out of any range.
                Problem::OutOfRange { .. }
                | Problem::TimestampOutOfRange { .. }
                | Problem::NotFinite => "out_of_range",
                Problem::Invalid(_)
                | Problem::TooLong { .. }
                | Problem::Empty
                | Problem::ControlChar
                | Problem::Inconsistent(_) => "invalid_value",
            },
            DecodeError::DeviceMismatch { .. } => "device_mismatch",
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// The message declares a schema version this build does not write.
    #[error("unsupported schema version {0}")]
    UnsupportedSchema(u32),
    /// A value breaks the protocol's rules.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The encoded message would exceed the size limit.
    #[error("encoded message is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
}

/// A decoded message with its parsed topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The topic it arrived on.
    pub topic: Topic,
    /// The message.
    pub message: Message,
}

/// Decodes a message as received: topic string and payload bytes.
pub fn decode(topic: &str, payload: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    let topic = Topic::parse(topic)?;
    let message = match topic.channel {
        Channel::Heartbeat => Message::Heartbeat(decode_payload(payload, limits)?),
        Channel::Event => Message::Event(decode_payload(payload, limits)?),
        Channel::State => Message::State(decode_payload(payload, limits)?),
        Channel::Command => Message::Command(decode_payload(payload, limits)?),
        Channel::Ack => Message::Ack(decode_payload(payload, limits)?),
    };
    if message.device_id() != &topic.device {
        return Err(DecodeError::DeviceMismatch {
            topic: topic.device,
            payload: message.device_id().clone(),
        });
    }
    Ok(Decoded { topic, message })
}

/// Decodes a payload of a known type, without a topic.
pub fn decode_payload<T: Payload>(payload: &[u8], limits: &Limits) -> Result<T, DecodeError> {
    if payload.len() > limits.max_payload_bytes {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: limits.max_payload_bytes,
        });
    }
    // serde's derived structs also accept a JSON array of the fields in order; the
    // contract is objects only. (Other non-objects already fail as a wrong type.)
    if payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        let problem = Problem::WrongType("a message must be a JSON object".into());
        return Err(FieldError::new(".", problem).into());
    }
    if let Some(depth) = too_deep(payload) {
        let problem = Problem::Invalid(format!(
            "nests arrays and objects {depth} levels deep; at most {MAX_DEPTH} are allowed"
        ));
        return Err(FieldError::new(".", problem).into());
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        // A message of another schema version fails on its own terms; say so rather
        // than naming whichever field happened to differ.
        Err(e) => return Err(unsupported_schema(payload).unwrap_or_else(|| json_error(e, payload))),
    };
    de.end().map_err(|e| DecodeError::Syntax {
        at: ".".into(),
        message: strip_position(&e.to_string()),
    })?;
    let schema = value.schema();
    if !SUPPORTED_SCHEMAS.contains(&schema) {
        return Err(DecodeError::UnsupportedSchema {
            found: schema.into(),
        });
    }
    value.validate(limits)?;
    Ok(value)
}

/// Validates and serialises a message with the default limits.
pub fn encode<T: Payload>(message: &T) -> Result<Vec<u8>, EncodeError> {
    encode_with(message, &Limits::default())
}

/// Validates and serialises a message with the given limits.
pub fn encode_with<T: Payload>(message: &T, limits: &Limits) -> Result<Vec<u8>, EncodeError> {
    if !SUPPORTED_SCHEMAS.contains(&message.schema()) {
        return Err(EncodeError::UnsupportedSchema(message.schema()));
    }
    message.validate(limits)?;
    let bytes = serde_json::to_vec(message)
        .expect("protocol types serialise infallibly: string keys, validated finite floats");
    if bytes.len() > limits.max_payload_bytes {
        return Err(EncodeError::TooLarge {
            size: bytes.len(),
            limit: limits.max_payload_bytes,
        });
    }
    Ok(bytes)
}

/// The deepest nesting of arrays and objects a payload may have. Ours need four; the
/// bound keeps whoever parses a stored payload later (a webhook receiver reading a
/// ticket's evidence, with a recursive parser) safe, even inside ignored fields.
pub const MAX_DEPTH: usize = 32;

/// The nesting depth of `payload` if it exceeds [`MAX_DEPTH`] (counted outside strings;
/// the JSON need not be valid, the parser judges that).
fn too_deep(payload: &[u8]) -> Option<usize> {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in payload {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (deepest > MAX_DEPTH).then_some(deepest)
}

fn unsupported_schema(payload: &[u8]) -> Option<DecodeError> {
    #[derive(Deserialize)]
    struct Probe {
        schema: u64,
    }
    let probe: Probe = serde_json::from_slice(payload).ok()?;
    let known = u32::try_from(probe.schema).is_ok_and(|s| SUPPORTED_SCHEMAS.contains(&s));
    (!known).then_some(DecodeError::UnsupportedSchema {
        found: probe.schema,
    })
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>, payload: &[u8]) -> DecodeError {
    use serde_json::error::Category;
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = strip_position(&inner.to_string());
    match inner.classify() {
        Category::Eof => DecodeError::Truncated(message),
        // Well-formed JSON that the reader stumbles on is a shape the contract does not
        // allow, not bad JSON: an object that names two kinds where one is expected.
        Category::Syntax if serde_json::from_slice::<serde_json::Value>(payload).is_ok() => {
            let problem = Problem::Invalid(
                "must have exactly one key, the kind (more than one found)".into(),
            );
            FieldError::new(path, problem).into()
        }
        Category::Syntax | Category::Io => DecodeError::Syntax { at: path, message },
        Category::Data => {
            // serde reports a missing field at its parent's path, naming the field in
            // the message; put the name back into the path.
            if let Some(name) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
            {
                let field = if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
                return FieldError::new(field, Problem::Missing).into();
            }
            let problem = if message.starts_with("invalid type") {
                Problem::WrongType(message)
            } else {
                Problem::Invalid(message)
            };
            FieldError::new(path, problem).into()
        }
    }
}

/// serde_json appends " at line L column C"; for single-line payloads the path says
/// more, so drop it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn reasons_lists_exactly_the_codes_reason_returns() {
        let field = |p| DecodeError::Field(FieldError::new("f", p));
        let all = [
            DecodeError::Topic(TopicError::WrongRoot),
            DecodeError::TooLarge { size: 2, limit: 1 },
            DecodeError::Truncated(String::new()),
            DecodeError::Syntax {
                at: ".".into(),
                message: String::new(),
            },
            DecodeError::UnsupportedSchema { found: 9 },
            field(Problem::Missing),
            field(Problem::WrongType(String::new())),
            field(Problem::Invalid(String::new())),
            field(Problem::OutOfRange {
                value: 0.0,
                min: 1.0,
                max: 2.0,
                unit: "",
            }),
            field(Problem::NotFinite),
            field(Problem::TimestampOutOfRange {
                value: 0,
                min: 1,
                max: 2,
            }),
            field(Problem::TooLong { len: 2, max: 1 }),
            field(Problem::Empty),
            field(Problem::ControlChar),
            field(Problem::Inconsistent("")),
            DecodeError::DeviceMismatch {
                topic: "a".parse().unwrap(),
                payload: "b".parse().unwrap(),
            },
        ];
        let produced: BTreeSet<_> = all.iter().map(DecodeError::reason).collect();
        let listed: BTreeSet<_> = DecodeError::REASONS.into_iter().collect();
        assert_eq!(produced, listed);
    }

    #[test]
    fn strips_serde_json_positions() {
        assert_eq!(
            strip_position("EOF while parsing at line 1 column 7"),
            "EOF while parsing"
        );
        assert_eq!(strip_position("no position here"), "no position here");
    }
}
