//! A small MQTT client for tests: connect, subscribe, publish, and wait for messages.
//! The event loop runs in its own task (rumqttc hangs when one task both polls and
//! publishes), and forwards what arrives over a channel.

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

/// A connected test client.
pub struct Probe {
    /// The client, for publishing and subscribing.
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Received>,
    acks: mpsc::UnboundedReceiver<Packet>,
    task: JoinHandle<()>,
}

impl Probe {
    /// Connects anonymously and waits for the CONNACK.
    pub async fn connect(service: &Mqtt, client_id: &str) -> Probe {
        Self::connect_with(service, client_id, None).await
    }

    /// Connects with optional credentials and waits for the CONNACK; panics with the
    /// broker's address if it does not come.
    pub async fn connect_with(
        service: &Mqtt,
        client_id: &str,
        credentials: Option<(&str, &str)>,
    ) -> Probe {
        let mut opts = MqttOptions::new(client_id, service.host.clone(), service.port);
        opts.set_keep_alive(Duration::from_secs(10));
        if let Some((user, pass)) = credentials {
            opts.set_credentials(user, pass);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let where_ = format!("{}:{}", service.host, service.port);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(Event::Incoming(p)) => {
                        let _ = ack_tx.send(p);
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = ack_tx.send(Packet::Disconnect);
                        eprintln!("MQTT connection to {where_} ended: {e}");
                        return;
                    }
                }
            }
        });
        let mut probe = Probe {
            client,
            rx,
            acks,
            task,
        };
        let addr = format!("{}:{}", service.host, service.port);
        match probe.next_ack().await {
            Some(Packet::ConnAck(c)) if c.code == rumqttc::ConnectReturnCode::Success => probe,
            other => panic!(
                "cannot connect to the MQTT broker at {addr} ({other:?}); is Mosquitto \
                 running? scripts/test.sh starts it"
            ),
        }
    }

    async fn next_ack(&mut self) -> Option<Packet> {
        tokio::time::timeout(SERVICE_TIMEOUT, self.acks.recv())
            .await
            .ok()
            .flatten()
    }

    /// Subscribes with QoS 1 and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        loop {
            match self.next_ack().await {
                Some(Packet::SubAck(_)) => return,
                Some(Packet::Disconnect) | None => panic!("no SUBACK for {filter}"),
                Some(_) => continue,
            }
        }
    }

    /// Publishes with QoS 1 and waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("queue publish");
        loop {
            match self.next_ack().await {
                Some(Packet::PubAck(_)) => return,
                Some(Packet::Disconnect) | None => panic!("no PUBACK for {topic}"),
                Some(_) => continue,
            }
        }
    }

    /// The next message, or `None` after `wait`.
    pub async fn recv(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
