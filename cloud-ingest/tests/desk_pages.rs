//! The service desk's pages in a real headless Chromium: an agent signs in, filters the
//! queue, opens a ticket, reads its evidence, pauses and resumes its SLA clock and
//! resolves it with an outcome; a forged form and a wrong token are refused. Every page
//! is saved as a screenshot under target/test-output/desk_pages*/, at laptop and phone
//! width.

mod desk;

use cloud_ingest::desk::auth::Role;
use cloud_ingest::tickets::Tier;
use desk::{Desk, H, T0};
use protocol::Timestamp;
use serde_json::Value;
use tests::browser::{Browser, Locator};

/// The ticket as the API shows it.
async fn api_ticket(desk: &Desk, id: i64, token: &str) -> Value {
    let path = format!("/api/v1/tickets/{id}");
    desk.call("GET", &path, Some(token), None).await.1
}

async fn submit(b: &Browser, form: &str) {
    b.submit(&format!("{form} button[type=submit]")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_works_a_ticket_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, token) = desk.user("ana", Role::Agent).await;
    let batch = format!("b-{}", desk.tag);
    let high = desk.accepted_ticket("dev-h", &batch, Tier::High).await;
    // The evidence's scoring moment is T0: the device's 30 days lead up to it.
    desk.telemetry(high, T0).await;
    let low = desk.accepted_ticket("dev-l", &batch, Tier::Low).await;
    let _medium = desk.accepted_ticket("dev-m", &batch, Tier::Medium).await;
    desk.clock.set(Timestamp(T0 + 3 * H));
    let base = &desk.base;

    let mut b = Browser::start("desk_pages", 1280, 900).await;
    // Not signed in: the desk sends you to sign in.
    b.client.goto(&format!("{base}/desk")).await.unwrap();
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/login"));
    // A wrong token is refused with a message.
    b.fill("#token", "fleet_wrong").await;
    submit(&b, "form.card").await;
    assert!(
        b.text().await.contains("That token is not valid"),
        "{}",
        b.text().await
    );
    b.shot("login-refused").await;
    b.fill("#token", &token).await;
    submit(&b, "form.card").await;

    // The queue: every open ticket, the high one first, counts per tier.
    b.find("table.queue").await;
    let text = b.text().await;
    assert!(text.contains("3 matching"), "{text}");
    let first = b
        .find("table.queue tbody tr td a")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(first, format!("T-dev-h-{}", desk.tag), "most urgent first");
    assert!(text.contains("at risk"), "3 h into a 4 h window: {text}");
    b.shot("queue").await;

    // Filtering by tier (htmx swaps the results; the form works without it too).
    b.choose("select[name=tier]", "low").await;
    b.client
        .wait()
        .for_element(Locator::XPath(
            "//p[@class='count'][starts-with(., '1 matching')]",
        ))
        .await
        .expect("the queue filtered to one ticket");
    let rows = b
        .client
        .find_all(Locator::Css("table.queue tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(b.text().await.contains(&format!("T-dev-l-{}", desk.tag)));
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap_or("")
            .contains("tier=low"),
        "the filter is in the address"
    );
    let _ = low;
    b.shot("queue-filtered-low").await;

    // The ticket page: evidence in words, with contributions.
    b.client
        .goto(&format!("{base}/desk/tickets/{high}"))
        .await
        .unwrap();
    let text = b.text().await;
    for want in [
        "Why this ticket opened",
        "Battery state of health: full-charge capacity over design capacity",
        "soh_pct",
        "Share of the last 30 days' unexpected restarts that were brown-outs",
        "+0.118",
        "forest-test",
        "warranty ended",
        // The charts' figures in words, from the stored telemetry.
        "The device's last 30 days",
        "State of health went from 90.0 % on 10-24 to 75.5 % on 11-22.",
        "Unexpected restarts: 14 brown out, 7 hardware watchdog.",
        "10 sudden battery drops in 30 days",
        "The red line marks the scoring moment.",
    ] {
        assert!(text.contains(want), "the evidence shows {want:?}: {text}");
    }
    let charts = b
        .client
        .find_all(Locator::Css("figure.chart svg"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 4, "four evidence charts");
    // Drawn, at a readable size, not collapsed to nothing.
    let (_, _, w, h) = charts[0].rectangle().await.unwrap();
    assert!(w > 300.0 && h > 100.0, "the chart is {w}×{h}");
    b.shot("ticket").await;
    b.shot_of("section.charts", "ticket-charts").await;

    // The device's page, from the ticket: identity, liveness, gaps, its tickets, charts.
    b.submit("div.summary a[href^='/desk/devices/']").await;
    b.find("section.liveness").await;
    let text = b.text().await;
    for want in [
        "phone-x2",
        &batch,
        "Liveness",
        "Missing (gaps)",
        "Score history",
        "Not scored yet.",
        "Tickets",
        "The last 30 days",
        "State of health went from 90.0 %",
    ] {
        // Table headings are upper-cased by the stylesheet.
        assert!(
            text.to_lowercase().contains(&want.to_lowercase()),
            "the device page shows {want:?}: {text}"
        );
    }
    b.find(&format!("section.tickets a[href='/desk/tickets/{high}']"))
        .await;
    b.shot("device").await;
    b.client
        .goto(&format!("{base}/desk/tickets/{high}"))
        .await
        .unwrap();

    // Claim, start, pause (the clock stops), resume, resolve.
    for (action, want) in [("claim", "ana"), ("start", "in progress")] {
        submit(
            &b,
            &format!("form.action:has(input[name=action][value={action}])"),
        )
        .await;
        b.find("section.actions").await;
        assert!(
            b.text().await.contains(want),
            "after {action}: {}",
            b.text().await
        );
    }
    b.choose("select[name=reason]", "waiting_for_parts").await;
    submit(&b, "form.action:has(input[name=action][value=pause])").await;
    b.find("form.action:has(input[name=action][value=resume])")
        .await;
    assert!(b.text().await.contains("paused"));
    b.shot("ticket-paused").await;
    desk.clock.set(Timestamp(T0 + 10 * H));
    submit(&b, "form.action:has(input[name=action][value=resume])").await;
    b.find("form.action:has(input[name=action][value=pause])")
        .await;
    let api = api_ticket(&desk, high, &token).await;
    assert_eq!(
        api["sla"]["due_ms"].as_u64(),
        Some(T0 + 11 * H),
        "7 h paused moved the due time: {api}"
    );

    // Resolving without the form's CSRF token is refused, nothing changes.
    let version = api["ticket"]["version"].as_i64().unwrap();
    b.client
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')",
            vec![],
        )
        .await
        .unwrap();
    b.fill(
        "form.action:has(input[name=action][value=note]) input[name=text]",
        "parts arrived",
    )
    .await;
    submit(&b, "form.action:has(input[name=action][value=note])").await;
    assert!(
        b.text().await.contains("CSRF check failed"),
        "{}",
        b.text().await
    );
    b.shot("csrf-refused").await;
    let api = api_ticket(&desk, high, &token).await;
    assert_eq!(
        api["ticket"]["version"].as_i64(),
        Some(version),
        "nothing changed"
    );

    b.client
        .goto(&format!("{base}/desk/tickets/{high}"))
        .await
        .unwrap();
    b.choose("select[name=outcome]", "battery_replaced").await;
    b.fill(
        "form.action:has(input[name=action][value=resolve]) input[name=note]",
        "new cell fitted",
    )
    .await;
    submit(&b, "form.action:has(input[name=action][value=resolve])").await;
    b.find("div.summary").await;
    let text = b.text().await;
    assert!(
        text.contains("resolved") && text.contains("battery replaced"),
        "{text}"
    );
    assert!(
        !text.contains("Work this ticket"),
        "a closed ticket offers no actions"
    );
    b.shot("ticket-resolved").await;
    let api = api_ticket(&desk, high, &token).await;
    assert_eq!(api["ticket"]["outcome"], Value::from("battery_replaced"));
    assert_eq!(api["sla"]["state"], Value::from("met"));

    b.close().await;

    // At phone width the queue and a ticket still read.
    let mut phone = Browser::start("desk_pages_phone", 390, 844).await;
    phone.client.goto(&format!("{base}/login")).await.unwrap();
    phone.fill("#token", &token).await;
    submit(&phone, "form.card").await;
    phone.find("table.queue").await;
    phone.shot("queue-phone").await;
    phone
        .client
        .goto(&format!("{base}/desk/tickets/{high}"))
        .await
        .unwrap();
    phone.find("div.summary").await;
    phone.shot("ticket-phone").await;
    // A filter nothing matches says so.
    phone
        .client
        .goto(&format!("{base}/desk?assignee=nobody-at-all"))
        .await
        .unwrap();
    phone.find("p.empty").await;
    assert!(phone
        .text()
        .await
        .contains("No tickets match these filters."));
    phone.shot("queue-empty-phone").await;
    phone.close().await;

    // A recycler signs in to the recycling desk and may not see the service desk's queue.
    let (_, rae) = desk.user("rae", Role::Recycler).await;
    let mut other = Browser::start("desk_pages_recycler", 1280, 700).await;
    other.client.goto(&format!("{base}/login")).await.unwrap();
    other.fill("#token", &rae).await;
    submit(&other, "form.card").await;
    other.find("#totals").await;
    assert!(other.text().await.contains("Recycling desk"));
    other.client.goto(&format!("{base}/desk")).await.unwrap();
    other.find("p.error").await;
    let text = other.text().await;
    assert!(
        text.contains("which may not see this page") && text.contains("recycler"),
        "{text}"
    );
    other.shot("recycler-refused").await;
    // They can still sign out, back to the sign-in page.
    submit(&other, "header form[action='/logout']").await;
    other.find("#token").await;
    other.close().await;
}

/// The agent makes a progress link on the ticket's page; the customer, not signed in,
/// opens it on a phone, accepts the offer and, once the case is resolved, rates it; the
/// agent sees the rating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_accepts_and_rates_from_the_progress_link() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, token) = desk.user("ana", Role::Agent).await;
    let id = desk.offered_ticket("dev-c", 5).await;
    let base = &desk.base;

    let mut agent = Browser::start("progress_agent", 1280, 900).await;
    agent.client.goto(&format!("{base}/login")).await.unwrap();
    agent.fill("#token", &token).await;
    submit(&agent, "form.card").await;
    agent.find("table.queue").await;
    agent
        .client
        .goto(&format!("{base}/desk/tickets/{id}"))
        .await
        .unwrap();
    agent.submit("#progress-link").await;
    let link = agent.find("#customer-link").await;
    let url = link.text().await.unwrap();
    assert!(url.starts_with(&format!("{base}/progress/track_")), "{url}");
    agent.shot("link-issued").await;

    let mut phone = Browser::start("progress_customer", 390, 844).await;
    phone.client.goto(&url).await.unwrap();
    let text = phone.text().await;
    for want in [
        "Your service case",
        "We noticed a possible battery problem",
        "Why we got in touch",
        "Offer sent to you",
    ] {
        assert!(text.contains(want), "{want:?}: {text}");
    }
    phone.shot("offer").await;
    desk.clock.set(Timestamp(T0 + 2 * H));
    phone.submit("#accept").await;
    phone.find("ol.tracker li.current").await;
    let text = phone.text().await;
    assert!(
        text.contains("You accepted") && !text.contains("Yes, please"),
        "{text}"
    );
    assert_eq!(
        api_ticket(&desk, id, &token).await["ticket"]["state"],
        "accepted"
    );
    phone.shot("accepted").await;

    desk.clock.set(Timestamp(T0 + 5 * H));
    for action in [
        serde_json::json!({"action": "start"}),
        serde_json::json!({"action": "resolve", "outcome": "repaired"}),
    ] {
        let path = format!("/api/v1/tickets/{id}/actions");
        assert_eq!(
            desk.call("POST", &path, Some(&token), Some(action)).await.0,
            200
        );
    }
    phone.client.refresh().await.unwrap();
    phone.find("fieldset.stars").await;
    for (name, n) in [("result", 5), ("speed", 4), ("service", 5)] {
        phone
            .click(&format!("input[name={name}][value='{n}']"))
            .await;
    }
    phone
        .fill("textarea[name=comment]", "Fixed before it broke.")
        .await;
    phone.shot("rating-form").await;
    phone.submit("#rate").await;
    phone.find("section.rating blockquote").await;
    assert!(
        phone.text().await.contains("Thank you for rating"),
        "{}",
        phone.text().await
    );
    phone.shot("rated").await;
    phone.close().await;

    agent
        .client
        .goto(&format!("{base}/desk/tickets/{id}"))
        .await
        .unwrap();
    let text = agent.text().await;
    assert!(
        text.contains("Rated on") && text.contains("Fixed before it broke."),
        "{text}"
    );
    agent.shot("ticket-rated").await;
    agent.close().await;
}
