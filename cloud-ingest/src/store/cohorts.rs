//! `firmware_days` and `cohort_flags`: what the cohort watch reads beside the devices
//! and tickets, and what it records. Firmware days are added to in the ingest batch's
//! transaction; flags are upserted by key, keeping when each was first flagged.

use sqlx::{AnyConnection, Row};

use super::{parse, Store, StoreError};
use crate::cohorts::watch::{Evidence, Flag, FlagKind};
use crate::cohorts::{DeviceFacts, FirmwareDay, FleetFacts, Incident, Measure};
use crate::policy::Problem;
use crate::tickets::work::Outcome;

/// A boot's firmware, from its birth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Boot<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The boot.
    pub boot_id: &'a str,
    /// The firmware it ran.
    pub firmware: &'a str,
    /// The birth's device time, ms.
    pub ts_ms: u64,
}

/// Records boots (a repeated birth changes nothing).
pub async fn add_boots(c: &mut AnyConnection, boots: &[Boot<'_>]) -> Result<(), StoreError> {
    for b in boots {
        sqlx::query(
            "INSERT INTO device_boots (device_id, boot_id, firmware, ts_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id, boot_id) DO NOTHING",
        )
        .bind(b.device_id)
        .bind(b.boot_id)
        .bind(b.firmware)
        .bind(b.ts_ms as i64)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// One device's heartbeats of one boot and day, summed by the batch that accepted them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirmwareUsage<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The boot they came from.
    pub boot_id: &'a str,
    /// The day (UTC, device time), ms.
    pub day_ms: u64,
    /// Seconds running.
    pub operational_s: u64,
    /// Seconds running without a crash or unexpected restart.
    pub crash_free_s: u64,
    /// Unexpected restarts.
    pub unexpected_restarts: u64,
    /// Crashes.
    pub crashes: u64,
}

/// Adds each day to its row for the firmware its boot ran (the device's latest when the
/// boot's birth is unknown, `unknown` before any birth).
pub async fn add_usage(
    c: &mut AnyConnection,
    days: &[FirmwareUsage<'_>],
) -> Result<(), StoreError> {
    for d in days {
        sqlx::query(
            "INSERT INTO firmware_days (device_id, day_ms, firmware, operational_s, crash_free_s,
                unexpected_restarts, crashes)
             SELECT device_id, $2, COALESCE((SELECT b.firmware FROM device_boots b
                    WHERE b.device_id = $1 AND b.boot_id = $7), firmware, 'unknown'),
                $3, $4, $5, $6
                FROM devices WHERE device_id = $1
             ON CONFLICT (device_id, day_ms, firmware) DO UPDATE SET
                operational_s = firmware_days.operational_s + excluded.operational_s,
                crash_free_s = firmware_days.crash_free_s + excluded.crash_free_s,
                unexpected_restarts = firmware_days.unexpected_restarts + excluded.unexpected_restarts,
                crashes = firmware_days.crashes + excluded.crashes",
        )
        .bind(d.device_id)
        .bind(d.day_ms as i64)
        .bind(d.operational_s as i64)
        .bind(d.crash_free_s as i64)
        .bind(d.unexpected_restarts as i64)
        .bind(d.crashes as i64)
        .bind(d.boot_id)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// A recorded flag.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FlagRecord {
    /// Its id.
    pub id: i64,
    /// The flag as last seen.
    pub flag: Flag,
    /// When a run first flagged it (ingest clock), ms.
    pub first_flagged_ms: u64,
    /// When a run last flagged it, ms.
    pub last_flagged_ms: u64,
    /// Runs that flagged it.
    pub runs: u64,
    /// `open`, `campaign` (one was proposed) or `dismissed`.
    pub status: String,
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

impl Store {
    /// Everything the cohort watch reads: every device with its span watched, every
    /// firmware day, and every ticket as an incident (confirmed failures by their
    /// category, special cases apart).
    pub async fn fleet_facts(&self) -> Result<FleetFacts, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, model, batch, firmware, purchased_ms, first_seen_ms, last_seen_ms
             FROM devices ORDER BY device_id",
        )
        .fetch_all(self.pool())
        .await?;
        let devices = rows
            .iter()
            .map(|r| {
                Ok(DeviceFacts {
                    device_id: r.try_get(0)?,
                    model: r.try_get(1)?,
                    batch: r.try_get(2)?,
                    firmware: r.try_get(3)?,
                    purchased_ms: r.try_get::<Option<i64>, _>(4)?.map(ms),
                    from_ms: ms(r.try_get(5)?),
                    to_ms: ms(r.try_get(6)?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = sqlx::query(
            "SELECT device_id, day_ms, firmware, operational_s, crash_free_s, unexpected_restarts,
                crashes FROM firmware_days",
        )
        .fetch_all(self.pool())
        .await?;
        let firmware_days = rows
            .iter()
            .map(|r| {
                Ok(FirmwareDay {
                    device_id: r.try_get(0)?,
                    day_ms: ms(r.try_get(1)?),
                    firmware: r.try_get(2)?,
                    operational_s: ms(r.try_get(3)?),
                    crash_free_s: ms(r.try_get(4)?),
                    unexpected_restarts: ms(r.try_get(5)?),
                    crashes: ms(r.try_get(6)?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = sqlx::query(
            "SELECT device_id, problem, opened_ms, outcome, outcome_category FROM tickets",
        )
        .fetch_all(self.pool())
        .await?;
        let mut facts = FleetFacts {
            devices,
            firmware_days,
            ..FleetFacts::default()
        };
        for r in &rows {
            let problem: Problem = parse(&r.try_get::<String, _>(1)?)?;
            let incident = Incident {
                device_id: r.try_get(0)?,
                problem,
                at_ms: ms(r.try_get(2)?),
            };
            facts.tickets.push(incident.clone());
            let Some(outcome) = r.try_get::<Option<String>, _>(3)? else {
                continue;
            };
            let outcome: Outcome = parse(&outcome)?;
            if outcome.confirms_fault() {
                let category = match r.try_get::<Option<String>, _>(4)? {
                    Some(c) => parse(&c)?,
                    None => problem,
                };
                facts.failures.push(Incident {
                    problem: category,
                    ..incident
                });
            } else if let Some(case) = outcome.special_case() {
                facts.special.push((incident, case));
            }
        }
        Ok(facts)
    }

    /// Records a run's flags: a new key is inserted, a known one gets the run's evidence
    /// and time. Returns the flags seen for the first time.
    pub async fn record_flags(&self, flags: &[Flag], at_ms: u64) -> Result<Vec<Flag>, StoreError> {
        if flags.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let mut new = Vec::new();
        for f in flags {
            let evidence = serde_json::to_string(&f.evidence).expect("evidence serialises");
            let updated = sqlx::query(
                "UPDATE cohort_flags SET last_flagged_ms = $2, runs = runs + 1, evidence = $3
                 WHERE flag_key = $1",
            )
            .bind(f.key())
            .bind(at_ms as i64)
            .bind(evidence.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated > 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO cohort_flags (flag_key, kind, cohort, problem, window_days, measure,
                    first_flagged_ms, last_flagged_ms, evidence)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            )
            .bind(f.key())
            .bind(f.kind.as_str())
            .bind(f.cohort.as_str())
            .bind(f.problem.map(Problem::as_str))
            .bind(f.window_days.map(i64::from))
            .bind(measure_name(f.measure))
            .bind(at_ms as i64)
            .bind(evidence.as_str())
            .execute(&mut *tx)
            .await?;
            new.push(f.clone());
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Recorded flags, newest first; with `status`, only those.
    pub async fn cohort_flags(&self, status: Option<&str>) -> Result<Vec<FlagRecord>, StoreError> {
        let sql = format!(
            "{FLAG_COLUMNS} WHERE $1 IS NULL OR status = $1 ORDER BY first_flagged_ms DESC, id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(flag_record).collect()
    }

    /// One recorded flag.
    pub async fn cohort_flag(&self, id: i64) -> Result<Option<FlagRecord>, StoreError> {
        let sql = format!("{FLAG_COLUMNS} WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(flag_record).transpose()
    }

    /// Dismisses an open flag (`by` who, audited); `false` when it is not open.
    pub async fn dismiss_flag(&self, id: i64, by: &str, now_ms: u64) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE cohort_flags SET status = 'dismissed' WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        super::users::audit(
            &mut tx,
            &super::users::AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "cohort_flag.dismiss".into(),
                subject: format!("cohort_flag:{id}"),
                before: Some("open".into()),
                after: Some("dismissed".into()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

const FLAG_COLUMNS: &str =
    "SELECT id, kind, cohort, problem, window_days, measure, first_flagged_ms,
    last_flagged_ms, runs, status, evidence FROM cohort_flags";

fn flag_record(r: &sqlx::any::AnyRow) -> Result<FlagRecord, StoreError> {
    let kind: String = r.try_get(1)?;
    let measure: String = r.try_get(5)?;
    let evidence: String = r.try_get(10)?;
    Ok(FlagRecord {
        id: r.try_get(0)?,
        flag: Flag {
            kind: kind_of(&kind)?,
            cohort: r.try_get(2)?,
            problem: r
                .try_get::<Option<String>, _>(3)?
                .map(|p| parse(&p))
                .transpose()?,
            window_days: r
                .try_get::<Option<i64>, _>(4)?
                .map(|w| w.clamp(0, i64::from(u32::MAX)) as u32),
            measure: match measure.as_str() {
                "tickets" => Measure::Tickets,
                _ => Measure::Failures,
            },
            evidence: serde_json::from_str::<Evidence>(&evidence)
                .map_err(|e| StoreError::Corrupt(format!("flag evidence: {e}")))?,
        },
        first_flagged_ms: ms(r.try_get(6)?),
        last_flagged_ms: ms(r.try_get(7)?),
        runs: ms(r.try_get(8)?),
        status: r.try_get(9)?,
    })
}

fn measure_name(m: Measure) -> &'static str {
    match m {
        Measure::Failures => "failures",
        Measure::Tickets => "tickets",
    }
}

fn kind_of(s: &str) -> Result<FlagKind, StoreError> {
    [
        FlagKind::Model,
        FlagKind::Batch,
        FlagKind::Firmware,
        FlagKind::PurchaseMonth,
        FlagKind::FirmwareRegression,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
    .ok_or_else(|| StoreError::Corrupt(format!("unknown flag kind {s:?}")))
}
