//! `export-labels`: resolved tickets become the rows `models train --csv` reads, on
//! SQLite and PostgreSQL, and what gives no row is counted with its reason.

mod desk;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::store::tickets::ScoredFeatures;
use cloud_ingest::tickets::Tier;
use cloud_ingest::training_set;
use desk::Desk;
use models::labels::{from_csv, CsvColumns};
use models::schema::{schema_fingerprint, FEATURES, FEATURE_COUNT};
use serde_json::json;

async fn resolved_tickets_become_training_rows(url: &str) {
    let desk = Desk::start(url).await;
    let (_, ana) = desk.user("ana", Role::Agent).await;
    let batch = format!("b-{}", desk.tag);
    // (device, outcome, stored features)
    let fp = schema_fingerprint();
    let cases: [(&str, &str, Option<&str>); 5] = [
        ("lab-fault", "battery_replaced", Some(fp.as_str())),
        ("lab-fine", "no_fault_found", Some(fp.as_str())),
        ("lab-no", "customer_declined", Some(fp.as_str())),
        ("lab-old", "repaired", None),
        ("lab-other", "repaired", Some("another-schema")),
    ];
    let mut ids = Vec::new();
    for (k, (device, outcome, schema)) in cases.iter().enumerate() {
        let id = desk.accepted_ticket(device, &batch, Tier::Medium).await;
        if let Some(schema) = schema {
            let mut values: Vec<f64> = FEATURES.iter().map(|f| f.missing).collect();
            values[0] = k as f64 + 0.5;
            let f = ScoredFeatures {
                schema: (*schema).into(),
                values,
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
        }
        let path = format!("/api/v1/tickets/{id}/actions");
        for a in [
            json!({"action": "claim"}),
            json!({"action": "start"}),
            json!({"action": "resolve", "outcome": outcome}),
        ] {
            let (s, v) = desk.call("POST", &path, Some(&ana), Some(a)).await;
            assert_eq!(s, 200, "{v}");
        }
        ids.push(id);
    }
    // Two graded trade-ins: one whose bench battery (70 %) is far below telemetry's.
    let (_, rae) = desk.user("rae", Role::Recycler).await;
    for (device, battery) in [("lab-trade-worn", 70), ("lab-trade-fine", 90)] {
        let id = desk.accepted_tradein(device, 88.0).await;
        for a in [
            json!({"action": "ship", "shipping_ref": "DHL-1"}),
            json!({"action": "receive"}),
            json!({"action": "grade", "functional": 0, "cosmetic": "B", "battery_pct": battery,
                "activation_lock_off": true}),
        ] {
            let (s, v) = desk
                .call(
                    "POST",
                    &format!("/api/v1/tradeins/{id}/actions"),
                    Some(&rae),
                    Some(a),
                )
                .await;
            assert_eq!(s, 200, "{v}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("labels");
    let m = training_set::export(&desk.store, &out, 7, 80)
        .await
        .unwrap();
    let trades = std::fs::read_to_string(out.join(training_set::TRADEINS_CSV)).unwrap();
    let ours: Vec<&str> = trades.lines().filter(|l| l.contains(&desk.tag)).collect();
    assert_eq!(ours.len(), 2, "{trades}");
    let worn = ours
        .iter()
        .find(|l| l.starts_with("lab-trade-worn"))
        .unwrap();
    let cells: Vec<&str> = worn.split(',').collect();
    assert_eq!((cells[2], cells[3], cells[5]), ("1", "battery", "graded"));
    assert!(worn.ends_with(",70,88,-18,0,B,recycle"), "{worn}");
    let fine = ours
        .iter()
        .find(|l| l.starts_with("lab-trade-fine"))
        .unwrap();
    assert!(
        fine.contains(",0,,") && fine.ends_with(",90,88,2,0,B,refurbish"),
        "{fine}"
    );
    assert!(m.tradeins.rows >= 2 && m.tradeins.positives >= 1, "{m:?}");
    let set = from_csv(
        &out.join(training_set::TRADEINS_CSV),
        &CsvColumns {
            failure_mode: Some("mode".into()),
            ..CsvColumns::schema_named("device_id", "ts", "label")
        },
        14,
    )
    .unwrap();
    assert_eq!(
        set.y.len() as u64,
        m.tradeins.rows,
        "the trainer reads it as it is"
    );
    // A shared PostgreSQL holds other tests' tickets: count ours in the file.
    let text = std::fs::read_to_string(out.join(training_set::CSV)).unwrap();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(&desk.tag)).collect();
    assert_eq!(
        ours.len(),
        2,
        "battery_replaced and no_fault_found only: {text}"
    );
    let fault = ours.iter().find(|l| l.starts_with("lab-fault")).unwrap();
    let cells: Vec<&str> = fault.split(',').collect();
    // device_id..resolved_ms, weight, model_version, then the features.
    assert_eq!(cells.len(), 9 + FEATURE_COUNT);
    assert_eq!(
        (cells[2], cells[3], cells[5]),
        ("1", "battery", "battery_replaced")
    );
    assert_eq!(cells[7], "1", "a scored ticket stands for itself");
    assert_eq!(cells[9], "0.5", "the stored vector, in schema order");
    let fine = ours.iter().find(|l| l.starts_with("lab-fine")).unwrap();
    assert!(fine.contains(",0,,"), "no fault, no mode: {fine}");
    assert!(m.tally.rows >= 2 && m.tally.positives >= 1, "{m:?}");
    for why in ["no_verdict", "no_features", "other_schema"] {
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(training_set::MANIFEST)).unwrap(),
        )
        .unwrap();
        assert!(
            manifest["skipped"][why].as_u64() >= Some(1),
            "{why}: {manifest}"
        );
        assert_eq!(manifest["schema"], json!(fp));
        assert!(manifest["train"].as_str().unwrap().contains("--csv"));
    }
    assert!(!out.join(format!("{}.part", training_set::CSV)).exists());

    // The trainer reads it as it is.
    let set = from_csv(
        &out.join(training_set::CSV),
        &CsvColumns {
            failure_mode: Some("mode".into()),
            ..CsvColumns::schema_named("device_id", "ts", "label")
        },
        14,
    )
    .unwrap();
    assert_eq!(set.y.len() as u64, m.tally.rows);
    assert!(set
        .devices
        .iter()
        .any(|d| d.id.starts_with("lab-fault") && d.failed));
    assert!(set
        .devices
        .iter()
        .any(|d| d.id.starts_with("lab-fine") && !d.failed));
}

#[tokio::test]
async fn sqlite_resolved_tickets_become_training_rows() {
    let dir = tempfile::tempdir().unwrap();
    resolved_tickets_become_training_rows(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_resolved_tickets_become_training_rows() {
    resolved_tickets_become_training_rows(&tests::services::postgres_url()).await;
}

#[tokio::test]
async fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let e = training_set::export(&desk.store, &file.join("sub"), 0, 80)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("a-file"), "{e}");
}
