//! The recycling desk in a real headless browser: a recycler takes one traded-in device
//! from its shipping label to refurbished and another to recycled, the customer
//! accepting the lower settled price of the second on the progress page of a phone,
//! with screenshots of each page (target/screenshots/tradein_pages*).

mod desk;

use cloud_ingest::desk::auth::Role;
use desk::Desk;
use tests::browser::Browser;

async fn submit(b: &Browser, button: &str) {
    b.submit(button).await;
}

/// Ships, receives, grades, erases and settles trade-in `id` on its page.
async fn to_settled(
    b: &mut Browser,
    base: &str,
    id: i64,
    grade: (&str, &str, &str),
    cert: &str,
    shots: &str,
) {
    b.client
        .goto(&format!("{base}/desk/tradeins/{id}"))
        .await
        .unwrap();
    b.fill("#shipping-ref", &format!("DHL-{id}")).await;
    submit(b, "#ship").await;
    submit(b, "#receive").await;
    b.find("#grade-form").await;
    b.choose("#functional", grade.0).await;
    b.choose("#cosmetic", grade.1).await;
    b.fill("#battery", grade.2).await;
    b.click("#lock-off").await;
    b.shot(&format!("{shots}-grading")).await;
    submit(b, "#grade").await;
    b.fill("#tool", "Blancco Mobile 7.1").await;
    b.fill("#certificate-id", cert).await;
    submit(b, "#erase").await;
    b.find("#settle").await;
    submit(b, "#settle").await;
    b.find("#settlement").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recycler_refurbishes_one_device_and_recycles_another() {
    let dir = tempfile::tempdir().unwrap();
    let desk = Desk::start(&format!("sqlite://{}", dir.path().join("d.db").display())).await;
    let (_, rae) = desk.user("rae", Role::Recycler).await;
    let (_, ana) = desk.user("ana", Role::Agent).await;
    let good = desk.accepted_tradein("dev-good", 91.0).await;
    let worn = desk.accepted_tradein("dev-worn", 88.0).await;
    let model = desk.tradein_model();
    let base = desk.base.clone();

    let mut b = Browser::start("tradein_pages", 1280, 900).await;
    b.client.goto(&format!("{base}/login")).await.unwrap();
    b.fill("#token", &rae).await;
    b.submit("form.card button[type=submit]").await;
    // The recycler lands on the recycling desk: two accepted trade-ins waiting.
    b.find("#tradeins").await;
    let text = b.text().await;
    assert!(
        text.contains("Recycling desk") && text.contains("Accepted"),
        "{text}"
    );
    assert_eq!(
        b.find(".tile.state-accepted .n")
            .await
            .text()
            .await
            .unwrap(),
        "2"
    );
    b.shot("queue").await;

    // A negative weight is refused with a message; a good one is kept.
    b.fill("#sku-model", &model).await;
    b.fill("#sku-weight", "-190").await;
    b.submit("#set-weight").await;
    let text = b.find("p.error").await.text().await.unwrap();
    assert!(text.contains("weight -190 g"), "{text}");
    b.client
        .goto(&format!("{base}/desk/tradeins"))
        .await
        .unwrap();
    b.fill("#sku-model", &model).await;
    b.fill("#sku-weight", "190").await;
    b.submit("#set-weight").await;
    assert!(b
        .find("#skus")
        .await
        .text()
        .await
        .unwrap()
        .contains("190 g"));

    // The first device: as good as telemetry said; refurbished.
    to_settled(&mut b, &base, good, ("0", "B", "90"), "BL-0001", "good").await;
    let bench = b.find("#bench").await.text().await.unwrap();
    assert!(
        bench.contains("Excellent") && bench.contains("95新"),
        "{bench}"
    );
    assert!(
        bench.contains("Excellent: functional ≤ 0, cosmetic A–B, battery ≥ 85 %"),
        "{bench}"
    );
    assert!(b
        .find("#at-quote")
        .await
        .text()
        .await
        .unwrap()
        .contains("91 %"));
    assert!(b
        .find("#certificate")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap()
        .ends_with("/certificate"));
    assert_eq!(
        b.find("#route option[selected]")
            .await
            .attr("value")
            .await
            .unwrap()
            .as_deref(),
        Some("refurbish")
    );
    b.shot("good-settled").await;
    submit(&b, "#route-it").await;
    submit(&b, "#close").await;
    b.find(".badge.tradein-closed").await;
    assert!(b
        .find("#routing")
        .await
        .text()
        .await
        .unwrap()
        .contains("refurbish"));
    b.shot("good-closed").await;

    // The second: battery 13 points below telemetry, heavy wear: a lower price.
    to_settled(&mut b, &base, worn, ("1", "D", "75"), "BL-0002", "worn").await;
    assert!(b
        .find("#battery-gap")
        .await
        .text()
        .await
        .unwrap()
        .contains("-13 points"));
    assert!(b
        .find("#reason")
        .await
        .text()
        .await
        .unwrap()
        .contains("heavy wear"));
    b.find("#waiting").await;
    b.shot("worn-waiting-for-customer").await;

    // The customer accepts it on a phone.
    let (s, link) = desk
        .call(
            "POST",
            &format!("/api/v1/tickets/{worn}/progress-link"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(s, 201, "{link}");
    let mut phone = Browser::start("tradein_pages_customer", 390, 844).await;
    phone
        .client
        .goto(&format!("{base}{}", link["path"].as_str().unwrap()))
        .await
        .unwrap();
    let price = phone.find("#settled-price").await.text().await.unwrap();
    assert!(
        price.starts_with("EUR ") && price != "EUR 300.00",
        "{price}"
    );
    assert!(phone
        .find("#settle-reason")
        .await
        .text()
        .await
        .unwrap()
        .contains("heavy wear"));
    phone.shot_of("#tradein", "customer-settled-price").await;
    phone.submit("#accept-price").await;
    assert!(phone
        .find("#tradein")
        .await
        .text()
        .await
        .unwrap()
        .contains("You accepted this price."));
    phone.shot("customer-accepted").await;
    phone.close().await;

    // Back at the desk: recycled (refurbishing is not offered).
    b.client
        .goto(&format!("{base}/desk/tradeins/{worn}"))
        .await
        .unwrap();
    let options = b.find("#route").await.text().await.unwrap();
    assert!(!options.contains("refurbish"), "{options}");
    submit(&b, "#route-it").await;
    b.find(".badge.tradein-recycle").await;
    b.shot("worn-recycled").await;
    submit(&b, "#close").await;
    b.find(".badge.tradein-closed").await;

    // The totals count both.
    b.client
        .goto(&format!("{base}/desk/tradeins?state=closed"))
        .await
        .unwrap();
    let n = |id: &'static str| {
        let b = &b;
        async move { b.find(id).await.text().await.unwrap() }
    };
    assert_eq!(n("#t-received").await, "2");
    assert_eq!(n("#t-refurbished").await, "1");
    assert_eq!(n("#t-recycled").await, "1");
    assert_eq!(n("#t-kg").await, "0.38");
    assert!(b
        .find("#totals")
        .await
        .text()
        .await
        .unwrap()
        .contains("Average quote EUR 300.00"));
    b.shot("queue-closed-with-totals").await;
    b.close().await;
}
