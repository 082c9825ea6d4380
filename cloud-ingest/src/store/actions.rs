//! `action_items`: added after their checks, moved at the version they were seen at,
//! every change in the audit log.

use sqlx::Row;

use super::users::{audit, AuditEntry};
use super::{parse, Store, StoreError};
use crate::report::actions::{ActionStatus, CheckedAction};

/// An action item as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ActionItem {
    /// Its id.
    pub id: i64,
    /// The problem it addresses.
    pub problem: String,
    /// Who owns it.
    pub owner: String,
    /// When it is due, ms.
    pub due_ms: i64,
    /// The measure that says whether it worked.
    pub kpi: String,
    /// The KPI's target.
    pub target: String,
    /// Where it stands.
    pub status: ActionStatus,
    /// Where it was raised.
    pub source: String,
    /// The latest note.
    pub note: Option<String>,
    /// When it was raised, ms.
    pub created_ms: i64,
    /// Who raised it.
    pub created_by: String,
    /// When it last changed, ms.
    pub updated_ms: i64,
    /// When it was done or dropped, ms.
    pub done_ms: Option<i64>,
    /// Bumped by every change.
    pub version: i64,
    /// The report figure that measures it, if named.
    pub measure: Option<String>,
}

const COLUMNS: &str = "SELECT id, problem, owner, due_ms, kpi, target, status, source, note,
    created_ms, created_by, updated_ms, done_ms, version, measure FROM action_items";

fn item(r: &sqlx::any::AnyRow) -> Result<ActionItem, StoreError> {
    Ok(ActionItem {
        id: r.try_get(0)?,
        problem: r.try_get(1)?,
        owner: r.try_get(2)?,
        due_ms: r.try_get(3)?,
        kpi: r.try_get(4)?,
        target: r.try_get(5)?,
        status: parse(&r.try_get::<String, _>(6)?)?,
        source: r.try_get(7)?,
        note: r.try_get(8)?,
        created_ms: r.try_get(9)?,
        created_by: r.try_get(10)?,
        updated_ms: r.try_get(11)?,
        done_ms: r.try_get(12)?,
        version: r.try_get(13)?,
        measure: r.try_get(14)?,
    })
}

impl Store {
    /// Adds a checked action item (by `by`, audited).
    pub async fn add_action(
        &self,
        a: &CheckedAction,
        by: &str,
        now_ms: u64,
    ) -> Result<ActionItem, StoreError> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO action_items (problem, owner, due_ms, kpi, target, status, source,
                created_ms, created_by, updated_ms, measure)
             VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $7, $9) RETURNING id",
        )
        .bind(a.problem.as_str())
        .bind(a.owner.as_str())
        .bind(a.due_ms as i64)
        .bind(a.kpi.as_str())
        .bind(a.target.as_str())
        .bind(a.source.as_str())
        .bind(now_ms as i64)
        .bind(by)
        .bind(a.measure.as_deref())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "action_item.add".into(),
                subject: format!("action_item:{id}"),
                before: None,
                after: Some(format!("{} (owner {}, {})", a.problem, a.owner, a.source)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(self.action(id).await?.expect("just added"))
    }

    /// One action item.
    pub async fn action(&self, id: i64) -> Result<Option<ActionItem>, StoreError> {
        let sql = format!("{COLUMNS} WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(item).transpose()
    }

    /// Action items by due time; with `status`, only those.
    pub async fn actions(
        &self,
        status: Option<ActionStatus>,
    ) -> Result<Vec<ActionItem>, StoreError> {
        let sql = format!("{COLUMNS} WHERE $1 IS NULL OR status = $1 ORDER BY due_ms, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.map(ActionStatus::as_str))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(item).collect()
    }

    /// Makes move `m` (checked against the item as read) at its version (by `by`,
    /// audited). A stale version is a conflict.
    pub async fn move_action(
        &self,
        m: &ActionMoved<'_>,
        by: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let ActionMoved {
            id,
            from,
            to,
            note,
            version,
        } = *m;
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE action_items SET status = $2, note = COALESCE($3, note), updated_ms = $4,
                done_ms = CASE WHEN $5 = 1 THEN $4 ELSE NULL END, version = version + 1
             WHERE id = $1 AND version = $6",
        )
        .bind(id)
        .bind(to.as_str())
        .bind(note)
        .bind(now_ms as i64)
        .bind(i64::from(to.is_final()))
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "action item {id} is not at version {version}: it changed meanwhile; reload it"
            )));
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: now_ms as i64,
                user_name: by.to_owned(),
                action: "action_item.move".into(),
                subject: format!("action_item:{id}"),
                before: Some(from.as_str().to_owned()),
                after: Some(to.as_str().to_owned()),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A move of an action item, as decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionMoved<'a> {
    /// The item.
    pub id: i64,
    /// Where it stood when read.
    pub from: ActionStatus,
    /// Where it goes.
    pub to: ActionStatus,
    /// What was done, or why.
    pub note: Option<&'a str>,
    /// The version it was decided on.
    pub version: i64,
}
