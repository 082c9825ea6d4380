//! The service desk's API over HTTP, on SQLite and on PostgreSQL: every route's access
//! check (generated from the route table), a ticket worked from claim to outcome with
//! its SLA clock paused and resumed on an injected clock, concurrent claims, and bad
//! input answered 4xx with a message and nothing changed.

mod desk;

use cloud_ingest::desk::api::ROUTES;
use cloud_ingest::desk::auth::{Access, Role};
use cloud_ingest::tickets::Tier;
use desk::{Desk, H, T0};
use protocol::Timestamp;
use serde_json::{json, Value};

/// A route's path as OpenAPI writes it: `:id` as `{id}`.
fn openapi_path(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn access_is_checked_on_every_route(url: &str) {
    let desk = Desk::start(url).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, desk.user(role.as_str(), role).await.1));
    }
    for r in ROUTES {
        // Ticket 0 never exists: a permitted call is a 404, and changes no other test's ticket.
        let path = r.path.replace(":id", "0");
        let body = (r.method == "POST").then(|| json!({}));
        if r.access == Access::Public {
            let (status, v) = desk.call(r.method, &path, None, body).await;
            assert_eq!(status, 200, "{} {path} is public: {v}", r.method);
            continue;
        }
        let (status, v) = desk.call(r.method, &path, None, body.clone()).await;
        assert_eq!(status, 401, "{} {path} without a token: {v}", r.method);
        let (status, _) = desk
            .call(r.method, &path, Some("fleet_forged"), body.clone())
            .await;
        assert_eq!(status, 401, "{} {path} with a forged token", r.method);
        for (role, token) in &tokens {
            let (status, v) = desk.call(r.method, &path, Some(token), body.clone()).await;
            if role.may(r.access) {
                assert!(
                    status != 401 && status != 403,
                    "{role} on {} {path}: {status} {v}",
                    r.method
                );
            } else {
                assert_eq!(status, 403, "{role} on {} {path}: {v}", r.method);
            }
        }
    }
}

#[tokio::test]
async fn sqlite_access_is_checked_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    access_is_checked_on_every_route(&format!("sqlite://{}", dir.path().join("d.db").display()))
        .await;
}

#[tokio::test]
async fn postgres_access_is_checked_on_every_route() {
    access_is_checked_on_every_route(&tests::services::postgres_url()).await;
}

async fn a_ticket_is_worked_from_claim_to_outcome(url: &str) {
    let desk = Desk::start(url).await;
    let (ana, ana_t) = desk.user("ana", Role::Agent).await;
    let (_, bo_t) = desk.user("bo", Role::Agent).await;
    let (_, lee_t) = desk.user("lee", Role::Analyst).await;
    let batch = format!("b-{}", desk.tag);
    let high = desk.accepted_ticket("dev-h", &batch, Tier::High).await;
    let low = desk.accepted_ticket("dev-l", &batch, Tier::Low).await;

    // The queue: most urgent first, filtered to this test's batch.
    let q = |filters: &str| format!("/api/v1/tickets?batch={batch}{filters}");
    let (s, v) = desk.call("GET", &q(""), Some(&lee_t), None).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<i64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [high, low], "the 4 h ticket before the 72 h one");
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["sla_state"], "on_time");
    let (_, v) = desk.call("GET", &q("&tier=low"), Some(&lee_t), None).await;
    assert_eq!(v["total"], 1);
    // Three hours on, the high ticket is in its last quarter.
    desk.clock.set(Timestamp(T0 + 3 * H));
    let (_, v) = desk
        .call("GET", &q("&sla=at_risk"), Some(&lee_t), None)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_i64()),
        (Some(1), Some(high))
    );

    // Two agents claim at once: exactly one wins.
    let act = |t: &'static str, body: Value| {
        let desk = &desk;
        let t = if t == "ana" {
            ana_t.clone()
        } else {
            bo_t.clone()
        };
        async move {
            desk.call(
                "POST",
                &format!("/api/v1/tickets/{high}/actions"),
                Some(&t),
                Some(body),
            )
            .await
        }
    };
    let (a, b) = tokio::join!(
        act("ana", json!({"action": "claim"})),
        act("bo", json!({"action": "claim"}))
    );
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "{a:?} {b:?}");
    let winner = if a.0 == 200 { "ana" } else { "bo" };
    let (s, v) = act(winner, json!({"action": "start"})).await;
    assert_eq!(
        (s, v["ticket"]["state"].as_str()),
        (200, Some("in_progress")),
        "{v}"
    );
    let loser = if winner == "ana" { "bo" } else { "ana" };
    let (s, v) = act(loser, json!({"action": "resolve", "outcome": "repaired"})).await;
    assert_eq!(s, 409, "not the loser's ticket: {v}");
    assert!(v["detail"].as_str().unwrap().contains("assigned to"), "{v}");

    // Pause for parts at 3 h, resume at 10 h: the due time moves 7 h on.
    let (s, v) = act(
        winner,
        json!({"action": "pause", "reason": "waiting_for_parts"}),
    )
    .await;
    assert_eq!(
        (s, v["sla"]["state"].as_str()),
        (200, Some("paused")),
        "{v}"
    );
    desk.clock.set(Timestamp(T0 + 10 * H));
    let (_, v) = desk
        .call("GET", &q("&sla=paused"), Some(&lee_t), None)
        .await;
    assert_eq!(
        v["total"], 1,
        "paused, not breached, though 10 h have passed: {v}"
    );
    let (s, v) = act(
        winner,
        json!({"action": "pause", "reason": "waiting_for_customer"}),
    )
    .await;
    assert_eq!(s, 409, "already paused: {v}");
    let (s, v) = act(winner, json!({"action": "resume"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sla"]["due_ms"].as_u64(), Some(T0 + 11 * H));
    assert_eq!(
        v["ticket"]["due_ms"].as_u64(),
        Some(T0 + 11 * H),
        "the queue's column agrees"
    );

    // Bad input: 4xx with a message, nothing changed.
    let version = v["ticket"]["version"].as_i64().unwrap();
    for (body, code) in [
        (json!({"action": "teleport"}), 422),
        (json!({"action": "pause", "reason": "lunch"}), 422),
        (json!({"action": "note", "text": ""}), 422),
        (
            json!({"action": "resolve", "outcome": "no_fault_found", "category": "thermal"}),
            422,
        ),
        (json!({"action": "assign", "user": "nobody-at-all"}), 422),
        (
            json!({"action": "note", "text": "hi", "version": version - 1}),
            409,
        ),
        (json!({"action": "note", "text": "hi", "version": "3"}), 400),
    ] {
        let (s, v) = act(winner, body.clone()).await;
        assert_eq!(s, code, "{body}: {v}");
    }
    let (s, v) = desk
        .call(
            "POST",
            &format!("/api/v1/tickets/{high}/actions"),
            Some(&ana_t),
            None,
        )
        .await;
    assert_eq!(s, 400, "no body: {v}");
    let (_, v) = desk
        .call(
            "GET",
            &format!("/api/v1/tickets/{high}"),
            Some(&lee_t),
            None,
        )
        .await;
    assert_eq!(
        v["ticket"]["version"].as_i64(),
        Some(version),
        "nothing changed: {v}"
    );
    for bad in [
        "&tier=urgent",
        "&per_page=0",
        "&per_page=201",
        "&sla=late",
        "&colour=red",
        "&page=-1",
    ] {
        let (s, v) = desk.call("GET", &q(bad), Some(&lee_t), None).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, _) = desk
        .call("GET", "/api/v1/tickets/999999999", Some(&lee_t), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = desk
        .call("GET", "/api/v1/tickets/abc", Some(&lee_t), None)
        .await;
    assert_eq!(s, 400);

    // Resolved with its outcome; the category defaults to the ticket's problem.
    let (s, v) = act(winner, json!({"action": "resolve", "outcome": "battery_replaced", "note": "new cell", "version": version})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ticket"]["state"], "resolved");
    assert_eq!(v["ticket"]["outcome"], "battery_replaced");
    assert_eq!(v["ticket"]["outcome_category"], "battery");
    assert_eq!(
        v["sla"]["state"], "met",
        "closed within its (moved) window: {v}"
    );
    let kinds: Vec<&str> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["move", "move", "move", "assign", "move", "pause", "resume", "move"]
    );
    let (s, v) = act(
        winner,
        json!({"action": "pause", "reason": "waiting_for_parts"}),
    )
    .await;
    assert_eq!(s, 409, "closed: {v}");

    let (_, v) = desk
        .call("GET", &q("&state=resolved&sla=met"), Some(&lee_t), None)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_i64()),
        (Some(1), Some(high)),
        "{v}"
    );
    let (_, v) = desk
        .call("GET", &q("&sla=on_time"), Some(&lee_t), None)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_i64()),
        (Some(1), Some(low)),
        "{v}"
    );

    // Every change is in the audit log with who, before and after.
    let (_, admin_t) = desk.user("root", Role::Admin).await;
    let (s, v) = desk
        .call(
            "GET",
            &format!("/api/v1/audit?subject=ticket:{high}"),
            Some(&admin_t),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "ticket.resolve",
            "ticket.resume",
            "ticket.pause",
            "ticket.start",
            "ticket.claim"
        ]
    );
    let claim = &v["items"][4];
    let winner_name = if winner == "ana" {
        ana.clone()
    } else {
        format!("bo-{}", desk.tag)
    };
    assert_eq!(claim["user_name"].as_str(), Some(winner_name.as_str()));
    assert!(claim["before"]
        .as_str()
        .unwrap()
        .contains(r#""assignee":null"#));
    assert!(claim["after"].as_str().unwrap().contains(&winner_name));

    // The low ticket, never touched, breaches once its 72 h are gone.
    desk.clock.set(Timestamp(T0 + 73 * H));
    let (_, v) = desk
        .call("GET", &q("&sla=breached"), Some(&lee_t), None)
        .await;
    assert_eq!(
        (v["total"].as_u64(), v["items"][0]["id"].as_i64()),
        (Some(1), Some(low)),
        "{v}"
    );
}

#[tokio::test]
async fn sqlite_a_ticket_is_worked_from_claim_to_outcome() {
    let dir = tempfile::tempdir().unwrap();
    a_ticket_is_worked_from_claim_to_outcome(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_a_ticket_is_worked_from_claim_to_outcome() {
    a_ticket_is_worked_from_claim_to_outcome(&tests::services::postgres_url()).await;
}

#[tokio::test]
async fn users_are_added_by_admins_with_checked_names_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, admin) = desk.user("root", Role::Admin).await;
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/users",
            Some(&admin),
            Some(json!({"name": "ana", "role": "agent"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (s, v) = desk.call("GET", "/api/v1/me", Some(&token), None).await;
    assert_eq!(
        (s, v["name"].as_str(), v["role"].as_str()),
        (200, Some("ana"), Some("agent"))
    );
    for (body, code) in [
        (json!({"name": "ana", "role": "agent"}), 422),
        (json!({"name": "a b", "role": "agent"}), 422),
        (json!({"name": "cy", "role": "root"}), 422),
        (json!({"name": "cy"}), 422),
    ] {
        let (s, v) = desk
            .call("POST", "/api/v1/users", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(s, code, "{body}: {v}");
    }
    let (_, v) = desk.call("GET", "/api/v1/users", Some(&admin), None).await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        2,
        "nothing added by the refused requests"
    );
}

async fn breaches_are_recorded_once_and_announced(url: &str) {
    use cloud_ingest::effects::breaches::BreachRecorder;
    use cloud_ingest::ops::metrics::Metrics;
    let desk = Desk::start(url).await;
    let (_, agent) = desk.user("ana", Role::Agent).await;
    let batch = format!("b-{}", desk.tag);
    let late = desk.accepted_ticket("dev-late", &batch, Tier::High).await;
    let paused = desk.accepted_ticket("dev-paused", &batch, Tier::High).await;
    // A tenant of their own: a shared PostgreSQL holds other tests' overdue tickets.
    let tenant = format!("t-{}", desk.tag);
    let mut tx = desk.store.begin().await.unwrap();
    sqlx::query("UPDATE tickets SET tenant = $1 WHERE id IN ($2, $3)")
        .bind(tenant.as_str())
        .bind(late)
        .bind(paused)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (s, v) = desk
        .call(
            "POST",
            &format!("/api/v1/tickets/{paused}/actions"),
            Some(&agent),
            Some(json!({"action": "pause", "reason": "waiting_for_customer"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let recorder = BreachRecorder {
        webhooks: vec![
            "https://crm.example/a".into(),
            "https://crm.example/b".into(),
        ],
        poll: std::time::Duration::from_secs(1),
        batch: 1,
        tenant: Some(tenant.clone()),
    };
    let metrics = Metrics::new();
    // Before the window runs out: nothing.
    desk.clock.set(Timestamp(T0 + 4 * H));
    assert_eq!(
        recorder
            .check(&desk.store, desk.clock.as_ref(), &metrics)
            .await
            .unwrap(),
        0
    );
    // After it: the running ticket breaches, the paused one does not; two recorders at
    // once (two replicas) record it once.
    desk.clock.set(Timestamp(T0 + 5 * H));
    let (a, b) = tokio::join!(
        recorder.check(&desk.store, desk.clock.as_ref(), &metrics),
        recorder.check(&desk.store, desk.clock.as_ref(), &metrics)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1, "recorded once");
    assert_eq!(
        recorder
            .check(&desk.store, desk.clock.as_ref(), &metrics)
            .await
            .unwrap(),
        0
    );
    let hooks = desk.store.webhooks_of(late).await.unwrap();
    assert_eq!(hooks.len(), 2, "one per endpoint: {hooks:?}");
    let body: Value = serde_json::from_str(&hooks[0].1).unwrap();
    assert_eq!(body["event"], "ticket.sla_breached");
    assert_eq!(body["ticket"]["id"].as_i64(), Some(late));
    assert_eq!(body["ticket"]["due_ms"].as_u64(), Some(T0 + 4 * H));
    assert!(desk.store.webhooks_of(paused).await.unwrap().is_empty());
    let log = desk.store.ticket_log(late).await.unwrap();
    let last = log.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.at_ms as u64),
        ("sla_breached", T0 + 4 * H)
    );
    assert!(metrics
        .render()
        .contains(r#"fleet_ingest_sla_breaches_total{tier="high"} 1"#));
}

#[tokio::test]
async fn sqlite_breaches_are_recorded_once_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    breaches_are_recorded_once_and_announced(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_breaches_are_recorded_once_and_announced() {
    breaches_are_recorded_once_and_announced(&tests::services::postgres_url()).await;
}

/// The OpenAPI document describes exactly the routes the router serves.
#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (s, doc) = desk.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), openapi_path(r.path)))
        .collect();
    served.sort();
    assert_eq!(documented, served);
    // Every protected route says it needs the bearer token.
    for r in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let op = &doc["paths"][openapi_path(r.path)][r.method.to_lowercase()];
        assert_eq!(
            op["security"][0]["bearer"],
            json!([]),
            "{} {}",
            r.method,
            r.path
        );
        assert!(
            op["responses"]["401"].is_object(),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert!(doc["components"]["schemas"]["Action"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn a_device_reads_with_its_score_history_tickets_and_days(url: &str) {
    use cloud_ingest::store::devices::{self, ScoreRow};
    let desk = Desk::start(url).await;
    let (_, lee) = desk.user("lee", Role::Analyst).await;
    let (_, rae) = desk.user("rae", Role::Recycler).await;
    let id = desk
        .accepted_ticket("dev-card", &format!("b-{}", desk.tag), Tier::Medium)
        .await;
    desk.telemetry(id, T0).await;
    let device = desk.store.queue_item(id).await.unwrap().unwrap().device_id;
    // Three scores: two on T0's day (the later one lower), one the day before.
    let day = 24 * H;
    let mut tx = desk.store.begin().await.unwrap();
    for (at, risk, alarm) in [
        (T0 - day, 0.2, false),
        (T0 - 2 * H, 0.7, true),
        (T0 - H, 0.4, false),
    ] {
        let s = ScoreRow {
            device_id: device.clone(),
            risk,
            alarm,
            scored_ms: at,
            model_version: "m1".into(),
            explanation: "[]".into(),
            shadow: None,
        };
        devices::set_score(&mut tx, &s).await.unwrap();
    }
    tx.commit().await.unwrap();

    let (s, v) = desk
        .call(
            "GET",
            &format!("/api/v1/devices/{device}"),
            Some(&lee),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["device"]["model"], "phone-x2");
    assert_eq!(v["device"]["last_seen_ms"].as_u64(), Some(T0));
    assert_eq!(v["device"]["risk"].as_f64(), Some(0.4), "the latest score");
    let scores = v["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "a row a day: {v}");
    assert_eq!(scores[0]["risk_max"].as_f64(), Some(0.2));
    assert_eq!(
        scores[1]["risk_max"].as_f64(),
        Some(0.7),
        "the day's highest"
    );
    assert_eq!(scores[1]["risk_last"].as_f64(), Some(0.4), "the day's last");
    assert_eq!(scores[1]["alarm"], true);
    assert_eq!(v["tickets"][0]["id"].as_i64(), Some(id));
    assert_eq!(v["status"]["missing"].as_u64(), Some(0));
    let days = v["trend"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[0]["soh_pct"].as_f64(), Some(90.0));
    assert_eq!(days[28]["restarts"]["brown_out"].as_u64(), Some(2));
    assert_eq!(v["trend"]["scored_ms"].as_u64(), Some(T0 - H));
    assert_eq!(v["trend"]["truncated"], false);
    // A chart set reads the newest messages only, oldest first.
    let newest = desk
        .store
        .device_telemetry(&device, (0, T0), 3)
        .await
        .unwrap();
    assert_eq!(newest.len(), 3);
    assert!(newest.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    // T0 is 08:00: the last 6-hourly heartbeat came at 06:00.
    assert_eq!(newest[2].ts_ms, T0 - 2 * H, "the newest message is in");

    // The ticket carries the same days, marked at its evidence's scoring moment.
    let (s, t) = desk
        .call("GET", &format!("/api/v1/tickets/{id}"), Some(&lee), None)
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["trend"]["days"], v["trend"]["days"]);
    assert_eq!(t["trend"]["scored_ms"].as_u64(), Some(T0));

    // Bad ids are refused with a message; unknown ones are 404; recyclers may not look.
    let (s, e) = desk
        .call("GET", "/api/v1/devices/no%20spaces", Some(&lee), None)
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("is not a device id"),
        "{e}"
    );
    let (s, e) = desk
        .call(
            "GET",
            &format!("/api/v1/devices/never-{}", desk.tag),
            Some(&lee),
            None,
        )
        .await;
    assert_eq!(s, 404, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("has been seen"),
        "{e}"
    );
    let (s, _) = desk
        .call(
            "GET",
            &format!("/api/v1/devices/{device}"),
            Some(&rae),
            None,
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn sqlite_a_device_reads_with_its_score_history_tickets_and_days() {
    let dir = tempfile::tempdir().unwrap();
    a_device_reads_with_its_score_history_tickets_and_days(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_a_device_reads_with_its_score_history_tickets_and_days() {
    a_device_reads_with_its_score_history_tickets_and_days(&tests::services::postgres_url()).await;
}

async fn the_queue_pages_running_clocks_then_paused_ones(url: &str) {
    let desk = Desk::start(url).await;
    let (_, ana) = desk.user("ana", Role::Agent).await;
    let batch = format!("b-{}", desk.tag);
    let high = desk.accepted_ticket("pg-h", &batch, Tier::High).await;
    let medium = desk.accepted_ticket("pg-m", &batch, Tier::Medium).await;
    let low = desk.accepted_ticket("pg-l", &batch, Tier::Low).await;
    // The medium ticket's clock stops: it goes after the running ones, though due sooner.
    let (s, v) = desk
        .call(
            "POST",
            &format!("/api/v1/tickets/{medium}/actions"),
            Some(&ana),
            Some(json!({"action": "pause", "reason": "waiting_for_parts"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let ids = |v: &Value| -> Vec<i64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let page = |n: u32, per: u32| format!("/api/v1/tickets?batch={batch}&page={n}&per_page={per}");
    let mut seen = Vec::new();
    for n in 0..4 {
        let (s, v) = desk.call("GET", &page(n, 1), Some(&ana), None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["total"], 3, "{v}");
        seen.extend(ids(&v));
    }
    assert_eq!(
        seen,
        [high, low, medium],
        "running by due time, then paused"
    );
    let (_, v) = desk.call("GET", &page(0, 2), Some(&ana), None).await;
    assert_eq!(ids(&v), [high, low]);
    let (_, v) = desk.call("GET", &page(1, 2), Some(&ana), None).await;
    assert_eq!(ids(&v), [medium], "the page across the boundary");
    let (_, v) = desk.call("GET", &page(0, 50), Some(&ana), None).await;
    assert_eq!(ids(&v), [high, low, medium]);
    let (_, v) = desk
        .call(
            "GET",
            &format!("/api/v1/tickets?batch={batch}&sla=paused"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(ids(&v), [medium]);
}

#[tokio::test]
async fn sqlite_the_queue_pages_running_clocks_then_paused_ones() {
    let dir = tempfile::tempdir().unwrap();
    the_queue_pages_running_clocks_then_paused_ones(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_the_queue_pages_running_clocks_then_paused_ones() {
    the_queue_pages_running_clocks_then_paused_ones(&tests::services::postgres_url()).await;
}

/// The early-life rule: a battery fault on a ticket opened in the device's first month is
/// resolved by a replacement; the desk refuses a repair and says so, and changes nothing.
#[tokio::test]
async fn a_core_part_failing_in_the_first_month_is_replaced_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("e.db").display())).await;
    let (_, ana) = desk.user("ana", Role::Agent).await;
    let young = desk.accepted_ticket("dev-young", "B1", Tier::Medium).await;
    let old = desk.accepted_ticket("dev-old", "B1", Tier::Medium).await;
    let mut tx = desk.store.begin().await.unwrap();
    for (device, days) in [("dev-young", 10), ("dev-old", 40)] {
        sqlx::query("UPDATE devices SET purchased_ms = $2 WHERE device_id = $1")
            .bind(format!("{device}-{}", desk.tag))
            .bind((T0 - days * 24 * H) as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let act = |id: i64, body: Value| {
        let (desk, ana) = (&desk, &ana);
        async move {
            desk.call(
                "POST",
                &format!("/api/v1/tickets/{id}/actions"),
                Some(ana),
                Some(body),
            )
            .await
        }
    };
    for id in [young, old] {
        let (s, v) = act(id, json!({"action": "start"})).await;
        assert_eq!(s, 200, "{v}");
    }
    for outcome in ["repaired", "battery_replaced"] {
        let (s, v) = act(young, json!({"action": "resolve", "outcome": outcome})).await;
        assert_eq!(s, 422, "{outcome}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("early-life rule"),
            "{v}"
        );
    }
    let (_, v) = desk
        .call("GET", &format!("/api/v1/tickets/{young}"), Some(&ana), None)
        .await;
    assert_eq!(v["ticket"]["state"], "in_progress", "nothing changed: {v}");
    let (s, v) = act(young, json!({"action": "resolve", "outcome": "replaced"})).await;
    assert_eq!(s, 200, "{v}");
    // Forty days old: a repair is fine.
    let (s, v) = act(old, json!({"action": "resolve", "outcome": "repaired"})).await;
    assert_eq!(s, 200, "{v}");
}
