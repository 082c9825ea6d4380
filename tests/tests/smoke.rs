//! Each real service the test command starts works, through the clients the
//! workspace uses: an MQTT round trip (plus retained state and the device ACL), a
//! PostgreSQL query (plus the partial unique index tickets will rely on), and an
//! InfluxDB v2-API write that is read back.

use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::DataPoint;
use protocol::{decode, examples, Limits, Message};
use tests::mqtt::Probe;
use tests::{services, unique};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn mqtt_round_trip_of_a_protocol_message() {
    let broker = services::mqtt();
    let tenant = unique("t");
    let hb = examples::heartbeat();
    let topic = format!("fleet/{tenant}/{}/heartbeat", hb.device_id);

    let mut sub = Probe::connect(&broker, &unique("sub")).await;
    sub.subscribe(&format!("fleet/{tenant}/+/heartbeat")).await;
    let mut publisher = Probe::connect(&broker, &unique("pub")).await;
    publisher
        .publish(&topic, protocol::encode(&hb).unwrap(), false)
        .await;

    let got = sub.recv(WAIT).await.expect("the heartbeat arrives");
    assert_eq!(got.topic, topic);
    let decoded = decode(&got.topic, &got.payload, &Limits::default()).unwrap();
    assert_eq!(decoded.message, Message::Heartbeat(hb));
}

#[tokio::test]
async fn mqtt_retained_state_reaches_late_subscribers() {
    let broker = services::mqtt();
    let tenant = unique("t");
    let birth = examples::birth();
    let topic = format!("fleet/{tenant}/{}/state", birth.device_id);

    let mut device = Probe::connect(&broker, &unique("dev")).await;
    device
        .publish(&topic, protocol::encode(&birth).unwrap(), true)
        .await;

    let mut late = Probe::connect(&broker, &unique("late")).await;
    late.subscribe(&format!("fleet/{tenant}/+/state")).await;
    let got = late.recv(WAIT).await.expect("the retained birth arrives");
    assert!(got.retain, "a late subscriber gets the state as retained");
    assert_eq!(
        decode(&got.topic, &got.payload, &Limits::default())
            .unwrap()
            .message,
        Message::State(birth)
    );
}

#[tokio::test]
async fn mqtt_acl_keeps_devices_to_their_own_topics() {
    let (broker, password) = services::mqtt_with_auth();
    let tenant = unique("t");

    let anonymous = Probe::try_connect(&broker, &unique("anon"), None).await;
    assert!(
        anonymous.is_err(),
        "the password listener must refuse anonymous clients"
    );

    let mut ingest =
        Probe::connect_with(&broker, &unique("ingest"), Some(("ingest", &password))).await;
    ingest
        .subscribe(&format!("fleet/{tenant}/+/heartbeat"))
        .await;
    let mut dev1 = Probe::connect_with(&broker, "dev-0001", Some(("dev-0001", &password))).await;

    // Spoofing another device: the broker acknowledges but does not deliver. The own
    // message is published after it on the same connection, so if the spoof were
    // delivered it would arrive first.
    let spoof = format!("fleet/{tenant}/dev-0002/heartbeat");
    let own = format!("fleet/{tenant}/dev-0001/heartbeat");
    dev1.publish(&spoof, b"spoofed".to_vec(), false).await;
    dev1.publish(&own, b"genuine".to_vec(), false).await;

    let got = ingest
        .recv(WAIT)
        .await
        .expect("the device's own message arrives");
    assert_eq!(got.topic, own, "the spoofed message must not be delivered");
    assert_eq!(got.payload, b"genuine");
    assert!(ingest.recv(Duration::from_millis(300)).await.is_none());
}

#[tokio::test]
async fn postgres_answers_and_enforces_a_partial_unique_index() {
    use sqlx::Connection;
    let url = services::postgres_url();
    let mut conn =
        tokio::time::timeout(services::SERVICE_TIMEOUT, sqlx::PgConnection::connect(&url))
            .await
            .unwrap_or_else(|_| panic!("PostgreSQL at FLEET_TEST_PG_URL did not answer"))
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at FLEET_TEST_PG_URL: {e}"));

    let two: i32 = sqlx::query_scalar("SELECT 1 + 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(two, 2);

    // One open ticket per device and problem, enforced by the database: the
    // mechanism that keeps replicas from opening duplicates. A temporary table lives
    // only in this session, so parallel runs cannot collide.
    sqlx::query(
        "CREATE TEMP TABLE tickets (id serial PRIMARY KEY, device text NOT NULL, \
         problem text NOT NULL, state text NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "CREATE UNIQUE INDEX one_open ON tickets (device, problem) \
         WHERE state IN ('opened', 'offered')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    const OPEN: &str =
        "INSERT INTO tickets (device, problem, state) VALUES ($1, 'battery', 'opened')";
    sqlx::query(OPEN)
        .bind("dev-1")
        .execute(&mut conn)
        .await
        .unwrap();
    let dup = sqlx::query(OPEN)
        .bind("dev-1")
        .execute(&mut conn)
        .await
        .expect_err("a second open ticket is refused");
    assert!(
        dup.as_database_error()
            .is_some_and(|e| e.is_unique_violation()),
        "{dup}"
    );
    sqlx::query(OPEN)
        .bind("dev-2")
        .execute(&mut conn)
        .await
        .expect("another device may have one");
    sqlx::query("UPDATE tickets SET state = 'resolved' WHERE device = 'dev-1'")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(OPEN)
        .bind("dev-1")
        .execute(&mut conn)
        .await
        .expect("a new ticket once the old one closed");
}

#[tokio::test]
async fn influx_v2_write_is_read_back() {
    let influx = services::influx();
    let client = influxdb2::Client::new(&influx.url, &influx.org, &influx.token);
    let measurement = unique("smoke").replace('-', "_");
    let now_ms =
        protocol::Timestamp::from_system_time(std::time::SystemTime::now()).as_unix_ms() as i64;
    let points: Vec<DataPoint> = (0..3)
        .map(|i| {
            DataPoint::builder(&measurement)
                .tag("device", "dev-1")
                .field("soc_pct", 50.0 + f64::from(i))
                .timestamp(now_ms - 60_000 + i64::from(i) * 1000)
                .build()
                .unwrap()
        })
        .collect();
    // Millisecond precision: the plain write() assumes nanoseconds and would put these
    // points in 1970.
    client
        .write_with_precision(
            &influx.bucket,
            futures::stream::iter(points),
            TimestampPrecision::Milliseconds,
        )
        .await
        .unwrap_or_else(|e| panic!("InfluxDB v2 write to {} failed: {e}", influx.url));

    // A 204 proves nothing (VictoriaMetrics answers 204 to a malformed body): read back.
    let http = reqwest::Client::new();
    http.get(format!("{}/internal/force_flush", influx.url))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let body = http
        .get(format!("{}/api/v1/export", influx.url))
        .query(&[("match[]", format!("{{__name__=\"{measurement}_soc_pct\"}}"))])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(series.len(), 1, "one series expected, got: {body}");
    assert_eq!(series[0]["metric"]["device"], "dev-1");
    let values: Vec<f64> = serde_json::from_value(series[0]["values"].clone()).unwrap();
    let stamps: Vec<i64> = serde_json::from_value(series[0]["timestamps"].clone()).unwrap();
    assert_eq!(values, [50.0, 51.0, 52.0]);
    assert_eq!(stamps, [now_ms - 60_000, now_ms - 59_000, now_ms - 58_000]);
}

/// A connected MQTT 5 client in a shared-subscription group, forwarding payloads.
async fn shared_v5_consumer(
    broker: &services::Mqtt,
    filter: &str,
) -> (
    rumqttc::v5::AsyncClient,
    tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    let mut opts = MqttOptions::new(unique("share"), broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (subacked_tx, subacked) = tokio::sync::oneshot::channel();
    let mut subacked_tx = Some(subacked_tx);
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(p.payload.to_vec());
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(s) = subacked_tx.take() {
                        let _ = s.send(());
                    }
                }
                _ => {}
            }
        }
    });
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(services::SERVICE_TIMEOUT, subacked)
        .await
        .unwrap_or_else(|_| panic!("no MQTT 5 SUBACK from {}:{}", broker.host, broker.port))
        .expect("connection ended before SUBACK");
    (client, rx)
}

#[tokio::test]
async fn mqtt5_shared_subscription_splits_messages_between_replicas() {
    let broker = services::mqtt();
    let tenant = unique("t");
    let filter = format!("$share/ingest/fleet/{tenant}/+/event");
    let (_a, mut rx_a) = shared_v5_consumer(&broker, &filter).await;
    let (_b, mut rx_b) = shared_v5_consumer(&broker, &filter).await;

    let mut device = Probe::connect(&broker, &unique("dev")).await;
    const N: usize = 20;
    for i in 0..N {
        device
            .publish(
                &format!("fleet/{tenant}/dev-1/event"),
                i.to_string().into_bytes(),
                false,
            )
            .await;
    }

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + WAIT;
    while got_a.len() + got_b.len() < N {
        tokio::select! {
            Some(p) = rx_a.recv() => got_a.push(p),
            Some(p) = rx_b.recv() => got_b.push(p),
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let mut all: Vec<usize> = got_a
        .iter()
        .chain(&got_b)
        .map(|p| String::from_utf8_lossy(p).parse().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N).collect::<Vec<_>>(),
        "every message reaches exactly one member of the group"
    );
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both replicas get a share: {} and {}",
        got_a.len(),
        got_b.len()
    );
}
