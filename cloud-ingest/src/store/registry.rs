//! `devices`, the commercial half: who owns a device and on what terms, as the
//! operator's sales records give them.

use std::collections::HashMap;

use protocol::command::Money;
use protocol::{DeviceId, TenantId};
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
                    // Written by hand past `register`, a bad code means no known currency.
                    currency: r
                        .try_get::<Option<String>, _>(5)?
                        .filter(|c| Money::is_currency(c)),
                },
            );
        }
    }
    Ok(out)
}

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The currency is not an ISO 4217 code.
    #[error("currency {0:?} is not an ISO 4217 code (three upper-case letters, e.g. EUR)")]
    Currency(String),
    /// A number beyond what the store keeps.
    #[error("{field} {value} is too large")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The warranty ends before the purchase.
    #[error("the warranty ends ({until_ms}) before the purchase ({purchased_ms})")]
    WarrantyBeforePurchase {
        /// Purchase time, ms.
        purchased_ms: u64,
        /// Warranty end, ms.
        until_ms: u64,
    },
    /// The customer id is empty or longer than 128 bytes.
    #[error("customer id {0:?} must be 1 to 128 bytes")]
    Customer(String),
}

impl Registration {
    /// Checks a registration from the operator's records before it is stored.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if let Some(c) = &self.currency {
            if !Money::is_currency(c) {
                return Err(RegistryError::Currency(c.clone()));
            }
        }
        for (field, v) in [
            ("purchased_ms", self.purchased_ms),
            ("warranty_until_ms", self.warranty_until_ms),
            ("price_minor", self.price_minor),
        ] {
            if let Some(value) = v.filter(|&v| i64::try_from(v).is_err()) {
                return Err(RegistryError::TooLarge { field, value });
            }
        }
        if let (Some(p), Some(w)) = (self.purchased_ms, self.warranty_until_ms) {
            if w < p {
                return Err(RegistryError::WarrantyBeforePurchase {
                    purchased_ms: p,
                    until_ms: w,
                });
            }
        }
        if let Some(c) = &self.customer_id {
            if c.is_empty() || c.len() > 128 {
                return Err(RegistryError::Customer(c.clone()));
            }
        }
        Ok(())
    }
}

impl Store {
    /// Registers (or updates) a device's owner and purchase terms.
    pub async fn register(
        &self,
        device: &str,
        tenant: &str,
        reg: &Registration,
    ) -> Result<(), StoreError> {
        let refuse = |e: String| StoreError::Invalid(format!("registration of {device:?}: {e}"));
        DeviceId::new(device).map_err(|e| refuse(format!("device id: {e}")))?;
        TenantId::new(tenant).map_err(|e| refuse(format!("tenant: {e}")))?;
        reg.validate().map_err(|e| refuse(e.to_string()))?;
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

impl Store {
    /// One device's registration; `None` when it was never registered.
    pub async fn registration(&self, device: &str) -> Result<Option<Registration>, StoreError> {
        let mut tx = self.begin().await?;
        let mut regs = registrations(&mut tx, &[device]).await?;
        tx.commit().await?;
        Ok(regs.remove(device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteSync;

    #[tokio::test]
    async fn bad_registrations_are_refused_and_a_bad_stored_currency_reads_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
        let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
        let good = Registration {
            customer_id: Some("cust-1".into()),
            purchased_ms: Some(1_000),
            warranty_until_ms: Some(2_000),
            price_minor: Some(49_900),
            currency: Some("EUR".into()),
        };
        let bad = [
            (
                "dev-1",
                "acme",
                Registration {
                    currency: Some("euro".into()),
                    ..good.clone()
                },
                "ISO 4217",
            ),
            (
                "dev-1",
                "acme",
                Registration {
                    warranty_until_ms: Some(10),
                    ..good.clone()
                },
                "before the purchase",
            ),
            (
                "dev-1",
                "acme",
                Registration {
                    price_minor: Some(u64::MAX),
                    ..good.clone()
                },
                "too large",
            ),
            (
                "dev-1",
                "acme",
                Registration {
                    customer_id: Some(String::new()),
                    ..good.clone()
                },
                "customer id",
            ),
            ("dev/1", "acme", good.clone(), "device id"),
            ("dev-1", "ac me", good.clone(), "tenant"),
        ];
        for (device, tenant, reg, says) in bad {
            let e = store.register(device, tenant, &reg).await.unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        let mut c = store.pool().acquire().await.unwrap();
        assert!(
            registrations(&mut c, &["dev-1"]).await.unwrap().is_empty(),
            "nothing written"
        );
        drop(c); // SQLite's pool has one connection

        store.register("dev-1", "acme", &good).await.unwrap();
        let mut c = store.pool().acquire().await.unwrap();
        sqlx::query("UPDATE devices SET currency = 'euro' WHERE device_id = 'dev-1'")
            .execute(&mut *c)
            .await
            .unwrap();
        let read = registrations(&mut c, &["dev-1"]).await.unwrap();
        assert_eq!(
            read["dev-1"],
            Registration {
                currency: None,
                ..good
            }
        );
    }
}
