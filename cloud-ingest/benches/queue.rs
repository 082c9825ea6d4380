//! The service desk's queue endpoint under a large store: `GET /api/v1/tickets` over
//! HTTP (auth, query, JSON) with 100,000 tickets, against the same requests with 1,000
//! tickets measured in the same run (the baseline). Prints p50 and p99 per request kind
//! and the ratio of the large store's p50 to the small one's.
//!
//! `cargo bench -p cloud-ingest --bench queue`; `BENCH_TICKETS` (100000) sizes it, and
//! `FLEET_BENCH_PG_URL` (an empty PostgreSQL database) adds PostgreSQL to SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud_ingest::desk::api::DeskState;
use cloud_ingest::desk::auth::Role;
use cloud_ingest::policy::Problem;
use cloud_ingest::store::tickets::{self, NewTicket};
use cloud_ingest::store::{SqliteSync, Store};
use cloud_ingest::tickets::{TicketState, Tier};
use protocol::clock::{Clock, ManualClock};
use protocol::command::OfferKind;
use protocol::Timestamp;

const H: u64 = 3_600_000;
const T0: u64 = 1_795_334_400_000;
const SAMPLES: usize = 200;

/// Requests the desk makes, by name.
const REQUESTS: [(&str, &str); 5] = [
    ("first page", "/api/v1/tickets"),
    ("high tier", "/api/v1/tickets?tier=high"),
    ("at risk", "/api/v1/tickets?sla=at_risk"),
    (
        "unassigned, battery",
        "/api/v1/tickets?assignee=&category=battery",
    ),
    ("page 20", "/api/v1/tickets?page=20"),
];

/// Fills the store with `n` tickets: most of them closed, as a store that has run for
/// a while is, the rest open across tiers, categories and SLA states.
async fn fill(store: &Store, n: usize, tag: &str) {
    let problems = Problem::ALL;
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        let tier = Tier::ALL[i % 3];
        let opened = T0 + (i as u64 % 500) * 60_000;
        let window = match tier {
            Tier::High => 4 * H,
            Tier::Medium => 24 * H,
            Tier::Low => 72 * H,
        };
        let t = NewTicket {
            ticket_ref: format!("T-{tag}-{i}"),
            device_id: format!("dev-{tag}-{i}"),
            tenant: "acme".into(),
            customer_id: None,
            problem: problems[i % problems.len()],
            tier,
            offer: OfferKind::Inspection,
            quote_minor: None,
            currency: None,
            opened_ms: opened,
            due_ms: opened + window,
            risk: 0.5,
            model_version: "m".into(),
            evidence: "{}".into(),
            features: None,
        };
        let id = tickets::open(&mut tx, &t).await.unwrap().unwrap();
        // Four in five are closed; the open ones are spread over the early states.
        let path: &[TicketState] = match i % 10 {
            0 => &[],
            1 => &[TicketState::Offered],
            _ if i % 5 == 2 => &[TicketState::Offered, TicketState::Accepted],
            _ => &[TicketState::Offered, TicketState::Declined],
        };
        for &to in path {
            tickets::move_ticket(&mut tx, id, to, "device", None, opened)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 and p99 of each request against a desk on `store`.
async fn measure(store: &Store) -> Vec<(Duration, Duration)> {
    let clock = Arc::new(ManualClock::at(Timestamp(T0 + 3 * H)));
    let state = DeskState::new(store.clone(), clock as Arc<dyn Clock>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, cloud_ingest::desk::router(state)).await });
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("bench-{}-{run}", std::process::id());
    let (_, token) = store
        .add_user(&name, Role::Analyst, "bench", T0)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for (_, path) in REQUESTS {
        let mut times = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + 10 {
            let start = Instant::now();
            let resp = http
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.bytes().await.unwrap();
            if i >= 10 {
                times.push(start.elapsed());
            }
        }
        times.sort();
        out.push((percentile(&times, 0.5), percentile(&times, 0.99)));
    }
    out
}

async fn run(backend: &str, small: &Store, large: &Store, n: usize) {
    fill(small, 1_000, "s").await;
    let base = measure(small).await;
    let started = Instant::now();
    fill(large, n, "l").await;
    println!(
        "{backend}: {n} tickets stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let big = measure(large).await;
    println!(
        "{:<22} {:>16} {:>18} {:>8}",
        "request", "1,000: p50 / p99", "large: p50 / p99", "p50 ×"
    );
    for (((name, _), (b50, b99)), (l50, l99)) in REQUESTS.iter().zip(base).zip(big) {
        println!(
            "{name:<22} {:>7.2} / {:>5.2} ms {:>8.2} / {:>6.2} ms {:>8.2}",
            b50.as_secs_f64() * 1e3,
            b99.as_secs_f64() * 1e3,
            l50.as_secs_f64() * 1e3,
            l99.as_secs_f64() * 1e3,
            l50.as_secs_f64() / b50.as_secs_f64()
        );
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let small = Store::open(&open("small.db"), 4, SqliteSync::Normal)
        .await
        .unwrap();
    let large = Store::open(&open("large.db"), 4, SqliteSync::Normal)
        .await
        .unwrap();
    run("SQLite", &small, &large, n).await;
    if let Ok(url) = std::env::var("FLEET_BENCH_PG_URL") {
        // One database: the baseline is measured with its 1,000 tickets before the
        // large fill adds the rest on top.
        let pg = Store::open(&url, 8, SqliteSync::Normal).await.unwrap();
        run("PostgreSQL", &pg, &pg, n).await;
    }
}
