//! A partition writer that stops on a panic (a bug). Its state, and maybe its read model, are
//! then part way through a group, with the group's events perhaps appended: the domain is
//! stopped rather than decided on further. Its commands are refused with
//! [`LedgerError::WriterStopped`] (INTERNAL, naming the domain), its read model is no longer
//! saved, health turns NOT_SERVING ([`crate::api::server`]), and on several servers its lease
//! is no longer renewed, so another server takes the domain. The other domains go on. The open
//! after a restart rebuilds the domain from its last save and the log after it, so nothing
//! acknowledged is lost.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::LedgerError;
use super::partition::Partition;

/// Run a partition's writer; if it panics, record why. The panic drops the replies of the
/// group in flight while it unwinds, before this records the stop, so a caller that lost its
/// reply waits for the writer's end ([`Partition::writer_gone`]) before it reads why.
pub(super) async fn supervise(
    part: Arc<Partition>,
    stopped_writers: Arc<tokio::sync::watch::Sender<usize>>,
    writer: impl Future<Output = ()>,
) {
    let run = AssertUnwindSafe(writer).catch_unwind().await;
    if let Err(panic) = run {
        let reason = crate::threads::panic_text(&panic);
        tracing::error!(
            domain = %part.domain,
            "the domain's writer stopped on a panic ({reason}): its commands are refused \
             until the server is restarted"
        );
        let _ = part.stopped.set(reason);
        part.set_fence(None);
        stopped_writers.send_modify(|n| *n += 1);
    }
    part.writer_ended.send_replace(true);
}

/// Longest a caller that lost its reply waits for the writer's end (it comes at once: the
/// writer only drops a reply while it stops).
const END_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Partition {
    /// Whether the writer stopped on a panic.
    pub(crate) fn writer_stopped(&self) -> bool {
        self.stopped.get().is_some()
    }

    /// Why a job handed to the writer got no answer: the writer stopped on a panic, or the
    /// ledger is closing.
    pub(crate) async fn writer_gone(&self) -> LedgerError {
        let mut ended = self.writer_ended.subscribe();
        let _ = tokio::time::timeout(END_WAIT, ended.wait_for(|ended| *ended)).await;
        match self.stopped.get() {
            Some(reason) => LedgerError::WriterStopped {
                domain: self.domain.clone(),
                reason: reason.clone(),
            },
            None => LedgerError::Closed,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_server::Health;

    use crate::domain::{Command, Profile};
    use crate::ledger::{Ledger, LedgerError, Request};

    /// Where an armed writer panics.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Armed {
        /// Before its next group is decided.
        Deciding,
        /// Part way through applying its next appended group to the read model (the rows and
        /// the checkpoint moved on, the domain row not yet marked for saving).
        Publishing,
    }

    /// Domains whose writer panics at the next such point (armed by a test).
    static ARMED: Mutex<Vec<(String, Armed)>> = Mutex::new(Vec::new());

    pub(crate) fn panic_if_armed(domain: &str, at: Armed) {
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = armed.iter().position(|(d, a)| d == domain && *a == at) {
            armed.remove(i);
            drop(armed);
            panic!("a panic injected by a test");
        }
    }

    fn create(domain: &str, login: &str) -> Request {
        Request::manual(
            "admin",
            Command::CreateAccount {
                domain: domain.into(),
                account: 0,
                import_id: Some(login.into()),
                profile: Profile {
                    login: login.into(),
                    first_name: "First".into(),
                    last_name: "Last".into(),
                    email: format!("{login}@school.example"),
                },
                role: "student".into(),
                enabled: true,
            },
        )
    }

    async fn register(ledger: &Ledger, domain: &str) {
        let command = Command::RegisterDomain {
            domain: domain.into(),
            license_limit: 10,
        };
        ledger
            .execute(Request::manual("op", command))
            .await
            .unwrap();
    }

    fn accounts(ledger: &Ledger, domain: &str) -> Vec<String> {
        let mut logins = ledger
            .read_domain(domain, |s| {
                s.accounts
                    .values()
                    .map(|a| a.profile.login().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap();
        logins.sort();
        logins
    }

    /// The server's overall health, as a probe asks it.
    async fn status(health: &impl Health) -> ServingStatus {
        let asked = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        let answer = health.check(asked).await.unwrap().into_inner();
        ServingStatus::try_from(answer.status).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_panics_stops_its_domain_alone_until_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).await.unwrap();
        register(&ledger, "stops.example").await;
        register(&ledger, "goes-on.example").await;
        ledger
            .execute(create("stops.example", "before"))
            .await
            .unwrap();
        assert_eq!(*ledger.stopped_writers().borrow(), 0);
        let reporter = tonic_health::server::HealthReporter::new();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let health = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        crate::api::server::spawn_health_watch(&ledger, reporter);
        assert_eq!(status(&health).await, ServingStatus::Serving);

        ARMED
            .lock()
            .unwrap()
            .push(("stops.example".into(), Armed::Deciding));
        for login in ["in-flight", "after"] {
            match ledger.execute(create("stops.example", login)).await {
                Err(LedgerError::WriterStopped { domain, reason }) => {
                    assert_eq!(domain, "stops.example");
                    assert!(reason.contains("injected"), "{reason}");
                }
                other => panic!("{login}: expected WriterStopped, got {other:?}"),
            }
        }
        assert_eq!(*ledger.stopped_writers().borrow(), 1);
        // Health says so, for an orchestrator to restart the server.
        let mut waited = 0;
        while status(&health).await != ServingStatus::NotServing {
            waited += 1;
            assert!(waited < 100, "health still serving after a writer stopped");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // A rebuild would clear the saved views and stop half way: refused before it starts.
        match ledger.rebuild_projections().await {
            Err(LedgerError::WriterStopped { domain, .. }) => assert_eq!(domain, "stops.example"),
            other => panic!("rebuild: expected WriterStopped, got {other:?}"),
        }
        // The other domain is decided as before.
        ledger
            .execute(create("goes-on.example", "other"))
            .await
            .unwrap();
        ledger.close().await.unwrap();
        drop(ledger);

        let ledger = Ledger::open(dir.path()).await.unwrap();
        assert_eq!(accounts(&ledger, "stops.example"), ["before"]);
        assert_eq!(accounts(&ledger, "goes-on.example"), ["other"]);
        ledger
            .execute(create("stops.example", "back"))
            .await
            .unwrap();
        assert_eq!(accounts(&ledger, "stops.example"), ["back", "before"]);
        assert_eq!(*ledger.stopped_writers().borrow(), 0);
        ledger.close().await.unwrap();
    }

    fn licenses_used(ledger: &Ledger, domain: &str) -> u32 {
        ledger
            .read_domain(domain, |s| s.domains[domain].licenses_used)
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_model_a_writer_stopped_in_is_not_saved_and_comes_back_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).await.unwrap();
        register(&ledger, "half.example").await;
        ledger
            .execute(create("half.example", "first"))
            .await
            .unwrap();
        ARMED
            .lock()
            .unwrap()
            .push(("half.example".into(), Armed::Publishing));
        // Appended, then the writer stops part way through applying it.
        let answer = ledger.execute(create("half.example", "second")).await;
        assert!(
            matches!(answer, Err(LedgerError::WriterStopped { .. })),
            "{answer:?}"
        );
        assert_eq!(licenses_used(&ledger, "half.example"), 2);
        // Saved, its rows and checkpoint would hold "second" but its domain row the license
        // count from before.
        ledger.close().await.unwrap();
        drop(ledger);

        let ledger = Ledger::open(dir.path()).await.unwrap();
        assert_eq!(accounts(&ledger, "half.example"), ["first", "second"]);
        assert_eq!(licenses_used(&ledger, "half.example"), 2);
        ledger.close().await.unwrap();
    }
}
