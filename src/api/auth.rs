//! Bearer-token authentication and role/domain authorization.
//!
//! Tokens live in a JSON config file, stored only as SHA-256 hex digests. Each token names a
//! principal (recorded as the actor on every event it causes), a role and, for domain admins
//! and LMS services, the domains it may touch. Roles:
//! - operator: RegisterDomain, SetLicenseLimit, CreateToken, rebuild/verify, license usage;
//! - domain admin: every account command and read for its own domains only;
//! - LMS service: RecordSignIn, RecordDataOwned, CanSignIn (its domains; none listed = all);
//! - auditor: every read, history, point-in-time and the log, in every domain.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::Status;

use super::status::{permission_denied, unauthenticated};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Operator,
    DomainAdmin,
    Lms,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::DomainAdmin => "domain-admin",
            Role::Lms => "lms",
            Role::Auditor => "auditor",
        }
    }
}

/// One token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub principal: String,
    pub role: Role,
    #[serde(default)]
    pub domains: Vec<String>,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    pub tokens: Vec<TokenEntry>,
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// RegisterDomain, SetLicenseLimit, CreateToken, rebuild, verify.
    Operate,
    /// Account commands (create, disable, delete, ...).
    ManageAccounts,
    /// RecordSignIn, RecordDataOwned.
    ReportActivity,
    CanSignIn,
    /// Current and point-in-time reads of one domain, account history.
    Read,
    /// License usage of a domain.
    ReadLicense,
    /// The whole log (ReadLog, Subscribe without a domain).
    ReadAll,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub domains: Vec<String>,
}

impl Principal {
    fn role_allows(&self, op: Op) -> bool {
        use Op::*;
        match self.role {
            Role::Operator => matches!(op, Operate | ReadLicense),
            Role::DomainAdmin => matches!(
                op,
                ManageAccounts | ReportActivity | CanSignIn | Read | ReadLicense
            ),
            Role::Lms => matches!(op, ReportActivity | CanSignIn),
            Role::Auditor => matches!(op, Read | ReadLicense | ReadAll),
        }
    }

    fn domain_allowed(&self, domain: &str) -> bool {
        match self.role {
            Role::Operator | Role::Auditor => true,
            Role::DomainAdmin => self.domains.iter().any(|d| d == domain),
            Role::Lms => self.domains.is_empty() || self.domains.iter().any(|d| d == domain),
        }
    }

    /// May this principal do `op` at all (before the domain is known)?
    pub fn require(&self, op: Op) -> Result<(), Status> {
        if self.role_allows(op) {
            Ok(())
        } else {
            Err(permission_denied(format!(
                "{} ({}) may not {}",
                self.name,
                self.role.as_str(),
                op_text(op)
            )))
        }
    }

    /// May this principal do `op` in `domain`?
    pub fn require_in(&self, op: Op, domain: &str) -> Result<(), Status> {
        self.require(op)?;
        if self.domain_allowed(domain) {
            Ok(())
        } else {
            Err(permission_denied(format!(
                "{} ({}) has no rights in domain {domain:?}",
                self.name,
                self.role.as_str()
            )))
        }
    }

    /// True when this principal sees every domain.
    pub fn all_domains(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Auditor)
            || (self.role == Role::Lms && self.domains.is_empty())
    }

    pub fn may_see(&self, domain: &str) -> bool {
        self.domain_allowed(domain)
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Operate => "run operator commands",
        Op::ManageAccounts => "manage accounts",
        Op::ReportActivity => "report sign-ins or data",
        Op::CanSignIn => "check sign-ins",
        Op::Read => "read accounts",
        Op::ReadLicense => "read license usage",
        Op::ReadAll => "read the whole log",
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token: 32 random bytes (two v4 UUIDs), hex.
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("al_{}{}", a.simple(), b.simple())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write config {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<AuthConfig, ConfigError> {
        let err = |reason: String| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Write atomically (temp file, fsync, rename); readable by the owner only on Unix.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let err = |reason: String| ConfigError::Write {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            crate::store::files::create_private_dir(dir).map_err(|e| err(e.to_string()))?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            // Created owner-only: the token hashes must not be readable by other users.
            let mut f =
                crate::store::files::create_private(&tmp).map_err(|e| err(e.to_string()))?;
            f.write_all(text.as_bytes())
                .map_err(|e| err(e.to_string()))?;
            f.sync_all().map_err(|e| err(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// Load the config, or create it with one operator token. Returns the new token's plain
    /// text when one was created (print it once).
    pub fn load_or_init(path: &Path) -> Result<(AuthConfig, Option<String>), ConfigError> {
        if path.exists() {
            return Ok((AuthConfig::load(path)?, None));
        }
        let token = new_token();
        let config = AuthConfig {
            tokens: vec![TokenEntry {
                principal: "operator".into(),
                role: Role::Operator,
                domains: vec![],
                sha256: hash_token(&token),
            }],
        };
        config.save(path)?;
        Ok((config, Some(token)))
    }
}

/// The live token table, shared by the service; new tokens are written through to the file.
#[derive(Debug)]
pub struct Auth {
    config: RwLock<AuthConfig>,
    path: Option<PathBuf>,
}

impl Auth {
    /// A token table backed by `path` (written when tokens are added).
    pub fn new(config: AuthConfig, path: Option<PathBuf>) -> Auth {
        Auth {
            config: RwLock::new(config),
            path,
        }
    }

    /// Who is calling, from `authorization: Bearer <token>`.
    pub fn authenticate<T>(&self, request: &tonic::Request<T>) -> Result<Principal, Status> {
        let value = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| unauthenticated("missing authorization metadata (Bearer token)"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthenticated("authorization metadata is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("authorization must be \"Bearer <token>\""))?;
        let digest = hash_token(token);
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        config
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.sha256.as_bytes(), digest.as_bytes()))
            .map(|t| Principal {
                name: t.principal.clone(),
                role: t.role,
                domains: t.domains.clone(),
            })
            .ok_or_else(|| unauthenticated("unknown token"))
    }

    /// Add a token; returns its plain text (shown once).
    pub fn add_token(
        &self,
        principal: &str,
        role: Role,
        domains: Vec<String>,
    ) -> Result<String, ConfigError> {
        let token = new_token();
        let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
        let mut next = config.clone();
        next.tokens.push(TokenEntry {
            principal: principal.to_string(),
            role,
            domains,
            sha256: hash_token(&token),
        });
        if let Some(path) = &self.path {
            next.save(path)?;
        }
        *config = next;
        Ok(token)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_stores_only_hashes_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let (config, token) = AuthConfig::load_or_init(&path).unwrap();
        let token = token.expect("first start creates a token");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&token));
        assert!(text.contains(&hash_token(&token)));
        let (again, none) = AuthConfig::load_or_init(&path).unwrap();
        assert!(none.is_none());
        assert_eq!(again, config);
    }
}
