//! Faults with real processes, each while devices keep publishing: Mosquitto (with
//! persistence) restarted, the network between ingest and the broker cut and restored,
//! the SQLite volume full and then freed. Each time: every message the broker
//! acknowledged ends up stored exactly once, no ticket opens twice, the same ingest
//! recovers by itself, and `/healthz` says what is wrong meanwhile.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloud_ingest::config::Config;
use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::Channel;
use tests::faults::{AckedPublisher, Broker, Postgres, Proxy};
use tests::services::{self, Mqtt};

const DEVICES: usize = 6;
const BEATS: u64 = 60;
/// Devices 0 and 1 swell after beat 30: one safety ticket each, once.
const SWOLLEN: usize = 2;

/// `/healthz` as (status, body).
async fn health(ingest: &Running) -> (u16, serde_json::Value) {
    let addr = ingest.http.lock().unwrap().expect("HTTP bound");
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz answers");
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Waits until `/healthz` reports `field` as `value` (and so a 503).
async fn health_says(ingest: &Running, field: &str, value: bool) -> serde_json::Value {
    eventually(
        &format!("/healthz to say {field} = {value}"),
        Duration::from_secs(20),
        || async {
            let (status, body) = health(ingest).await;
            (body[field] == value && (value || status == 503)).then_some(body)
        },
    )
    .await
}

fn ingest_config(mqtt: &Mqtt, tenant: &str, url: &str) -> Config {
    let mut c = config(mqtt, tenant, url);
    c.http.listen = Some("127.0.0.1:0".parse().unwrap());
    c
}

struct Stream {
    tenant: String,
    ids: Vec<String>,
    t0: u64,
    next: u64,
}

impl Stream {
    fn new(tenant: &str) -> Stream {
        Stream {
            tenant: tenant.to_owned(),
            ids: (0..DEVICES).map(|i| format!("dev-{i:02}")).collect(),
            t0: now_ms() - 3 * 3_600_000,
            next: 1,
        }
    }

    /// Publishes beats up to `until` (inclusive) for every device, each acknowledged.
    async fn publish_until(&mut self, p: &mut AckedPublisher, until: u64) {
        while self.next <= until {
            let k = self.next;
            for (i, d) in self.ids.iter().enumerate() {
                let soh = if i < SWOLLEN && k > 30 { 55.0 } else { 96.0 };
                let payload = heartbeat(d, k, self.t0 + k * 60_000, soh);
                p.publish(&topic(&self.tenant, d, Channel::Heartbeat), &payload)
                    .await;
            }
            self.next += 1;
        }
    }
}

/// Everything acknowledged is stored once, and each swollen device has one ticket.
async fn everything_stored_once(store: &Store, ingest: &Running) {
    eventually(
        "every acknowledged message to be stored",
        Duration::from_secs(60),
        || async {
            assert!(!ingest.task.is_finished(), "ingest stopped");
            (store.message_count().await.unwrap() >= DEVICES as u64 * BEATS).then_some(())
        },
    )
    .await;
    for i in 0..DEVICES {
        let stats = store
            .device_status(&format!("dev-{i:02}"))
            .await
            .unwrap()
            .unwrap()
            .stats;
        assert_eq!((stats.count, stats.missing()), (BEATS, 0), "dev-{i:02}");
    }
    let ticketed: Vec<String> = store
        .tickets()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.device_id)
        .collect();
    let unique: BTreeSet<&str> = ticketed.iter().map(String::as_str).collect();
    assert_eq!(
        ticketed.len(),
        unique.len(),
        "a ticket opened twice: {ticketed:?}"
    );
    assert_eq!(unique, BTreeSet::from(["dev-00", "dev-01"]));
}

fn sqlite(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("fleet.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_restarted_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let tenant = tests::unique("restart");
    let url = sqlite(dir.path());
    let store = Store::open(&url, 1, SqliteSync::Normal).await.unwrap();
    let ingest = start(ingest_config(&broker.mqtt, &tenant, &url)).await;
    let mut publisher = AckedPublisher::connect(&broker.mqtt, &tests::unique("pub"));
    let mut stream = Stream::new(&tenant);

    stream.publish_until(&mut publisher, 20).await;
    broker.stop();
    let body = health_says(&ingest, "mqtt_connected", false).await;
    assert_eq!(body["status"], "degraded");
    broker.resume();
    stream.publish_until(&mut publisher, 40).await;
    // Twice, the second time with ingest's messages still queued in the broker.
    broker.restart();
    stream.publish_until(&mut publisher, BEATS).await;

    everything_stored_once(&store, &ingest).await;
    health_says(&ingest, "mqtt_connected", true).await;
    let report = ingest.finish().await;
    assert_eq!(report.accepted, DEVICES as u64 * BEATS, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_to_the_broker_cut_and_restored() {
    let mqtt = services::mqtt();
    let proxy = Proxy::start(&mqtt).await;
    let tenant = tests::unique("cut");
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(dir.path());
    let store = Store::open(&url, 1, SqliteSync::Normal).await.unwrap();
    let ingest = start(ingest_config(&proxy.mqtt, &tenant, &url)).await;
    // The devices reach the broker directly; only ingest's link is cut.
    let mut publisher = AckedPublisher::connect(&mqtt, &tests::unique("pub"));
    let mut stream = Stream::new(&tenant);

    stream.publish_until(&mut publisher, 20).await;
    proxy.cut();
    health_says(&ingest, "mqtt_connected", false).await;
    // Published while ingest cannot see the broker: queued in its session.
    stream.publish_until(&mut publisher, 45).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    stream.publish_until(&mut publisher, BEATS).await;

    everything_stored_once(&store, &ingest).await;
    health_says(&ingest, "mqtt_connected", true).await;
    ingest.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_stream() {
    let mqtt = services::mqtt();
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start(dir.path());
    let tenant = tests::unique("pgrestart");
    let store = Store::open(&pg.url, 2, SqliteSync::Normal).await.unwrap();
    let ingest = start(ingest_config(&mqtt, &tenant, &pg.url)).await;
    let mut publisher = AckedPublisher::connect(&mqtt, &tests::unique("pub"));
    let mut stream = Stream::new(&tenant);

    stream.publish_until(&mut publisher, 20).await;
    pg.stop();
    // Accepted by the broker while the database is down: waiting in ingest's session.
    stream.publish_until(&mut publisher, 30).await;
    let body = health_says(&ingest, "store_reachable", false).await;
    assert_eq!(body["store_writable"], false, "{body}");
    pg.resume();
    stream.publish_until(&mut publisher, BEATS).await;

    everything_stored_once(&store, &ingest).await;
    health_says(&ingest, "store_writable", true).await;
    ingest.finish().await;
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a {size} tmpfs at {} failed: this test needs root (scripts/test.sh runs as root in CI)",
            at.display()
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system holding `dir` with a file, until it refuses more.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_volume_full_and_then_freed() {
    let mqtt = services::mqtt();
    let outer = tempfile::tempdir().unwrap();
    let volume = Tmpfs::mount(&outer.path().join("volume"), "8m");
    let tenant = tests::unique("full");
    let url = sqlite(&volume.0);
    let store = Store::open(&url, 1, SqliteSync::Normal).await.unwrap();
    let ingest = start(ingest_config(&mqtt, &tenant, &url)).await;
    let mut publisher = AckedPublisher::connect(&mqtt, &tests::unique("pub"));
    let mut stream = Stream::new(&tenant);

    stream.publish_until(&mut publisher, 10).await;
    eventually(
        "the first beats stored",
        Duration::from_secs(20),
        || async { (store.message_count().await.unwrap() >= DEVICES as u64 * 10).then_some(()) },
    )
    .await;
    let filler = fill(&volume.0);
    stream.publish_until(&mut publisher, 40).await;
    let body = health_says(&ingest, "store_writable", false).await;
    assert!(
        body["store_error"]
            .as_str()
            .is_some_and(|e| e.contains("full")),
        "{body}"
    );
    assert_eq!(body["store_reachable"], true, "reads still work: {body}");
    std::fs::remove_file(filler).unwrap();
    stream.publish_until(&mut publisher, BEATS).await;

    everything_stored_once(&store, &ingest).await;
    health_says(&ingest, "store_writable", true).await;
    ingest.finish().await;
    store.close().await;
}
