//! Shared by the ingest tests: messages, a configured ingest, and waiting.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cloud_ingest::config::Config;
use cloud_ingest::ingest::OpenedTicket;
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::service::{self, Observers, RunReport};
use protocol::clock::{Clock, SystemClock};
use protocol::heartbeat::Heartbeat;
use protocol::ids::{DeviceId, Seq};
use protocol::{examples, Channel, Envelope, Limits, Message, TenantId, Timestamp, Topic};
use tests::services::Mqtt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Now, ms.
pub fn now_ms() -> u64 {
    Timestamp::from_system_time(std::time::SystemTime::now()).0
}

/// A topic string.
pub fn topic(tenant: &str, device: &str, channel: Channel) -> String {
    Topic::new(
        TenantId::new(tenant).unwrap(),
        DeviceId::new(device).unwrap(),
        channel,
    )
    .to_string()
}

/// A heartbeat of a healthy device, or (with `soh` below 60 %) of one whose battery
/// may swell: a safety signal the policy answers with a high-tier ticket.
pub fn heartbeat(device: &str, seq: u64, ts: u64, soh: f32) -> Vec<u8> {
    let mut e: Envelope<Heartbeat> = examples::heartbeat();
    e.device_id = DeviceId::new(device).unwrap();
    e.seq = Seq(seq);
    e.ts_ms = Timestamp(ts);
    e.body.reboots.clear();
    e.body.crashes = 0;
    e.body.crash_free_s = e.body.operational_s;
    e.body.connectivity.disconnects = 0;
    e.body.features = None;
    if let Some(b) = e.body.battery.as_mut() {
        b.soh_pct = Some(soh);
        b.max_drop_pct = 3.0;
        b.soc_start_pct = 60.0;
        b.soc_end_pct = 57.0;
        b.soc_min_pct = 57.0;
        b.charge_cycles = 120;
    }
    Message::Heartbeat(e).encode(&Limits::default()).unwrap()
}

/// A birth.
pub fn birth(device: &str, seq: u64, ts: u64) -> Vec<u8> {
    let mut e = examples::birth();
    e.device_id = DeviceId::new(device).unwrap();
    e.seq = Seq(seq);
    e.ts_ms = Timestamp(ts);
    Message::State(e).encode(&Limits::default()).unwrap()
}

/// A configuration for one test: its own tenant, session and store; no HTTP.
pub fn config(mqtt: &Mqtt, tenant: &str, store_url: &str) -> Config {
    let mut c = Config::default();
    c.mqtt.url = format!("mqtt://{}:{}", mqtt.host, mqtt.port);
    c.mqtt.client_id = tests::unique("ingest");
    c.mqtt.tenant = Some(tenant.to_owned());
    c.store.url = store_url.to_owned();
    c.http.listen = None;
    c.ingest.batch_wait_ms = 5;
    c.mqtt.command_resend_s = 1;
    c
}

/// A running ingest.
pub struct Running {
    /// Its task.
    pub task: JoinHandle<anyhow::Result<RunReport>>,
    /// Stops it.
    pub stop: watch::Sender<bool>,
    /// Tickets as they open.
    pub tickets: mpsc::UnboundedReceiver<OpenedTicket>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its HTTP address, when it listens.
    pub http: Arc<std::sync::Mutex<Option<std::net::SocketAddr>>>,
}

/// Starts ingest and waits until it is subscribed.
pub async fn start(config: Config) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready) = watch::channel(false);
    let (tx, tickets) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let http = Arc::new(std::sync::Mutex::new(None));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let task = tokio::spawn(service::run(
        config,
        clock,
        stop_rx,
        Observers {
            tickets: Some(tx),
            ready: Some(ready_tx),
            http_bound: Some(http.clone()),
            metrics: Some(metrics.clone()),
        },
    ));
    tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
        .await
        .expect(
            "ingest did not subscribe within 20 s; is Mosquitto running? scripts/test.sh starts it",
        )
        .expect("ingest stopped before subscribing");
    Running {
        task,
        stop,
        tickets,
        metrics,
        http,
    }
}

impl Running {
    /// The error a stopped ingest ended with (panics if it still runs).
    pub async fn failure(self) -> String {
        match self.task.await {
            Ok(Ok(r)) => format!("stopped without error: {r:?}"),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) => format!("panicked: {e}"),
        }
    }

    /// Stops gracefully and returns the report.
    pub async fn finish(self) -> RunReport {
        let _ = self.stop.send(true);
        self.task
            .await
            .expect("ingest panicked")
            .expect("ingest failed")
    }
}

/// Polls `check` until it yields `Some`, or fails naming `what` after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A webhook delivery as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct Hook {
    /// `X-Fleet-Signature`.
    pub signature: String,
    /// `X-Fleet-Delivery`.
    pub delivery: String,
    /// The body.
    pub body: String,
}

/// A webhook endpoint that hands over every request it receives.
pub async fn webhook_sink() -> (String, mpsc::UnboundedReceiver<Hook>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let _ = tx.send(Hook {
                    signature: header("x-fleet-signature"),
                    delivery: header("x-fleet-delivery"),
                    body,
                });
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}
