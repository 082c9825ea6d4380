//! End-to-end ingest throughput through Mosquitto, beside a do-nothing rumqttc consumer
//! of the same stream in the same run, and the latency from the message that crosses
//! the line to the committed ticket.
//!
//! `cargo bench -p cloud-ingest --bench throughput` starts its own Mosquitto (from
//! Debian's `mosquitto` package, which `scripts/test.sh` installs) on a free loopback
//! port. Each consumer drains the same number of messages queued for its persistent
//! session while it was away, so what is timed is the consumer, not the publisher.
//! `BENCH_MESSAGES` (default 40000) sets the stream's length.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud_ingest::config::Config;
use cloud_ingest::ops::metrics::{label, Metrics};
use cloud_ingest::service::{self, Observers};
use cloud_ingest::store::SqliteSync;
use protocol::clock::{Clock, SystemClock};
use protocol::heartbeat::Heartbeat;
use protocol::ids::{DeviceId, Seq};
use protocol::{examples, Envelope, Limits, Message, Timestamp};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};

fn heartbeat(device: &str, seq: u64, ts: u64, soh: f32) -> Vec<u8> {
    let mut e: Envelope<Heartbeat> = examples::heartbeat();
    e.device_id = DeviceId::new(device).unwrap();
    e.seq = Seq(seq);
    e.ts_ms = Timestamp(ts);
    e.body.reboots.clear();
    e.body.crashes = 0;
    e.body.features = None;
    if let Some(b) = e.body.battery.as_mut() {
        b.soh_pct = Some(soh);
        b.max_drop_pct = 3.0;
    }
    Message::Heartbeat(e).encode(&Limits::default()).unwrap()
}

fn now_ms() -> u64 {
    Timestamp::from_system_time(std::time::SystemTime::now()).0
}

struct Mosquitto(Child, PathBuf);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_mosquitto() -> (Mosquitto, u16) {
    let bin = ["mosquitto", "/usr/sbin/mosquitto"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("-h")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .expect("mosquitto is not installed: apt-get install mosquitto (scripts/test.sh does)");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 1000\nlog_dest none\n"
        ),
    )
    .unwrap();
    // Owned by the guard at once: it is killed and reaped whatever happens next.
    let broker = Mosquitto(Command::new(bin).arg("-c").arg(&conf).spawn().unwrap(), dir);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (broker, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("mosquitto did not listen on {port}");
}

/// Publishes every message with QoS 1 and waits for every PUBACK.
async fn publish_all(port: u16, messages: &[(String, Vec<u8>)]) {
    let mut opts = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    opts.set_inflight(500)
        .set_max_packet_size(32 * 1024, 32 * 1024);
    let (client, mut el) = AsyncClient::new(opts, 1000);
    let n = messages.len();
    let acks = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                got += 1;
            }
        }
    });
    for (t, p) in messages {
        client
            .publish(t.clone(), QoS::AtLeastOnce, false, p.clone())
            .await
            .unwrap();
    }
    acks.await.unwrap();
}

/// A do-nothing consumer: messages per second it drains from its session.
async fn null_consumer(port: u16, filter: &str, msgs: &[(String, Vec<u8>)]) -> f64 {
    let connect = || {
        let mut o = MqttOptions::new("bench-null", "127.0.0.1", port);
        o.set_clean_session(false)
            .set_max_packet_size(32 * 1024, 32 * 1024);
        AsyncClient::new(o, 1000)
    };
    let (c, mut el) = connect();
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = el.poll().await {
            break;
        }
    }
    c.disconnect().await.unwrap();
    while el.poll().await.is_ok() {}
    publish_all(port, msgs).await;
    let (_c, mut el) = connect();
    let started = Instant::now();
    let mut got = 0;
    while got < msgs.len() {
        if let Ok(Event::Incoming(Packet::Publish(_))) = el.poll().await {
            got += 1;
        }
    }
    got as f64 / started.elapsed().as_secs_f64()
}

fn ingest_config(port: u16, tenant: &str, db: &std::path::Path, sync: SqliteSync) -> Config {
    let mut c = Config::default();
    c.mqtt.url = format!("mqtt://127.0.0.1:{port}");
    c.mqtt.client_id = format!("bench-ingest-{tenant}");
    c.mqtt.tenant = Some(tenant.to_owned());
    c.store.url = format!("sqlite://{}", db.display());
    c.store.sqlite_synchronous = sync;
    c.http.listen = None;
    c
}

struct Ingest {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<service::RunReport>>,
    metrics: Arc<Metrics>,
    tickets: mpsc::UnboundedReceiver<cloud_ingest::ingest::OpenedTicket>,
}

async fn start_ingest(config: Config) -> Ingest {
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready) = watch::channel(false);
    let (tx, tickets) = mpsc::unbounded_channel();
    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let obs = Observers {
        tickets: Some(tx),
        ready: Some(ready_tx),
        metrics: Some(metrics.clone()),
        http_bound: None,
    };
    let task = tokio::spawn(service::run(config, clock, stop_rx, obs));
    ready.wait_for(|r| *r).await.unwrap();
    Ingest {
        stop,
        task,
        metrics,
        tickets,
    }
}

impl Ingest {
    fn accepted(&self) -> u64 {
        self.metrics
            .accepted
            .get_or_create(&label("channel", "heartbeat"))
            .get()
    }
    async fn finish(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

/// Ingest's drain rate of the same stream, messages per second.
async fn ingest_rate(port: u16, tenant: &str, msgs: &[(String, Vec<u8>)], sync: SqliteSync) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fleet.db");
    // First start makes the persistent session and its subscription; then it goes away.
    start_ingest(ingest_config(port, tenant, &db, sync))
        .await
        .finish()
        .await;
    publish_all(port, msgs).await;
    let started = Instant::now();
    let ingest = start_ingest(ingest_config(port, tenant, &db, sync)).await;
    while ingest.accepted() < msgs.len() as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = msgs.len() as f64 / started.elapsed().as_secs_f64();
    ingest.finish().await;
    rate
}

fn stream(tenant: &str, n: usize, devices: usize) -> Vec<(String, Vec<u8>)> {
    let t0 = now_ms() - 10 * 86_400_000;
    (0..n)
        .map(|i| {
            let d = format!("dev-{:04}", i % devices);
            let seq = (i / devices) as u64 + 1;
            let topic = format!("fleet/{tenant}/{d}/heartbeat");
            (topic, heartbeat(&d, seq, t0 + seq * 60_000, 96.0))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; nothing to list.
    }
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let (_broker, port) = start_mosquitto();
    println!("{n} heartbeats from 500 devices through Mosquitto on 127.0.0.1:{port}");

    let null = null_consumer(port, "fleet/null/+/heartbeat", &stream("null", n, 500)).await;
    let full = ingest_rate(port, "full", &stream("full", n, 500), SqliteSync::Full).await;
    let normal = ingest_rate(
        port,
        "normal",
        &stream("normal", n, 500),
        SqliteSync::Normal,
    )
    .await;
    println!("do-nothing rumqttc consumer      {null:>9.0} msg/s   1.00");
    println!(
        "cloud-ingest, SQLite sync=full   {full:>9.0} msg/s   {:.2} of the do-nothing consumer",
        full / null
    );
    println!(
        "cloud-ingest, SQLite sync=normal {normal:>9.0} msg/s   {:.2} of the do-nothing consumer",
        normal / null
    );

    // Latency: a steady background stream, and now and then a message that crosses the
    // line (a battery that may swell) for a new device; timed to its committed ticket.
    let dir = tempfile::tempdir().unwrap();
    let mut ingest = start_ingest(ingest_config(
        port,
        "lat",
        &dir.path().join("fleet.db"),
        SqliteSync::Full,
    ))
    .await;
    let mut opts = MqttOptions::new("bench-latency", "127.0.0.1", port);
    opts.set_inflight(500);
    let (client, mut el) = AsyncClient::new(opts, 1000);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let background = stream("lat", 1_000_000, 200);
    let samples = 200;
    let mut lat = Vec::with_capacity(samples);
    let t0 = now_ms();
    let mut bg = background.iter();
    for s in 0..samples {
        // About 2000 background messages per second between crossings.
        for _ in 0..100 {
            let (t, p) = bg.next().unwrap();
            client
                .publish(t.clone(), QoS::AtLeastOnce, false, p.clone())
                .await
                .unwrap();
        }
        let d = format!("hot-{s:04}");
        let sent = Instant::now();
        client
            .publish(
                format!("fleet/lat/{d}/heartbeat"),
                QoS::AtLeastOnce,
                false,
                heartbeat(&d, 1, t0, 55.0),
            )
            .await
            .unwrap();
        let t = tokio::time::timeout(Duration::from_secs(30), ingest.tickets.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.device_id, d);
        lat.push(sent.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "message crossing the line -> committed ticket ({samples} samples, ~2000 msg/s background): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    ingest.finish().await;
}
