//! `account-ledger import-bench`: the import benchmark end to end THROUGH gRPC (not a test; it
//! asserts nothing). A server runs in-process on a loopback port over a fresh sled store; a tonic
//! client uploads a generated users.csv of N new accounts in 64 KiB chunks (timed from the first
//! byte to the job result), then the same file again (no changes). The library-level figures
//! ([`crate::bench::import::bench_import`]: same file, no gRPC, plus the naive one-durable-append-
//! per-row baseline) are measured after, in the same process, for comparison. `--warm-up` runs
//! one untimed-for-comparison library import first, so the gRPC figure is not the cold first
//! import of the process.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::api::auth::{Auth, AuthConfig, Role, TokenEntry};
use crate::api::pb::{
    self, import_service_client::ImportServiceClient, upload_import_request::Part,
};
use crate::bench::import::{ImportBenchOptions, bench_import, write_bench_users_csv};
use crate::domain::Command;
use crate::ledger::{Ledger, Request};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TOKEN: &str = "bench-admin-token";

#[derive(Debug, Clone)]
pub struct GrpcImportFigures {
    pub rows: u32,
    pub import: Duration,
    pub import_events: u64,
    pub reimport: Duration,
    pub reimport_events: u64,
    pub peak_rss_mb: f64,
}

async fn upload(
    client: &mut ImportServiceClient<tonic::transport::Channel>,
    csv: &Path,
) -> Result<(Duration, pb::ImportJob), BoxError> {
    let mut file = tokio::fs::File::open(csv).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        let header = pb::ImportHeader {
            domain: "d".into(),
            file_name: "users.csv".into(),
            ..Default::default()
        };
        if tx
            .send(pb::UploadImportRequest {
                part: Some(Part::Header(header)),
            })
            .await
            .is_err()
        {
            return Ok(());
        }
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buf.truncate(n);
            if tx
                .send(pb::UploadImportRequest {
                    part: Some(Part::Chunk(buf)),
                })
                .await
                .is_err()
            {
                return Ok(());
            }
        }
    });
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse()?);
    let job = client.upload_import(req).await?.into_inner();
    let took = t.elapsed();
    sender.await??;
    Ok((took, job))
}

/// The gRPC figures for `rows` new accounts in `dir`.
pub async fn bench_grpc_import(rows: u32, dir: &Path) -> Result<GrpcImportFigures, BoxError> {
    let csv = dir.join("users.csv");
    write_bench_users_csv(&csv, rows)?;
    let ledger = Ledger::open(&dir.join("grpc-data")).await?;
    ledger
        .execute(Request::manual(
            "bench",
            Command::RegisterDomain {
                domain: "d".into(),
                license_limit: rows.saturating_add(1),
            },
        ))
        .await?;
    let auth = Arc::new(Auth::new(
        AuthConfig {
            tokens: vec![TokenEntry::new(
                "bench-admin",
                Role::DomainAdmin,
                vec!["d".into()],
                TOKEN,
            )],
        },
        None,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::api::server::serve(ledger, auth, listener, async {
        let _ = stopped.await;
    }));
    let mut client = ImportServiceClient::connect(format!("http://{addr}")).await?;
    let (import, job) = upload(&mut client, &csv).await?;
    // Let the writer's periodic projection save after the large batch finish (as the library
    // bench does), so the re-import is measured on a settled ledger.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (reimport, again) = upload(&mut client, &csv).await?;
    let peak_rss_mb = super::peak_rss_mb();
    drop(client);
    let _ = stop.send(());
    server.await??;
    Ok(GrpcImportFigures {
        rows,
        import,
        import_events: job.events_written,
        reimport,
        reimport_events: again.events_written,
        peak_rss_mb,
    })
}

/// `account-ledger import-bench`: gRPC figures, then the library figures, printed.
pub async fn run(rows: u32, baseline_rows: u32, warm_up: bool) -> Result<(), BoxError> {
    let tmp = tempfile::tempdir()?;
    println!("account-ledger import-bench: users.csv of {rows} new accounts");
    if warm_up {
        // The first large import of a process pays for page faults and allocator growth; a
        // server that has been running for a while has paid it already.
        let warm = tmp.path().join("warm-up");
        std::fs::create_dir_all(&warm)?;
        let w = bench_import(ImportBenchOptions {
            rows,
            baseline_rows: 1,
            dir: Some(warm),
        })
        .await?;
        println!(
            "warm-up (library import, not compared): {:.3} s",
            w.import_total.as_secs_f64()
        );
    }
    let g = bench_grpc_import(rows, tmp.path()).await?;
    let s = |d: Duration| d.as_secs_f64();
    println!(
        "through gRPC (in-process server, loopback, 64 KiB chunks):\n  import, new accounts: {:.3} s, {} events, {:.0} rows/s\n  re-import, no changes: {:.3} s, {} events\n  peak RSS so far: {:.0} MB",
        s(g.import),
        g.import_events,
        f64::from(rows) / s(g.import),
        s(g.reimport),
        g.reimport_events,
        g.peak_rss_mb
    );
    std::fs::create_dir_all(tmp.path().join("library"))?;
    let lib = bench_import(ImportBenchOptions {
        rows,
        baseline_rows,
        dir: Some(tmp.path().join("library")),
    })
    .await?;
    println!("library (run_import on a file path, no gRPC):");
    for line in lib.to_string().lines() {
        println!("  {line}");
    }
    Ok(())
}
