//! Campaigns through the API and the rollout, on SQLite and PostgreSQL: a flagged batch
//! proposes one with the policy's offers and costs; only an analyst decides it, at the
//! version they saw, once; an approved campaign offers every member a remedy through
//! the outbox, attaches to a ticket already open for the problem instead of opening a
//! second, and holds back a customer the contact cap protects; its progress counts what
//! the tickets did. Bad requests get a 4xx and change nothing.

mod desk;

use cloud_ingest::campaigns::rollout::Rollout;
use cloud_ingest::cohorts::watch::WatchConfig;
use cloud_ingest::cohorts::watcher::Watcher;
use cloud_ingest::desk::auth::Role;
use cloud_ingest::ingest::PipelineSettings;
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::policy::{PolicyConfig, Problem};
use cloud_ingest::store::tickets;
use cloud_ingest::tickets::TicketState;
use desk::{Desk, T0};
use protocol::Timestamp;
use serde_json::{json, Value};
use sqlx::Row;

const DAY: u64 = 86_400_000;

async fn count(d: &Desk, sql: &str, campaign: i64) -> i64 {
    let mut tx = d.store.begin().await.unwrap();
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(campaign)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    tx.commit().await.unwrap();
    n
}

async fn campaigns_of_a_flagged_batch(url: &str) {
    let d = Desk::start(url).await;
    let (_, analyst) = d.user("ana", Role::Analyst).await;
    let (_, agent) = d.user("age", Role::Agent).await;
    let model = format!("cm-{}", d.tag);
    let (good, bad) = (format!("{model}-good"), format!("{model}-bad"));
    d.cohort_devices(&model, &good, 30).await;
    let members = d.cohort_devices(&model, &bad, 30).await;
    for (n, dev) in members.iter().take(12).enumerate() {
        d.closed_ticket(dev, n, "battery", "battery_replaced", Some("battery"))
            .await;
    }
    // Two members already have a battery ticket open; one customer has been contacted
    // three times this month (the default cap) about other things.
    let open_a = d.offered_ticket_on(&members[20], Problem::Battery).await;
    let open_b = d.offered_ticket_on(&members[21], Problem::Battery).await;
    for k in 0..3 {
        d.dated_ticket(
            &members[22],
            100 + k,
            "thermal",
            "no_fault_found",
            None,
            T0 - (5 + k as u64) * DAY,
        )
        .await;
    }
    let metrics = Metrics::new();
    let watch = Watcher {
        config: WatchConfig::default(),
    };
    watch.check(&d.store, T0, None, &metrics).await.unwrap();
    let flag = d
        .store
        .cohort_flags(Some("open"))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.flag.cohort == bad && r.flag.window_days.is_none())
        .expect("the bad batch is flagged");

    // Proposing: analysts only, a real flag, once.
    let propose = format!("/api/v1/cohort-flags/{}/campaign", flag.id);
    let (s, _) = d.call("POST", &propose, Some(&agent), None).await;
    assert_eq!(s, 403);
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/cohort-flags/x/campaign",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/cohort-flags/999999999/campaign",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = d.call("POST", &propose, Some(&analyst), None).await;
    assert_eq!(s, 201, "{v}");
    let c = &v["campaign"];
    let id = c["id"].as_i64().unwrap();
    assert_eq!(c["state"], "proposed");
    assert_eq!(c["problem"], "battery");
    let p = &c["proposal"];
    assert_eq!(p["devices"], 30);
    assert_eq!(p["attached"], 2, "{p}");
    assert_eq!(p["held"]["contact_cap"], 1, "{p}");
    // In warranty and young: a battery replacement each, at the repair estimate.
    assert_eq!(p["offers"]["battery_replacement"], 27, "{p}");
    let repair = PolicyConfig::default()
        .repair_cost_minor
        .of(Problem::Battery);
    assert_eq!(p["expected_cost_minor"]["EUR"], 29 * repair, "{p}");
    assert_eq!(v["members"].as_array().unwrap().len(), 30);
    let (s, again) = d.call("POST", &propose, Some(&analyst), None).await;
    assert_eq!(s, 409, "{again}");
    let (s, _) = d
        .call(
            "POST",
            &format!("/api/v1/cohort-flags/{}/dismiss", flag.id),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 409, "a flag with a campaign is not dismissed");

    // Deciding: analysts only, well-formed, at the current version.
    let decide = format!("/api/v1/campaigns/{id}/decision");
    let (s, _) = d
        .call(
            "POST",
            &decide,
            Some(&agent),
            Some(json!({"decision": "approve", "version": 0})),
        )
        .await;
    assert_eq!(s, 403);
    for (body, status) in [
        (json!({"decision": "maybe", "version": 0}), 422),
        (json!({"decision": "approve"}), 422),
        (
            json!({"decision": "approve", "version": 0, "colour": "red"}),
            422,
        ),
        (json!({"decision": "approve", "version": 7}), 409),
        (
            json!({"decision": "approve", "version": 0, "note": "x".repeat(2001)}),
            422,
        ),
    ] {
        let (s, v) = d
            .call("POST", &decide, Some(&analyst), Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body}: {v}");
    }
    let (_, still) = d
        .call(
            "GET",
            &format!("/api/v1/campaigns/{id}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(
        still["campaign"]["state"], "proposed",
        "refusals changed nothing"
    );
    assert_eq!(still["campaign"]["version"], 0);
    let (s, v) = d
        .call(
            "POST",
            &decide,
            Some(&analyst),
            Some(json!({"decision": "approve", "version": 0, "note": "battery supplier issue"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["campaign"]["state"], "approved");
    let (s, _) = d
        .call(
            "POST",
            &decide,
            Some(&analyst),
            Some(json!({"decision": "reject", "version": 1})),
        )
        .await;
    assert_eq!(s, 409, "decided once");

    // The rollout: offers through the outbox, attachments, holds; no second ticket.
    let rollout = Rollout {
        policy: PolicyConfig::default(),
        settings: PipelineSettings {
            webhooks: vec!["https://crm.example/hook".into()],
            ..PipelineSettings::default()
        },
        batch: 7,
        poll: std::time::Duration::from_secs(1),
    };
    let mut worked = 0;
    for _ in 0..10 {
        worked += rollout
            .step(&d.store, Timestamp(T0 + DAY), &metrics)
            .await
            .unwrap();
    }
    assert!(worked >= 30, "{worked}");
    let (_, v) = d
        .call(
            "GET",
            &format!("/api/v1/campaigns/{id}"),
            Some(&analyst),
            None,
        )
        .await;
    let c = &v["campaign"];
    assert_eq!(c["state"], "rolled_out", "{c}");
    let pr = &c["progress"];
    assert_eq!(
        (
            pr["members"].as_u64(),
            pr["offered"].as_u64(),
            pr["attached"].as_u64(),
            pr["held"].as_u64(),
            pr["pending"].as_u64()
        ),
        (Some(30), Some(27), Some(2), Some(1), Some(0)),
        "{pr}"
    );
    let by_device = |dev: &str| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["device_id"] == dev)
            .unwrap()
            .clone()
    };
    assert_eq!(by_device(&members[20])["ticket_id"], open_a);
    assert_eq!(by_device(&members[21])["ticket_id"], open_b);
    assert_eq!(by_device(&members[22])["reason"], "contact_cap");
    let open_per_device = count(
        &d,
        "SELECT COUNT(*) FROM (SELECT t.device_id FROM tickets t JOIN campaign_members m
            ON m.device_id = t.device_id WHERE m.campaign_id = $1 AND t.problem = 'battery'
            AND t.closed_ms IS NULL GROUP BY t.device_id HAVING COUNT(*) > 1) x",
        id,
    )
    .await;
    assert_eq!(
        open_per_device, 0,
        "never two open tickets for one device and problem"
    );
    let commands = count(
        &d,
        "SELECT COUNT(*) FROM commands c JOIN tickets t ON t.id = c.ticket_id WHERE t.campaign_id = $1",
        id,
    )
    .await;
    assert!(commands >= 27, "each offer went to the outbox: {commands}");
    let webhooks = count(
        &d,
        "SELECT COUNT(*) FROM webhook_outbox w JOIN tickets t ON t.id = w.ticket_id
            WHERE t.campaign_id = $1",
        id,
    )
    .await;
    assert_eq!(webhooks, 27, "each new ticket announced");
    let text = metrics.render();
    assert!(
        text.contains("fleet_ingest_tickets_opened_total{tier=\"medium\"} 27"),
        "{text}"
    );

    // A second pass finds nothing left; progress follows the tickets.
    assert_eq!(
        rollout
            .step(&d.store, Timestamp(T0 + 2 * DAY), &metrics)
            .await
            .unwrap(),
        0
    );
    let offered = by_device(&members[0])["ticket_id"].as_i64().unwrap();
    let mut tx = d.store.begin().await.unwrap();
    for to in [
        TicketState::Offered,
        TicketState::Accepted,
        TicketState::InProgress,
    ] {
        tickets::move_ticket(&mut tx, offered, to, "device", None, T0 + DAY)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE tickets SET outcome = 'battery_replaced', state = 'resolved', closed_ms = $2 WHERE id = $1")
        .bind(offered)
        .bind((T0 + 3 * DAY) as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, v) = d
        .call(
            "GET",
            &format!("/api/v1/campaigns/{id}"),
            Some(&analyst),
            None,
        )
        .await;
    let pr = &v["campaign"]["progress"];
    assert!(
        pr["reached"].as_u64().unwrap() >= 3,
        "two attached offers were shown, and this one: {pr}"
    );
    assert_eq!(pr["accepted"], 1, "{pr}");
    assert_eq!(pr["faults_confirmed"], 1);
    assert_eq!(pr["cost_so_far_minor"], repair);
    let (s, list) = d
        .call("GET", "/api/v1/campaigns", Some(&analyst), None)
        .await;
    assert_eq!(s, 200);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id));
    let (s, _) = d.call("GET", "/api/v1/campaigns", Some(&agent), None).await;
    assert_eq!(s, 403);
    let (s, _) = d
        .call("GET", "/api/v1/campaigns/424242424", Some(&analyst), None)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn sqlite_campaigns_of_a_flagged_batch() {
    let dir = tempfile::tempdir().unwrap();
    campaigns_of_a_flagged_batch(&format!("sqlite://{}", dir.path().join("c.db").display())).await;
}

#[tokio::test]
async fn postgres_campaigns_of_a_flagged_batch() {
    campaigns_of_a_flagged_batch(&tests::services::postgres_url()).await;
}

/// A rejected campaign contacts nobody.
#[tokio::test]
async fn a_rejected_campaign_contacts_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let d = Desk::start(&format!("sqlite://{}", dir.path().join("r.db").display())).await;
    let (_, analyst) = d.user("ana", Role::Analyst).await;
    let model = format!("rj-{}", d.tag);
    d.cohort_devices(&model, &format!("{model}-good"), 30).await;
    let members = d.cohort_devices(&model, &format!("{model}-bad"), 30).await;
    for (n, dev) in members.iter().take(12).enumerate() {
        d.closed_ticket(dev, n, "battery", "repaired", None).await;
    }
    let metrics = Metrics::new();
    Watcher {
        config: WatchConfig::default(),
    }
    .check(&d.store, T0, None, &metrics)
    .await
    .unwrap();
    let flag = d.store.cohort_flags(Some("open")).await.unwrap()[0].id;
    let (_, v) = d
        .call(
            "POST",
            &format!("/api/v1/cohort-flags/{flag}/campaign"),
            Some(&analyst),
            None,
        )
        .await;
    let id = v["campaign"]["id"].as_i64().unwrap();
    let before: Value = d
        .call("GET", "/api/v1/tickets?per_page=200", Some(&analyst), None)
        .await
        .1;
    let (s, v) = d
        .call(
            "POST",
            &format!("/api/v1/campaigns/{id}/decision"),
            Some(&analyst),
            Some(json!({"decision": "reject", "version": 0, "note": "seasonal"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["campaign"]["state"], "rejected");
    assert_eq!(
        v["campaign"]["progress"]["held"], 30,
        "every member dropped"
    );
    let rollout = Rollout {
        policy: PolicyConfig::default(),
        settings: PipelineSettings::default(),
        batch: 100,
        poll: std::time::Duration::from_secs(1),
    };
    assert_eq!(
        rollout
            .step(&d.store, Timestamp(T0), &metrics)
            .await
            .unwrap(),
        0
    );
    let after: Value = d
        .call("GET", "/api/v1/tickets?per_page=200", Some(&analyst), None)
        .await
        .1;
    assert_eq!(before, after, "no ticket opened");
    let (_, audit) = d
        .call(
            "GET",
            &format!("/api/v1/audit?subject=campaign:{id}"),
            Some(&analyst),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["campaign.reject", "campaign.propose"]);
}
