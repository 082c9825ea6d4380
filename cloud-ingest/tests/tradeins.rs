//! The recycling desk through its API and the customer's progress page, on SQLite and
//! PostgreSQL: a trade-in follows its ticket's answer, is shipped, received, graded,
//! erased, settled and routed by a recycler; illegal, stale and malformed actions get a
//! 4xx and change nothing; the customer accepts a lower settled price (or asks the
//! device back) on the progress page; the certificate downloads; the totals count the
//! kilograms diverted.

mod desk;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::desk::pages::csrf_of;
use desk::{Desk, H, T0};
use protocol::Timestamp;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn act(d: &Desk, id: i64, token: &str, body: Value) -> (u16, Value) {
    d.call(
        "POST",
        &format!("/api/v1/tradeins/{id}/actions"),
        Some(token),
        Some(body),
    )
    .await
}

async fn tradein(d: &Desk, id: i64, token: &str) -> Value {
    let (s, v) = d
        .call("GET", &format!("/api/v1/tradeins/{id}"), Some(token), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

/// Asserts a refused action changed nothing: same version, same log.
async fn refused(d: &Desk, id: i64, token: &str, body: Value, status: u16, says: &str) {
    let before = tradein(d, id, token).await;
    let (s, v) = act(d, id, token, body.clone()).await;
    assert_eq!(s, status, "{body}: {v}");
    assert!(
        v["detail"].as_str().unwrap().contains(says),
        "{body}: {}",
        v["detail"]
    );
    let after = tradein(d, id, token).await;
    assert_eq!(
        before["tradein"], after["tradein"],
        "{body} changed nothing"
    );
    assert_eq!(before["log"], after["log"]);
}

async fn progress_path(d: &Desk, id: i64, agent: &str) -> String {
    let (s, link) = d
        .call(
            "POST",
            &format!("/api/v1/tickets/{id}/progress-link"),
            Some(agent),
            None,
        )
        .await;
    assert_eq!(s, 201, "{link}");
    link["path"].as_str().unwrap().to_owned()
}

async fn customer(d: &Desk, path: &str, answer: &str) -> (u16, String) {
    let csrf = csrf_of(path.trim_start_matches("/progress/"));
    let r = client()
        .post(format!("{}{path}/tradein", d.base))
        .form(&[("csrf", csrf.as_str()), ("answer", answer)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn grade(functional: u8, cosmetic: &str, battery: i64) -> Value {
    json!({"action": "grade", "functional": functional, "cosmetic": cosmetic,
        "battery_pct": battery, "activation_lock_off": true})
}

fn erase(cert: &str) -> Value {
    json!({"action": "erase", "method": "purge", "tool": "Blancco Mobile 7.1", "certificate_id": cert})
}

async fn a_trade_in_goes_from_quote_to_refurbished_or_recycled(url: &str) {
    let d = Desk::start(url).await;
    let (rex, rt) = d.user("rex", Role::Recycler).await;
    let (_, lee) = d.user("lee", Role::Analyst).await;
    let (_, ana) = d.user("ana", Role::Agent).await;
    let model = d.tradein_model();

    // Opened with its ticket; accepted when the ticket is.
    let good = d.accepted_tradein("dev-good", 91.0).await;
    let worn = d.accepted_tradein("dev-worn", 88.0).await;
    let v = tradein(&d, good, &lee).await;
    assert_eq!(v["tradein"]["state"], "accepted");
    assert_eq!(v["tradein"]["quote_minor"], 30_000);
    assert_eq!(v["tradein"]["currency"], "EUR");
    assert_eq!(v["at_quote"]["soh_pct"], 91.0);
    let log: Vec<&str> = v["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap())
        .collect();
    assert_eq!(log, ["quoted", "accepted"]);

    // The analyst reads but may not work it; the agent may not read it.
    let (s, _) = act(
        &d,
        good,
        &lee,
        json!({"action": "ship", "shipping_ref": "DHL-1"}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = d
        .call("GET", &format!("/api/v1/tradeins/{good}"), Some(&ana), None)
        .await;
    assert_eq!(s, 403);

    // Illegal from accepted: nothing changes.
    refused(
        &d,
        good,
        &rt,
        json!({"action": "receive"}),
        409,
        "send a shipping label first",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        grade(0, "A", 95),
        409,
        "cannot grade when accepted",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "ship", "shipping_ref": "x"}),
        422,
        "3 to 64",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "teleport"}),
        422,
        "an action is",
    )
    .await;

    for id in [good, worn] {
        let (s, v) = act(
            &d,
            id,
            &rt,
            json!({"action": "ship", "shipping_ref": format!("DHL-{id}")}),
        )
        .await;
        assert_eq!(
            (s, v["tradein"]["state"].as_str()),
            (200, Some("awaiting_device")),
            "{v}"
        );
        d.clock.set(Timestamp(T0 + 48 * H));
        let (s, v) = act(&d, id, &rt, json!({"action": "receive"})).await;
        assert_eq!(s, 200, "{v}");
        // The ticket is in progress once the device is at the desk.
        assert_eq!(v["tradein"]["ticket_state"], "in_progress");
    }

    // The queue per state, with counts and ages.
    d.clock.set(Timestamp(T0 + 50 * H));
    let (s, q) = d
        .call("GET", "/api/v1/tradeins?state=received", Some(&lee), None)
        .await;
    assert_eq!(s, 200, "{q}");
    let mine: Vec<&Value> = q["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| [good, worn].contains(&i["id"].as_i64().unwrap()))
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0]["age_ms"], 2 * H);
    let received = q["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["state"] == "received")
        .unwrap();
    assert!(received["count"].as_u64().unwrap() >= 2);
    assert_eq!(
        q["counts"].as_array().unwrap().len(),
        13,
        "every state listed"
    );
    let (s, v) = d
        .call("GET", "/api/v1/tradeins?state=shredded", Some(&lee), None)
        .await;
    assert_eq!(s, 400, "{v}");

    // Bad grades are refused; a stale version too.
    refused(&d, good, &rt, grade(12, "A", 95), 422, "not 0 to 9").await;
    refused(&d, good, &rt, grade(0, "F", 95), 422, "cosmetic").await;
    refused(&d, good, &rt, grade(0, "A", 120), 422, "battery health 120").await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "grade", "functional": 0, "cosmetic": "A", "activation_lock_off": true}),
        422,
        "measure its health",
    )
    .await;
    let version = tradein(&d, good, &rt).await["tradein"]["version"]
        .as_i64()
        .unwrap();
    let mut stale = grade(0, "B", 90);
    stale["version"] = json!(version - 1);
    refused(&d, good, &rt, stale, 409, "changed since version").await;

    // Good: graded, erased, settled at the quote, refurbished.
    let mut g = grade(0, "B", 90);
    g["version"] = json!(version);
    let (s, v) = act(&d, good, &rt, g).await;
    assert_eq!(s, 200, "{v}");
    let graded = &v["tradein"]["record"]["graded"];
    assert_eq!(graded["labels"][0]["label"], "Excellent");
    assert_eq!(graded["labels"][1]["label"], "95新");
    assert!(graded["labels"][0]["rule"]
        .as_str()
        .unwrap()
        .starts_with("Excellent: functional ≤ 0"));
    assert_eq!(graded["route"], "refurbish");
    assert_eq!(graded["battery_gap"]["flagged"], false);
    assert_eq!(v["rules_price"]["final_minor"], 30_000);
    // Not routed, not settled before the erasure.
    refused(
        &d,
        good,
        &rt,
        json!({"action": "route"}),
        409,
        "erase its data first",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "settle"}),
        409,
        "erase its data first",
    )
    .await;
    let (s, v) = d
        .call(
            "GET",
            &format!("/api/v1/tradeins/{good}/certificate"),
            Some(&rt),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    refused(
        &d,
        good,
        &rt,
        json!({"action": "erase", "method": "purge", "tool": "Blancco"}),
        422,
        "certificate_id",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "erase", "method": "shred", "tool": "Blancco", "certificate_id": "C-1234"}),
        422,
        "unknown variant",
    )
    .await;
    let cert = format!("BL-{}-1", d.tag);
    let (s, v) = act(&d, good, &rt, erase(&cert)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tradein"]["record"]["erasure"]["operator"], rex.as_str());
    let r = client()
        .get(format!("{}/api/v1/tradeins/{good}/certificate", d.base))
        .bearer_auth(&lee)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&format!("erasure-{cert}.txt")));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(&format!("Certificate id: {cert}")) && text.contains("Purge"),
        "{text}"
    );

    // A price by hand needs the quote's currency.
    refused(
        &d,
        good,
        &rt,
        json!({"action": "settle", "price": {"amount_minor": 25_000, "currency": "USD"}, "reason": "x"}),
        422,
        "quote is in EUR",
    )
    .await;
    refused(
        &d,
        good,
        &rt,
        json!({"action": "settle", "price": {"amount_minor": -5, "currency": "EUR"}, "reason": "x"}),
        422,
        "an action is",
    )
    .await;
    let (s, v) = act(&d, good, &rt, json!({"action": "settle"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tradein"]["record"]["consent"], "not_needed");
    // No weight for the SKU yet: routing is refused until there is one.
    refused(&d, good, &rt, json!({"action": "route"}), 422, "no weight").await;
    for (body, says) in [
        (json!({"model": model, "weight_g": -190}), "weight -190 g"),
        (json!({"model": model, "weight_g": 0}), "must be 1 to 50000"),
        (json!({"model": "", "weight_g": 190}), "model"),
        (json!({"model": model}), "weight_g"),
    ] {
        let (s, v) = d
            .call("POST", "/api/v1/skus", Some(&rt), Some(body.clone()))
            .await;
        assert_eq!(s, 422, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{v}");
    }
    let (_, skus) = d.call("GET", "/api/v1/skus", Some(&lee), None).await;
    assert!(!skus["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["model"] == model.as_str()));
    let (s, v) = d
        .call(
            "POST",
            "/api/v1/skus",
            Some(&rt),
            Some(json!({"model": model, "weight_g": 190})),
        )
        .await;
    assert_eq!((s, v["weight_g"].as_u64()), (200, Some(190)), "{v}");
    d.clock.set(Timestamp(T0 + 52 * H));
    let (s, v) = act(&d, good, &rt, json!({"action": "route"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tradein"]["state"], "refurbish");
    let (s, v) = act(&d, good, &rt, json!({"action": "close"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tradein"]["state"], "closed");
    assert_eq!(v["tradein"]["ticket_state"], "resolved");
    let (_, t) = d
        .call("GET", &format!("/api/v1/tickets/{good}"), Some(&ana), None)
        .await;
    assert_eq!(t["ticket"]["outcome"], "traded_in");
    refused(
        &d,
        good,
        &rt,
        json!({"action": "close"}),
        409,
        "it is finished",
    )
    .await;

    // Worn: battery 75 % on the bench against 88 % in telemetry, cosmetic D.
    for body in [
        grade(1, "D", 75),
        erase(&format!("BL-{}-2", d.tag)),
        json!({"action": "settle"}),
    ] {
        let (s, v) = act(&d, worn, &rt, body).await;
        assert_eq!(s, 200, "{v}");
    }
    let v = tradein(&d, worn, &rt).await;
    let rec = &v["tradein"]["record"];
    assert_eq!(rec["graded"]["battery_gap"]["flagged"], true);
    assert_eq!(rec["graded"]["route"], "recycle");
    assert_eq!(rec["consent"], "pending");
    let final_minor = rec["settlement"]["final_minor"].as_u64().unwrap();
    assert!(final_minor < 30_000);
    assert!(rec["settlement"]["reason"]
        .as_str()
        .unwrap()
        .contains("heavy wear"));
    refused(
        &d,
        worn,
        &rt,
        json!({"action": "route"}),
        409,
        "not accepted the settled price",
    )
    .await;

    // The customer sees the price and the reason, and accepts it.
    let path = progress_path(&d, worn, &ana).await;
    let page = client()
        .get(format!("{}{path}", d.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("EUR ") && page.contains("Why it differs from the quote"),
        "{page}"
    );
    assert!(page.contains("accept-price") && page.contains("return-device"));
    let (s, _) = customer(&d, &path, "sell_twice").await;
    assert_eq!(s, 422);
    let bad_csrf = client()
        .post(format!("{}{path}/tradein", d.base))
        .form(&[("csrf", "nope"), ("answer", "accept_price")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(bad_csrf, 403);
    assert_eq!(
        tradein(&d, worn, &rt).await["tradein"]["record"]["consent"],
        "pending"
    );
    let (s, _) = customer(&d, &path, "accept_price").await;
    assert_eq!(s, 303);
    assert_eq!(
        tradein(&d, worn, &rt).await["tradein"]["record"]["consent"],
        "accepted"
    );
    let (s, page) = customer(&d, &path, "return_device").await;
    assert_eq!(s, 409, "answered once: {page}");
    // Never refurbished below the bar; recycled.
    refused(
        &d,
        worn,
        &rt,
        json!({"action": "route", "route": "refurbish"}),
        422,
        "cannot be refurbished",
    )
    .await;
    let (s, v) = act(&d, worn, &rt, json!({"action": "route"})).await;
    assert_eq!(
        (s, v["tradein"]["state"].as_str()),
        (200, Some("recycle")),
        "{v}"
    );

    // The totals of the period: received, graded, routed, kilograms, quote vs settled.
    let period = "2026-11";
    let (s, tot) = d
        .call(
            "GET",
            &format!("/api/v1/tradeins/totals?period={period}"),
            Some(&lee),
            None,
        )
        .await;
    assert_eq!(s, 200, "{tot}");
    let mine: Vec<&Value> = tot["diverted"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["model"] == model.as_str())
        .collect();
    assert_eq!(mine.len(), 2, "{tot}");
    assert_eq!(
        (mine[0]["route"].as_str(), mine[0]["kg"].as_f64()),
        (Some("refurbish"), Some(0.19))
    );
    assert_eq!(
        (mine[1]["route"].as_str(), mine[1]["devices"].as_u64()),
        (Some("recycle"), Some(1))
    );
    assert!(tot["totals"]["refurbished"].as_u64().unwrap() >= 1);
    assert!(tot["totals"]["ewaste_kg"].as_f64().unwrap() >= 0.38);
    let (s, _) = d
        .call(
            "GET",
            "/api/v1/tradeins/totals?period=nov",
            Some(&lee),
            None,
        )
        .await;
    assert_eq!(s, 400);

    // The audit names the recycler for each step.
    let (_, audit) = d
        .call(
            "GET",
            &format!("/api/v1/audit?subject=tradein:{good}"),
            Some(&lee),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tradein.close",
            "tradein.route",
            "tradein.settle",
            "tradein.erase",
            "tradein.grade",
            "tradein.receive",
            "tradein.ship"
        ]
    );
}

#[tokio::test]
async fn sqlite_a_trade_in_goes_from_quote_to_refurbished_or_recycled() {
    let dir = tempfile::tempdir().unwrap();
    a_trade_in_goes_from_quote_to_refurbished_or_recycled(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_a_trade_in_goes_from_quote_to_refurbished_or_recycled() {
    a_trade_in_goes_from_quote_to_refurbished_or_recycled(&tests::services::postgres_url()).await;
}

/// A customer who refuses the lower price gets the device back: a state of its own,
/// and the ticket ends declined by the customer. A trade-in cancelled before the device
/// arrives cancels its ticket; a declined quote declines the trade-in.
#[tokio::test]
async fn the_device_goes_back_and_cancelled_or_declined_quotes_end_the_trade_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, rt) = d.user("rex", Role::Recycler).await;
    let (_, ana) = d.user("ana", Role::Agent).await;
    let id = d.accepted_tradein("dev-back", 90.0).await;
    for body in [
        json!({"action": "ship", "shipping_ref": "UPS-77"}),
        json!({"action": "receive"}),
        grade(0, "C", 88),
        erase("BL-back-1"),
        json!({"action": "settle"}),
    ] {
        let (s, v) = act(&d, id, &rt, body).await;
        assert_eq!(s, 200, "{v}");
    }
    let path = progress_path(&d, id, &ana).await;
    let (s, _) = customer(&d, &path, "return_device").await;
    assert_eq!(s, 303);
    let v = tradein(&d, id, &rt).await;
    assert_eq!(v["tradein"]["state"], "device_returned");
    assert_eq!(v["tradein"]["ticket_state"], "resolved");
    let (_, t) = d
        .call("GET", &format!("/api/v1/tickets/{id}"), Some(&ana), None)
        .await;
    assert_eq!(t["ticket"]["outcome"], "customer_declined");
    let page = client()
        .get(format!("{}{path}", d.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("We are sending your device back"), "{page}");
    refused(
        &d,
        id,
        &rt,
        json!({"action": "route"}),
        409,
        "it is finished",
    )
    .await;

    let gone = d.accepted_tradein("dev-gone", 90.0).await;
    let (s, _) = act(
        &d,
        gone,
        &rt,
        json!({"action": "ship", "shipping_ref": "UPS-78"}),
    )
    .await;
    assert_eq!(s, 200);
    refused(
        &d,
        gone,
        &rt,
        json!({"action": "cancel", "reason": ""}),
        422,
        "reason",
    )
    .await;
    let (s, v) = act(
        &d,
        gone,
        &rt,
        json!({"action": "cancel", "reason": "never shipped in 30 days"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tradein"]["state"], "cancelled");
    assert_eq!(v["tradein"]["ticket_state"], "cancelled");

    // Declined on the progress page: the trade-in follows the ticket.
    let offered = d.offered_tradein("dev-no2", 90.0).await;
    assert_eq!(
        tradein(&d, offered, &rt).await["tradein"]["state"],
        "quoted"
    );
    refused(
        &d,
        offered,
        &rt,
        json!({"action": "cancel", "reason": "x"}),
        409,
        "cancel the ticket",
    )
    .await;
    let path = progress_path(&d, offered, &ana).await;
    let csrf = csrf_of(path.trim_start_matches("/progress/"));
    let s = client()
        .post(format!("{}{path}/answer", d.base))
        .form(&[("csrf", csrf.as_str()), ("answer", "decline")])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 303);
    let v = tradein(&d, offered, &rt).await;
    assert_eq!(v["tradein"]["state"], "declined");
    assert_eq!(
        v["log"].as_array().unwrap().last().unwrap()["kind"],
        "ticket"
    );
}
