//! The cohort watch over a real store, on SQLite and PostgreSQL: confirmed outcomes
//! count as failures by their category, special cases are kept apart, the table and
//! the flags come out of the API for analysts only, a run on demand records its flags
//! once (a second run updates them), and bad requests get a 4xx and change nothing.
//! The database may be shared with other tests: every device here is of a model of
//! its own, and only its cells are looked at.

mod desk;

use cloud_ingest::cohorts::watch::WatchConfig;
use cloud_ingest::cohorts::watcher::Watcher;
use cloud_ingest::desk::auth::Role;
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::store::cohorts;
use desk::{Desk, T0};
use serde_json::Value;

const DAY: u64 = 86_400_000;

fn battery_cell<'a>(table: &'a Value, batch: &str) -> &'a Value {
    table["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dimension"] == "batch" && c["cohort"] == batch && c["problem"] == "battery")
        .unwrap_or_else(|| panic!("no battery cell for {batch}"))
}

async fn the_watch_over_the_store(url: &str) {
    let d = Desk::start(url).await;
    let (_, analyst) = d.user("ana", Role::Analyst).await;
    let (_, agent) = d.user("age", Role::Agent).await;
    let model = format!("m-{}", d.tag);
    let (good, bad) = (format!("{model}-good"), format!("{model}-bad"));
    let good_ids = d.cohort_devices(&model, &good, 40).await;
    let bad_ids = d.cohort_devices(&model, &bad, 40).await;
    // The bad batch: 12 confirmed battery faults, one of them categorised by the
    // inspection (a stability ticket that turned out to be the battery).
    for (n, dev) in bad_ids.iter().take(11).enumerate() {
        d.closed_ticket(dev, n, "battery", "battery_replaced", Some("battery"))
            .await;
    }
    d.closed_ticket(&bad_ids[11], 0, "stability", "replaced", Some("battery"))
        .await;
    // The good batch: one confirmed fault, and special cases that are not failures.
    d.closed_ticket(&good_ids[0], 0, "battery", "repaired", None)
        .await;
    d.closed_ticket(&good_ids[1], 0, "battery", "no_fault_found", None)
        .await;
    d.closed_ticket(&good_ids[2], 0, "battery", "user_damage", None)
        .await;
    d.closed_ticket(&good_ids[3], 0, "battery", "abuse", None)
        .await;
    d.closed_ticket(&good_ids[4], 0, "battery", "customer_declined", None)
        .await;

    // Heartbeats count for the firmware their boot ran, not the device's latest: a
    // device births before it sends what it spooled on the old version.
    let dev = &good_ids[5];
    let mut tx = d.store.begin().await.unwrap();
    sqlx::query("UPDATE devices SET firmware = '2.0' WHERE device_id = $1")
        .bind(dev.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    cohorts::add_boots(
        &mut tx,
        &[cohorts::Boot {
            device_id: dev,
            boot_id: "boot-old",
            firmware: "1.0",
            ts_ms: T0 - 3 * DAY,
        }],
    )
    .await
    .unwrap();
    let usage = |boot_id, restarts| cohorts::FirmwareUsage {
        device_id: dev,
        boot_id,
        day_ms: T0 - 2 * DAY,
        operational_s: 3600,
        crash_free_s: 3000,
        unexpected_restarts: restarts,
        crashes: 0,
    };
    cohorts::add_usage(
        &mut tx,
        &[
            usage("boot-old", 2),
            usage("boot-old", 1),
            usage("boot-new", 5),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let facts = d.store.fleet_facts().await.unwrap();
    let mut days: Vec<(String, u64, u64)> = facts
        .firmware_days
        .iter()
        .filter(|f| &f.device_id == dev)
        .map(|f| (f.firmware.clone(), f.operational_s, f.unexpected_restarts))
        .collect();
    days.sort();
    assert_eq!(
        days,
        [("1.0".to_owned(), 7200, 3), ("2.0".to_owned(), 3600, 5)],
        "the old boot's days on 1.0 (summed), an unknown boot's on the device's latest"
    );

    let (s, table) = d
        .call(
            "GET",
            "/api/v1/cohorts?dimension=batch",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 200, "{table}");
    let b = battery_cell(&table, &bad);
    assert_eq!(
        b["within"],
        model.as_str(),
        "a batch is compared within its model"
    );
    assert_eq!(b["observed"], 12);
    assert_eq!(b["devices"], 40);
    assert!((b["exposure_days"].as_f64().unwrap() - 4000.0).abs() < 1e-6);
    // The good batch's one failure over the same exposure at the same ages.
    assert!((b["expected"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{b}");
    assert_eq!(b["rest_observed"], 1);
    assert!(b["q_value"].as_f64().unwrap() < 0.05, "{b}");
    let g = battery_cell(&table, &good);
    assert_eq!(g["observed"], 1);
    assert_eq!(
        g["excluded"], 3,
        "no fault found, user damage and abuse: {g}"
    );
    assert!(table["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["dimension"] == "batch"));

    // Analysts only; bad filters are refused.
    let (s, _) = d.call("GET", "/api/v1/cohorts", Some(&agent), None).await;
    assert_eq!(s, 403);
    let (s, _) = d.call("GET", "/api/v1/cohorts", None, None).await;
    assert_eq!(s, 401);
    for bad_query in ["dimension=shoe", "max_q=2", "problem=bees", "colour=red"] {
        let (s, v) = d
            .call(
                "GET",
                &format!("/api/v1/cohorts?{bad_query}"),
                Some(&analyst),
                None,
            )
            .await;
        assert_eq!(s, 400, "{bad_query}: {v}");
    }
    let (s, _) = d
        .call("POST", "/api/v1/cohorts/run", Some(&agent), None)
        .await;
    assert_eq!(s, 403);
    let (s, v) = d
        .call(
            "GET",
            "/api/v1/cohort-flags?status=maybe",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // A run records the flag once; a second run updates it.
    let key = format!("batch:{bad}:battery:life:failures");
    let (s, run) = d
        .call("POST", "/api/v1/cohorts/run", Some(&analyst), None)
        .await;
    assert_eq!(s, 200, "{run}");
    let is_ours = |f: &Value| f["cohort"] == bad.as_str() && f["kind"] == "batch";
    assert!(run["new"].as_array().unwrap().iter().any(is_ours), "{run}");
    assert!(
        !run["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["cohort"] == good.as_str()),
        "the good batch is not flagged: {run}"
    );
    let (_, again) = d
        .call("POST", "/api/v1/cohorts/run", Some(&analyst), None)
        .await;
    assert!(
        !again["new"].as_array().unwrap().iter().any(is_ours),
        "{again}"
    );
    assert!(again["flags"].as_array().unwrap().iter().any(is_ours));
    let (s, flags) = d
        .call(
            "GET",
            "/api/v1/cohort-flags?status=open",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let ours: Vec<&Value> = flags["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| is_ours(&r["flag"]))
        .collect();
    assert_eq!(ours.len(), 1, "one record per key: {flags}");
    assert_eq!(ours[0]["runs"], 2);
    assert_eq!(ours[0]["status"], "open");
    assert_eq!(ours[0]["flag"]["evidence"]["observed"], 12);
    let recorded: Vec<String> = d
        .store
        .cohort_flags(None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.flag.key())
        .collect();
    assert!(recorded.contains(&key), "{recorded:?}");

    // The scheduled watch counts a new flag in /metrics, once.
    let mut tx = d.store.begin().await.unwrap();
    sqlx::query("DELETE FROM cohort_flags WHERE flag_key = $1")
        .bind(key.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let metrics = Metrics::new();
    let watcher = Watcher {
        config: WatchConfig::default(),
    };
    watcher.check(&d.store, T0, None, &metrics).await.unwrap();
    watcher
        .check(&d.store, T0 + DAY, None, &metrics)
        .await
        .unwrap();
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("fleet_ingest_cohort_flags_total{kind=\"batch\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.ends_with(" 1") || !url.starts_with("sqlite"), "{line}");
    assert!(
        text.contains("fleet_ingest_cohort_watch_runs_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn sqlite_the_watch_over_the_store() {
    let dir = tempfile::tempdir().unwrap();
    the_watch_over_the_store(&format!("sqlite://{}", dir.path().join("c.db").display())).await;
}

#[tokio::test]
async fn postgres_the_watch_over_the_store() {
    the_watch_over_the_store(&tests::services::postgres_url()).await;
}
