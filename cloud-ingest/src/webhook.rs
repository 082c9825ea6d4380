//! Webhooks: every new ticket is POSTed as JSON to the configured endpoints, signed
//! with HMAC-SHA256 over the body (`X-Fleet-Signature: sha256=<hex>`), from an outbox
//! written in the ticket's own transaction, retried with exponential backoff, by a
//! worker of its own: a slow or failing endpoint never holds up ingest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::Row;
use tokio::sync::watch;

use crate::metrics::{label, Metrics};
use crate::offers::wall_ms;
use crate::store::{Store, StoreError};

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
    /// First retry delay; doubles per attempt, at most an hour.
    pub backoff: Duration,
    /// How often the outbox is checked.
    pub poll: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl WebhookWorker {
    /// Delivers due webhooks until `stop`.
    pub async fn run(self, store: Store, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .expect("an HTTP client with rustls");
        loop {
            if let Err(e) = self.deliver_due(&store, &http, &metrics).await {
                tracing::warn!("webhook outbox: {e}");
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
        store: &Store,
        http: &reqwest::Client,
        metrics: &Metrics,
    ) -> Result<usize, StoreError> {
        let now = wall_ms();
        let rows = sqlx::query(
            "SELECT id, url, body, attempts FROM webhook_outbox
             WHERE delivered_ms IS NULL AND failed = 0 AND next_wall_ms <= $1 ORDER BY id LIMIT 100",
        )
        .bind(now as i64)
        .fetch_all(store.pool())
        .await?;
        let mut delivered = 0;
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let url: String = r.try_get(1)?;
            let body: String = r.try_get(2)?;
            let attempts: i64 = r.try_get::<i64, _>(3)? + 1;
            let secret = self.secrets.get(&url).map(String::as_str).unwrap_or("");
            let result = http
                .post(&url)
                .header("content-type", "application/json")
                .header(
                    "x-fleet-signature",
                    sign(secret.as_bytes(), body.as_bytes()),
                )
                .header("x-fleet-delivery", id.to_string())
                .body(body)
                .send()
                .await;
            let error = match result {
                Ok(resp) if resp.status().is_success() => None,
                Ok(resp) => Some(format!("HTTP {}", resp.status())),
                Err(e) => Some(e.to_string()),
            };
            match error {
                None => {
                    sqlx::query(
                        "UPDATE webhook_outbox SET delivered_ms = $2, attempts = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(wall_ms() as i64)
                    .bind(attempts)
                    .execute(store.pool())
                    .await?;
                    metrics
                        .webhooks
                        .get_or_create(&label("outcome", "delivered"))
                        .inc();
                    delivered += 1;
                }
                Some(e) => {
                    let give_up = attempts >= i64::from(self.max_attempts);
                    let delay = (self.backoff.as_millis() as u64 * (1u64 << attempts.clamp(0, 20)))
                        .min(3_600_000);
                    tracing::warn!(
                        url,
                        attempts,
                        "webhook delivery failed: {e}{}",
                        if give_up { "; giving up" } else { "" }
                    );
                    sqlx::query(
                        "UPDATE webhook_outbox SET attempts = $2, next_wall_ms = $3, failed = $4, last_error = $5 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(attempts)
                    .bind((wall_ms() + delay) as i64)
                    .bind(i64::from(give_up))
                    .bind(e)
                    .execute(store.pool())
                    .await?;
                    let outcome = if give_up { "failed" } else { "retry" };
                    metrics
                        .webhooks
                        .get_or_create(&label("outcome", outcome))
                        .inc();
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
}
