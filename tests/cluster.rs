//! Three `account-ledger serve` processes over one PostgreSQL schema: any of them answers the
//! whole API, a domain's commands are decided by one of them at a time (leases with fencing,
//! forwarding), and killing the deciding server with -9 moves its domains without losing an
//! acknowledged command.

mod common;
mod served;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use account_ledger::api::pb;
use common::*;
use served::Served;
use tonic::Code;

/// Three servers on a fresh schema (dropped when the cluster is dropped).
struct Cluster {
    servers: Vec<Option<Served>>,
    clients: Vec<Client>,
    operator: String,
    schema: String,
    _dirs: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let schema = format!("al_cluster_{}", uuid::Uuid::new_v4().simple());
        let url = pg_url();
        let dirs = tempfile::tempdir().unwrap();
        let mut servers = Vec::new();
        let mut clients = Vec::new();
        let mut operator = None;
        for i in 0..3 {
            let args = ["--store", url.as_str(), "--store-schema", schema.as_str()];
            let s = Served::start(&dirs.path().join(format!("s{i}")), "127.0.0.1:0", &args);
            match (&operator, &s.token) {
                (None, Some(t)) => operator = Some(t.clone()),
                (Some(_), Some(_)) => panic!("only the server that made the store prints a token"),
                _ => {}
            }
            clients.push(connect(s.addr).await);
            servers.push(Some(s));
        }
        Cluster {
            servers,
            clients,
            operator: operator.expect("the first server printed the operator token"),
            schema,
            _dirs: dirs,
        }
    }

    fn c(&self, i: usize) -> Client {
        self.clients[i].clone()
    }

    /// Register `domain` through server `via` (which then decides it) and make an admin token
    /// for it through another server.
    /// A new auditor token, made through server 0.
    async fn auditor_token(&self, principal: &str) -> pb::CreateTokenResponse {
        self.c(0)
            .create_token(req(
                &self.operator,
                pb::CreateTokenRequest {
                    principal: principal.into(),
                    role: pb::Role::Auditor as i32,
                    domains: vec![],
                    expires_at: None,
                },
            ))
            .await
            .expect("create token")
            .into_inner()
    }

    async fn domain(&self, via: usize, domain: &str, limit: u64) -> String {
        self.c(via)
            .register_domain(req(
                &self.operator,
                pb::RegisterDomainRequest {
                    domain: domain.into(),
                    license_limit: limit,
                    request_id: None,
                    expected_version: None,
                },
            ))
            .await
            .expect("register");
        self.c((via + 1) % 3)
            .create_token(req(
                &self.operator,
                pb::CreateTokenRequest {
                    principal: format!("admin-{domain}"),
                    role: pb::Role::DomainAdmin as i32,
                    domains: vec![domain.into()],
                    expires_at: None,
                },
            ))
            .await
            .expect("create token")
            .into_inner()
            .token
    }

    fn kill(&mut self, i: usize) {
        let mut s = self.servers[i].take().unwrap();
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for s in self.servers.iter_mut().filter_map(Option::take) {
            drop(s);
        }
        let _ = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .output();
    }
}

/// Wait (up to 5 s) until `check` holds on server `c`'s answers: reads follow other servers'
/// writes within milliseconds, not at once.
async fn eventually<T, F, Fut>(mut read: F, check: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = read().await;
        if check(&value) || Instant::now() > deadline {
            assert!(check(&value), "not reached in 5 s: {value:?}");
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn verify(c: &mut Client, operator: &str) -> pb::VerifyProjectionsResponse {
    c.verify_projections(req(operator, pb::VerifyProjectionsRequest {}))
        .await
        .expect("verify")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enables_at_the_limit_sent_to_different_servers_enable_exactly_the_limit() {
    let cluster = Cluster::start().await;
    // The token is made through server 1 and used at once on servers 0 and 2.
    let admin = cluster.domain(0, "d1", 5).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let mut request = create("d1", &format!("u{i}"), Some(&format!("S{i}")));
        request.enabled = Some(false);
        let reply = cluster
            .c(i % 3)
            .create_account(req(&admin, request))
            .await
            .expect("create on any server");
        ids.push(reply.into_inner().account.unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 12, "account numbers are unique: {ids:?}");

    let mut tasks = Vec::new();
    for (i, id) in ids.iter().copied().enumerate() {
        let mut c = cluster.c(i % 3);
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            c.enable_account(req(&admin, account_cmd(id))).await
        }));
    }
    let mut enabled = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => enabled += 1,
            Err(s) => assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}"),
        }
    }
    assert_eq!(enabled, 5, "exactly the limit is enabled");
    for i in 0..3 {
        let mut c = cluster.c(i);
        let usage = eventually(
            || {
                let mut c = c.clone();
                let admin = admin.clone();
                async move { license_usage(&mut c, &admin, "d1", None).await }
            },
            |u| u.used == 5,
        )
        .await;
        assert_eq!(usage.limit, 5);
        let v = verify(&mut c, &cluster.operator).await;
        assert!(v.equal, "server {i}: {}", v.detail);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_on_one_server_is_seen_on_the_others_and_tokens_revoked_anywhere_stop_everywhere()
{
    let cluster = Cluster::start().await;
    let admin = cluster.domain(2, "d1", 100).await;
    let server1 = cluster.servers[1].as_ref().unwrap().addr;
    let mut imports = account_ledger::api::pb::import_service_client::ImportServiceClient::connect(
        format!("http://{server1}"),
    )
    .await
    .unwrap();
    let header = pb::ImportHeader {
        domain: "d1".into(),
        file_name: "users.csv".into(),
        ..Default::default()
    };
    let csv = "import_id,first_name,last_name,login,email,user_type,enabled\n\
               S1,Ann,Lee,ann,ann@x.example,student,1\n\
               S2,Bob,Ray,bob,bob@x.example,student,1\n\
               S3,Cy,Day,cy,cy@x.example,teacher,0\n";
    let job = upload(&mut imports, &admin, header, csv.as_bytes())
        .await
        .expect("import through a server that does not decide d1");
    assert_eq!(job.events_written, 3, "{job:?}");
    for i in [0, 2] {
        let mut c = cluster.c(i);
        let listed = eventually(
            || {
                let mut c = c.clone();
                let admin = admin.clone();
                async move {
                    let mut all = list_request("d1");
                    all.include_disabled = true;
                    c.list_accounts(req(&admin, all))
                        .await
                        .unwrap()
                        .into_inner()
                        .accounts
                        .into_iter()
                        .map(|a| a.import_id.unwrap_or_default())
                        .collect::<Vec<_>>()
                }
            },
            |ids| ids.len() == 3,
        )
        .await;
        assert_eq!(listed, ["S1", "S2", "S3"], "server {i}");
        let history = c
            .get_import_job_history(req(
                &admin,
                pb::GetImportJobHistoryRequest {
                    job_id: job.job_id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("job history on every server")
            .into_inner();
        assert_eq!(history.events.len(), 3);
        let v = verify(&mut c, &cluster.operator).await;
        assert!(v.equal, "server {i}: {}", v.detail);
        // The job is listed, with its counts, on servers that did not run it.
        let addr = cluster.servers[i].as_ref().unwrap().addr;
        let other =
            pb::import_service_client::ImportServiceClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
        let listed = eventually(
            || {
                let mut other = other.clone();
                let admin = admin.clone();
                async move {
                    other
                        .list_import_jobs(req(
                            &admin,
                            pb::ListImportJobsRequest {
                                domain: "d1".into(),
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner()
                        .jobs
                }
            },
            |jobs| jobs.len() == 1,
        )
        .await;
        assert_eq!(listed[0].job_id, job.job_id);
        assert_eq!(listed[0].counts.unwrap().created, 3);
    }

    // Revoked through server 0; refused on server 1 within the reload period.
    let tokens = cluster
        .c(0)
        .list_tokens(req(&cluster.operator, pb::ListTokensRequest {}))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let id = tokens
        .iter()
        .find(|t| t.principal == "admin-d1")
        .unwrap()
        .id
        .clone();
    cluster
        .c(0)
        .revoke_token(req(&cluster.operator, pb::RevokeTokenRequest { id }))
        .await
        .unwrap();
    let mut c1 = cluster.c(1);
    let refused = eventually(
        || {
            let mut c = c1.clone();
            let admin = admin.clone();
            async move {
                c.get_license_usage(req(&admin, usage_request("d1", None)))
                    .await
                    .err()
                    .map(|s| s.code())
            }
        },
        |code| *code == Some(Code::Unauthenticated),
    )
    .await;
    assert_eq!(refused, Some(Code::Unauthenticated));
    let _ = c1
        .get_license_usage(req(&cluster.operator, usage_request("d1", None)))
        .await
        .expect("the operator still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_deciding_server_moves_its_domains_and_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start().await;
    // Server 0 registers, so decides, both domains; clients write through servers 1 and 2.
    let admins = [
        cluster.domain(0, "d1", 100_000).await,
        cluster.domain(0, "d2", 100_000).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8usize {
        let mut c = cluster.c(1 + w % 2);
        let admin = admins[w % 2].clone();
        let domain = format!("d{}", 1 + w % 2);
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            // import id → (request id, account number) of every acknowledged create.
            let mut acked = BTreeMap::new();
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let iid = format!("w{w}-{i}");
                let mut request = create(&domain, &iid, Some(&iid));
                request.request_id = Some(format!("req-{iid}"));
                // A client retries a failed call with the same request id until it is answered.
                for _ in 0..200 {
                    match c.create_account(req(&admin, request.clone())).await {
                        Ok(r) => {
                            acked.insert(iid.clone(), r.into_inner().account.unwrap());
                            break;
                        }
                        Err(s) => {
                            assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
            (domain, admin, acked)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.kill(0);
    // The lease runs out (5 s) and the next command takes the domains over.
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.unwrap());
    }
    let total: usize = results.iter().map(|(_, _, a)| a.len()).sum();
    assert!(total > 50, "writes went on: {total}");

    for i in [1, 2] {
        let mut c = cluster.c(i);
        for (domain, admin, acked) in &results {
            for (iid, id) in acked {
                let account = c
                    .get_account(req(admin, get_request(by_import(domain, iid), None)))
                    .await
                    .unwrap_or_else(|s| panic!("{iid} acknowledged but missing on {i}: {s:?}"))
                    .into_inner();
                assert_eq!(account.id, *id);
            }
        }
        let v = verify(&mut c, &cluster.operator).await;
        assert!(v.equal, "server {i}: {}", v.detail);
    }
    // A retry with a request id already answered gets the first answer, from any server.
    let (domain, admin, acked) = &results[0];
    let (iid, id) = acked.iter().next().unwrap();
    let mut request = create(domain, iid, Some(iid));
    request.request_id = Some(format!("req-{iid}"));
    let again = cluster
        .c(2)
        .create_account(req(admin, request))
        .await
        .expect("a retry is answered")
        .into_inner();
    assert_eq!(again.account, Some(*id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_warned_by_one_server_is_confirmed_on_another() {
    let cluster = Cluster::start().await;
    let admin = cluster.domain(0, "d1", 10).await;
    let id = create_account(&mut cluster.c(1), &admin, "d1", "ann", Some("S1")).await;
    let warned = cluster
        .c(2)
        .delete_account(req(&admin, confirmable(id, None)))
        .await
        .expect("warning");
    let token = confirmation_of(warned.into_inner()).confirmation_token;
    // Another principal cannot use it, on any server.
    let other = cluster.domain(1, "d2", 10).await;
    let refused = cluster
        .c(1)
        .delete_account(req(&other, confirmable(id, Some(token.clone()))))
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let done = cluster
        .c(1)
        .delete_account(req(&admin, confirmable(id, Some(token.clone()))))
        .await
        .expect("confirmed on another server");
    assert!(!done_of(done.into_inner()).positions.is_empty());
    // Used once, it acts no more.
    let again = cluster
        .c(0)
        .delete_account(req(&admin, confirmable(id, Some(token))))
        .await;
    assert!(again.is_err(), "{again:?}");
    let account = get_account(&mut cluster.c(0), &admin, by_id(id), None).await;
    assert_eq!(account.status, pb::AccountStatus::Deleted as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_history_and_point_in_time_answer_on_a_server_that_did_not_write() {
    let cluster = Cluster::start().await;
    let admin = cluster.domain(0, "d1", 10).await;
    // Server 2 streams d1 while server 0 (which decides d1) writes.
    let mut events = subscribe(&mut cluster.c(2), &admin, 0, Some("d1")).await;
    let first = next_event(&mut events).await;
    assert_eq!(first.kind, "DomainRegistered");
    let id = create_account(&mut cluster.c(0), &admin, "d1", "ann", Some("S1")).await;
    let created = next_event(&mut events).await;
    assert_eq!(
        (created.kind.as_str(), created.account),
        ("AccountCreated", Some(id))
    );
    let between = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    deactivate(&mut cluster.c(0), &admin, id).await;
    let deactivated = next_event(&mut events).await;
    assert_eq!(deactivated.kind, "AccountDeactivated");
    assert!(created.position < deactivated.position);

    // Server 1: the account now, as of between the two changes, and its history.
    let mut c1 = cluster.c(1);
    let now = eventually(
        || {
            let mut c = c1.clone();
            let admin = admin.clone();
            async move { get_account(&mut c, &admin, by_id(id), None).await }
        },
        |a| a.status == pb::AccountStatus::Deactivated as i32,
    )
    .await;
    assert_eq!(now.id, id);
    let then = prost_types::Timestamp {
        seconds: between.as_secs() as i64,
        nanos: between.subsec_nanos() as i32,
    };
    let past = get_account(&mut c1, &admin, by_id(id), Some(then)).await;
    assert_eq!(past.status, pb::AccountStatus::Enabled as i32, "{past:?}");
    let history = account_history(&mut c1, &admin, id).await;
    let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["AccountCreated", "AccountDeactivated"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_written_through_one_server_open_on_the_others_until_deleted() {
    let cluster = Cluster::start().await;
    let admin = cluster.domain(0, "d1", 10).await;
    let id = create_account(&mut cluster.c(0), &admin, "d1", "zelda", Some("S1")).await;
    let read_on = |i: usize| {
        let (c, admin) = (cluster.c(i), admin.clone());
        move || {
            let (mut c, admin) = (c.clone(), admin.clone());
            async move {
                c.get_account(req(&admin, get_request(by_id(id), None)))
                    .await
                    .ok()
                    .map(|r| r.into_inner())
            }
        }
    };
    for i in [1, 2] {
        let account = eventually(read_on(i), Option::is_some).await.unwrap();
        assert_eq!(account.profile, profile("zelda"), "server {i}");
        let found = cluster
            .c(i)
            .list_accounts(req(
                &admin,
                pb::ListAccountsRequest {
                    search: Some("zelda@school".into()),
                    ..list_request("d1")
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .accounts;
        assert_eq!(found.len(), 1, "server {i} finds it by email");
    }
    let warned = cluster
        .c(0)
        .delete_account(req(&admin, confirmable(id, None)))
        .await
        .unwrap();
    let token = confirmation_of(warned.into_inner()).confirmation_token;
    cluster
        .c(0)
        .delete_account(req(&admin, confirmable(id, Some(token))))
        .await
        .unwrap();
    for i in [1, 2] {
        let deleted = |a: &Option<pb::Account>| {
            a.as_ref()
                .is_some_and(|a| a.status == pb::AccountStatus::Deleted as i32)
        };
        let account = eventually(read_on(i), deleted).await;
        let history = cluster
            .c(i)
            .get_account_history(req(
                &admin,
                pb::GetAccountHistoryRequest { account: by_id(id) },
            ))
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(history.len(), 2, "server {i}: created, deleted");
        // The personal data is gone from every server's answers, the creation's included.
        let answers = format!("{account:?} {history:?}");
        assert!(!answers.contains("zelda"), "server {i}: {answers}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_forwarded_to_the_deciding_server_reads_back_at_once_where_it_was_sent() {
    let cluster = Cluster::start().await;
    let admin = cluster.domain(0, "d1", 10).await;
    // Server 1 forwards to server 0, which decides d1; its next read is its own.
    let id = create_account(&mut cluster.c(1), &admin, "d1", "yuri", Some("Y1")).await;
    let account = get_account(&mut cluster.c(1), &admin, by_id(id), None).await;
    assert_eq!(account.profile, profile("yuri"));
    // A schedule made through server 1 is answered from what server 1 reads back.
    let addr = cluster.servers[1].as_ref().unwrap().addr;
    let mut schedules =
        pb::schedule_service_client::ScheduleServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let hour = 3_600_000_000;
    let made = schedules
        .schedule_change(req(
            &admin,
            pb::ScheduleChangeRequest {
                domain: "d1".into(),
                selection: Some(pb::ScheduleSelection {
                    kind: Some(pb::schedule_selection::Kind::Role("student".into())),
                }),
                action: pb::ScheduledAction::Disable as i32,
                at: Some(account_ledger::api::convert::us_to_timestamp(now_us + hour)),
                until: Some(account_ledger::api::convert::us_to_timestamp(
                    now_us + 2 * hour,
                )),
                reason: "summer break".into(),
                request_id: None,
            },
        ))
        .await
        .expect("a schedule made through a server that does not decide d1")
        .into_inner();
    assert_eq!(made.status, "pending");
    assert!(made.position > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_lease_was_taken_over_reads_what_the_new_owner_wrote() {
    let cluster = Cluster::start().await;
    let admin = cluster.domain(0, "d1", 10).await;
    let mut first = cluster.c(0);
    let ann = create_account(&mut first, &admin, "d1", "ann", Some("S1")).await;
    // Server 0 stalls past its lease (as a paused process would: its lease ran out, and a
    // server that has since stopped took it) and server 1, never told who decides d1, takes
    // the domain over and writes while server 0 still believes it holds it.
    let expired = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-qc"])
        .arg(format!(
            "UPDATE {}.leases SET owner = gen_random_uuid(), epoch = epoch + 1,
                 expires_at = now() - interval '1 second' WHERE domain = 'd1'",
            cluster.schema
        ))
        .output()
        .expect("psql");
    assert!(expired.status.success(), "{expired:?}");
    let mut second = cluster.c(1);
    deactivate(&mut second, &admin, ann).await;
    let bob = create_account(&mut second, &admin, "d1", "bob", Some("S2")).await;
    // Server 0 finds out at its next renewal, and then reads both changes.
    let account = eventually(
        || {
            let mut c = first.clone();
            let admin = admin.clone();
            async move { get_account(&mut c, &admin, by_id(ann), None).await.status }
        },
        |status| *status == pb::AccountStatus::Deactivated as i32,
    )
    .await;
    assert_eq!(account, pb::AccountStatus::Deactivated as i32);
    let found = get_account(&mut first, &admin, by_id(bob), None).await;
    assert_eq!(found.profile, profile("bob"));
    // And its commands for d1 go to the new owner, on the whole history.
    reactivate(&mut first, &admin, ann, None).await;
    let verified = verify(&mut first, &cluster.operator).await;
    assert!(verified.equal, "{verified:?}");
}

/// A token's use on one server shows in `ListTokens` on another, and a peer's failed
/// authentications on several servers add up: it is then refused by every server, valid token
/// or not (not given `MAX_FAILURES` tries on each server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_uses_and_failed_authentications_count_across_servers() {
    let cluster = Cluster::start().await;
    let created = cluster.auditor_token("auditor-on-2").await;
    let last_used_on_0 = || {
        let mut c = cluster.c(0);
        let (operator, id) = (cluster.operator.clone(), created.id.clone());
        async move {
            c.list_tokens(req(&operator, pb::ListTokensRequest {}))
                .await
                .unwrap()
                .into_inner()
                .tokens
                .into_iter()
                .find(|t| t.id == id)
                .expect("listed")
                .last_used
        }
    };
    assert_eq!(last_used_on_0().await, None, "not used yet");
    cluster
        .c(2)
        .list_tokens(req(&created.token, pb::ListTokensRequest {}))
        .await
        .expect_err("an auditor may not list tokens, but it is authenticated");
    eventually(last_used_on_0, Option::is_some).await;

    // Failures from this address, half the limit on server 1 and half on server 0: they add
    // up, and server 2, which saw none, then refuses the address.
    let max = account_ledger::api::auth::MAX_FAILURES;
    for (server, failures) in [(1, max / 2), (0, max - max / 2)] {
        let mut c = cluster.c(server);
        for _ in 0..failures {
            let status = c
                .list_tokens(req("al_not-a-token", pb::ListTokensRequest {}))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        }
    }
    let refused = eventually(
        || {
            let mut c = cluster.c(2);
            let operator = cluster.operator.clone();
            async move {
                c.list_tokens(req(&operator, pb::ListTokensRequest {}))
                    .await
                    .err()
                    .map(|s| s.code())
            }
        },
        |code| *code == Some(Code::ResourceExhausted),
    )
    .await;
    assert_eq!(refused, Some(Code::ResourceExhausted));
}

/// A revoked token's row of shared last uses leaves the database (the table holds the live
/// tokens' uses only), and a server that still remembers the use does not put it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_tokens_last_use_leaves_the_shared_store() {
    let cluster = Cluster::start().await;
    let created = cluster.auditor_token("short-lived").await;
    let (db, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let sql = format!("SELECT id FROM {}.token_uses", cluster.schema);
    let rows = || {
        let (db, sql) = (&db, sql.clone());
        async move {
            let mut ids: Vec<String> = db
                .query(&sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            ids.sort();
            ids
        }
    };
    // Used on server 2: its row appears.
    cluster
        .c(2)
        .list_tokens(req(&created.token, pb::ListTokensRequest {}))
        .await
        .expect_err("an auditor may not list tokens, but it is authenticated");
    eventually(&rows, |ids| ids.contains(&created.id)).await;
    cluster
        .c(1)
        .revoke_token(req(
            &cluster.operator,
            pb::RevokeTokenRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .expect("revoke");
    // The revoked token's row goes, and stays gone although server 2, which saw its use,
    // shares its uses again (the operator's call there).
    eventually(&rows, |ids| !ids.contains(&created.id)).await;
    cluster
        .c(2)
        .list_tokens(req(&cluster.operator, pb::ListTokensRequest {}))
        .await
        .expect("the operator lists tokens");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !rows().await.contains(&created.id),
        "put back after its revocation"
    );
}

/// Account numbers come from the shared store in blocks, per domain writer. A group of new
/// accounts larger than a block, in a domain whose spare numbers the next block no longer
/// follows (another domain reserved in between), still gets a number for every account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_larger_than_a_number_block_after_another_domains_block_numbers_every_row() {
    let cluster = Cluster::start().await;
    let admins = [
        cluster.domain(0, "a", 1000).await,
        cluster.domain(0, "b", 1000).await,
    ];
    let server0 = cluster.servers[0].as_ref().unwrap().addr;
    let mut imports = account_ledger::api::pb::import_service_client::ImportServiceClient::connect(
        format!("http://{server0}"),
    )
    .await
    .unwrap();
    let header = |domain: &str| pb::ImportHeader {
        domain: domain.into(),
        file_name: "users.csv".into(),
        confirm_mass_change: true,
        ..Default::default()
    };
    let rows = |domain: &str, n: usize| {
        let mut csv =
            String::from("import_id,first_name,last_name,login,email,user_type,enabled\n");
        for i in 0..n {
            csv += &format!("{domain}{i},F,L,{domain}{i},{domain}{i}@x.example,student,1\n");
        }
        csv
    };
    // One account in a (its writer holds a block with spare numbers), then one in b (its block
    // comes after a's).
    for (domain, admin) in ["a", "b"].into_iter().zip(&admins) {
        let job = upload(
            &mut imports,
            admin,
            header(domain),
            rows(domain, 1).as_bytes(),
        )
        .await
        .expect("the first account");
        assert_eq!(job.events_written, 1, "{job:?}");
    }
    let job = upload(
        &mut imports,
        &admins[0],
        header("a"),
        rows("a", 301).as_bytes(),
    )
    .await
    .expect("300 new accounts in a");
    assert_eq!(job.events_written, 300, "{job:?}");
    let listed = cluster
        .c(0)
        .list_accounts(req(&admins[0], list_request("a")))
        .await
        .expect("a still answers")
        .into_inner();
    assert_eq!(listed.total, 301);
}
