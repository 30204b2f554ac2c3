//! `account-ledger reads-bench`: the daily queries of a district admin and an auditor, timed
//! over gRPC against a running server (a benchmark: it prints figures and asserts nothing).
//! `scripts/district-1m.sh` builds a 1M-account domain through the CLI import first and runs
//! this after the import and after a restart.
//!
//! Each figure is the median (and the slowest) of `runs` calls. The point-in-time figure asks
//! for the domain's first page as of an instant followed by `changes` sign-ins, which is what
//! "as of a minute ago" costs under that write load.

use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::api::convert::{page_token, us_to_timestamp};
use crate::api::pb::{self, account_ledger_client::AccountLedgerClient};
use crate::store::now_us;

pub struct ReadsBenchOptions {
    pub domain: String,
    pub runs: usize,
    pub changes: usize,
}

struct Bench {
    client: AccountLedgerClient<Channel>,
    bearer: Option<MetadataValue<Ascii>>,
    runs: usize,
}

fn err(e: tonic::Status) -> String {
    format!("{}: {}", e.code(), e.message())
}

impl Bench {
    fn req<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(b) = &self.bearer {
            r.metadata_mut().insert("authorization", b.clone());
        }
        r
    }

    fn list(&self, domain: &str) -> pb::ListAccountsRequest {
        pb::ListAccountsRequest {
            domain: domain.into(),
            limit: 100,
            ..Default::default()
        }
    }

    /// Time `runs` calls of `call`; print the median and the slowest.
    async fn time<F, Fut, T>(&mut self, what: &str, mut call: F) -> Result<T, String>
    where
        F: FnMut(AccountLedgerClient<Channel>, &Self) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut took: Vec<Duration> = Vec::with_capacity(self.runs);
        let mut last = None;
        for _ in 0..self.runs.max(1) {
            let t = Instant::now();
            last = Some(call(self.client.clone(), self).await.map_err(err)?);
            took.push(t.elapsed());
        }
        took.sort_unstable();
        println!(
            "{what:<52} median {:>9.3} ms   slowest {:>9.3} ms",
            took[took.len() / 2].as_secs_f64() * 1e3,
            took[took.len() - 1].as_secs_f64() * 1e3
        );
        Ok(last.expect("at least one run"))
    }
}

pub async fn run(
    channel: Channel,
    bearer: Option<MetadataValue<Ascii>>,
    o: ReadsBenchOptions,
) -> Result<(), String> {
    let mut b = Bench {
        client: AccountLedgerClient::new(channel).max_decoding_message_size(64 << 20),
        bearer,
        runs: o.runs,
    };
    let d = o.domain.clone();
    let first = b
        .time("ListAccounts, first page of 100", |mut c, b| {
            let r = b.req(b.list(&d));
            async move { c.list_accounts(r).await.map(|r| r.into_inner()) }
        })
        .await?;
    let Some(start) = first.accounts.first().map(|a| a.id) else {
        return Err(format!("domain {d} lists no Enabled account"));
    };
    let middle_after = start + first.total / 2;
    let middle = b
        .time(
            "ListAccounts, a page from the middle (cursor)",
            |mut c, b| {
                let r = b.req(pb::ListAccountsRequest {
                    page_token: page_token(middle_after),
                    ..b.list(&d)
                });
                async move { c.list_accounts(r).await.map(|r| r.into_inner()) }
            },
        )
        .await?;
    let sample = middle
        .accounts
        .first()
        .cloned()
        .ok_or("no account in the middle page")?;
    let profile = sample.profile.clone().unwrap_or_default();
    println!(
        "  ({} accounts listed; sample account {} login {})",
        first.total, sample.id, profile.login
    );
    let terms = [
        ("login", profile.login.clone()),
        ("email", profile.email.clone()),
        ("last name", profile.last_name.clone()),
        ("import id", sample.import_id.clone().unwrap_or_default()),
    ];
    for (field, term) in terms {
        let found = b
            .time(&format!("ListAccounts, search one {field}"), |mut c, b| {
                let r = b.req(pb::ListAccountsRequest {
                    search: Some(term.clone()),
                    ..b.list(&d)
                });
                async move { c.list_accounts(r).await.map(|r| r.into_inner()) }
            })
            .await?;
        if !found.accounts.iter().any(|a| a.id == sample.id) {
            return Err(format!(
                "search for {term:?} did not find account {}",
                sample.id
            ));
        }
    }
    // A broad search: the login's first letter matches most of the domain, and the total
    // counts every match.
    let letter: String = profile.login.chars().take(1).collect();
    let broad = b
        .time(
            "ListAccounts, search one letter (counts all)",
            |mut c, b| {
                let r = b.req(pb::ListAccountsRequest {
                    search: Some(letter.clone()),
                    ..b.list(&d)
                });
                async move { c.list_accounts(r).await.map(|r| r.into_inner()) }
            },
        )
        .await?;
    println!("  ({} accounts match {letter:?})", broad.total);
    if let Some(import_id) = sample.import_id.clone() {
        b.time("GetAccount by import id", |mut c, b| {
            let r = b.req(pb::GetAccountRequest {
                account: Some(pb::AccountRef {
                    r#ref: Some(pb::account_ref::Ref::Import(pb::ImportKey {
                        domain: d.clone(),
                        import_id: import_id.clone(),
                    })),
                }),
                as_of: None,
            });
            async move { c.get_account(r).await.map(|r| r.into_inner()) }
        })
        .await?;
    }
    b.time("GetLicenseUsage, now", |mut c, b| {
        let r = b.req(pb::GetLicenseUsageRequest {
            domain: d.clone(),
            as_of: None,
        });
        async move { c.get_license_usage(r).await.map(|r| r.into_inner()) }
    })
    .await?;

    // Point in time: an instant, then `changes` sign-ins spread over the domain after it.
    let before = now_us();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = Instant::now();
    let step = (first.total / o.changes.max(1) as u64).max(1);
    for i in 0..o.changes as u64 {
        let account = start + (i * step) % first.total.max(1);
        let r = b.req(pb::RecordSignInRequest {
            account: Some(pb::AccountRef {
                r#ref: Some(pb::account_ref::Ref::Id(account)),
            }),
            ..Default::default()
        });
        b.client.record_sign_in(r).await.map_err(err)?;
    }
    println!(
        "  ({} sign-ins recorded one by one in {:.2} s)",
        o.changes,
        t.elapsed().as_secs_f64()
    );
    b.time(
        &format!("ListAccounts, first page as of {} changes ago", o.changes),
        |mut c, b| {
            let r = b.req(pb::ListAccountsRequest {
                as_of: Some(us_to_timestamp(before)),
                ..b.list(&d)
            });
            async move { c.list_accounts(r).await.map(|r| r.into_inner()) }
        },
    )
    .await?;
    b.time(
        &format!("GetLicenseUsage, as of {} changes ago", o.changes),
        |mut c, b| {
            let r = b.req(pb::GetLicenseUsageRequest {
                domain: d.clone(),
                as_of: Some(us_to_timestamp(before)),
            });
            async move { c.get_license_usage(r).await.map(|r| r.into_inner()) }
        },
    )
    .await?;
    Ok(())
}
