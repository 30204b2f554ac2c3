//! `import-job list` and `show` against the real binary: a job that wrote events is still
//! listed, with its counts, after the server is killed and restarted; a domain without jobs
//! lists `[]`.

mod served;

use served::Served;

#[test]
fn jobs_are_listed_after_a_restart_and_an_empty_list_is_an_empty_array() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let (code, out, err) = server.cli(&admin, &["import-job", "list", "d1", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "[]");

    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "import_id,first_name,last_name,login,email,user_type,enabled\n\
         S1,Ann,Lee,ann,ann@x.example,student,1\nS2,Bob,Ray,bob,bob@x.example,student,1\n",
    )
    .unwrap();
    let (code, out, err) = server.cli(
        &admin,
        &["import", "--domain", "d1", "--json", csv.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let job: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let job_id = job["job_id"].as_str().unwrap().to_string();
    drop(server); // kill -9

    let server = Served::start(&data, "127.0.0.1:0", &[]);
    let (code, out, err) = server.cli(&admin, &["import-job", "list", "d1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let jobs: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["job_id"], job_id.as_str());
    assert_eq!(jobs[0]["counts"]["created"], 2, "{}", jobs[0]);
    assert_eq!(jobs[0]["actor"], "ada");
    let (code, out, err) = server.cli(&admin, &["import-job", "show", &job_id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(shown["counts"]["created"], 2, "{shown}");
    assert_eq!(shown["file"], "users.csv", "{shown}");
}

/// Row errors outlive the server that ran the job, without the values they quoted; a job that
/// changed nothing is listed too.
#[test]
fn row_errors_and_no_change_jobs_are_kept_without_personal_values() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "import_id,first_name,last_name,login,email,user_type,enabled\n\
         S1,Ann,Lee,ann.secret,ann@x.example,student,1\n\
         S2,Bob,Ray,ann.secret,bob@x.example,student,1\n",
    )
    .unwrap();
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (code, out, err) = server.cli(
            &admin,
            &["import", "--domain", "d1", "--json", csv.to_str().unwrap()],
        );
        assert_eq!(code, 2, "exit code 2: a row failed; {out}{err}");
        let job: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        jobs.push(job["job_id"].as_str().unwrap().to_string());
    }
    drop(server); // kill -9

    let server = Served::start(&data, "127.0.0.1:0", &[]);
    let (code, out, err) = server.cli(&admin, &["import-job", "list", "d1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    // Newest first: the re-import changed nothing.
    assert_eq!(listed[0]["job_id"], jobs[1].as_str());
    assert_eq!(listed[0]["status"], "no_changes", "{}", listed[0]);
    assert_eq!(listed[1]["counts"]["created"], 1, "{}", listed[1]);

    for job in &jobs {
        let (code, out, err) = server.cli(&admin, &["import-job", "errors", job, "--json"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains("ann.secret"),
            "a kept row error quotes no value: {out}"
        );
        assert!(!out.contains("S2"), "nor an import id: {out}");
        // One JSON object per line.
        let errors: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0]["row"], 3, "{}", errors[0]);
        assert_eq!(errors[0]["column"], "login", "{}", errors[0]);
        let reason = errors[0]["reason"].as_str().unwrap();
        assert!(reason.contains("duplicate login \"…\""), "{reason}");

        let (code, out, err) = server.cli(&admin, &["import-job", "show", job, "--json"]);
        assert_eq!(code, 0, "{err}");
        let shown: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(shown["row_errors_total"], 1, "{shown}");
        assert_eq!(shown["row_errors"][0]["row"], 3, "{shown}");
    }
}
