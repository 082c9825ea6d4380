//! The `edge-agent` binary against the test command's Mosquitto, reading a fake sysfs
//! tree: birth, heartbeat, the Last Will after SIGKILL, the goodbye after SIGTERM, and
//! the reboot reasons the next starts report.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use protocol::event::Event;
use protocol::state::{DeathCause, State};
use protocol::{Limits, Message};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

fn broker() -> (String, u16) {
    let url = std::env::var("FLEET_TEST_MQTT_URL").unwrap_or_else(|_| {
        panic!("FLEET_TEST_MQTT_URL is not set: run the tests through scripts/test.sh, which starts Mosquitto")
    });
    let rest = url.trim_start_matches("mqtt://");
    let (host, port) = rest.rsplit_once(':').expect("mqtt://host:port");
    (
        host.to_owned(),
        port.trim_end_matches('/').parse().expect("port"),
    )
}

fn fake_sysfs(root: &Path) {
    let bat = root.join("sys/class/power_supply/BAT0");
    std::fs::create_dir_all(&bat).unwrap();
    for (f, v) in [
        ("type", "Battery"),
        ("capacity", "87"),
        ("voltage_now", "3900000"),
        ("status", "Discharging"),
        ("charge_full", "3600000"),
        ("charge_full_design", "4000000"),
        ("cycle_count", "321"),
    ] {
        std::fs::write(bat.join(f), format!("{v}\n")).unwrap();
    }
    let zone = root.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("temp"), "41000\n").unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/loadavg"), "1.0 1.0 1.0 1/1 1\n").unwrap();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts Mosquitto")
    })
}

/// Subscribes to a tenant's topics through the plain listener; decoded messages go to `Seen`.
async fn watch(host: &str, port: u16, tenant: &str, nanos: u128) -> Seen {
    let mut opts = MqttOptions::new(format!("watch-{nanos}"), host, port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(opts, 16);
    client
        .subscribe(format!("fleet/{tenant}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = events.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(p)) = ev {
                let m = protocol::decode(&p.topic, &p.payload, &Limits::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.topic))
                    .message;
                let _ = tx.send(m);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    Seen {
        rx,
        all: Vec::new(),
        from: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_connects_over_tls_with_the_configured_ca() {
    let (host, port) = broker();
    let tls_url = env("FLEET_TEST_MQTT_TLS_URL");
    let ca = env("FLEET_TEST_MQTT_CA");
    let dir = tempfile::tempdir().unwrap();
    fake_sysfs(&dir.path().join("root"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("tls{nanos}");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "device_id = \"dev-tls\"\ntenant = \"{tenant}\"\nbroker = \"{tls_url}\"\ntls_ca = \"{ca}\"\n\
             state_dir = \"{}\"\nsysfs_root = \"{}\"\n[settings]\nsample_interval_s = 1\n\
             heartbeat_interval_s = 1\nbattery_drop_window_s = 5\n",
            dir.path().join("state").display(),
            dir.path().join("root").display()
        ),
    )
    .unwrap();
    let mut seen = watch(&host, port, &tenant, nanos).await;
    let _agent = start(&config);
    seen.wait(
        "birth over TLS",
        |m| matches!(m, Message::State(s) if matches!(s.body, State::Online(_))),
    )
    .await;
    seen.wait("heartbeat over TLS", |m| matches!(m, Message::Heartbeat(_)))
        .await;
}

fn start(config: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// Everything received, and where the current phase of the test started.
struct Seen {
    rx: mpsc::UnboundedReceiver<Message>,
    all: Vec<Message>,
    from: usize,
}

impl Seen {
    /// Starts a new phase: later waits look only at what arrives from now on.
    fn mark(&mut self) {
        while let Ok(m) = self.rx.try_recv() {
            self.all.push(m);
        }
        self.from = self.all.len();
    }

    /// The first message of this phase matching `f`, in any order of arrival.
    async fn wait(&mut self, what: &str, f: impl Fn(&Message) -> bool) -> Message {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = self.all[self.from..].iter().find(|m| f(m)) {
                return m.clone();
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.all.push(m),
                _ => panic!("no {what} within 20 s; saw {:?}", &self.all[self.from..]),
            }
        }
    }
}

/// Kills the agent if the test panics, so no agent outlives it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reboot_reason(m: &Message) -> Option<(String, bool)> {
    match m {
        Message::Event(e) => match &e.body {
            Event::Reboot(r) => Some((r.reason.to_string(), r.unclean)),
            _ => None,
        },
        _ => None,
    }
}

fn death(m: &Message) -> Option<DeathCause> {
    match m {
        Message::State(s) => match &s.body {
            State::Offline(d) => Some(d.cause),
            State::Online(_) => None,
        },
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_and_its_restarts_are_classified() {
    let (host, port) = broker();
    let dir = tempfile::tempdir().unwrap();
    fake_sysfs(&dir.path().join("root"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("bin{nanos}");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            device_id = "dev-bin"
            tenant = "{tenant}"
            broker = "mqtt://{host}:{port}"
            state_dir = "{}"
            sysfs_root = "{}"
            [identity]
            model = "laptop-x"
            device_class = "other"
            [settings]
            sample_interval_s = 1
            heartbeat_interval_s = 2
            battery_drop_window_s = 5
            [spool]
            fsync = false
            "#,
            dir.path().join("state").display(),
            dir.path().join("root").display()
        ),
    )
    .unwrap();

    let mut seen = watch(&host, port, &tenant, nanos).await;
    let is_birth =
        |m: &Message| matches!(m, Message::State(s) if matches!(s.body, State::Online(_)));

    // First start: a clean power-on, a birth, heartbeats with the sysfs battery.
    let agent = start(&config);
    let m = seen
        .wait("reboot event", |m| reboot_reason(m).is_some())
        .await;
    assert_eq!(reboot_reason(&m), Some(("power_on".into(), false)));
    seen.wait("birth", is_birth).await;
    let Message::Heartbeat(hb) = seen
        .wait("heartbeat", |m| matches!(m, Message::Heartbeat(_)))
        .await
    else {
        unreachable!()
    };
    let battery = hb.body.battery.expect("battery from sysfs");
    assert_eq!(battery.soc_end_pct, 87.0);
    assert_eq!(battery.soh_pct, Some(90.0));
    assert_eq!(battery.charge_cycles, 321);
    assert_eq!(hb.body.thermal.expect("thermal zone").max_c, 41.0);

    // SIGKILL: the broker publishes the Last Will; the next start says why.
    seen.mark();
    drop(agent);
    seen.wait("Last Will", |m| death(m) == Some(DeathCause::Will))
        .await;
    seen.mark();
    let mut agent = start(&config);
    let m = seen
        .wait("reboot event", |m| reboot_reason(m).is_some())
        .await;
    assert_eq!(reboot_reason(&m), Some(("unknown".into(), true)));
    seen.wait("birth", is_birth).await;

    // SIGTERM: an orderly goodbye and a clean exit; the next start says user_request.
    seen.mark();
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    seen.wait("goodbye", |m| death(m) == Some(DeathCause::Shutdown))
        .await;
    assert!(agent.0.wait().unwrap().success());
    seen.mark();
    let _agent = start(&config);
    let m = seen
        .wait("reboot event", |m| reboot_reason(m).is_some())
        .await;
    assert_eq!(reboot_reason(&m), Some(("user_request".into(), false)));
}
