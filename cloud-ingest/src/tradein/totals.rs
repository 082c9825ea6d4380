//! The recycling desk's totals for a period: devices received, graded, refurbished and
//! recycled, kilograms of e-waste diverted, and the average quote against the settled
//! price (per currency). Pure, over the trade-ins' milestone times.

use std::collections::BTreeMap;

use serde::Serialize;

use super::routing::Route;

/// A trade-in's milestones, as the totals read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestones {
    /// When the device arrived.
    pub received_ms: Option<u64>,
    /// When it was graded.
    pub graded_ms: Option<u64>,
    /// When its price was settled, with the quote, the price and their currency.
    pub settled: Option<(u64, u64, u64, String)>,
    /// When it was routed, where, and its weight in grams.
    pub routed: Option<(u64, Route, u32)>,
}

/// Quotes against settled prices in one currency.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QuoteVsSettled {
    /// The currency.
    pub currency: String,
    /// Trade-ins settled.
    pub settled: u64,
    /// Mean quote, minor units.
    pub mean_quote_minor: u64,
    /// Mean settled price, minor units.
    pub mean_settled_minor: u64,
    /// Every settled price summed, minor units.
    pub total_settled_minor: u64,
    /// Mean of each settled price over its quote.
    pub mean_ratio: f64,
}

/// A period's totals.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Devices received.
    pub received: u64,
    /// Devices graded.
    pub graded: u64,
    /// Devices routed to refurbishment.
    pub refurbished: u64,
    /// Devices routed to recycling.
    pub recycled: u64,
    /// Kilograms of e-waste diverted (both routes).
    pub ewaste_kg: f64,
    /// Quote against settled price, per currency.
    pub quote_vs_settled: Vec<QuoteVsSettled>,
}

/// The totals of milestones falling in `[from_ms, to_ms)`.
pub fn totals(rows: &[Milestones], from_ms: u64, to_ms: u64) -> Totals {
    let within = |t: u64| (from_ms..to_ms).contains(&t);
    let mut t = Totals {
        received: 0,
        graded: 0,
        refurbished: 0,
        recycled: 0,
        ewaste_kg: 0.0,
        quote_vs_settled: Vec::new(),
    };
    let mut grams = 0u64;
    // currency → (count, quotes, prices, ratio sum)
    let mut money: BTreeMap<&str, (u64, u64, u64, f64)> = BTreeMap::new();
    for r in rows {
        t.received += u64::from(r.received_ms.is_some_and(within));
        t.graded += u64::from(r.graded_ms.is_some_and(within));
        if let Some((at, route, g)) = r.routed {
            if within(at) {
                match route {
                    Route::Refurbish => t.refurbished += 1,
                    Route::Recycle => t.recycled += 1,
                }
                grams += u64::from(g);
            }
        }
        if let Some((at, quote, price, cur)) = &r.settled {
            if within(*at) {
                let m = money.entry(cur.as_str()).or_default();
                m.0 += 1;
                m.1 += quote;
                m.2 += price;
                m.3 += if *quote == 0 {
                    1.0
                } else {
                    *price as f64 / *quote as f64
                };
            }
        }
    }
    t.ewaste_kg = grams as f64 / 1000.0;
    t.quote_vs_settled = money
        .into_iter()
        .map(|(c, (n, q, p, r))| QuoteVsSettled {
            currency: c.to_owned(),
            settled: n,
            mean_quote_minor: q / n,
            mean_settled_minor: p / n,
            total_settled_minor: p,
            mean_ratio: r / n as f64,
        })
        .collect();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_count_in_the_period_they_happened() {
        let m = |rec, gr, set: Option<(u64, u64, u64, &str)>, routed| Milestones {
            received_ms: rec,
            graded_ms: gr,
            settled: set.map(|(a, q, p, c)| (a, q, p, c.to_owned())),
            routed,
        };
        let rows = vec![
            m(
                Some(10),
                Some(20),
                Some((30, 30_000, 30_000, "EUR")),
                Some((40, Route::Refurbish, 190)),
            ),
            m(
                Some(15),
                Some(25),
                Some((35, 20_000, 15_000, "EUR")),
                Some((45, Route::Recycle, 1_250)),
            ),
            m(
                Some(5),
                Some(95),
                Some((99, 10_000, 5_000, "EUR")),
                Some((120, Route::Recycle, 500)),
            ),
            m(Some(50), None, None, None),
            m(Some(60), Some(70), Some((80, 40_000, 40_000, "USD")), None),
        ];
        let t = totals(&rows, 10, 100);
        assert_eq!(
            (t.received, t.graded, t.refurbished, t.recycled),
            (4, 4, 1, 1)
        );
        assert!((t.ewaste_kg - 1.44).abs() < 1e-9);
        assert_eq!(t.quote_vs_settled.len(), 2);
        let eur = &t.quote_vs_settled[0];
        assert_eq!((eur.currency.as_str(), eur.settled), ("EUR", 3));
        assert_eq!(
            (eur.mean_quote_minor, eur.mean_settled_minor),
            (20_000, 16_666)
        );
        assert!((eur.mean_ratio - (1.0 + 0.75 + 0.5) / 3.0).abs() < 1e-9);
        assert_eq!(t.quote_vs_settled[1].mean_ratio, 1.0);
        let none = totals(&rows, 1_000, 2_000);
        assert_eq!((none.received, none.ewaste_kg), (0, 0.0));
        assert!(none.quote_vs_settled.is_empty());
    }
}
