//! Action items through the API, on SQLite and PostgreSQL: an analyst raises one with an
//! owner, due date, KPI and target; it is worked to done at the version seen; bad items,
//! stale and final moves get a 4xx and change nothing; every change is audited.

mod desk;

use cloud_ingest::desk::auth::Role;
use desk::Desk;
use serde_json::{json, Value};

async fn action_items_are_raised_worked_and_audited(url: &str) {
    let d = Desk::start(url).await;
    let (ana_name, ana) = d.user("ana", Role::Analyst).await;
    let (owner, _) = d.user("owen", Role::Agent).await;
    let (_, agent) = d.user("age", Role::Agent).await;
    let problem = format!(
        "Batch A12-{} batteries fail at 3x their model's rate",
        d.tag
    );
    let good = json!({
        "problem": problem,
        "owner": owner,
        "due": "2026-12-15",
        "kpi": "battery failures per device-year of the batch",
        "target": "below 0.12",
        "source": "report:2026-11",
    });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/action-items",
            Some(&agent),
            Some(good.clone()),
        )
        .await;
    assert_eq!(s, 403);
    for (body, says) in [
        (with("owner", json!("nobody-at-all")), "not a desk user"),
        (with("due", json!("2026-11-01")), "has passed"),
        (with("due", json!("next week")), "YYYY-MM-DD"),
        (with("source", json!("email")), "report:2026-11"),
        (with("problem", json!("")), "problem: 1 to 500"),
        (with("colour", json!("red")), "unknown field"),
    ] {
        let (s, v) = d
            .call(
                "POST",
                "/api/v1/action-items",
                Some(&ana),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let mine = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["problem"] == problem.as_str())
            .cloned()
            .collect::<Vec<_>>()
    };
    let (_, list) = d
        .call("GET", "/api/v1/action-items", Some(&ana), None)
        .await;
    assert!(mine(&list).is_empty(), "refused items were not kept");
    let (s, item) = d
        .call(
            "POST",
            "/api/v1/action-items",
            Some(&ana),
            Some(good.clone()),
        )
        .await;
    assert_eq!(s, 201, "{item}");
    let id = item["id"].as_i64().unwrap();
    assert_eq!(item["status"], "open");
    assert_eq!(item["owner"], owner.as_str());
    assert_eq!(item["source"], "report:2026-11");
    assert_eq!(
        item["due_ms"], 1_797_379_199_999i64,
        "the end of the due day"
    );

    let path = format!("/api/v1/action-items/{id}");
    let (s, v) = d
        .call(
            "POST",
            &path,
            Some(&ana),
            Some(json!({"status": "in_progress", "version": 0})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);
    let (s, _) = d
        .call(
            "POST",
            &path,
            Some(&ana),
            Some(json!({"status": "done", "version": 0})),
        )
        .await;
    assert_eq!(s, 409, "stale");
    let (s, _) = d
        .call(
            "POST",
            &path,
            Some(&ana),
            Some(json!({"status": "finished", "version": 1})),
        )
        .await;
    assert_eq!(s, 422);
    let (s, _) = d
        .call(
            "POST",
            &path,
            Some(&agent),
            Some(json!({"status": "done", "version": 1})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = d
        .call(
            "POST",
            &path,
            Some(&ana),
            Some(json!({"status": "done", "version": 1, "note": "supplier replaced"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "done");
    assert!(v["done_ms"].as_i64().is_some());
    assert_eq!(v["note"], "supplier replaced");
    let (s, v) = d
        .call(
            "POST",
            &path,
            Some(&ana),
            Some(json!({"status": "open", "version": 2})),
        )
        .await;
    assert_eq!(s, 409, "done is final: {v}");
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/action-items/987654321",
            Some(&ana),
            Some(json!({"status": "done", "version": 0})),
        )
        .await;
    assert_eq!(s, 404);

    let (_, done) = d
        .call("GET", "/api/v1/action-items?status=done", Some(&ana), None)
        .await;
    assert_eq!(mine(&done).len(), 1);
    let (_, open) = d
        .call("GET", "/api/v1/action-items?status=open", Some(&ana), None)
        .await;
    assert!(mine(&open).is_empty());
    let (s, _) = d
        .call("GET", "/api/v1/action-items?status=late", Some(&ana), None)
        .await;
    assert_eq!(s, 400);
    let (_, audit) = d
        .call(
            "GET",
            &format!("/api/v1/audit?subject=action_item:{id}"),
            Some(&ana),
            None,
        )
        .await;
    let entries: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["user_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("action_item.move".to_owned(), ana_name.clone()),
            ("action_item.move".to_owned(), ana_name.clone()),
            ("action_item.add".to_owned(), ana_name.clone()),
        ]
    );
}

#[tokio::test]
async fn sqlite_action_items_are_raised_worked_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    action_items_are_raised_worked_and_audited(&format!(
        "sqlite://{}",
        dir.path().join("a.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_action_items_are_raised_worked_and_audited() {
    action_items_are_raised_worked_and_audited(&tests::services::postgres_url()).await;
}
