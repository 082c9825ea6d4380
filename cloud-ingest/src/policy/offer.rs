//! The offer a ticket carries to the customer: its words, and the command that takes it
//! to the device.

use protocol::codec::EncodeError;
use protocol::command::{
    Command, CommandBody, Money, Offer, OfferKind, WithdrawReason, Withdrawal,
};
use protocol::ids::{CommandId, DeviceId, IdError, TenantId, TicketRef};
use protocol::{Channel, Timestamp, Topic};

use super::Plan;

/// An encoded offer command, ready to queue.
#[derive(Debug, Clone)]
pub struct QueuedCommand {
    /// Its id.
    pub command_id: CommandId,
    /// The device's command topic.
    pub topic: String,
    /// The encoded command.
    pub payload: String,
    /// When the offer lapses.
    pub expires: Timestamp,
}

/// Why an offer could not be built: something it is made of (an id, the registry's
/// currency, the words) breaks the protocol's rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OfferError {
    /// An id does not pass the protocol's charset and length.
    #[error("offer for {device}: {what}: {error}")]
    Id {
        /// The device.
        device: String,
        /// Which id.
        what: &'static str,
        /// Why.
        error: IdError,
    },
    /// The command does not encode (a value out of the protocol's ranges).
    #[error("offer for {device}: {error}")]
    Encode {
        /// The device.
        device: String,
        /// Why.
        error: EncodeError,
    },
}

/// The offer command for a new ticket.
pub fn offer_command(
    device: &str,
    tenant: &str,
    ticket_ref: &str,
    plan: &Plan,
    now: Timestamp,
    valid_hours: u32,
    schema: u32,
) -> Result<QueuedCommand, OfferError> {
    let (device_id, tenant, command_id, ticket) =
        ids(device, tenant, ticket_ref, offer_command_id)?;
    let expires = Timestamp(now.0 + u64::from(valid_hours) * 3_600_000);
    let (title, message) = offer_text(plan);
    let offer = Offer {
        ticket,
        kind: plan.offer,
        title,
        message,
        quote: plan.quote_minor.map(|amount_minor| Money {
            amount_minor,
            currency: plan.currency.clone().unwrap_or_else(|| "EUR".into()),
        }),
        extra: plan.extra.clone(),
        respond_by_ts_ms: Some(expires),
    };
    let mut cmd = Command::new(
        device_id.clone(),
        command_id.clone(),
        now,
        CommandBody::Offer(offer),
    )
    .for_schema(schema);
    cmd.expires_ts_ms = Some(expires);
    queued(cmd, tenant, expires)
}

/// The ids of a command about ticket `ticket_ref` to `device`, checked: the device,
/// the tenant, the command id made by `command_id` from the reference, and the ticket.
fn ids(
    device: &str,
    tenant: &str,
    ticket_ref: &str,
    command_id: impl FnOnce(&str) -> String,
) -> Result<(DeviceId, TenantId, CommandId, TicketRef), OfferError> {
    let id = |what, error| OfferError::Id {
        device: device.to_owned(),
        what,
        error,
    };
    Ok((
        DeviceId::new(device).map_err(|e| id("device id", e))?,
        TenantId::new(tenant).map_err(|e| id("tenant", e))?,
        CommandId::new(command_id(ticket_ref)).map_err(|e| id("command id", e))?,
        TicketRef::new(ticket_ref).map_err(|e| id("ticket", e))?,
    ))
}

/// The command id of a ticket's offer.
pub fn offer_command_id(ticket_ref: &str) -> String {
    format!("offer-{ticket_ref}")
}

/// The `withdraw` (schema 2) of the offer of ticket `ticket_ref`, valid as long as an
/// offer: sent before the offer that supersedes it.
pub fn withdraw_command(
    device: &str,
    tenant: &str,
    ticket_ref: &str,
    reason: WithdrawReason,
    now: Timestamp,
    valid_hours: u32,
) -> Result<QueuedCommand, OfferError> {
    let (device_id, tenant, command_id, ticket) =
        ids(device, tenant, ticket_ref, |t| format!("withdraw-{t}"))?;
    let (_, _, offer, _) = ids(device, tenant.as_str(), ticket_ref, offer_command_id)?;
    let expires = Timestamp(now.0 + u64::from(valid_hours) * 3_600_000);
    let mut cmd = Command::new(
        device_id,
        command_id,
        now,
        CommandBody::Withdraw(Withdrawal {
            offer,
            ticket,
            reason,
        }),
    );
    cmd.expires_ts_ms = Some(expires);
    queued(cmd, tenant, expires)
}

fn queued(cmd: Command, tenant: TenantId, expires: Timestamp) -> Result<QueuedCommand, OfferError> {
    let payload = protocol::codec::encode(&cmd).map_err(|error| OfferError::Encode {
        device: cmd.device_id.as_str().to_owned(),
        error,
    })?;
    Ok(QueuedCommand {
        command_id: cmd.command_id.clone(),
        topic: Topic::new(tenant, cmd.device_id, Channel::Command).to_string(),
        // Encoded JSON is UTF-8.
        payload: String::from_utf8_lossy(&payload).into_owned(),
        expires,
    })
}

/// The customer-facing headline and text of an offer.
pub fn offer_text(plan: &Plan) -> (String, String) {
    let problem = plan.problem;
    let price = |m: u64| {
        format!(
            "{}.{:02} {}",
            m / 100,
            m % 100,
            plan.currency.as_deref().unwrap_or("")
        )
    };
    match plan.offer {
        OfferKind::SelfServiceTip => ("A tip for your device".into(), problem.tip().into()),
        OfferKind::TradeIn => (
            "Trade in your device".into(),
            format!(
                "Your device shows signs of {problem} wear. Rather than repair it, we offer you {} towards a new one. We grade the device when it arrives and settle the price then.",
                plan.quote_minor.map(price).unwrap_or_else(|| "a trade-in quote".into())
            ),
        ),
        OfferKind::BatteryReplacement | OfferKind::Repair | OfferKind::Inspection => {
            let what = if plan.offer == OfferKind::BatteryReplacement {
                "a battery replacement"
            } else {
                "an inspection"
            };
            let cost = match plan.quote_minor {
                Some(q) => format!(" Estimated cost: {}.", price(q)),
                None => " It is free under your warranty.".into(),
            };
            let urgent = if plan.safety.is_empty() {
                ""
            } else {
                " For your safety, please stop charging the device until it has been checked."
            };
            (
                format!("We noticed a possible {problem} problem"),
                format!("Our checks suggest your device may develop a {problem} fault soon. We offer you {what} before it does.{cost}{urgent}"),
            )
        }
    }
}
