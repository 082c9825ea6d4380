//! The model lifecycle on both stores: the starting model registered as champion, a
//! challenger registered through the API and scored in the shadow of the champion on
//! the telemetry ingest sees, its gate measured on the outcomes the desk labels, a
//! deliberately worse challenger refused (and promoted only over an override with a
//! reason, recorded), rollback, a replica following the registry without a restart, a
//! challenger as good as the champion promoted through its gate; bad artifacts refused
//! with nothing changed; and the page, in a real browser.

mod common;
mod desk;

use std::sync::Arc;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::ingest::{Delivery, Pipeline, PipelineSettings};
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::policy::PolicyConfig;
use cloud_ingest::registry::{self, gate::GateConfig};
use cloud_ingest::score::ModelSlot;
use cloud_ingest::store::tickets::ScoredFeatures;
use cloud_ingest::store::Store;
use cloud_ingest::tickets::Tier;
use desk::{Desk, H, T0};
use models::artifact::ModelArtifact;
use models::history::FeatureVector;
use models::schema::{schema_fingerprint, FEATURES, FEATURE_COUNT};
use protocol::clock::Clock;
use protocol::{Channel, Timestamp};
use serde_json::{json, Value};
use sqlx::Row;

/// A desk whose model slot is `slot` and whose gate counts a handful of outcomes.
async fn desk_on(url: &str, slot: Arc<ModelSlot>) -> Desk {
    Desk::start_with(url, |s| {
        s.model = slot;
        s.gate = Arc::new(GateConfig {
            min_outcomes: 8,
            min_positives: 3,
            desk_capacity_per_day: 1.0,
            ..GateConfig::default()
        });
    })
    .await
}

/// Posts raw bytes (an artifact, or something that is not one).
async fn post_raw(desk: &Desk, path: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = desk
        .http
        .post(format!("{}{path}", desk.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn artifact_bytes(a: &ModelArtifact) -> Vec<u8> {
    serde_json::to_vec(a).unwrap()
}

/// The bundled model's trees as another version: `slope` -1 reverses its ranking (a
/// deliberately worse model), 1 keeps it.
fn variant(version: &str, slope: f64) -> ModelArtifact {
    let mut a = ModelArtifact::bundled().unwrap();
    a.version = version.into();
    a.calibration.a *= slope;
    a.calibration.b *= slope;
    a
}

/// Feature vectors the bundled model ranks: the `n` riskiest and the `n` safest of a
/// spread of vectors around the healthy values.
fn ranked_vectors(n: usize) -> (Vec<[f64; FEATURE_COUNT]>, Vec<[f64; FEATURE_COUNT]>) {
    let champion = ModelArtifact::bundled().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut vectors: Vec<(f64, [f64; FEATURE_COUNT])> = (0..300)
        .map(|_| {
            let mut v = [0.0; FEATURE_COUNT];
            for (x, f) in v.iter_mut().zip(&FEATURES) {
                *x = if f.missing == 0.0 {
                    (next() * 12.0).floor()
                } else {
                    f.missing * (0.3 + next() * 0.9)
                };
            }
            (champion.probability(&FeatureVector(v)), v)
        })
        .collect();
    vectors.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert!(
        vectors[0].0 > vectors[vectors.len() - 1].0 + 0.05,
        "the spread ranks: {} vs {}",
        vectors[0].0,
        vectors[vectors.len() - 1].0
    );
    let risky = vectors[..n].iter().map(|v| v.1).collect();
    let safe = vectors[vectors.len() - n..].iter().map(|v| v.1).collect();
    (risky, safe)
}

/// Five faults (on the riskiest vectors) and five without (on the safest), opened,
/// worked and resolved by `agent` now.
async fn label_outcomes(desk: &Desk, agent: &str, round: usize) {
    let (risky, safe) = ranked_vectors(5);
    let cases = risky
        .into_iter()
        .map(|v| (v, "battery_replaced"))
        .chain(safe.into_iter().map(|v| (v, "no_fault_found")));
    for (k, (values, outcome)) in cases.enumerate() {
        let device = format!("reg-{round}-{k}-{}", desk.tag);
        let id = desk
            .accepted_ticket(&device, &format!("rb-{}", desk.tag), Tier::Medium)
            .await;
        let f = ScoredFeatures {
            schema: schema_fingerprint(),
            values: values.to_vec(),
            sample_weight: None,
        };
        let mut tx = desk.store.begin().await.unwrap();
        sqlx::query("UPDATE tickets SET features = $2 WHERE id = $1")
            .bind(id)
            .bind(serde_json::to_string(&f).unwrap())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let path = format!("/api/v1/tickets/{id}/actions");
        for a in [
            json!({"action": "claim"}),
            json!({"action": "start"}),
            json!({"action": "resolve", "outcome": outcome}),
        ] {
            let (s, v) = desk.call("POST", &path, Some(agent), Some(a)).await;
            assert_eq!(s, 200, "{v}");
        }
    }
}

async fn aliases(desk: &Desk, token: &str) -> (Value, Value) {
    let (s, v) = desk.call("GET", "/api/v1/models", Some(token), None).await;
    assert_eq!(s, 200, "{v}");
    (
        v["aliases"]["champion"]["version"].clone(),
        v["aliases"]["challenger"]["version"].clone(),
    )
}

async fn lifecycle(url: &str) -> (Desk, String) {
    let slot = Arc::new(ModelSlot::load(None).unwrap());
    let desk = desk_on(url, slot.clone()).await;
    let store: &Store = &desk.store;
    // A shared database may hold another run's registry: it starts from what it finds.
    registry::start(store, &slot, T0).await.unwrap();
    let bundled = ModelArtifact::bundled().unwrap().version;
    let (_, admin) = desk.user("adm", Role::Admin).await;
    let (_, analyst) = desk.user("ana", Role::Analyst).await;
    let (_, agent) = desk.user("age", Role::Agent).await;
    let (champion, _) = aliases(&desk, &analyst).await;
    let champion = champion.as_str().unwrap().to_owned();
    if champion != bundled {
        // Put the bundled model back in force for this run.
        registry::rollback(store, &slot, "test", &bundled, None, T0)
            .await
            .unwrap();
    }
    if slot.challenger().is_some() {
        registry::set_challenger(store, &slot, "test", None, T0)
            .await
            .unwrap();
    }
    assert_eq!(slot.current().version, bundled);
    let tag = desk.tag.clone();
    let worse = format!("forest-worse-{tag}");
    let same = format!("forest-same-{tag}");

    // Bad artifacts are refused, and nothing is registered.
    let before = desk
        .call("GET", "/api/v1/models", Some(&analyst), None)
        .await
        .1["versions"]
        .as_array()
        .unwrap()
        .len();
    let (s, v) = post_raw(&desk, "/api/v1/models", &admin, b"{ nope".to_vec()).await;
    assert_eq!(s, 422, "{v}");
    let mut other = variant(&format!("forest-other-{tag}"), 1.0);
    other.schema.fingerprint = "another-schema".into();
    let (s, v) = post_raw(&desk, "/api/v1/models", &admin, artifact_bytes(&other)).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("schema"), "{v}");
    let (s, v) = post_raw(&desk, "/api/v1/models", &agent, artifact_bytes(&other)).await;
    assert_eq!(s, 403, "{v}");
    // The model in force again: the same artifact, nothing new.
    let (s, v) = post_raw(
        &desk,
        "/api/v1/models",
        &admin,
        artifact_bytes(&ModelArtifact::bundled().unwrap()),
    )
    .await;
    assert_eq!(s, 200, "registered already: {v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": worse})),
        )
        .await;
    assert_eq!(s, 409, "no challenger yet: {v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/challenger",
            Some(&admin),
            Some(json!({"version": bundled})),
        )
        .await;
    assert_eq!(s, 409, "the champion cannot challenge itself: {v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/challenger",
            Some(&admin),
            Some(json!({"version": "never-registered"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/challenger",
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 422, "the version is required (null clears): {v}");
    let (_, v) = desk
        .call("GET", "/api/v1/models", Some(&analyst), None)
        .await;
    assert_eq!(v["versions"].as_array().unwrap().len(), before);
    let (s, _) = desk
        .call("GET", "/api/v1/models/gate", Some(&analyst), None)
        .await;
    assert_eq!(s, 404, "no challenger, no gate");

    // A deliberately worse challenger, registered as such.
    let (s, v) = post_raw(
        &desk,
        "/api/v1/models?challenger=true",
        &admin,
        artifact_bytes(&variant(&worse, -1.0)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], worse.as_str());
    let mut changed = variant(&worse, -1.0);
    changed.threshold = 0.5;
    let (s, v) = post_raw(&desk, "/api/v1/models", &admin, artifact_bytes(&changed)).await;
    assert_eq!(s, 409, "a version is one artifact: {v}");
    assert_eq!(
        aliases(&desk, &analyst).await,
        (json!(bundled), json!(worse))
    );
    assert_eq!(slot.challenger().unwrap().version, worse);

    // Ingest scores every device with both; only the champion's score decides.
    let pipeline_slot = Arc::new(ModelSlot::load(None).unwrap());
    registry::sync(store, &pipeline_slot).await.unwrap();
    assert_eq!(pipeline_slot.challenger().unwrap().version, worse);
    let mut pipeline = Pipeline::new(
        store.clone(),
        pipeline_slot.clone(),
        PolicyConfig::default(),
        PipelineSettings::default(),
        Arc::new(Metrics::new()),
        desk.clock.clone(),
    );
    let tenant = format!("t{tag}");
    let devices: Vec<String> = (0..3).map(|i| format!("sh-{i}-{tag}")).collect();
    let batch: Vec<Delivery> = devices
        .iter()
        .map(|d| Delivery {
            topic: common::topic(&tenant, d, Channel::Heartbeat),
            payload: common::heartbeat(d, 1, T0 - H, 95.0),
        })
        .collect();
    assert_eq!(pipeline.process(&batch).await.accepted, 3);
    for d in &devices {
        let r = sqlx::query(
            "SELECT risk, risk_alarm, model_version, shadow_risk, shadow_alarm, shadow_version
             FROM devices WHERE device_id = $1",
        )
        .bind(d.as_str())
        .fetch_one(&mut *store.begin().await.unwrap())
        .await
        .unwrap();
        let risk: f64 = r.get(0);
        let shadow: f64 = r.get(3);
        assert_eq!(r.get::<String, _>(2), bundled);
        assert_eq!(r.get::<String, _>(5), worse);
        assert!(
            (risk - shadow).abs() > 0.05,
            "the reversed model scores otherwise: {risk} vs {shadow}"
        );
        let day: Option<f64> =
            sqlx::query("SELECT shadow_risk_max FROM score_days WHERE device_id = $1")
                .bind(d.as_str())
                .fetch_one(&mut *store.begin().await.unwrap())
                .await
                .unwrap()
                .get(0);
        assert_eq!(day, Some(shadow), "the day's row keeps the shadow too");
    }

    // Outcomes labelled over two days since the challenger started.
    desk.clock.set(Timestamp(T0 + 48 * H));
    label_outcomes(&desk, &agent, 0).await;
    let (s, g) = desk
        .call("GET", "/api/v1/models/gate", Some(&analyst), None)
        .await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["outcomes"], 10);
    assert_eq!(g["faults"], 5);
    assert_eq!(g["capacity"], 2, "a ticket a day over two days");
    assert_eq!(g["champion"]["pr_auc"], 1.0, "{g}");
    assert!(g["challenger"]["pr_auc"].as_f64().unwrap() < 0.6, "{g}");
    assert_eq!(g["passed"], false);
    assert!(g["shadowed"].as_u64().unwrap() >= 3);

    // The gate refuses it; an override needs a reason; a stale challenger is refused.
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": worse})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["gate"]["passed"], false, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("PR-AUC"), "{v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": worse, "override": true})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": "someone-else", "override": true, "reason": "x"})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(
        aliases(&desk, &analyst).await,
        (json!(bundled), json!(worse)),
        "refusals change nothing"
    );
    assert_eq!(slot.current().version, bundled);

    // Overridden, with a reason: recorded, in force here at once.
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": worse, "override": true, "reason": "test of the override"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["overridden"], true);
    assert_eq!(v["gate"]["passed"], false);
    assert_eq!(slot.current().version, worse);
    assert!(slot.challenger().is_none());
    assert_eq!(aliases(&desk, &analyst).await, (json!(worse), Value::Null));
    // Another replica follows on its next check, without a restart.
    assert!(registry::sync(store, &pipeline_slot).await.unwrap());
    assert_eq!(pipeline_slot.current().version, worse);
    assert!(pipeline_slot.challenger().is_none());

    // Rolled back.
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/rollback",
            Some(&admin),
            Some(json!({"version": bundled, "reason": "worse on the desk's outcomes"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(slot.current().version, bundled);
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/rollback",
            Some(&admin),
            Some(json!({"version": bundled})),
        )
        .await;
    assert_eq!(s, 409, "the champion already: {v}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/rollback",
            Some(&admin),
            Some(json!({"version": "never-registered"})),
        )
        .await;
    assert_eq!(s, 404, "{v}");
    registry::sync(store, &pipeline_slot).await.unwrap();
    assert_eq!(pipeline_slot.current().version, bundled);
    // A restart keeps the rollback: the bundled model displaces nobody.
    let restarted = ModelSlot::load(None).unwrap();
    registry::start(store, &restarted, T0 + 49 * H)
        .await
        .unwrap();
    assert_eq!(aliases(&desk, &analyst).await.0, json!(bundled));

    // A challenger as good as the champion passes its gate on outcomes of its own time.
    desk.clock.set(Timestamp(T0 + 50 * H));
    let (s, v) = post_raw(
        &desk,
        "/api/v1/models?challenger=true",
        &admin,
        artifact_bytes(&variant(&same, 1.0)),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (_, g) = desk
        .call("GET", "/api/v1/models/gate", Some(&analyst), None)
        .await;
    assert_eq!(g["outcomes"], 0, "the earlier outcomes are not its: {g}");
    desk.clock.set(Timestamp(T0 + 96 * H));
    label_outcomes(&desk, &agent, 1).await;
    let (_, g) = desk
        .call("GET", "/api/v1/models/gate", Some(&analyst), None)
        .await;
    assert_eq!(g["passed"], true, "{g}");
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/promote",
            Some(&admin),
            Some(json!({"challenger": same})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["overridden"], false);
    assert_eq!(slot.current().version, same);

    // Every change recorded, newest first, with who and why.
    let (_, reg) = desk
        .call("GET", "/api/v1/models", Some(&analyst), None)
        .await;
    let changes: Vec<(String, String)> = reg["changes"]
        .as_array()
        .unwrap()
        .iter()
        .take(5)
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["version"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("promote".to_owned(), same.clone()),
            ("challenger".to_owned(), same.clone()),
            ("rollback".to_owned(), bundled.clone()),
            ("promote".to_owned(), worse.clone()),
            ("challenger".to_owned(), worse.clone()),
        ]
    );
    assert_eq!(reg["changes"][2]["reason"], "worse on the desk's outcomes");
    assert!(reg["changes"][3]["actor"]
        .as_str()
        .unwrap()
        .starts_with("adm-"));
    // Back to the bundled model for whoever shares this store next.
    registry::rollback(store, &slot, "test", &bundled, None, desk.clock.now().0)
        .await
        .unwrap();
    (desk, admin)
}

#[tokio::test]
async fn sqlite_a_challenger_is_shadowed_gated_promoted_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let (desk, admin) = lifecycle(&url).await;
    models_page(&desk, &admin).await;
}

#[tokio::test]
async fn postgres_a_challenger_is_shadowed_gated_promoted_and_rolled_back() {
    // The gate ranges over every outcome in the store: a database of its own keeps
    // other tests' tickets out of its figures.
    lifecycle(&tests::services::postgres_database("gate").await).await;
}

/// The page: the worse challenger's failed gate, promotion refused without the
/// override, promoted with it, then rolled back from the versions table.
async fn models_page(desk: &Desk, admin: &str) {
    use tests::browser::Browser;
    let worse = format!("forest-worse-{}", desk.tag);
    let (s, v) = desk
        .call(
            "POST",
            "/api/v1/models/challenger",
            Some(admin),
            Some(json!({"version": worse})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    desk.clock.set(Timestamp(T0 + 150 * H));
    let base = &desk.base;
    let mut b = Browser::start("model_pages", 1280, 1100).await;
    b.client.goto(&format!("{base}/login")).await.unwrap();
    b.fill("#token", admin).await;
    b.submit("form.card button[type=submit]").await;
    b.client.goto(&format!("{base}/desk/models")).await.unwrap();
    b.shot("models-failing-gate").await;
    let text = b.text().await;
    assert!(text.contains("The challenger fails its gate"), "{text}");
    assert!(
        text.contains("ROC-AUC 0.9"),
        "each version's validation: {text}"
    );
    assert!(text.contains(&worse), "{text}");
    b.submit("#promote-form button").await;
    let text = b.text().await;
    assert!(text.contains("fails its gate"), "refused: {text}");
    b.client.goto(&format!("{base}/desk/models")).await.unwrap();
    b.click("#override").await;
    b.fill("#promote-reason", "checked by hand").await;
    b.submit("#promote-form button").await;
    let text = b.text().await;
    assert!(text.contains("gate overridden"), "{text}");
    assert!(text.contains("checked by hand"), "{text}");
    b.shot("models-promoted").await;
    let bundled = ModelArtifact::bundled().unwrap().version;
    b.submit(&format!(
        "#versions form:has(input[value='{bundled}']) button"
    ))
    .await;
    let text = b.text().await;
    assert!(text.contains("No challenger is set"), "{text}");
    b.shot("models-rolled-back").await;
    b.close().await;
    let (_, reg) = desk.call("GET", "/api/v1/models", Some(admin), None).await;
    assert_eq!(reg["aliases"]["champion"]["version"], bundled.as_str());
}
