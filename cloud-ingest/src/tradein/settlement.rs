//! Settlement: the final price, the quote less the deductions the configured grade rules
//! give, with the reason whenever it differs from the quote. Money is integer minor
//! units with its currency. Pure.

use protocol::command::Money;
use serde::{Deserialize, Serialize};

use super::grading::{BenchGrade, Cosmetic, Functional};

/// What a deduction applies to: every condition given must hold (at least one is given).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defect {
    /// The functional grade is worse than this.
    pub functional_worse_than: Option<Functional>,
    /// The cosmetic grade is worse than this.
    pub cosmetic_worse_than: Option<Cosmetic>,
    /// The bench battery health is this many points or more below the telemetry the quote
    /// was made on (the quote already priced what telemetry showed).
    pub battery_below_quote_by: Option<u8>,
    /// The activation lock is on.
    pub activation_lock_on: Option<bool>,
}

impl Defect {
    fn holds(&self, g: &BenchGrade, quoted_soh: Option<f64>) -> bool {
        self.functional_worse_than.is_none_or(|f| g.functional > f)
            && self.cosmetic_worse_than.is_none_or(|c| g.cosmetic > c)
            && self.battery_below_quote_by.is_none_or(|pts| {
                matches!((g.battery_pct, quoted_soh),
                    (Some(b), Some(q)) if q - f64::from(b) >= f64::from(pts))
            })
            && self
                .activation_lock_on
                .is_none_or(|on| on != g.activation_lock_off)
    }

    fn is_empty(&self) -> bool {
        *self == Defect::default()
    }
}

/// A deduction from the quote: a share of it when the defect holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deduction {
    /// What it is for, in words the customer reads ("cosmetic grade C or worse").
    pub name: String,
    /// When it applies.
    pub when: Defect,
    /// How much of the quote it takes, %.
    pub percent: u8,
}

impl Deduction {
    /// Checks the rule can apply and takes 1–100 %.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a settlement rule needs a name (the reason the customer reads)".into());
        }
        if self.when.is_empty() {
            return Err(format!("settlement rule {:?} has no condition", self.name));
        }
        if !(1..=100).contains(&self.percent) {
            return Err(format!(
                "settlement rule {:?}: percent = {} must be 1 to 100",
                self.name, self.percent
            ));
        }
        Ok(())
    }
}

/// A deduction that applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Applied {
    /// Its name.
    pub name: String,
    /// Its share, %.
    pub percent: u8,
}

/// The settled price and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settlement {
    /// The quote, minor units.
    pub quote_minor: u64,
    /// The final price, minor units.
    pub final_minor: u64,
    /// Their currency.
    pub currency: String,
    /// The rules that took something off, in rule order.
    pub applied: Vec<Applied>,
    /// Why the price differs from the quote; none when it does not.
    pub reason: Option<String>,
    /// Whether the recycler set the price by hand (with the reason).
    pub by_hand: bool,
}

impl Settlement {
    /// Whether the customer must agree: the price is below the quote.
    pub fn needs_consent(&self) -> bool {
        self.final_minor < self.quote_minor
    }

    /// Final over quote (1 when there was no quote to speak of).
    pub fn ratio(&self) -> f64 {
        if self.quote_minor == 0 {
            1.0
        } else {
            self.final_minor as f64 / self.quote_minor as f64
        }
    }
}

/// Why a price is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// Another currency than the quote's.
    #[error("the price is in {given} but the quote is in {quote}: settle in the quote's currency")]
    Currency {
        /// The price's.
        given: String,
        /// The quote's.
        quote: String,
    },
    /// Not an ISO 4217 code.
    #[error("currency {0:?} is not an ISO 4217 code (three upper-case letters, e.g. EUR)")]
    NotACurrency(String),
    /// A price by hand without saying why.
    #[error("a price set by hand ({0}) differs from the rules' price: give the reason")]
    NoReason(String),
    /// More than the store keeps.
    #[error("price {0} minor units is too large")]
    TooLarge(u64),
}

/// The price the rules give for `g`: the quote less the deductions that apply (their
/// percentages add up, at most 100), rounded down to whole currency units.
pub fn settle(
    quote: &Money,
    g: &BenchGrade,
    quoted_soh: Option<f64>,
    rules: &[Deduction],
) -> Settlement {
    let applied: Vec<Applied> = rules
        .iter()
        .filter(|r| r.when.holds(g, quoted_soh))
        .map(|r| Applied {
            name: r.name.clone(),
            percent: r.percent,
        })
        .collect();
    let off: u64 = applied
        .iter()
        .map(|a| u64::from(a.percent))
        .sum::<u64>()
        .min(100);
    let final_minor = if off == 0 {
        quote.amount_minor
    } else {
        quote.amount_minor * (100 - off) / 100 / 100 * 100
    };
    let reason = (final_minor != quote.amount_minor).then(|| {
        applied
            .iter()
            .map(|a| format!("{} (−{} %)", a.name, a.percent))
            .collect::<Vec<_>>()
            .join("; ")
    });
    Settlement {
        quote_minor: quote.amount_minor,
        final_minor,
        currency: quote.currency.clone(),
        applied,
        reason,
        by_hand: false,
    }
}

/// The rules' settlement with a price set by hand: same currency as the quote, and a
/// reason whenever it differs from the rules' price.
pub fn by_hand(
    ruled: Settlement,
    price: &Money,
    reason: Option<&str>,
) -> Result<Settlement, PriceError> {
    if !Money::is_currency(&price.currency) {
        return Err(PriceError::NotACurrency(price.currency.clone()));
    }
    if price.currency != ruled.currency {
        return Err(PriceError::Currency {
            given: price.currency.clone(),
            quote: ruled.currency,
        });
    }
    if i64::try_from(price.amount_minor).is_err() {
        return Err(PriceError::TooLarge(price.amount_minor));
    }
    if price.amount_minor == ruled.final_minor {
        return Ok(ruled);
    }
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| PriceError::NoReason(format_money(price.amount_minor, &price.currency)))?;
    Ok(Settlement {
        final_minor: price.amount_minor,
        reason: (price.amount_minor != ruled.quote_minor).then(|| reason.to_owned()),
        by_hand: true,
        ..ruled
    })
}

/// An amount for people: "EUR 245.00".
pub fn format_money(minor: u64, currency: &str) -> String {
    format!("{currency} {}.{:02}", minor / 100, minor % 100)
}

/// The default deductions (see docs/desk.md, "Settlement").
pub fn default_deductions() -> Vec<Deduction> {
    let f = |n| Some(Functional::new(n).expect("a grade"));
    let d = |name: &str, when, percent| Deduction {
        name: name.into(),
        when,
        percent,
    };
    vec![
        d(
            "minor functional faults (grade 1 or worse)",
            Defect {
                functional_worse_than: f(0),
                ..Defect::default()
            },
            15,
        ),
        d(
            "key functions failing (grade 3 or worse)",
            Defect {
                functional_worse_than: f(2),
                ..Defect::default()
            },
            55,
        ),
        d(
            "moderate wear (cosmetic C or worse)",
            Defect {
                cosmetic_worse_than: Some(Cosmetic::B),
                ..Defect::default()
            },
            10,
        ),
        d(
            "heavy wear or damage (cosmetic D or worse)",
            Defect {
                cosmetic_worse_than: Some(Cosmetic::C),
                ..Defect::default()
            },
            15,
        ),
        d(
            "battery 10 points or more below what telemetry showed",
            Defect {
                battery_below_quote_by: Some(10),
                ..Defect::default()
            },
            10,
        ),
        d(
            "activation lock on",
            Defect {
                activation_lock_on: Some(true),
                ..Defect::default()
            },
            100,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: u64) -> Money {
        Money {
            amount_minor: minor,
            currency: "EUR".into(),
        }
    }

    fn g(f: u8, c: Cosmetic, b: Option<u8>, lock_off: bool) -> BenchGrade {
        BenchGrade {
            functional: Functional::new(f).unwrap(),
            cosmetic: c,
            battery_pct: b,
            activation_lock_off: lock_off,
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn the_default_rules_take_their_shares_off_the_quote() {
        use Cosmetic::*;
        let rules = default_deductions();
        // (grade, battery, telemetry soh at quote, lock off) → final of a 300.00 quote
        let table: &[(u8, Cosmetic, Option<u8>, Option<f64>, bool, u64, usize)] = &[
            (0, A, Some(90), Some(91.0), true, 30_000, 0),
            (0, B, Some(90), Some(91.0), true, 30_000, 0),
            (0, C, Some(90), Some(91.0), true, 27_000, 1),
            (0, D, Some(90), Some(91.0), true, 22_500, 2),
            (1, A, Some(90), Some(91.0), true, 25_500, 1),
            (3, E, Some(90), Some(91.0), true, 1_500, 4),
            (0, A, Some(80), Some(91.0), true, 27_000, 1),
            (0, A, Some(82), Some(91.0), true, 30_000, 0),
            (0, A, None, None, true, 30_000, 0),
            (0, A, Some(70), None, true, 30_000, 0),
            (0, A, Some(90), Some(91.0), false, 0, 1),
            (9, E, Some(10), Some(91.0), false, 0, 6),
        ];
        for &(f, c, b, soh, lock, want, n) in table {
            let s = settle(&eur(30_000), &g(f, c, b, lock), soh, &rules);
            assert_eq!(s.final_minor, want, "{f}{c} {b:?} {soh:?} {lock}");
            assert_eq!(s.applied.len(), n, "{f}{c} {b:?}");
            assert_eq!(s.reason.is_some(), want != 30_000);
            assert_eq!(s.needs_consent(), want < 30_000);
        }
        let s = settle(&eur(30_000), &g(1, D, Some(90), true), Some(90.0), &rules);
        assert_eq!(
            s.reason.as_deref(),
            Some(
                "minor functional faults (grade 1 or worse) (−15 %); moderate wear (cosmetic C or worse) (−10 %); heavy wear or damage (cosmetic D or worse) (−15 %)"
            )
        );
        // Rounded down to whole units.
        assert_eq!(
            settle(&eur(24_950), &g(1, A, None, true), None, &rules).final_minor,
            21_200
        );
        assert!((s.ratio() - 0.6).abs() < 1e-9);
    }

    #[test]
    fn a_price_by_hand_keeps_the_currency_and_says_why() {
        let ruled = settle(
            &eur(30_000),
            &g(0, Cosmetic::C, Some(90), true),
            None,
            &default_deductions(),
        );
        assert_eq!(ruled.final_minor, 27_000);
        let usd = Money {
            amount_minor: 25_000,
            currency: "USD".into(),
        };
        assert!(matches!(
            by_hand(ruled.clone(), &usd, Some("x")),
            Err(PriceError::Currency { .. })
        ));
        let bad = Money {
            amount_minor: 1,
            currency: "eur".into(),
        };
        assert!(matches!(
            by_hand(ruled.clone(), &bad, Some("x")),
            Err(PriceError::NotACurrency(_))
        ));
        assert_eq!(
            by_hand(ruled.clone(), &eur(25_000), Some("  "))
                .unwrap_err()
                .to_string(),
            "a price set by hand (EUR 250.00) differs from the rules' price: give the reason"
        );
        assert!(matches!(
            by_hand(ruled.clone(), &eur(u64::MAX), Some("x")),
            Err(PriceError::TooLarge(_))
        ));
        let same = by_hand(ruled.clone(), &eur(27_000), None).unwrap();
        assert_eq!(same, ruled);
        let hand = by_hand(ruled.clone(), &eur(25_000), Some("charger missing")).unwrap();
        assert!(hand.by_hand);
        assert_eq!(hand.reason.as_deref(), Some("charger missing"));
        assert_eq!(hand.final_minor, 25_000);
        let back_to_quote = by_hand(ruled, &eur(30_000), Some("goodwill")).unwrap();
        assert_eq!(
            back_to_quote.reason, None,
            "no reason shown when it is the quote"
        );
        assert!(!back_to_quote.needs_consent());
    }

    #[test]
    fn rules_without_a_condition_or_share_are_refused() {
        let mut r = default_deductions().remove(0);
        assert!(r.validate().is_ok());
        r.percent = 0;
        assert!(r.validate().unwrap_err().contains("1 to 100"));
        r.percent = 10;
        r.when = Defect::default();
        assert!(r.validate().unwrap_err().contains("no condition"));
        r.name = " ".into();
        assert!(r.validate().is_err());
        assert_eq!(format_money(24_505, "EUR"), "EUR 245.05");
    }
}
