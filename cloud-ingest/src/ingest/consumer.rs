//! The MQTT side of ingest: one persistent QoS 1 session that receives device messages
//! and publishes commands.
//!
//! The event loop is polled in its own task, which never waits on anything but the
//! socket: what arrives is handed over an unbounded channel (bounded in practice by the
//! broker's in-flight window, since nothing is acknowledged before it is committed).
//! Acknowledgements are manual: the pipeline acks a message only after the transaction
//! that holds its effects has committed, so a crash before that makes the broker
//! deliver it again, and deduplication absorbs the repeat.

use std::sync::Arc;
use std::time::Duration;

use protocol::broker::Endpoint;
use protocol::retry::Backoff;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, SubscribeFilter};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ops::events::{Emit, MqttConnectionLost, OversizeRecovered};
use crate::ops::metrics::Metrics;

/// Reconnect delays: rumqttc retries at once on the next poll, so the loop backs off
/// itself (pitfall 6).
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));

/// The largest packet MQTT can frame: a 268,435,455-byte remaining length and its
/// fixed header. Any packet a broker hands over fits in this.
const MQTT_MAX_PACKET: usize = 268_435_455 + 5;

/// The size of a packet the session refused for being over its limit, if that is why
/// the connection failed.
fn oversize(e: &rumqttc::ConnectionError) -> Option<usize> {
    match e {
        rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
            rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(size),
        )) => Some(*size),
        _ => None,
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// The broker.
    pub endpoint: Endpoint,
    /// The session's client id: stable, so the broker keeps the session across restarts.
    pub client_id: String,
    /// Subscription filters (already wrapped in `$share/...` when sharing).
    pub filters: Vec<String>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Largest packet accepted or sent.
    pub max_packet_bytes: usize,
}

/// A running MQTT session.
pub struct Consumer {
    /// The client: acks and command publishes go through it.
    pub client: AsyncClient,
    /// Messages as they arrive.
    pub deliveries: mpsc::UnboundedReceiver<Publish>,
    /// Whether the session is up.
    pub connected: watch::Receiver<bool>,
    /// Whether the subscription is in place (the broker acknowledged it, or resumed
    /// it with the session).
    pub subscribed: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Consumer {
    /// Starts the session; it connects (and reconnects, with backoff) in the background.
    pub fn start(s: &MqttSettings, metrics: Arc<Metrics>) -> Consumer {
        let url = &s.endpoint.url;
        let mut opts = MqttOptions::new(&s.client_id, &url.host, url.port);
        opts.set_keep_alive(s.keep_alive)
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_max_packet_size(s.max_packet_bytes, s.max_packet_bytes)
            .set_inflight(100)
            .set_request_channel_capacity(10_000);
        if let Some(c) = &s.endpoint.credentials {
            opts.set_credentials(&c.username, &c.password);
        }
        if url.tls {
            // One process-wide rustls provider: ring, which the workspace already builds.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let ca = s.endpoint.ca_pem.clone().unwrap_or_default();
            opts.set_transport(rumqttc::Transport::tls(ca, None, None));
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
        let (tx, deliveries) = mpsc::unbounded_channel();
        let (up_tx, connected) = watch::channel(false);
        let (sub_tx, subscribed) = watch::channel(false);
        let filters: Vec<SubscribeFilter> = s
            .filters
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        let sub_client = client.clone();
        let addr = s.endpoint.address();
        let max_packet = s.max_packet_bytes;
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        failures = 0;
                        tracing::info!(broker = %addr, session_present = ack.session_present, "MQTT connected");
                        // A resumed session keeps its subscriptions; a new one needs them.
                        // Subscribing is queued, never awaited, from this task (pitfall 1).
                        if ack.session_present {
                            let _ = sub_tx.send(true);
                        } else if let Err(e) = sub_client.try_subscribe_many(filters.clone()) {
                            tracing::error!("cannot queue the subscription: {e}");
                        }
                        let _ = up_tx.send(true);
                    }
                    Ok(Event::Incoming(Packet::SubAck(s))) => {
                        if s.return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        {
                            tracing::error!(?s.return_codes, "the broker refused a subscription");
                        } else {
                            tracing::debug!(?s.return_codes, "subscribed");
                            let _ = sub_tx.send(true);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = up_tx.send(false);
                        if let Some(size) = oversize(&e) {
                            // The broker handed over a packet above our limit and will hand
                            // it over again on every reconnect. Read it once with a limit
                            // that fits: decode dead-letters it as too large, and its ack
                            // moves the stream on.
                            let limit = (size + 5).min(MQTT_MAX_PACKET);
                            eventloop
                                .mqtt_options
                                .set_max_packet_size(limit, max_packet);
                            OversizeRecovered {
                                broker: &addr,
                                size,
                                limit,
                            }
                            .emit(&metrics);
                            continue;
                        }
                        let retry_in = RECONNECT.delay(failures);
                        failures = failures.saturating_add(1);
                        MqttConnectionLost {
                            broker: &addr,
                            error: &e,
                            retry_in,
                        }
                        .emit(&metrics);
                        tokio::time::sleep(retry_in).await;
                    }
                }
            }
        });
        Consumer {
            client,
            deliveries,
            connected,
            subscribed,
            task,
        }
    }

    /// Disconnects cleanly and stops the event loop.
    pub async fn stop(self) {
        let _ = self.client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }
}
