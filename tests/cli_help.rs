//! What a newcomer meets before any server runs: help texts, shell completions, the man page,
//! and the errors for a data dir that is in use or is a file.

mod served;

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_account_subcommand_says_what_it_does_and_the_connection_options_are_explained() {
    let (code, out, _) = run(&["account", "--help"]);
    assert_eq!(code, 0);
    for line in out
        .lines()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('-'))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            words.len() > 1,
            "a subcommand without help: {line:?}\n{out}"
        );
        assert!(!line.contains("Common write options"), "{line}");
    }
    let (_, top, _) = run(&["--help"]);
    assert!(
        top.contains("--server") && top.contains("ACCOUNT_LEDGER_TOKEN"),
        "{top}"
    );
    let (_, show, _) = run(&["account", "show", "--help"]);
    assert!(show.contains("Connection"), "{show}");
    assert!(
        show.contains("RFC 3339"),
        "--as-of says its formats: {show}"
    );
    let (_, delete, _) = run(&["account", "delete", "--help"]);
    assert!(
        delete.contains("Act without asking"),
        "--yes has help: {delete}"
    );
}

#[test]
fn completions_and_the_man_page_are_generated_from_the_definitions() {
    let (code, bash, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        bash.contains("complete") && bash.contains("import-job"),
        "{bash}"
    );
    let (code, zsh, _) = run(&["completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.contains("#compdef account-ledger"), "{zsh}");
    let (code, man, _) = run(&["man"]);
    assert_eq!(code, 0);
    assert!(man.contains(".TH account-ledger 1"), "{man}");
    assert!(man.contains("serve"), "{man}");
}

#[test]
fn a_data_dir_in_use_or_that_is_a_file_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = served::Served::start(&data, "127.0.0.1:0", &[]);
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let pid = first.child.id().to_string();
    assert!(
        err.contains("another account-ledger") && err.contains(&pid),
        "names the server using it: {err}"
    );
    assert!(!err.contains("Os {"), "no Rust debug output: {err}");
    drop(first);
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("is a file, not a directory"), "{err}");
}
