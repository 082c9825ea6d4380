//! Offers to customers: the command that carries a ticket's offer to the device, the
//! webhook body that announces a new ticket, and the worker that sends queued commands
//! and resends them until the device answers.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use protocol::command::{Command, CommandBody, Money, Offer, OfferKind};
use protocol::ids::{CommandId, DeviceId, TenantId, TicketRef};
use protocol::{Channel, Timestamp, Topic};
use rumqttc::{AsyncClient, QoS};
use serde_json::json;
use sqlx::Row;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::policy::Plan;
use crate::store::{self, Store, StoreError};
use crate::tickets::{Evidence, TicketState};

/// The stored name of an offer kind.
pub fn kind_name(k: OfferKind) -> &'static str {
    match k {
        OfferKind::Inspection => "inspection",
        OfferKind::Repair => "repair",
        OfferKind::BatteryReplacement => "battery_replacement",
        OfferKind::TradeIn => "trade_in",
        OfferKind::SelfServiceTip => "self_service_tip",
    }
}

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

/// The JSON a webhook receives for a new ticket.
#[allow(clippy::too_many_arguments)]
pub fn webhook_body(
    id: i64,
    ticket_ref: &str,
    device: &str,
    tenant: &str,
    customer: Option<&str>,
    plan: &Plan,
    now: Timestamp,
    evidence: &Evidence,
) -> String {
    json!({
        "event": "ticket.opened",
        "ticket": {
            "id": id,
            "ref": ticket_ref,
            "device_id": device,
            "tenant": tenant,
            "customer_id": customer,
            "problem": plan.problem,
            "state": TicketState::Opened,
            "tier": plan.tier,
            "offer": plan.offer,
            "quote_minor": plan.quote_minor,
            "currency": plan.currency,
            "opened_ms": now.0,
            "due_ms": plan.due_ms,
            "evidence": evidence,
        }
    })
    .to_string()
}

/// Wall-clock milliseconds, for retry schedules (never simulated).
pub fn wall_ms() -> u64 {
    protocol::Timestamp::from_system_time(std::time::SystemTime::now()).0
}

/// Settings of the command worker.
#[derive(Debug, Clone)]
pub struct CommandWorker {
    /// First resend after this long without an answer; doubles up to 64 times that.
    pub resend_after: Duration,
    /// How often the outbox is checked.
    pub poll: Duration,
}

impl CommandWorker {
    /// Sends due commands until `stop`.
    pub async fn run(
        self,
        store: Store,
        client: AsyncClient,
        connected: watch::Receiver<bool>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if *connected.borrow() {
                if let Err(e) = self.send_due(&store, &client, clock.now(), &metrics).await {
                    tracing::warn!("command outbox: {e}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass over the outbox: the number of commands published.
    pub async fn send_due(
        &self,
        store: &Store,
        client: &AsyncClient,
        now: Timestamp,
        metrics: &Metrics,
    ) -> Result<usize, StoreError> {
        let wall = wall_ms();
        let rows = sqlx::query(
            "SELECT command_id, ticket_id, topic, payload, attempts, expires_ms FROM commands
             WHERE status IS NULL AND next_wall_ms <= $1 ORDER BY created_ms LIMIT 500",
        )
        .bind(wall as i64)
        .fetch_all(store.pool())
        .await?;
        let mut sent = 0;
        for r in rows {
            let id: String = r.try_get(0)?;
            let ticket: Option<i64> = r.try_get(1)?;
            let topic: String = r.try_get(2)?;
            let payload: String = r.try_get(3)?;
            let attempts: i64 = r.try_get(4)?;
            let expires: Option<i64> = r.try_get(5)?;
            if expires.is_some_and(|e| now.0 as i64 >= e) {
                let mut tx = store.begin().await?;
                sqlx::query("UPDATE commands SET status = 'expired' WHERE command_id = $1 AND status IS NULL")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(t) = ticket {
                    if store::ticket_state(&mut tx, t).await? == TicketState::Opened {
                        store::move_ticket(
                            &mut tx,
                            t,
                            TicketState::Cancelled,
                            "policy",
                            Some("the offer never reached the device"),
                            now.0,
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
                continue;
            }
            // Never wait on the request channel: a full one is backpressure, retry later.
            if client
                .try_publish(topic, QoS::AtLeastOnce, false, payload)
                .is_err()
            {
                break;
            }
            let backoff = self.resend_after.as_millis() as u64 * (1u64 << attempts.clamp(0, 6));
            sqlx::query("UPDATE commands SET attempts = attempts + 1, next_wall_ms = $2 WHERE command_id = $1")
                .bind(&id)
                .bind((wall + backoff) as i64)
                .execute(store.pool())
                .await?;
            metrics.commands_sent.inc();
            sent += 1;
        }
        Ok(sent)
    }
}
