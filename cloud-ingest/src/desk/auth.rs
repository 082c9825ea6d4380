//! Who may do what: roles, what each route requires, and API tokens (shown once,
//! stored only as their SHA-256). Pure but for drawing a token's random bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tickets::UnknownName;

/// A desk user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Service desk: works tickets.
    Agent,
    /// Recycling desk: works trade-ins.
    Recycler,
    /// Reads everything, reports.
    Analyst,
    /// Users, models, settings; and everything else.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Agent, Role::Recycler, Role::Analyst, Role::Admin];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Recycler => "recycler",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may use a route that requires `access`.
    pub fn may(self, access: Access) -> bool {
        use Role::*;
        match access {
            Access::Public | Access::Anyone => true,
            Access::ReadTickets => matches!(self, Agent | Analyst | Admin),
            Access::WorkTickets => matches!(self, Agent | Admin),
            Access::ReadTradeIns => matches!(self, Recycler | Analyst | Admin),
            Access::WorkTradeIns => matches!(self, Recycler | Admin),
            Access::ReadAll => matches!(self, Analyst | Admin),
            Access::WorkFleet => matches!(self, Analyst | Admin),
            Access::Admin => self == Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName::new("role", s))
    }
}

/// What a route requires of a signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anybody, signed in or not (the API's description).
    Public,
    /// Any signed-in user.
    Anyone,
    /// Read the service desk's tickets and devices.
    ReadTickets,
    /// Change tickets.
    WorkTickets,
    /// Read the recycling desk's trade-ins, totals and SKUs.
    ReadTradeIns,
    /// Work trade-ins and set SKU weights.
    WorkTradeIns,
    /// Read everything, the audit log included.
    ReadAll,
    /// Run the cohort watch, decide campaigns and action items.
    WorkFleet,
    /// Manage users.
    Admin,
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Name (unique).
    pub name: String,
    /// Role.
    pub role: Role,
}

/// The prefix of every API token, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "fleet_";

/// A new token: the prefix and 32 random bytes in hex, from the operating system's
/// secure random source.
pub fn new_token() -> String {
    random_token(TOKEN_PREFIX)
}

/// The prefix of a customer's progress link token (it opens one ticket's page only).
pub const PROGRESS_PREFIX: &str = "track_";

/// `prefix` and 32 random bytes in hex, from the operating system's secure source.
pub fn random_token(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source works");
    format!("{prefix}{}", hex::encode(bytes))
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks a user name: 1–64 bytes of ASCII letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?}: 1 to 64 ASCII letters, digits, '.', '_' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_desks_need_and_no_more() {
        use Access::*;
        let grid = [
            (Role::Agent, [true, true, true, false, false]),
            (Role::Recycler, [true, false, false, false, false]),
            (Role::Analyst, [true, true, false, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, want) in grid {
            let got = [Anyone, ReadTickets, WorkTickets, ReadAll, Admin].map(|a| role.may(a));
            assert_eq!(got, want, "{role}");
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_random_and_kept_only_as_hashes() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a[TOKEN_PREFIX.len()..]));
        assert!(check_name("ana.lopez").is_ok());
        assert!(check_name("").is_err() && check_name("a b").is_err());
    }
}
