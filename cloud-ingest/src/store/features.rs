//! `feature_states`: each device's feature history as of its last committed batch, so a
//! replica or a restarted process picks the device up from one row instead of a month
//! of messages.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{push_placeholders, StoreError, CHUNK};

/// A device's stored feature state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureState {
    /// The snapshot layout and feature schema it was written for.
    pub version: String,
    /// The device's message count it reflects.
    pub msg_count: u64,
    /// The snapshot (`models::history::DeviceHistory::to_snapshot`).
    pub state: String,
}

/// The stored states of `devices` (distinct ids); a device without one is absent.
pub async fn states(
    c: &mut AnyConnection,
    devices: &[&str],
) -> Result<HashMap<String, FeatureState>, StoreError> {
    let mut out = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT device_id, version, msg_count, state FROM feature_states WHERE device_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.insert(
                r.try_get(0)?,
                FeatureState {
                    version: r.try_get(1)?,
                    msg_count: r.try_get::<i64, _>(2)? as u64,
                    state: r.try_get(3)?,
                },
            );
        }
    }
    Ok(out)
}

/// Writes devices' states as the batch leaves them: (device, state), each device once.
/// Many rows per statement: a batch touches hundreds of devices.
pub async fn save(
    c: &mut AnyConnection,
    rows: &[(&str, FeatureState)],
    now_ms: u64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let mut sql = String::from(
            "INSERT INTO feature_states (device_id, version, msg_count, state, updated_ms) VALUES ",
        );
        push_placeholders(&mut sql, chunk.len(), 5);
        sql.push_str(
            " ON CONFLICT (device_id) DO UPDATE SET version = excluded.version,
                msg_count = excluded.msg_count, state = excluded.state,
                updated_ms = excluded.updated_ms",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (device, s) in chunk {
            q = q
                .bind(*device)
                .bind(s.version.as_str())
                .bind(s.msg_count as i64)
                .bind(s.state.as_str())
                .bind(now_ms as i64);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}
