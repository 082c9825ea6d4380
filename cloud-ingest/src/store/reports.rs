//! What the after-sales report reads beside the cohort facts (every ticket with its
//! offer, answer and outcome times, every rating, the trade-ins' milestones), and the
//! root-cause records written for flagged cohorts, rewritten whole at the version seen.

use std::collections::HashMap;

use sqlx::Row;

use super::users::{audit, AuditEntry};
use super::{parse, Store, StoreError};
use crate::report::kpis::{RatingFact, ServiceFacts, TicketFact};
use crate::report::root_causes::Why;

/// A flag's root-cause record as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RootCause {
    /// The flag it explains.
    pub flag_id: i64,
    /// The whys, in order.
    pub whys: Vec<Why>,
    /// Where they end.
    pub conclusion: String,
    /// Who wrote it last.
    pub written_by: String,
    /// When, ms.
    pub written_ms: i64,
    /// Bumped by every rewrite.
    pub version: i64,
}

fn ms(v: i64) -> u64 {
    v.max(0) as u64
}

/// Only the scoring moment of a ticket's evidence.
#[derive(serde::Deserialize)]
struct ScoredAt {
    scored_at_ms: Option<u64>,
}

impl Store {
    /// Every ticket, rating and trade-in milestone, for the report's figures.
    pub async fn service_facts(&self) -> Result<ServiceFacts, StoreError> {
        let events = sqlx::query(
            "SELECT ticket_id, to_state, MIN(at_ms) FROM ticket_events
             WHERE to_state IN ('offered', 'accepted') GROUP BY ticket_id, to_state",
        )
        .fetch_all(self.pool())
        .await?;
        let mut firsts: HashMap<(i64, String), u64> = HashMap::new();
        for r in &events {
            firsts.insert((r.try_get(0)?, r.try_get(1)?), ms(r.try_get(2)?));
        }
        let rows = sqlx::query(
            "SELECT t.id, t.ticket_ref, t.device_id, d.model, t.problem, t.tier, t.opened_ms,
                t.closed_ms, t.outcome, t.outcome_category, t.sla_breached_ms, t.risk,
                t.model_version, t.evidence
             FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id ORDER BY t.id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut tickets = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let evidence: String = r.try_get(13)?;
            tickets.push(TicketFact {
                id,
                ticket_ref: r.try_get(1)?,
                device_id: r.try_get(2)?,
                model: r.try_get(3)?,
                problem: parse(&r.try_get::<String, _>(4)?)?,
                tier: parse(&r.try_get::<String, _>(5)?)?,
                opened_ms: ms(r.try_get(6)?),
                closed_ms: r.try_get::<Option<i64>, _>(7)?.map(ms),
                outcome: r
                    .try_get::<Option<String>, _>(8)?
                    .map(|v| parse(&v))
                    .transpose()?,
                outcome_category: r
                    .try_get::<Option<String>, _>(9)?
                    .map(|v| parse(&v))
                    .transpose()?,
                breached_ms: r.try_get::<Option<i64>, _>(10)?.map(ms),
                offered_ms: firsts.get(&(id, "offered".to_owned())).copied(),
                accepted_ms: firsts.get(&(id, "accepted".to_owned())).copied(),
                scored_ms: serde_json::from_str::<ScoredAt>(&evidence)
                    .ok()
                    .and_then(|s| s.scored_at_ms),
                risk: r.try_get(11)?,
                model_version: r.try_get(12)?,
            });
        }
        let rows = sqlx::query(
            "SELECT t.ticket_ref, r.result, r.speed, r.service, r.comment, r.rated_ms
             FROM ticket_ratings r JOIN tickets t ON t.id = r.ticket_id ORDER BY r.rated_ms",
        )
        .fetch_all(self.pool())
        .await?;
        let star = |v: i64| v.clamp(0, 5) as u8;
        let ratings = rows
            .iter()
            .map(|r| {
                Ok(RatingFact {
                    ticket_ref: r.try_get(0)?,
                    stars: [
                        star(r.try_get(1)?),
                        star(r.try_get(2)?),
                        star(r.try_get(3)?),
                    ],
                    comment: r.try_get(4)?,
                    rated_ms: ms(r.try_get(5)?),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ServiceFacts {
            tickets,
            ratings,
            tradeins: self.tradein_milestones(0, i64::MAX as u64).await?,
        })
    }

    /// Writes flag `flag_id`'s root-cause record over version `version` (0: none yet),
    /// by `by`, audited. A stale version is a conflict; an unknown flag is `None`.
    pub async fn write_root_cause(
        &self,
        flag_id: i64,
        whys: &[Why],
        conclusion: &str,
        version: i64,
        by: &str,
        now_ms: u64,
    ) -> Result<Option<RootCause>, StoreError> {
        let mut tx = self.begin().await?;
        let known = sqlx::query("SELECT id FROM cohort_flags WHERE id = $1")
            .bind(flag_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known {
            return Ok(None);
        }
        let json = serde_json::to_string(whys).expect("whys serialise");
        let n = if version == 0 {
            sqlx::query(
                "INSERT INTO root_causes (flag_id, whys, conclusion, written_by, written_ms, version)
                 VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (flag_id) DO NOTHING",
            )
            .bind(flag_id)
            .bind(json.as_str())
            .bind(conclusion)
            .bind(by)
            .bind(now_ms as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE root_causes SET whys = $2, conclusion = $3, written_by = $4,
                    written_ms = $5, version = version + 1
                 WHERE flag_id = $1 AND version = $6",
            )
            .bind(flag_id)
            .bind(json.as_str())
            .bind(conclusion)
            .bind(by)
            .bind(now_ms as i64)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "the root-cause record of flag {flag_id} is not at version {version}: it changed meanwhile; reload it"
            )));
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "root_cause.write".into(),
                subject: format!("cohort_flag:{flag_id}"),
                before: (version > 0).then(|| format!("version {version}")),
                after: Some(conclusion.to_owned()),
            },
        )
        .await?;
        tx.commit().await?;
        self.root_cause(flag_id).await
    }

    /// Flag `flag_id`'s root-cause record, if written.
    pub async fn root_cause(&self, flag_id: i64) -> Result<Option<RootCause>, StoreError> {
        Ok(self
            .root_causes()
            .await?
            .into_iter()
            .find(|r| r.flag_id == flag_id))
    }

    /// Every root-cause record, by flag.
    pub async fn root_causes(&self) -> Result<Vec<RootCause>, StoreError> {
        let rows = sqlx::query(
            "SELECT flag_id, whys, conclusion, written_by, written_ms, version
             FROM root_causes ORDER BY flag_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let whys: String = r.try_get(1)?;
                Ok(RootCause {
                    flag_id: r.try_get(0)?,
                    whys: serde_json::from_str(&whys).map_err(|e| {
                        StoreError::Corrupt(format!("root-cause whys do not read: {e}"))
                    })?,
                    conclusion: r.try_get(2)?,
                    written_by: r.try_get(3)?,
                    written_ms: r.try_get(4)?,
                    version: r.try_get(5)?,
                })
            })
            .collect()
    }
}
