//! `devices`, the operational half: sequence accounting, liveness and identity from
//! births, and the latest score. The commercial half (owner, purchase terms) is in
//! [`super::registry`].

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use models::features::DAY_MS;

use super::{push_placeholders, Backend, Store, StoreError, CHUNK};

/// A device's sequence accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeqStats {
    /// Distinct messages accepted, of every epoch.
    pub count: u64,
    /// How many of them came before the current epoch.
    pub before_epoch: u64,
    /// Lowest seq seen in the current epoch.
    pub min_seq: u64,
    /// Highest seq seen in the current epoch.
    pub max_seq: u64,
}

impl SeqStats {
    /// Seqs of the current epoch between its lowest and highest that have not arrived
    /// (yet).
    pub fn missing(&self) -> u64 {
        let n = self.count.saturating_sub(self.before_epoch);
        if n == 0 {
            return 0;
        }
        (self.max_seq - self.min_seq + 1).saturating_sub(n)
    }
}

/// What the store holds about a device before a batch: what planning the batch needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceRow {
    /// Sequence accounting.
    pub stats: SeqStats,
    /// Device time of the liveness state in force.
    pub state_ms: Option<u64>,
    /// Purchase time, ms (the age feature counts from it).
    pub purchased_ms: Option<u64>,
    /// The highest seq of the current epoch retention has pruned: anything of that
    /// epoch at or below it that the store does not hold is a repeat of a pruned message.
    pub pruned_seq: Option<u64>,
    /// The current epoch (0 for schema 1).
    pub epoch: u32,
}

/// The rows of `devices` (distinct ids); a device never seen is absent. On PostgreSQL
/// the rows stay locked until the transaction ends, so replicas that share a device
/// take turns with it.
pub async fn snapshot(
    c: &mut AnyConnection,
    backend: Backend,
    devices: &[&str],
) -> Result<HashMap<String, DeviceRow>, StoreError> {
    let mut out = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT device_id, msg_count, min_seq, max_seq, state_ms, purchased_ms, pruned_seq,
                epoch, epoch_first_count
             FROM devices WHERE device_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len());
        if backend == Backend::Postgres {
            sql.push_str(" ORDER BY device_id FOR UPDATE");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(
                r.try_get(0)?,
                DeviceRow {
                    stats: SeqStats {
                        count: r.try_get::<i64, _>(1)? as u64,
                        before_epoch: r.try_get::<i64, _>(8)? as u64,
                        min_seq: r.try_get::<i64, _>(2)? as u64,
                        max_seq: r.try_get::<i64, _>(3)? as u64,
                    },
                    state_ms: r.try_get::<Option<i64>, _>(4)?.map(|v| v as u64),
                    purchased_ms: r.try_get::<Option<i64>, _>(5)?.map(|v| v as u64),
                    pruned_seq: r.try_get::<Option<i64>, _>(6)?.map(|v| v as u64),
                    epoch: epoch(r.try_get::<i64, _>(7)?)?,
                },
            );
        }
    }
    Ok(out)
}

/// A stored epoch, which the protocol keeps within 32 bits.
fn epoch(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("epoch {v} is not 32-bit")))
}

/// New messages of one device in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Its tenant.
    pub tenant: &'a str,
    /// How many new messages.
    pub n: u64,
    /// The device's epoch after the batch; when it differs from the stored one, the
    /// seq accounting starts again from this batch's messages of it.
    pub epoch: u32,
    /// How many of the new messages are of another epoch than `epoch`.
    pub other_epochs: u64,
    /// Times the batch saw the device restart its count.
    pub resets: u64,
    /// The lowest seq of `epoch` after the batch (the stored one when the batch has
    /// none lower).
    pub min_seq: u64,
    /// The highest seq of `epoch` likewise.
    pub max_seq: u64,
    /// Their earliest device time.
    pub first_ts_ms: u64,
    /// Their latest device time.
    pub last_ts_ms: u64,
}

/// Counts new messages against their devices (registering devices on first sight), one
/// statement per [`CHUNK`] devices; each device's message count after the update. The
/// devices must be distinct.
pub async fn count_arrivals(
    c: &mut AnyConnection,
    arrivals: &[Arrivals<'_>],
) -> Result<HashMap<String, u64>, StoreError> {
    let mut out = HashMap::with_capacity(arrivals.len());
    for chunk in arrivals.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO devices (device_id, tenant, first_seen_ms, last_seen_ms, min_seq, max_seq,
                msg_count, epoch, epoch_first_count, seq_resets) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 10);
        // Every SET expression reads the row as it was: a new epoch restarts the
        // accounting (and the pruned watermark, which was the old epoch's).
        sql.push_str(
            " ON CONFLICT (device_id) DO UPDATE SET
            last_seen_ms = CASE WHEN excluded.last_seen_ms > devices.last_seen_ms
                           THEN excluded.last_seen_ms ELSE devices.last_seen_ms END,
            min_seq = CASE WHEN excluded.epoch <> devices.epoch THEN excluded.min_seq
                      WHEN excluded.min_seq < devices.min_seq OR devices.msg_count = 0
                      THEN excluded.min_seq ELSE devices.min_seq END,
            max_seq = CASE WHEN excluded.epoch <> devices.epoch THEN excluded.max_seq
                      WHEN excluded.max_seq > devices.max_seq
                      THEN excluded.max_seq ELSE devices.max_seq END,
            epoch_first_count = CASE WHEN excluded.epoch <> devices.epoch
                      THEN devices.msg_count + excluded.epoch_first_count
                      ELSE devices.epoch_first_count + excluded.epoch_first_count END,
            pruned_seq = CASE WHEN excluded.epoch <> devices.epoch THEN NULL
                      ELSE devices.pruned_seq END,
            seq_resets = devices.seq_resets + excluded.seq_resets,
            epoch = excluded.epoch,
            msg_count = devices.msg_count + excluded.msg_count
         RETURNING device_id, msg_count",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = q
                .bind(a.device_id.to_owned())
                .bind(a.tenant.to_owned())
                .bind(a.first_ts_ms as i64)
                .bind(a.last_ts_ms as i64)
                .bind(a.min_seq as i64)
                .bind(a.max_seq as i64)
                .bind(a.n as i64)
                .bind(i64::from(a.epoch))
                .bind(a.other_epochs as i64)
                .bind(a.resets as i64);
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(r.try_get(0)?, r.try_get::<i64, _>(1)? as u64);
        }
    }
    Ok(out)
}

/// What a birth says about the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity<'a> {
    /// Model or SKU.
    pub model: &'a str,
    /// Device class.
    pub device_class: &'a str,
    /// Hardware revision.
    pub hw_revision: &'a str,
    /// Manufacturing batch.
    pub batch: &'a str,
    /// Firmware version.
    pub firmware: &'a str,
}

/// A device's liveness as a batch leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Online (birth) or offline (death).
    pub online: bool,
    /// When the state was received (ingest clock).
    pub ts_ms: u64,
    /// The identity of the newest birth that took effect, if any.
    pub identity: Option<Identity<'a>>,
}

/// Records a liveness change, unless a newer one is already recorded.
pub async fn set_liveness(c: &mut AnyConnection, l: &Liveness<'_>) -> Result<(), StoreError> {
    let id = l.identity.as_ref();
    sqlx::query(
        "UPDATE devices SET online = $2, state_ms = $3,
            model = COALESCE($4, model), device_class = COALESCE($5, device_class),
            hw_revision = COALESCE($6, hw_revision), batch = COALESCE($7, batch),
            firmware = COALESCE($8, firmware)
         WHERE device_id = $1 AND (state_ms IS NULL OR state_ms <= $3)",
    )
    .bind(l.device_id)
    .bind(i64::from(l.online))
    .bind(l.ts_ms as i64)
    .bind(id.map(|i| i.model))
    .bind(id.map(|i| i.device_class))
    .bind(id.map(|i| i.hw_revision))
    .bind(id.map(|i| i.batch))
    .bind(id.map(|i| i.firmware))
    .execute(c)
    .await?;
    Ok(())
}

/// A device's latest score, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The device.
    pub device_id: String,
    /// The risk.
    pub risk: f64,
    /// Whether it reached the model's threshold.
    pub alarm: bool,
    /// Device time scored at.
    pub scored_ms: u64,
    /// The model that scored.
    pub model_version: String,
    /// The top contributions, JSON.
    pub explanation: String,
    /// The challenger's score of the same features, when one is set.
    pub shadow: Option<ShadowScore>,
}

/// The challenger's score beside the champion's.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowScore {
    /// Its risk.
    pub risk: f64,
    /// Whether it reached the challenger's threshold.
    pub alarm: bool,
    /// The challenger's version.
    pub version: String,
}

/// Records a device's latest score.
pub async fn set_score(c: &mut AnyConnection, s: &ScoreRow) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE devices SET risk = $2, risk_alarm = $3, scored_ms = $4, model_version = $5,
            explanation = $6, shadow_risk = $7, shadow_alarm = $8, shadow_version = $9
         WHERE device_id = $1",
    )
    .bind(s.device_id.as_str())
    .bind(s.risk)
    .bind(i64::from(s.alarm))
    .bind(s.scored_ms as i64)
    .bind(s.model_version.as_str())
    .bind(s.explanation.as_str())
    .bind(s.shadow.as_ref().map(|x| x.risk))
    .bind(s.shadow.as_ref().map(|x| i64::from(x.alarm)))
    .bind(s.shadow.as_ref().map(|x| x.version.as_str()))
    .execute(&mut *c)
    .await?;
    // The day's row keeps its highest risk and, of its scores, the latest.
    let day_ms = s.scored_ms - s.scored_ms % DAY_MS;
    sqlx::query(
        "INSERT INTO score_days (device_id, day_ms, risk_max, risk_last, alarm, scored_ms,
            model_version, shadow_risk_max, shadow_alarm, shadow_version)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (device_id, day_ms) DO UPDATE SET
            shadow_risk_max = CASE WHEN score_days.shadow_risk_max IS NULL
                OR excluded.shadow_risk_max > score_days.shadow_risk_max
                THEN excluded.shadow_risk_max ELSE score_days.shadow_risk_max END,
            shadow_alarm = CASE WHEN score_days.shadow_alarm IS NULL
                OR excluded.shadow_alarm > score_days.shadow_alarm
                THEN excluded.shadow_alarm ELSE score_days.shadow_alarm END,
            shadow_version = COALESCE(excluded.shadow_version, score_days.shadow_version),
            risk_max = CASE WHEN excluded.risk_max > score_days.risk_max
                THEN excluded.risk_max ELSE score_days.risk_max END,
            alarm = CASE WHEN excluded.alarm > score_days.alarm
                THEN excluded.alarm ELSE score_days.alarm END,
            risk_last = CASE WHEN excluded.scored_ms >= score_days.scored_ms
                THEN excluded.risk_last ELSE score_days.risk_last END,
            model_version = CASE WHEN excluded.scored_ms >= score_days.scored_ms
                THEN excluded.model_version ELSE score_days.model_version END,
            scored_ms = CASE WHEN excluded.scored_ms >= score_days.scored_ms
                THEN excluded.scored_ms ELSE score_days.scored_ms END",
    )
    .bind(s.device_id.as_str())
    .bind(day_ms as i64)
    .bind(s.risk)
    .bind(i64::from(s.alarm))
    .bind(s.scored_ms as i64)
    .bind(s.model_version.as_str())
    .bind(s.shadow.as_ref().map(|x| x.risk))
    .bind(s.shadow.as_ref().map(|x| i64::from(x.alarm)))
    .bind(s.shadow.as_ref().map(|x| x.version.as_str()))
    .execute(c)
    .await?;
    Ok(())
}

/// A day of a device's score history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ScoreDay {
    /// The day's start (UTC, device time), ms.
    pub day_ms: u64,
    /// The day's highest risk.
    pub risk_max: f64,
    /// The day's last risk.
    pub risk_last: f64,
    /// Whether any score that day reached the threshold.
    pub alarm: bool,
    /// Device time of the day's last score.
    pub scored_ms: u64,
    /// The model of the day's last score.
    pub model_version: String,
}

/// What the desk shows of a device: identity, terms, liveness and latest score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceCard {
    /// The device.
    pub device_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Model, class, hardware revision, batch and firmware from its latest birth.
    pub model: Option<String>,
    /// Device class.
    pub device_class: Option<String>,
    /// Hardware revision.
    pub hw_revision: Option<String>,
    /// Production batch.
    pub batch: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// The owner, from the registry.
    pub customer_id: Option<String>,
    /// Purchase time, ms.
    pub purchased_ms: Option<u64>,
    /// End of warranty, ms.
    pub warranty_until_ms: Option<u64>,
    /// First message's device time, ms.
    pub first_seen_ms: u64,
    /// Newest message's device time, ms.
    pub last_seen_ms: u64,
    /// Latest risk, once scored.
    pub risk: Option<f64>,
    /// Device time of the latest score.
    pub scored_ms: Option<u64>,
    /// The model of the latest score.
    pub model_version: Option<String>,
}

/// What the store says about a device's connection and its messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: String,
    /// Whether its latest state is a birth.
    pub online: bool,
    /// Sequence accounting.
    #[serde(flatten)]
    pub stats: SeqStats,
    /// Seqs of the current epoch that have not arrived (yet).
    pub missing: u64,
    /// Its current epoch (0: schema 1).
    pub epoch: u32,
    /// Times it restarted its seq count under a new epoch.
    pub seq_resets: u64,
}

const STATUS: &str = "SELECT device_id, online, msg_count, epoch_first_count, min_seq, max_seq,
    epoch, seq_resets FROM devices";

fn status(r: &sqlx::any::AnyRow) -> Result<DeviceStatus, StoreError> {
    let stats = SeqStats {
        count: r.try_get::<i64, _>(2)? as u64,
        before_epoch: r.try_get::<i64, _>(3)? as u64,
        min_seq: r.try_get::<i64, _>(4)? as u64,
        max_seq: r.try_get::<i64, _>(5)? as u64,
    };
    Ok(DeviceStatus {
        device_id: r.try_get(0)?,
        online: r.try_get::<i64, _>(1)? != 0,
        missing: stats.missing(),
        stats,
        epoch: epoch(r.try_get::<i64, _>(6)?)?,
        seq_resets: r.try_get::<i64, _>(7)? as u64,
    })
}

impl Store {
    /// A device's liveness and sequence accounting.
    pub async fn device_status(&self, device: &str) -> Result<Option<DeviceStatus>, StoreError> {
        let sql = format!("{STATUS} WHERE device_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(status).transpose()
    }

    /// Every device's liveness and sequence accounting, by id.
    pub async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError> {
        let sql = format!("{STATUS} ORDER BY device_id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(status).collect()
    }

    /// A device's identity, terms and latest score; `None` if it was never seen.
    pub async fn device_card(&self, device: &str) -> Result<Option<DeviceCard>, StoreError> {
        let row = sqlx::query(
            "SELECT device_id, tenant, model, device_class, hw_revision, batch, firmware,
                customer_id, purchased_ms, warranty_until_ms, first_seen_ms, last_seen_ms, risk,
                scored_ms, model_version FROM devices WHERE device_id = $1",
        )
        .bind(device)
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let ms = |i| r.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v as u64));
        Ok(Some(DeviceCard {
            device_id: r.try_get(0)?,
            tenant: r.try_get(1)?,
            model: r.try_get(2)?,
            device_class: r.try_get(3)?,
            hw_revision: r.try_get(4)?,
            batch: r.try_get(5)?,
            firmware: r.try_get(6)?,
            customer_id: r.try_get(7)?,
            purchased_ms: ms(8)?,
            warranty_until_ms: ms(9)?,
            first_seen_ms: r.try_get::<i64, _>(10)? as u64,
            last_seen_ms: r.try_get::<i64, _>(11)? as u64,
            risk: r.try_get(12)?,
            scored_ms: ms(13)?,
            model_version: r.try_get(14)?,
        }))
    }

    /// A device's score history from `since_ms` (device time), oldest day first.
    pub async fn score_days(
        &self,
        device: &str,
        since_ms: u64,
    ) -> Result<Vec<ScoreDay>, StoreError> {
        let rows = sqlx::query(
            "SELECT day_ms, risk_max, risk_last, alarm, scored_ms, model_version FROM score_days
             WHERE device_id = $1 AND day_ms >= $2 ORDER BY day_ms",
        )
        .bind(device)
        .bind(since_ms as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ScoreDay {
                    day_ms: r.try_get::<i64, _>(0)? as u64,
                    risk_max: r.try_get(1)?,
                    risk_last: r.try_get(2)?,
                    alarm: r.try_get::<i64, _>(3)? != 0,
                    scored_ms: r.try_get::<i64, _>(4)? as u64,
                    model_version: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// A device's newest `limit` heartbeats and events with device time in
    /// `[from_ms, to_ms]`, oldest first.
    pub async fn device_telemetry(
        &self,
        device: &str,
        window: (u64, u64),
        limit: usize,
    ) -> Result<Vec<super::messages::StoredMessage>, StoreError> {
        let mut c = self.pool().acquire().await?;
        super::messages::telemetry_between(&mut c, device, window, limit).await
    }

    /// The epochs a device has used, oldest first: (epoch, first seq, first received).
    pub async fn seq_epochs(&self, device: &str) -> Result<Vec<(u32, u64, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT epoch, first_seq, received_ms FROM seq_epochs WHERE device_id = $1
             ORDER BY received_ms, first_seq",
        )
        .bind(device)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    epoch(r.try_get::<i64, _>(0)?)?,
                    r.try_get::<i64, _>(1)? as u64,
                    r.try_get::<i64, _>(2)? as u64,
                ))
            })
            .collect()
    }
}

/// The epochs the store knows for `devices`, per device.
pub async fn known_epochs(
    c: &mut AnyConnection,
    devices: &[&str],
) -> Result<HashMap<String, Vec<u32>>, StoreError> {
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    for chunk in devices.chunks(CHUNK) {
        let mut sql = String::from("SELECT device_id, epoch FROM seq_epochs WHERE device_id IN ");
        push_placeholders(&mut sql, 1, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?)
                .or_default()
                .push(epoch(r.try_get::<i64, _>(1)?)?);
        }
    }
    Ok(out)
}

/// A device's epoch seen for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewEpoch<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The epoch.
    pub epoch: u32,
    /// The seq of its first message to arrive.
    pub first_seq: u64,
}

/// Records epochs seen for the first time, dated `at_ms`.
pub async fn record_epochs(
    c: &mut AnyConnection,
    epochs: &[NewEpoch<'_>],
    at_ms: u64,
) -> Result<(), StoreError> {
    for chunk in epochs.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO seq_epochs (device_id, epoch, first_seq, received_ms) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 4);
        sql.push_str(" ON CONFLICT (device_id, epoch) DO NOTHING");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.device_id.to_owned())
                .bind(i64::from(e.epoch))
                .bind(e.first_seq as i64)
                .bind(at_ms as i64);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::SeqStats;

    #[test]
    fn missing_seqs_are_the_gaps_between_lowest_and_highest() {
        let s = SeqStats {
            count: 8,
            before_epoch: 0,
            min_seq: 1,
            max_seq: 10,
        };
        assert_eq!(s.missing(), 2);
        // After a reset only the current epoch's messages count against its range.
        let s = SeqStats {
            count: 108,
            before_epoch: 100,
            ..s
        };
        assert_eq!(s.missing(), 2);
        assert_eq!(
            SeqStats::default().missing(),
            0,
            "a device never seen misses nothing"
        );
    }

    /// docs/ingest.md shows a line of `cloud-ingest devices`: it is what the type writes.
    #[test]
    fn the_documented_device_line_is_a_device_status() {
        let doc = include_str!("../../../docs/ingest.md");
        let line = doc
            .lines()
            .find(|l| l.starts_with(r#"{"device_id":"dev-000123""#))
            .expect("docs/ingest.md shows a device line");
        let stats = SeqStats {
            count: 1042,
            before_epoch: 0,
            min_seq: 1,
            max_seq: 1042,
        };
        let status = super::DeviceStatus {
            device_id: "dev-000123".into(),
            online: true,
            stats,
            missing: stats.missing(),
            epoch: 2_718_281_828,
            seq_resets: 0,
        };
        assert_eq!(serde_json::to_string(&status).unwrap(), line);
    }
}
