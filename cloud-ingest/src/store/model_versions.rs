//! `model_versions`, `model_aliases` and `model_changes`: the model registry. An alias
//! moves only from the version it was read at, so two admins (or replicas) racing see
//! one win and the other a conflict; every move is a change row and an audit entry.

use sqlx::Row;

use super::users::{audit, AuditEntry};
use super::{Store, StoreError};
use crate::registry::gate::{Disagreement, ShadowFacts};

const DAY_MS: u64 = 86_400_000;

/// A registered model version (without its artifact).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ModelVersion {
    /// The version, as the artifact names itself.
    pub version: String,
    /// `forest` or `logistic`.
    pub kind: String,
    /// SHA-256 of the artifact as registered.
    pub sha256: String,
    /// Its alarm threshold.
    pub threshold: f64,
    /// What it was trained on (the artifact's `training`).
    #[schema(value_type = Object)]
    pub training: serde_json::Value,
    /// How it validated (the artifact's `validation`).
    #[schema(value_type = Object)]
    pub validation: serde_json::Value,
    /// When registered, ms.
    pub registered_ms: i64,
    /// By whom.
    pub registered_by: String,
}

/// A version to register.
#[derive(Debug, Clone)]
pub struct NewModelVersion<'a> {
    /// The version.
    pub version: &'a str,
    /// Its kind.
    pub kind: &'a str,
    /// SHA-256 of `artifact`.
    pub sha256: &'a str,
    /// The artifact's JSON.
    pub artifact: &'a str,
    /// Its threshold.
    pub threshold: f64,
    /// Its training summary, JSON.
    pub training: &'a str,
    /// Its validation, JSON.
    pub validation: &'a str,
    /// When, ms.
    pub at_ms: u64,
    /// Who.
    pub by: &'a str,
}

/// Where an alias points.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Alias {
    /// The version.
    pub version: String,
    /// Since when, ms.
    pub since_ms: i64,
    /// Set by whom.
    pub set_by: String,
}

/// Both aliases.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Aliases {
    /// The model that drives policy.
    pub champion: Option<Alias>,
    /// The model scored in its shadow.
    pub challenger: Option<Alias>,
}

/// A change of the aliases, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ModelChange {
    /// Its id.
    pub id: i64,
    /// When, ms.
    pub at_ms: i64,
    /// Who (a desk user, `startup` or `model file`).
    pub actor: String,
    /// `adopt`, `challenger`, `clear_challenger`, `promote` or `rollback`.
    pub action: String,
    /// The version it put in place.
    pub version: Option<String>,
    /// The version it replaced.
    pub previous: Option<String>,
    /// The gate measured when promoting.
    #[schema(value_type = Option<Object>)]
    pub gate: Option<serde_json::Value>,
    /// Whether a failed gate was overridden.
    pub overridden: bool,
    /// Why, in the actor's words.
    pub reason: Option<String>,
}

/// One alias's move: to `to` (or cleared), from `from` as read (absent when unset).
#[derive(Debug, Clone, Copy)]
pub struct AliasMove<'a> {
    /// `champion` or `challenger`.
    pub alias: &'static str,
    /// The version read.
    pub from: Option<&'a str>,
    /// The version wanted; `None` clears.
    pub to: Option<&'a str>,
}

/// A change to record with its moves.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    /// Who.
    pub actor: &'a str,
    /// What, as [`ModelChange::action`].
    pub action: &'a str,
    /// The version put in place.
    pub version: Option<&'a str>,
    /// The version replaced.
    pub previous: Option<&'a str>,
    /// The gate, JSON.
    pub gate: Option<String>,
    /// Whether a failed gate was overridden.
    pub overridden: bool,
    /// Why.
    pub reason: Option<&'a str>,
    /// When, ms.
    pub at_ms: u64,
    /// The aliases it moves.
    pub moves: Vec<AliasMove<'a>>,
}

fn version_row(r: &sqlx::any::AnyRow) -> Result<ModelVersion, StoreError> {
    let json = |i: usize| -> Result<serde_json::Value, StoreError> {
        let s: String = r.try_get(i)?;
        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
    };
    Ok(ModelVersion {
        version: r.try_get(0)?,
        kind: r.try_get(1)?,
        sha256: r.try_get(2)?,
        threshold: r.try_get(3)?,
        training: json(4)?,
        validation: json(5)?,
        registered_ms: r.try_get(6)?,
        registered_by: r.try_get(7)?,
    })
}

fn change_row(r: &sqlx::any::AnyRow) -> Result<ModelChange, StoreError> {
    let gate: Option<String> = r.try_get(6)?;
    Ok(ModelChange {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        action: r.try_get(3)?,
        version: r.try_get(4)?,
        previous: r.try_get(5)?,
        gate: gate.and_then(|g| serde_json::from_str(&g).ok()),
        overridden: r.try_get::<i64, _>(7)? != 0,
        reason: r.try_get(8)?,
    })
}

impl Store {
    /// Registers a version; `Ok(false)` when it was registered already with the same
    /// artifact, a conflict when with another.
    pub async fn register_model(&self, m: &NewModelVersion<'_>) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO model_versions (version, kind, sha256, artifact, threshold, training,
                validation, registered_ms, registered_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(m.version)
        .bind(m.kind)
        .bind(m.sha256)
        .bind(m.artifact)
        .bind(m.threshold)
        .bind(m.training)
        .bind(m.validation)
        .bind(m.at_ms as i64)
        .bind(m.by)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let sha: String = sqlx::query("SELECT sha256 FROM model_versions WHERE version = $1")
                .bind(m.version)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            return if sha == m.sha256 {
                Ok(false)
            } else {
                Err(StoreError::Conflict(format!(
                    "model version {} is registered already with another artifact (sha256 {sha}); a retrained model needs a version of its own",
                    m.version
                )))
            };
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: m.at_ms as i64,
                user_name: m.by.to_owned(),
                action: "model.register".into(),
                subject: format!("model:{}", m.version),
                before: None,
                after: Some(m.sha256.to_owned()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every registered version, newest first.
    pub async fn model_versions(&self) -> Result<Vec<ModelVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, kind, sha256, threshold, training, validation, registered_ms,
                registered_by FROM model_versions ORDER BY registered_ms DESC, version DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// A registered version's artifact JSON.
    pub async fn model_artifact(&self, version: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT artifact FROM model_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Where the aliases point.
    pub async fn model_aliases(&self) -> Result<Aliases, StoreError> {
        let rows = sqlx::query("SELECT alias, version, since_ms, set_by FROM model_aliases")
            .fetch_all(self.pool())
            .await?;
        let mut out = Aliases::default();
        for r in &rows {
            let alias: String = r.try_get(0)?;
            let a = Alias {
                version: r.try_get(1)?,
                since_ms: r.try_get(2)?,
                set_by: r.try_get(3)?,
            };
            match alias.as_str() {
                "champion" => out.champion = Some(a),
                "challenger" => out.challenger = Some(a),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Moves the aliases and records the change, all or nothing: a conflict when an
    /// alias no longer points where it was read.
    pub async fn change_models(&self, c: &NewChange<'_>) -> Result<ModelChange, StoreError> {
        let mut tx = self.begin().await?;
        for m in &c.moves {
            let moved = match (m.from, m.to) {
                (None, Some(to)) => sqlx::query(
                    "INSERT INTO model_aliases (alias, version, since_ms, set_by)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (alias) DO NOTHING",
                )
                .bind(m.alias)
                .bind(to)
                .bind(c.at_ms as i64)
                .bind(c.actor)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                (Some(from), Some(to)) => sqlx::query(
                    "UPDATE model_aliases SET version = $2, since_ms = $3, set_by = $4
                     WHERE alias = $1 AND version = $5",
                )
                .bind(m.alias)
                .bind(to)
                .bind(c.at_ms as i64)
                .bind(c.actor)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                (Some(from), None) => {
                    sqlx::query("DELETE FROM model_aliases WHERE alias = $1 AND version = $2")
                        .bind(m.alias)
                        .bind(from)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
                (None, None) => sqlx::query("SELECT 1 FROM model_aliases WHERE alias = $1")
                    .bind(m.alias)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map_or(1, |_| 0),
            };
            if moved != 1 {
                return Err(StoreError::Conflict(format!(
                    "the {} changed meanwhile; reload and try again",
                    m.alias
                )));
            }
        }
        let id: i64 = sqlx::query(
            "INSERT INTO model_changes (at_ms, actor, action, version, previous, gate,
                overridden, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(c.at_ms as i64)
        .bind(c.actor)
        .bind(c.action)
        .bind(c.version)
        .bind(c.previous)
        .bind(c.gate.as_deref())
        .bind(i64::from(c.overridden))
        .bind(c.reason)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: c.at_ms as i64,
                user_name: c.actor.to_owned(),
                action: format!("model.{}", c.action),
                subject: format!("model:{}", c.version.unwrap_or("-")),
                before: c.previous.map(str::to_owned),
                after: c.version.map(str::to_owned),
            },
        )
        .await?;
        let row = sqlx::query(
            "SELECT id, at_ms, actor, action, version, previous, gate, overridden, reason
             FROM model_changes WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let change = change_row(&row)?;
        tx.commit().await?;
        Ok(change)
    }

    /// The newest `limit` changes, newest first.
    pub async fn model_changes(&self, limit: u32) -> Result<Vec<ModelChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, version, previous, gate, overridden, reason
             FROM model_changes ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(change_row).collect()
    }

    /// The fleet's scores by both models since `since_ms` (from that day on), with the
    /// `limit` largest disagreements of `challenger` with the champion now.
    pub async fn shadow_facts(
        &self,
        challenger: &str,
        since_ms: u64,
        limit: u32,
    ) -> Result<ShadowFacts, StoreError> {
        let day = (since_ms - since_ms % DAY_MS) as i64;
        let count = |sql: &'static str, version: bool| {
            let q = sqlx::query(sql).bind(day);
            let q = if version { q.bind(challenger) } else { q };
            async move {
                let n: i64 = q.fetch_one(self.pool()).await?.try_get(0)?;
                Ok::<u64, StoreError>(n as u64)
            }
        };
        let champion_alarmed = count(
            "SELECT COUNT(DISTINCT device_id) FROM score_days WHERE day_ms >= $1 AND alarm = 1",
            false,
        )
        .await?;
        let challenger_alarmed = count(
            "SELECT COUNT(DISTINCT device_id) FROM score_days
             WHERE day_ms >= $1 AND shadow_alarm = 1 AND shadow_version = $2",
            true,
        )
        .await?;
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN shadow_alarm <> risk_alarm THEN 1 ELSE 0 END), 0)
             FROM devices WHERE shadow_version = $1",
        )
        .bind(challenger)
        .fetch_one(self.pool())
        .await?;
        let shadowed: i64 = row.try_get(0)?;
        let disagreeing: i64 = row.try_get(1)?;
        let rows = sqlx::query(
            "SELECT device_id, risk, risk_alarm, shadow_risk, shadow_alarm FROM devices
             WHERE shadow_version = $1 AND shadow_alarm <> risk_alarm
             ORDER BY ABS(risk - shadow_risk) DESC, device_id LIMIT $2",
        )
        .bind(challenger)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let disagreements = rows
            .iter()
            .map(|r| {
                Ok(Disagreement {
                    device_id: r.try_get(0)?,
                    champion_risk: r.try_get::<Option<f64>, _>(1)?.unwrap_or(0.0),
                    champion_alarm: r.try_get::<i64, _>(2)? != 0,
                    challenger_risk: r.try_get::<Option<f64>, _>(3)?.unwrap_or(0.0),
                    challenger_alarm: r.try_get::<Option<i64>, _>(4)?.unwrap_or(0) != 0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ShadowFacts {
            champion_alarmed,
            challenger_alarmed,
            disagreeing: disagreeing as u64,
            shadowed: shadowed as u64,
            disagreements,
        })
    }
}
