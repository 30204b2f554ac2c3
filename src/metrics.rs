//! Prometheus metrics (`serve --metrics-listen ADDR`, `GET /metrics`). Counters and histograms
//! are recorded where things happen (commands in the ledger, appends in the partition writer,
//! imports and subscriptions in the API); gauges that describe state (log size, license usage
//! per domain) are read from the ledger at each scrape. The `prometheus` crate keeps and
//! encodes them.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::ledger::Ledger;

pub struct Metrics {
    registry: Registry,
    /// Commands by kind and outcome (ok, refused, failed).
    pub commands: IntCounterVec,
    /// Seconds from a batch's arrival in the ledger to its answer, by batch size class.
    pub command_seconds: HistogramVec,
    /// Events per durable append (how much one group commit carries).
    pub group_commit_events: Histogram,
    /// Seconds one durable append took (write and sync).
    pub append_seconds: Histogram,
    /// Import rows read, by job status.
    pub import_rows: IntCounterVec,
    /// Import jobs, by status.
    pub import_jobs: IntCounterVec,
    /// Open Subscribe streams.
    pub subscriptions: IntGauge,
    log_bytes: IntGauge,
    log_events: IntGauge,
    licenses_used: IntGaugeVec,
    license_limit: IntGaugeVec,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

const PREFIX: &str = "account_ledger";

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new_custom(Some(PREFIX.into()), None).expect("a valid prefix");
        let latency = vec![
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
            1.0, 2.5, 5.0, 10.0,
        ];
        let m = Metrics {
            commands: IntCounterVec::new(
                Opts::new("commands_total", "Commands by kind and outcome"),
                &["kind", "outcome"],
            )
            .expect("metric"),
            command_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "command_seconds",
                    "Seconds from a batch's arrival in the ledger to its answer",
                )
                .buckets(latency.clone()),
                &["batch"],
            )
            .expect("metric"),
            group_commit_events: Histogram::with_opts(
                HistogramOpts::new("group_commit_events", "Events per durable append").buckets(
                    vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                        16384.0, 65536.0,
                    ],
                ),
            )
            .expect("metric"),
            append_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "append_seconds",
                    "Seconds one durable append took (write and fsync, or commit)",
                )
                .buckets(latency),
            )
            .expect("metric"),
            import_rows: IntCounterVec::new(
                Opts::new("import_rows_total", "Import rows read, by job status"),
                &["status"],
            )
            .expect("metric"),
            import_jobs: IntCounterVec::new(
                Opts::new("import_jobs_total", "Import jobs, by status"),
                &["status"],
            )
            .expect("metric"),
            subscriptions: IntGauge::new("subscriptions", "Open Subscribe streams")
                .expect("metric"),
            log_bytes: IntGauge::new("log_bytes", "Bytes the store uses on disk").expect("metric"),
            log_events: IntGauge::new("log_events", "Events in the log (its last position)")
                .expect("metric"),
            licenses_used: IntGaugeVec::new(
                Opts::new("licenses_used", "Enabled active accounts per domain"),
                &["domain"],
            )
            .expect("metric"),
            license_limit: IntGaugeVec::new(
                Opts::new("license_limit", "License limit per domain"),
                &["domain"],
            )
            .expect("metric"),
            registry,
        };
        for c in [
            Box::new(m.commands.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.command_seconds.clone()),
            Box::new(m.group_commit_events.clone()),
            Box::new(m.append_seconds.clone()),
            Box::new(m.import_rows.clone()),
            Box::new(m.import_jobs.clone()),
            Box::new(m.subscriptions.clone()),
            Box::new(m.log_bytes.clone()),
            Box::new(m.log_events.clone()),
            Box::new(m.licenses_used.clone()),
            Box::new(m.license_limit.clone()),
        ] {
            m.registry.register(c).expect("registered once");
        }
        m
    }

    /// The text exposition of every metric, with the state gauges read from `ledger` now.
    pub fn scrape(&self, ledger: &Ledger) -> String {
        if let Ok(bytes) = ledger.log().size_on_disk() {
            self.log_bytes.set(bytes as i64);
        }
        self.log_events.set(ledger.log().last_position() as i64);
        for (domain, used, limit) in ledger.license_usage_all() {
            self.licenses_used
                .with_label_values(&[&domain])
                .set(i64::from(used));
            self.license_limit
                .with_label_values(&[&domain])
                .set(i64::from(limit));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Count a batch's commands by kind and outcome, and time it.
pub fn record_batch(
    kinds: &[&'static str],
    outcome: Result<&crate::ledger::BatchOutcome, &crate::ledger::LedgerError>,
    took: std::time::Duration,
) {
    let m = &*METRICS;
    m.command_seconds
        .with_label_values(&[batch_class(kinds.len())])
        .observe(took.as_secs_f64());
    // Counted per (kind, outcome) first: an import job is one batch of many commands.
    let mut counts: std::collections::HashMap<(&str, &str), u64> = Default::default();
    for (i, kind) in kinds.iter().enumerate() {
        let result = outcome.map(|o| o.results.get(i));
        let label = match result {
            Ok(Some(Ok(_))) => "ok",
            Ok(Some(Err(crate::ledger::LedgerError::Domain(_)))) => "refused",
            Ok(Some(Err(crate::ledger::LedgerError::VersionMismatch { .. }))) => "refused",
            _ => "failed",
        };
        *counts.entry((kind, label)).or_default() += 1;
    }
    for ((kind, label), n) in counts {
        m.commands.with_label_values(&[kind, label]).inc_by(n);
    }
}

/// A batch's size class, for the latency histogram (one command vs an import job).
pub fn batch_class(requests: usize) -> &'static str {
    match requests {
        0 | 1 => "1",
        2..=100 => "2-100",
        _ => "over_100",
    }
}

/// Serve `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ledger: Ledger,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let ledger = ledger.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    METRICS.scrape(&ledger),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
