//! Tokens as an operator manages them, against the real binary: list (never secrets), revoke
//! and expiry without a restart; failed authentications logged with the peer (never the
//! token) and rate-limited per peer.

mod served;

use std::time::Duration;

use served::Served;

fn setup() -> (tempfile::TempDir, Served, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(dir.path(), "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let (code, _, err) = server.cli(&op, &["domain", "create", "d1", "--limit", "5"]);
    assert_eq!(code, 0, "{err}");
    (dir, server, op)
}

fn add(server: &Served, op: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "token",
        "add",
        "--principal",
        "alice",
        "--role",
        "domain-admin",
        "--domain",
        "d1",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = server.cli(op, &args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (
        v["token"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

fn listed(server: &Served, op: &str) -> Vec<serde_json::Value> {
    let (code, out, err) = server.cli(op, &["token", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap()
}

#[test]
fn tokens_are_listed_without_secrets_and_revoked_without_a_restart() {
    let (dir, server, op) = setup();
    let (token, id) = add(&server, &op, &[]);
    let entry = |server: &Served| {
        listed(server, &op)
            .into_iter()
            .find(|t| t["id"] == id.as_str())
    };
    let t = entry(&server).expect("listed");
    assert_eq!(t["principal"], "alice");
    assert_eq!(t["role"], "domain-admin");
    assert_eq!(t["domains"], serde_json::json!(["d1"]));
    assert!(t["created_at"].is_string(), "{t}");
    assert!(t["last_used"].is_null(), "{t}");
    let (_, out, _) = server.cli(&op, &["token", "list"]);
    assert!(!out.contains(&token), "the list never shows a secret");

    let (code, _, err) = server.cli(&token, &["account", "list", "d1"]);
    assert_eq!(code, 0, "{err}");
    assert!(entry(&server).unwrap()["last_used"].is_string());

    let (code, _, err) = server.cli(&op, &["token", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = server.cli(&token, &["account", "list", "d1"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown token"), "{err}");
    assert!(entry(&server).is_none());
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(!config.contains(&id), "revoked in the file too");
}

#[test]
fn an_expired_token_is_refused() {
    let (_dir, server, op) = setup();
    let (token, _) = add(&server, &op, &["--expires-in", "3s"]);
    let (code, _, err) = server.cli(&token, &["account", "list", "d1"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_millis(3300));
    let (code, _, err) = server.cli(&token, &["account", "list", "d1"]);
    assert_ne!(code, 0);
    assert!(err.contains("expired"), "{err}");
}

#[test]
fn failed_authentications_are_logged_without_the_token_and_rate_limited() {
    let (_dir, server, op) = setup();
    let wrong = "al_this-is-not-a-valid-token-0123456789";
    for _ in 0..25 {
        let (code, _, _) = server.cli(wrong, &["account", "list", "d1"]);
        assert_ne!(code, 0);
    }
    // The peer is now refused, even with a valid token, until its window ends.
    let (code, _, err) = server.cli(&op, &["token", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("too many failed authentications"), "{err}");
    let log = server.stderr_lines(Duration::from_millis(300)).join("\n");
    assert!(
        log.contains("authentication failed") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains(wrong), "the token never reaches the log");
    let warnings = log.matches("authentication failed").count();
    assert!(warnings <= 21, "{warnings} lines: the log is not flooded");
}
