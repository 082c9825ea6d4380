//! Data erasure: the record of how a device's data was destroyed (NIST SP 800-88 Clear
//! or Purge), with tool, operator, time and certificate id, and the certificate a
//! customer or auditor can download. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::tickets::UnknownName;

/// The sanitisation method, after NIST SP 800-88.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Logical overwrite of all user-addressable storage (a factory reset that overwrites).
    Clear,
    /// Cryptographic erase or block erase: the data cannot be recovered even in a lab.
    Purge,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 2] = [Method::Clear, Method::Purge];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Clear => "clear",
            Method::Purge => "purge",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownName::new("erasure method", s))
    }
}

/// A device's erasure, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Erasure {
    /// Clear or purge.
    pub method: Method,
    /// The erasure tool and its version.
    pub tool: String,
    /// Who ran it (the signed-in recycler).
    pub operator: String,
    /// When it was recorded, ms.
    pub at_ms: u64,
    /// The tool's certificate id.
    pub certificate_id: String,
}

/// Why an erasure record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureError {
    /// The tool is missing or too long.
    #[error("tool {0:?} must be 1 to 128 characters (the erasure tool and its version)")]
    Tool(String),
    /// The certificate id is malformed.
    #[error("certificate id {0:?} must be 4 to 64 letters, digits, '-', '_' or '.'")]
    Certificate(String),
}

impl Erasure {
    /// A record checked for a usable tool name and certificate id.
    pub fn new(
        method: Method,
        tool: &str,
        operator: &str,
        at_ms: u64,
        certificate_id: &str,
    ) -> Result<Erasure, ErasureError> {
        let tool = tool.trim();
        if tool.is_empty() || tool.chars().count() > 128 || tool.chars().any(char::is_control) {
            return Err(ErasureError::Tool(tool.to_owned()));
        }
        let cert = certificate_id.trim();
        if !(4..=64).contains(&cert.len())
            || !cert
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ErasureError::Certificate(cert.to_owned()));
        }
        Ok(Erasure {
            method,
            tool: tool.to_owned(),
            operator: operator.to_owned(),
            at_ms,
            certificate_id: cert.to_owned(),
        })
    }

    /// The certificate as a plain-text document.
    pub fn certificate(&self, ticket_ref: &str, device: &str, model: Option<&str>) -> String {
        let when = chrono::DateTime::from_timestamp_millis(self.at_ms as i64)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| self.at_ms.to_string());
        let method = match self.method {
            Method::Clear => {
                "Clear (NIST SP 800-88 Rev. 1): all user-addressable storage overwritten"
            }
            Method::Purge => {
                "Purge (NIST SP 800-88 Rev. 1): cryptographic or block erase, not recoverable"
            }
        };
        format!(
            "CERTIFICATE OF DATA ERASURE\n\
             \n\
             Certificate id: {}\n\
             Trade-in:       {ticket_ref}\n\
             Device:         {device}\n\
             Model:          {}\n\
             Method:         {method}\n\
             Tool:           {}\n\
             Operator:       {}\n\
             Recorded:       {when}\n\
             \n\
             The data on this device was erased by the method above before the device was\n\
             routed to refurbishment or recycling.\n",
            self.certificate_id,
            model.unwrap_or("unknown"),
            self.tool,
            self.operator,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_needs_a_tool_and_a_certificate_id() {
        let ok = Erasure::new(
            Method::Purge,
            " Blancco 7.2 ",
            "rita",
            1_764_547_200_000,
            "BL-2026-0001",
        )
        .unwrap();
        assert_eq!(ok.tool, "Blancco 7.2");
        let text = ok.certificate("T-00ff", "dev-7", Some("phone-x"));
        assert!(text.contains("Certificate id: BL-2026-0001"), "{text}");
        assert!(text.contains("Purge (NIST SP 800-88 Rev. 1)"));
        assert!(text.contains("Recorded:       2025-12-01 00:00:00 UTC"));
        assert!(text.contains("Operator:       rita"));
        for (tool, cert) in [
            ("", "BL-1234"),
            (&"x".repeat(129)[..], "BL-1234"),
            ("to\nol", "BL-1234"),
            ("Blancco", "BL"),
            ("Blancco", "BL 1234"),
            ("Blancco", &"9".repeat(65)[..]),
            ("Blancco", "BL/1234"),
        ] {
            assert!(
                Erasure::new(Method::Clear, tool, "rita", 0, cert).is_err(),
                "{tool:?} {cert:?}"
            );
        }
        assert_eq!("purge".parse::<Method>().unwrap(), Method::Purge);
        assert!("destroy".parse::<Method>().is_err());
    }
}
