//! The after-sales review report: its figures match what the store holds (tickets by
//! tier, SLA, conversion, satisfaction, faults caught early and their lead, problem
//! frequency, the cohort table as the API shows it, the trend's step-up, excluded
//! outcomes); root-cause records and action items appear in it, and each action item
//! is reviewed in the following periods until it is done; the API, the CLI and the
//! pages refuse bad input; the HTML file is self-contained and is looked at in a real
//! browser (screenshots in target/test-output/report_pages/).

mod desk;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::policy::Problem;
use cloud_ingest::store::tickets;
use cloud_ingest::tickets::TicketState;
use desk::{Desk, H, T0};
use protocol::Timestamp;
use serde_json::{json, Value};
use tests::browser::{Browser, Locator};

/// Milliseconds of a UTC date.
fn at(y: i32, m: u32, d: u32) -> u64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(8, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis() as u64
}

fn kpi(r: &Value, key: &str) -> (Value, Value) {
    let k = r["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key"] == key)
        .unwrap_or_else(|| panic!("no KPI {key}"));
    (k["value"].clone(), k["previous"].clone())
}

async fn rate(d: &Desk, ticket: i64, stars: [i64; 3], comment: &str, at_ms: u64) {
    let mut tx = d.store.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO ticket_ratings (ticket_id, result, speed, service, comment, rated_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ticket)
    .bind(stars[0])
    .bind(stars[1])
    .bind(stars[2])
    .bind(comment)
    .bind(at_ms as i64)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn ticket_id(d: &Desk, ticket_ref: &str) -> i64 {
    use sqlx::Row;
    let mut tx = d.store.begin().await.unwrap();
    sqlx::query("SELECT id FROM tickets WHERE ticket_ref = $1")
        .bind(ticket_ref)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Two batches of one model: B-bad's batteries fail in November; a few tickets
/// elsewhere, two offers (one accepted), two ratings.
struct Fleet {
    model: String,
    bad: String,
    good: Vec<String>,
}

async fn fleet(d: &Desk) -> Fleet {
    let model = format!("S1-{}", d.tag);
    let bad = format!("{model}-bad");
    let good = d.cohort_devices(&model, &format!("{model}-good"), 40).await;
    let worn = d.cohort_devices(&model, &bad, 10).await;
    // November: eight battery faults in the bad batch, one in the good; a thermal ticket
    // with no fault found and a battery one damaged by the user (both kept out).
    for (n, dev) in worn.iter().take(8).enumerate() {
        d.dated_ticket(
            dev,
            n,
            "battery",
            "battery_replaced",
            None,
            at(2026, 11, 2 + n as u32),
        )
        .await;
    }
    d.dated_ticket(
        &good[0],
        0,
        "battery",
        "battery_replaced",
        None,
        at(2026, 11, 3),
    )
    .await;
    d.dated_ticket(
        &good[1],
        0,
        "thermal",
        "no_fault_found",
        None,
        at(2026, 11, 5),
    )
    .await;
    d.dated_ticket(&good[2], 0, "battery", "user_damage", None, at(2026, 11, 6))
        .await;
    // October: two repairs.
    for dev in &good[3..5] {
        d.dated_ticket(dev, 0, "battery", "repaired", None, at(2026, 10, 5))
            .await;
    }
    // Two proactive offers on 2026-11-21; one accepted.
    let a = d.offered_ticket_on(&good[5], Problem::Storage).await;
    d.offered_ticket_on(&good[6], Problem::Storage).await;
    let mut tx = d.store.begin().await.unwrap();
    tickets::move_ticket(
        &mut tx,
        a,
        TicketState::Accepted,
        "device",
        None,
        T0 - 20 * H,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let rated = ticket_id(d, &format!("T-{}-0", worn[0])).await;
    rate(
        d,
        rated,
        [5, 4, 5],
        "Fixed before it broke.",
        at(2026, 11, 18),
    )
    .await;
    let rated = ticket_id(d, &format!("T-{}-0", good[0])).await;
    rate(
        d,
        rated,
        [3, 3, 4],
        "Took a while | but fine.",
        at(2026, 11, 19),
    )
    .await;
    Fleet { model, bad, good }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_says_what_the_store_holds_and_reviews_its_action_items() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let d = Desk::start(&db).await;
    let (ana_name, ana) = d.user("ana", Role::Analyst).await;
    let (_, agent) = d.user("age", Role::Agent).await;
    let f = fleet(&d).await;

    // Bad requests: a 4xx that says why.
    for (path, token, status, says) in [
        ("/api/v1/reports/2026-13", &ana, 400, "not a month"),
        ("/api/v1/reports/november", &ana, 400, "not a month"),
        (
            "/api/v1/reports/2026-11?format=pdf",
            &ana,
            400,
            "unknown variant",
        ),
        (
            "/api/v1/reports/2026-11?colour=red",
            &ana,
            400,
            "unknown field",
        ),
        ("/api/v1/reports/2026-11", &agent, 403, ""),
    ] {
        let (s, v) = d.call("GET", path, Some(token), None).await;
        assert_eq!(s, status, "{path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{path}: {v}");
    }

    // The watch records the bad batch's flag; an analyst writes its five whys.
    let (s, _) = d
        .call("POST", "/api/v1/cohorts/run", Some(&ana), None)
        .await;
    assert_eq!(s, 200);
    let (_, flags) = d
        .call("GET", "/api/v1/cohort-flags", Some(&ana), None)
        .await;
    let flag = flags["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["flag"]["cohort"] == f.bad.as_str() && x["flag"]["kind"] == "batch")
        .unwrap_or_else(|| panic!("the bad batch is flagged: {flags}"))
        .clone();
    let flag_id = flag["id"].as_i64().unwrap();
    let why = |n: usize, evidence: &str| json!({"why": format!("Why {n}?"), "answer": format!("Because {n}."), "evidence": evidence});
    let path = format!("/api/v1/cohort-flags/{flag_id}/root-cause");
    let good_whys: Vec<Value> = (1..=3)
        .map(|n| why(n, &format!("/desk/devices/{}", f.good[n])))
        .collect();
    for (body, status, says) in [
        (
            json!({"whys": [], "conclusion": "x"}),
            422,
            "whys: 1 to 5, not 0",
        ),
        (
            json!({"whys": (1..=6).map(|n| why(n, "/desk/fleet")).collect::<Vec<_>>(), "conclusion": "x"}),
            422,
            "not 6",
        ),
        (
            json!({"whys": [why(1, "javascript:alert(1)")], "conclusion": "x"}),
            422,
            "is not a desk path",
        ),
        (
            json!({"whys": [why(1, "/desk/fleet")], "conclusion": " "}),
            422,
            "conclusion",
        ),
        (
            json!({"whys": [why(1, "/desk/fleet")]}),
            422,
            "missing field",
        ),
    ] {
        let (s, v) = d.call("POST", &path, Some(&ana), Some(body.clone())).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    let (s, _) = d.call("GET", &path, Some(&ana), None).await;
    assert_eq!(s, 404, "refused records were not kept");
    let body = json!({"whys": good_whys, "conclusion": "The cell supplier changed in week 30.", "version": 0});
    let (s, _) = d
        .call(
            "POST",
            "/api/v1/cohort-flags/999999/root-cause",
            Some(&ana),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = d
        .call("POST", &path, Some(&agent), Some(body.clone()))
        .await;
    assert_eq!(s, 403);
    let (s, rc) = d.call("POST", &path, Some(&ana), Some(body.clone())).await;
    assert_eq!(s, 200, "{rc}");
    assert_eq!(rc["version"], 1);
    let (s, v) = d.call("POST", &path, Some(&ana), Some(body.clone())).await;
    assert_eq!(s, 409, "a second first version is stale: {v}");

    // Two action items, raised on 2026-11-22: one measured, due 2026-12-20; one due
    // 2026-11-30 that nobody does.
    let measured = json!({
        "problem": format!("Batteries of {} fail in the field", f.model),
        "owner": ana_name, "due": "2026-12-20",
        "kpi": "battery faults confirmed on the model", "target": "down 50 % within a month",
        "measure": format!("faults:battery:{}", f.model), "source": "report:2026-11",
    });
    for (k, v, says) in [
        ("measure", json!("happiness"), "unknown KPI"),
        ("target", json!("fewer returns"), "with a measure"),
    ] {
        let mut bad = measured.clone();
        bad[k] = v;
        let (s, v) = d
            .call("POST", "/api/v1/action-items", Some(&ana), Some(bad))
            .await;
        assert_eq!(s, 422, "{v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{v}");
    }
    let (s, item) = d
        .call("POST", "/api/v1/action-items", Some(&ana), Some(measured))
        .await;
    assert_eq!(s, 201, "{item}");
    let item_id = item["id"].as_i64().unwrap();
    let (s, late) = d
        .call(
            "POST",
            "/api/v1/action-items",
            Some(&ana),
            Some(
                json!({"problem": "Call every customer of the bad batch", "owner": ana_name,
                "due": "2026-11-30", "kpi": "customers called", "target": "all of them",
                "source": format!("flag:{flag_id}")}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{late}");
    let late_id = late["id"].as_i64().unwrap();

    let (s, r) = d
        .call("GET", "/api/v1/reports/2026-11", Some(&ana), None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["schema"], "fleet-report/1");
    assert_eq!(r["previous_period"], "2026-10");
    // 8 + 1 + 1 + 1 dated tickets and 2 offers in November; 2 in October.
    assert_eq!(kpi(&r, "tickets"), (json!(13.0), json!(2.0)));
    assert_eq!(kpi(&r, "tickets:medium"), (json!(13.0), json!(2.0)));
    assert_eq!(kpi(&r, "tickets:high").0, json!(0.0));
    // Resolved in November: the eleven dated tickets, none breached.
    assert_eq!(kpi(&r, "sla_met:medium").0, json!(1.0));
    assert_eq!(kpi(&r, "sla_met:high").0, Value::Null);
    assert_eq!(kpi(&r, "offers_sent").0, json!(2.0));
    assert_eq!(kpi(&r, "proactive_conversion").0, json!(0.5));
    // (14/3 + 10/3) / 2 stars.
    assert_eq!(kpi(&r, "satisfaction").0, json!(4.0));
    assert_eq!(kpi(&r, "resolve_days"), (json!(10.0), json!(10.0)));
    assert_eq!(kpi(&r, "caught_early"), (json!(9.0), json!(2.0)));
    assert_eq!(kpi(&r, "lead_days").0, json!(10.0));
    assert_eq!(kpi(&r, "tradeins_received").0, json!(0.0));

    let problems = r["problems"].as_array().unwrap();
    let count = |p: &str| {
        let x = problems.iter().find(|x| x["problem"] == p).unwrap();
        (
            x["tickets"].clone(),
            x["confirmed"].clone(),
            x["excluded"].clone(),
        )
    };
    assert_eq!(count("battery"), (json!(8 + 1 + 1), json!(9), json!(1)));
    assert_eq!(count("thermal"), (json!(1), json!(0), json!(1)));
    assert_eq!(count("storage"), (json!(2), json!(0), json!(0)));
    let excluded: u64 = r["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcomes"].as_u64().unwrap())
        .sum();
    assert_eq!(excluded, 2, "no fault found and user damage are kept out");

    // The cohort row is the cohort watch's cell as the API shows it (the period ends
    // after every device's last message, so the cut changes nothing).
    let row = r["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["dimension"] == "batch" && c["cohort"] == f.bad.as_str() && c["problem"] == "battery"
        })
        .unwrap_or_else(|| panic!("the bad batch's row: {}", r["cohorts"]))
        .clone();
    assert_eq!(row["failures"], 8);
    assert_eq!(row["devices"], 10);
    assert_eq!(row["flagged"], true);
    let (_, cells) = d
        .call(
            "GET",
            "/api/v1/cohorts?dimension=batch&problem=battery",
            Some(&ana),
            None,
        )
        .await;
    let cell = cells["cells"]
        .as_array()
        .unwrap_or_else(|| panic!("{cells}"))
        .iter()
        .find(|c| {
            c["cohort"] == f.bad.as_str()
                && c["measure"] == "failures"
                && c["window_days"].is_null()
        })
        .unwrap_or_else(|| panic!("{cells}"))
        .clone();
    for (mine, theirs) in [
        ("rate", &cell["rate"]["rate"]),
        ("rate_low", &cell["rate"]["low"]),
        ("rate_high", &cell["rate"]["high"]),
        ("expected", &cell["expected"]),
        ("shrunk_rate", &cell["shrunk_rate"]),
        ("q_value", &cell["q_value"]),
    ] {
        let (a, b) = (row[mine].as_f64().unwrap(), theirs.as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{mine}: {a} against {b}"
        );
    }

    // The trend: from August, when the devices were first watched (June and July are
    // left out); November steps up against August to October, October does not.
    let trend = r["trend"].as_array().unwrap();
    let periods: Vec<&str> = trend
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(periods, ["2026-08", "2026-09", "2026-10", "2026-11"]);
    assert_eq!(trend[3]["tickets"], 13);
    assert_eq!(trend[3]["tickets_step_up"], true);
    assert_eq!(trend[2]["tickets_step_up"], false);

    let notable = r["notable"].as_array().unwrap();
    assert!(!notable.is_empty() && notable.len() <= 2, "{notable:?}");
    assert_eq!(notable[0]["lead_days"], 10.0);
    assert!(notable[0]["link"]
        .as_str()
        .unwrap()
        .starts_with("/desk/tickets/"));

    let rcs = r["root_causes"].as_array().unwrap();
    assert_eq!(rcs.len(), 1, "{rcs:?}");
    assert_eq!(rcs[0]["flag_id"], flag_id);
    assert_eq!(rcs[0]["whys"].as_array().unwrap().len(), 3);
    assert_eq!(
        rcs[0]["conclusion"],
        "The cell supplier changed in week 30."
    );
    let standing = r["flags"].as_array().unwrap();
    assert!(standing
        .iter()
        .any(|x| x["id"] == flag_id && x["new"] == true));

    let s = &r["satisfaction"];
    assert_eq!(s["ratings"], 2);
    assert_eq!(
        (
            s["result"].clone(),
            s["speed"].clone(),
            s["service"].clone()
        ),
        (json!(4.0), json!(3.5), json!(4.5))
    );
    assert_eq!(
        s["comments"][0]["text"], "Took a while | but fine.",
        "newest first"
    );
    assert!(
        r["summary"]
            .as_str()
            .unwrap()
            .starts_with("In 2026-11 the service opened 13 tickets (+550 % on 2026-10)"),
        "{}",
        r["summary"]
    );

    let row_of = |r: &Value, id: i64| {
        r["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
    };
    let a = row_of(&r, item_id).expect("raised in November");
    assert_eq!(a["raised_here"], true);
    assert_eq!(a["review"], "pending");
    assert_eq!(
        (a["value"].clone(), a["baseline"].clone(), a["met"].clone()),
        (json!(9.0), json!(9.0), json!(false))
    );
    let l = row_of(&r, late_id).expect("raised in November");
    assert_eq!(
        l["review"], "overdue",
        "due 2026-11-30, not done by the period's end"
    );

    // December: two more battery faults; the measured item is done on 2026-12-15.
    for (n, dev) in f.good[10..12].iter().enumerate() {
        d.dated_ticket(dev, n, "battery", "battery_replaced", None, at(2026, 12, 2))
            .await;
    }
    d.clock.set(Timestamp(at(2026, 12, 15)));
    let (s, v) = d
        .call(
            "POST",
            &format!("/api/v1/action-items/{item_id}"),
            Some(&ana),
            Some(json!({"status": "done", "version": item["version"], "note": "cells swapped"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, dec) = d
        .call("GET", "/api/v1/reports/2026-12", Some(&ana), None)
        .await;
    let a = row_of(&dec, item_id).expect("reviewed the period after");
    assert_eq!(a["raised_here"], false);
    assert_eq!(a["review"], "done_on_time");
    // Two faults now against nine in the month it was raised: down more than half.
    assert_eq!(
        (a["value"].clone(), a["baseline"].clone(), a["met"].clone()),
        (json!(2.0), json!(9.0), json!(true))
    );
    let l = row_of(&dec, late_id).expect("carried over");
    assert_eq!(
        (l["raised_here"].clone(), l["review"].clone()),
        (json!(false), json!("overdue"))
    );
    // January: the done item has been reviewed; the overdue one is still carried.
    let (_, jan) = d
        .call("GET", "/api/v1/reports/2027-01", Some(&ana), None)
        .await;
    assert!(
        row_of(&jan, item_id).is_none(),
        "done in December: reviewed then"
    );
    assert_eq!(row_of(&jan, late_id).unwrap()["review"], "overdue");
    // A report of the past is not changed by what happened later, but for the items.
    let (_, nov) = d
        .call("GET", "/api/v1/reports/2026-11", Some(&ana), None)
        .await;
    assert_eq!(kpi(&nov, "caught_early").0, json!(9.0));
    assert_eq!(
        row_of(&nov, item_id).unwrap()["review"],
        "pending",
        "not done by November's end"
    );

    // HTML: one self-contained file; Markdown for pasting.
    let html = d
        .http
        .get(format!("{}/api/v1/reports/2026-11?format=html", d.base))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let html = html.text().await.unwrap();
    for absent in ["<script", "<link", "src=", "@import", "url("] {
        assert!(!html.contains(absent), "{absent} in the HTML report");
    }
    assert_eq!(html.matches("<svg").count(), 2, "two charts inline");
    assert!(html.contains("@media print"));
    assert!(
        html.contains(&format!("{}/desk/flags/{flag_id}", d.base)),
        "links reach the desk"
    );
    let md = d
        .http
        .get(format!("{}/api/v1/reports/2026-11?format=md", d.base))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(md.starts_with("# After-sales review 2026-11"), "{md}");
    assert!(md.contains("| Tickets opened | 13 | 2 | +550 % |"), "{md}");
    assert!(
        md.contains("Took a while \\| but fine."),
        "a pipe does not break the table"
    );

    // The CLI writes the same document; a bad period is refused before anything runs.
    let out = dir.path().join("out/report.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args([
            "report", "--store", &db, "--period", "2026-11", "--format", "json", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let cli: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for key in [
        "kpis",
        "problems",
        "cohorts",
        "trend",
        "root_causes",
        "satisfaction",
    ] {
        assert_eq!(cli[key], nov[key], "{key}");
    }
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args([
            "report", "--store", &db, "--period", "2026-W54", "--format", "json",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("--period"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args([
            "report", "--store", &db, "--period", "2026-11", "--format", "pdf",
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("html, md, json"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // The pages: the report, its file, a flag's five whys, an action item from the page.
    d.clock.set(Timestamp(T0));
    let base = d.base.clone();
    let mut b = Browser::start("report_pages", 1280, 1000).await;
    b.client.goto(&format!("{base}/login")).await.unwrap();
    b.fill("#token", &ana).await;
    b.submit("form.card button[type=submit]").await;
    b.client
        .goto(&format!("{base}/desk/reports"))
        .await
        .unwrap();
    b.fill("#period", "2026-11").await;
    b.submit("#period-form button[type=submit]").await;
    let summary = b.find("#summary").await.text().await.unwrap();
    assert!(
        summary.starts_with("In 2026-11 the service opened 13 tickets"),
        "{summary}"
    );
    b.find("#problems-chart svg").await;
    b.find("#trend-chart svg").await;
    b.shot("report-page").await;
    b.shot_of("#cohorts", "report-cohorts").await;
    b.shot_of("#actions", "report-actions").await;
    // An action item raised from the report's page.
    let due = "document.getElementById('a-due').value = '2026-12-30';";
    b.fill("#a-problem", "Thermal: no fault found too often")
        .await;
    b.client.execute(due, vec![]).await.unwrap();
    b.fill("#a-kpi", "thermal tickets").await;
    b.choose("#a-measure", "tickets").await;
    b.fill("#a-target", "below 5").await;
    b.submit("#raise-action button[type=submit]").await;
    let actions = b.find("#actions").await.text().await.unwrap();
    assert!(
        actions.contains("Thermal: no fault found too often"),
        "{actions}"
    );
    // A bad target is refused with its reason, and nothing is kept.
    b.fill("#a-problem", "Another").await;
    b.client.execute(due, vec![]).await.unwrap();
    b.fill("#a-kpi", "thermal tickets").await;
    b.choose("#a-measure", "tickets").await;
    b.fill("#a-target", "fewer").await;
    b.submit("#raise-action button[type=submit]").await;
    let refused = b.find("p.error").await.text().await.unwrap();
    assert!(refused.contains("target \"fewer\""), "{refused}");
    let (_, all) = d
        .call("GET", "/api/v1/action-items", Some(&ana), None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");

    // The downloadable file, as a reader opens it.
    b.client
        .goto(&format!("{base}/desk/reports/2026-11/file?format=html"))
        .await
        .unwrap();
    b.find("main.report #kpis").await;
    b.shot("report-file").await;

    // The flag's page: rewrite the five whys with a fourth answer.
    b.client
        .goto(&format!("{base}/desk/flags/{flag_id}"))
        .await
        .unwrap();
    let listed = b
        .find("#whys")
        .await
        .find_all(Locator::Css("li"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    b.fill("#why4", "Why was the change not caught?").await;
    b.fill("#answer4", "Incoming inspection samples one cell per lot.")
        .await;
    b.fill("#evidence4", "https://wiki.example/qa/incoming")
        .await;
    b.submit("#save-whys").await;
    let whys = b.find("#whys").await.text().await.unwrap();
    assert!(
        whys.contains("Incoming inspection samples one cell per lot."),
        "{whys}"
    );
    b.shot("flag-whys").await;
    let (_, rc) = d.call("GET", &path, Some(&ana), None).await;
    assert_eq!(rc["version"], 2);
    assert_eq!(rc["whys"].as_array().unwrap().len(), 4);
    // A bad link is refused and the record stays as it was.
    b.client
        .execute(
            "document.getElementById('evidence1').value = 'javascript:alert(1)';",
            vec![],
        )
        .await
        .unwrap();
    b.submit("#save-whys").await;
    let refused = b.find("p.error").await.text().await.unwrap();
    assert!(refused.contains("evidence 1"), "{refused}");
    let (_, same) = d.call("GET", &path, Some(&ana), None).await;
    assert_eq!(same, rc);
    b.close().await;

    // On a phone the page fits its width: wide tables scroll inside themselves.
    let mut phone = Browser::start("report_phone", 390, 844).await;
    phone.client.goto(&format!("{base}/login")).await.unwrap();
    phone.fill("#token", &ana).await;
    phone.submit("form.card button[type=submit]").await;
    phone
        .client
        .goto(&format!("{base}/desk/reports/2026-11"))
        .await
        .unwrap();
    phone.find("#summary").await;
    phone.shot("phone").await;
    // What sticks out past the screen's right edge, if anything.
    let wide = phone
        .client
        .execute(
            "const w = window.innerWidth; return [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > w + 1
                 && ![...e.children].some(c => c.getBoundingClientRect().right > w + 1)
                 && !e.closest('table'))
               .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right));",
            vec![],
        )
        .await
        .unwrap();
    let overflow = phone
        .client
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{overflow} px too wide: {wide}"
    );
    phone.shot_of("#cohorts", "phone-cohorts").await;
    phone.close().await;

    // The file the CLI writes, opened from disk as a reader would: it needs nothing
    // else, and it is looked at whole.
    let file = dir.path().join("report.html");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args(["report", "--store", &db, "--period", "2026-11", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut reader = Browser::start("report_file", 1000, 4600).await;
    reader
        .client
        .goto(&format!("file://{}", file.display()))
        .await
        .unwrap();
    let title = reader.find("main.report h1").await.text().await.unwrap();
    assert_eq!(title, "After-sales review 2026-11");
    let charts = reader
        .client
        .find_all(Locator::Css("figure svg"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 2);
    reader.shot("whole").await;
    reader.shot_of("#problems-chart", "problems-chart").await;
    reader.shot_of("#trend-chart", "trend-chart").await;
    reader.close().await;
}

/// The store's side on PostgreSQL: the report's queries and root-cause versions, in
/// a period of its own (the database is shared with other tests).
#[tokio::test]
async fn postgres_reports_a_period_of_its_own() {
    use cloud_ingest::cohorts::watch::{Evidence, Flag, FlagKind};
    use cloud_ingest::cohorts::Measure;
    let d = Desk::start(&tests::services::postgres_url()).await;
    let (_, ana) = d.user("ana", Role::Analyst).await;
    let model = format!("P1-{}", d.tag);
    let devs = d.cohort_devices(&model, &format!("{model}-b"), 5).await;
    // A period no other test writes in: March 2031.
    for (n, dev) in devs.iter().take(3).enumerate() {
        d.dated_ticket(
            dev,
            n,
            "storage",
            "replaced",
            Some("storage"),
            at(2031, 3, 3 + n as u32),
        )
        .await;
    }
    let (s, r) = d
        .call("GET", "/api/v1/reports/2031-03", Some(&ana), None)
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(kpi(&r, "tickets"), (json!(3.0), json!(0.0)));
    assert_eq!(kpi(&r, "caught_early").0, json!(3.0));
    assert_eq!(kpi(&r, "resolve_days").0, json!(10.0));
    let storage = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["problem"] == "storage")
        .unwrap()
        .clone();
    assert_eq!(
        (storage["tickets"].clone(), storage["confirmed"].clone()),
        (json!(3), json!(3))
    );
    let (s, w) = d
        .call("GET", "/api/v1/reports/2031-W10", Some(&ana), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(w["previous_period"], "2031-W09");

    let cohort = format!("{model}-b");
    let flag = Flag {
        kind: FlagKind::Batch,
        cohort: cohort.clone(),
        problem: Some(Problem::Storage),
        window_days: None,
        measure: Measure::Failures,
        evidence: Evidence {
            devices: 5,
            exposure_days: 500.0,
            observed: 3,
            expected: 0.4,
            rate: 2.19,
            rate_low: 0.45,
            rate_high: 6.4,
            expected_rate: 0.29,
            shrunk_rate: 1.1,
            p_value: 0.001,
            q_value: 0.01,
            first_event_ms: Some(at(2031, 3, 3)),
            first_true_ms: None,
            predecessor: None,
            crash_free_hours: None,
            predecessor_crash_free_hours: None,
        },
    };
    d.store
        .record_flags(&[flag], at(2031, 3, 10))
        .await
        .unwrap();
    let id = d
        .store
        .cohort_flags(None)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.flag.cohort == cohort)
        .unwrap()
        .id;
    let path = format!("/api/v1/cohort-flags/{id}/root-cause");
    let body = |version: i64, conclusion: &str| {
        json!({"whys": [{"why": "Why?", "answer": "A firmware bug.", "evidence": "/desk/fleet"}],
            "conclusion": conclusion, "version": version})
    };
    let (s, v) = d
        .call("POST", &path, Some(&ana), Some(body(0, "first")))
        .await;
    assert_eq!((s, v["version"].clone()), (200, json!(1)), "{v}");
    let (s, _) = d
        .call("POST", &path, Some(&ana), Some(body(0, "again")))
        .await;
    assert_eq!(s, 409);
    let (s, v) = d
        .call("POST", &path, Some(&ana), Some(body(1, "second")))
        .await;
    assert_eq!((s, v["version"].clone()), (200, json!(2)), "{v}");
    let (s, _) = d
        .call("POST", &path, Some(&ana), Some(body(1, "stale")))
        .await;
    assert_eq!(s, 409);
    let (_, v) = d.call("GET", &path, Some(&ana), None).await;
    assert_eq!(v["conclusion"], "second", "a refused write changed nothing");
}
