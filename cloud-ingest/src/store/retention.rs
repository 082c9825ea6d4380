//! Pruning: what retention removes, in bounded chunks so no transaction holds the
//! tables for long. Ticket events are never pruned (they are the audit trail).

use std::collections::HashMap;

use sqlx::Row;

use super::{push_placeholders, Store, StoreError, CHUNK};

/// Rows removed from one table in one pass.
pub type Pruned = u64;

impl Store {
    /// Removes up to `limit` messages received before `before_ms` (service clock) that
    /// no exporter still waits for: of every channel, or only heartbeats and events
    /// (`telemetry_only`, when InfluxDB holds them). Each device's highest pruned seq is
    /// kept as its watermark, in the same transaction, so deduplication still knows a
    /// pruned message when it comes again.
    pub async fn prune_messages(
        &self,
        before_ms: u64,
        telemetry_only: bool,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let mut tx = self.begin().await?;
        // A range on the received_ms index; the channel test is only a filter on it.
        let sql = format!(
            "SELECT device_id, epoch, seq FROM messages
             WHERE received_ms < $1 AND export_pending = 0{} LIMIT $2",
            if telemetry_only {
                " AND channel IN ('heartbeat', 'event')"
            } else {
                ""
            }
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before_ms as i64)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut keys: Vec<(String, i64, i64)> = Vec::with_capacity(rows.len());
        for r in &rows {
            keys.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        let mut watermark: HashMap<(&str, i64), i64> = HashMap::new();
        for (d, e, s) in &keys {
            let w = watermark.entry((d.as_str(), *e)).or_insert(*s);
            *w = (*w).max(*s);
        }
        // The watermark is the current epoch's: an earlier epoch's pruned seqs say
        // nothing about the seqs the device uses now.
        for ((device, epoch), seq) in &watermark {
            sqlx::query(
                "UPDATE devices SET pruned_seq = CASE
                    WHEN pruned_seq IS NULL OR pruned_seq < $2 THEN $2 ELSE pruned_seq END
                 WHERE device_id = $1 AND epoch = $3",
            )
            .bind(*device)
            .bind(*seq)
            .bind(*epoch)
            .execute(&mut *tx)
            .await?;
        }
        for chunk in keys.chunks(CHUNK) {
            let mut sql = String::from("DELETE FROM messages WHERE (device_id, epoch, seq) IN (");
            push_placeholders(&mut sql, chunk.len(), 3);
            sql.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (d, e, s) in chunk {
                q = q.bind(d.as_str()).bind(*e).bind(*s);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(keys.len() as u64)
    }

    /// Removes up to `limit` dead letters received before `before_ms`, or beyond the
    /// newest `max_rows`.
    pub async fn prune_dead_letters(
        &self,
        before_ms: u64,
        max_rows: u64,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let done = sqlx::query(
            "DELETE FROM dead_letters WHERE id IN (
                SELECT id FROM dead_letters
                WHERE received_ms < $1
                   OR id <= (SELECT COALESCE(MAX(id), 0) FROM dead_letters) - $2
                ORDER BY id LIMIT $3)",
        )
        .bind(before_ms as i64)
        .bind(max_rows as i64)
        .bind(limit as i64)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Removes finished outbox rows: commands answered or expired and created before
    /// `before_ms` (service clock), webhooks delivered or given up before
    /// `before_wall_ms`; up to `limit` of each.
    pub async fn prune_outboxes(
        &self,
        before_ms: u64,
        before_wall_ms: u64,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let commands = sqlx::query(
            "DELETE FROM commands WHERE command_id IN (
                SELECT command_id FROM commands
                WHERE status IS NOT NULL AND created_ms < $1 LIMIT $2)",
        )
        .bind(before_ms as i64)
        .bind(limit as i64)
        .execute(self.pool())
        .await?;
        let webhooks = sqlx::query(
            "DELETE FROM webhook_outbox WHERE id IN (
                SELECT id FROM webhook_outbox
                WHERE (delivered_ms IS NOT NULL AND delivered_ms < $1)
                   OR (failed = 1 AND next_wall_ms < $1)
                LIMIT $2)",
        )
        .bind(before_wall_ms as i64)
        .bind(limit as i64)
        .execute(self.pool())
        .await?;
        Ok(commands.rows_affected() + webhooks.rows_affected())
    }

    /// Removes up to `limit` days of score history before `before_ms` (device time).
    pub async fn prune_score_days(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Pruned, StoreError> {
        let done = sqlx::query(
            "DELETE FROM score_days WHERE (device_id, day_ms) IN (
                SELECT device_id, day_ms FROM score_days WHERE day_ms < $1 LIMIT $2)",
        )
        .bind(before_ms as i64)
        .bind(limit as i64)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// The bytes the store's data takes, as the database reports it: on SQLite the
    /// pages in use (pruned pages stay in the file, free, and are reused first).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let sql = match self.backend() {
            super::Backend::Sqlite => {
                "SELECT (page_count - freelist_count) * page_size
                 FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
            }
            super::Backend::Postgres => "SELECT pg_database_size(current_database())",
        };
        let n: i64 = sqlx::query(sql).fetch_one(self.pool()).await?.try_get(0)?;
        Ok(n as u64)
    }
}
