//! `account-ledger import` and `account-ledger import-job`: CSV imports as a gRPC client.
//!
//! `import` streams a PowerSchool CSV (or a OneRoster `.zip`; a OneRoster directory is zipped to
//! a temp file first) to `ImportService.UploadImport` in 64 KiB chunks, with an `indicatif`
//! progress bar on a terminal (hidden when stderr is not a TTY or with `--json`), then prints a
//! summary table (counts per change kind, row errors) or, with `--json`, the whole job with
//! every row error. Exit codes: 0 every row applied (or nothing to change), 2 some rows failed
//! (the others were applied; a dry run: would fail), 1 the job was refused (file error, guard,
//! strict, permission) or could not run. A local read error mid-file cancels the upload, so a
//! cut-off file is never imported as if it were whole.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tonic::Request;
use tonic::transport::Channel;

use super::Conn;
use super::client::status_text;
use super::output::{table, ts};
use crate::api::pb::{self, import_service_client::ImportServiceClient};

/// Bytes per upload message.
const CHUNK: usize = 64 * 1024;
/// Row errors asked for inline (the rest are streamed when needed).
const INLINE_ERRORS: u32 = 1000;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VersionArg {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// users.csv: a full import.
    Users,
    /// update_users.csv: a partial import.
    UpdateUsers,
    /// delete_users.csv: a partial import.
    DeleteUsers,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The domain to import into (you must be one of its admins).
    #[arg(long)]
    pub domain: String,
    /// Report the exact diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse the whole file if any row is bad or refused.
    #[arg(long)]
    pub strict: bool,
    /// Apply a full import even if it deactivates/deletes more than the domain's guard share.
    #[arg(long)]
    pub confirm_mass_change: bool,
    /// PowerSchool version (default: from the header, `enabled` = v1, `blocked` = v2).
    #[arg(long, value_enum)]
    pub version: Option<VersionArg>,
    /// PowerSchool file kind (default: from the file name).
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// A delayed start: create the new accounts disabled and enable them at this instant
    /// (RFC 3339 or Unix seconds), by a schedule the job makes (see `schedule list`).
    #[arg(long)]
    pub start_at: Option<String>,
    /// users.csv, update_users.csv, delete_users.csv, a OneRoster directory or .zip.
    pub path: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ImportJobCommand {
    /// One job: from the server's registry of recent jobs, or as the log keeps it.
    Show { job_id: String },
    /// A domain's jobs, newest first: every job that ran (dry runs aside), on any server.
    List { domain: String },
    /// Every row error of a job (after a restart or from another server: as the log keeps
    /// them, quoted values replaced by "…").
    Errors { job_id: String },
    /// Undo a job: every account it changed goes back to its state before the job (new events
    /// naming the job; accounts changed since are left alone). Without --yes, only shows what
    /// would change.
    Revert {
        job_id: String,
        /// Revert for real (without it: a dry run that writes nothing).
        #[arg(long)]
        yes: bool,
        /// Allow a revert that deactivates or deletes more than the domain's guard share.
        #[arg(long)]
        confirm_mass_change: bool,
    },
}

struct Client {
    inner: ImportServiceClient<Channel>,
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Client {
    async fn connect(conn: &Conn) -> Result<Client, String> {
        let channel = super::connect::channel(conn).await?;
        let auth = super::connect::bearer(conn)?;
        Ok(Client {
            inner: ImportServiceClient::new(channel),
            auth,
        })
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        super::connect::authorized(&self.auth, msg)
    }

    async fn row_errors(&mut self, job_id: &str) -> Result<Vec<pb::ImportRowError>, String> {
        let req = self.req(pb::GetImportJobRequest {
            job_id: job_id.to_string(),
        });
        let mut stream = self
            .inner
            .stream_import_row_errors(req)
            .await
            .map_err(status_text)?
            .into_inner();
        let mut all = Vec::new();
        while let Some(e) = stream.message().await.map_err(status_text)? {
            all.push(e);
        }
        Ok(all)
    }
}

fn status_name(status: i32) -> &'static str {
    match pb::ImportJobStatus::try_from(status) {
        Ok(pb::ImportJobStatus::Applied) => "applied",
        Ok(pb::ImportJobStatus::NoChanges) => "no_changes",
        Ok(pb::ImportJobStatus::DryRun) => "dry_run",
        Ok(pb::ImportJobStatus::RefusedStrict) => "refused_strict",
        _ => "unknown",
    }
}

fn row_error_json(e: &pb::ImportRowError) -> Value {
    json!({
        "file": e.file,
        "row": e.row,
        "column": e.column,
        "import_id": e.import_id,
        "reason": e.reason,
    })
}

fn counts_list(c: &pb::ImportCounts) -> [(&'static str, u64); 9] {
    crate::api::import::counts_from_wire(c).by_kind()
}

fn job_json(j: &pb::ImportJob, row_errors: &[pb::ImportRowError]) -> Value {
    let counts: serde_json::Map<String, Value> = counts_list(&j.counts.unwrap_or_default())
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "job_id": j.job_id,
        "domain": j.domain,
        "file": j.file,
        "format": j.format,
        "status": status_name(j.status),
        "counts": counts,
        "events_written": j.events_written,
        "rows_read": j.rows_read,
        "changed_rows": j.changed_rows,
        "warnings": j.warnings,
        "guard": j.guard.map(|g| json!({
            "active_imported": g.active_imported,
            "removals": g.removals,
            "percent": g.percent,
            "exceeded": g.exceeded,
        })),
        "row_errors_total": j.row_errors_total,
        "row_errors": row_errors.iter().map(row_error_json).collect::<Vec<_>>(),
        "actor": j.actor,
        "finished_at": ts(j.finished_at.as_ref()),
        "from_log": j.from_log,
        "summary": j.summary,
        "held": j.held,
        "start_schedule": (j.start_schedule > 0).then_some(j.start_schedule),
        "deletion_schedule": (j.deletion_schedule > 0).then_some(j.deletion_schedule),
    })
}

fn print_row_errors(errors: &[pb::ImportRowError]) {
    let rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                e.file.clone(),
                e.row.to_string(),
                e.column.clone().unwrap_or_else(|| "-".into()),
                e.import_id.clone().unwrap_or_else(|| "-".into()),
                e.reason.clone(),
            ]
        })
        .collect();
    table(&["FILE", "ROW", "COLUMN", "IMPORT_ID", "REASON"], &rows);
}

fn print_job(j: &pb::ImportJob) {
    let what = if j.format.is_empty() {
        j.file.clone()
    } else {
        format!("{} ({})", j.file, j.format)
    };
    println!("job {} in {}: {what}", j.job_id, j.domain);
    let rows: Vec<Vec<String>> = counts_list(&j.counts.unwrap_or_default())
        .iter()
        .map(|(k, v)| vec![k.to_string(), v.to_string()])
        .collect();
    table(&["CHANGE", "COUNT"], &rows);
    let status = match pb::ImportJobStatus::try_from(j.status) {
        Ok(pb::ImportJobStatus::Applied) => format!("applied: {} events written", j.events_written),
        Ok(pb::ImportJobStatus::NoChanges) => "no changes: nothing written".into(),
        Ok(pb::ImportJobStatus::DryRun) => "dry run: nothing written".into(),
        Ok(pb::ImportJobStatus::RefusedStrict) => {
            "refused (strict): a row failed, nothing written".into()
        }
        _ => "unknown".into(),
    };
    println!("status: {status}");
    if j.from_log {
        println!("(rebuilt from the log: row errors and warnings are no longer held)");
    }
    for w in &j.warnings {
        println!("warning: {w}");
    }
    if j.row_errors_total > 0 {
        println!("row errors ({}):", j.row_errors_total);
        print_row_errors(&j.row_errors);
        let shown = j.row_errors.len() as u64;
        if shown < j.row_errors_total {
            println!(
                "... and {} more: account-ledger import-job errors {}",
                j.row_errors_total - shown,
                j.job_id
            );
        }
    }
}

/// Zip a OneRoster directory's files (top level) into a temp file.
fn zip_dir(dir: &Path) -> Result<tempfile::NamedTempFile, String> {
    use std::io::Write;
    let err = |e: &dyn std::fmt::Display| format!("{}: cannot zip: {e}", dir.display());
    let tmp = tempfile::Builder::new()
        .suffix(".zip")
        .tempfile()
        .map_err(|e| err(&e))?;
    let mut zip = zip::ZipWriter::new(tmp.reopen().map_err(|e| err(&e))?);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(&e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        zip.start_file(name, options).map_err(|e| err(&e))?;
        let mut f = std::fs::File::open(&path).map_err(|e| err(&e))?;
        std::io::copy(&mut f, &mut zip).map_err(|e| err(&e))?;
    }
    zip.finish()
        .map_err(|e| err(&e))?
        .flush()
        .map_err(|e| err(&e))?;
    Ok(tmp)
}

fn progress_bar(size: u64, json: bool) -> indicatif::ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Upload `path` under `header`; a local read error cancels the call.
async fn upload(
    c: &mut Client,
    header: pb::ImportHeader,
    path: &Path,
    bar: indicatif::ProgressBar,
) -> Result<pb::ImportJob, String> {
    use pb::upload_import_request::Part;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::UploadImportRequest>(8);
    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<String>();
    let shown = path.display().to_string();
    let sending = bar.clone();
    tokio::spawn(async move {
        let header = pb::UploadImportRequest {
            part: Some(Part::Header(header)),
        };
        if tx.send(header).await.is_err() {
            return;
        }
        loop {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    let msg = pb::UploadImportRequest {
                        part: Some(Part::Chunk(buf)),
                    };
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                    sending.inc(n as u64);
                }
                Err(e) => {
                    // Keep the stream open (an end would read as a whole file) until the call is
                    // dropped.
                    let _ = fail_tx.send(format!("{shown}: {e}"));
                    tx.closed().await;
                    return;
                }
            }
        }
    });
    let call = c
        .inner
        .upload_import(c.req(tokio_stream::wrappers::ReceiverStream::new(rx)));
    let result = tokio::select! {
        r = call => r.map(|r| r.into_inner()).map_err(status_text),
        Ok(reason) = fail_rx => Err(format!("upload cancelled, nothing imported: {reason}")),
    };
    bar.finish_and_clear();
    result
}

/// `account-ledger import`: the exit code says whether rows failed (module doc).
pub async fn run(args: ImportArgs) -> Result<ExitCode, String> {
    let ImportArgs {
        conn,
        domain,
        dry_run,
        strict,
        confirm_mass_change,
        version,
        kind,
        start_at,
        path,
    } = args;
    let start_at = start_at
        .as_deref()
        .map(|t| {
            super::time::parse_instant(t)
                .map(crate::api::convert::us_to_timestamp)
                .map_err(|e| format!("--start-at {e}"))
        })
        .transpose()?;
    let json = conn.json;
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a file or directory", path.display()))?;
    let zipped;
    let (upload_path, file_name, kind) = if path.is_dir() {
        zipped = zip_dir(&path)?;
        (
            zipped.path().to_path_buf(),
            format!("{base}.zip"),
            pb::ImportFileKind::OnerosterZip,
        )
    } else {
        let kind = match kind {
            Some(KindArg::Users) => pb::ImportFileKind::Users,
            Some(KindArg::UpdateUsers) => pb::ImportFileKind::UpdateUsers,
            Some(KindArg::DeleteUsers) => pb::ImportFileKind::DeleteUsers,
            None => pb::ImportFileKind::Unspecified,
        };
        (path.clone(), base, kind)
    };
    let size = std::fs::metadata(&upload_path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let header = pb::ImportHeader {
        domain,
        file_name: file_name.clone(),
        dry_run,
        strict,
        confirm_mass_change,
        version: match version {
            None => pb::ImportVersion::Unspecified,
            Some(VersionArg::V1) => pb::ImportVersion::V1,
            Some(VersionArg::V2) => pb::ImportVersion::V2,
        } as i32,
        kind: kind as i32,
        max_row_errors: INLINE_ERRORS,
        start_at,
    };
    let mut c = Client::connect(&conn).await?;
    let bar = progress_bar(size, json);
    bar.set_message(file_name);
    let job = upload(&mut c, header, &upload_path, bar).await?;
    if json {
        let errors = if (job.row_errors.len() as u64) < job.row_errors_total {
            c.row_errors(&job.job_id).await?
        } else {
            job.row_errors.clone()
        };
        println!("{}", job_json(&job, &errors));
    } else {
        print_job(&job);
    }
    let failed = job.counts.unwrap_or_default().failed;
    Ok(
        if pb::ImportJobStatus::try_from(job.status) == Ok(pb::ImportJobStatus::RefusedStrict) {
            ExitCode::FAILURE
        } else if failed > 0 {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `account-ledger import-job ...`.
pub async fn job(conn: Conn, command: ImportJobCommand) -> Result<(), String> {
    let mut c = Client::connect(&conn).await?;
    match command {
        ImportJobCommand::Show { job_id } => {
            let req = c.req(pb::GetImportJobRequest { job_id });
            let j = c
                .inner
                .get_import_job(req)
                .await
                .map_err(status_text)?
                .into_inner();
            if conn.json {
                println!("{}", job_json(&j, &j.row_errors));
            } else {
                print_job(&j);
            }
        }
        ImportJobCommand::List { domain } => {
            let req = c.req(pb::ListImportJobsRequest { domain });
            let jobs = c
                .inner
                .list_import_jobs(req)
                .await
                .map_err(status_text)?
                .into_inner()
                .jobs;
            if conn.json {
                // One JSON array, `[]` when the domain has no jobs.
                let all: Vec<Value> = jobs.iter().map(|j| job_json(j, &[])).collect();
                println!("{}", Value::Array(all));
            } else {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.job_id.clone(),
                            match ts(j.finished_at.as_ref()) {
                                Value::String(s) => s,
                                _ => "-".into(),
                            },
                            j.actor.clone(),
                            j.file.clone(),
                            status_name(j.status).to_string(),
                            j.events_written.to_string(),
                            j.row_errors_total.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "JOB", "FINISHED", "ACTOR", "FILE", "STATUS", "EVENTS", "ERRORS",
                    ],
                    &rows,
                );
            }
        }
        ImportJobCommand::Revert {
            job_id,
            yes,
            confirm_mass_change,
        } => {
            let req = c.req(pb::RevertImportJobRequest {
                job_id,
                dry_run: !yes,
                confirm_mass_change,
            });
            let r = c
                .inner
                .revert_import_job(req)
                .await
                .map_err(status_text)?
                .into_inner();
            if conn.json {
                let changes = |list: &[pb::RevertChange]| -> Vec<Value> {
                    list.iter()
                        .map(|c| serde_json::json!({"account": c.account, "change": c.change}))
                        .collect()
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "reverted_job": r.reverted_job_id,
                        "job": r.job_id,
                        "domain": r.domain,
                        "dry_run": r.dry_run,
                        "changes": changes(&r.changes),
                        "left_alone": changes(&r.left_alone),
                        "deleted_by_job": r.deleted_by_job,
                        "events_written": r.events_written,
                    })
                );
                return Ok(());
            }
            let rows = |list: &[pb::RevertChange]| -> Vec<Vec<String>> {
                list.iter()
                    .map(|c| vec![c.account.to_string(), c.change.clone()])
                    .collect()
            };
            println!(
                "{} of job {} in {}:",
                if r.dry_run {
                    "revert (dry run)"
                } else {
                    "revert"
                },
                r.reverted_job_id,
                r.domain
            );
            table(&["ACCOUNT", "CHANGE"], &rows(&r.changes));
            if !r.left_alone.is_empty() {
                println!("left alone:");
                table(&["ACCOUNT", "WHY"], &rows(&r.left_alone));
            }
            if !r.deleted_by_job.is_empty() {
                let ids: Vec<String> = r.deleted_by_job.iter().map(u64::to_string).collect();
                println!(
                    "deleted by the job, their data destroyed (cannot come back): accounts {}",
                    ids.join(", ")
                );
            }
            if r.dry_run {
                let check = crate::domain::GuardCheck {
                    active_imported: r.active_imported,
                    removals: r.removals,
                    percent: u8::try_from(r.guard_percent).unwrap_or(u8::MAX),
                };
                let guard = if check.exceeded() {
                    format!(
                        " and --confirm-mass-change (it deactivates or deletes {} of {} active \
                         imported accounts, more than {}%)",
                        r.removals, r.active_imported, r.guard_percent
                    )
                } else {
                    String::new()
                };
                println!("nothing written; run again with --yes{guard} to revert");
            } else if r.job_id.is_empty() {
                println!("nothing to change");
            } else {
                println!(
                    "{} events written by revert job {} (revert it to redo the job)",
                    r.events_written, r.job_id
                );
            }
        }
        ImportJobCommand::Errors { job_id } => {
            let errors = c.row_errors(&job_id).await?;
            if conn.json {
                for e in &errors {
                    println!("{}", row_error_json(e));
                }
            } else {
                print_row_errors(&errors);
            }
        }
    }
    Ok(())
}
