//! `messages`: every accepted device message, keyed on `(device, epoch, seq)` (the dedup
//! record), the source a device's feature state is rebuilt from, and the InfluxDB
//! exporter's buffer (`export_pending`).

use std::collections::HashSet;

use sqlx::{AnyConnection, Row};

use super::{push_placeholders, Store, StoreError, CHUNK};

/// An accepted device message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage<'a> {
    /// The device.
    pub device_id: &'a str,
    /// Its seq.
    pub seq: u64,
    /// Its epoch (0 for schema 1).
    pub epoch: u32,
    /// Its tenant.
    pub tenant: &'a str,
    /// Its channel.
    pub channel: &'a str,
    /// Device time.
    pub ts_ms: u64,
    /// Ingest time.
    pub received_ms: u64,
    /// The payload as received.
    pub payload: &'a str,
    /// Whether the telemetry exporter still has to send it.
    pub export_pending: bool,
    /// Its place among the device's messages as stored (1 for the first).
    pub arrival: u64,
}

/// A `(device, epoch, seq)` key.
pub type MessageKey = (String, u32, u64);

/// Seqs of one device and epoch that the store may hold: (device, epoch, lowest seq,
/// highest seq).
pub type SeqRange<'a> = (&'a str, u32, u64, u64);

/// The keys the store holds within `ranges`. One
/// statement per [`CHUNK`] ranges, each an index range scan on both databases (a row-value
/// `IN` list would make SQLite scan the whole table).
pub async fn known(
    c: &mut AnyConnection,
    ranges: &[SeqRange<'_>],
) -> Result<HashSet<MessageKey>, StoreError> {
    use std::fmt::Write;
    let mut out = HashSet::new();
    for chunk in ranges.chunks(CHUNK) {
        let mut sql = String::from("SELECT device_id, epoch, seq FROM messages WHERE ");
        for i in 0..chunk.len() {
            let (d, e, lo, hi) = (4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4);
            let or = if i == 0 { "" } else { " OR " };
            let _ = write!(
                sql,
                "{or}(device_id = ${d} AND epoch = ${e} AND seq BETWEEN ${lo} AND ${hi})"
            );
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (device, epoch, lo, hi) in chunk {
            q = q
                .bind(device.to_string())
                .bind(i64::from(*epoch))
                .bind(*lo as i64)
                .bind(*hi as i64);
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(key(&r, 0)?);
        }
    }
    Ok(out)
}

/// The `(device_id, epoch, seq)` key in a row's columns from `at` on.
fn key(r: &sqlx::any::AnyRow, at: usize) -> Result<MessageKey, StoreError> {
    let epoch = r.try_get::<i64, _>(at + 1)?;
    Ok((
        r.try_get(at)?,
        u32::try_from(epoch).map_err(|_| StoreError::Corrupt(format!("epoch {epoch}")))?,
        r.try_get::<i64, _>(at + 2)? as u64,
    ))
}

/// The boot ids of stored messages (schema 1 tells a reused seq from a repeat by them):
/// each key's, read from its payload; keys not stored are absent.
pub async fn boot_ids(
    c: &mut AnyConnection,
    keys: &[MessageKey],
) -> Result<std::collections::HashMap<MessageKey, String>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Boot {
        boot_id: String,
    }
    let mut out = std::collections::HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT device_id, epoch, seq, payload FROM messages WHERE (device_id, epoch, seq) IN (",
        );
        push_placeholders(&mut sql, chunk.len(), 3);
        sql.push(')');
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (d, e, s) in chunk {
            q = q.bind(d.clone()).bind(i64::from(*e)).bind(*s as i64);
        }
        for r in q.fetch_all(&mut *c).await? {
            let payload: String = r.try_get(3)?;
            let boot: Boot = serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("a stored message: {e}")))?;
            out.insert(key(&r, 0)?, boot.boot_id);
        }
    }
    Ok(out)
}

/// Records many messages in one statement per [`CHUNK`], skipping those already
/// stored; the keys of the ones that were new.
pub async fn insert(
    c: &mut AnyConnection,
    rows: &[NewMessage<'_>],
) -> Result<HashSet<MessageKey>, StoreError> {
    let mut fresh = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO messages (device_id, epoch, seq, tenant, channel, ts_ms, received_ms,
                payload, export_pending, arrival) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 10);
        sql.push_str(
            " ON CONFLICT (device_id, epoch, seq) DO NOTHING RETURNING device_id, epoch, seq",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for m in chunk {
            q = q
                .bind(m.device_id.to_owned())
                .bind(i64::from(m.epoch))
                .bind(m.seq as i64)
                .bind(m.tenant.to_owned())
                .bind(m.channel.to_owned())
                .bind(m.ts_ms as i64)
                .bind(m.received_ms as i64)
                .bind(m.payload.to_owned())
                .bind(i64::from(m.export_pending))
                .bind(m.arrival as i64);
        }
        for r in q.fetch_all(&mut *c).await? {
            fresh.insert(key(&r, 0)?);
        }
    }
    Ok(fresh)
}

/// A stored message: what a feature rebuild replays.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Device time.
    pub ts_ms: u64,
    /// Its seq.
    pub seq: u64,
    /// The channel name.
    pub channel: String,
    /// The payload as received.
    pub payload: String,
}

/// A device's messages from `since_ms` (device time) on, oldest first.
pub async fn since(
    c: &mut AnyConnection,
    device: &str,
    since_ms: u64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT ts_ms, seq, channel, payload FROM messages WHERE device_id = $1 AND ts_ms >= $2
         ORDER BY ts_ms, seq",
    )
    .bind(device)
    .bind(since_ms as i64)
    .fetch_all(c)
    .await?;
    rows.iter().map(stored_message).collect()
}

/// A device's messages that arrived after its `arrival`-th, in arrival order: what a
/// stored feature state written then has not seen.
pub async fn arrived_after(
    c: &mut AnyConnection,
    device: &str,
    arrival: u64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT ts_ms, seq, channel, payload FROM messages WHERE device_id = $1 AND arrival > $2
         ORDER BY arrival",
    )
    .bind(device)
    .bind(arrival as i64)
    .fetch_all(c)
    .await?;
    rows.iter().map(stored_message).collect()
}

/// A row of `SELECT ts_ms, seq, channel, payload`.
fn stored_message(r: &sqlx::any::AnyRow) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        ts_ms: r.try_get::<i64, _>(0)? as u64,
        seq: r.try_get::<i64, _>(1)? as u64,
        channel: r.try_get(2)?,
        payload: r.try_get(3)?,
    })
}

/// A device's newest `n` stored heartbeats and events, oldest first.
pub async fn recent_telemetry(
    c: &mut AnyConnection,
    device: &str,
    n: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    telemetry_between(c, device, (0, i64::MAX as u64), n).await
}

/// A device's newest `limit` heartbeats and events with device time in
/// `[from_ms, to_ms]`, oldest first.
pub async fn telemetry_between(
    c: &mut AnyConnection,
    device: &str,
    (from_ms, to_ms): (u64, u64),
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT ts_ms, seq, channel, payload FROM messages
         WHERE device_id = $1 AND ts_ms >= $2 AND ts_ms <= $3
            AND channel IN ('heartbeat', 'event')
         ORDER BY ts_ms DESC, seq DESC LIMIT $4",
    )
    .bind(device)
    .bind(from_ms as i64)
    .bind(to_ms as i64)
    .bind(limit as i64)
    .fetch_all(c)
    .await?;
    let mut out = rows
        .iter()
        .map(stored_message)
        .collect::<Result<Vec<_>, StoreError>>()?;
    out.reverse();
    Ok(out)
}

/// A message waiting for the telemetry exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingExport {
    /// The device.
    pub device_id: String,
    /// Its epoch.
    pub epoch: u32,
    /// Its seq.
    pub seq: u64,
    /// Its tenant.
    pub tenant: String,
    /// The channel name.
    pub channel: String,
    /// The payload as received.
    pub payload: String,
}

impl Store {
    /// Claims up to `limit` messages waiting for the exporter (or whose claim lapsed
    /// before `wall_ms`) until `lease_until`, in one statement other replicas skip, so
    /// each is written to InfluxDB by one exporter.
    pub async fn claim_exports(
        &self,
        wall_ms: u64,
        lease_until: u64,
        limit: usize,
    ) -> Result<Vec<PendingExport>, StoreError> {
        let sql = format!(
            "UPDATE messages SET export_pending = $1 WHERE (device_id, epoch, seq) IN (
                SELECT device_id, epoch, seq FROM messages
                WHERE export_pending <> 0 AND export_pending < $2 LIMIT $3{})
             RETURNING device_id, epoch, seq, tenant, channel, payload",
            self.skip_locked()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until as i64)
            .bind(wall_ms as i64)
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let (device_id, epoch, seq) = key(r, 0)?;
                Ok(PendingExport {
                    device_id,
                    epoch,
                    seq,
                    tenant: r.try_get(3)?,
                    channel: r.try_get(4)?,
                    payload: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// How many messages wait for the exporter.
    pub async fn export_backlog(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM messages WHERE export_pending <> 0")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    /// Clears the exporter's mark on messages it wrote, in one transaction.
    pub async fn mark_exported(&self, keys: &[MessageKey]) -> Result<(), StoreError> {
        self.set_export_mark(keys, 0).await
    }

    /// Gives back claimed messages an export could not write: waiting again.
    pub async fn release_exports(&self, keys: &[MessageKey]) -> Result<(), StoreError> {
        self.set_export_mark(keys, 1).await
    }

    async fn set_export_mark(&self, keys: &[MessageKey], mark: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for (device, epoch, seq) in keys {
            sqlx::query(
                "UPDATE messages SET export_pending = $4
                 WHERE device_id = $1 AND epoch = $2 AND seq = $3",
            )
            .bind(device)
            .bind(i64::from(*epoch))
            .bind(*seq as i64)
            .bind(mark)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Accepted messages in all.
    pub async fn message_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM messages")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    /// Every accepted (device, seq), sorted (a device that restarted its count has a
    /// seq once per epoch that used it).
    pub async fn message_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query("SELECT device_id, seq FROM messages ORDER BY device_id, seq")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? as u64)))
            .collect()
    }
}
