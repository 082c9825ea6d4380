//! The simulated recycling desk: a recycler ships a label for every accepted trade-in,
//! receives the device two days later, grades it from the simulated device's true
//! condition, erases it, settles, routes and closes it, over the desk's HTTP API; the
//! customer of a lower settled price answers on the progress page. [`next`] decides
//! (pure); [`Recyclers::run`] carries it out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::team::{draw, Fate};
use crate::tradein::lifecycle::{Consent, TradeInState};

const HOUR_MS: u64 = 3_600_000;
/// How often the recycler looks at the queue (wall clock): its steps are hours apart,
/// so it looks far less often than the service team and leaves the store to ingest.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// What the simulation knows about a traded-in device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// How it fails, if it does within the run.
    pub fate: Fate,
    /// Whether it had failed by the time it reached the bench.
    pub failed: bool,
}

/// A trade-in as the recycler reads it from the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Its id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// Where it stands.
    pub state: TradeInState,
    /// Its version.
    pub version: i64,
    /// Since when, ms.
    pub since_ms: u64,
    /// Whether the device has a battery.
    pub has_battery: bool,
    /// Telemetry's battery health when quoted.
    pub quoted_soh: Option<f64>,
    /// The customer's consent to the settled price.
    pub consent: Option<Consent>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Move {
    /// A desk action (its JSON body, with the version).
    Act(Value),
    /// The customer answers the settled price on the progress page.
    Customer {
        /// Whether they accept it (else they ask for the device back).
        accept: bool,
    },
}

/// The bench's grade of a device from its true condition: a failed board or storage is
/// for parts (3–5), a failed thermal path key-functions-only (2), a failure on its way
/// shows as minor faults (1); a worn battery reads 8–15 points below what its gauge
/// reported; cosmetics by draw (A 20 %, B 35 %, C 25 %, D 15 %, E 5 %); 3 % still locked.
pub fn bench_for(t: &Seen, truth: Option<Truth>) -> Value {
    let d = |salt| draw(t.id, salt);
    let functional: u8 = match truth {
        Some(Truth {
            fate: Fate::Board | Fate::Storage,
            failed: true,
        }) => 3 + (d(21) * 3.0) as u8,
        Some(Truth {
            fate: Fate::Thermal,
            failed: true,
        }) => 2,
        Some(_) => 1,
        None => u8::from(d(22) < 0.1),
    };
    let c = d(23);
    let cosmetic = match c {
        c if c < 0.20 => "A",
        c if c < 0.55 => "B",
        c if c < 0.80 => "C",
        c if c < 0.95 => "D",
        _ => "E",
    };
    let mut body = json!({
        "action": "grade", "functional": functional, "cosmetic": cosmetic,
        "activation_lock_off": d(24) >= 0.03,
    });
    if t.has_battery {
        let reported = t.quoted_soh.unwrap_or(85.0);
        let worn = matches!(
            truth,
            Some(Truth {
                fate: Fate::Battery,
                ..
            })
        );
        let off = if worn {
            8.0 + 7.0 * d(25)
        } else {
            3.0 * d(25) - 1.5
        };
        body["battery_pct"] = json!((reported - off).round().clamp(0.0, 100.0) as i64);
    }
    body
}

/// The next step for `t` at `now`, if it is due: a label at once, the device two days
/// later, grading, erasure and settlement four hours apart, the customer's answer a
/// day after a lower price (accepted three times in four), routing, and closing a day
/// after routing.
pub fn next(t: &Seen, truth: Option<Truth>, now: u64) -> Option<Move> {
    let waited = now.saturating_sub(t.since_ms);
    let with_version = |mut body: Value| {
        body["version"] = json!(t.version);
        Some(Move::Act(body))
    };
    match t.state {
        TradeInState::Accepted => {
            with_version(json!({"action": "ship", "shipping_ref": format!("SIM-{}", t.id)}))
        }
        TradeInState::AwaitingDevice if waited >= 48 * HOUR_MS => {
            with_version(json!({"action": "receive"}))
        }
        TradeInState::Received if waited >= 4 * HOUR_MS => with_version(bench_for(t, truth)),
        TradeInState::Graded if waited >= 4 * HOUR_MS => with_version(json!({
            "action": "erase", "method": if draw(t.id, 26) < 0.7 { "purge" } else { "clear" },
            "tool": "Blancco Mobile Diagnostics & Erasure 7", "certificate_id": format!("SIM-ERASE-{}", t.id),
        })),
        TradeInState::Erased if waited >= 4 * HOUR_MS => with_version(json!({"action": "settle"})),
        TradeInState::Settled => match t.consent {
            Some(Consent::Pending) if waited >= 24 * HOUR_MS => Some(Move::Customer {
                accept: draw(t.id, 27) < 0.75,
            }),
            Some(Consent::Pending) => None,
            _ => with_version(json!({"action": "route"})),
        },
        TradeInState::Refurbish | TradeInState::Recycle if waited >= 24 * HOUR_MS => {
            with_version(json!({"action": "close"}))
        }
        _ => None,
    }
}

/// What the recycling desk and its customers did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecyclingReport {
    /// Actions the desk accepted.
    pub actions: u64,
    /// Actions refused (logged).
    pub refused: u64,
    /// Settled prices the customer answered on the progress page.
    pub customer_answers: u64,
    /// Requests that failed otherwise (logged).
    pub errors: u64,
}

/// The simulated recycler.
pub struct Recyclers {
    /// The desk's base address.
    pub base: String,
    /// The recycler's API token.
    pub token: String,
    /// An agent's token, to issue customers' progress links.
    pub agent_token: String,
    /// The ground truth: how each failing device fails, and when (device time, ms).
    pub fates: HashMap<String, (Fate, u64)>,
    /// The service clock.
    pub clock: Arc<dyn Clock>,
}

impl Recyclers {
    /// Works until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> RecyclingReport {
        let http = reqwest::Client::new();
        let mut report = RecyclingReport::default();
        let mut links: HashMap<i64, String> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return report,
            }
            let queue = match self.queue(&http).await {
                Ok(q) => q,
                Err(e) => {
                    report.errors += 1;
                    tracing::warn!(error = %e, "demo recycler: reading the queue");
                    continue;
                }
            };
            let now = self.clock.now().0;
            for t in queue {
                let truth = self.fates.get(&t.device_id).map(|&(fate, at)| Truth {
                    fate,
                    failed: at <= now,
                });
                let Some(m) = next(&t, truth, now) else {
                    continue;
                };
                let r = match m {
                    Move::Act(body) => self.act(&http, t.id, body).await,
                    Move::Customer { accept } => self
                        .customer(&http, t.id, accept, &mut links)
                        .await
                        .inspect(|&ok| report.customer_answers += u64::from(ok)),
                };
                match r {
                    Ok(true) => report.actions += 1,
                    Ok(false) => report.refused += 1,
                    Err(e) => {
                        report.errors += 1;
                        tracing::warn!(error = %e, trade_in = t.id, "demo recycler: a step failed");
                    }
                }
            }
        }
    }

    async fn queue(&self, http: &reqwest::Client) -> anyhow::Result<Vec<Seen>> {
        let v: Value = http
            .get(format!("{}/api/v1/tradeins?per_page=200", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|i| {
                Some(Seen {
                    id: i["id"].as_i64()?,
                    device_id: i["device_id"].as_str()?.to_owned(),
                    state: serde_json::from_value(i["state"].clone()).ok()?,
                    version: i["version"].as_i64()?,
                    since_ms: i["state_since_ms"].as_u64()?,
                    has_battery: i["has_battery"].as_bool()?,
                    quoted_soh: i["quoted_soh"].as_f64(),
                    consent: serde_json::from_value(i["record"]["consent"].clone()).ok(),
                })
            })
            .collect())
    }

    /// One action: whether the desk took it (a refusal is logged, not an error).
    async fn act(&self, http: &reqwest::Client, id: i64, body: Value) -> anyhow::Result<bool> {
        let r = http
            .post(format!("{}/api/v1/tradeins/{id}/actions", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        if status.is_success() {
            return Ok(true);
        }
        let text = r.text().await.unwrap_or_default();
        if status.is_client_error() {
            tracing::info!(trade_in = id, %status, body = %text, "demo recycler: refused");
            return Ok(false);
        }
        anyhow::bail!("{status}: {text}")
    }

    async fn customer(
        &self,
        http: &reqwest::Client,
        id: i64,
        accept: bool,
        links: &mut HashMap<i64, String>,
    ) -> anyhow::Result<bool> {
        if let std::collections::hash_map::Entry::Vacant(slot) = links.entry(id) {
            let v: Value = http
                .post(format!("{}/api/v1/tickets/{id}/progress-link", self.base))
                .bearer_auth(&self.agent_token)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            slot.insert(v["path"].as_str().unwrap_or_default().to_owned());
        }
        let path = &links[&id];
        let csrf = crate::desk::pages::csrf_of(path.trim_start_matches("/progress/"));
        let answer = if accept {
            "accept_price"
        } else {
            "return_device"
        };
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?
            .post(format!("{}{path}/tradein", self.base))
            .form(&[("csrf", csrf.as_str()), ("answer", answer)])
            .send()
            .await?;
        Ok(r.status().is_redirection())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: TradeInState, since: u64) -> Seen {
        Seen {
            id: 7,
            device_id: "d".into(),
            state,
            version: 3,
            since_ms: since,
            has_battery: true,
            quoted_soh: Some(86.0),
            consent: None,
        }
    }

    #[test]
    fn each_step_waits_its_time_and_carries_the_version() {
        let h = HOUR_MS;
        let table = [
            (TradeInState::Accepted, 0, Some("ship")),
            (TradeInState::AwaitingDevice, 47 * h, None),
            (TradeInState::AwaitingDevice, 48 * h, Some("receive")),
            (TradeInState::Received, 4 * h, Some("grade")),
            (TradeInState::Graded, 3 * h, None),
            (TradeInState::Graded, 4 * h, Some("erase")),
            (TradeInState::Erased, 4 * h, Some("settle")),
            (TradeInState::Settled, 0, Some("route")),
            (TradeInState::Recycle, 24 * h, Some("close")),
            (TradeInState::Closed, 99 * h, None),
            (TradeInState::Quoted, 99 * h, None),
        ];
        for (state, waited, want) in table {
            let got = next(&seen(state, 1_000), None, 1_000 + waited);
            match (got, want) {
                (Some(Move::Act(b)), Some(a)) => {
                    assert_eq!(b["action"], a, "{state}");
                    assert_eq!(b["version"], 3);
                }
                (None, None) => {}
                (other, _) => panic!("{state} after {waited}: {other:?}"),
            }
        }
        let mut pending = seen(TradeInState::Settled, 0);
        pending.consent = Some(Consent::Pending);
        assert_eq!(next(&pending, None, 23 * h), None);
        assert!(matches!(
            next(&pending, None, 24 * h),
            Some(Move::Customer { .. })
        ));
    }

    #[test]
    fn the_bench_sees_the_true_condition() {
        let t = seen(TradeInState::Received, 0);
        let failed = |fate| Some(Truth { fate, failed: true });
        assert!(
            bench_for(&t, failed(Fate::Board))["functional"]
                .as_u64()
                .unwrap()
                >= 3
        );
        assert_eq!(bench_for(&t, failed(Fate::Thermal))["functional"], 2);
        let coming = Some(Truth {
            fate: Fate::Storage,
            failed: false,
        });
        assert_eq!(bench_for(&t, coming)["functional"], 1);
        let worn = bench_for(&t, failed(Fate::Battery))["battery_pct"]
            .as_i64()
            .unwrap();
        assert!((71..=78).contains(&worn), "{worn}");
        let healthy = bench_for(&t, None)["battery_pct"].as_i64().unwrap();
        assert!((84..=88).contains(&healthy), "{healthy}");
        let mut hub = t.clone();
        hub.has_battery = false;
        assert!(bench_for(&hub, None).get("battery_pct").is_none());
        // Every drawn grade is one the desk accepts.
        for id in 0..200 {
            let mut s = t.clone();
            s.id = id;
            let b = bench_for(&s, None);
            assert!(["A", "B", "C", "D", "E"].contains(&b["cosmetic"].as_str().unwrap()));
            assert!(b["functional"].as_u64().unwrap() <= 9);
        }
    }
}
