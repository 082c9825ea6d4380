//! Simulated devices running the real agent code, end to end through a broker: the test
//! command's Mosquitto, an in-process rumqttd, and Mosquitto behind a proxy that goes
//! down for a long simulated stretch.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edge_agent::session::SessionConfig;
use firmware_sim::fleet::{Fleet, DEFAULT_START};
use firmware_sim::live::{self, LiveConfig, LiveReport};
use firmware_sim::offline::SimSettings;
use protocol::ids::TenantId;
use protocol::{Limits, Message};
use tests::mqtt::{Probe, Received};
use tests::services::{self, Mqtt};
use tests::unique;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Collects messages until none arrives for `quiet`.
async fn collect(probe: &mut Probe, quiet: Duration) -> Vec<Received> {
    let mut out = Vec::new();
    while let Some(m) = probe.recv(quiet).await {
        out.push(m);
    }
    out
}

/// What arrived, decoded: per device, the seqs of spooled channels in arrival order.
struct Arrived {
    seqs: BTreeMap<String, Vec<u64>>,
    births: BTreeMap<String, usize>,
    max_dropped_reported: BTreeMap<String, u32>,
    historical: usize,
}

fn decode_all(received: &[Received]) -> Arrived {
    let limits = Limits::default();
    let mut a = Arrived {
        seqs: BTreeMap::new(),
        births: BTreeMap::new(),
        max_dropped_reported: BTreeMap::new(),
        historical: 0,
    };
    for r in received {
        let decoded = protocol::decode(&r.topic, &r.payload, &limits).unwrap_or_else(|e| {
            panic!(
                "{} did not validate: {e}: {}",
                r.topic,
                String::from_utf8_lossy(&r.payload)
            )
        });
        let device = decoded.message.device_id().to_string();
        match &decoded.message {
            Message::State(s) => {
                if matches!(s.body, protocol::state::State::Online(_)) {
                    *a.births.entry(device).or_default() += 1;
                }
            }
            m => {
                if let Message::Heartbeat(h) = m {
                    let e = a.max_dropped_reported.entry(device.clone()).or_default();
                    *e = (*e).max(h.body.spool_dropped);
                    a.historical += usize::from(h.historical);
                }
                a.seqs
                    .entry(device)
                    .or_default()
                    .push(m.seq().expect("device message").0);
            }
        }
    }
    a
}

fn session(broker: &str, tenant: &str) -> SessionConfig {
    let mut s = SessionConfig::from_url(broker, TenantId::new(tenant).unwrap()).unwrap();
    s.reconnect =
        protocol::retry::Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
    s
}

fn never() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

/// Every spooled seq of every device arrived, and each arrived validated.
fn assert_complete(report: &LiveReport, arrived: &Arrived) {
    assert_eq!(report.dropped, 0);
    for (device, spooled) in &report.spooled {
        let got: BTreeSet<u64> = arrived
            .seqs
            .get(device.as_str())
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let want: BTreeSet<u64> = spooled.iter().copied().collect();
        assert!(!want.is_empty(), "{device} sent nothing");
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{device}: missing {missing:?}, unexpected {extra:?}"
        );
        assert!(
            arrived.births.get(device.as_str()).copied().unwrap_or(0) >= 1,
            "{device}: no birth"
        );
    }
}

async fn run_fleet_through(broker: &str, probe_at: &Mqtt) {
    let tenant = unique("sim");
    let mut probe = Probe::connect(probe_at, &unique("watch")).await;
    probe.subscribe(&format!("fleet/{tenant}/#")).await;
    let mut fleet = Fleet::generate(3, 6, 4, DEFAULT_START);
    for d in &mut fleet.devices {
        // A device still cut off when the run ends keeps its spool; the outage test
        // covers outages, this one that everything sent arrives.
        d.outage_rate = 0.0;
    }
    let config = LiveConfig {
        session: session(broker, &tenant),
        settings: SimSettings::default(),
        // Four simulated days in about six seconds.
        speedup: 4.0 * 86_400.0 / 6.0,
    };
    let report = live::run(Arc::new(fleet), config, never()).await.unwrap();
    let arrived = decode_all(&collect(&mut probe, Duration::from_secs(3)).await);
    assert_complete(&report, &arrived);
    // Four days of hourly heartbeats per device, give or take restarts.
    let heartbeats: usize = arrived.seqs.values().map(Vec::len).sum();
    assert!(heartbeats > 6 * 60, "only {heartbeats} messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_devices_publish_through_mosquitto() {
    let mqtt = services::mqtt();
    run_fleet_through(&format!("mqtt://{}:{}", mqtt.host, mqtt.port), &mqtt).await;
}

/// Starts rumqttd in-process on a free port (it has no shutdown: the thread lives on).
fn start_rumqttd() -> Mqtt {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config: rumqttd::Config = toml::from_str(&format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 1000
        max_outgoing_packet_count = 200
        max_segment_size = 104857600
        max_segment_count = 10
        [v4.1]
        name = "v4-1"
        listen = "127.0.0.1:{port}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = 20480
        max_inflight_count = 100
        dynamic_filters = true
        "#
    ))
    .unwrap();
    std::thread::spawn(move || {
        if let Err(e) = rumqttd::Broker::new(config).start() {
            panic!("rumqttd stopped: {e}");
        }
    });
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Mqtt {
        host: "127.0.0.1".into(),
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_devices_publish_through_an_in_process_broker() {
    let broker = start_rumqttd();
    run_fleet_through(&format!("mqtt://{}:{}", broker.host, broker.port), &broker).await;
}

/// A TCP proxy that can go down: while down it cuts every connection and refuses new ones.
async fn proxy(to: SocketAddr) -> (u16, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (up_tx, up_rx) = watch::channel(true);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if !*up_rx.borrow() {
                drop(client);
                continue;
            }
            let mut up = up_rx.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(to).await else {
                    return;
                };
                tokio::select! {
                    _ = copy_bidirectional(&mut client, &mut server) => {}
                    _ = up.wait_for(|u| !*u) => {}
                }
            });
        }
    });
    (port, up_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_what_fit_the_spool_arrives_once_in_order_and_drops_are_reported() {
    let mqtt = services::mqtt();
    let target: SocketAddr = tokio::net::lookup_host((mqtt.host.as_str(), mqtt.port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let (port, up) = proxy(target).await;
    let tenant = unique("outage");
    let mut probe = Probe::connect(&mqtt, &unique("watch")).await;
    probe.subscribe(&format!("fleet/{tenant}/#")).await;

    let days = 6;
    let mut fleet = Fleet::generate(5, 3, days, DEFAULT_START);
    for d in &mut fleet.devices {
        d.fate = None; // failures are not the point here
        d.outage_rate = 0.0;
    }
    // About 20 heartbeats fit: a 3-day outage overflows it.
    let settings = SimSettings {
        spool_budget: 20 * 700,
        ..SimSettings::default()
    };
    let speedup = f64::from(days) * 86_400.0 / 9.0; // six days in about nine seconds
    let config = LiveConfig {
        session: session(&format!("mqtt://127.0.0.1:{port}"), &tenant),
        settings,
        speedup,
    };
    let day_wall = Duration::from_secs_f64(86_400.0 / speedup);
    let inflight_window = config.session.max_inflight as u32;
    let fleet = Arc::new(fleet);
    let run = tokio::spawn(live::run(fleet.clone(), config, never()));
    // Up for a day, down for three, up again.
    tokio::time::sleep(day_wall).await;
    up.send(false).unwrap();
    tokio::time::sleep(day_wall * 3).await;
    up.send(true).unwrap();
    let report = run.await.unwrap().unwrap();
    let arrived = decode_all(&collect(&mut probe, Duration::from_secs(3)).await);

    assert!(report.dropped > 0, "the outage should overflow the spool");
    assert!(
        arrived.historical > 0,
        "spooled heartbeats arrive marked historical"
    );
    for (device, spooled) in &report.spooled {
        // Exactly once by (device, seq): QoS 1 may repeat a message that was in flight
        // when the link was cut; identity is the seq, and first arrivals come in order.
        let mut seen = BTreeSet::new();
        let first: Vec<u64> = arrived.seqs[device.as_str()]
            .iter()
            .copied()
            .filter(|s| seen.insert(*s))
            .collect();
        assert!(
            first.windows(2).all(|w| w[0] < w[1]),
            "{device}: out of order: {first:?}"
        );
        let got: BTreeSet<u64> = first.into_iter().collect();
        let want: BTreeSet<u64> = spooled.iter().copied().collect();
        assert!(
            got.is_subset(&want),
            "{device}: arrivals that were never spooled"
        );
        let lost = (want.len() - got.len()) as u32;
        let reported = arrived
            .max_dropped_reported
            .get(device.as_str())
            .copied()
            .unwrap_or(0);
        // The device counts what it evicted; one evicted while in flight at the cut may
        // still have reached the broker, so the count can exceed the loss by that window.
        assert!(
            lost <= reported && reported <= lost + inflight_window,
            "{device}: lost {lost}, reported {reported}"
        );
        // What was lost is the oldest of the outage: a contiguous run.
        let missing: Vec<u64> = want.difference(&got).copied().collect();
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            let in_run = want.range(first..=last).count();
            assert_eq!(
                in_run,
                missing.len(),
                "{device}: lost messages are not one run: {missing:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_a_password_publishes_through_the_acl_listener() {
    let (mqtt, password) = services::mqtt_with_auth();
    let tenant = unique("auth");
    let mut probe =
        Probe::connect_with(&mqtt, &unique("ingest"), Some(("ingest", &password))).await;
    probe.subscribe(&format!("fleet/{tenant}/#")).await;
    let mut fleet = Fleet::generate(9, 1, 2, DEFAULT_START);
    // The ACL lets user dev-0001 publish only under its own id.
    fleet.devices[0].id = protocol::DeviceId::new("dev-0001").unwrap();
    fleet.devices[0].outage_rate = 0.0;
    fleet.devices[0].fate = None;
    let mut s = session(&format!("mqtt://{}:{}", mqtt.host, mqtt.port), &tenant);
    s.endpoint = s
        .endpoint
        .with_credentials(Some("dev-0001".into()), Some(password));
    let config = LiveConfig {
        session: s,
        settings: SimSettings::default(),
        speedup: 2.0 * 86_400.0 / 3.0,
    };
    let report = live::run(Arc::new(fleet), config, never()).await.unwrap();
    let arrived = decode_all(&collect(&mut probe, Duration::from_secs(3)).await);
    assert_complete(&report, &arrived);
    assert!(report.connects[&protocol::DeviceId::new("dev-0001").unwrap()] >= 1);
}
