//! What to do about a scored device: an inspection ticket, a trade-in offer with a
//! quote, a self-service tip, or nothing; with the ticket's priority tier and due time.
//!
//! Pure: every fact the decision needs (the score, the device's terms, its recent
//! contacts) comes in as a value, so the rules are tested without a broker or database.

use models::artifact::Explanation;
use models::history::FeatureVector;
use protocol::command::{OfferExtra, OfferKind};
use serde::{Deserialize, Serialize};

use crate::tickets::Tier;
use crate::tradein;

pub mod offer;
pub mod sample;

/// The kind of problem a ticket is about: one open ticket per device and problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Battery wear: capacity fade, brown-outs, fast drain.
    Battery,
    /// Overheating.
    Thermal,
    /// Storage errors.
    Storage,
    /// Crashes, watchdog resets, unexpected restarts.
    Stability,
    /// Dropping off the network.
    Connectivity,
}

impl Problem {
    /// Every problem.
    pub const ALL: [Problem; 5] = [
        Problem::Battery,
        Problem::Thermal,
        Problem::Storage,
        Problem::Stability,
        Problem::Connectivity,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Battery => "battery",
            Problem::Thermal => "thermal",
            Problem::Storage => "storage",
            Problem::Stability => "stability",
            Problem::Connectivity => "connectivity",
        }
    }

    /// The problem a model feature is evidence of; `None` for features about the
    /// device in general (age).
    pub fn of_feature(name: &str) -> Option<Problem> {
        if name.starts_with("storage_") {
            Some(Problem::Storage)
        } else if name.starts_with("temp_")
            || name.starts_with("hot_")
            || name.starts_with("over_temperature")
            || name.starts_with("thermal_")
        {
            Some(Problem::Thermal)
        } else if name.starts_with("brown_out")
            || name.starts_with("drain")
            || name.starts_with("max_drop")
            || name.starts_with("battery_")
            || name.starts_with("soh")
            || name.starts_with("charge_")
            || name == "has_battery"
        {
            Some(Problem::Battery)
        } else if name.starts_with("offline_")
            || name.starts_with("disconnects")
            || name.starts_with("downtime")
        {
            Some(Problem::Connectivity)
        } else if name.starts_with("unexpected_reboot")
            || name.starts_with("watchdog")
            || name.starts_with("crash")
        {
            Some(Problem::Stability)
        } else {
            None
        }
    }

    /// The problem an explanation points at: the one whose features raised the score
    /// most. Stability when nothing raised it.
    pub fn of_explanation(explanation: &Explanation) -> Problem {
        let mut weight = [0.0f64; 5];
        for c in &explanation.top {
            if let Some(p) = Problem::of_feature(c.feature) {
                weight[p as usize] += c.contribution.max(0.0);
            }
        }
        let (best, w) =
            weight.iter().enumerate().fold(
                (3, 0.0),
                |acc, (i, &w)| if w > acc.1 { (i, w) } else { acc },
            );
        if w > 0.0 {
            Problem::ALL[best]
        } else {
            Problem::Stability
        }
    }

    /// The tip the customer can apply alone.
    pub fn tip(self) -> &'static str {
        match self {
            Problem::Battery => {
                "Your battery is draining faster than it should. Lower the screen brightness, \
                 close apps running in the background and avoid charging in hot places."
            }
            Problem::Thermal => {
                "Your device is running hot. Keep it out of direct sun, remove the case while \
                 charging and close demanding apps."
            }
            Problem::Storage => {
                "Your device's storage is reporting errors. Back up your data and free some \
                 space; we will check again in a few days."
            }
            Problem::Stability => {
                "Your device restarted unexpectedly. Install the latest update and restart it \
                 once; that clears most such faults."
            }
            Problem::Connectivity => {
                "Your device keeps losing its connection. Move it closer to your router or \
                 restart the router."
            }
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Problem {
    type Err = crate::tickets::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Problem::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::tickets::UnknownName::new("problem", s))
    }
}

/// The policy's settings (`[policy]` in the configuration file). Money is in minor
/// units (cents) of the device's currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// A self-service tip is sent when risk is at least this share of the model's
    /// alarm threshold (and below it). 0 disables tips.
    pub tip_share_of_threshold: f64,
    /// Share of the devices below the alarm threshold drawn each day for a free check
    /// (the random inspection sample: outcomes of devices no model flagged, weighed
    /// `1 / share` in training). 0, the default, draws none.
    pub random_check_share: f64,
    /// Hours to answer a high-tier ticket.
    pub high_due_hours: u32,
    /// Hours to answer a medium-tier ticket.
    pub medium_due_hours: u32,
    /// Hours for a low-tier (self-service) ticket to be answered.
    pub low_due_hours: u32,
    /// Devices that cost at least this are high value: their tickets are high tier.
    pub high_value_minor: u64,
    /// Straight-line depreciation to the floor over this many months.
    pub useful_life_months: u32,
    /// Residual value never drops below this share of the price.
    pub residual_floor: f64,
    /// Offer a trade-in instead of a repair out of warranty when the repair costs at
    /// least this share of the residual value.
    pub trade_in_when_repair_over_residual: f64,
    /// Estimated repair cost per problem.
    pub repair_cost_minor: RepairCosts,
    /// Months of extended warranty offered with an out-of-warranty repair (0: none).
    pub extended_warranty_months: u16,
    /// After a ticket for a device and problem closes, no new one for this many days
    /// (safety tickets excepted).
    pub cooldown_days: u32,
    /// A customer is contacted at most this many times ...
    pub contact_cap: u32,
    /// ... within this many days (safety tickets excepted).
    pub contact_window_days: u32,
    /// A safety signal is never held by the cool-down or the cap, but after a ticket
    /// for the same problem closes (a declined safety offer, say) the next safety offer
    /// waits this many hours, so the customer is asked again daily, not every heartbeat.
    pub safety_repeat_hours: u32,
    /// Safety: a battery whose state of health is below this (percent) may swell.
    pub swelling_soh_pct: f64,
    /// Safety: a day's peak temperature at or above this (°C) is a thermal-runaway sign.
    pub runaway_temp_c: f64,
    /// Safety: this many over-temperature events in 7 days are a thermal-runaway sign.
    pub runaway_over_temp_events: f64,
    /// A fault of a core part soon after purchase gets a replacement, not a repair.
    pub early_life: EarlyLife,
}

/// `[policy.early_life]`: the early-life rule. A fault of a core part confirmed on a
/// ticket opened within `days` of purchase is resolved by replacing the device; the desk
/// refuses to close it as a repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EarlyLife {
    /// Days after purchase the rule covers (0 turns it off).
    pub days: u32,
    /// The problems that are faults of a core part.
    pub core_parts: Vec<Problem>,
}

impl Default for EarlyLife {
    fn default() -> Self {
        EarlyLife {
            days: 30,
            core_parts: vec![
                Problem::Battery,
                Problem::Thermal,
                Problem::Storage,
                Problem::Stability,
            ],
        }
    }
}

impl EarlyLife {
    /// Whether a confirmed fault of `category`, on a ticket opened at `opened_ms` for a
    /// device bought at `purchased_ms`, must be resolved by a replacement.
    pub fn requires_replacement(
        &self,
        purchased_ms: Option<u64>,
        opened_ms: u64,
        category: Problem,
    ) -> bool {
        let Some(bought) = purchased_ms else {
            return false;
        };
        self.days > 0
            && self.core_parts.contains(&category)
            && opened_ms >= bought
            && opened_ms - bought < u64::from(self.days) * DAY_MS
    }
}

/// Estimated repair cost per problem, minor units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepairCosts {
    /// Battery replacement.
    pub battery: u64,
    /// Cooling or board repair for heat.
    pub thermal: u64,
    /// Storage replacement.
    pub storage: u64,
    /// Board diagnosis and repair.
    pub stability: u64,
    /// Radio or antenna repair.
    pub connectivity: u64,
}

impl Default for RepairCosts {
    fn default() -> Self {
        RepairCosts {
            battery: 6_900,
            thermal: 12_900,
            storage: 9_900,
            stability: 14_900,
            connectivity: 7_900,
        }
    }
}

impl RepairCosts {
    /// The estimate for one problem.
    pub fn of(&self, p: Problem) -> u64 {
        match p {
            Problem::Battery => self.battery,
            Problem::Thermal => self.thermal,
            Problem::Storage => self.storage,
            Problem::Stability => self.stability,
            Problem::Connectivity => self.connectivity,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            tip_share_of_threshold: 0.7,
            random_check_share: 0.0,
            high_due_hours: 4,
            medium_due_hours: 24,
            low_due_hours: 72,
            high_value_minor: 80_000,
            useful_life_months: 48,
            residual_floor: 0.1,
            trade_in_when_repair_over_residual: 0.6,
            repair_cost_minor: RepairCosts::default(),
            extended_warranty_months: 12,
            cooldown_days: 14,
            contact_cap: 3,
            contact_window_days: 30,
            safety_repeat_hours: 24,
            swelling_soh_pct: 60.0,
            runaway_temp_c: 80.0,
            runaway_over_temp_events: 10.0,
            early_life: EarlyLife::default(),
        }
    }
}

impl PolicyConfig {
    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let share = |key: &'static str, v: f64| {
            (0.0..=1.0)
                .contains(&v)
                .then_some(())
                .ok_or(PolicyError::NotAShare { key, value: v })
        };
        share("tip_share_of_threshold", self.tip_share_of_threshold)?;
        share("residual_floor", self.residual_floor)?;
        share("random_check_share", self.random_check_share)?;
        if self.useful_life_months == 0 {
            return Err(PolicyError::Zero("useful_life_months"));
        }
        for (key, hours) in [
            ("high_due_hours", self.high_due_hours),
            ("medium_due_hours", self.medium_due_hours),
            ("low_due_hours", self.low_due_hours),
        ] {
            if hours == 0 {
                return Err(PolicyError::Zero(key));
            }
        }
        if self.high_due_hours > self.medium_due_hours {
            return Err(PolicyError::HighSlowerThanMedium);
        }
        if self.early_life.days > 365 {
            return Err(PolicyError::EarlyLifeTooLong(self.early_life.days));
        }
        Ok(())
    }

    /// Hours allowed to answer a ticket of a tier.
    pub fn due_hours(&self, tier: Tier) -> u32 {
        match tier {
            Tier::High => self.high_due_hours,
            Tier::Medium => self.medium_due_hours,
            Tier::Low => self.low_due_hours,
        }
    }
}

/// Settings of `[policy]` that do not make sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// A share outside 0..=1.
    #[error("policy.{key} must be within 0..=1, not {value}")]
    NotAShare {
        /// The setting.
        key: &'static str,
        /// Its value.
        value: f64,
    },
    /// A count or duration that must be at least 1.
    #[error("policy.{0} must be at least 1")]
    Zero(&'static str),
    /// High-tier tickets would be due later than medium ones.
    #[error("policy.high_due_hours must not exceed medium_due_hours")]
    HighSlowerThanMedium,
    /// An early-life window longer than a year.
    #[error("policy.early_life.days must be 0 (off) to 365, not {0}")]
    EarlyLifeTooLong(u32),
}

/// What the registry knows of a device's commercial terms; any of it may be unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceTerms {
    /// Age, days since purchase.
    pub age_days: Option<f64>,
    /// Whether the warranty still runs.
    pub in_warranty: Option<bool>,
    /// Purchase price, minor units.
    pub price_minor: Option<u64>,
    /// ISO 4217 currency of the price.
    pub currency: Option<String>,
}

/// The device's recent contacts, from the ticket store.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContactHistory {
    /// When the last ticket for this device and problem closed, if one did.
    pub last_closed_ms: Option<u64>,
    /// Tickets opened for this customer within the contact window.
    pub contacts_in_window: u32,
}

/// Everything one decision weighs.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    /// The score and its top contributions.
    pub explanation: &'a Explanation,
    /// The model's alarm threshold.
    pub threshold: f64,
    /// The feature values scored.
    pub features: &'a FeatureVector,
    /// The device's terms.
    pub terms: &'a DeviceTerms,
    /// Recent contacts.
    pub contacts: ContactHistory,
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// The device's draw for today in [0, 1) ([`sample::draw`]): below
    /// `random_check_share`, a device under the threshold gets a free check.
    pub draw: f64,
}

/// A ticket the policy wants opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What it is about.
    pub problem: Problem,
    /// The remedy offered.
    pub offer: OfferKind,
    /// A price: the trade-in value, or the repair cost out of warranty.
    pub quote_minor: Option<u64>,
    /// Currency of the quote.
    pub currency: Option<String>,
    /// An extra on top of the remedy.
    pub extra: Option<OfferExtra>,
    /// Priority tier.
    pub tier: Tier,
    /// When it must be answered, ms since the epoch.
    pub due_ms: u64,
    /// Safety signals behind it.
    pub safety: Vec<String>,
    /// The considerations, in words, for the evidence.
    pub reasoning: Vec<String>,
    /// For a random check: how many devices below the threshold it stands for.
    pub sample_weight: Option<f64>,
}

/// Why the policy chose to do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Risk is too low to act on.
    LowRisk,
    /// A ticket for this problem closed recently.
    CoolDown,
    /// The customer has been contacted often enough lately.
    ContactCap,
    /// A safety offer about this problem closed within `safety_repeat_hours`.
    SafetyRepeat,
    /// The offer could not be built from the device's data (logged with why).
    Unofferable,
}

impl Hold {
    /// The name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::LowRisk => "low_risk",
            Hold::CoolDown => "cool_down",
            Hold::ContactCap => "contact_cap",
            Hold::SafetyRepeat => "safety_repeat",
            Hold::Unofferable => "unofferable",
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Open a ticket.
    Open(Plan),
    /// Do nothing, for this reason.
    Hold(Hold),
}

/// Safety signals in a feature vector: battery swelling risk, thermal-runaway signs.
pub fn safety_signals(f: &FeatureVector, cfg: &PolicyConfig) -> Vec<String> {
    let get = |n: &str| f.get(n).unwrap_or(0.0);
    let mut out = Vec::new();
    if get("has_battery") > 0.5 && get("soh_pct") < cfg.swelling_soh_pct {
        out.push(format!(
            "battery swelling risk: state of health {:.0} % (below {:.0} %)",
            get("soh_pct"),
            cfg.swelling_soh_pct
        ));
    }
    if get("temp_max_c_1d") >= cfg.runaway_temp_c {
        out.push(format!(
            "thermal runaway sign: {:.0} °C in the last day (limit {:.0} °C)",
            get("temp_max_c_1d"),
            cfg.runaway_temp_c
        ));
    } else if get("over_temperature_events_7d") >= cfg.runaway_over_temp_events {
        out.push(format!(
            "thermal runaway sign: {:.0} over-temperature events in 7 days",
            get("over_temperature_events_7d")
        ));
    }
    out
}

/// Decides what to do about one scored device.
pub fn decide(input: &PolicyInput<'_>, cfg: &PolicyConfig) -> Decision {
    let score = input.explanation.score;
    let safety = safety_signals(input.features, cfg);
    let problem = if safety.iter().any(|s| s.starts_with("battery")) {
        Problem::Battery
    } else if !safety.is_empty() {
        Problem::Thermal
    } else {
        Problem::of_explanation(input.explanation)
    };
    let terms = input.terms;
    let mut reasoning = vec![format!(
        "risk {:.3} against threshold {:.3}; problem {problem}",
        score.probability, input.threshold
    )];
    let tip = !score.alarm
        && cfg.tip_share_of_threshold > 0.0
        && score.probability >= cfg.tip_share_of_threshold * input.threshold;
    let sampled = safety.is_empty()
        && !score.alarm
        && cfg.random_check_share > 0.0
        && input.draw < cfg.random_check_share;
    if safety.is_empty() && !score.alarm && !tip && !sampled {
        return Decision::Hold(Hold::LowRisk);
    }
    if let Some(h) = contact_hold(&input.contacts, !safety.is_empty(), input.now_ms, cfg) {
        return Decision::Hold(h);
    }
    let (offer, quote, extra, tier);
    let mut sample_weight = None;
    if !safety.is_empty() {
        reasoning.extend(safety.iter().cloned());
        (offer, quote, extra, tier) = (OfferKind::Inspection, None, None, Tier::High);
    } else if sampled {
        let w = sample::weight(cfg.random_check_share);
        reasoning.push(format!(
            "below the alarm threshold and drawn for the random inspection sample \
             ({:.2} % of such devices a day): a free check, whose outcome stands for {w:.0} devices",
            cfg.random_check_share * 100.0
        ));
        sample_weight = Some(w);
        (offer, quote, extra, tier) = (OfferKind::Inspection, None, None, Tier::Low);
    } else if tip {
        reasoning.push("below the alarm threshold: a self-service tip first".into());
        (offer, quote, extra, tier) = (OfferKind::SelfServiceTip, None, None, Tier::Low);
    } else {
        let r = remedy(problem, terms, input.features, cfg, &mut reasoning);
        (offer, quote, extra, tier) = (r.offer, r.quote_minor, r.extra, r.tier);
    }
    Decision::Open(Plan {
        problem,
        offer,
        quote_minor: quote,
        currency: quote.and(terms.currency.clone()),
        extra,
        tier,
        due_ms: input.now_ms + u64::from(cfg.due_hours(tier)) * HOUR_MS,
        safety,
        reasoning,
        sample_weight,
    })
}

/// Why a customer is not to be contacted now, if they are not: one who just answered
/// (or declined) is left alone for a while, and not contacted too often; a safety risk
/// overrides both, asked again at most daily.
pub fn contact_hold(
    contacts: &ContactHistory,
    safety: bool,
    now_ms: u64,
    cfg: &PolicyConfig,
) -> Option<Hold> {
    let closed_within = |ms: u64| {
        contacts
            .last_closed_ms
            .is_some_and(|closed| now_ms < closed.saturating_add(ms))
    };
    if safety {
        closed_within(u64::from(cfg.safety_repeat_hours) * HOUR_MS).then_some(Hold::SafetyRepeat)
    } else if closed_within(u64::from(cfg.cooldown_days) * DAY_MS) {
        Some(Hold::CoolDown)
    } else if contacts.contacts_in_window >= cfg.contact_cap {
        Some(Hold::ContactCap)
    } else {
        None
    }
}

/// The remedy the policy offers for a problem that is no safety risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Remedy {
    /// The offer.
    pub offer: OfferKind,
    /// Its price: the trade-in quote, or the repair out of warranty.
    pub quote_minor: Option<u64>,
    /// An extra on top.
    pub extra: Option<OfferExtra>,
    /// The tier.
    pub tier: Tier,
    /// What it costs the service if taken up: the repair estimate, or the trade-in quote.
    pub cost_minor: u64,
}

/// Repair (a battery, an inspection) or trade-in for `problem` on a device with these
/// terms: a trade-in when the device is past its useful life, or out of warranty with a
/// repair not worth its residual value; a high-value device is high tier.
pub fn remedy(
    problem: Problem,
    terms: &DeviceTerms,
    features: &FeatureVector,
    cfg: &PolicyConfig,
    reasoning: &mut Vec<String>,
) -> Remedy {
    let value = residual_value(terms, cfg);
    let repair = cfg.repair_cost_minor.of(problem);
    let out_of_warranty = terms.in_warranty == Some(false);
    let worn_out = terms
        .age_days
        .is_some_and(|d| d >= f64::from(cfg.useful_life_months) * 30.44);
    let uneconomic = value.is_some_and(|v| {
        out_of_warranty && repair as f64 >= cfg.trade_in_when_repair_over_residual * v as f64
    });
    if let Some(v) = value {
        reasoning.push(format!(
            "repair estimate {repair} against residual value {v} (minor units); warranty {}",
            match terms.in_warranty {
                Some(true) => "runs",
                Some(false) => "ended",
                None => "unknown",
            }
        ));
    }
    let tier = if terms.price_minor.is_some_and(|p| p >= cfg.high_value_minor) {
        reasoning.push("high-value device".into());
        Tier::High
    } else {
        Tier::Medium
    };
    let (offer, quote, extra);
    if (worn_out || uneconomic) && value.is_some() {
        let condition = tradein::Condition::from_features(features);
        let q = tradein::quote(value.unwrap_or(0), &condition);
        reasoning.push(format!(
            "{}: trade-in quoted at {q} ({})",
            if worn_out {
                "past its useful life"
            } else {
                "repair not worth it"
            },
            condition.describe()
        ));
        (offer, quote, extra) = (OfferKind::TradeIn, Some(q), None);
    } else {
        offer = if problem == Problem::Battery {
            OfferKind::BatteryReplacement
        } else {
            OfferKind::Inspection
        };
        if out_of_warranty {
            quote = Some(repair);
            extra = (cfg.extended_warranty_months > 0).then_some(OfferExtra::ExtendedWarranty {
                months: cfg.extended_warranty_months,
            });
        } else {
            (quote, extra) = (None, None);
        }
    }
    Remedy {
        offer,
        quote_minor: quote,
        extra,
        tier,
        cost_minor: if offer == OfferKind::TradeIn {
            quote.unwrap_or(0)
        } else {
            repair
        },
    }
}

/// What the device is worth now: its price depreciated straight-line over its useful
/// life, never below the floor. Unknown without a price.
pub fn residual_value(terms: &DeviceTerms, cfg: &PolicyConfig) -> Option<u64> {
    let price = terms.price_minor? as f64;
    let age_months = terms.age_days.unwrap_or(0.0).max(0.0) / 30.44;
    let share = (1.0 - age_months / f64::from(cfg.useful_life_months)).max(cfg.residual_floor);
    Some((price * share).round() as u64)
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

#[cfg(test)]
mod tests {
    use super::*;
    use models::artifact::{Contribution, Score};
    use models::schema::FEATURES;

    fn explanation(p: f64, alarm: bool, top: &[(&'static str, f64)]) -> Explanation {
        Explanation {
            score: Score {
                probability: p,
                alarm,
            },
            top: top
                .iter()
                .map(|&(feature, contribution)| Contribution {
                    feature,
                    unit: "",
                    value: 0.0,
                    contribution,
                })
                .collect(),
        }
    }

    fn features(set: &[(&str, f64)]) -> FeatureVector {
        let mut v = FeatureVector::missing();
        for (name, value) in set {
            let i = FEATURES.iter().position(|f| f.name == *name).unwrap();
            v.0[i] = *value;
        }
        v
    }

    #[test]
    fn a_core_part_failing_in_the_first_month_is_replaced() {
        let rule = EarlyLife::default();
        let bought = 100 * DAY_MS;
        assert!(rule.requires_replacement(Some(bought), bought + 29 * DAY_MS, Problem::Battery));
        assert!(!rule.requires_replacement(Some(bought), bought + 30 * DAY_MS, Problem::Battery));
        assert!(
            !rule.requires_replacement(Some(bought), bought + DAY_MS, Problem::Connectivity),
            "not a core part"
        );
        assert!(
            !rule.requires_replacement(None, bought, Problem::Battery),
            "age unknown"
        );
        let off = EarlyLife {
            days: 0,
            ..EarlyLife::default()
        };
        assert!(!off.requires_replacement(Some(bought), bought, Problem::Battery));
        let long = PolicyConfig {
            early_life: EarlyLife {
                days: 400,
                ..EarlyLife::default()
            },
            ..PolicyConfig::default()
        };
        assert_eq!(long.validate(), Err(PolicyError::EarlyLifeTooLong(400)));
    }

    fn young_in_warranty() -> DeviceTerms {
        DeviceTerms {
            age_days: Some(200.0),
            in_warranty: Some(true),
            price_minor: Some(50_000),
            currency: Some("EUR".into()),
        }
    }

    fn run(
        e: &Explanation,
        f: &FeatureVector,
        terms: &DeviceTerms,
        contacts: ContactHistory,
    ) -> Decision {
        let input = PolicyInput {
            explanation: e,
            threshold: 0.2,
            features: f,
            terms,
            contacts,
            now_ms: 100 * DAY_MS,
            draw: 0.5,
        };
        decide(&input, &PolicyConfig::default())
    }

    fn plan(d: Decision) -> Plan {
        match d {
            Decision::Open(p) => p,
            Decision::Hold(h) => panic!("expected a ticket, got {h:?}"),
        }
    }

    #[test]
    fn a_device_drawn_below_the_threshold_gets_a_free_check_and_the_rest_do_not() {
        let f = FeatureVector::missing();
        let t = young_in_warranty();
        let low = explanation(0.01, false, &[("crashes_per_day_7d", 0.01)]);
        let cfg = PolicyConfig {
            random_check_share: 0.01,
            ..PolicyConfig::default()
        };
        let at = |e: &Explanation, draw: f64, contacts: ContactHistory| {
            decide(
                &PolicyInput {
                    explanation: e,
                    threshold: 0.2,
                    features: &f,
                    terms: &t,
                    contacts,
                    now_ms: 100 * DAY_MS,
                    draw,
                },
                &cfg,
            )
        };
        let p = plan(at(&low, 0.004, ContactHistory::default()));
        assert_eq!(
            (p.offer, p.tier, p.quote_minor),
            (OfferKind::Inspection, Tier::Low, None)
        );
        assert_eq!(p.sample_weight, Some(100.0));
        assert_eq!(
            at(&low, 0.02, ContactHistory::default()),
            Decision::Hold(Hold::LowRisk)
        );
        // In the tip band, the draw wins: the check's outcome is what the sample needs.
        let near = explanation(0.15, false, &[("drain_pct_per_active_h_7d", 0.2)]);
        assert_eq!(
            plan(at(&near, 0.004, ContactHistory::default())).sample_weight,
            Some(100.0)
        );
        assert_eq!(
            plan(at(&near, 0.5, ContactHistory::default())).offer,
            OfferKind::SelfServiceTip
        );
        // An alarm is no sample: its own remedy, unweighted.
        let high = explanation(0.5, true, &[("storage_errors_7d", 0.3)]);
        assert_eq!(
            plan(at(&high, 0.004, ContactHistory::default())).sample_weight,
            None
        );
        // A customer contacted enough lately is not drawn in.
        let busy = ContactHistory {
            last_closed_ms: None,
            contacts_in_window: 3,
        };
        assert_eq!(at(&low, 0.004, busy), Decision::Hold(Hold::ContactCap));
        // Off by default.
        assert_eq!(
            decide(
                &PolicyInput {
                    explanation: &low,
                    threshold: 0.2,
                    features: &f,
                    terms: &t,
                    contacts: ContactHistory::default(),
                    now_ms: 100 * DAY_MS,
                    draw: 0.0,
                },
                &PolicyConfig::default()
            ),
            Decision::Hold(Hold::LowRisk)
        );
        let bad = PolicyConfig {
            random_check_share: 1.5,
            ..PolicyConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("random_check_share"));
    }

    #[test]
    fn low_risk_does_nothing_and_a_near_miss_gets_a_tip() {
        let f = FeatureVector::missing();
        let t = young_in_warranty();
        let low = explanation(0.01, false, &[("crashes_per_day_7d", 0.01)]);
        assert_eq!(
            run(&low, &f, &t, Default::default()),
            Decision::Hold(Hold::LowRisk)
        );
        let near = explanation(0.15, false, &[("drain_pct_per_active_h_7d", 0.2)]);
        let p = plan(run(&near, &f, &t, Default::default()));
        assert_eq!(p.offer, OfferKind::SelfServiceTip);
        assert_eq!(p.tier, Tier::Low);
        assert_eq!(p.problem, Problem::Battery);
        assert_eq!(p.due_ms, 100 * DAY_MS + 72 * HOUR_MS);
    }

    #[test]
    fn an_alarm_in_warranty_gets_a_free_remedy_for_its_problem_due_in_a_day() {
        let f = FeatureVector::missing();
        let t = young_in_warranty();
        let e = explanation(
            0.5,
            true,
            &[
                ("storage_errors_7d", 0.3),
                ("crashes_per_day_7d", 0.1),
                ("soh_pct", -0.2),
            ],
        );
        let p = plan(run(&e, &f, &t, Default::default()));
        assert_eq!(
            (p.problem, p.offer, p.tier),
            (Problem::Storage, OfferKind::Inspection, Tier::Medium)
        );
        assert_eq!((p.quote_minor, p.extra), (None, None));
        assert_eq!(p.due_ms, 100 * DAY_MS + 24 * HOUR_MS);
        let battery = explanation(0.5, true, &[("brown_outs_per_day_7d", 0.4)]);
        assert_eq!(
            plan(run(&battery, &f, &t, Default::default())).offer,
            OfferKind::BatteryReplacement
        );
    }

    #[test]
    fn out_of_warranty_repairs_are_quoted_and_uneconomic_ones_become_trade_ins() {
        let f = features(&[("soh_pct", 85.0)]);
        let e = explanation(0.5, true, &[("unexpected_reboots_per_day_7d", 0.4)]);
        // Worth 50000 × (1 − 14/48) ≈ 35400: a 14900 repair is worth doing.
        let mid = DeviceTerms {
            age_days: Some(14.0 * 30.44),
            in_warranty: Some(false),
            ..young_in_warranty()
        };
        let p = plan(run(&e, &f, &mid, Default::default()));
        assert_eq!(p.offer, OfferKind::Inspection);
        assert_eq!(p.quote_minor, Some(14_900));
        assert_eq!(p.currency.as_deref(), Some("EUR"));
        assert_eq!(p.extra, Some(OfferExtra::ExtendedWarranty { months: 12 }));
        // A cheap, older device: the repair costs more than 60 % of what it is worth.
        let old = DeviceTerms {
            age_days: Some(40.0 * 30.44),
            in_warranty: Some(false),
            price_minor: Some(20_000),
            currency: Some("EUR".into()),
        };
        let p = plan(run(&e, &f, &old, Default::default()));
        assert_eq!(p.offer, OfferKind::TradeIn);
        let q = p.quote_minor.unwrap();
        let value = residual_value(&old, &PolicyConfig::default()).unwrap();
        assert!(
            q > 0 && q <= value,
            "quote {q} within the residual value {value}"
        );
        // Without a price there is nothing to quote: a repair path, unquoted value.
        let unknown = DeviceTerms {
            price_minor: None,
            ..old
        };
        assert_eq!(
            plan(run(&e, &f, &unknown, Default::default())).offer,
            OfferKind::Inspection
        );
    }

    #[test]
    fn expensive_devices_and_safety_signals_are_high_tier_within_four_hours() {
        let f = FeatureVector::missing();
        let e = explanation(0.5, true, &[("crashes_per_day_7d", 0.4)]);
        let pricey = DeviceTerms {
            price_minor: Some(120_000),
            ..young_in_warranty()
        };
        let p = plan(run(&e, &f, &pricey, Default::default()));
        assert_eq!(p.tier, Tier::High);
        assert_eq!(p.due_ms, 100 * DAY_MS + 4 * HOUR_MS);

        // Swelling risk: low state of health, even at a risk below any threshold.
        let swollen = features(&[("has_battery", 1.0), ("soh_pct", 58.0)]);
        let calm = explanation(0.001, false, &[]);
        let p = plan(run(
            &calm,
            &swollen,
            &young_in_warranty(),
            Default::default(),
        ));
        assert_eq!(
            (p.problem, p.offer, p.tier),
            (Problem::Battery, OfferKind::Inspection, Tier::High)
        );
        assert!(p.safety[0].contains("swelling"), "{:?}", p.safety);
        // A mains device has no battery to swell.
        let mains = features(&[("has_battery", 0.0), ("soh_pct", 58.0)]);
        assert_eq!(
            run(&calm, &mains, &young_in_warranty(), Default::default()),
            Decision::Hold(Hold::LowRisk)
        );
        let hot = features(&[("temp_max_c_1d", 84.0)]);
        let p = plan(run(&calm, &hot, &young_in_warranty(), Default::default()));
        assert_eq!((p.problem, p.tier), (Problem::Thermal, Tier::High));
    }

    #[test]
    fn cool_down_and_the_contact_cap_hold_back_all_but_safety() {
        let f = FeatureVector::missing();
        let e = explanation(0.5, true, &[("crashes_per_day_7d", 0.4)]);
        let t = young_in_warranty();
        let recently_closed = ContactHistory {
            last_closed_ms: Some(95 * DAY_MS),
            contacts_in_window: 0,
        };
        assert_eq!(
            run(&e, &f, &t, recently_closed),
            Decision::Hold(Hold::CoolDown)
        );
        let long_ago = ContactHistory {
            last_closed_ms: Some(80 * DAY_MS),
            contacts_in_window: 0,
        };
        assert!(matches!(run(&e, &f, &t, long_ago), Decision::Open(_)));
        let busy = ContactHistory {
            last_closed_ms: None,
            contacts_in_window: 3,
        };
        assert_eq!(run(&e, &f, &t, busy), Decision::Hold(Hold::ContactCap));
        let swollen = features(&[("has_battery", 1.0), ("soh_pct", 50.0)]);
        assert!(matches!(run(&e, &swollen, &t, busy), Decision::Open(p) if p.tier == Tier::High));
        // recently_closed is 5 days back: within the cool-down, past the safety repeat.
        assert!(matches!(
            run(&e, &swollen, &t, recently_closed),
            Decision::Open(p) if p.tier == Tier::High
        ));
        let an_hour_ago = ContactHistory {
            last_closed_ms: Some(100 * DAY_MS - HOUR_MS),
            contacts_in_window: 3,
        };
        assert_eq!(
            run(&e, &swollen, &t, an_hour_ago),
            Decision::Hold(Hold::SafetyRepeat)
        );
    }

    #[test]
    fn every_feature_but_age_belongs_to_a_problem() {
        for f in FEATURES {
            let p = Problem::of_feature(f.name);
            assert_eq!(p.is_none(), f.name == "device_age_days", "{}", f.name);
        }
    }

    #[test]
    fn residual_value_depreciates_to_the_floor() {
        let cfg = PolicyConfig::default();
        let at = |months: f64| DeviceTerms {
            age_days: Some(months * 30.44),
            price_minor: Some(10_000),
            ..Default::default()
        };
        assert_eq!(residual_value(&at(0.0), &cfg), Some(10_000));
        assert_eq!(residual_value(&at(24.0), &cfg), Some(5_000));
        assert_eq!(residual_value(&at(100.0), &cfg), Some(1_000));
        assert_eq!(residual_value(&DeviceTerms::default(), &cfg), None);
    }

    #[test]
    fn config_rejects_nonsense() {
        let bad = PolicyConfig {
            high_due_hours: 48,
            ..PolicyConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(PolicyConfig::default().validate().is_ok());
    }
}
