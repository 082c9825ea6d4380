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
    let publisher = client.clone();
    client
        .subscribe(format!("fleet/{tenant}/#"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        while let Ok(ev) = events.poll().await {
            if let MqttEvent::Incoming(Packet::Publish(p)) = ev {
                if p.topic.ends_with("/cmd") {
                    continue; // the test's own commands, garbage included
                }
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
        client: publisher,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_connects_over_tls_with_the_configured_ca() {
    let (host, port) = broker();
    let tls_url = env("FLEET_TEST_MQTT_TLS_URL");
    let ca = env("FLEET_TEST_MQTT_CA");
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("tls{nanos}");
    let config = config_file(
        dir.path(),
        "dev-tls",
        &tenant,
        &tls_url,
        &format!("tls_ca = \"{ca}\""),
    );
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
    /// The watcher's client, for sending commands.
    client: AsyncClient,
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("bin{nanos}");
    let broker_url = format!("mqtt://{host}:{port}");
    let config = config_file(dir.path(), "dev-bin", &tenant, &broker_url, "");
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

/// A config file for a fast-reporting agent; `extra` goes at the top level.
fn config_file(
    dir: &Path,
    device: &str,
    tenant: &str,
    broker: &str,
    extra: &str,
) -> std::path::PathBuf {
    fake_sysfs(&dir.join("root"));
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "device_id = \"{device}\"\ntenant = \"{tenant}\"\nbroker = \"{broker}\"\n{extra}\n\
             state_dir = \"{}\"\nsysfs_root = \"{}\"\n[settings]\nsample_interval_s = 1\n\
             heartbeat_interval_s = 1\nbattery_drop_window_s = 5\n[spool]\nfsync = false\n",
            dir.join("state").display(),
            dir.join("root").display()
        ),
    )
    .unwrap();
    path
}

fn ack_of(m: &Message, id: &str) -> Option<protocol::command::CommandAck> {
    match m {
        Message::Ack(a) if a.body.command_id.as_str() == id => Some(a.body.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_acts_on_commands_and_acknowledges_each() {
    use protocol::command::{
        AckStatus, Command as Cmd, CommandBody, ConfigChange, DiagnosticRequest, Offer, OfferKind,
    };
    use protocol::ids::{CommandId, TicketRef};
    use protocol::{Channel, DeviceId, Timestamp, Topic};
    use std::io::BufRead;

    let (host, port) = broker();
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tenant = format!("cmd{nanos}");
    let config = config_file(
        dir.path(),
        "dev-cmd",
        &tenant,
        &format!("mqtt://{host}:{port}"),
        "",
    );
    let mut seen = watch(&host, port, &tenant, nanos).await;
    let mut agent = Running(
        Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    seen.wait(
        "birth",
        |m| matches!(m, Message::State(s) if matches!(s.body, State::Online(_))),
    )
    .await;

    let device = DeviceId::new("dev-cmd").unwrap();
    let topic = Topic::new(
        protocol::TenantId::new(&tenant).unwrap(),
        device.clone(),
        Channel::Command,
    )
    .to_string();
    let send = |id: &str, body: CommandBody| {
        let cmd = Cmd::new(
            device.clone(),
            CommandId::new(id).unwrap(),
            Timestamp::from_system_time(std::time::SystemTime::now()),
            body,
        );
        protocol::encode(&cmd).unwrap()
    };
    let commander = seen.client.clone();
    let publish = |payload: Vec<u8>| {
        let client = commander.clone();
        let topic = topic.clone();
        async move {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap()
        }
    };

    // Garbage on the command topic is logged and ignored; the agent carries on.
    publish(b"{not a command".to_vec()).await;

    // A config change is applied and acknowledged done; a bad one is refused with why.
    publish(send(
        "cfg-1",
        CommandBody::Config(ConfigChange {
            over_temp_threshold_c: Some(55.0),
            ..Default::default()
        }),
    ))
    .await;
    let ack = seen
        .wait("config ack", |m| ack_of(m, "cfg-1").is_some())
        .await;
    assert_eq!(ack_of(&ack, "cfg-1").unwrap().status, AckStatus::Done);
    publish(send(
        "cfg-2",
        CommandBody::Config(ConfigChange {
            sample_interval_s: Some(3600),
            ..Default::default()
        }),
    ))
    .await;
    let ack = ack_of(
        &seen.wait("refusal", |m| ack_of(m, "cfg-2").is_some()).await,
        "cfg-2",
    )
    .unwrap();
    assert_eq!(ack.status, AckStatus::Rejected);
    // An hour between samples with a heartbeat every second: the settings clash.
    assert!(ack.detail.unwrap().contains("heartbeat_interval_s"));

    // A diagnostic request runs the self-tests on the real (fake-sysfs) hardware.
    publish(send(
        "diag-1",
        CommandBody::Diagnostic(DiagnosticRequest::default()),
    ))
    .await;
    let ack = ack_of(
        &seen
            .wait("diagnostics", |m| ack_of(m, "diag-1").is_some())
            .await,
        "diag-1",
    )
    .unwrap();
    assert_eq!(ack.status, AckStatus::Done, "{ack:?}");
    assert_eq!(ack.diagnostics.len(), 4);

    // An offer is shown to the host (a JSON line on stdout) and acknowledged received.
    let offer = Offer {
        ticket: TicketRef::new("T-42").unwrap(),
        kind: OfferKind::Inspection,
        title: "Free battery check".into(),
        message: "Your battery is wearing faster than usual.".into(),
        quote: None,
        extra: None,
        respond_by_ts_ms: None,
    };
    publish(send("offer-1", CommandBody::Offer(offer))).await;
    let ack = ack_of(
        &seen
            .wait("offer ack", |m| ack_of(m, "offer-1").is_some())
            .await,
        "offer-1",
    )
    .unwrap();
    assert_eq!(ack.status, AckStatus::Received);
    let mut line = String::new();
    std::io::BufReader::new(agent.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(shown["command_id"], "offer-1");
    assert_eq!(shown["offer"]["ticket"], "T-42");

    // The config change persisted: the state file holds the new threshold.
    let state = std::fs::read_to_string(dir.path().join("state/agent-state.json")).unwrap();
    assert!(state.contains("\"over_temp_threshold_c\":55.0"), "{state}");
}
