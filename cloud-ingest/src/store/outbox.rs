//! The outboxes, written in the transaction that decides an effect and drained by the
//! effect workers: `commands` (offers to devices, resent until answered) and
//! `webhook_outbox` (ticket announcements to outside systems).

use std::collections::HashMap;

use protocol::command::{AckStatus, OfferKind};
use sqlx::{AnyConnection, Row};

use super::{parse, push_placeholders, Store, StoreError, CHUNK};
use crate::tickets::TicketState;

/// A command to queue for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// Its id (the device answers with it).
    pub command_id: String,
    /// The ticket it carries the offer of.
    pub ticket_id: Option<i64>,
    /// The device.
    pub device_id: String,
    /// The device's command topic.
    pub topic: String,
    /// The encoded command.
    pub payload: String,
    /// When it was queued (ingest clock).
    pub created_ms: u64,
    /// When it lapses (ingest clock).
    pub expires_ms: Option<u64>,
    /// A command that must be answered (or lapse) before this one is sent.
    pub after_command: Option<String>,
}

/// Queues a command (sent by the command worker).
pub async fn queue_command(c: &mut AnyConnection, cmd: &NewCommand) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commands (command_id, ticket_id, device_id, topic, payload, created_ms,
            expires_ms, after_command, next_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)",
    )
    .bind(cmd.command_id.as_str())
    .bind(cmd.ticket_id)
    .bind(cmd.device_id.as_str())
    .bind(cmd.topic.as_str())
    .bind(cmd.payload.as_str())
    .bind(cmd.created_ms as i64)
    .bind(cmd.expires_ms.map(|v| v as i64))
    .bind(cmd.after_command.as_deref())
    .execute(c)
    .await?;
    Ok(())
}

/// A queued command a device answered, with its ticket as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnsweredCommand {
    /// The ticket the command carries, if any: id, state and offer.
    pub ticket: Option<(i64, TicketState, OfferKind)>,
}

/// The commands behind `answers` (device, command id); commands unknown to the store,
/// or queued for another device, are absent.
pub async fn commands_answered(
    c: &mut AnyConnection,
    answers: &[(&str, &str)],
) -> Result<HashMap<(String, String), AnsweredCommand>, StoreError> {
    let mut out = HashMap::new();
    for chunk in answers.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT c.device_id, c.command_id, c.ticket_id, t.state, t.offer_kind
             FROM commands c LEFT JOIN tickets t ON t.id = c.ticket_id WHERE c.command_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, id) in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            let device: String = r.try_get(0)?;
            let id: String = r.try_get(1)?;
            if !chunk.iter().any(|(d, c)| *d == device && *c == id) {
                continue;
            }
            let ticket = match (
                r.try_get::<Option<i64>, _>(2)?,
                r.try_get::<Option<String>, _>(3)?,
                r.try_get::<Option<String>, _>(4)?,
            ) {
                (Some(t), Some(state), Some(kind)) => Some((
                    t,
                    parse(&state)?,
                    OfferKind::from_name(&kind).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown offer kind {kind:?}"))
                    })?,
                )),
                _ => None,
            };
            out.insert((device, id), AnsweredCommand { ticket });
        }
    }
    Ok(out)
}

/// Records a device's answer to a command.
pub async fn record_answer(
    c: &mut AnyConnection,
    device: &str,
    command_id: &str,
    status: AckStatus,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE commands SET status = $3, answered_ms = $4 WHERE command_id = $1 AND device_id = $2",
    )
    .bind(command_id)
    .bind(device)
    .bind(status.as_str())
    .bind(at_ms as i64)
    .execute(c)
    .await?;
    Ok(())
}

/// Marks an unanswered command expired; whether it was still unanswered.
pub async fn expire_command(c: &mut AnyConnection, command_id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE commands SET status = 'expired' WHERE command_id = $1 AND status IS NULL",
    )
    .bind(command_id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stops sending an unanswered command because its question was answered elsewhere
/// (status `withdrawn`). When the device may have it already (it was sent): `Some`,
/// with when the command lapses (`None` if never).
pub async fn withdraw_unanswered(
    c: &mut AnyConnection,
    command_id: &str,
    at_ms: u64,
) -> Result<Option<Option<u64>>, StoreError> {
    let row = sqlx::query(
        "UPDATE commands SET status = 'withdrawn', answered_ms = $2
         WHERE command_id = $1 AND status IS NULL RETURNING attempts, expires_ms",
    )
    .bind(command_id)
    .bind(at_ms as i64)
    .fetch_optional(c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let sent = r.try_get::<i64, _>(0)? > 0;
    let expires = r.try_get::<Option<i64>, _>(1)?.map(|v| v.max(0) as u64);
    Ok(sent.then_some(expires))
}

/// A command due to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCommand {
    /// Its id.
    pub command_id: String,
    /// Its ticket.
    pub ticket_id: Option<i64>,
    /// The topic.
    pub topic: String,
    /// The encoded command.
    pub payload: String,
    /// Sends so far.
    pub attempts: u32,
    /// When it lapses (ingest clock).
    pub expires_ms: Option<u64>,
}

/// A webhook delivery due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWebhook {
    /// Its row.
    pub id: i64,
    /// The endpoint.
    pub url: String,
    /// The JSON body.
    pub body: String,
    /// Attempts so far.
    pub attempts: u32,
}

/// Queues a webhook delivery.
pub async fn queue_webhook(
    c: &mut AnyConnection,
    ticket_id: i64,
    url: &str,
    body: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_outbox (ticket_id, url, body, next_wall_ms) VALUES ($1, $2, $3, 0)",
    )
    .bind(ticket_id)
    .bind(url)
    .bind(body)
    .execute(c)
    .await?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` unanswered commands due by `now` (service clock), oldest
    /// first: each claimed send is counted and its next one scheduled by `next_after`
    /// (given the sends so far) before the caller publishes it, in one transaction that
    /// other replicas skip (PostgreSQL) or wait for (SQLite's single writer), so no two
    /// replicas make the same send. A command queued after another waits until that
    /// one is answered or has lapsed. Commands past their expiry come back unclaimed, for
    /// [`expire_command`].
    pub async fn claim_commands(
        &self,
        now: u64,
        limit: usize,
        next_after: impl Fn(u32) -> u64,
    ) -> Result<Vec<DueCommand>, StoreError> {
        let mut tx = self.begin_claim().await?;
        let sql = format!(
            "SELECT command_id, ticket_id, topic, payload, attempts, expires_ms FROM commands
             WHERE status IS NULL AND next_ms <= $1
               AND (after_command IS NULL OR NOT EXISTS (SELECT 1 FROM commands w
                    WHERE w.command_id = commands.after_command AND w.status IS NULL))
             ORDER BY created_ms LIMIT $2{}",
            self.skip_locked()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now as i64)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in &rows {
            let cmd = DueCommand {
                command_id: r.try_get(0)?,
                ticket_id: r.try_get(1)?,
                topic: r.try_get(2)?,
                payload: r.try_get(3)?,
                attempts: r.try_get::<i64, _>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
                expires_ms: r.try_get::<Option<i64>, _>(5)?.map(|v| v as u64),
            };
            if cmd.expires_ms.is_none_or(|e| now < e) {
                sqlx::query(
                    "UPDATE commands SET attempts = attempts + 1, next_ms = $2 WHERE command_id = $1",
                )
                .bind(cmd.command_id.as_str())
                .bind(now.saturating_add(next_after(cmd.attempts)) as i64)
                .execute(&mut *tx)
                .await?;
            }
            due.push(cmd);
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Gives back a claimed send that could not be made: due again at `now`.
    pub async fn command_unsent(&self, command_id: &str, now: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE commands SET attempts = attempts - 1, next_ms = $2
             WHERE command_id = $1 AND attempts > 0",
        )
        .bind(command_id)
        .bind(now as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Commands: (command_id, device, attempts, status), oldest first.
    pub async fn commands(&self) -> Result<Vec<(String, String, i64, Option<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT command_id, device_id, attempts, status FROM commands ORDER BY created_ms, command_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// Claims up to `limit` undelivered webhooks due by `wall_ms`, oldest first: each
    /// is leased until `lease_until` (its next attempt should this one never report
    /// back), in a transaction other replicas skip, so one replica posts each attempt.
    pub async fn claim_webhooks(
        &self,
        wall_ms: u64,
        lease_until: u64,
        limit: usize,
    ) -> Result<Vec<DueWebhook>, StoreError> {
        let mut tx = self.begin_claim().await?;
        let sql = format!(
            "SELECT id, url, body, attempts FROM webhook_outbox
             WHERE delivered_ms IS NULL AND failed = 0 AND next_wall_ms <= $1 ORDER BY id LIMIT $2{}",
            self.skip_locked()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(wall_ms as i64)
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in &rows {
            let w = DueWebhook {
                id: r.try_get(0)?,
                url: r.try_get(1)?,
                body: r.try_get(2)?,
                attempts: r.try_get::<i64, _>(3)?.clamp(0, i64::from(u32::MAX)) as u32,
            };
            sqlx::query("UPDATE webhook_outbox SET next_wall_ms = $2 WHERE id = $1")
                .bind(w.id)
                .bind(lease_until as i64)
                .execute(&mut *tx)
                .await?;
            due.push(w);
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Records a delivery.
    pub async fn webhook_delivered(
        &self,
        id: i64,
        at_wall_ms: u64,
        attempts: u32,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhook_outbox SET delivered_ms = $2, attempts = $3 WHERE id = $1")
            .bind(id)
            .bind(at_wall_ms as i64)
            .bind(i64::from(attempts))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `next_wall_ms`, or given up.
    pub async fn webhook_failed(
        &self,
        id: i64,
        attempts: u32,
        next_wall_ms: u64,
        give_up: bool,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = $2, next_wall_ms = $3, failed = $4, last_error = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(attempts))
        .bind(next_wall_ms as i64)
        .bind(i64::from(give_up))
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Store {
    /// A ticket's webhook deliveries, queued or done: (url, body), oldest first.
    pub async fn webhooks_of(&self, ticket_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT url, body FROM webhook_outbox WHERE ticket_id = $1 ORDER BY id")
                .bind(ticket_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteSync;

    fn command(id: &str, after: Option<&str>, expires_ms: u64) -> NewCommand {
        NewCommand {
            command_id: id.into(),
            ticket_id: None,
            device_id: "dev-a".into(),
            topic: "fleet/acme/dev-a/cmd".into(),
            payload: "{}".into(),
            created_ms: 1_000,
            expires_ms: Some(expires_ms),
            after_command: after.map(str::to_owned),
        }
    }

    async fn claimed(store: &Store, now: u64) -> Vec<String> {
        let due = store.claim_commands(now, 10, |_| 0).await.unwrap();
        due.into_iter().map(|d| d.command_id).collect()
    }

    /// An offer that supersedes another goes out only once the device has answered the
    /// withdraw of the old one, or the withdraw has lapsed.
    #[tokio::test]
    async fn a_command_queued_after_another_waits_for_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("o.db").display());
        let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
        queue_command(
            &mut store.pool().acquire().await.unwrap(),
            &command("withdraw-T-1", None, 1_000_000),
        )
        .await
        .unwrap();
        queue_command(
            &mut store.pool().acquire().await.unwrap(),
            &command("offer-T-2", Some("withdraw-T-1"), 1_000_000),
        )
        .await
        .unwrap();
        assert_eq!(claimed(&store, 2_000).await, ["withdraw-T-1"]);
        assert_eq!(
            claimed(&store, 3_000).await,
            ["withdraw-T-1"],
            "resent while unanswered; the offer still waits"
        );
        record_answer(
            &mut store.pool().acquire().await.unwrap(),
            "dev-a",
            "withdraw-T-1",
            AckStatus::Done,
            4_000,
        )
        .await
        .unwrap();
        assert_eq!(claimed(&store, 5_000).await, ["offer-T-2"]);

        record_answer(
            &mut store.pool().acquire().await.unwrap(),
            "dev-a",
            "offer-T-2",
            AckStatus::Received,
            5_100,
        )
        .await
        .unwrap();

        // A withdraw that lapses unanswered releases its offer too.
        queue_command(
            &mut store.pool().acquire().await.unwrap(),
            &command("withdraw-T-3", None, 6_000),
        )
        .await
        .unwrap();
        queue_command(
            &mut store.pool().acquire().await.unwrap(),
            &command("offer-T-4", Some("withdraw-T-3"), 1_000_000),
        )
        .await
        .unwrap();
        assert_eq!(claimed(&store, 5_500).await, ["withdraw-T-3"]);
        assert!(
            expire_command(&mut store.pool().acquire().await.unwrap(), "withdraw-T-3")
                .await
                .unwrap()
        );
        assert_eq!(claimed(&store, 7_000).await, ["offer-T-4"]);
    }
}
