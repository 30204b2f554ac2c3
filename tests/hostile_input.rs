//! Hostile imports against the real binary: each generated file is refused while it is read
//! (or, for millions of bad rows, reported with a capped list), and the server's peak RSS stays
//! under 100 MB above idle. The limits are named in src/import/limits.rs and the README.

mod common;

mod served;

use std::io::Write;
use std::path::Path;

use account_ledger::api::pb;
use common::*;
use served::Served;
use tonic::Code;

const MIB: u64 = 1024 * 1024;
/// The goal: memory above idle while a hostile file is read.
const RSS_BOUND: u64 = 100 * MIB;

struct Server {
    served: Served,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.served.cli(&self.admin, args)
    }
}

/// `serve` on a fresh data dir with domain d1 and a domain admin for it.
fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), "127.0.0.1:0", &[]);
    let operator = served.token.clone().expect("operator token");
    let (code, _, err) = served.cli(&operator, &["domain", "create", "d1", "--limit", "100000"]);
    assert_eq!(code, 0, "{err}");
    let (code, admin, err) = served.cli(
        &operator,
        &[
            "token",
            "add",
            "--principal",
            "admin",
            "--role",
            "domain-admin",
            "--domain",
            "d1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    Server {
        served,
        admin: admin.trim().to_string(),
        _dir: dir,
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Run `f` and return the server's peak RSS above its RSS just before (bytes).
fn peak_above_idle(server: &Server, f: impl FnOnce()) -> u64 {
    let pid = server.served.child.id();
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let idle = status_kib(pid, "VmRSS:") * 1024;
    f();
    let peak = status_kib(pid, "VmHWM:") * 1024;
    peak.saturating_sub(idle)
}

/// Import `path` through the CLI as the domain admin; (exit code, stderr, peak RSS above idle).
fn import_measured(server: &Server, args: &[&str]) -> (i32, String, u64) {
    let mut out = (0, String::new(), String::new());
    let peak = peak_above_idle(server, || out = server.cli(args));
    (out.0, out.2, peak)
}

/// A refusal while reading: exit 1, INVALID_ARGUMENT naming one of `limits`, a short message,
/// and the server's memory bounded.
fn assert_refused_within_bound(server: &Server, path: &Path, limits: &[&str]) {
    let (code, err, peak) = import_measured(
        server,
        &["import", "--domain", "d1", path.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid argument"), "{err}");
    assert!(
        limits.iter().any(|l| err.contains(l)),
        "names {limits:?}: {err}"
    );
    assert!(err.len() < 2000, "short message: {} bytes", err.len());
    assert!(peak < RSS_BOUND, "peak {} MiB above idle", peak / MIB);
}

const HEADER: &str = "import_id,first_name,last_name,login,password,email,user_type,enabled\n";

/// A zip with entries written by `fill`, deflated.
fn zip_with(path: &Path, names: &[&str], mut fill: impl FnMut(&str, &mut dyn Write)) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    for name in names {
        zip.start_file(*name, options).unwrap();
        fill(name, &mut zip);
    }
    zip.finish().unwrap();
}

/// A OneRoster bulk zip: its manifest, and a users.csv header followed by `rows`.
fn bulk_roster_zip(path: &Path, mut rows: impl FnMut(&mut dyn Write)) {
    zip_with(path, &["manifest.csv", "users.csv"], |name, w| {
        if name == "manifest.csv" {
            w.write_all(b"propertyName,value\nfile.users,bulk\n")
                .unwrap();
        } else {
            w.write_all(b"sourcedId,status,enabledUser,username,givenName,familyName,email,role\n")
                .unwrap();
            rows(w);
        }
    });
}

fn repeat_into(w: &mut dyn Write, unit: &[u8], total: u64) {
    let block: Vec<u8> = unit.iter().copied().cycle().take(1 << 20).collect();
    let mut left = total;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
}

#[test]
fn one_huge_field_in_a_csv_is_refused_while_reading() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(HEADER.as_bytes()).unwrap();
        f.write_all(b"U1,Ann,Lee,ann,pw,ann@example.org,student,")
            .unwrap();
        repeat_into(&mut f, b"a", 300 * MIB);
        f.write_all(b"\n").unwrap();
    }
    assert_refused_within_bound(&server, &path, &["limit max_row_bytes"]);
}

#[test]
fn a_zip_bomb_is_refused_while_reading() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.zip");
    bulk_roster_zip(&path, |w| {
        repeat_into(
            w,
            b"S1,active,true,u1,Ann,Lee,u1@example.org,student\n",
            64 * MIB,
        )
    });
    assert!(std::fs::metadata(&path).unwrap().len() < 2 * MIB);
    assert_refused_within_bound(&server, &path, &["limit max_compression_ratio"]);
}

#[test]
fn a_manifest_with_a_huge_value_is_refused_with_a_short_message() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.zip");
    zip_with(&path, &["manifest.csv"], |_, w| {
        w.write_all(b"propertyName,value\nfile.users,").unwrap();
        repeat_into(w, b"bulkbulk", 200 * MIB);
        w.write_all(b"\n").unwrap();
    });
    assert_refused_within_bound(
        &server,
        &path,
        &["limit max_row_bytes", "limit max_compression_ratio"],
    );
}

#[test]
fn a_file_of_duplicate_rows_is_reported_with_a_capped_list() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    let rows = 300_000u64;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(HEADER.as_bytes()).unwrap();
        for _ in 0..rows {
            f.write_all(b"U1,Ann,Lee,ann,pw,ann@example.org,student,1\n")
                .unwrap();
        }
    }
    let mut out = (0, String::new(), String::new());
    let peak = peak_above_idle(&server, || {
        for _ in 0..3 {
            out = server.cli(&[
                "import",
                "--domain",
                "d1",
                "--dry-run",
                "--json",
                path.to_str().unwrap(),
            ]);
        }
    });
    let (code, stdout, err) = out;
    assert_eq!(code, 2, "some rows failed: {err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let text = report.to_string();
    assert!(text.contains("limit max_row_errors_listed"), "{text:.2000}");
    assert!(
        text.contains(&format!("{}", rows - 1)),
        "counts every failed row"
    );
    assert!(peak < RSS_BOUND, "peak {} MiB above idle", peak / MIB);
}

#[tokio::test]
async fn a_corrupt_deflate_stream_is_invalid_argument() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    register(&mut c, "d1", 100).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roster.zip");
    bulk_roster_zip(&path, |w| {
        for i in 0..2000 {
            writeln!(
                w,
                "S{i},active,true,user{i},Ann{i},Lee{i},u{i}@example.org,student"
            )
            .unwrap();
        }
    });
    let mut bytes = std::fs::read(&path).unwrap();
    // Damage the middle of users.csv's deflate stream (the central directory stays intact).
    let at = bytes.len() / 2;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5A;
    }
    let header = pb::ImportHeader {
        domain: "d1".into(),
        file_name: "roster.zip".into(),
        ..Default::default()
    };
    let r = upload(&mut imports(&server).await, ADMIN_D1, header, &bytes).await;
    assert_status(r, Code::InvalidArgument, &["roster.zip"]);
    server.stop().await;
}
