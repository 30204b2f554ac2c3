//! `serve --store` on PostgreSQL, through the real binary: the log and the keys live in the
//! database (a server whose local view cache is gone rebuilds everything from it, names
//! included), a deleted account's key row leaves the database with its deletion, and the
//! schema is created by the server. Needs PostgreSQL (see tests/event_log.rs).

mod served;

use served::Served;

fn pg_url() -> String {
    std::env::var("ACCOUNT_LEDGER_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

fn psql(sql: &str) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (client, connection) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL does not answer at {:?}: {e}", pg_url()));
        tokio::spawn(connection);
        let rows = client.simple_query(sql).await.unwrap();
        rows.iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// A schema of its own for one test, dropped when the test ends (kept after a failure, for a
/// look, and because a panic while unwinding would abort), and the `serve` arguments that use it.
struct Schema {
    name: String,
    url: String,
}

impl Schema {
    fn new() -> Schema {
        Schema::with_url(pg_url())
    }

    fn with_url(url: String) -> Schema {
        Schema {
            name: format!("al_serve_{}", uuid::Uuid::new_v4().simple()),
            url,
        }
    }

    fn args(&self) -> [&str; 4] {
        ["--store", &self.url, "--store-schema", &self.name]
    }

    fn drop_now(&self) {
        psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.drop_now();
        }
    }
}

#[test]
fn a_server_on_postgres_keeps_log_and_keys_in_the_database() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = schema.args();
    let server = Served::start(&data, "127.0.0.1:0", &args);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    for (login, iid) in [("ann", "S1"), ("bob", "S2")] {
        let (code, _, err) = server.cli(
            &admin,
            &[
                "account",
                "create",
                "--domain",
                "d1",
                "--login",
                login,
                "--import-id",
                iid,
                "--first-name",
                "First",
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = server.cli(&admin, &["account", "delete", "d1:S2", "--yes"]);
    assert_eq!(code, 0, "{err}");
    drop(server);

    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM {}.account_keys",
            schema.name
        )),
        "1"
    );
    let events: u64 = psql(&format!("SELECT count(*) FROM {}.events", schema.name))
        .parse()
        .unwrap();
    assert!(events >= 4, "{events} events");

    // Without its local view cache, a server rebuilds everything from the database.
    std::fs::remove_dir_all(data.join("views-cache")).unwrap();
    let server = Served::start(&data, "127.0.0.1:0", &args);
    let (code, out, err) = server.cli(&admin, &["account", "show", "d1:S1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let ann: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ann["login"], "ann", "{ann}");
    assert_eq!(ann["first_name"], "First", "{ann}");
    let (code, out, _) = server.cli(&admin, &["account", "show", "2", "--json"]);
    assert_eq!(code, 0);
    let bob: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(bob["status"], "deleted", "{bob}");
    assert_ne!(bob["login"], "bob", "erased: {bob}");
    drop(server);
}

/// SIGTERM and wait: the server saves its views before it exits.
fn stop(mut server: Served) {
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn a_view_cache_made_from_another_store_is_never_caught_up_with_this_one() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().unwrap();
    let (mine, other) = (dir.path().join("mine"), dir.path().join("other"));
    let args = schema.args();
    let server = Served::start(&mine, "127.0.0.1:0", &args);
    let op = server.token.clone().unwrap();
    server.domain_admin(&op, "old");
    stop(server);
    assert!(mine.join("views-cache").join("STORE_ID").exists());
    // The schema is dropped and made again, and another server writes more than we had.
    schema.drop_now();
    let server = Served::start(&other, "127.0.0.1:0", &args);
    let op2 = server.token.clone().unwrap();
    let admin = server.domain_admin(&op2, "new");
    for login in ["a", "b", "c"] {
        let (code, _, err) = server.cli(
            &admin,
            &["account", "create", "--domain", "new", "--login", login],
        );
        assert_eq!(code, 0, "{err}");
    }
    stop(server);
    // Our old cache (domain "old", checkpoint behind the new log's end) must not come back.
    // (Tokens live in the store: the old store's operator token went with it.)
    let server = Served::start(&mine, "127.0.0.1:0", &args);
    let (code, _, err) = server.cli(&op, &["license", "new"]);
    assert_ne!(code, 0, "a token of the dropped store: {err}");
    let op = op2;
    let (code, _, err) = server.cli(&op, &["license", "old"]);
    assert_ne!(code, 0, "domain old is not in this store");
    assert!(err.contains("not") || err.contains("denied"), "{err}");
    let (code, out, err) = server.cli(&op, &["license", "new"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains('3'), "{out}");
    drop(server);
}

/// `account create` of `login` in d1 through `server`: the CLI's exit code and stderr.
fn create(server: &Served, admin: &str, login: &str) -> (i32, String) {
    let (code, _, err) = server.cli(
        admin,
        &["account", "create", "--domain", "d1", "--login", login],
    );
    (code, err)
}

#[test]
fn a_server_rides_through_the_database_cutting_its_connections() {
    let app = format!("al_cut_{}", uuid::Uuid::new_v4().simple());
    let schema = Schema::with_url(format!("{} application_name={app}", pg_url()));
    let dir = tempfile::tempdir().unwrap();
    let args = schema.args();
    let server = Served::start(&dir.path().join("data"), "127.0.0.1:0", &args);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    assert_eq!(create(&server, &admin, "ann").0, 0);

    // Every session of this server ends, as at a database restart or failover.
    let sessions = format!("FROM pg_stat_activity WHERE application_name = '{app}'");
    let pids = psql(&format!("SELECT string_agg(pid::text, ',') {sessions}"));
    let cut: usize = psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) {sessions}"
    ))
    .parse()
    .unwrap();
    assert!(
        cut >= 3,
        "the writer's, reader's and cluster's sessions at least: {cut}"
    );
    let gone = format!("SELECT count(*) FROM pg_stat_activity WHERE pid IN ({pids})");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while psql(&gone) != "0" {
        assert!(std::time::Instant::now() < deadline, "sessions not ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Commands and reads of the log go on, on new sessions.
    let (code, err) = create(&server, &admin, "bob");
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.cli(&admin, &["account", "history", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("AccountCreated") || out.contains("account_created"),
        "{out}"
    );
    let (code, out, err) = server.cli(&admin, &["account", "show", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    let bob: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(bob["login"], "bob", "{bob}");
    drop(server);
}

#[test]
fn a_column_changed_by_hand_is_refused_naming_it_not_a_panic() {
    let schema = Schema::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = schema.args();
    let server = Served::start(&data, "127.0.0.1:0", &args);
    let op = server.token.clone().unwrap();
    server.domain_admin(&op, "d1");
    stop(server);
    psql(&format!(
        "ALTER TABLE {}.events ALTER COLUMN recorded_at_us TYPE numeric",
        schema.name
    ));
    // Without its view cache the open reads the whole log from the database.
    std::fs::remove_dir_all(data.join("views-cache")).unwrap();
    let mut child = served::spawn(&data, "127.0.0.1:0", &args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started over a column of the wrong type");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("recorded_at_us"), "names the column: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
