//! CSV imports: how a district's SIS drives account lifecycles (DOMAIN.md, "Import files").
//!
//! One import is one job: the file is streamed and checked ([`powerschool`], [`oneroster`]),
//! planned against the current state ([`plan`]: only what differs), checked by the mass-change
//! guard ([`guard`]), then applied with ONE [`Ledger::execute_batch`] call (one atomic, durable
//! batch), every request tagged `Source::Import { job_id, file, row }`. A structural problem
//! (header, encoding, mixed versions) refuses the file before anything is applied; a bad row is
//! reported and skipped. The entry point for the CLI and the API is [`run_import`].

pub mod error;
mod job_results;
pub mod limits;
pub mod oneroster;
pub mod plan;
pub mod powerschool;
pub mod report;
pub mod rows;
mod table;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

pub use crate::domain::GuardCheck;
pub use error::{ImportError, RowError};
use oneroster::Manifest;
pub use oneroster::{RosterVersion, UsersMode};
pub use plan::{ChangeKind, Plan, Planner, Scope};
pub use powerschool::{FileKind, UserRow, UsersCsvWriter, Version, write_users_csv};
pub use report::{Counts, ImportReport, JobStatus, RowChange};
use rows::Roles;

use crate::ledger::{BatchMode, BatchOutcome, Ledger};
use error::ColumnNames;
use job_results::job_results;
use rows::UserReader;
use table::Counting;

/// Who runs which job against which domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    pub job_id: Uuid,
    pub domain: String,
    /// The administrator, recorded as the actor of every event.
    pub actor: String,
}

impl ImportJob {
    /// A job with a fresh random id.
    pub fn new(domain: &str, actor: &str) -> ImportJob {
        ImportJob {
            job_id: Uuid::new_v4(),
            domain: domain.to_string(),
            actor: actor.to_string(),
        }
    }
}

/// The CLI flags, as values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Decide everything, write nothing; the report is the exact diff.
    pub dry_run: bool,
    /// Any bad or refused row refuses the whole file.
    pub strict: bool,
    /// Let a full import deactivate/delete more than the domain's guard share.
    pub confirm_mass_change: bool,
    /// PowerSchool version, when the header cannot say (or to override it).
    pub version: Option<Version>,
    /// PowerSchool file kind, when the file name does not say (e.g. an upload named otherwise).
    pub kind: Option<FileKind>,
    /// Create new accounts disabled and enable them at this instant (UTC microseconds), by a
    /// schedule the job makes.
    pub start_at: Option<i64>,
}

/// What to import.
pub enum ImportInput {
    /// A PowerSchool file (`users.csv`, `update_users.csv`, `delete_users.csv`), a OneRoster
    /// directory, or a OneRoster `.zip`.
    Path(PathBuf),
    /// A PowerSchool CSV as a byte stream (an upload). `name` is the file name, used for the
    /// kind (unless [`ImportOptions::kind`] says) and in audit records. A OneRoster zip upload
    /// must be spooled to a file and passed as [`ImportInput::Path`] (zip needs to seek).
    Reader {
        name: String,
        reader: Box<dyn Read + Send>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and planning; `rows` and `bytes` grow.
    Reading,
    /// The one batch is with the ledger.
    Applying,
    Done,
}

/// Progress of a job, for a progress bar. Reported about every 1024 rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub rows: u64,
    /// Bytes of the CSV read so far (compressed size is unknown for zip members).
    pub bytes: u64,
}

/// Rows planned per read of the ledger state (one short read lock per chunk).
const CHUNK_ROWS: usize = 1024;

/// Run one import job: read and check `input`, plan it against `job.domain`'s current state,
/// apply it as one atomic batch (or not at all: dry run, strict refusal, file error, guard).
///
/// `Err` means the whole job was refused and nothing was written; row problems are in the
/// `Ok` report. Reading and planning run on a blocking thread; `progress` is called from it.
pub async fn run_import<P>(
    ledger: &Ledger,
    job: ImportJob,
    input: ImportInput,
    opts: ImportOptions,
    progress: P,
) -> Result<ImportReport, ImportError>
where
    P: FnMut(Progress) + Send + 'static,
{
    if !ledger.domain_exists(&job.domain) {
        return Err(ImportError::UnknownDomain {
            domain: job.domain.clone(),
        });
    }
    // On several servers: plan on everything committed so far (a change made through
    // another server a moment ago would otherwise refuse the job's expected versions).
    if let Err(e) = ledger.follow().await {
        tracing::warn!("reading other servers' changes before planning an import failed: {e}");
    }
    let reading = {
        let ledger = ledger.clone();
        let domain = job.domain.clone();
        tokio::task::spawn_blocking(move || {
            let mut progress = progress;
            let read = read_and_plan(&ledger, &domain, input, &opts, &mut progress);
            (read, progress)
        })
    };
    let (read, mut progress) = reading.await.map_err(|e| ImportError::Io {
        file: "(import task)".into(),
        source: std::io::Error::other(format!("the import task failed: {e}")),
    })?;
    let read = read?;
    apply(ledger, &job, read, &opts, &mut progress).await
}

/// A read and planned file.
struct ReadFile {
    plan: Plan,
    format: String,
    warnings: Vec<String>,
    names: ColumnNames,
    flag_column: String,
}

async fn apply(
    ledger: &Ledger,
    job: &ImportJob,
    read: ReadFile,
    opts: &ImportOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let ReadFile {
        mut plan,
        format,
        mut warnings,
        names,
        flag_column,
    } = read;
    let file = plan.file.clone();
    if plan.guard.exceeded() && !opts.confirm_mass_change {
        let refusal = ImportError::MassChange {
            domain: job.domain.clone(),
            file: file.clone(),
            affected: plan.guard.removals,
            active: plan.guard.active_imported,
            percent: plan.guard.percent,
        };
        if !opts.dry_run {
            return Err(refusal);
        }
        warnings.push(format!("{refusal} (dry run: shown, not applied)"));
    }
    let strict_refused_early = opts.strict && plan.failed_rows() > 0;
    let mode = if opts.dry_run || strict_refused_early {
        BatchMode::DryRun
    } else if opts.strict {
        BatchMode::Strict
    } else {
        BatchMode::BestEffort
    };
    progress(Progress {
        phase: Phase::Applying,
        rows: plan.rows_read,
        bytes: 0,
    });
    let (requests, rows) = plan.take_requests(&job.actor, job.job_id);
    let requested = requests.len();
    let mut outcome = if requests.is_empty() {
        BatchOutcome {
            results: Vec::new(),
            written: false,
        }
    } else {
        ledger
            .execute_batch(requests, mode)
            .await
            .map_err(|source| ImportError::Ledger {
                file: file.clone(),
                source,
            })?
    };
    // A strict batch refused by one of the job's own commands (its rows all decided, e.g. a
    // hold on a schedule that ended meanwhile) wrote nothing: the whole job is refused, not
    // reported as rows applied.
    let row_steps: usize = rows.iter().map(|r| r.steps.len()).sum();
    if mode == BatchMode::Strict && !outcome.written {
        let split = row_steps.min(outcome.results.len());
        let rows_ok = outcome.results[..split].iter().all(Result::is_ok);
        let refused_by_job = outcome.results[split..].iter().position(Result::is_err);
        if let (true, Some(i)) = (rows_ok, refused_by_job)
            && let Err(source) = outcome.results.swap_remove(split + i)
        {
            return Err(ImportError::Ledger {
                file: file.clone(),
                source,
            });
        }
    }
    let mut counts = Counts {
        unchanged: plan.unchanged,
        failed: plan.failed_rows(),
        ..Counts::default()
    };
    let mut row_errors_omitted = plan.row_errors_omitted;
    let mut row_errors = std::mem::take(&mut plan.row_errors);
    // Sized up front: a 1M-row job's list grown by doubling held 1.5 copies of it at once.
    let mut changes = Vec::with_capacity(rows.len());
    let mut events_written = 0u64;
    let mut results = outcome.results.into_iter();
    // The job's own commands follow its rows' (Plan::take_requests).
    let job_commands = requested - row_steps;
    for row in rows {
        let mut done = Vec::new();
        let mut account = row.account;
        let mut failure = None;
        for changes in &row.steps {
            match results.next() {
                Some(Ok(executed)) if failure.is_none() => {
                    events_written += executed.positions.len() as u64;
                    account = account.or(executed.account);
                    done.extend(changes.iter().copied());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                }
                None => {
                    failure.get_or_insert(crate::ledger::LedgerError::Closed);
                }
            }
        }
        if let Some(e) = failure {
            counts.failed += 1;
            let mut reason = e.to_string();
            if !done.is_empty() {
                let kinds: Vec<&str> = done.iter().map(|k| k.as_str()).collect();
                reason.push_str(&format!(" (partly applied: {})", kinds.join(", ")));
            }
            // Bounded: later rows would sort after the first listed ones anyway.
            if row_errors.len() < 2 * limits::MAX_ROW_ERRORS_LISTED {
                row_errors.push(RowError {
                    file: file.clone(),
                    row: row.row,
                    column: error::column_of(&e, &flag_column, &names),
                    import_id: Some(row.import_id.clone()),
                    reason,
                });
            } else {
                row_errors_omitted += 1;
            }
        }
        for k in &done {
            counts.add(*k);
        }
        if !done.is_empty() {
            changes.push(RowChange {
                row: row.row,
                import_id: row.import_id,
                account,
                changes: done,
            });
        }
    }
    let made = job_results(ledger, &plan, results, job_commands, &mut warnings).await;
    events_written += made.written;
    row_errors.sort_by_key(|e| e.row);
    if row_errors.len() > limits::MAX_ROW_ERRORS_LISTED {
        row_errors_omitted += (row_errors.len() - limits::MAX_ROW_ERRORS_LISTED) as u64;
        row_errors.truncate(limits::MAX_ROW_ERRORS_LISTED);
    }
    if row_errors_omitted > 0 {
        warnings.push(format!(
            "{file}: {row_errors_omitted} more failed rows are counted but not listed (the \
             first {} are; limit max_row_errors_listed)",
            limits::MAX_ROW_ERRORS_LISTED
        ));
    }
    let status = if opts.dry_run {
        JobStatus::DryRun
    } else if opts.strict && counts.failed > 0 {
        JobStatus::RefusedStrict
    } else if events_written == 0 {
        JobStatus::NoChanges
    } else {
        JobStatus::Applied
    };
    progress(Progress {
        phase: Phase::Done,
        rows: plan.rows_read,
        bytes: 0,
    });
    Ok(ImportReport {
        job_id: job.job_id,
        domain: job.domain.clone(),
        file,
        format,
        status,
        counts,
        events_written,
        rows_read: plan.rows_read,
        changes,
        row_errors,
        row_errors_omitted,
        warnings,
        guard: plan.guard,
        held: plan.held.len() as u64,
        start_schedule: made.start,
        deletion_schedule: made.deletion,
    })
}

/// Read the input (on a blocking thread) and plan it.
fn read_and_plan(
    ledger: &Ledger,
    domain: &str,
    input: ImportInput,
    opts: &ImportOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<ReadFile, ImportError> {
    match input {
        ImportInput::Reader { name, reader } => {
            plan_powerschool(ledger, domain, &name, reader, opts, progress)
        }
        ImportInput::Path(path) => {
            let shown = path.display().to_string();
            if path.is_dir() {
                return plan_oneroster_dir(ledger, domain, &path, opts.start_at, progress);
            }
            let is_zip = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
            let file = std::fs::File::open(&path).map_err(|source| ImportError::Io {
                file: shown.clone(),
                source,
            })?;
            if is_zip {
                return plan_oneroster_zip(ledger, domain, &path, file, opts.start_at, progress);
            }
            let name = base_name(&path);
            plan_powerschool(ledger, domain, &name, file, opts, progress)
        }
    }
}

fn base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn plan_powerschool<R: Read>(
    ledger: &Ledger,
    domain: &str,
    name: &str,
    input: R,
    opts: &ImportOptions,
    progress: &mut impl FnMut(Progress),
) -> Result<ReadFile, ImportError> {
    let kind = opts
        .kind
        .or_else(|| FileKind::from_file_name(name))
        .ok_or_else(|| ImportError::UnknownFile {
            file: name.to_string(),
            reason: "expected users.csv, update_users.csv or delete_users.csv (or name the kind: `--kind users`, `update-users` or `delete-users`; gRPC `header.kind`)"
                .into(),
        })?;
    let counting = Counting::new(input);
    let bytes = counting.bytes.clone();
    let opened = powerschool::open(name, counting, kind, opts.version)?;
    let scope = match kind {
        FileKind::Users => Scope::Full,
        FileKind::UpdateUsers | FileKind::DeleteUsers => Scope::Partial,
    };
    let (kind_name, scope_name) = match kind {
        FileKind::Users => ("users.csv", "full import"),
        FileKind::UpdateUsers => ("update_users.csv", "partial import"),
        FileKind::DeleteUsers => ("delete_users.csv", "partial import"),
    };
    let format = match opened.version {
        Some(v) if kind != FileKind::DeleteUsers => {
            format!("PowerSchool {kind_name} {v:?}, {scope_name}").replace(" V", " v")
        }
        _ => format!("PowerSchool {kind_name}, {scope_name}"),
    };
    let flag_column = match opened.version {
        Some(Version::V2) => "blocked",
        _ => "enabled",
    };
    let mut reader = opened.reader;
    let planner = Planner::new(domain, scope, name, powerschool::NAMES)
        .start_at(opts.start_at)
        .now(ledger.now_us());
    let plan = plan_rows(ledger, &mut reader, planner, &bytes, progress)?;
    Ok(ReadFile {
        plan,
        format,
        warnings: opened.warnings,
        names: powerschool::NAMES,
        flag_column: flag_column.to_string(),
    })
}

/// Stream every row through the planner, a chunk per read of the state.
fn plan_rows<R: Read>(
    ledger: &Ledger,
    reader: &mut UserReader<R>,
    mut planner: Planner,
    bytes: &AtomicU64,
    progress: &mut impl FnMut(Progress),
) -> Result<Plan, ImportError> {
    let domain = planner.domain().to_string();
    let domain = domain.as_str();
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    let mut rows = 0u64;
    loop {
        let mut end = false;
        while chunk.len() < CHUNK_ROWS {
            match reader.next_row()? {
                Some(r) => chunk.push(r),
                None => {
                    end = true;
                    break;
                }
            }
        }
        rows += chunk.len() as u64;
        ledger.read_domain_or_empty(domain, |state| {
            for r in chunk.drain(..) {
                planner.add(state, r);
            }
        });
        progress(Progress {
            phase: Phase::Reading,
            rows,
            bytes: bytes.load(Ordering::Relaxed),
        });
        if end {
            break;
        }
    }
    Ok(ledger.read_domain_or_empty(domain, move |state| planner.finish(state)))
}

/// What the OneRoster manifest said, as a plan scope and a format name.
fn oneroster_scope(manifest: Manifest) -> (Scope, String) {
    let version = manifest.version.name();
    match manifest.users {
        UsersMode::Bulk => (
            Scope::Full,
            format!("{version} users.csv, bulk (full import)"),
        ),
        UsersMode::Delta => (
            Scope::Partial,
            format!("{version} users.csv, delta (partial import)"),
        ),
        UsersMode::Absent => (Scope::Partial, format!("{version}, users absent")),
    }
}

/// The roles of a 1.2 set (None for 1.1): from roles.csv when the manifest lists it. A full
/// import needs every user's role; a delta keeps the role of a user it does not list.
fn oneroster_roles<R: Read>(
    manifest: Manifest,
    file: &str,
    roles: Option<R>,
) -> Result<Option<Roles>, ImportError> {
    if manifest.version != RosterVersion::V1_2 {
        return Ok(None);
    }
    let by_user = match (manifest.roles, roles) {
        (UsersMode::Absent, _) => Default::default(),
        (_, Some(input)) => oneroster::read_roles(file, input)?,
        (_, None) => {
            return Err(ImportError::Io {
                file: file.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the manifest lists roles.csv but the file is missing",
                ),
            });
        }
    };
    Ok(Some(Roles {
        by_user,
        file: file.to_string(),
        required: manifest.users == UsersMode::Bulk,
    }))
}

#[allow(clippy::too_many_arguments)]
fn plan_oneroster<R: Read>(
    ledger: &Ledger,
    domain: &str,
    file: &str,
    manifest: Manifest,
    users: Option<R>,
    roles: Option<Roles>,
    mut warnings: Vec<String>,
    start_at: Option<i64>,
    progress: &mut impl FnMut(Progress),
) -> Result<ReadFile, ImportError> {
    let (scope, format) = oneroster_scope(manifest);
    let planner = Planner::new(domain, scope, file, oneroster::NAMES)
        .start_at(start_at)
        .now(ledger.now_us());
    let plan = match (manifest.users, users) {
        (UsersMode::Absent, _) => {
            warnings.push(format!(
                "{file}: the manifest says file.users is absent: nothing to import"
            ));
            ledger.read_domain_or_empty(domain, move |state| planner.finish(state))
        }
        (_, None) => {
            return Err(ImportError::Io {
                file: file.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the manifest lists users.csv but the file is missing",
                ),
            });
        }
        (_, Some(input)) => {
            let counting = Counting::new(input);
            let bytes = counting.bytes.clone();
            let (mut reader, more) =
                oneroster::open_users(file, counting, manifest.version, roles)?;
            warnings.extend(more);
            plan_rows(ledger, &mut reader, planner, &bytes, progress)?
        }
    };
    Ok(ReadFile {
        plan,
        format,
        warnings,
        names: oneroster::NAMES,
        flag_column: "enabledUser".into(),
    })
}

fn plan_oneroster_dir(
    ledger: &Ledger,
    domain: &str,
    dir: &Path,
    start_at: Option<i64>,
    progress: &mut impl FnMut(Progress),
) -> Result<ReadFile, ImportError> {
    let set = base_name(dir);
    let open = |name: &str| {
        let path = dir.join(name);
        std::fs::File::open(&path).map_err(|source| ImportError::Io {
            file: format!("{set}/{name}"),
            source,
        })
    };
    let manifest = open("manifest.csv")?;
    let (manifest, warnings) = oneroster::read_manifest(&format!("{set}/manifest.csv"), manifest)?;
    let users = if manifest.users == UsersMode::Absent {
        None
    } else {
        Some(open("users.csv")?)
    };
    let roles_file = format!("{set}/roles.csv");
    let roles_input = match manifest.roles {
        UsersMode::Absent => None,
        _ if manifest.version == RosterVersion::V1_2 => Some(open("roles.csv")?),
        _ => None,
    };
    let roles = oneroster_roles(manifest, &roles_file, roles_input)?;
    plan_oneroster(
        ledger,
        domain,
        &format!("{set}/users.csv"),
        manifest,
        users,
        roles,
        warnings,
        start_at,
        progress,
    )
}

fn plan_oneroster_zip(
    ledger: &Ledger,
    domain: &str,
    path: &Path,
    file: std::fs::File,
    start_at: Option<i64>,
    progress: &mut impl FnMut(Progress),
) -> Result<ReadFile, ImportError> {
    let set = base_name(path);
    let zip_err = |e: zip::result::ZipError| ImportError::Zip {
        file: set.clone(),
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(zip_err)?;
    if archive.len() > limits::MAX_ZIP_ENTRIES {
        return Err(ImportError::Zip {
            file: set.clone(),
            reason: format!(
                "{} entries; at most {} are read (limit max_zip_entries)",
                archive.len(),
                limits::MAX_ZIP_ENTRIES
            ),
        });
    }
    let find = |archive: &zip::ZipArchive<_>, name: &str| {
        archive.file_names().position(|n| {
            n.rsplit('/')
                .next()
                .is_some_and(|b| b.eq_ignore_ascii_case(name))
        })
    };
    let Some(manifest_at) = find(&archive, "manifest.csv") else {
        return Err(ImportError::Zip {
            file: set.clone(),
            reason: "no manifest.csv in the archive".into(),
        });
    };
    let users_at = find(&archive, "users.csv");
    let (manifest, warnings) = {
        let entry = archive.by_index(manifest_at).map_err(zip_err)?;
        let compressed = entry.compressed_size();
        oneroster::read_manifest(
            &format!("{set}/manifest.csv"),
            limits::RatioGuard::new(entry, compressed),
        )?
    };
    let roles_file = format!("{set}/roles.csv");
    let roles = match (manifest.roles, find(&archive, "roles.csv")) {
        (UsersMode::Absent, _) | (_, None) => {
            oneroster_roles(manifest, &roles_file, None::<std::io::Empty>)?
        }
        (_, Some(at)) => {
            let entry = archive.by_index(at).map_err(zip_err)?;
            let compressed = entry.compressed_size();
            oneroster_roles(
                manifest,
                &roles_file,
                Some(limits::RatioGuard::new(entry, compressed)),
            )?
        }
    };
    let users_file = format!("{set}/users.csv");
    match (manifest.users, users_at) {
        (UsersMode::Absent, _) | (_, None) => plan_oneroster(
            ledger,
            domain,
            &users_file,
            manifest,
            None::<std::io::Empty>,
            roles,
            warnings,
            start_at,
            progress,
        ),
        (_, Some(at)) => {
            let users = archive.by_index(at).map_err(zip_err)?;
            let compressed = users.compressed_size();
            let users = limits::RatioGuard::new(users, compressed);
            plan_oneroster(
                ledger,
                domain,
                &users_file,
                manifest,
                Some(users),
                roles,
                warnings,
                start_at,
                progress,
            )
        }
    }
}
