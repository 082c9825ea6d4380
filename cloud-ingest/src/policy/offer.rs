//! The offer a ticket carries to the customer: its words, and the command that takes it
//! to the device.

use protocol::command::{Command, CommandBody, Money, Offer, OfferKind};
use protocol::ids::{CommandId, DeviceId, TenantId, TicketRef};
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

/// The offer command for a new ticket.
pub fn offer_command(
    device: &str,
    tenant: &str,
    ticket_ref: &str,
    plan: &Plan,
    now: Timestamp,
    valid_hours: u32,
) -> QueuedCommand {
    let device_id = DeviceId::new(device).expect("a device id from a valid topic");
    let tenant = TenantId::new(tenant).expect("a tenant from a valid topic");
    let command_id = CommandId::new(format!("offer-{ticket_ref}")).expect("a short id");
    let expires = Timestamp(now.0 + u64::from(valid_hours) * 3_600_000);
    let (title, message) = offer_text(plan);
    let offer = Offer {
        ticket: TicketRef::new(ticket_ref).expect("a short reference"),
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
    );
    cmd.expires_ts_ms = Some(expires);
    let payload =
        protocol::codec::encode(&cmd).expect("offers are built within the protocol's limits");
    QueuedCommand {
        command_id,
        topic: Topic::new(tenant, device_id, Channel::Command).to_string(),
        payload: String::from_utf8(payload).expect("JSON is UTF-8"),
        expires,
    }
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
