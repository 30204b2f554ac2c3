//! Reads as an administrator makes them with the CLI against the real binary: account lists
//! followed page by page with the printed token, search, and a users export written as a
//! PowerSchool users.csv that imports again with no change.

mod served;

use served::Served;

const USERS: &str = "import_id,first_name,last_name,login,password,email,user_type,enabled\n\
S1,Ann,Lee,alee,x,alee@school.example,student,1\n\
S2,Bob,Stone,bstone,x,bstone@school.example,student,0\n\
S3,Cara,Leeds,cleeds,x,cleeds@school.example,teacher,1\n\
S4,Dan,Moss,dmoss,x,dmoss@school.example,student,1\n";

fn setup() -> (tempfile::TempDir, Served, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(&dir.path().join("data"), "127.0.0.1:0", &[]);
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    let users = dir.path().join("users.csv");
    std::fs::write(&users, USERS).unwrap();
    let (code, out, err) = server.cli(
        &admin,
        &[
            "import",
            "--domain",
            "d1",
            "--kind",
            "users",
            users.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    (dir, server, admin)
}

fn logins(table: &str) -> Vec<String> {
    ["alee", "bstone", "cleeds", "dmoss"]
        .into_iter()
        .filter(|l| table.contains(l))
        .map(String::from)
        .collect()
}

#[test]
fn account_list_prints_the_token_of_the_next_page_and_follows_it() {
    let (_dir, server, admin) = setup();
    let (code, first, err) = server.cli(&admin, &["account", "list", "d1", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(first.contains("(2 shown of 3 matching)"), "{first}");
    let token = first
        .lines()
        .find_map(|l| l.strip_prefix("next page: --page-token "))
        .unwrap_or_else(|| panic!("no next page line in {first}"));
    let (code, second, err) = server.cli(
        &admin,
        &[
            "account",
            "list",
            "d1",
            "--limit",
            "2",
            "--page-token",
            token,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!second.contains("next page"), "{second}");
    let mut seen = logins(&first);
    seen.extend(logins(&second));
    // Enabled only by default: bstone is disabled.
    assert_eq!(seen, ["alee", "cleeds", "dmoss"]);
}

#[test]
fn account_search_finds_a_name_by_its_start_in_any_case() {
    let (_dir, server, admin) = setup();
    let (code, out, err) = server.cli(
        &admin,
        &[
            "account",
            "list",
            "d1",
            "--include-disabled",
            "--search",
            "LEE",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // "Lee" and "Leeds" start with it; "Stone" and "Moss" do not.
    assert_eq!(logins(&out), ["alee", "cleeds"]);
}

#[test]
fn export_as_json_prints_one_object_per_exported_account() {
    let (_dir, server, admin) = setup();
    let (code, out, err) = server.cli(&admin, &["export", "d1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    // The same accounts as the CSV export: Enabled and Disabled ones.
    assert_eq!(rows.len(), 4, "{out}");
    let bob = rows
        .iter()
        .find(|r| r["login"] == "bstone")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(bob["import_id"], "S2");
    assert_eq!(bob["enabled"], false);
}

#[test]
fn export_as_csv_imports_again_with_no_change() {
    let (dir, server, admin) = setup();
    let (code, csv, err) = server.cli(&admin, &["export", "d1", "--csv"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("import_id,first_name,last_name,login,email,user_type,enabled")
    );
    assert_eq!(lines.count(), 4, "{csv}");
    assert!(
        csv.contains("S2,Bob,Stone,bstone,bstone@school.example,student,0"),
        "{csv}"
    );
    let again = dir.path().join("again").join("users.csv");
    std::fs::create_dir_all(again.parent().unwrap()).unwrap();
    std::fs::write(&again, &csv).unwrap();
    let (code, out, err) = server.cli(
        &admin,
        &[
            "import",
            "--domain",
            "d1",
            "--kind",
            "users",
            "--json",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["events_written"], 0, "{out}");
}
