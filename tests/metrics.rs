//! `serve --metrics-listen`: a scrape of the real binary parses as Prometheus text and counts
//! what happened (commands by kind and outcome, appends, an import, license usage per domain).

mod served;

use std::io::{Read, Write};

use served::Served;

fn scrape(addr: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain"), "{head}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref h) => {
                h.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

#[test]
fn a_scrape_parses_and_counts_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = server.metrics.expect("the metrics address is printed");
    let op = server.token.clone().unwrap();
    let admin = server.domain_admin(&op, "d1");
    for login in ["a", "b"] {
        let (code, _, err) = server.cli(
            &admin,
            &["account", "create", "--domain", "d1", "--login", login],
        );
        assert_eq!(code, 0, "{err}");
    }
    // A refusal: the login is taken.
    let (code, _, _) = server.cli(
        &admin,
        &["account", "create", "--domain", "d1", "--login", "a"],
    );
    assert_ne!(code, 0);
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        "import_id,first_name,last_name,login,email,user_type,enabled\n\
         S1,Ann,Lee,ann,ann@x.example,student,1\n",
    )
    .unwrap();
    let (code, out, err) = server.cli(
        &admin,
        &[
            "import",
            "--domain",
            "d1",
            "--kind",
            "update-users",
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let s = scrape(metrics);
    let created = [("kind", "CreateAccount"), ("outcome", "ok")];
    assert_eq!(value(&s, "account_ledger_commands_total", &created), 3.0);
    let refused = [("kind", "CreateAccount"), ("outcome", "refused")];
    assert_eq!(value(&s, "account_ledger_commands_total", &refused), 1.0);
    assert_eq!(
        value(&s, "account_ledger_licenses_used", &[("domain", "d1")]),
        3.0
    );
    assert_eq!(
        value(&s, "account_ledger_license_limit", &[("domain", "d1")]),
        10.0
    );
    assert_eq!(
        value(
            &s,
            "account_ledger_import_jobs_total",
            &[("status", "applied")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "account_ledger_import_rows_total",
            &[("status", "applied")]
        ),
        1.0
    );
    assert!(value(&s, "account_ledger_log_events", &[]) >= 5.0);
    assert!(value(&s, "account_ledger_log_bytes", &[]) > 0.0);
    assert!(value(&s, "account_ledger_append_seconds_count", &[]) >= 4.0);
    assert!(value(&s, "account_ledger_group_commit_events_count", &[]) >= 4.0);
    assert_eq!(value(&s, "account_ledger_subscriptions", &[]), 0.0);
}
