//! `devices`, the commercial half: who owns a device and on what terms, as the
//! operator's sales records give them.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{push_placeholders, Store, StoreError, CHUNK};

/// The registry's commercial facts about a device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    /// The owner.
    pub customer_id: Option<String>,
    /// Purchase time, ms.
    pub purchased_ms: Option<u64>,
    /// End of warranty, ms.
    pub warranty_until_ms: Option<u64>,
    /// Price, minor units.
    pub price_minor: Option<u64>,
    /// Currency of the price.
    pub currency: Option<String>,
}

/// The registrations of `devices` (distinct ids); a device never registered is absent.
pub async fn registrations(
    c: &mut AnyConnection,
    devices: &[&str],
) -> Result<HashMap<String, Registration>, StoreError> {
    let mut out = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT device_id, customer_id, purchased_ms, warranty_until_ms, price_minor, currency
             FROM devices WHERE device_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            let opt = |i| r.try_get::<Option<i64>, _>(i).map(|v| v.map(|v| v as u64));
            out.insert(
                r.try_get(0)?,
                Registration {
                    customer_id: r.try_get(1)?,
                    purchased_ms: opt(2)?,
                    warranty_until_ms: opt(3)?,
                    price_minor: opt(4)?,
                    currency: r.try_get(5)?,
                },
            );
        }
    }
    Ok(out)
}

impl Store {
    /// Registers (or updates) a device's owner and purchase terms.
    pub async fn register(
        &self,
        device: &str,
        tenant: &str,
        reg: &Registration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (device_id, tenant, first_seen_ms, last_seen_ms, min_seq, max_seq,
                msg_count, customer_id, purchased_ms, warranty_until_ms, price_minor, currency)
             VALUES ($1, $2, 0, 0, 0, 0, 0, $3, $4, $5, $6, $7)
             ON CONFLICT (device_id) DO UPDATE SET customer_id = excluded.customer_id,
                purchased_ms = excluded.purchased_ms, warranty_until_ms = excluded.warranty_until_ms,
                price_minor = excluded.price_minor, currency = excluded.currency",
        )
        .bind(device)
        .bind(tenant)
        .bind(reg.customer_id.as_deref())
        .bind(reg.purchased_ms.map(|v| v as i64))
        .bind(reg.warranty_until_ms.map(|v| v as i64))
        .bind(reg.price_minor.map(|v| v as i64))
        .bind(reg.currency.as_deref())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
