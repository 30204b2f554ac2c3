//! Several servers over one store: each token's last use and each peer's failed
//! authentications are shared through it, so that `token list` on any server shows a use on
//! another (within [`super::TOKENS_RELOAD_EVERY`]), and a peer refused for its failures is
//! refused by every server, not given [`super::MAX_FAILURES`] tries on each.
//!
//! A failure is counted in the store when it happens (a failed call waits for that); the
//! peers over the limit and the last uses are exchanged by the token table's reload loop.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Auth, FAILURE_WINDOW, FailureWindow, MAX_FAILURES, MAX_TRACKED_PEERS};

impl Auth {
    /// Count a failed authentication from `ip` in the shared store and take its window's
    /// count here (another server's failures from the same peer included).
    pub(super) async fn share_failure(&self, ip: IpAddr) {
        let Some(shared) = &self.shared else { return };
        match shared
            .store
            .record_auth_failure(&ip.to_string(), FAILURE_WINDOW)
            .await
        {
            Ok((failures, left)) => self.take_window(ip, failures, left),
            Err(e) => tracing::warn!(peer = %ip, "sharing a failed authentication failed: {e}"),
        }
    }

    /// Send this server's last uses (if any changed), take every server's, and take the peers
    /// other servers refuse.
    pub(super) async fn share_uses_and_failures(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mine: Vec<(String, i64)> = if self.uses_unshared.swap(false, Ordering::Relaxed) {
            let last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            last_used.iter().map(|(id, t)| (id.clone(), *t)).collect()
        } else {
            Vec::new()
        };
        let all = match shared.store.share_token_uses(&mine).await {
            Ok(all) => all,
            Err(e) => {
                // Sent again next time.
                if !mine.is_empty() {
                    self.uses_unshared.store(true, Ordering::Relaxed);
                }
                return Err(e.to_string());
            }
        };
        {
            let mut last_used = self.last_used.lock().unwrap_or_else(|e| e.into_inner());
            for (id, t) in all {
                let here = last_used.entry(id).or_insert(t);
                *here = (*here).max(t);
            }
        }
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
