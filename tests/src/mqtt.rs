//! A small MQTT client for tests: connect, subscribe, publish, and wait for messages.
//! The event loop runs in its own task (rumqttc hangs when one task both polls and
//! publishes) and forwards what arrives over channels.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::services::{Mqtt, SERVICE_TIMEOUT};

/// A publish that arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Whether the broker delivered it as retained.
    pub retain: bool,
}

/// Why a probe got no answer it wanted.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The connection failed or was closed by the broker.
    #[error("the connection to the MQTT broker failed: {0}")]
    Connection(#[from] rumqttc::ConnectionError),
    /// The broker answered something else than a CONNACK.
    #[error("the MQTT broker answered {0}")]
    Unexpected(String),
    /// The connection task is gone.
    #[error("the connection task ended")]
    Ended,
    /// Nothing arrived in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A connected test client.
pub struct Probe {
    /// The client, for publishing and subscribing.
    pub client: AsyncClient,
    publishes: mpsc::UnboundedReceiver<Received>,
    // Every other incoming packet, or the error that ended the connection.
    control: mpsc::UnboundedReceiver<Result<Packet, rumqttc::ConnectionError>>,
    task: JoinHandle<()>,
}

impl Probe {
    /// Connects anonymously and waits for the CONNACK; panics if the broker refuses.
    pub async fn connect(service: &Mqtt, client_id: &str) -> Probe {
        Self::connect_with(service, client_id, None).await
    }

    /// Connects with optional credentials and waits for the CONNACK; panics with the
    /// broker's address and answer if it refuses.
    pub async fn connect_with(
        service: &Mqtt,
        client_id: &str,
        credentials: Option<(&str, &str)>,
    ) -> Probe {
        Self::try_connect(service, client_id, credentials)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}:{}: {e}; is Mosquitto running? scripts/test.sh starts it",
                    service.host, service.port
                )
            })
    }

    /// Connects with optional credentials; the error says what the broker answered.
    pub async fn try_connect(
        service: &Mqtt,
        client_id: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Probe, ProbeError> {
        let mut opts = MqttOptions::new(client_id, service.host.clone(), service.port);
        opts.set_keep_alive(Duration::from_secs(10));
        // Tests send oversize payloads on purpose: only the broker's limit applies.
        opts.set_max_packet_size(1 << 20, 1 << 20);
        if let Some((user, pass)) = credentials {
            opts.set_credentials(user, pass);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (pub_tx, publishes) = mpsc::unbounded_channel();
        let (ctl_tx, control) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = pub_tx.send(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Event::Incoming(p)) => {
                        let _ = ctl_tx.send(Ok(p));
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = ctl_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut probe = Probe {
            client,
            publishes,
            control,
            task,
        };
        match probe.next_control().await? {
            Packet::ConnAck(_) => Ok(probe),
            other => Err(ProbeError::Unexpected(format!("{other:?}"))),
        }
    }

    async fn next_control(&mut self) -> Result<Packet, ProbeError> {
        match tokio::time::timeout(SERVICE_TIMEOUT, self.control.recv()).await {
            Ok(Some(r)) => Ok(r?),
            Ok(None) => Err(ProbeError::Ended),
            Err(_) => Err(ProbeError::Timeout(SERVICE_TIMEOUT)),
        }
    }

    /// Subscribes with QoS 1 and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        self.wait_for("SUBACK", filter, |p| matches!(p, Packet::SubAck(_)))
            .await;
    }

    /// Publishes with QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("queue publish");
        self.wait_for("PUBACK", topic, |p| matches!(p, Packet::PubAck(_)))
            .await;
    }

    /// Waits for the first control packet that is `what`, passing over others.
    async fn wait_for(&mut self, what: &str, about: &str, is: fn(&Packet) -> bool) {
        loop {
            match self.next_control().await {
                Ok(p) if is(&p) => return,
                Ok(_) => continue,
                Err(e) => panic!("no {what} for {about}: {e}"),
            }
        }
    }

    /// The next message, or `None` after `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.publishes.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
