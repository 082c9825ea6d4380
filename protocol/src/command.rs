//! Cloud-to-device commands on the `cmd` topic, and the device's acknowledgements on
//! the `ack` topic.
//!
//! Commands carry no `seq` or `boot_id`: those count the device's own messages. A
//! command is identified by its `command_id`, which the device uses to ignore
//! redeliveries and to acknowledge.

use serde::{Deserialize, Serialize};

use crate::envelope::{EPOCH_SCHEMA, SCHEMA_VERSION};
use crate::ids::{CommandId, DeviceId, TicketRef, Timestamp};
use crate::validate::{self as v, Checked, FieldError, Limits, Problem, Validate};

/// A command to one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Schema version of this message.
    pub schema: u32,
    /// The addressed device; must match the topic's device level.
    pub device_id: DeviceId,
    /// Unique id of this command; the device acknowledges it and ignores repeats.
    pub command_id: CommandId,
    /// When the cloud issued the command.
    pub ts_ms: Timestamp,
    /// After this instant the device should not act on the command any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ts_ms: Option<Timestamp>,
    /// What to do.
    pub body: CommandBody,
}

impl Command {
    /// A command of the current schema version (see [`Command::for_schema`]).
    pub fn new(
        device_id: DeviceId,
        command_id: CommandId,
        ts: Timestamp,
        body: CommandBody,
    ) -> Self {
        Command {
            schema: SCHEMA_VERSION,
            device_id,
            command_id,
            ts_ms: ts,
            expires_ts_ms: None,
            body,
        }
    }
}

impl Command {
    /// The command written in `schema`, the version the addressed device speaks: the
    /// cloud answers a schema-1 device in schema 1.
    pub fn for_schema(mut self, schema: u32) -> Self {
        self.schema = schema;
        self
    }
}

/// The command itself. On the wire an object with one key naming the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandBody {
    /// Show the customer a service offer.
    Offer(Offer),
    /// Change the agent's configuration.
    Config(ConfigChange),
    /// Run self-tests and report the results in the acknowledgement.
    Diagnostic(DiagnosticRequest),
    /// Take back an offer not answered yet (schema 2).
    Withdraw(Withdrawal),
}

/// An offer taken back: the device stops showing it and no longer takes an answer to
/// it. Acknowledged `done` when the offer is gone (or was never held), `rejected` when
/// the customer had already answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// The offer command withdrawn.
    pub offer: CommandId,
    /// The ticket whose offer it is.
    pub ticket: TicketRef,
    /// Why.
    pub reason: WithdrawReason,
}

/// Why an offer is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// A stronger offer for the same device follows.
    Superseded,
    /// The service team closed the ticket.
    Closed,
}

/// A proactive service offer shown to the customer on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The service ticket behind the offer.
    pub ticket: TicketRef,
    /// The remedy offered.
    pub kind: OfferKind,
    /// A short headline, at most 120 bytes.
    pub title: String,
    /// The text shown to the customer, at most 2000 bytes; may contain newlines.
    pub message: String,
    /// The price quoted (trade-in value, or repair cost), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Money>,
    /// An extra on top of the base remedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<OfferExtra>,
    /// The customer should answer before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by_ts_ms: Option<Timestamp>,
}

/// The base remedy of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferKind {
    /// A free inspection.
    Inspection,
    /// A repair.
    Repair,
    /// A battery replacement.
    BatteryReplacement,
    /// A trade-in against a new device, with a quote.
    TradeIn,
    /// A self-service tip the customer can apply alone.
    SelfServiceTip,
}

impl OfferKind {
    /// Every kind.
    pub const ALL: [OfferKind; 5] = [
        OfferKind::Inspection,
        OfferKind::Repair,
        OfferKind::BatteryReplacement,
        OfferKind::TradeIn,
        OfferKind::SelfServiceTip,
    ];

    /// The wire name (`battery_replacement`), also used in stores and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Inspection => "inspection",
            OfferKind::Repair => "repair",
            OfferKind::BatteryReplacement => "battery_replacement",
            OfferKind::TradeIn => "trade_in",
            OfferKind::SelfServiceTip => "self_service_tip",
        }
    }

    /// The kind with this wire name.
    pub fn from_name(name: &str) -> Option<OfferKind> {
        OfferKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// An extra on top of the base remedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferExtra {
    /// Extended warranty.
    ExtendedWarranty {
        /// Extension, months (1..=60).
        months: u16,
    },
    /// A coupon towards a purchase.
    Coupon {
        /// The coupon's value.
        value: Money,
    },
}

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units (cents), never negative.
    pub amount_minor: u64,
    /// Three upper-case letters, such as `EUR`.
    pub currency: String,
}

/// Configuration changes; fields left out stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// Heartbeat interval, seconds (60..=86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_s: Option<u32>,
    /// Sensor sampling interval, seconds (1..=3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_interval_s: Option<u32>,
    /// Battery drop that raises an event, percentage points (1..=100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_drop_threshold_pct: Option<f32>,
    /// Window the battery drop is measured over, seconds (60..=86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_drop_window_s: Option<u32>,
    /// Over-temperature threshold, °C (20..=150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_temp_threshold_c: Option<f32>,
}

/// Self-tests to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticRequest {
    /// The checks to run; empty means all the device supports.
    #[serde(default)]
    pub checks: Vec<DiagnosticCheck>,
}

/// A self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticCheck {
    /// Fuel gauge readable, values plausible.
    Battery,
    /// Storage read/write test.
    Storage,
    /// Temperature sensor readable, values plausible.
    Thermal,
    /// Broker reachable.
    Connectivity,
}

/// A device's answer to a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandAck {
    /// The command answered.
    pub command_id: CommandId,
    /// What became of it.
    pub status: AckStatus,
    /// Free text, for example why a command was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Results of a diagnostic request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticResult>,
}

/// What became of a command. An offer goes `received`, then `accepted` or `declined`
/// once the customer answers; other commands go straight to `done`, `rejected` or
/// `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Delivered and shown, no answer yet.
    Received,
    /// The customer accepted the offer.
    Accepted,
    /// The customer declined the offer.
    Declined,
    /// Carried out.
    Done,
    /// Not carried out: invalid, expired or unsupported.
    Rejected,
    /// Carried out with an error.
    Failed,
}

impl AckStatus {
    /// Every status.
    pub const ALL: [AckStatus; 6] = [
        AckStatus::Received,
        AckStatus::Accepted,
        AckStatus::Declined,
        AckStatus::Done,
        AckStatus::Rejected,
        AckStatus::Failed,
    ];

    /// The wire name (`accepted`), also used in stores and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AckStatus::Received => "received",
            AckStatus::Accepted => "accepted",
            AckStatus::Declined => "declined",
            AckStatus::Done => "done",
            AckStatus::Rejected => "rejected",
            AckStatus::Failed => "failed",
        }
    }
}

/// One self-test result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticResult {
    /// Which check.
    pub check: DiagnosticCheck,
    /// Whether it passed.
    pub passed: bool,
    /// What was measured or went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The longest offer title, bytes.
pub const MAX_TITLE_LEN: usize = 120;
/// The longest offer message, bytes.
pub const MAX_MESSAGE_LEN: usize = 2000;
/// The longest acknowledgement or diagnostic detail, bytes.
pub const MAX_ACK_DETAIL_LEN: usize = 512;

impl Validate for Command {
    fn validate(&self, limits: &Limits) -> Checked {
        v::timestamp("ts_ms", self.ts_ms, limits)?;
        if let Some(exp) = self.expires_ts_ms {
            v::timestamp("expires_ts_ms", exp, limits)?;
            v::ordered(
                "expires_ts_ms",
                self.ts_ms.as_unix_ms(),
                exp.as_unix_ms(),
                "expires before it was issued",
            )?;
        }
        match &self.body {
            CommandBody::Offer(o) => o.validate(limits),
            CommandBody::Config(c) => c.validate(),
            // Closed enum values only.
            CommandBody::Diagnostic(_) => Ok(()),
            CommandBody::Withdraw(_) if self.schema < EPOCH_SCHEMA => Err(FieldError::new(
                "body.withdraw",
                Problem::Inconsistent("withdraw is new in schema 2"),
            )),
            CommandBody::Withdraw(_) => Ok(()),
        }
    }
}

impl Offer {
    fn validate(&self, limits: &Limits) -> Checked {
        v::text("body.offer.title", &self.title, MAX_TITLE_LEN, false)?;
        v::text("body.offer.message", &self.message, MAX_MESSAGE_LEN, true)?;
        if let Some(q) = &self.quote {
            q.validate("body.offer.quote.currency")?;
        }
        match &self.extra {
            Some(OfferExtra::ExtendedWarranty { months }) => v::int(
                "body.offer.extra.extended_warranty.months",
                (*months).into(),
                1,
                60,
                "months",
            )?,
            Some(OfferExtra::Coupon { value }) => {
                value.validate("body.offer.extra.coupon.value.currency")?
            }
            None => {}
        }
        if let Some(t) = self.respond_by_ts_ms {
            v::timestamp("body.offer.respond_by_ts_ms", t, limits)?;
        }
        if self.kind == OfferKind::TradeIn && self.quote.is_none() {
            return Err(FieldError::new(
                "body.offer.quote",
                Problem::Inconsistent("a trade-in offer needs a quote"),
            ));
        }
        Ok(())
    }
}

impl Money {
    /// Whether `code` has the form of an ISO 4217 currency code: three upper-case letters.
    pub fn is_currency(code: &str) -> bool {
        code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
    }

    fn validate(&self, currency_field: &'static str) -> Checked {
        if !Money::is_currency(&self.currency) {
            return Err(FieldError::new(
                currency_field,
                Problem::Invalid(format!(
                    "`{}` is not an ISO 4217 code (three upper-case letters)",
                    self.currency
                )),
            ));
        }
        Ok(())
    }
}

impl ConfigChange {
    fn validate(&self) -> Checked {
        let int = |field, v: Option<u32>, min, max| {
            v.map_or(Ok(()), |n| v::int(field, n.into(), min, max, "s"))
        };
        int(
            "body.config.heartbeat_interval_s",
            self.heartbeat_interval_s,
            60,
            86_400,
        )?;
        int(
            "body.config.sample_interval_s",
            self.sample_interval_s,
            1,
            3_600,
        )?;
        int(
            "body.config.battery_drop_window_s",
            self.battery_drop_window_s,
            60,
            86_400,
        )?;
        v::opt_float(
            "body.config.battery_drop_threshold_pct",
            self.battery_drop_threshold_pct,
            1.0,
            100.0,
            "%",
        )?;
        v::opt_float(
            "body.config.over_temp_threshold_c",
            self.over_temp_threshold_c,
            20.0,
            150.0,
            "°C",
        )?;
        if *self == ConfigChange::default() {
            return Err(FieldError::new(
                "body.config",
                Problem::Inconsistent("a config change must set at least one field"),
            ));
        }
        Ok(())
    }
}

impl Validate for CommandAck {
    fn validate(&self, _limits: &Limits) -> Checked {
        v::opt_text("body.detail", self.detail.as_deref(), MAX_ACK_DETAIL_LEN)?;
        for d in &self.diagnostics {
            v::opt_text(
                "body.diagnostics.detail",
                d.detail.as_deref(),
                MAX_ACK_DETAIL_LEN,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod names {
    use super::*;

    #[test]
    fn names_are_the_wire_names() {
        for k in OfferKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(OfferKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(OfferKind::from_name("free_lunch"), None);
        for a in AckStatus::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        use crate::state::DeviceClass::*;
        for c in [Phone, Tablet, Speaker, Wearable, Hub, Other] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}
