//! Ingest end to end: through the test command's Mosquitto with hand-made messages,
//! and through the in-process broker with a simulated fleet on the real agent code.

mod common;

use std::time::Duration;

use cloud_ingest::config::WebhookConfig;
use cloud_ingest::demo::{self, DemoOptions};
use cloud_ingest::store::{SqliteSync, Store};
use cloud_ingest::tickets::{Evidence, TicketState, Tier};
use common::*;
use protocol::command::{AckStatus, CommandAck, CommandBody, OfferKind};
use protocol::ids::{BootId, DeviceId, Epoch, Seq};
use protocol::{Channel, Envelope, Limits, Message, Timestamp};
use tests::mqtt::Probe;
use tests::services;

fn ack(device: &str, seq: u64, command: &protocol::ids::CommandId, status: AckStatus) -> Vec<u8> {
    let body = CommandAck {
        command_id: command.clone(),
        status,
        detail: None,
        diagnostics: Vec::new(),
    };
    let e = Envelope::new(
        DeviceId::new(device).unwrap(),
        (Epoch(1), Seq(seq)),
        BootId::new("boot-1").unwrap(),
        Timestamp(now_ms()),
        body,
    );
    Message::Ack(e).encode(&Limits::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risky_device_gets_a_ticket_an_offer_and_a_webhook_and_bad_input_is_kept() {
    let mqtt = services::mqtt();
    let tenant = tests::unique("e2e");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let (hook, mut hooks) = webhook_sink().await;
    let mut config = config(&mqtt, &tenant, &url);
    config.webhooks = vec![WebhookConfig {
        url: hook,
        secret: "hook-secret".into(),
        max_attempts: 3,
    }];
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let mut ingest = start(config).await;

    let dev = "dev-e2e-1";
    let mut device = Probe::connect(&mqtt, &tests::unique("device")).await;
    device
        .subscribe(&topic(&tenant, dev, Channel::Command))
        .await;
    let t0 = now_ms() - 3_600_000;
    let hb = topic(&tenant, dev, Channel::Heartbeat);
    device
        .publish(
            &topic(&tenant, dev, Channel::State),
            birth(dev, 1, t0),
            false,
        )
        .await;
    device
        .publish(&hb, heartbeat(dev, 2, t0 + 60_000, 97.0), false)
        .await;
    // A redelivery, a payload that is not JSON, and one that names another device.
    device
        .publish(&hb, heartbeat(dev, 2, t0 + 60_000, 97.0), false)
        .await;
    device
        .publish(&hb, b"{\"schema\": 1, \"device_id\":".to_vec(), false)
        .await;
    device
        .publish(
            &topic(&tenant, "dev-e2e-2", Channel::Heartbeat),
            heartbeat(dev, 9, t0, 97.0),
            false,
        )
        .await;
    // The battery's state of health falls to where it may swell.
    device
        .publish(&hb, heartbeat(dev, 3, t0 + 120_000, 55.0), false)
        .await;

    let opened = tokio::time::timeout(Duration::from_secs(30), ingest.tickets.recv())
        .await
        .expect("no ticket within 30 s")
        .unwrap();
    assert_eq!(opened.device_id, dev);
    assert_eq!(
        (opened.tier, opened.offer),
        (Tier::High, OfferKind::Inspection)
    );
    assert!(
        opened.why.iter().any(|w| w.contains("swelling")),
        "{:?}",
        opened.why
    );

    // The offer reaches the device on its command topic.
    let cmd = device
        .recv(Duration::from_secs(20))
        .await
        .expect("no offer command");
    let decoded = protocol::decode(&cmd.topic, &cmd.payload, &Limits::default()).unwrap();
    let Message::Command(command) = decoded.message else {
        panic!("not a command")
    };
    let CommandBody::Offer(offer) = &command.body else {
        panic!("not an offer")
    };
    assert_eq!(offer.ticket.as_str(), opened.ticket_ref);
    assert_eq!(offer.kind, OfferKind::Inspection);
    assert!(offer.message.contains("stop charging"), "{}", offer.message);

    // The customer sees it and accepts.
    let ack_topic = topic(&tenant, dev, Channel::Ack);
    device
        .publish(
            &ack_topic,
            ack(dev, 4, &command.command_id, AckStatus::Received),
            false,
        )
        .await;
    device
        .publish(
            &ack_topic,
            ack(dev, 5, &command.command_id, AckStatus::Accepted),
            false,
        )
        .await;

    let store = Store::open(&url, 1, SqliteSync::Full).await.unwrap();
    let ticket = eventually(
        "the ticket to be accepted",
        Duration::from_secs(20),
        || async {
            let t = store.tickets().await.unwrap();
            t.into_iter().find(|t| t.state == TicketState::Accepted)
        },
    )
    .await;
    let events = store.ticket_events(ticket.id).await.unwrap();
    let moves: Vec<(Option<&str>, &str, &str)> = events
        .iter()
        .map(|(_, f, t, a)| (f.as_deref(), t.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            (None, "opened", "policy"),
            (Some("opened"), "offered", "device"),
            (Some("offered"), "accepted", "device")
        ]
    );
    assert!(
        events.windows(2).all(|w| w[0].0 <= w[1].0),
        "times in order"
    );
    // The evidence was frozen at opening.
    let evidence: Evidence = serde_json::from_str(&ticket.evidence).unwrap();
    assert_eq!(evidence.model_version, ticket.model_version);
    assert!(!evidence.top_features.is_empty());
    assert!(evidence.safety[0].contains("swelling"));
    assert_eq!(
        evidence.telemetry.len(),
        2,
        "both heartbeats (telemetry only)"
    );
    assert_eq!(evidence.telemetry[1]["seq"], 3);
    assert!(ticket.due_ms - ticket.opened_ms == 4 * 3_600_000);

    // Exactly one ticket, duplicates dropped, bad input dead-lettered with its reason.
    assert_eq!(store.tickets().await.unwrap().len(), 1);
    let dead = store.dead_letters().await.unwrap();
    let reasons: Vec<&str> = dead.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(reasons, ["truncated", "device_mismatch"], "{dead:?}");
    let status = store.device_status(dev).await.unwrap().unwrap();
    assert!(status.online);
    let stats = status.stats;
    assert_eq!((stats.count, stats.missing()), (5, 0));

    // The webhook arrived, signed.
    let hook = tokio::time::timeout(Duration::from_secs(20), hooks.recv())
        .await
        .expect("no webhook within 20 s")
        .unwrap();
    assert!(
        cloud_ingest::effects::webhooks::verify(
            b"hook-secret",
            hook.body.as_bytes(),
            &hook.signature
        ),
        "bad signature {}",
        hook.signature
    );
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["event"], "ticket.opened");
    assert_eq!(body["ticket"]["ref"], opened.ticket_ref.as_str());

    // The operator endpoints.
    let addr = ingest.http.lock().unwrap().expect("HTTP bound");
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "fleet_ingest_duplicates_total 1",
        "fleet_ingest_messages_rejected_total{reason=\"device_mismatch\"} 1",
        "fleet_ingest_tickets_opened_total{tier=\"high\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let missing = http
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let report = ingest.finish().await;
    assert_eq!(
        (
            report.accepted,
            report.duplicates,
            report.rejected,
            report.tickets
        ),
        (5, 1, 2, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_through_the_in_process_broker_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        devices: 60,
        days: 60,
        seed: 6,
        speedup: 300_000.0,
        data_dir: dir.path().to_owned(),
        http: Some("127.0.0.1:0".parse().unwrap()),
        print_tickets: false,
        // Every customer with a link tries the progress page (racing the device).
        team: demo::team::TeamConfig {
            web_share: 1.0,
            ..Default::default()
        },
    };
    let (keep, stop) = tokio::sync::watch::channel(false);
    let finished = demo::run(&opts, stop.clone()).await.unwrap();
    let s = finished.summary;
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    // A real stream: on a busy machine the simulator skips sample periods it cannot keep
    // up with (`skipped_samples`), so the floor is half what an idle machine publishes
    // (about 24 a device-day), not a speed test.
    assert!(s.messages_published > 60 * 60 * 10, "{s:?}");
    // Every message a device sent is stored, once (the store's key is (device, seq));
    // the store also holds the broker's Last Will messages, which no device spooled.
    assert_eq!(s.messages_lost, 0, "{s:?}");
    assert!(s.messages_ingested >= s.messages_published, "{s:?}");
    assert_eq!(s.rejected, 0);
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "devices",
        "failed_devices",
        "reached_before_failure",
        "false_alarms",
        "tickets",
        "median_lead_days",
        "messages_ingested",
        "sla_met_by_tier",
        "outcomes",
        "customer_answers",
        "tradeins_graded",
        "refurbished",
        "recycled",
        "ewaste_kg",
        "quote_vs_settled",
        "cohorts_flagged",
        "campaigns",
        "report_path",
    ] {
        assert!(json.get(key).is_some(), "summary lacks {key}");
    }
    // The run's last whole month was reviewed: an HTML file, its JSON beside it, whose
    // ticket count is the store's.
    assert_eq!(s.report_period.as_deref(), Some("2026-02"), "{s:?}");
    let html = std::fs::read_to_string(s.report_path.as_ref().unwrap()).unwrap();
    assert!(html.contains("After-sales review 2026-02"));
    let review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("review-2026-02.json")).unwrap())
            .unwrap();
    let (from, to, _) = cloud_ingest::tradein::routing::period_range("2026-02").unwrap();
    let desk_after = finished.desk.as_ref().expect("the desk was served");
    let store = cloud_ingest::store::Store::open(
        &desk_after.store_url,
        1,
        cloud_ingest::store::SqliteSync::Normal,
    )
    .await
    .unwrap();
    let february = store
        .tickets()
        .await
        .unwrap()
        .iter()
        .filter(|t| (from..to).contains(&(t.opened_ms as u64)))
        .count();
    store.close().await;
    let tickets = review["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == "tickets")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert_eq!(tickets, february as f64, "{}", review["kpis"]);
    train_on_the_desks_outcomes(&desk_after.store_url, dir.path()).await;

    // The simulated team worked through the desk, and customers answered on both sides.
    let team = s.desk.as_ref().expect("the desk was served");
    assert_eq!(team.errors, 0, "{team:?}");
    assert!(
        s.tickets > 0,
        "seed 6's fleet (five of its devices fail within the run) opens tickets: {s:?}"
    );
    assert!(team.links > 0, "{team:?}");
    // A web customer answers 0.5-8 simulated hours after the link, if the offer is still
    // open then: with a few links some try (how many tickets open varies with the
    // machine's speed, which changes what ingest has scored when).
    if team.links >= 3 {
        assert!(team.web_answers + team.web_answers_too_late > 0, "{team:?}");
    }
    let answers: usize = s.customer_answers.values().sum();
    assert!(answers > 0, "{s:?}");
    assert_eq!(
        s.customer_answers["progress_page"] as u64, team.web_answers,
        "the page's answers are the customer's moves: {s:?}"
    );
    assert_eq!(s.sla_met_by_tier.len(), 3, "every tier: {s:?}");
    // The simulated recycling desk worked every trade-in it was given without a refusal.
    let recycling = s.recycling.as_ref().expect("the recycling desk ran");
    assert_eq!(
        (recycling.errors, recycling.refused),
        (0, 0),
        "{recycling:?}"
    );
    assert!(s.refurbished + s.recycled <= s.tradeins_graded, "{s:?}");
    assert_eq!(
        s.ewaste_kg > 0.0,
        s.refurbished + s.recycled > 0,
        "routed devices are weighed: {s:?}"
    );

    // After the run the desk stays up on the final state until told to stop.
    let desk = finished.desk.expect("a desk to keep serving");
    let addr = desk.addr;
    let serving = tokio::spawn(demo::keep_serving(desk, stop));
    let mut up = false;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/login")).await {
            up = r.status().is_success();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the desk answers after the run");
    keep.send(true).unwrap();
    serving.await.unwrap().unwrap();
}

/// The desk's outcomes become a model in force and back: `export-labels`, merged with a
/// simulated fleet and trained, registered as the challenger, promoted over a gate that
/// has no outcomes of its own yet (recorded with the reason), rolled back.
async fn train_on_the_desks_outcomes(store_url: &str, dir: &std::path::Path) {
    use cloud_ingest::registry::{self, gate::GateConfig, Promotion};
    use cloud_ingest::score::ModelSlot;
    use models::labels::{self, CsvColumns, LabelConfig};
    use models::training::{self, Kind, TrainConfig};

    let store = Store::open(store_url, 1, SqliteSync::Normal).await.unwrap();
    let out = dir.join("labels");
    let manifest = cloud_ingest::training_set::export(&store, &out, 0, 80)
        .await
        .unwrap();
    assert!(manifest.tally.rows > 0, "the team's verdicts: {manifest:?}");
    assert!(
        manifest.train.contains("--weight-col weight"),
        "{}",
        manifest.train
    );
    let field = labels::from_csv(
        &out.join(cloud_ingest::training_set::CSV),
        &CsvColumns {
            failure_mode: Some("mode".into()),
            weight: Some("weight".into()),
            ..CsvColumns::schema_named("device_id", "ts", "label")
        },
        14,
    )
    .unwrap();
    assert_eq!(field.len() as u64, manifest.tally.rows);
    // A random check (the demo draws 0.1 % of the devices below the threshold a day)
    // stands for the thousand devices it was drawn from; a scored ticket for itself.
    let checks = store
        .tickets()
        .await
        .unwrap()
        .iter()
        .filter(|t| t.evidence.contains("random inspection sample"))
        .count();
    eprintln!(
        "{} labelled rows, {checks} random checks opened, weights {:?}",
        field.len(),
        field.weight
    );
    assert!(
        field
            .weight
            .iter()
            .all(|w| *w == 1.0 || (w - 1000.0).abs() < 1e-6),
        "{:?}",
        field.weight
    );

    let sim = dir.join("sim");
    let fleet =
        firmware_sim::fleet::Fleet::generate(2, 100, 100, firmware_sim::fleet::DEFAULT_START);
    firmware_sim::dataset::generate(
        &fleet,
        2,
        &firmware_sim::offline::SimSettings::default(),
        &protocol::ids::TenantId::new("acme").unwrap(),
        &sim,
        2,
        &|_, _| {},
    )
    .unwrap();
    let simulated = labels::from_simulation(&sim, &LabelConfig::default(), &|_| {}).unwrap();
    let (n_sim, n_field) = (simulated.len(), field.len());
    let merged = simulated.merge(field).unwrap();
    assert_eq!(merged.len(), n_sim + n_field);
    let mut config = TrainConfig::new(Kind::Forest, 14, 1);
    config.forest.trees = 30;
    let trained = training::train(&merged, &config, &|_| {}).unwrap();
    assert!(
        trained.training.source.contains("labels.csv"),
        "{}",
        trained.training.source
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let slot = ModelSlot::load(None).unwrap();
    registry::sync(&store, &slot).await.unwrap();
    let champion = slot.current().version.clone();
    let bytes = serde_json::to_vec(&trained).unwrap();
    let (a, new) = registry::register(&store, &bytes, "analyst", now)
        .await
        .unwrap();
    assert!(new && a.version == trained.version);
    registry::set_challenger(&store, &slot, "analyst", Some(&a.version), now)
        .await
        .unwrap();
    assert_eq!(
        slot.challenger().map(|c| c.version.clone()),
        Some(a.version.clone())
    );
    let gate = GateConfig::default();
    let measured = registry::measure_gate(&store, &slot, &gate, now)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !measured.passed,
        "no outcome labelled since it started: {measured:?}"
    );
    let ask = |override_gate: bool| Promotion {
        challenger: a.version.clone(),
        override_gate,
        reason: override_gate.then(|| "trained on the desk's outcomes".into()),
    };
    let refused = registry::promote(&store, &slot, &gate, "admin", &ask(false), now).await;
    assert!(refused.is_err(), "a failed gate needs an override");
    registry::promote(&store, &slot, &gate, "admin", &ask(true), now)
        .await
        .unwrap();
    assert_eq!(slot.current().version, a.version);
    registry::rollback(&store, &slot, "admin", &champion, None, now)
        .await
        .unwrap();
    assert_eq!(slot.current().version, champion);
    let changes = store.model_changes(10).await.unwrap();
    let promoted = changes
        .iter()
        .find(|c| c.action == "promote" && c.version.as_deref() == Some(a.version.as_str()))
        .expect("the promotion is recorded");
    assert!(promoted.overridden, "{promoted:?}");
    store.close().await;
}
