//! Stage 1, decode: every delivery is validated by `protocol` into a typed message, or
//! rejected with a stable reason code for the dead-letter store. Pure.

use std::borrow::Cow;

use protocol::{Channel, Limits, Message};

/// A message as it came off the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A delivery that passed validation.
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    /// The topic, parsed.
    pub topic: protocol::Topic,
    /// The message.
    pub message: Message,
    /// Its seq (every device-to-cloud message has one).
    pub seq: u64,
    /// Its device time, ms.
    pub ts_ms: u64,
    /// The payload as received (valid JSON, so UTF-8).
    pub payload: Cow<'a, str>,
}

impl Accepted<'_> {
    /// The device it came from.
    pub fn device(&self) -> &str {
        self.topic.device.as_str()
    }

    /// Whether it is telemetry (a heartbeat or an event), what scoring reads.
    pub fn is_telemetry(&self) -> bool {
        matches!(self.message, Message::Heartbeat(_) | Message::Event(_))
    }
}

/// A delivery that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<'a> {
    /// What arrived.
    pub delivery: &'a Delivery,
    /// The stable reason code.
    pub reason: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

/// A batch, decoded: accepted messages in arrival order, and rejections.
#[derive(Debug, Clone, Default)]
pub struct DecodedBatch<'a> {
    /// Valid device messages.
    pub accepted: Vec<Accepted<'a>>,
    /// Everything else.
    pub rejected: Vec<Rejection<'a>>,
}

/// Reason code of a command published towards ingest.
pub const WRONG_DIRECTION: &str = "wrong_direction";

/// Decodes and validates every delivery.
pub fn decode<'a>(batch: &'a [Delivery], limits: &Limits) -> DecodedBatch<'a> {
    let mut out = DecodedBatch::default();
    for delivery in batch {
        match protocol::decode(&delivery.topic, &delivery.payload, limits) {
            Ok(d) => match (d.topic.channel, d.message.seq()) {
                (Channel::Command, _) | (_, None) => out.rejected.push(Rejection {
                    delivery,
                    reason: WRONG_DIRECTION,
                    detail: "commands flow to devices; ingest does not accept them".to_owned(),
                }),
                (_, Some(seq)) => out.accepted.push(Accepted {
                    ts_ms: d.message.ts().0,
                    seq: seq.0,
                    topic: d.topic,
                    message: d.message,
                    payload: String::from_utf8_lossy(&delivery.payload),
                }),
            },
            Err(e) => out.rejected.push(Rejection {
                delivery,
                reason: e.reason(),
                detail: e.to_string(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(m: &Message) -> Delivery {
        let tenant = protocol::TenantId::new("acme").unwrap();
        Delivery {
            topic: m.topic(&tenant).to_string(),
            payload: m.encode(&Limits::default()).unwrap(),
        }
    }

    #[test]
    fn good_messages_pass_and_bad_ones_carry_their_reason() {
        let hb = Message::Heartbeat(protocol::examples::heartbeat());
        let mut batch = vec![delivery(&hb)];
        batch.push(Delivery {
            topic: batch[0].topic.clone(),
            payload: b"{ not json".to_vec(),
        });
        let cmd = Message::Command(protocol::examples::offer_command());
        batch.push(delivery(&cmd));
        let d = decode(&batch, &Limits::default());
        assert_eq!(d.accepted.len(), 1);
        assert_eq!(d.accepted[0].seq, hb.seq().unwrap().0);
        assert_eq!(d.accepted[0].ts_ms, hb.ts().0);
        assert!(d.accepted[0].is_telemetry());
        let reasons: Vec<&str> = d.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons.len(), 2);
        assert_ne!(reasons[0], WRONG_DIRECTION);
        assert!(protocol::DecodeError::REASONS.contains(&reasons[0]));
        assert_eq!(reasons[1], WRONG_DIRECTION);
    }
}
