//! `account-ledger import-job revert` against the real binary: a dry run that writes nothing,
//! then the revert, seen in the account and its history; only an admin of the job's domain
//! may revert.

mod served;

use served::Served;

fn import(server: &Served, token: &str, dir: &std::path::Path, name: &str, csv: &str) -> String {
    let sub = dir.join(format!("in-{}", csv.len()));
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join(name);
    std::fs::write(&path, csv).unwrap();
    let (code, out, err) = server.cli(
        token,
        &["import", "--domain", "d1", "--json", path.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    v["job_id"].as_str().unwrap().to_string()
}

#[test]
fn a_job_is_reverted_after_a_dry_run_and_the_history_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let (_, auditor, _) = server.cli(
        &op,
        &["token", "add", "--principal", "aud", "--role", "auditor"],
    );
    let header = "import_id,first_name,last_name,login,email,user_type,enabled\n";
    import(
        &server,
        &admin,
        dir.path(),
        "users.csv",
        &format!("{header}S1,Ann,Lee,ann,ann@x.example,student,1\n"),
    );
    let update = import(
        &server,
        &admin,
        dir.path(),
        "update_users.csv",
        &format!("{header}S1,Ann,Lee,ann,ann@x.example,student,0\n"),
    );
    let status = |server: &Served| {
        let (_, out, err) = server.cli(&admin, &["account", "show", "d1:S1", "--json"]);
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{err}"));
        v["status"].as_str().unwrap().to_string()
    };
    assert_eq!(status(&server), "disabled");

    let (code, out, err) = server.cli(&admin, &["import-job", "revert", &update]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dry run") && out.contains("enabled"), "{out}");
    assert!(out.contains("run again with --yes"), "{out}");
    assert_eq!(status(&server), "disabled", "a dry run writes nothing");

    let (code, _, err) = server.cli(auditor.trim(), &["import-job", "revert", &update, "--yes"]);
    assert_eq!(code, 1);
    assert!(err.contains("permission denied"), "{err}");

    let (code, out, err) = server.cli(&admin, &["import-job", "revert", &update, "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("events written by revert job"), "{out}");
    assert_eq!(status(&server), "enabled");
    let (_, history, _) = server.cli(&admin, &["account", "history", "d1:S1"]);
    assert!(history.contains(&format!("of job {update}")), "{history}");

    // The revert is a job of its own: readable by its id, with what it changed.
    let revert_job = out
        .split_whitespace()
        .find(|w| w.len() == 36 && w.chars().filter(|c| *c == '-').count() == 4 && *w != update)
        .unwrap_or_else(|| panic!("no revert job id in {out}"))
        .trim_end_matches(':')
        .to_string();
    let (code, shown, err) = server.cli(&admin, &["import-job", "show", &revert_job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(v["file"], format!("revert of job {update}"));
    assert_eq!(v["counts"]["enabled"], 1, "{v}");
}
