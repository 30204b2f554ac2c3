//! `account-ledger schedule add|list|cancel` against the real binary and server: a lock-out of
//! every student over a summer, listed, then cancelled; a past instant is refused by name.

mod served;

use served::Served;

#[test]
fn a_summer_lock_out_is_added_listed_and_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let (code, out, err) = server.cli(
        &admin,
        &[
            "schedule",
            "add",
            "d1",
            "--role",
            "student",
            "--disable-at",
            "2099-06-20T00:00:00Z",
            "--enable-at",
            "2099-08-25T06:00:00Z",
            "--reason",
            "summer break",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let made: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(made["schedule"], 1);
    assert_eq!(made["status"], "pending");
    assert_eq!(made["selection"], "role student");
    assert_eq!(made["until"], "2099-08-25T06:00:00.000000Z");

    let (code, out, err) = server.cli(&admin, &["schedule", "list", "d1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("summer break") && out.contains("pending"),
        "{out}"
    );
    assert!(out.contains("2099-06-20T00:00:00.000000Z"), "{out}");

    let (code, out, err) = server.cli(
        &admin,
        &["schedule", "cancel", "d1", "1", "--reason", "term extended"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cancelled"), "{out}");

    let (code, _, err) = server.cli(
        &admin,
        &[
            "schedule",
            "add",
            "d1",
            "--everyone",
            "--enable-at",
            "2001-01-01T00:00:00Z",
            "--reason",
            "late",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("invalid at") && err.contains("past"), "{err}");
    let (code, _, err) = server.cli(
        &admin,
        &["schedule", "add", "d1", "--everyone", "--reason", "when?"],
    );
    assert_eq!(code, 2, "clap refuses a schedule without an instant: {err}");
}

#[test]
fn an_operator_sets_a_deletion_grace_period_and_admins_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let (code, out, err) = server.cli(&op, &["schedule", "grace-period", "d1", "30d"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2592000 s"), "{out}");
    let (code, out, err) = server.cli(&admin, &["schedule", "list", "d1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deletion grace period: 2592000 s"), "{out}");
    let (code, _, err) = server.cli(&admin, &["schedule", "grace-period", "d1", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("may not"), "{err}");
    let (code, _, err) = server.cli(&op, &["schedule", "grace-period", "d1", "400d"]);
    assert_eq!(code, 1);
    assert!(err.contains("365 days"), "{err}");
}
