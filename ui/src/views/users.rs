//! Users, their roles, and who a command acts for.

use serde::{Deserialize, Serialize};

/// What a user may do, as Airflow's roles: each role can do what the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page and API route (but the audit log).
    Viewer,
    /// Also triggers, pauses, clears, marks and stops.
    Op,
    /// Also reads the audit log; manages users and tokens (from the CLI).
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Op, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Op => "op",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| format!("unknown role {text:?}: use viewer, op or admin"))
    }
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// When the password last changed: sessions signed in before then have ended.
    pub password_changed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who a command acts for and from where, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user name (`anonymous` when no one is signed in).
    pub username: String,
    /// The client's address (`cli` for the command line), when known.
    pub source: Option<String>,
}

impl Actor {
    pub fn new(username: impl Into<String>, source: Option<String>) -> Self {
        Self {
            username: username.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_rank() {
        assert_eq!("OP".parse::<Role>(), Ok(Role::Op));
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .contains("viewer, op or admin")
        );
        assert!(Role::Viewer < Role::Op && Role::Op < Role::Admin);
    }
}
