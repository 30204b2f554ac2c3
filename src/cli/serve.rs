//! `account-ledger serve`: open the data dir, load or create the token config, serve gRPC until
//! SIGINT/SIGTERM, then shut down gracefully (stop accepting, finish in-flight, close the ledger).

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::auth::{Auth, AuthConfig};
use crate::api::server;
use crate::ledger::Ledger;

use super::ServeArgs;

fn default_data_dir() -> Result<PathBuf, String> {
    dirs::data_dir()
        .map(|d| d.join("account-ledger"))
        .ok_or_else(|| "no platform data directory; pass --data-dir".to_string())
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    init_logs(args.log_format);

    // Everything this process creates (sled's segment and snapshot files included) is
    // owner-only: the data dir holds the keys to every account's personal data.
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    let data_dir = match args.data_dir.clone() {
        Some(d) => d,
        None => default_data_dir()?,
    };
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(format!(
            "--data-dir {} is a file, not a directory: give a directory (it is created if \
             missing)",
            data_dir.display()
        ));
    }
    crate::store::files::create_private_dir(&data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| data_dir.join("config.json"));
    let addr: std::net::SocketAddr = args
        .listen
        .parse()
        .map_err(|e| format!("--listen {:?}: {e}", args.listen))?;

    let tls = tls_config(&args, addr)?;
    let ledger = match &args.store {
        Some(url) => {
            let views_dir = data_dir.join("views-cache");
            Ledger::open_postgres(
                &views_dir,
                url,
                &args.store_schema,
                std::sync::Arc::new(crate::ledger::SystemClock),
            )
            .await
            .map_err(|e| {
                format!(
                    "opening the PostgreSQL store (schema {}): {e}",
                    args.store_schema
                )
            })?
        }
        None => {
            let store_dir = data_dir.join("ledger");
            let options = crate::store::StoreOptions {
                accept_data_loss: args.accept_data_loss,
            };
            Ledger::open_with(&store_dir, options)
                .await
                .map_err(|e| match e {
                    // Names its own path and what to do.
                    crate::ledger::LedgerError::Store(
                        e @ crate::store::StoreError::DataLoss { .. },
                    ) => e.to_string(),
                    e => format!("opening {}: {e}", store_dir.display()),
                })?
        }
    };
    // Tokens: in the store when servers share one, else in the config file.
    let (auth, new_token, made_in) = match ledger.cluster_store() {
        Some(store) => {
            let (auth, token) = Auth::shared(store).await.map_err(|e| e.to_string())?;
            let place = format!("the token table of schema {}", args.store_schema);
            (auth, token, place)
        }
        None => {
            let (config, token) =
                AuthConfig::load_or_init(&config_path).map_err(|e| e.to_string())?;
            let auth = Arc::new(Auth::new(config, Some(config_path.clone())));
            (auth, token, config_path.display().to_string())
        }
    };
    if let Some(token) = new_token {
        println!(
            "Created {made_in} with one operator token. It is shown only this once; keep it:\n\
             export ACCOUNT_LEDGER_TOKEN={token}"
        );
    }
    if let Some(address) = &args.advertise {
        ledger.announce(address).await.map_err(|e| e.to_string())?;
    }
    // Before the gRPC port is announced: whoever waits for that line finds metrics up too.
    let _stop_metrics = match &args.metrics_listen {
        Some(at) => Some(serve_metrics(at, ledger.clone()).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(data_dir = %data_dir.display(), "serving on {local}");
    println!("account-ledger listening on {local}");

    server::serve_with(ledger, auth, listener, shutdown_signal(), tls)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Serve `/metrics` at `at` until the returned sender is dropped.
async fn serve_metrics(
    at: &str,
    ledger: Ledger,
) -> Result<tokio::sync::oneshot::Sender<()>, String> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| format!("--metrics-listen {at}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("metrics on http://{local}/metrics");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let until = async {
            let _ = stopped.await;
        };
        if let Err(e) = crate::metrics::serve(listener, ledger, until).await {
            tracing::error!("the metrics endpoint stopped: {e}");
        }
    });
    Ok(stop)
}

/// Logs on stderr: text, coloured only on a terminal (and not with NO_COLOR), or one JSON
/// object per line for log shippers. `RUST_LOG` filters (default `info`).
fn init_logs(format: super::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        super::LogFormat::Json => logs.json().try_init(),
        super::LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
    };
}

/// TLS from the flags. Without TLS only loopback is served, unless `--insecure` (warned).
fn tls_config(
    args: &ServeArgs,
    addr: std::net::SocketAddr,
) -> Result<Option<tonic::transport::ServerTlsConfig>, String> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let read = |flag: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
    };
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
                read("--tls-cert", cert)?,
                read("--tls-key", key)?,
            ));
            if let Some(ca) = &args.tls_client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(read("--tls-client-ca", ca)?));
            }
            Ok(Some(tls))
        }
        (None, None) => {
            if args.tls_client_ca.is_some() {
                return Err("--tls-client-ca needs --tls-cert and --tls-key".into());
            }
            if !addr.ip().is_loopback() {
                if !args.insecure {
                    return Err(format!(
                        "refusing to listen on {addr} without TLS: tokens and personal data \
                         would cross the network in clear. Give --tls-cert and --tls-key, or \
                         --insecure to accept that"
                    ));
                }
                tracing::warn!(
                    "listening on {addr} without TLS (--insecure): tokens and personal data \
                     cross the network in clear"
                );
            }
            Ok(None)
        }
        _ => Err("--tls-cert and --tls-key go together".into()),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received; finishing in-flight calls");
}
