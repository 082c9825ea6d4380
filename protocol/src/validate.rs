//! Validation rules shared by every payload: limits, field errors and range checks.
//!
//! Decoding checks the JSON shape with serde, then each payload checks its values here
//! (physical ranges, finiteness, text lengths, timestamps, consistency between fields).
//! Encoding runs the same checks, so a device cannot send what the cloud would reject.

use crate::ids::Timestamp;

/// Limits a decoder enforces; the defaults are what cloud ingest uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// The earliest device timestamp accepted.
    pub min_timestamp: Timestamp,
    /// The latest device timestamp accepted.
    pub max_timestamp: Timestamp,
}

/// 2020-01-01T00:00:00Z: no device of this protocol reports from before it; earlier
/// values mean an unset real-time clock.
pub const DEFAULT_MIN_TIMESTAMP: Timestamp = Timestamp::from_unix_ms(1_577_836_800_000);
/// 2100-01-01T00:00:00Z. Fixed rather than relative to "now": simulated fleets run in
/// accelerated time ahead of the wall clock. Ingest judges clock skew itself.
pub const DEFAULT_MAX_TIMESTAMP: Timestamp = Timestamp::from_unix_ms(4_102_444_800_000);
/// 16 KiB: a heartbeat is well under 2 KiB; the margin is for vendor growth.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            min_timestamp: DEFAULT_MIN_TIMESTAMP,
            max_timestamp: DEFAULT_MAX_TIMESTAMP,
        }
    }
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// A required field is absent.
    #[error("is missing")]
    Missing,
    /// The JSON type is wrong (a string where a number belongs, ...).
    #[error("has the wrong type: {0}")]
    WrongType(String),
    /// The value is of the right type but not acceptable (unknown variant, bad id, ...).
    #[error("is invalid: {0}")]
    Invalid(String),
    /// A number outside its physical range.
    #[error("is {value}, outside {min}..={max} {unit}")]
    OutOfRange {
        /// The value found.
        value: f64,
        /// The lowest value allowed.
        min: f64,
        /// The highest value allowed.
        max: f64,
        /// The unit of all three.
        unit: &'static str,
    },
    /// NaN or an infinity.
    #[error("is not a finite number")]
    NotFinite,
    /// A timestamp outside the accepted window.
    #[error("is {value} ms since the epoch, outside {min}..={max}")]
    TimestampOutOfRange {
        /// The value found.
        value: u64,
        /// The earliest accepted.
        min: u64,
        /// The latest accepted.
        max: u64,
    },
    /// A text longer than allowed.
    #[error("is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A text that is empty where content is required.
    #[error("must not be empty")]
    Empty,
    /// A text with a control character in it.
    #[error("contains a control character")]
    ControlChar,
    /// The value contradicts another field of the same message.
    #[error("is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// A problem located at a field, named by its dotted path (`body.battery.soc_min_pct`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}` {problem}")]
pub struct FieldError {
    /// The dotted path of the field.
    pub field: String,
    /// What is wrong with it.
    pub problem: Problem,
}

impl FieldError {
    /// A problem at a field.
    pub fn new(field: impl Into<String>, problem: Problem) -> Self {
        FieldError {
            field: field.into(),
            problem,
        }
    }
}

/// The result of a validation step.
pub type Checked = Result<(), FieldError>;

/// Value checks a payload type runs after serde has decoded its shape.
pub trait Validate {
    /// Checks every value; the first problem found is returned.
    fn validate(&self, limits: &Limits) -> Checked;
}

/// A float that must be finite and within `min..=max`.
pub(crate) fn float(
    field: &'static str,
    v: f32,
    min: f32,
    max: f32,
    unit: &'static str,
) -> Checked {
    if !v.is_finite() {
        return Err(FieldError::new(field, Problem::NotFinite));
    }
    if v < min || v > max {
        return Err(FieldError::new(
            field,
            Problem::OutOfRange {
                value: f64::from(v),
                min: f64::from(min),
                max: f64::from(max),
                unit,
            },
        ));
    }
    Ok(())
}

/// A percentage, 0 to 100.
pub(crate) fn percent(field: &'static str, v: f32) -> Checked {
    float(field, v, 0.0, 100.0, "%")
}

/// An optional float; absent is fine.
pub(crate) fn opt_float(
    field: &'static str,
    v: Option<f32>,
    min: f32,
    max: f32,
    unit: &'static str,
) -> Checked {
    v.map_or(Ok(()), |v| float(field, v, min, max, unit))
}

/// An integer within `min..=max`.
pub(crate) fn int(field: &'static str, v: u64, min: u64, max: u64, unit: &'static str) -> Checked {
    if v < min || v > max {
        return Err(FieldError::new(
            field,
            Problem::OutOfRange {
                value: v as f64,
                min: min as f64,
                max: max as f64,
                unit,
            },
        ));
    }
    Ok(())
}

/// A device timestamp within the limits' window.
pub(crate) fn timestamp(field: &'static str, t: crate::ids::Timestamp, limits: &Limits) -> Checked {
    let (v, min, max) = (
        t.as_unix_ms(),
        limits.min_timestamp.as_unix_ms(),
        limits.max_timestamp.as_unix_ms(),
    );
    if v < min || v > max {
        return Err(FieldError::new(
            field,
            Problem::TimestampOutOfRange { value: v, min, max },
        ));
    }
    Ok(())
}

/// Human text: not empty, at most `max` bytes, no control characters (newlines and tabs
/// are allowed where `multiline`).
pub(crate) fn text(field: &'static str, s: &str, max: usize, multiline: bool) -> Checked {
    if s.trim().is_empty() {
        return Err(FieldError::new(field, Problem::Empty));
    }
    if s.len() > max {
        return Err(FieldError::new(
            field,
            Problem::TooLong { len: s.len(), max },
        ));
    }
    let allowed = |c: char| multiline && (c == '\n' || c == '\t');
    if s.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(FieldError::new(field, Problem::ControlChar));
    }
    Ok(())
}

/// Optional human text; absent is fine.
pub(crate) fn opt_text(field: &'static str, s: Option<&str>, max: usize) -> Checked {
    s.map_or(Ok(()), |s| text(field, s, max, false))
}

/// `a <= b`, or the field named is inconsistent.
pub(crate) fn ordered(field: &'static str, a: u64, b: u64, why: &'static str) -> Checked {
    if a > b {
        return Err(FieldError::new(field, Problem::Inconsistent(why)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_checks_finiteness_then_range() {
        assert!(float("f", 50.0, 0.0, 100.0, "%").is_ok());
        assert!(float("f", 0.0, 0.0, 100.0, "%").is_ok());
        assert!(float("f", 100.0, 0.0, 100.0, "%").is_ok());
        assert_eq!(
            float("f", f32::NAN, 0.0, 100.0, "%").unwrap_err().problem,
            Problem::NotFinite
        );
        assert_eq!(
            float("f", f32::INFINITY, 0.0, 100.0, "%")
                .unwrap_err()
                .problem,
            Problem::NotFinite
        );
        let e = float("x.y", 100.5, 0.0, 100.0, "%").unwrap_err();
        assert_eq!(e.field, "x.y");
        assert!(matches!(e.problem, Problem::OutOfRange { value, .. } if value == 100.5));
        assert_eq!(e.to_string(), "field `x.y` is 100.5, outside 0..=100 %");
    }

    #[test]
    fn text_rules() {
        assert!(text("t", "fine", 8, false).is_ok());
        assert_eq!(
            text("t", "  ", 8, false).unwrap_err().problem,
            Problem::Empty
        );
        assert_eq!(
            text("t", "123456789", 8, false).unwrap_err().problem,
            Problem::TooLong { len: 9, max: 8 }
        );
        assert_eq!(
            text("t", "a\u{7}b", 8, false).unwrap_err().problem,
            Problem::ControlChar
        );
        assert!(text("t", "a\nb", 8, true).is_ok());
        assert!(text("t", "a\nb", 8, false).is_err());
    }

    #[test]
    fn timestamp_window() {
        let l = Limits::default();
        assert!(timestamp("ts", DEFAULT_MIN_TIMESTAMP, &l).is_ok());
        assert!(timestamp("ts", Timestamp(0), &l).is_err());
        assert!(timestamp("ts", Timestamp(DEFAULT_MAX_TIMESTAMP.0 + 1), &l).is_err());
    }
}
