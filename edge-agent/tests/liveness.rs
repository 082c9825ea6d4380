//! A device's life as the cloud sees it: the real `edge-agent` binary against the test
//! command's Mosquitto and the real ingest. A SIGKILLed agent goes offline (its Last
//! Will, composed at connect and so older than its birth, is dated on receipt), and
//! comes back online when it starts again; one that loses its state is heard again.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cloud_ingest::config::Config;
use cloud_ingest::service::{self, Observers};
use cloud_ingest::store::devices::DeviceStatus;
use cloud_ingest::store::{SqliteSync, Store};
use protocol::clock::{Clock, SystemClock};
use tokio::sync::watch;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts Mosquitto")
    })
}

/// Kills the agent when dropped, so none outlives the test.
struct Agent(Child);

impl Agent {
    fn start(config: &std::path::Path) -> Agent {
        Agent(
            Command::new(env!("CARGO_BIN_EXE_edge-agent"))
                .args(["--config", config.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting edge-agent"),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the store says the device is `online` (or not).
async fn until_online(store: &Store, device: &str, online: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = store.device_status(device).await.unwrap();
        if status.as_ref().is_some_and(|s| s.online == online) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{device} not {} within 20 s: {status:?}",
            if online { "online" } else { "offline" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ingest on a fresh SQLite store, subscribed to the test command's Mosquitto for a
/// tenant of its own, and an agent configuration for one device of that tenant.
struct Rig {
    dir: tempfile::TempDir,
    store: Store,
    stop: watch::Sender<bool>,
    ingest: tokio::task::JoinHandle<anyhow::Result<service::RunReport>>,
    agent_config: std::path::PathBuf,
}

impl Rig {
    async fn start(device: &str) -> Rig {
        let broker = env("FLEET_TEST_MQTT_URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tenant = format!("live{nanos}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fleet.db").display());

        let mut config = Config::default();
        config.mqtt.url = broker.clone();
        config.mqtt.client_id = format!("ingest-{nanos}");
        config.mqtt.tenant = Some(tenant.clone());
        config.store.url = url.clone();
        config.http.listen = None;
        config.ingest.batch_wait_ms = 5;
        let store = Store::open(&url, 1, SqliteSync::Full).await.unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, mut ready) = watch::channel(false);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ingest = tokio::spawn(service::run(
            config,
            clock,
            stop_rx,
            Observers {
                ready: Some(ready_tx),
                ..Observers::default()
            },
        ));
        tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
            .await
            .expect("ingest did not subscribe within 20 s")
            .expect("ingest stopped before subscribing");

        let root = dir.path().join("root");
        for (d, f, v) in [
            ("sys/class/power_supply/BAT0", "type", "Battery"),
            ("sys/class/power_supply/BAT0", "capacity", "80"),
            ("sys/class/power_supply/BAT0", "status", "Discharging"),
            ("proc", "loadavg", "1.0 1.0 1.0 1/1 1"),
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            std::fs::write(root.join(d).join(f), format!("{v}\n")).unwrap();
        }
        let agent_config = dir.path().join("agent.toml");
        std::fs::write(
            &agent_config,
            format!(
                "device_id = \"{device}\"\ntenant = \"{tenant}\"\nbroker = \"{broker}\"\n\
                 state_dir = \"{}\"\nsysfs_root = \"{}\"\n[settings]\nsample_interval_s = 1\n\
                 heartbeat_interval_s = 1\n[spool]\nfsync = false\n",
                dir.path().join("state").display(),
                root.display()
            ),
        )
        .unwrap();
        Rig {
            dir,
            store,
            stop,
            ingest,
            agent_config,
        }
    }

    /// Stops ingest; its report.
    async fn stop(self) -> service::RunReport {
        let _ = self.stop.send(true);
        self.ingest.await.unwrap().expect("ingest ran")
    }
}

/// Waits until `what` holds of the device's status.
async fn until(store: &Store, device: &str, what: &str, ok: impl Fn(&DeviceStatus) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = store.device_status(device).await.unwrap();
        if status.as_ref().is_some_and(&ok) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{device}: not {what} within 30 s: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_goes_offline_and_comes_back_online() {
    let device = "dev-live";
    let rig = Rig::start(device).await;
    let agent = Agent::start(&rig.agent_config);
    until_online(&rig.store, device, true).await;
    drop(agent); // SIGKILL: no goodbye; the broker publishes the Last Will.
    until_online(&rig.store, device, false).await;
    let agent = Agent::start(&rig.agent_config);
    until_online(&rig.store, device, true).await;
    drop(agent);
    until_online(&rig.store, device, false).await;

    let report = rig.stop().await;
    assert_eq!(report.rejected, 0, "{report:?}");
    assert!(report.accepted > 4, "{report:?}");
}

/// A device whose state file is lost counts its seqs from the start again, under a new
/// epoch: the cloud keeps its new messages (they used to be dropped as repeats until
/// the count passed the old high-water mark) and counts the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_loses_its_state_is_heard_under_a_new_epoch() {
    let device = "dev-amnesia";
    let rig = Rig::start(device).await;
    let agent = Agent::start(&rig.agent_config);
    until(&rig.store, device, "past seq 8", |s| s.stats.max_seq >= 8).await;
    drop(agent);
    let first = rig.store.device_status(device).await.unwrap().unwrap();
    std::fs::remove_dir_all(rig.dir.path().join("state")).unwrap();

    let agent = Agent::start(&rig.agent_config);
    until(&rig.store, device, "reset and heard again", |s| {
        s.seq_resets == 1 && s.epoch != first.epoch && s.stats.max_seq >= 4
    })
    .await;
    drop(agent);
    // Its Last Will holds the seq reserved at connect: once it is in, no seq is missing.
    until_online(&rig.store, device, false).await;
    let again = rig.store.device_status(device).await.unwrap().unwrap();
    assert_eq!(
        again.stats.min_seq, 1,
        "the new epoch counts from 1: {again:?}"
    );
    assert!(
        again.stats.count >= first.stats.count + 4,
        "every new message is kept: {first:?} then {again:?}"
    );
    assert_eq!(again.missing, 0, "{again:?}");
    let epochs = rig.store.seq_epochs(device).await.unwrap();
    assert_eq!(epochs.len(), 2, "{epochs:?}");
    assert_eq!((epochs[0].0, epochs[1].0), (first.epoch, again.epoch));

    let report = rig.stop().await;
    assert_eq!(report.rejected, 0, "{report:?}");
}
