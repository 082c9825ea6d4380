//! A desk server on a store of its own, with an injected clock, and what the desk
//! tests need: users, tickets, and calls that check every error is problem+json.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use cloud_ingest::desk::{self, api::DeskState, auth::Role};
use cloud_ingest::policy::Problem;
use cloud_ingest::store::tickets::{self, NewTicket};
use cloud_ingest::store::{SqliteSync, Store};
use cloud_ingest::tickets::{TicketState, Tier};
use protocol::clock::{Clock, ManualClock};
use protocol::command::OfferKind;
use protocol::Timestamp;
use serde_json::Value;

pub const H: u64 = 3_600_000;
pub const T0: u64 = 1_795_334_400_000;

pub struct Desk {
    pub base: String,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    /// Makes names unique in a shared database.
    pub tag: String,
}

impl Desk {
    pub async fn start(url: &str) -> Desk {
        Desk::start_with(url, |_| {}).await
    }

    /// A desk whose state `adjust` changes first (its model slot, gate, rules).
    pub async fn start_with(url: &str, adjust: impl FnOnce(&mut DeskState)) -> Desk {
        let store = Store::open(url, 4, SqliteSync::Normal).await.unwrap();
        let clock = Arc::new(ManualClock::at(Timestamp(T0)));
        let mut state = DeskState::new(store.clone(), clock.clone() as Arc<dyn Clock>);
        adjust(&mut state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, desk::router(state)).await });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Desk {
            base: format!("http://{addr}"),
            store,
            clock,
            http: reqwest::Client::new(),
            tag: format!("{nanos:x}"),
        }
    }

    /// `n` devices of `model`, batch `batch`, each its own customer's (`c-` and its id),
    /// bought for EUR 600.00 200 days before T0 with a year's warranty left, and watched
    /// for the 100 days before T0.
    pub async fn cohort_devices(&self, model: &str, batch: &str, n: usize) -> Vec<String> {
        const DAY: u64 = 24 * H;
        let mut ids = Vec::new();
        let mut tx = self.store.begin().await.unwrap();
        for i in 0..n {
            let id = format!("{batch}-{i:03}");
            sqlx::query(
                "INSERT INTO devices (device_id, tenant, model, batch, firmware, customer_id,
                    purchased_ms, warranty_until_ms, price_minor, currency, first_seen_ms,
                    last_seen_ms, min_seq, max_seq)
                 VALUES ($1, 'acme', $2, $3, '1.0', $4, $5, $6, 60000, 'EUR', $7, $8, 1, 1)",
            )
            .bind(id.as_str())
            .bind(model)
            .bind(batch)
            .bind(format!("c-{id}"))
            .bind((T0 - 200 * DAY) as i64)
            .bind((T0 + 165 * DAY) as i64)
            .bind((T0 - 100 * DAY) as i64)
            .bind(T0 as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
            ids.push(id);
        }
        tx.commit().await.unwrap();
        ids
    }

    /// A closed ticket (the `n`th) on `device` for `problem` with `outcome` (and its
    /// category), opened `50 - n` days before T0 and closed ten days later.
    pub async fn closed_ticket(
        &self,
        device: &str,
        n: usize,
        problem: &str,
        outcome: &str,
        category: Option<&str>,
    ) {
        self.dated_ticket(
            device,
            n,
            problem,
            outcome,
            category,
            T0 - (50 - n as u64) * 24 * H,
        )
        .await
    }

    /// A ticket for `problem` on existing device `device`, its offer shown (`offered`).
    pub async fn offered_ticket_on(&self, device: &str, problem: Problem) -> i64 {
        let mut tx = self.store.begin().await.unwrap();
        let id = tickets::open(
            &mut tx,
            &NewTicket {
                ticket_ref: format!("T-open-{device}"),
                device_id: device.to_owned(),
                tenant: "acme".into(),
                customer_id: Some(format!("c-{device}")),
                problem,
                tier: Tier::Medium,
                offer: OfferKind::Inspection,
                quote_minor: None,
                currency: None,
                opened_ms: T0 - 24 * H,
                due_ms: T0,
                risk: 0.6,
                model_version: "m1".into(),
                evidence: EVIDENCE.into(),
                features: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
        tickets::move_ticket(
            &mut tx,
            id,
            TicketState::Offered,
            "device",
            None,
            T0 - 23 * H,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// As [`Desk::closed_ticket`], opened at `opened_ms`.
    pub async fn dated_ticket(
        &self,
        device: &str,
        n: usize,
        problem: &str,
        outcome: &str,
        category: Option<&str>,
        opened_ms: u64,
    ) {
        let mut tx = self.store.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO tickets (ticket_ref, device_id, tenant, customer_id, problem, state,
                tier, offer_kind, opened_ms, due_ms, closed_ms, risk, model_version, evidence,
                outcome, outcome_category)
             VALUES ($1, $2, 'acme', $3, $4, 'resolved', 'medium', 'inspection', $5, $6, $6,
                0.9, 'm1', '{}', $7, $8)",
        )
        .bind(format!("T-{device}-{n}"))
        .bind(device)
        .bind(format!("c-{device}"))
        .bind(problem)
        .bind(opened_ms as i64)
        .bind((opened_ms + 10 * 24 * H) as i64)
        .bind(outcome)
        .bind(category)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn user(&self, name: &str, role: Role) -> (String, String) {
        let name = format!("{name}-{}", self.tag);
        let (_, token) = self.store.add_user(&name, role, "test", T0).await.unwrap();
        (name, token)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let problem = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let text = resp.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"));
        if status >= 400 {
            assert!(problem, "{method} {path}: an error is problem+json: {text}");
            assert!(
                v["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{text}"
            );
        }
        (status, v)
    }

    /// A ticket the customer accepted, for a device of batch `batch`.
    pub async fn accepted_ticket(&self, device: &str, batch: &str, tier: Tier) -> i64 {
        let id = self.opened_ticket(device, batch, tier, 0).await;
        let mut tx = self.store.begin().await.unwrap();
        for to in [TicketState::Offered, TicketState::Accepted] {
            tickets::move_ticket(&mut tx, id, to, "device", None, T0)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        id
    }

    /// A ticket whose inspection offer the device showed (sent once, unanswered), on
    /// a device in sequence epoch `epoch` (0: schema 1).
    pub async fn offered_ticket(&self, device: &str, epoch: u32) -> i64 {
        let id = self.opened_ticket(device, "B1", Tier::Medium, epoch).await;
        let item = self.store.queue_item(id).await.unwrap().unwrap();
        let (ticket_ref, device_id) = (item.ticket_ref, item.device_id);
        let command_id = cloud_ingest::policy::offer::offer_command_id(&ticket_ref);
        let cmd = protocol::command::Command::new(
            protocol::DeviceId::new(&device_id).unwrap(),
            protocol::ids::CommandId::new(&command_id).unwrap(),
            Timestamp(T0),
            protocol::command::CommandBody::Offer(protocol::command::Offer {
                ticket: protocol::ids::TicketRef::new(&ticket_ref).unwrap(),
                kind: OfferKind::Inspection,
                title: "We noticed a possible battery problem".into(),
                message: "Our checks suggest your device may develop a battery fault soon.\nWe offer you an inspection before it does.".into(),
                quote: None,
                extra: None,
                respond_by_ts_ms: Some(Timestamp(T0 + 168 * H)),
            }),
        );
        let mut tx = self.store.begin().await.unwrap();
        cloud_ingest::store::outbox::queue_command(
            &mut tx,
            &cloud_ingest::store::outbox::NewCommand {
                command_id: command_id.clone(),
                ticket_id: Some(id),
                device_id: device_id.clone(),
                topic: format!("fleet/acme/{device_id}/cmd"),
                payload: serde_json::to_string(&cmd).unwrap(),
                created_ms: T0,
                expires_ms: Some(T0 + 168 * H),
                after_command: None,
            },
        )
        .await
        .unwrap();
        sqlx::query("UPDATE commands SET attempts = 1 WHERE command_id = $1")
            .bind(command_id.as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
        tickets::move_ticket(
            &mut tx,
            id,
            TicketState::Offered,
            "device",
            None,
            T0 + 60_000,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    }

    /// Stored telemetry for ticket `id`'s device over the 30 days whose last day holds
    /// `end` (the charts' window): a heartbeat every 6 h from the first day's midnight, the
    /// battery's health falling from 90 % by 0.5 a day and the device warmer by the day; on each of the
    /// seven days before the last, two brown-outs and a watchdog reset; a battery drop
    /// every third day (ten in all). The device is last seen at `end`.
    pub async fn telemetry(&self, id: i64, end: u64) {
        use protocol::event::Event;
        use protocol::examples;
        use protocol::reboot::RebootReason;
        let device = self.store.queue_item(id).await.unwrap().unwrap().device_id;
        let device_id = protocol::DeviceId::new(&device).unwrap();
        let start = end - end % (24 * H) - 29 * 24 * H;
        let mut rows: Vec<(u64, &str, String)> = Vec::new();
        for ts in (start..=end).step_by(6 * H as usize) {
            let i = (ts - start) / (6 * H);
            let mut hb = examples::heartbeat();
            let b = hb.body.battery.as_mut().unwrap();
            // Constant within a day, so the day's figure is exact.
            b.soh_pct = Some(90.0 - 0.5 * ((ts - start) / (24 * H)) as f32);
            let t = hb.body.thermal.as_mut().unwrap();
            t.max_c = 35.0 + 0.1 * i as f32;
            t.mean_c = 28.0 + 0.05 * i as f32;
            t.min_c = t.mean_c - 5.0;
            hb.ts_ms = Timestamp(ts);
            hb.device_id = device_id.clone();
            rows.push((ts, "heartbeat", serde_json::to_string(&hb).unwrap()));
        }
        for day in 0..29u64 {
            let noon = start + day * 24 * H + 12 * H;
            let mut events = Vec::new();
            if day >= 22 {
                events.extend([
                    RebootReason::BrownOut,
                    RebootReason::BrownOut,
                    RebootReason::HardwareWatchdog,
                ]);
            }
            for (k, reason) in events.into_iter().enumerate() {
                let mut e = examples::reboot_event();
                if let Event::Reboot(r) = &mut e.body {
                    r.reason = reason;
                }
                e.ts_ms = Timestamp(noon + k as u64 * 60_000);
                e.device_id = device_id.clone();
                rows.push((
                    noon + k as u64 * 60_000,
                    "event",
                    serde_json::to_string(&e).unwrap(),
                ));
            }
            if day % 3 == 0 {
                let mut e = examples::battery_drop_event();
                e.ts_ms = Timestamp(noon + H);
                e.device_id = device_id.clone();
                rows.push((noon + H, "event", serde_json::to_string(&e).unwrap()));
            }
        }
        let messages: Vec<cloud_ingest::store::messages::NewMessage> = rows
            .iter()
            .enumerate()
            .map(
                |(seq, (ts, channel, payload))| cloud_ingest::store::messages::NewMessage {
                    device_id: &device,
                    seq: seq as u64 + 1,
                    epoch: 0,
                    tenant: "acme",
                    channel,
                    ts_ms: *ts,
                    received_ms: *ts,
                    payload,
                    export_pending: false,
                    arrival: seq as u64 + 1,
                },
            )
            .collect();
        let mut tx = self.store.begin().await.unwrap();
        cloud_ingest::store::messages::insert(&mut tx, &messages)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE devices SET first_seen_ms = $2, last_seen_ms = $3, max_seq = $4, msg_count = $4
             WHERE device_id = $1",
        )
        .bind(device.as_str())
        .bind(start as i64)
        .bind(end as i64)
        .bind(messages.len() as i64)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// An opened ticket (no moves yet) on a new device of batch `batch`.
    pub async fn opened_ticket(&self, device: &str, batch: &str, tier: Tier, epoch: u32) -> i64 {
        self.open_ticket(device, batch, tier, epoch, None).await
    }

    /// The model this desk's trade-in devices are (unique, so SKU weights set by one
    /// test do not reach another's).
    pub fn tradein_model(&self) -> String {
        format!("phone-{}", self.tag)
    }

    /// A trade-in ticket quoted EUR 300.00 on a device whose telemetry showed battery
    /// health `soh`, the customer's acceptance recorded as the device's answer.
    pub async fn accepted_tradein(&self, device: &str, soh: f64) -> i64 {
        self.tradein_answered(device, soh, &[TicketState::Offered, TicketState::Accepted])
            .await
    }

    /// A trade-in ticket as [`Desk::accepted_tradein`], shown but not answered.
    pub async fn offered_tradein(&self, device: &str, soh: f64) -> i64 {
        self.tradein_answered(device, soh, &[TicketState::Offered])
            .await
    }

    async fn tradein_answered(&self, device: &str, soh: f64, moves: &[TicketState]) -> i64 {
        let id = self
            .open_ticket(device, "B1", Tier::Medium, 0, Some(soh))
            .await;
        let mut tx = self.store.begin().await.unwrap();
        for &to in moves {
            tickets::move_ticket(&mut tx, id, to, "device", None, T0)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        id
    }

    async fn open_ticket(
        &self,
        device: &str,
        batch: &str,
        tier: Tier,
        epoch: u32,
        tradein_soh: Option<f64>,
    ) -> i64 {
        let model = match tradein_soh {
            Some(_) => self.tradein_model(),
            None => "phone-x2".to_owned(),
        };
        let features = tradein_soh.map(|soh| {
            let mut values = vec![0.0; models::schema::FEATURE_COUNT];
            values[models::schema::idx::SOH] = soh;
            values[models::schema::idx::HAS_BATTERY] = 1.0;
            serde_json::to_string(&tickets::ScoredFeatures {
                schema: models::schema::schema_fingerprint(),
                values,
                sample_weight: None,
            })
            .unwrap()
        });
        let device = format!("{device}-{}", self.tag);
        let mut tx = self.store.begin().await.unwrap();
        sqlx::query(
            "INSERT INTO devices (device_id, tenant, first_seen_ms, last_seen_ms, min_seq, max_seq,
                model, batch, epoch) VALUES ($1, 'acme', $2, $2, 1, 1, $5, $3, $4)",
        )
        .bind(device.as_str())
        .bind(T0 as i64)
        .bind(batch)
        .bind(i64::from(epoch))
        .bind(model.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
        let window = match tier {
            Tier::High => 4 * H,
            Tier::Medium => 24 * H,
            Tier::Low => 72 * H,
        };
        let id = tickets::open(
            &mut tx,
            &NewTicket {
                ticket_ref: format!("T-{device}"),
                device_id: device.clone(),
                tenant: "acme".into(),
                customer_id: None,
                problem: Problem::Battery,
                tier,
                offer: if tradein_soh.is_some() {
                    OfferKind::TradeIn
                } else {
                    OfferKind::Inspection
                },
                quote_minor: tradein_soh.map(|_| 30_000),
                currency: tradein_soh.map(|_| "EUR".into()),
                opened_ms: T0,
                due_ms: T0 + window,
                risk: 0.6,
                model_version: "m1".into(),
                evidence: EVIDENCE.into(),
                features,
            },
        )
        .await
        .unwrap()
        .unwrap();
        tx.commit().await.unwrap();
        id
    }
}

/// The evidence the test tickets carry, as the policy freezes it.
pub const EVIDENCE: &str = r#"{"risk":0.61,"threshold":0.27,"model_version":"forest-test",
"scored_at_ms":1795334400000,"top_features":[
{"feature":"soh_pct","unit":"%","value":71.5,"contribution":0.118},
{"feature":"brown_out_share_30d","unit":"share","value":0.5,"contribution":0.064},
{"feature":"temp_max_c_7d","unit":"°C","value":31.0,"contribution":-0.012}],
"safety":[],"telemetry":[],
"reasoning":["risk 0.610 against threshold 0.270; problem battery","repair estimate 6900 against residual value 21000 (minor units); warranty ended"]}"#;
