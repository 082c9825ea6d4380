//! The customer's progress page, on SQLite and PostgreSQL: a link issued by the desk
//! opens one ticket without signing in until it expires; the customer's answer moves
//! the ticket as the device's would and stops the offer on the device; a second answer
//! is refused; a resolved ticket takes one rating. Bad input changes nothing.

mod desk;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::desk::pages::csrf_of;
use desk::{Desk, H, T0};
use protocol::Timestamp;
use serde_json::{json, Value};

/// A browser-like client that does not follow redirects, so a 303 is seen as one.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(d: &Desk, path: &str) -> (u16, String) {
    let r = client()
        .get(format!("{}{path}", d.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(d: &Desk, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = client()
        .post(format!("{}{path}", d.base))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn state_of(d: &Desk, id: i64, token: &str) -> Value {
    let (s, v) = d
        .call("GET", &format!("/api/v1/tickets/{id}"), Some(token), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn command_status(d: &Desk, command: &str) -> Option<Option<String>> {
    d.store
        .commands()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.0 == command)
        .map(|c| c.3)
}

async fn a_customer_follows_answers_and_rates_their_case(url: &str) {
    let d = Desk::start(url).await;
    let (_, agent) = d.user("ana", Role::Agent).await;
    let (_, recycler) = d.user("rex", Role::Recycler).await;
    let id = d.offered_ticket("dev-p", 7).await;
    let other = d.offered_ticket("dev-q", 7).await;
    let link_of = |id: i64| format!("/api/v1/tickets/{id}/progress-link");

    // Only the service desk issues links; a missing ticket is a 404.
    let (s, v) = d.call("POST", &link_of(id), Some(&recycler), None).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = d
        .call("POST", &link_of(987_654_321), Some(&agent), None)
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = d
        .call(
            "POST",
            "/api/v1/tickets/seven/progress-link",
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, link) = d.call("POST", &link_of(id), Some(&agent), None).await;
    assert_eq!(s, 201, "{link}");
    let path = link["path"].as_str().unwrap().to_owned();
    assert!(
        path.starts_with("/progress/track_") && path.len() > 70,
        "{path}"
    );
    assert_eq!(link["url"].as_str().unwrap(), format!("{}{path}", d.base));
    assert_eq!(link["expires_ms"].as_u64(), Some(T0 + 30 * 24 * H));
    let token = path.trim_start_matches("/progress/").to_owned();
    let csrf = csrf_of(&token);

    // The page shows this ticket only, without signing in.
    let (s, page) = get(&d, &path).await;
    assert_eq!(s, 200, "{page}");
    let item = d.store.queue_item(id).await.unwrap().unwrap();
    let other_ref = d.store.queue_item(other).await.unwrap().unwrap().ticket_ref;
    assert!(page.contains(&item.ticket_ref) && !page.contains(&other_ref));
    for shown in [
        "We noticed a possible battery problem",
        "We offer you an inspection before it does.",
        "Why we got in touch",
        "Battery state of health",
        "Your device: 71.5 %.",
        "Your device: 50 %.",
        "Case opened",
        "Offer sent to you",
        "Yes, please",
    ] {
        assert!(page.contains(shown), "{shown:?} missing from {page}");
    }
    assert!(
        !page.contains("How did we do?"),
        "no rating before resolution"
    );
    let (s, page) = get(&d, "/progress/track_0000").await;
    assert_eq!(s, 404);
    assert!(page.contains("not valid"), "{page}");

    // Bad answers change nothing.
    let answer = format!("{path}/answer");
    let (s, _) = post(&d, &answer, &[("csrf", "forged"), ("answer", "accept")]).await;
    assert_eq!(s, 403);
    let (s, page) = post(&d, &answer, &[("csrf", &csrf), ("answer", "maybe")]).await;
    assert_eq!(s, 422);
    assert!(page.contains("not an answer"), "{page}");
    let (s, page) = post(&d, &answer, &[("csrf", &csrf)]).await;
    assert_eq!(s, 422, "a form without an answer");
    assert!(page.contains("Choose yes or no"), "{page}");
    let (s, _) = post(&d, &answer, &[("answer", "accept")]).await;
    assert_eq!(s, 403, "a form without its CSRF token");
    assert_eq!(state_of(&d, id, &agent).await["ticket"]["state"], "offered");

    // The answer moves the ticket as the device's would, and the device stops showing
    // the offer: no more resends, and (schema 2) a withdraw.
    d.clock.set(Timestamp(T0 + 2 * H));
    let (s, _) = post(&d, &answer, &[("csrf", &csrf), ("answer", "accept")]).await;
    assert_eq!(s, 303);
    let v = state_of(&d, id, &agent).await;
    assert_eq!(v["ticket"]["state"], "accepted");
    let last = v["log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["to"].as_str(), last["actor"].as_str()),
        (Some("accepted"), Some("customer"))
    );
    assert_eq!(
        command_status(&d, &format!("offer-{}", item.ticket_ref)).await,
        Some(Some("withdrawn".into()))
    );
    assert_eq!(
        command_status(&d, &format!("withdraw-{}", item.ticket_ref)).await,
        Some(None),
        "a withdraw is queued for the device"
    );
    let (_, page) = get(&d, &path).await;
    assert!(
        page.contains("You accepted") && !page.contains("Yes, please"),
        "{page}"
    );

    // A second answer is refused and changes nothing.
    let (s, page) = post(&d, &answer, &[("csrf", &csrf), ("answer", "decline")]).await;
    assert_eq!(s, 409);
    assert!(page.contains("answered already"), "{page}");
    assert_eq!(
        state_of(&d, id, &agent).await["ticket"]["state"],
        "accepted"
    );

    // Rating waits for the resolution.
    let rating = format!("{path}/rating");
    let good = [
        ("csrf", csrf.as_str()),
        ("result", "4"),
        ("speed", "5"),
        ("service", "3"),
        ("comment", "Quick and kind."),
    ];
    let (s, page) = post(&d, &rating, &good).await;
    assert_eq!(s, 409);
    assert!(page.contains("once it is resolved"), "{page}");
    for action in [
        json!({"action": "start"}),
        json!({"action": "resolve", "outcome": "battery_replaced"}),
    ] {
        let (s, v) = d
            .call(
                "POST",
                &format!("/api/v1/tickets/{id}/actions"),
                Some(&agent),
                Some(action),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, page) = get(&d, &path).await;
    assert!(
        page.contains("How did we do?") && page.contains("Resolved"),
        "{page}"
    );
    let (s, page) = post(
        &d,
        &rating,
        &[
            ("csrf", &csrf),
            ("result", "9"),
            ("speed", "5"),
            ("service", "3"),
        ],
    )
    .await;
    assert_eq!(s, 422);
    assert!(page.contains("1 to 5"), "{page}");
    let (s, _) = post(
        &d,
        &rating,
        &[
            ("csrf", "forged"),
            ("result", "4"),
            ("speed", "5"),
            ("service", "3"),
        ],
    )
    .await;
    assert_eq!(s, 403);
    assert!(state_of(&d, id, &agent).await["rating"].is_null());
    let (s, _) = post(&d, &rating, &good).await;
    assert_eq!(s, 303);
    let r = state_of(&d, id, &agent).await["rating"].clone();
    assert_eq!(
        (
            r["result"].as_u64(),
            r["speed"].as_u64(),
            r["service"].as_u64(),
            r["comment"].as_str()
        ),
        (Some(4), Some(5), Some(3), Some("Quick and kind.")),
        "{r}"
    );
    let (s, page) = post(&d, &rating, &good).await;
    assert_eq!(s, 409);
    assert!(page.contains("rated already"), "{page}");

    // Every step the customer took is in the audit log.
    let (_, analyst) = d.user("lee", Role::Analyst).await;
    let (s, audit) = d
        .call(
            "GET",
            &format!("/api/v1/audit?subject=ticket:{id}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for a in [
        "ticket.progress_link",
        "ticket.customer_accept",
        "ticket.rating",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }

    // The link expires.
    d.clock.set(Timestamp(T0 + 30 * 24 * H + 1));
    let (s, _) = get(&d, &path).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn sqlite_a_customer_follows_answers_and_rates_their_case() {
    let dir = tempfile::tempdir().unwrap();
    a_customer_follows_answers_and_rates_their_case(&format!(
        "sqlite://{}",
        dir.path().join("d.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_a_customer_follows_answers_and_rates_their_case() {
    a_customer_follows_answers_and_rates_their_case(&tests::services::postgres_url()).await;
}

/// A schema-1 device cannot be told of a withdrawal: its offer only stops being sent.
/// Declining ends the ticket as the device's "declined" does.
#[tokio::test]
async fn declining_for_a_schema_1_device_ends_the_ticket_without_a_withdraw() {
    let dir = tempfile::tempdir().unwrap();
    let d = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, agent) = d.user("ana", Role::Agent).await;
    let id = d.offered_ticket("dev-old", 0).await;
    let (_, link) = d
        .call(
            "POST",
            &format!("/api/v1/tickets/{id}/progress-link"),
            Some(&agent),
            None,
        )
        .await;
    let path = link["path"].as_str().unwrap().to_owned();
    let csrf = csrf_of(path.trim_start_matches("/progress/"));
    let (s, _) = post(
        &d,
        &format!("{path}/answer"),
        &[("csrf", &csrf), ("answer", "decline")],
    )
    .await;
    assert_eq!(s, 303);
    let v = state_of(&d, id, &agent).await;
    assert_eq!(v["ticket"]["state"], "declined");
    let r = d.store.queue_item(id).await.unwrap().unwrap().ticket_ref;
    assert_eq!(
        command_status(&d, &format!("offer-{r}")).await,
        Some(Some("withdrawn".into()))
    );
    assert_eq!(command_status(&d, &format!("withdraw-{r}")).await, None);
    let (_, page) = get(&d, &path).await;
    assert!(page.contains("You declined the offer"), "{page}");
    assert!(
        !page.contains("How did we do?"),
        "a declined offer is not rated"
    );
}
