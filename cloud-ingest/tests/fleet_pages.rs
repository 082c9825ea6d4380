//! The analysts' pages in a real headless browser: an analyst runs the cohort watch,
//! finds a batch flagged with its evidence, proposes a campaign, approves it with a note,
//! and follows its progress as it rolls out; a forged form changes nothing, and an
//! agent may not see the pages. Screenshots in target/screenshots/fleet_pages*.

mod desk;

use cloud_ingest::campaigns::rollout::Rollout;
use cloud_ingest::desk::auth::Role;
use cloud_ingest::ingest::PipelineSettings;
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::policy::PolicyConfig;
use desk::{Desk, T0};
use protocol::Timestamp;
use tests::browser::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_finds_a_bad_batch_and_runs_a_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("f.db").display())).await;
    let (_, ana) = desk.user("ana", Role::Analyst).await;
    let (_, age) = desk.user("age", Role::Agent).await;
    let model = format!("phone-{}", desk.tag);
    let bad = format!("{model}-Q4");
    desk.cohort_devices(&model, &format!("{model}-Q3"), 30)
        .await;
    let members = desk.cohort_devices(&model, &bad, 30).await;
    for (n, dev) in members.iter().take(12).enumerate() {
        desk.closed_ticket(dev, n, "battery", "battery_replaced", Some("battery"))
            .await;
    }
    desk.closed_ticket(&members[29], 40, "battery", "user_damage", None)
        .await;
    let base = desk.base.clone();

    let mut b = Browser::start("fleet_pages", 1280, 1000).await;
    b.client.goto(&format!("{base}/login")).await.unwrap();
    b.fill("#token", &ana).await;
    b.submit("form.card button[type=submit]").await;
    b.find("header.top nav.desks").await;
    b.client.goto(&format!("{base}/desk/fleet")).await.unwrap();
    assert!(
        b.text().await.contains("No cohort stands out"),
        "nothing recorded yet"
    );
    b.submit("#run-watch").await;
    let flags = b.find("#flags").await.text().await.unwrap();
    assert!(flags.contains(&bad) && flags.contains("battery"), "{flags}");
    let cohorts = b.find("#cohorts").await.text().await.unwrap();
    assert!(cohorts.contains(&bad), "{cohorts}");
    assert!(b
        .text()
        .await
        .contains("1 outcome (no fault found, user damage, abuse) kept out"));
    b.shot("fleet").await;

    // Propose from the flag's row; the campaign's page shows what it would do.
    b.submit("#flags button.propose").await;
    b.find("#proposal").await;
    let proposal = b.find("#proposal").await.text().await.unwrap();
    // The customer whose damaged device was closed ten days ago is in the cool-down.
    assert!(
        proposal.contains("Devices 30") || proposal.contains("DEVICES 30"),
        "{proposal}"
    );
    assert!(
        proposal.to_lowercase().contains("battery replacement 29"),
        "{proposal}"
    );
    assert!(
        proposal.to_lowercase().contains("cool down 1"),
        "{proposal}"
    );
    let repair = PolicyConfig::default().repair_cost_minor.battery;
    let cost = format!("EUR {}.{:02}", 29 * repair / 100, 29 * repair % 100);
    assert!(proposal.contains(&cost), "{cost} in {proposal}");
    b.shot("proposed").await;

    // A forged form is refused and changes nothing.
    b.client
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')",
            vec![],
        )
        .await
        .unwrap();
    b.submit("#approve").await;
    assert!(
        b.text().await.contains("CSRF check failed"),
        "{}",
        b.text().await
    );
    let stored = desk
        .store
        .campaigns(&PolicyConfig::default().repair_cost_minor)
        .await
        .unwrap();
    let id = stored[0].id;
    assert_eq!(stored[0].state.as_str(), "proposed");

    b.client
        .goto(&format!("{base}/desk/campaigns/{id}"))
        .await
        .unwrap();
    b.fill("#note", "weak cell supplier, Q4 lot").await;
    b.submit("#approve").await;
    let page = b.find("main").await.text().await.unwrap();
    assert!(
        page.contains("approved") && page.contains("weak cell supplier"),
        "{page}"
    );
    assert!(
        !page.contains("Approve and contact"),
        "decided once: {page}"
    );

    // The rollout offers every member; the page follows.
    Rollout {
        policy: PolicyConfig::default(),
        settings: PipelineSettings::default(),
        batch: 100,
        poll: std::time::Duration::from_secs(1),
    }
    .step(&desk.store, Timestamp(T0), &Metrics::new())
    .await
    .unwrap();
    b.client
        .goto(&format!("{base}/desk/campaigns/{id}"))
        .await
        .unwrap();
    let tiles = b.find("#progress").await.text().await.unwrap();
    assert!(
        tiles.contains("30\nmembers")
            && tiles.contains("29\noffered")
            && tiles.contains("1\nheld back"),
        "{tiles}"
    );
    assert!(b.text().await.contains("rolled out"));
    let members_text = b.find("#members").await.text().await.unwrap();
    assert!(members_text.contains(&members[0]) && members_text.contains("offered"));
    b.shot("rolled-out").await;
    b.client.goto(&format!("{base}/desk/fleet")).await.unwrap();
    let campaigns = b.find("#campaigns").await.text().await.unwrap();
    assert!(
        campaigns.contains("battery: batch") && campaigns.contains("rolled out"),
        "{campaigns}"
    );

    // An agent is not shown the fleet pages.
    b.client.goto(&format!("{base}/login")).await.unwrap();
    b.fill("#token", &age).await;
    b.submit("form.card button[type=submit]").await;
    b.find("header.top").await;
    b.client.goto(&format!("{base}/desk/fleet")).await.unwrap();
    assert!(
        b.text().await.contains("may not see this page"),
        "{}",
        b.text().await
    );
    b.close().await;
}
