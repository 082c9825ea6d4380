//! Stage 1, decode: every delivery is validated by `protocol` into a typed message, or
//! rejected with a stable reason code for the dead-letter store. Pure.

use std::borrow::Cow;

use protocol::{Channel, Limits, Message, Timestamp};

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
    /// The run of seqs it belongs to (0 for schema 1).
    pub epoch: u32,
    /// Its schema version.
    pub schema: u32,
    /// Its device time, ms.
    pub ts_ms: u64,
    /// The payload as received (valid JSON, so UTF-8).
    pub payload: Cow<'a, str>,
    /// What arrived, for a rejection after decoding.
    pub delivery: &'a Delivery,
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
            Ok(d) => match (d.topic.channel, d.message.header()) {
                (Channel::Command, _) | (_, None) => out.rejected.push(Rejection {
                    delivery,
                    reason: WRONG_DIRECTION,
                    detail: "commands flow to devices; ingest does not accept them".to_owned(),
                }),
                (_, Some(h)) => out.accepted.push(Accepted {
                    ts_ms: d.message.ts().0,
                    seq: h.seq.0,
                    epoch: h.epoch.0,
                    schema: h.schema,
                    topic: d.topic,
                    message: d.message,
                    payload: String::from_utf8_lossy(&delivery.payload),
                    delivery,
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

/// Reason code of a message dated too far ahead of the cloud's clock.
pub const CLOCK_SKEW: &str = "clock_skew";

/// Reason code of a message that ingest could not process although it decoded: a batch
/// that kept failing was split until this message alone failed.
pub const UNPROCESSABLE: &str = "unprocessable";

/// Reason code of a schema-1 message at a seq the store holds from another boot of its
/// device: the device restarted its count without an epoch to say so.
pub const SEQ_REUSED: &str = "seq_reused";

/// The reasons ingest gives on top of [`protocol::DecodeError::REASONS`], sorted.
pub const CLOUD_REASONS: [&str; 4] = [CLOCK_SKEW, SEQ_REUSED, UNPROCESSABLE, WRONG_DIRECTION];

/// Rejects accepted messages whose device time is more than `tolerance_ms` ahead of
/// `now`, the receive time. Such a time cannot be true, and kept it would be the
/// device's newest for as long as it stays ahead, pushing its real messages out of the
/// feature history; so the message is dead-lettered (kept there in full) rather than
/// stored or re-timed. Late messages (spooled, `historical`) are not judged here.
pub fn judge_clocks<'a>(batch: &mut DecodedBatch<'a>, now: Timestamp, tolerance_ms: u64) {
    let limit = now.0.saturating_add(tolerance_ms);
    let (kept, ahead): (Vec<_>, Vec<_>) = std::mem::take(&mut batch.accepted)
        .into_iter()
        .partition(|a| a.ts_ms <= limit);
    batch.accepted = kept;
    for a in ahead {
        batch.rejected.push(Rejection {
            delivery: a.delivery,
            reason: CLOCK_SKEW,
            detail: format!(
                "ts_ms {} is {} s ahead of the cloud's receive time {} (tolerance {} s): \
                 set the device's clock (NTP)",
                a.ts_ms,
                (a.ts_ms - now.0) / 1000,
                now.0,
                tolerance_ms / 1000
            ),
        });
    }
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

    #[test]
    fn a_message_dated_ahead_of_the_tolerance_is_dead_lettered_and_late_ones_are_kept() {
        let at = |seq: u64, ts: u64| {
            let mut hb = protocol::examples::heartbeat();
            hb.seq = protocol::Seq(seq);
            hb.ts_ms = Timestamp(ts);
            delivery(&Message::Heartbeat(hb))
        };
        let now = protocol::examples::heartbeat().ts_ms.0;
        let batch = [
            at(1, now - 30 * 86_400_000), // spooled a month ago
            at(2, now + 600_000),         // at the tolerance
            at(3, now + 600_001),         // just beyond it
            at(4, now + 50 * 365 * 86_400_000),
        ];
        let mut d = decode(&batch, &Limits::default());
        judge_clocks(&mut d, Timestamp(now), 600_000);
        let kept: Vec<u64> = d.accepted.iter().map(|a| a.seq).collect();
        assert_eq!(kept, [1, 2]);
        let reasons: Vec<&str> = d.rejected.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, [CLOCK_SKEW, CLOCK_SKEW]);
        assert!(std::ptr::eq(d.rejected[0].delivery, &batch[2]));
        assert!(
            d.rejected[0].detail.contains("600 s ahead"),
            "{}",
            d.rejected[0].detail
        );
    }

    /// docs/protocol.md lists exactly the reasons ingest adds to the protocol's.
    #[test]
    fn the_protocol_document_lists_the_reasons_only_the_cloud_gives() {
        let doc = include_str!("../../../docs/protocol.md");
        let start = doc
            .find("<!-- cloud-rejection-reasons -->")
            .expect("docs/protocol.md marks the table");
        let mut listed: Vec<&str> = doc[start..]
            .lines()
            .skip(3)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, CLOUD_REASONS);
    }
}
