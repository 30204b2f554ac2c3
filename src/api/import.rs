//! The tonic service `account_ledger.v1.ImportService`: CSV imports over gRPC.
//!
//! A separate service from `AccountLedger` (its own `import.proto`, same package and server):
//! imports are a workflow of their own (upload, job, report), and keeping them apart leaves the
//! core service's proto untouched.
//!
//! - `UploadImport` (client streaming): header first, then chunks. A PowerSchool CSV is never
//!   held whole: chunks go through a bounded channel ([`ChannelReader`]) into
//!   [`run_import`]'s blocking reader, so memory stays flat in the file size. A OneRoster `.zip`
//!   is spooled to a temp file (zip needs to seek). A broken upload stream refuses the job: a
//!   truncated file is never imported as if it were whole.
//! - The summary of a job that wrote events (counts, totals, file, actor, time; no rows) is
//!   recorded on its domain's stream (`ImportJobRecorded`), so every server lists it, also
//!   after a restart.
//!   Its row errors and diff are kept in a **bounded in-memory registry** of the server that
//!   ran it ([`JobRegistry`]: the newest [`MAX_JOBS`] jobs, at most [`MAX_RETAINED_ROWS`] row
//!   errors + changed rows in all; they name people and can be millions of rows). A job no
//!   longer held is answered from its summary (or, for one recorded by no summary, from its
//!   events); its rows are then gone (NOT_FOUND from the streams).
//! - Only domain admins run imports, for their own domains; domain admins (own domains) and
//!   auditors read jobs. Refusals map through [`super::status::from_import`].

use std::io::Read;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::auth::{Auth, Op, Principal};
use super::convert::{required, us_to_timestamp};
use super::pb::{self, upload_import_request::Part};
use super::status::{domain_not_found, from_import, invalid, missing, permission_denied};
use crate::import::limits::{MAX_FILE_NAME_BYTES, quote};
use crate::import::{
    Counts, FileKind, GuardCheck, ImportInput, ImportJob, ImportOptions, ImportReport, JobStatus,
    RowChange, RowError, Version, run_import,
};
use crate::ledger::Ledger;

pub use super::import_registry::{JobRecord, JobRegistry, MAX_JOBS, MAX_RETAINED_ROWS};
use crate::store::{Source, now_us};

/// Row errors in an upload's reply when the header asks for none in particular.
pub const DEFAULT_ROW_ERRORS: u32 = 100;
/// At most this many row errors inline (the rest: `StreamImportRowErrors`).
pub const MAX_INLINE_ROW_ERRORS: u32 = 1000;
/// Chunks buffered between the gRPC stream and the CSV reader.
const CHANNEL_CHUNKS: usize = 16;

type BoxStream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A `Read` over upload chunks arriving on a bounded channel; for a blocking thread only.
/// `Err` items (the upload stream broke) become read errors, so a cut-off file is refused.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>) -> ChannelReader {
        ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(reason)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("the upload broke off: {reason}"),
                    ));
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The ImportService.
#[derive(Clone)]
pub struct ImportService {
    ledger: Ledger,
    auth: Arc<Auth>,
    registry: Arc<Mutex<JobRegistry>>,
}

/// The base name of an uploaded file: no directories, not empty.
fn base_file_name(name: &str) -> Result<String, Status> {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if base.is_empty() || base == "." || base == ".." {
        return Err(invalid(
            "header.file_name",
            format!("{} is not a file name (e.g. users.csv)", quote(name)),
        ));
    }
    if base.len() > MAX_FILE_NAME_BYTES {
        return Err(invalid(
            "header.file_name",
            format!(
                "{} is {} bytes, more than {MAX_FILE_NAME_BYTES}",
                quote(&base),
                base.len()
            ),
        ));
    }
    if let Some(c) = base.chars().find(|c| c.is_control()) {
        return Err(invalid(
            "header.file_name",
            format!(
                "{} holds the control character U+{:04X}",
                quote(&base),
                u32::from(c)
            ),
        ));
    }
    Ok(base)
}

fn parse_job_id(id: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(id.trim()).map_err(|e| invalid("job_id", format!("not a UUID: {e}")))
}

fn status_to_wire(s: JobStatus) -> pb::ImportJobStatus {
    match s {
        JobStatus::Applied => pb::ImportJobStatus::Applied,
        JobStatus::NoChanges => pb::ImportJobStatus::NoChanges,
        JobStatus::DryRun => pb::ImportJobStatus::DryRun,
        JobStatus::RefusedStrict => pb::ImportJobStatus::RefusedStrict,
    }
}

/// The wire counts back as the import's own (the CLI prints them by kind).
pub(crate) fn counts_from_wire(c: &pb::ImportCounts) -> Counts {
    Counts {
        created: c.created,
        updated: c.updated,
        enabled: c.enabled,
        disabled: c.disabled,
        deactivated: c.deactivated,
        reactivated: c.reactivated,
        deleted: c.deleted,
        unchanged: c.unchanged,
        failed: c.failed,
    }
}

fn counts_to_wire(c: &Counts) -> pb::ImportCounts {
    pb::ImportCounts {
        created: c.created,
        updated: c.updated,
        enabled: c.enabled,
        disabled: c.disabled,
        deactivated: c.deactivated,
        reactivated: c.reactivated,
        deleted: c.deleted,
        unchanged: c.unchanged,
        failed: c.failed,
    }
}

fn guard_to_wire(g: &GuardCheck) -> pb::ImportGuard {
    pb::ImportGuard {
        active_imported: g.active_imported,
        removals: g.removals,
        percent: u32::from(g.percent),
        exceeded: g.exceeded(),
    }
}

pub fn row_error_to_wire(e: &RowError) -> pb::ImportRowError {
    pb::ImportRowError {
        file: e.file.clone(),
        row: e.row,
        column: e.column.clone(),
        import_id: e.import_id.clone(),
        reason: e.reason.clone(),
    }
}

fn change_to_wire(c: &RowChange) -> pb::ImportRowChange {
    pb::ImportRowChange {
        row: c.row,
        import_id: c.import_id.clone(),
        account: c.account,
        changes: c.changes.iter().map(|k| k.as_str().to_string()).collect(),
    }
}

/// A job as the log keeps it: counts and totals (its kept row errors are added by the caller;
/// its diff is its events).
fn summary_to_wire(domain: &str, s: &crate::domain::import_job::ImportJobSummary) -> pb::ImportJob {
    let mut wire = record_to_wire(
        &JobRecord {
            report: ImportReport::from_job_summary(domain, s),
            actor: s.actor.clone(),
            finished_at_us: s.finished_at_us,
        },
        0,
    );
    wire.from_log = true;
    wire.guard = None;
    wire
}

/// A registry record for the wire, with the first `inline` row errors.
fn record_to_wire(r: &JobRecord, inline: usize) -> pb::ImportJob {
    let rep = &r.report;
    pb::ImportJob {
        job_id: rep.job_id.to_string(),
        domain: rep.domain.clone(),
        file: rep.file.clone(),
        format: rep.format.clone(),
        status: status_to_wire(rep.status) as i32,
        counts: Some(counts_to_wire(&rep.counts)),
        events_written: rep.events_written,
        rows_read: rep.rows_read,
        warnings: rep.warnings.clone(),
        guard: Some(guard_to_wire(&rep.guard)),
        row_errors: rep
            .row_errors
            .iter()
            .take(inline)
            .map(row_error_to_wire)
            .collect(),
        row_errors_total: rep.row_errors.len() as u64 + rep.row_errors_omitted,
        changed_rows: rep.changes.len() as u64,
        actor: r.actor.clone(),
        finished_at: Some(us_to_timestamp(r.finished_at_us)),
        from_log: false,
        summary: rep.summary(),
        held: rep.held,
        start_schedule: rep.start_schedule.unwrap_or(0),
        deletion_schedule: rep.deletion_schedule.unwrap_or(0),
    }
}

fn options(h: &pb::ImportHeader) -> Result<(ImportOptions, bool), Status> {
    let version = match pb::ImportVersion::try_from(h.version) {
        Ok(pb::ImportVersion::Unspecified) => None,
        Ok(pb::ImportVersion::V1) => Some(Version::V1),
        Ok(pb::ImportVersion::V2) => Some(Version::V2),
        Err(_) => return Err(invalid("header.version", h.version)),
    };
    let (kind, zip) = match pb::ImportFileKind::try_from(h.kind) {
        Ok(pb::ImportFileKind::Unspecified) => (None, false),
        Ok(pb::ImportFileKind::Users) => (Some(FileKind::Users), false),
        Ok(pb::ImportFileKind::UpdateUsers) => (Some(FileKind::UpdateUsers), false),
        Ok(pb::ImportFileKind::DeleteUsers) => (Some(FileKind::DeleteUsers), false),
        Ok(pb::ImportFileKind::OnerosterZip) => (None, true),
        Err(_) => return Err(invalid("header.kind", h.kind)),
    };
    Ok((
        ImportOptions {
            dry_run: h.dry_run,
            strict: h.strict,
            confirm_mass_change: h.confirm_mass_change,
            version,
            kind,
            start_at: h
                .start_at
                .as_ref()
                .map(|t| super::convert::timestamp_to_us(t, "header.start_at"))
                .transpose()?,
        },
        zip,
    ))
}

/// NOT_FOUND for a job this server does not hold (and, where asked, the log has no record of).
fn not_held(job: &Uuid) -> Status {
    Status::not_found(format!(
        "import job {job} is not held by this server (finished before a restart, evicted from \
         the registry of the last {MAX_JOBS} jobs, or never run): its row-by-row changes are its \
         events (GetImportJobHistory); GetImportJob and StreamImportRowErrors answer from the log"
    ))
}

/// A job as the log keeps it (see [`crate::domain::import_job`]).
struct RecordedJob {
    domain: String,
    summary: std::sync::Arc<crate::domain::import_job::ImportJobSummary>,
    errors: Vec<RowError>,
}

impl ImportService {
    pub fn new(ledger: Ledger, auth: Arc<Auth>) -> ImportService {
        ImportService {
            ledger,
            auth,
            registry: Arc::default(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, JobRegistry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A job held in the registry that `who` may read; NOT_FOUND when not held.
    fn held(&self, who: &Principal, job: &Uuid) -> Result<Option<Arc<JobRecord>>, Status> {
        who.require(Op::Read)?;
        let Some(rec) = self.registry().get(job) else {
            return Ok(None);
        };
        who.require_in(Op::Read, &rec.report.domain)?;
        Ok(Some(rec))
    }

    fn held_or_gone(&self, who: &Principal, job: &Uuid) -> Result<Arc<JobRecord>, Status> {
        self.held(who, job)?.ok_or_else(|| not_held(job))
    }

    /// Record the summary of a finished job (applied, no changes, or refused as strict) and
    /// its row errors on its domain's stream, so that every server lists and shows it, also
    /// after a restart. A dry run records nothing: it changed nothing. A failure here leaves
    /// the job as it is: it is logged, and `GetImportJob` still answers from the job's events.
    async fn record_in_log(&self, record: &JobRecord) {
        let report = &record.report;
        if report.status == JobStatus::DryRun {
            return;
        }
        let command = crate::domain::Command::RecordImportJob {
            domain: report.domain.clone(),
            job: Box::new(report.to_job_summary(&record.actor, record.finished_at_us)),
            row_errors: report.row_errors.iter().map(RowError::kept).collect(),
        };
        let request = crate::ledger::Request::manual(&record.actor, command);
        if let Err(e) = self.ledger.execute(request).await {
            tracing::warn!(job = %report.job_id, "the job's summary was not recorded: {e}");
        }
    }

    /// A job recorded in the log, with the row errors the log keeps.
    async fn recorded_job(
        &self,
        who: &Principal,
        job: &Uuid,
    ) -> Result<Option<RecordedJob>, Status> {
        let Some((domain, summary)) = self.ledger.recorded_import_job(job) else {
            return Ok(None);
        };
        who.require_in(Op::Read, &domain)?;
        let errors = if summary.row_errors == 0 {
            Vec::new()
        } else {
            self.ledger
                .recorded_row_errors(&domain, job)
                .await?
                .iter()
                .map(|kept| RowError::from_kept(&summary.file, kept))
                .collect()
        };
        Ok(Some(RecordedJob {
            domain,
            summary,
            errors,
        }))
    }

    /// GetImportJob for a job the registry no longer holds: its recorded summary, else from
    /// its events.
    async fn job_from_log(&self, who: &Principal, job: &Uuid) -> Result<pb::ImportJob, Status> {
        if let Some(recorded) = self.recorded_job(who, job).await? {
            let mut wire = summary_to_wire(&recorded.domain, &recorded.summary);
            wire.row_errors = recorded
                .errors
                .iter()
                .take(DEFAULT_ROW_ERRORS as usize)
                .map(row_error_to_wire)
                .collect();
            return Ok(wire);
        }
        let events = self.ledger.import_job_history(job).await?;
        if events.is_empty() {
            return Err(Status::not_found(format!(
                "import job {job} is unknown: not held by this server and no events in the log \
                 (a dry run records none)"
            )));
        }
        let domain = self.ledger.events_domain(&events).unwrap_or_default();
        if !(who.all_domains() || who.may_see(&domain)) {
            return Err(permission_denied(format!(
                "{} has no rights in the domains of import job {job}",
                who.name
            )));
        }
        let mut counts = Counts::default();
        let mut file = String::new();
        let mut finished = 0;
        for e in &events {
            match e.event.kind() {
                "AccountCreated" => counts.created += 1,
                "ProfileUpdated" => counts.updated += 1,
                "AccountEnabled" => counts.enabled += 1,
                "AccountDisabled" => counts.disabled += 1,
                "AccountDeactivated" => counts.deactivated += 1,
                "AccountReactivated" => counts.reactivated += 1,
                "AccountDeleted" => counts.deleted += 1,
                _ => {}
            }
            if file.is_empty() {
                match &e.source {
                    Source::Import { file: f, .. } => file = f.to_string(),
                    Source::Revert { reverted, .. } => file = format!("revert of job {reverted}"),
                    _ => {}
                }
            }
            finished = finished.max(e.recorded_at_us);
        }
        let actor = events
            .first()
            .map(|e| e.actor.to_string())
            .unwrap_or_default();
        let report = ImportReport {
            counts,
            events_written: events.len() as u64,
            ..ImportReport::new(*job, &domain, &file, JobStatus::Applied)
        };
        let mut wire = record_to_wire(
            &JobRecord {
                report,
                actor,
                finished_at_us: finished,
            },
            0,
        );
        wire.from_log = true;
        wire.guard = None;
        Ok(wire)
    }

    /// Read the upload into the import: a CSV through the channel, a zip spooled to a file.
    async fn import_upload(
        &self,
        job: ImportJob,
        name: String,
        zip: bool,
        opts: ImportOptions,
        mut stream: Streaming<pb::UploadImportRequest>,
    ) -> Result<ImportReport, Status> {
        if zip {
            let dir = tempfile::tempdir()
                .map_err(|e| Status::unavailable(format!("cannot spool the upload: {e}")))?;
            let name = if name.to_ascii_lowercase().ends_with(".zip") {
                name
            } else {
                format!("{name}.zip")
            };
            let path = dir.path().join(&name);
            let spool_err =
                |e: std::io::Error| Status::unavailable(format!("cannot spool {name}: {e}"));
            let mut file = tokio::fs::File::create(&path).await.map_err(spool_err)?;
            let mut spooled = 0u64;
            while let Some(msg) = stream.message().await? {
                match msg.part {
                    Some(Part::Chunk(bytes)) => {
                        spooled += bytes.len() as u64;
                        if spooled > crate::import::limits::MAX_FILE_BYTES {
                            return Err(invalid(
                                "chunk",
                                format!(
                                    "{name} is longer than {} bytes (limit max_file_bytes)",
                                    crate::import::limits::MAX_FILE_BYTES
                                ),
                            ));
                        }
                        file.write_all(&bytes).await.map_err(spool_err)?
                    }
                    Some(Part::Header(_)) => {
                        return Err(invalid("header", "sent twice (only the first message)"));
                    }
                    None => {}
                }
            }
            file.flush().await.map_err(spool_err)?;
            drop(file);
            let report =
                run_import(&self.ledger, job, ImportInput::Path(path), opts, |_| {}).await?;
            return Ok(report);
        }

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(CHANNEL_CHUNKS);
        let forward = tokio::spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(msg)) => match msg.part {
                        Some(Part::Chunk(bytes)) if bytes.is_empty() => {}
                        Some(Part::Chunk(bytes)) => {
                            let sent = tx.send(Ok(bytes)).await;
                            if sent.is_err() {
                                // The import stopped reading (it refused the file).
                                return Ok(());
                            }
                        }
                        Some(Part::Header(_)) => {
                            let _ = tx.send(Err("a second header".into())).await;
                            return Err(invalid("header", "sent twice (only the first message)"));
                        }
                        None => {}
                    },
                    Ok(None) => return Ok(()),
                    Err(status) => {
                        let _ = tx.send(Err(status.message().to_string())).await;
                        return Err(status);
                    }
                }
            }
        });
        let input = ImportInput::Reader {
            name,
            reader: Box::new(ChannelReader::new(rx)),
        };
        let result = run_import(&self.ledger, job, input, opts, |_| {}).await;
        if result.is_err() {
            forward.abort();
        }
        let forwarded = forward.await;
        match (result, forwarded) {
            // The upload broke or was malformed: that is the answer, not the reader's error.
            (_, Ok(Err(status))) => Err(status),
            (Ok(report), _) => Ok(report),
            (Err(e), _) => Err(from_import(&e)),
        }
    }
}

#[tonic::async_trait]
impl pb::import_service_server::ImportService for ImportService {
    async fn upload_import(
        &self,
        request: Request<Streaming<pb::UploadImportRequest>>,
    ) -> Result<Response<pb::ImportJob>, Status> {
        let who = self.auth.authenticate(&request).await?;
        who.require(Op::ManageAccounts)?;
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::UploadImportRequest {
                part: Some(Part::Header(h)),
            }) => h,
            Some(_) => {
                return Err(invalid(
                    "header",
                    "the first message must be the header (domain, file name, options)",
                ));
            }
            None => return Err(missing("header")),
        };
        let (opts, zip_kind) = options(&header)?;
        if opts.start_at.is_some_and(|at| at < self.ledger.now_us()) {
            return Err(invalid(
                "header.start_at",
                "is in the past; leave it out to enable the new accounts now",
            ));
        }
        let domain = required("header.domain", header.domain.clone())?;
        who.require_in(Op::ManageAccounts, &domain)?;
        if !self.ledger.domain_exists_fresh(&domain).await {
            return Err(domain_not_found(&domain));
        }
        let name = base_file_name(&header.file_name)?;
        let zip = zip_kind || name.to_ascii_lowercase().ends_with(".zip");
        let inline = match header.max_row_errors {
            0 => DEFAULT_ROW_ERRORS,
            n => n.min(MAX_INLINE_ROW_ERRORS),
        } as usize;
        let job = ImportJob::new(&domain, &who.name);
        let started = std::time::Instant::now();
        let report = self.import_upload(job, name, zip, opts, stream).await?;
        tracing::info!(
            job = %report.job_id,
            domain = %report.domain,
            file = %report.file,
            actor = %who.name,
            status = ?report.status,
            rows = report.rows_read,
            events = report.events_written,
            row_errors = report.row_errors.len(),
            ms = started.elapsed().as_millis() as u64,
            "import job finished"
        );
        let status = format!("{:?}", report.status).to_lowercase();
        let m = &*crate::metrics::METRICS;
        m.import_jobs.with_label_values(&[&status]).inc();
        m.import_rows
            .with_label_values(&[&status])
            .inc_by(report.rows_read);
        let record = JobRecord {
            report,
            actor: who.name.clone(),
            finished_at_us: now_us(),
        };
        self.record_in_log(&record).await;
        let wire = record_to_wire(&record, inline);
        self.registry().insert(record);
        Ok(Response::new(wire))
    }

    async fn get_import_job(
        &self,
        request: Request<pb::GetImportJobRequest>,
    ) -> Result<Response<pb::ImportJob>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let job = parse_job_id(&request.get_ref().job_id)?;
        match self.held(&who, &job)? {
            Some(rec) => Ok(Response::new(record_to_wire(
                &rec,
                DEFAULT_ROW_ERRORS as usize,
            ))),
            None => Ok(Response::new(self.job_from_log(&who, &job).await?)),
        }
    }

    type StreamImportRowErrorsStream = BoxStream<pb::ImportRowError>;

    async fn stream_import_row_errors(
        &self,
        request: Request<pb::GetImportJobRequest>,
    ) -> Result<Response<Self::StreamImportRowErrorsStream>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let job = parse_job_id(&request.get_ref().job_id)?;
        if let Some(rec) = self.held(&who, &job)? {
            let n = rec.report.row_errors.len();
            let stream = tokio_stream::iter(0..n)
                .map(move |i| Ok(row_error_to_wire(&rec.report.row_errors[i])));
            return Ok(Response::new(Box::pin(stream)));
        }
        let recorded = self
            .recorded_job(&who, &job)
            .await?
            .ok_or_else(|| not_held(&job))?;
        if recorded.errors.is_empty() && recorded.summary.row_errors > 0 {
            return Err(Status::not_found(format!(
                "the {} row errors of import job {job} were not kept in the log (it ran before \
                 row errors were recorded) and this server does not hold the job",
                recorded.summary.row_errors
            )));
        }
        let stream = tokio_stream::iter(recorded.errors).map(|e| Ok(row_error_to_wire(&e)));
        Ok(Response::new(Box::pin(stream)))
    }

    type StreamImportChangesStream = BoxStream<pb::ImportRowChange>;

    async fn stream_import_changes(
        &self,
        request: Request<pb::GetImportJobRequest>,
    ) -> Result<Response<Self::StreamImportChangesStream>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let job = parse_job_id(&request.get_ref().job_id)?;
        let rec = self.held_or_gone(&who, &job)?;
        let n = rec.report.changes.len();
        let stream =
            tokio_stream::iter(0..n).map(move |i| Ok(change_to_wire(&rec.report.changes[i])));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn revert_import_job(
        &self,
        request: Request<pb::RevertImportJobRequest>,
    ) -> Result<Response<pb::RevertImportJobResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let req = request.into_inner();
        let job = parse_job_id(&req.job_id)?;
        // Rights first: planning reads every event of the job.
        who.require(Op::ManageAccounts)?;
        if let Some(domain) = self.ledger.import_job_domain(&job).await? {
            who.require_in(Op::ManageAccounts, &domain)?;
        }
        let Some(plan) = self.ledger.plan_revert(&job).await? else {
            return Err(Status::not_found(format!(
                "job {job} has no events in the log: nothing to revert (a dry run, refused or \
                 no-change job writes none)"
            )));
        };
        who.require_in(Op::ManageAccounts, &plan.domain)?;
        let outcome = self
            .ledger
            .run_revert(plan, &who.name, req.dry_run, req.confirm_mass_change)
            .await?;
        tracing::info!(
            reverted = %job,
            by = %who.name,
            dry_run = req.dry_run,
            events = outcome.events_written,
            "import job reverted"
        );
        let plan = &outcome.plan;
        Ok(Response::new(pb::RevertImportJobResponse {
            reverted_job_id: job.to_string(),
            job_id: outcome.job_id.map(|j| j.to_string()).unwrap_or_default(),
            domain: plan.domain.clone(),
            dry_run: req.dry_run,
            changes: plan
                .steps
                .iter()
                .map(|s| pb::RevertChange {
                    account: s.account,
                    change: s.what.clone(),
                })
                .collect(),
            left_alone: plan
                .changed_since
                .iter()
                .map(|(account, at)| pb::RevertChange {
                    account: *account,
                    change: format!("changed again after the job (log position {at})"),
                })
                .collect(),
            deleted_by_job: plan.deleted_by_job.clone(),
            events_written: outcome.events_written,
            removals: plan.guard.removals,
            active_imported: plan.guard.active_imported,
            guard_percent: u32::from(plan.guard.percent),
        }))
    }

    async fn list_import_jobs(
        &self,
        request: Request<pb::ListImportJobsRequest>,
    ) -> Result<Response<pb::ListImportJobsResponse>, Status> {
        let who = self.auth.authenticate(&request).await?;
        let domain = required("domain", request.into_inner().domain)?;
        who.require_in(Op::Read, &domain)?;
        if !self.ledger.domain_exists_fresh(&domain).await {
            return Err(domain_not_found(&domain));
        }
        // This server's recent jobs (with their rows), and every job recorded in the log (run
        // on any server, before or after a restart), newest first.
        let held = self.registry().of_domain(&domain);
        let mut jobs: Vec<(i64, pb::ImportJob)> = held
            .iter()
            .map(|r| (r.finished_at_us, record_to_wire(r, 0)))
            .collect();
        for summary in self.ledger.recorded_import_jobs(&domain) {
            if !held.iter().any(|r| r.report.job_id == summary.job_id) {
                jobs.push((summary.finished_at_us, summary_to_wire(&domain, &summary)));
            }
        }
        jobs.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let jobs = jobs.into_iter().map(|(_, j)| j).collect();
        Ok(Response::new(pb::ListImportJobsResponse { jobs }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_reads_chunks_then_eof_and_reports_a_broken_upload() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(b"ab".to_vec())).unwrap();
        tx.try_send(Ok(b"cde".to_vec())).unwrap();
        drop(tx);
        let mut s = String::new();
        ChannelReader::new(rx).read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcde");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(b"ab".to_vec())).unwrap();
        tx.try_send(Err("reset".into())).unwrap();
        let mut s = String::new();
        let e = ChannelReader::new(rx).read_to_string(&mut s).unwrap_err();
        assert!(e.to_string().contains("reset"));
    }

    #[test]
    fn file_names_are_base_names() {
        assert_eq!(base_file_name("/tmp/x/users.csv").unwrap(), "users.csv");
        assert_eq!(base_file_name("C:\\sis\\users.csv").unwrap(), "users.csv");
        assert!(base_file_name("..").is_err());
        assert!(base_file_name("dir/").is_err());
    }
}
