//! Webhooks: every new ticket is POSTed as JSON ([`WebhookBody`]) to the configured
//! endpoints, signed with HMAC-SHA256 over the body (`X-Fleet-Signature: sha256=<hex>`),
//! from an outbox written in the ticket's own transaction, retried with exponential
//! backoff, by a worker of its own: a slow or failing endpoint never holds up ingest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use protocol::command::OfferKind;
use protocol::retry::Backoff;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::watch;

use super::wall_ms;
use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::policy::Problem;
use crate::store::tickets::NewTicket;
use crate::tickets::{Evidence, TicketState, Tier};

/// The webhook contract's version, in every body as `version`. A change that could
/// break a receiver (a field removed, renamed or retyped) makes a new version; new
/// fields may appear within one.
pub const WEBHOOK_VERSION: u32 = 1;

/// What a webhook endpoint receives. See docs/ingest.md, "Webhooks", for an example
/// (checked by a test against this type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// [`WEBHOOK_VERSION`].
    pub version: u32,
    /// What happened: `ticket.opened`.
    pub event: WebhookEvent,
    /// The ticket.
    pub ticket: TicketAnnouncement,
}

/// The events webhooks announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// A proactive ticket opened.
    #[serde(rename = "ticket.opened")]
    TicketOpened,
    /// A ticket's SLA window ran out (its `due_ms`) while it was open.
    #[serde(rename = "ticket.sla_breached")]
    TicketSlaBreached,
}

/// A ticket as outside systems see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketAnnouncement {
    /// Row id (`X-Fleet-Delivery` names the delivery, this the ticket).
    pub id: i64,
    /// Public reference, `T-` and 16 hex digits.
    #[serde(rename = "ref")]
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its owner, when registered.
    pub customer_id: Option<String>,
    /// What it is about.
    pub problem: Problem,
    /// Where it stands.
    pub state: TicketState,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer: OfferKind,
    /// A price, minor units: the trade-in value, or the repair cost out of warranty.
    pub quote_minor: Option<u64>,
    /// Currency of the quote (ISO 4217).
    pub currency: Option<String>,
    /// Opened at (ingest clock), ms since the epoch.
    pub opened_ms: u64,
    /// Due at, ms since the epoch.
    pub due_ms: u64,
    /// Why it opened.
    pub evidence: Evidence,
}

impl TicketAnnouncement {
    /// The announcement of a ticket just stored as row `id`.
    pub fn new(id: i64, t: &NewTicket, evidence: Evidence) -> Self {
        TicketAnnouncement {
            id,
            ticket_ref: t.ticket_ref.clone(),
            device_id: t.device_id.clone(),
            tenant: t.tenant.clone(),
            customer_id: t.customer_id.clone(),
            problem: t.problem,
            state: TicketState::Opened,
            tier: t.tier,
            offer: t.offer,
            quote_minor: t.quote_minor,
            currency: t.currency.clone(),
            opened_ms: t.opened_ms,
            due_ms: t.due_ms,
            evidence,
        }
    }
}

impl TicketAnnouncement {
    /// The announcement of a stored ticket (evidence that no longer reads is left
    /// empty rather than holding the announcement back).
    pub fn of_row(t: &crate::store::tickets::TicketRow) -> Self {
        let evidence = serde_json::from_str(&t.evidence).unwrap_or_else(|_| Evidence {
            risk: t.risk,
            threshold: 0.0,
            model_version: t.model_version.clone(),
            scored_at_ms: 0,
            top_features: Vec::new(),
            safety: Vec::new(),
            telemetry: Vec::new(),
            reasoning: Vec::new(),
        });
        TicketAnnouncement {
            id: t.id,
            ticket_ref: t.ticket_ref.clone(),
            device_id: t.device_id.clone(),
            tenant: t.tenant.clone(),
            customer_id: t.customer_id.clone(),
            problem: t.problem,
            state: t.state,
            tier: t.tier,
            offer: t.offer_kind,
            quote_minor: t.quote_minor.map(|q| q as u64),
            currency: t.currency.clone(),
            opened_ms: t.opened_ms as u64,
            due_ms: t.due_ms as u64,
            evidence,
        }
    }
}

impl WebhookBody {
    /// The announcement of a breached SLA: the ticket's `due_ms` is when it ran out.
    pub fn sla_breached(ticket: TicketAnnouncement) -> Self {
        WebhookBody {
            version: WEBHOOK_VERSION,
            event: WebhookEvent::TicketSlaBreached,
            ticket,
        }
    }

    /// The announcement of a new ticket.
    pub fn opened(ticket: TicketAnnouncement) -> Self {
        WebhookBody {
            version: WEBHOOK_VERSION,
            event: WebhookEvent::TicketOpened,
            ticket,
        }
    }

    /// The JSON text posted.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a webhook body serialises")
    }
}

/// The signature header's value for a body.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header against a body, in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The webhook worker.
#[derive(Debug, Clone)]
pub struct WebhookWorker {
    /// Secret per endpoint URL.
    pub secrets: HashMap<String, String>,
    /// Attempts before a delivery is given up (and counted as failed).
    pub max_attempts: u32,
    /// Retry schedule: doubling from the first delay, at most an hour.
    pub retry: Backoff,
    /// How often the outbox is checked.
    pub poll: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl WebhookWorker {
    /// Delivers due webhooks until `stop`.
    pub async fn run(
        self,
        store: crate::store::Store,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .expect("an HTTP client with rustls");
        loop {
            if let Err(e) = self.deliver_due(&store, &http, &metrics).await {
                events::OutboxFailed {
                    outbox: "webhooks",
                    error: &e,
                }
                .emit(&metrics);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass over the outbox: deliveries that succeeded.
    pub async fn deliver_due(
        &self,
        store: &crate::store::Store,
        http: &reqwest::Client,
        metrics: &Metrics,
    ) -> Result<usize, crate::store::StoreError> {
        let mut delivered = 0;
        // A replica that dies mid-request leaves its claim to lapse: retried then.
        let lease = (self.timeout + Duration::from_secs(30)).as_millis() as u64;
        let now = wall_ms();
        for w in store.claim_webhooks(now, now + lease, 100).await? {
            let attempts = w.attempts + 1;
            let secret = self.secrets.get(&w.url).map(String::as_str).unwrap_or("");
            let result = http
                .post(&w.url)
                .header("content-type", "application/json")
                .header(
                    "x-fleet-signature",
                    sign(secret.as_bytes(), w.body.as_bytes()),
                )
                .header("x-fleet-delivery", w.id.to_string())
                .body(w.body)
                .send()
                .await;
            let error = match result {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("HTTP {}", resp.status())),
                Err(e) => Some(e.to_string()),
            };
            match error {
                None => {
                    store.webhook_delivered(w.id, wall_ms(), attempts).await?;
                    events::WebhookDelivered {
                        url: &w.url,
                        attempts,
                    }
                    .emit(metrics);
                    delivered += 1;
                }
                Some(error) => {
                    let give_up = attempts >= self.max_attempts;
                    let next = wall_ms() + self.retry.delay(attempts).as_millis() as u64;
                    store
                        .webhook_failed(w.id, attempts, next, give_up, &error)
                        .await?;
                    events::WebhookFailed {
                        url: &w.url,
                        attempts,
                        error: &error,
                        give_up,
                    }
                    .emit(metrics);
                }
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let s = sign(b"k", b"{\"a\":1}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify(b"k", b"{\"a\":1}", &s));
        assert!(!verify(b"k", b"{\"a\":2}", &s));
        assert!(!verify(b"other", b"{\"a\":1}", &s));
        assert!(!verify(b"k", b"{\"a\":1}", "md5=00"));
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The example in docs/ingest.md is a body of this type, and says every field.
    #[test]
    fn the_documented_example_is_a_webhook_body() {
        let doc = include_str!("../../../docs/ingest.md");
        let start = doc
            .find("<!-- webhook-example -->")
            .expect("docs/ingest.md marks its webhook example");
        let json = doc[start..]
            .split("```json")
            .nth(1)
            .and_then(|s| s.split("```").next())
            .expect("a json block after the marker");
        let body: WebhookBody = serde_json::from_str(json).expect("the example parses");
        assert_eq!(body.version, WEBHOOK_VERSION);
        assert_eq!(body.event, WebhookEvent::TicketOpened);
        // Nothing in the example that the type does not carry, and nothing missing.
        let written: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_value(&body).unwrap(), written);
    }
}
