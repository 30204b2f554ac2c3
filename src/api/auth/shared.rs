//! Several servers over one store: each token's last use and each peer's failed
//! authentications are shared through it, so that `token list` on any server shows a use on
//! another (within [`super::TOKENS_RELOAD_EVERY`]), and a peer refused for its failures is
//! refused by every server, not given [`super::MAX_FAILURES`] tries on each.
//!
//! All of it is exchanged by the token table's reload loop, every
//! [`super::TOKENS_RELOAD_EVERY`]: a failed call never waits for the store, and a burst of them
//! is one statement a round. A peer may so make a few more failures than the limit, spread
//! over several servers within one round, before every server refuses it.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Auth, FAILURE_WINDOW, FailureWindow, MAX_FAILURES, MAX_TRACKED_PEERS};

impl Auth {
    /// Count this server's failures since the last round in the store and take each peer's
    /// window as the store counts it; send this server's last uses (if any changed) and take
    /// every server's; take the peers other servers refuse.
    pub(super) async fn share_uses_and_failures(&self) -> Result<(), String> {
        // Each part runs whatever became of the others.
        let failures = self.share_failures().await;
        let uses = self.share_uses().await;
        let refused = self.take_refused().await;
        failures.and(uses).and(refused)
    }

    async fn share_failures(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        // Copied, and subtracted once counted: a round that fails or is given up sends them
        // again (a count whose reply was lost may be counted twice: stricter, never looser).
        let failed: Vec<(IpAddr, u32)> = {
            let unshared = self
                .failures_unshared
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            unshared.iter().map(|(ip, n)| (*ip, *n)).collect()
        };
        if failed.is_empty() {
            return Ok(());
        }
        let sent: Vec<(String, u32)> = failed.iter().map(|(ip, n)| (ip.to_string(), *n)).collect();
        let windows = shared
            .store
            .record_auth_failures(&sent, FAILURE_WINDOW)
            .await
            .map_err(|e| e.to_string())?;
        {
            let mut unshared = self
                .failures_unshared
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for (ip, n) in &failed {
                if let Some(left) = unshared.get_mut(ip) {
                    *left = left.saturating_sub(*n);
                    if *left == 0 {
                        unshared.remove(ip);
                    }
                }
            }
        }
        for (peer, failures, left) in windows {
            if let Ok(ip) = peer.parse::<IpAddr>() {
                self.take_window(ip, failures, left);
            }
        }
        Ok(())
    }

    async fn share_uses(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        /// Marks the uses unshared again unless they were sent: a round that fails, or is
        /// given up at its timeout, sends them next time.
        struct SendAgain<'a>(&'a std::sync::atomic::AtomicBool, bool);
        impl Drop for SendAgain<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.store(true, Ordering::Relaxed);
                }
            }
        }
        let mut again = SendAgain(&self.uses_unshared, false);
        // The table and its version, read together (they change together under this lock):
        // the store prunes only while that version is still the current one.
        let (version, ids): (i64, Vec<String>) = {
            let config = self.config.read().unwrap_or_else(|e| e.into_inner());
            (
                shared.version.load(Ordering::Acquire),
                config.tokens.iter().map(|t| t.id().to_string()).collect(),
            )
        };
        let mine: Vec<(String, i64)> = if self.uses_unshared.swap(false, Ordering::Relaxed) {
            again.1 = true;
            let last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            // A revoked token's use is not sent back in.
            last_used
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, t)| (id.clone(), *t))
                .collect()
        } else {
            Vec::new()
        };
        let all = shared
            .store
            .share_token_uses(&mine, (version, &ids))
            .await
            .map_err(|e| e.to_string())?;
        again.1 = false;
        {
            // Uses of tokens this server knows (a revoked token's row is not taken back in).
            let config = self.config.read().unwrap_or_else(|e| e.into_inner());
            let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            last_used.retain(|id, _| config.tokens.iter().any(|k| k.id() == id));
            for (id, t) in all {
                if config.tokens.iter().any(|k| k.id() == id) {
                    let here = last_used.entry(id).or_insert(t);
                    *here = (*here).max(t);
                }
            }
        }
        Ok(())
    }

    async fn take_refused(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let refused = shared
            .store
            .refused_peers(MAX_FAILURES, FAILURE_WINDOW)
            .await
            .map_err(|e| e.to_string())?;
        for (peer, left) in refused {
            if let Ok(ip) = peer.parse::<IpAddr>() {
                self.take_window(ip, MAX_FAILURES, left);
            }
        }
        Ok(())
    }

    /// `failures` in a window with `left` to run, as the store counts them for `ip`: the
    /// larger count and the earlier start win.
    fn take_window(&self, ip: IpAddr, failures: u32, left: Duration) {
        if failures == 0 || left.is_zero() {
            return;
        }
        let started = Instant::now()
            .checked_sub(FAILURE_WINDOW.saturating_sub(left))
            .unwrap_or_else(Instant::now);
        let mut windows = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.any_failures.store(true, Ordering::Relaxed);
        if windows.len() >= MAX_TRACKED_PEERS {
            windows.retain(|_, w| w.started.elapsed() < FAILURE_WINDOW);
        }
        let w = windows.entry(ip).or_insert(FailureWindow {
            started,
            failures: 0,
        });
        if w.started.elapsed() >= FAILURE_WINDOW {
            *w = FailureWindow {
                started,
                failures: 0,
            };
        }
        w.failures = w.failures.max(failures);
        w.started = w.started.min(started);
    }
}
