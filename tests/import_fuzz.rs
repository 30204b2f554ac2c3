//! Property tests of hostile import input (bounded case counts, part of the normal run): random
//! and mutated CSV files and mutated OneRoster zips never panic, never map to INTERNAL, and a
//! refused file writes nothing; an accepted one writes exactly what its report says.

mod import_common;

use std::io::Write;

use account_ledger::api::status::from_import;
use account_ledger::import::{ImportError, ImportOptions, ImportReport};
use import_common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tonic::Code;

const USERS: &str = "import_id,first_name,last_name,login,password,email,user_type,enabled\n\
S1,Ann,Lee,ann,pw1,ann@school.example,student,1\n\
S2,Bob,Ng,bob,pw2,bob@school.example,teacher,0\n\
\"S3\",\"Cy, Jr\",\"O\"\"Neil\",cy,pw3,cy@school.example,student,1\n";

fn oneroster_zip() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("manifest.csv", options).unwrap();
    zip.write_all(b"propertyName,value\nmanifest.version,1.0\nfile.users,bulk\n")
        .unwrap();
    zip.start_file("users.csv", options).unwrap();
    zip.write_all(
        b"sourcedId,status,enabledUser,username,givenName,familyName,email,role\n\
          R1,active,true,rae,Rae,Ho,rae@school.example,student\n\
          R2,active,false,sam,Sam,Li,sam@school.example,teacher\n",
    )
    .unwrap();
    zip.finish().unwrap().into_inner()
}

/// Edits of a byte string: (position fraction, kind, byte).
fn mutations() -> impl Strategy<Value = Vec<(f64, u8, u8)>> {
    proptest::collection::vec((0.0..1.0f64, 0u8..3, any::<u8>()), 1..8)
}

fn mutate(base: &[u8], edits: &[(f64, u8, u8)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for &(at, kind, b) in edits {
        let i = ((bytes.len() as f64) * at) as usize;
        match kind {
            0 if i < bytes.len() => bytes[i] = b,
            1 => bytes.insert(i.min(bytes.len()), b),
            _ if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => {}
        }
    }
    bytes
}

/// Outcomes seen: (accepted, refused); the anchors check that both branches are exercised.
type Tally = std::cell::Cell<(u32, u32)>;

/// Import `bytes` as `name`; check the outcome's invariants.
fn check(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    name: &str,
    bytes: &[u8],
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let before = env.last_position();
    let outcome: Result<ImportReport, ImportError> = rt.block_on(env.import_with(
        &path,
        ImportOptions {
            confirm_mass_change: true,
            ..ImportOptions::default()
        },
    ));
    let written = env.last_position() - before;
    let (ok, refused) = tally.get();
    match outcome {
        Ok(report) => {
            tally.set((ok + 1, refused));
            prop_assert_eq!(written, report.events_written, "{:#?}", report)
        }
        Err(e) => {
            tally.set((ok, refused + 1));
            let status = from_import(&e);
            prop_assert!(
                status.code() != Code::Internal && status.code() != Code::Unknown,
                "{:?}: {}",
                status.code(),
                e
            );
            prop_assert!(!e.to_string().contains("panicked"), "{}", e);
            prop_assert_eq!(written, 0, "a refused file wrote {} events: {}", written, e);
        }
    }
    Ok(())
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn mutated_csv_files_never_panic_never_internal_and_refusals_write_nothing() {
    let rt = runtime();
    let env = rt.block_on(env());
    let tally = Tally::default();
    // Anchors: the file as is is accepted, a file without its header is refused; both go
    // through the same checks as the mutations.
    check(&rt, &env, "users.csv", USERS.as_bytes(), &tally).unwrap();
    let headless = USERS.split_once('\n').unwrap().1;
    check(&rt, &env, "users.csv", headless.as_bytes(), &tally).unwrap();
    assert_eq!(tally.get(), (1, 1), "one accepted, one refused");
    runner()
        .run(&mutations(), |edits| {
            check(
                &rt,
                &env,
                "users.csv",
                &mutate(USERS.as_bytes(), &edits),
                &tally,
            )
        })
        .unwrap();
}

#[test]
fn random_csv_files_never_panic_never_internal_and_refusals_write_nothing() {
    let rt = runtime();
    let env = rt.block_on(env());
    let header = USERS.lines().next().unwrap().to_string();
    let tally = Tally::default();
    let strategy = (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..400),
    );
    runner()
        .run(&strategy, |(with_header, body)| {
            let mut bytes = Vec::new();
            if with_header {
                bytes.extend_from_slice(header.as_bytes());
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(&body);
            check(&rt, &env, "users.csv", &bytes, &tally)
        })
        .unwrap();
}

#[test]
fn mutated_oneroster_zips_never_panic_never_internal_and_refusals_write_nothing() {
    let rt = runtime();
    let env = rt.block_on(env());
    let zip = oneroster_zip();
    let tally = Tally::default();
    // Anchors: the archive as is is accepted, one cut in half is refused.
    check(&rt, &env, "roster.zip", &zip, &tally).unwrap();
    check(&rt, &env, "roster.zip", &zip[..zip.len() / 2], &tally).unwrap();
    assert_eq!(tally.get(), (1, 1), "one accepted, one refused");
    runner()
        .run(&mutations(), |edits| {
            check(&rt, &env, "roster.zip", &mutate(&zip, &edits), &tally)
        })
        .unwrap();
}
