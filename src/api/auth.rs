//! Bearer-token authentication and role/domain authorization.
//!
//! Tokens live in a JSON config file, or, for several servers over one PostgreSQL store, in that
//! store (`tokens` table, the same JSON), stored only as SHA-256 hex digests. Each token names a
//! principal (recorded as the actor on every event it causes), a role and, for domain admins
//! and LMS services, the domains it may touch. Roles:
//! - operator: RegisterDomain, SetLicenseLimit, CreateToken, rebuild/verify, license usage;
//! - domain admin: every account command and read for its own domains only;
//! - LMS service: RecordSignIn, RecordDataOwned, CanSignIn (its domains; none listed = all);
//! - auditor: every read, history, point-in-time and the log, in every domain.

mod shared;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::Status;

use super::status::{permission_denied, unauthenticated};
use crate::store::pg_cluster::PgCluster;

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_us: Option<i64>,
    /// As of the last save of the config (the live value is in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_us: Option<i64>,
}

impl TokenEntry {
    /// A token entry for the plain text `token`, without dates.
    pub fn new(principal: &str, role: Role, domains: Vec<String>, token: &str) -> TokenEntry {
        TokenEntry {
            principal: principal.to_string(),
            role,
            domains,
            sha256: hash_token(token),
            created_at_us: None,
            expires_at_us: None,
            last_used_us: None,
        }
    }

    /// The public id: a prefix of the hash (of a 256-bit random secret: it reveals nothing).
    pub fn id(&self) -> &str {
        // By `get`: a damaged table's hash may not be ASCII, and slicing it could panic.
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

const UNKNOWN_TOKEN: &str = "unknown token";

/// Failed authentications one peer may make per [`FAILURE_WINDOW`] before it is refused.
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Peers remembered at most (beyond, the oldest windows are forgotten).
const MAX_TRACKED_PEERS: usize = 10_000;

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
    /// The id of the token it signed in with (streams check it is still valid as they go).
    pub token_id: String,
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
            // The same answer whether or not the domain exists: a token must not learn which
            // other districts are served here. It names what the token may act in instead.
            Err(permission_denied(format!(
                "{} ({}) has no rights in domain {domain:?}; this token acts in: {}",
                self.name,
                self.role.as_str(),
                if self.domains.is_empty() {
                    "no domain".to_string()
                } else {
                    self.domains.join(", ")
                }
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
    #[error("cannot read or save the tokens in the store: {0}")]
    Store(String),
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
        let config = AuthConfig::first(&token);
        config.save(path)?;
        Ok((config, Some(token)))
    }

    /// A new table with one operator token, `token`.
    fn first(token: &str) -> AuthConfig {
        AuthConfig {
            tokens: vec![TokenEntry {
                principal: "operator".into(),
                role: Role::Operator,
                domains: vec![],
                sha256: hash_token(token),
                created_at_us: Some(crate::store::now_us()),
                expires_at_us: None,
                last_used_us: None,
            }],
        }
    }
}

/// The live token table, shared by the service; changes are written through to the file and
/// take effect at once.
#[derive(Debug)]
pub struct Auth {
    config: RwLock<AuthConfig>,
    path: Option<PathBuf>,
    /// Token id → last successful authentication (µs).
    last_used: Mutex<HashMap<String, i64>>,
    failures: Mutex<HashMap<IpAddr, FailureWindow>>,
    /// Set once any peer has failed (until then the limit needs no lock).
    any_failures: std::sync::atomic::AtomicBool,
    /// Set by a use not yet shared with the other servers (a shared table only).
    uses_unshared: std::sync::atomic::AtomicBool,
    /// Failures per peer not yet counted in the shared store (a shared table only).
    failures_unshared: Mutex<HashMap<IpAddr, u32>>,
    /// Tokens kept in a store several servers share (instead of `path`).
    shared: Option<SharedTokens>,
}

impl std::fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTokens")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The token table in the store: every server reloads it when it changes.
struct SharedTokens {
    store: Arc<PgCluster>,
    /// The table's version this server holds.
    version: std::sync::atomic::AtomicI64,
}

impl SharedTokens {
    /// Hold `config`, the table at `version`, unless a newer one is held already (a reload and
    /// a change, or two reloads, finish in any order). Table and version change together under
    /// the table's lock, so a reader holding the lock sees a version and its table.
    fn install(&self, held: &RwLock<AuthConfig>, config: AuthConfig, version: i64) -> bool {
        let mut held = held.write().unwrap_or_else(|e| e.into_inner());
        if version <= self.version.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        *held = config;
        self.version
            .store(version, std::sync::atomic::Ordering::Release);
        true
    }
}

/// How often a server rereads the shared token table (a token revoked on another server stops
/// working here within this). A token created elsewhere works at once: an unknown token
/// rereads the table first.
pub const TOKENS_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// Longest a round of sharing uses and failures may take before it is given up (and its
/// failures counted again at the next round).
const SHARE_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct FailureWindow {
    started: Instant,
    failures: u32,
}

impl Auth {
    /// A token table backed by `path` (written when tokens change).
    pub fn new(config: AuthConfig, path: Option<PathBuf>) -> Auth {
        let last_used = config
            .tokens
            .iter()
            .filter_map(|t| t.last_used_us.map(|u| (t.id().to_string(), u)))
            .collect();
        Auth {
            config: RwLock::new(config),
            path,
            last_used: Mutex::new(last_used),
            failures: Mutex::new(HashMap::new()),
            any_failures: std::sync::atomic::AtomicBool::new(false),
            uses_unshared: std::sync::atomic::AtomicBool::new(false),
            failures_unshared: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// The token table of a store several servers share: loaded, or made with one operator
    /// token by the first server (the token's plain text is returned to that server only, to
    /// print once). Reloaded every [`TOKENS_RELOAD_EVERY`] while the `Auth` lives.
    pub async fn shared(store: Arc<PgCluster>) -> Result<(Arc<Auth>, Option<String>), ConfigError> {
        let failed = |e: crate::store::StoreError| ConfigError::Store(e.to_string());
        let mut made = None;
        let (version, json) = match store.load_tokens().await.map_err(failed)? {
            Some(found) => found,
            None => {
                let token = new_token();
                let json = serde_json::to_string(&AuthConfig::first(&token))
                    .map_err(|e| ConfigError::Store(e.to_string()))?;
                if store.init_tokens(&json).await.map_err(failed)? {
                    made = Some(token);
                }
                store
                    .load_tokens()
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| ConfigError::Store("the token table vanished".into()))?
            }
        };
        let config: AuthConfig =
            serde_json::from_str(&json).map_err(|e| ConfigError::Store(e.to_string()))?;
        let mut auth = Auth::new(config, None);
        auth.shared = Some(SharedTokens {
            store,
            version: version.into(),
        });
        let auth = Arc::new(auth);
        let weak = Arc::downgrade(&auth);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TOKENS_RELOAD_EVERY).await;
                let Some(auth) = weak.upgrade() else { return };
                match crate::threads::caught(auth.reload()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!("rereading the shared tokens failed (retried): {e}")
                    }
                    Err(panic) => {
                        tracing::error!("rereading the shared tokens panicked ({panic}); retried")
                    }
                }
                match tokio::time::timeout(SHARE_WITHIN, auth.share_uses_and_failures()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(
                        "sharing token uses and failed authentications failed (retried): {e}"
                    ),
                    Err(_) => tracing::warn!(
                        "sharing token uses and failed authentications took over {} s \
                         (retried)",
                        SHARE_WITHIN.as_secs()
                    ),
                }
            }
        });
        Ok((auth, made))
    }

    /// Reread a shared token table if it changed; true when it did.
    async fn reload(&self) -> Result<bool, ConfigError> {
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        let Some((version, json)) = shared
            .store
            .load_tokens()
            .await
            .map_err(|e| ConfigError::Store(e.to_string()))?
        else {
            return Ok(false);
        };
        if version == shared.version.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        let config: AuthConfig =
            serde_json::from_str(&json).map_err(|e| ConfigError::Store(e.to_string()))?;
        Ok(shared.install(&self.config, config, version))
    }

    /// Who is calling, from `authorization: Bearer <token>`. A failure is logged with the
    /// peer (never the token); a peer with [`MAX_FAILURES`] failures in [`FAILURE_WINDOW`]
    /// is refused (RESOURCE_EXHAUSTED) until its window ends, valid token or not.
    /// (The future holds the request's metadata, not the request: a streaming request is not
    /// `Sync`.)
    pub fn authenticate<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> impl Future<Output = Result<Principal, Status>> + Send + '_ {
        let peer = request.remote_addr();
        let header = request.metadata().get("authorization").cloned();
        async move {
            if let Some(peer) = peer {
                self.check_not_limited(peer.ip())?;
            }
            let mut checked = self.check_token(header.as_ref());
            if checked.as_ref().is_err_and(|r| r == UNKNOWN_TOKEN) && self.shared.is_some() {
                // Maybe made on another server a moment ago (or just reread by another call).
                if let Err(e) = self.reload().await {
                    tracing::warn!("rereading the shared tokens failed: {e}");
                }
                checked = self.check_token(header.as_ref());
            }
            checked.map_err(|reason| {
                self.record_failure(peer, &reason);
                unauthenticated(reason)
            })
        }
    }

    fn check_token(
        &self,
        header: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    ) -> Result<Principal, String> {
        let value = header.ok_or(
            "missing authorization metadata (Bearer token): give --token or set \
                    ACCOUNT_LEDGER_TOKEN",
        )?;
        let value = value
            .to_str()
            .map_err(|_| "authorization metadata is not text")?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or("authorization must be \"Bearer <token>\"")?;
        let digest = hash_token(token);
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let entry = config
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.sha256.as_bytes(), digest.as_bytes()))
            .ok_or(UNKNOWN_TOKEN)?;
        let now = crate::store::now_us();
        if entry.expires_at_us.is_some_and(|expiry| now >= expiry) {
            return Err(format!(
                "token {} has expired (`token list` shows when); ask an operator for a new one",
                entry.id()
            ));
        }
        {
            // Every authenticated call passes here: update in place, allocate only the first time.
            let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            match last_used.get_mut(entry.id()) {
                Some(t) => *t = now,
                None => {
                    last_used.insert(entry.id().to_string(), now);
                }
            }
            if self.shared.is_some() {
                self.uses_unshared
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(Principal {
            name: entry.principal.clone(),
            role: entry.role,
            domains: entry.domains.clone(),
            token_id: entry.id().to_string(),
        })
    }

    /// UNAUTHENTICATED once `who`'s token is revoked or expired: a long stream checks as it
    /// goes (Subscribe at each event, ExportUsers every 256 rows, so a few hundred rows
    /// already produced may still arrive), not only when the client hangs up.
    pub fn still_valid(&self, who: &Principal) -> Result<(), Status> {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let now = crate::store::now_us();
        let valid = config
            .tokens
            .iter()
            .any(|t| t.id() == who.token_id && t.expires_at_us.is_none_or(|expiry| now < expiry));
        if valid {
            Ok(())
        } else {
            Err(unauthenticated(format!(
                "token {} was revoked or has expired during this stream",
                who.token_id
            )))
        }
    }

    fn check_not_limited(&self, ip: IpAddr) -> Result<(), Status> {
        // Fast path for every call while no peer has failed: no lock.
        if !self.any_failures.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = failures.get(&ip)
            && w.failures >= MAX_FAILURES
        {
            let left = FAILURE_WINDOW.saturating_sub(w.started.elapsed());
            if !left.is_zero() {
                return Err(Status::resource_exhausted(format!(
                    "too many failed authentications from {ip}; retry in {} s",
                    left.as_secs() + 1
                )));
            }
        }
        Ok(())
    }

    fn record_failure(&self, peer: Option<SocketAddr>, reason: &str) {
        let Some(peer) = peer else {
            tracing::warn!(reason, "authentication failed (peer unknown)");
            return;
        };
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.any_failures
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if failures.len() >= MAX_TRACKED_PEERS {
            failures.retain(|_, w| w.started.elapsed() < FAILURE_WINDOW);
        }
        let w = failures.entry(peer.ip()).or_insert(FailureWindow {
            started: Instant::now(),
            failures: 0,
        });
        if w.started.elapsed() >= FAILURE_WINDOW {
            *w = FailureWindow {
                started: Instant::now(),
                failures: 0,
            };
        }
        w.failures += 1;
        if self.shared.is_some() {
            let mut unshared = self
                .failures_unshared
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if unshared.len() < MAX_TRACKED_PEERS {
                *unshared.entry(peer.ip()).or_default() += 1;
            }
        }
        if w.failures < MAX_FAILURES {
            tracing::warn!(peer = %peer, reason, "authentication failed");
        } else if w.failures == MAX_FAILURES {
            tracing::warn!(
                peer = %peer.ip(),
                "authentication failed {MAX_FAILURES} times within {} s: refusing this \
                 address until the window ends",
                FAILURE_WINDOW.as_secs()
            );
        }
    }

    /// Add a token; returns its plain text (shown once) and its public id.
    pub async fn add_token(
        &self,
        principal: &str,
        role: Role,
        domains: Vec<String>,
        expires_at_us: Option<i64>,
    ) -> Result<(String, String), ConfigError> {
        let token = new_token();
        let entry = TokenEntry {
            principal: principal.to_string(),
            role,
            domains,
            sha256: hash_token(&token),
            created_at_us: Some(crate::store::now_us()),
            expires_at_us,
            last_used_us: None,
        };
        let id = entry.id().to_string();
        self.change(|tokens| tokens.push(entry.clone())).await?;
        Ok((token, id))
    }

    /// Revoke the token with this id; returns it, or `None` when there is none.
    pub async fn revoke(&self, id: &str) -> Result<Option<TokenEntry>, ConfigError> {
        let mut removed = None;
        self.change(|tokens| {
            removed = None;
            if let Some(i) = tokens.iter().position(|t| t.id() == id) {
                removed = Some(tokens.remove(i));
            }
        })
        .await?;
        Ok(removed)
    }

    /// Every token with its live last use.
    pub fn list(&self) -> Vec<TokenEntry> {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        self.list_locked(&config)
    }

    /// Apply `f` to the token table, save it (with the live last uses), then make it live. A
    /// shared table is changed only if no other server changed it meanwhile (else reread and
    /// `f` applied again).
    async fn change(&self, mut f: impl FnMut(&mut Vec<TokenEntry>)) -> Result<(), ConfigError> {
        let Some(shared) = &self.shared else {
            return self.change_file(f);
        };
        let failed = |e: crate::store::StoreError| ConfigError::Store(e.to_string());
        loop {
            let (version, json) = shared
                .store
                .load_tokens()
                .await
                .map_err(failed)?
                .ok_or_else(|| ConfigError::Store("the token table is missing".into()))?;
            let mut next: AuthConfig =
                serde_json::from_str(&json).map_err(|e| ConfigError::Store(e.to_string()))?;
            f(&mut next.tokens);
            let json =
                serde_json::to_string(&next).map_err(|e| ConfigError::Store(e.to_string()))?;
            if let Some(saved) = shared
                .store
                .save_tokens(version, &json)
                .await
                .map_err(failed)?
            {
                shared.install(&self.config, next, saved);
                return Ok(());
            }
        }
    }

    fn change_file(&self, f: impl FnOnce(&mut Vec<TokenEntry>)) -> Result<(), ConfigError> {
        let mut config = self.config.write().unwrap_or_else(|e| e.into_inner());
        let mut next = AuthConfig {
            tokens: self.list_locked(&config),
        };
        f(&mut next.tokens);
        if let Some(path) = &self.path {
            next.save(path)?;
        }
        *config = next;
        Ok(())
    }

    /// The tokens of `config` with their live last uses (lock order: config, then last uses).
    fn list_locked(&self, config: &AuthConfig) -> Vec<TokenEntry> {
        let last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        config
            .tokens
            .iter()
            .map(|t| TokenEntry {
                last_used_us: last_used.get(t.id()).copied().or(t.last_used_us),
                ..t.clone()
            })
            .collect()
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
