//! `dead_letters`: rejected input, kept whole with a stable reason code and the
//! decoder's detail.

use sqlx::{AnyConnection, Row};

use super::{Store, StoreError};

/// A rejected message to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter<'a> {
    /// When it arrived (ingest clock).
    pub received_ms: u64,
    /// Its topic.
    pub topic: &'a str,
    /// Its payload, as received.
    pub payload: &'a [u8],
    /// The reason code (see `protocol::DecodeError::REASONS`).
    pub reason: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

/// Keeps rejected messages with their reasons.
pub async fn insert(c: &mut AnyConnection, letters: &[DeadLetter<'_>]) -> Result<(), StoreError> {
    for l in letters {
        sqlx::query(
            "INSERT INTO dead_letters (received_ms, topic, payload, reason, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(l.received_ms as i64)
        .bind(l.topic)
        .bind(l.payload.to_vec())
        .bind(l.reason)
        .bind(l.detail.as_str())
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Dead letters: (topic, reason, detail), oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT topic, reason, detail FROM dead_letters ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}
