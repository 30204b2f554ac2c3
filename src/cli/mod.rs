//! The command line of the one binary `account-ledger`: clap definitions and dispatch.
//! `serve` runs the server; every other subcommand is a gRPC client of a running server.
//! One place ([`run`]) turns outcomes into exit codes: 0 ok, 1 refused or failed (and `import`:
//! 2 some rows failed, see [`imports`]).

mod client;
mod connect;
mod imports;
mod output;
mod schedules;
mod serve;
pub mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "account-ledger",
    version,
    about = "Event-sourced ledger of school-LMS account lifecycles",
    after_help = "Client subcommands reach a server with --server URL (env ACCOUNT_LEDGER_SERVER, \
                  default http://127.0.0.1:50051; a bare HOST:PORT works too) and --token TOKEN \
                  (env ACCOUNT_LEDGER_TOKEN); --json prints JSON. These go after the subcommand, \
                  e.g. `account-ledger account show 1 --json`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Top,
}

#[derive(Debug, Subcommand)]
pub enum Top {
    /// Run the gRPC server (health + reflection included).
    Serve(ServeArgs),
    /// Run the storage benchmark.
    Bench(BenchArgs),
    /// Benchmark imports end to end through gRPC (in-process server), next to the library.
    ImportBench {
        /// Rows of the generated users.csv (all new accounts).
        #[arg(long, default_value_t = 100_000)]
        rows: u32,
        /// Rows for the naive one-durable-append-per-row baseline (extrapolated).
        #[arg(long, default_value_t = 2_000)]
        baseline_rows: u32,
        /// Run one import first so the measured ones run in a warm process (as a server is).
        #[arg(long)]
        warm_up: bool,
    },
    /// Time the daily queries (lists, searches, point in time, license usage) of one domain
    /// against a running server; records `--changes` sign-ins for the point-in-time figure.
    ReadsBench {
        #[command(flatten)]
        conn: Conn,
        /// The domain to query (a large one).
        domain: String,
        /// Calls per figure (the median and the slowest are printed).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Sign-ins recorded before the point-in-time figure.
        #[arg(long, default_value_t = 1000)]
        changes: usize,
    },
    /// Import a CSV file (PowerSchool users.csv, update_users.csv, delete_users.csv, v1 or v2)
    /// or a OneRoster 1.1 or 1.2 directory or .zip. Exit: 0 all rows applied, 2 some rows failed,
    /// 1 refused or error.
    Import(imports::ImportArgs),
    /// Import jobs the server knows (domain admin, auditor).
    ImportJob {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: imports::ImportJobCommand,
    },
    /// Scheduled changes of a domain's accounts: lock-outs, delayed starts (domain admin).
    Schedule {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
    },
    #[command(flatten)]
    Client(ClientCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell); README: "Shell".
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), made from these same definitions.
    Man,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory (sled store and config.json). Default: the platform data dir.
    #[arg(long, env = "ACCOUNT_LEDGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "ACCOUNT_LEDGER_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Token config file. Default: <data-dir>/config.json.
    #[arg(long, env = "ACCOUNT_LEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep the event log and the account keys in PostgreSQL (a libpq connection string, e.g.
    /// `host=127.0.0.1 user=postgres dbname=ledger` or `postgres://...`) instead of the data
    /// dir's sled store; the data dir keeps a cache of the views. Several servers may share one
    /// store (each with its own data dir): tokens then live in the store, not in config.json.
    #[arg(long, env = "ACCOUNT_LEDGER_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one
    /// and prints it). Off unless given.
    #[arg(long, env = "ACCOUNT_LEDGER_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log format on stderr: text (coloured on a terminal only) or json (one object per line).
    #[arg(
        long,
        env = "ACCOUNT_LEDGER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// With --store: the URL the other servers forward commands to this one at (default:
    /// http://LISTEN-ADDRESS, or https:// with --tls-cert).
    #[arg(long, env = "ACCOUNT_LEDGER_ADVERTISE", requires = "store")]
    pub advertise: Option<String>,
    /// The PostgreSQL schema to use (created and migrated by the server).
    #[arg(
        long,
        env = "ACCOUNT_LEDGER_STORE_SCHEMA",
        default_value = "account_ledger"
    )]
    pub store_schema: String,
    /// Start even though the data dir holds less than its reach record says (a truncated log,
    /// a missing or short key vault, accounts without keys). The loss is logged as an error
    /// and the record rewritten to what is left. Restore from a backup instead when you can.
    #[arg(long)]
    pub accept_data_loss: bool,
    /// Serve gRPC over TLS with this certificate chain (PEM); with --tls-key.
    #[arg(long, env = "ACCOUNT_LEDGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "ACCOUNT_LEDGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM); needs --tls-cert.
    #[arg(long, env = "ACCOUNT_LEDGER_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Allow listening on a non-loopback address without TLS (tokens and personal data then
    /// cross the network in clear; logged as a warning).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Number of events to write.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Data directory (default: a temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Options every client subcommand shares.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Connection (every client subcommand)")]
pub struct Conn {
    /// Server URL (a bare HOST:PORT means http://HOST:PORT).
    #[arg(
        long,
        global = true,
        env = "ACCOUNT_LEDGER_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token (`serve` prints the operator's at first start; `token add` makes others).
    #[arg(
        long,
        global = true,
        env = "ACCOUNT_LEDGER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// CA certificate (PEM) that signed the server's certificate; needed for https:// servers.
    #[arg(long, global = true, env = "ACCOUNT_LEDGER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers that require one (with --tls-client-key).
    #[arg(long, global = true, env = "ACCOUNT_LEDGER_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// Client private key (PEM), with --tls-client-cert.
    #[arg(long, global = true, env = "ACCOUNT_LEDGER_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Domains (operator).
    Domain {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Tokens (operator): issue a token for a domain admin, LMS service or auditor.
    Token {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Accounts (domain admin; reads also auditor).
    Account {
        #[command(flatten)]
        conn: Conn,
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// License usage of a domain.
    License {
        #[command(flatten)]
        conn: Conn,
        domain: String,
        /// Answer as of this instant (RFC 3339, e.g. 2025-01-31T12:00:00Z, or Unix seconds).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// The users export of a domain (Enabled and Disabled accounts).
    ///
    /// With --csv or --json, rows are written as they arrive (any domain size); the table
    /// waits for the last row to align its columns.
    Export {
        #[command(flatten)]
        conn: Conn,
        domain: String,
        /// Export as of this instant (RFC 3339, e.g. 2025-01-31T12:00:00Z, or Unix seconds).
        #[arg(long)]
        as_of: Option<String>,
        /// Write a PowerSchool users.csv that can be imported again (accounts created by hand
        /// have no import id and are left out, counted on stderr).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// The users.csv version: 1 (`enabled` column) or 2 (`blocked` column).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2), requires = "csv")]
        csv_version: u8,
    },
    /// May this login sign in now?
    CanSignIn {
        #[command(flatten)]
        conn: Conn,
        /// The domain (district) to look in.
        domain: String,
        /// The sign-in name (case-insensitive).
        login: String,
    },
    /// Read the log by position (auditor).
    Log {
        #[command(flatten)]
        conn: Conn,
        /// First position to read.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position to read (0: up to the end).
        #[arg(long, default_value_t = 0)]
        to: u64,
        /// Most events to print.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Replay the log into a scratch projection and compare with the live one (operator).
    Verify {
        #[command(flatten)]
        conn: Conn,
    },
    /// Rebuild the projections from the log (operator).
    Rebuild {
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Register a domain with its license limit.
    Create {
        /// Its name (up to 63 letters, digits, `.`, `-` and `_`; starting with a letter or digit).
        domain: String,
        /// Enabled accounts it may have at once.
        #[arg(long)]
        limit: u32,
    },
    /// Change a domain's license limit.
    Limit {
        domain: String,
        /// Enabled accounts it may have at once (not below those enabled now).
        limit: u32,
    },
    /// Set the share (percent) of active imported accounts one full import may deactivate or
    /// delete without --confirm-mass-change.
    Guard {
        domain: String,
        /// 0-100 (default 10).
        percent: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token (printed once).
    Add {
        /// Name recorded as the actor of every event caused with the token.
        #[arg(long)]
        principal: String,
        /// operator, domain-admin, lms or auditor.
        #[arg(long)]
        role: String,
        /// A domain the token may act in (repeat for several).
        #[arg(long = "domain")]
        domains: Vec<String>,
        /// Refuse the token after this long: a number and d, h, m or s (e.g. 90d).
        #[arg(long, conflicts_with = "expires_at")]
        expires_in: Option<String>,
        /// Refuse the token after this instant (RFC 3339 or Unix seconds).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List tokens: id, principal, role, domains, created, expiry, last use (never secrets).
    List,
    /// Revoke a token by its id (from `token list`); it stops working at once.
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Options every account change takes (retries and concurrency).
#[derive(Debug, Args, Clone)]
pub struct WriteOpts {
    /// Client request id: a retry with the same id records nothing new.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Refuse unless the account is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account by hand.
    Create {
        /// The domain (district) it belongs to.
        #[arg(long)]
        domain: String,
        /// Its sign-in name, unique in the domain (case-insensitive).
        #[arg(long)]
        login: String,
        #[arg(long, default_value = "")]
        first_name: String,
        #[arg(long, default_value = "")]
        last_name: String,
        #[arg(long, default_value = "")]
        email: String,
        /// Free text, e.g. student, teacher, staff.
        #[arg(long, default_value = "student")]
        role: String,
        /// The SIS id that imports match it by (unique in the domain).
        #[arg(long)]
        import_id: Option<String>,
        /// Create it Disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Disable (after a warning; --yes skips the question).
    Disable {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        /// Act without asking (the warning is still printed).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Enable (also reactivates a deactivated account).
    Enable {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Deactivate: no sign-in, no license, kept out of lists (a soft delete; reactivate undoes it).
    Deactivate {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Reactivate a deactivated account (Enabled, or Disabled with --disabled).
    Reactivate {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        /// Reactivate it Disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// Delete for good (after a warning saying what is destroyed; --yes skips the question).
    Delete {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        /// Act without asking (the warning is still printed).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        write: WriteOpts,
    },
    /// One account, now or --as-of an instant.
    Show {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
        /// As it was at this instant (RFC 3339, e.g. 2025-01-31T12:00:00Z, or Unix seconds).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// A domain's accounts, one page at a time, in creation order (Enabled ones by default).
    List {
        domain: String,
        /// Also list Disabled accounts.
        #[arg(long)]
        include_disabled: bool,
        /// Also list Deactivated accounts.
        #[arg(long)]
        include_deactivated: bool,
        /// Words, each a case-insensitive prefix of the login, email, import id or a word of
        /// the first or last name (all words must match).
        #[arg(long)]
        search: Option<String>,
        /// Only accounts with this role (case-insensitive).
        #[arg(long)]
        role: Option<String>,
        /// Start after the page that printed this token ("next page: --page-token ...").
        #[arg(long, default_value = "")]
        page_token: String,
        /// Accounts to skip (after the page token).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Accounts per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// List as of this instant (RFC 3339, e.g. 2025-01-31T12:00:00Z, or Unix seconds).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Every event of an account: who, when, through what.
    History {
        /// Account id, or DOMAIN:IMPORT_ID.
        account: String,
    },
}

/// Parse arguments and run; the one place that chooses the exit code.
pub async fn run(cli: Cli) -> ExitCode {
    if !matches!(cli.command, Top::Serve(_)) {
        restore_default_sigpipe();
    }
    let outcome = match cli.command {
        Top::Serve(args) => serve::run(args).await,
        Top::Bench(args) => crate::bench::run(crate::bench::BenchOptions {
            events: args.events,
            data_dir: args.data_dir,
        })
        .await
        .map_err(|e| e.to_string()),
        Top::ImportBench {
            rows,
            baseline_rows,
            warm_up,
        } => crate::bench::import_grpc::run(rows, baseline_rows, warm_up)
            .await
            .map_err(|e| e.to_string()),
        Top::ReadsBench {
            conn,
            domain,
            runs,
            changes,
        } => {
            let options = crate::bench::reads::ReadsBenchOptions {
                domain,
                runs,
                changes,
            };
            match (connect::channel(&conn).await, connect::bearer(&conn)) {
                (Ok(channel), Ok(bearer)) => {
                    crate::bench::reads::run(channel, bearer, options).await
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        Top::Import(args) => match imports::run(args).await {
            Ok(code) => return code,
            Err(message) => Err(message),
        },
        Top::ImportJob { conn, command } => imports::job(conn, command).await,
        Top::Schedule { conn, command } => schedules::run(conn, command).await,
        Top::Client(cmd) => client::run(cmd).await,
        Top::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "account-ledger",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Top::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .map_err(|e| e.to_string())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", output::printable(&message, true));
            ExitCode::FAILURE
        }
    }
}

/// A client piped into `head` should end quietly, as Unix tools do, not panic in `println!`
/// with "Broken pipe": give SIGPIPE back its default action. Not for `serve`, where a peer
/// closing a socket must never end the process.
fn restore_default_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_DFL at start-up, before any output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
