//! The client subcommands: one gRPC call (two for a confirmed disable/delete) each, printed as a
//! table or JSON.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::output::{self, ACCOUNT_HEADER, EVENT_HEADER};
use super::time::parse_instant;
use super::{AccountCommand, ClientCommand, Conn, DomainCommand, TokenCommand, WriteOpts};
use crate::api::convert::us_to_timestamp;
use crate::api::pb::{self, account_ledger_client::AccountLedgerClient};
use crate::import::{UserRow, UsersCsvWriter, Version};

struct Client {
    inner: AccountLedgerClient<Channel>,
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    json: bool,
}

pub(super) fn status_text(s: Status) -> String {
    let code = match s.code() {
        Code::InvalidArgument => "invalid argument",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "conflict",
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission denied",
        Code::Unavailable => "unavailable",
        Code::ResourceExhausted => "too many attempts",
        _ => "failed",
    };
    format!("{code}: {}", s.message())
}

impl Client {
    async fn connect(conn: &Conn) -> Result<Client, String> {
        let channel = super::connect::channel(conn).await?;
        let auth = super::connect::bearer(conn)?;
        Ok(Client {
            inner: AccountLedgerClient::new(channel),
            auth,
            json: conn.json,
        })
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        super::connect::authorized(&self.auth, msg)
    }

    fn reply(&self, r: &pb::CommandReply) {
        if self.json {
            println!("{}", output::reply_json(r));
        } else {
            println!("{}", output::reply_text(r));
        }
    }
}

/// `123` is an account id; `DOMAIN:IMPORT_ID` an import id inside a domain.
fn account_ref(s: &str) -> Result<pb::AccountRef, String> {
    use pb::account_ref::Ref;
    let r = if let Ok(id) = s.trim().parse::<u64>() {
        Ref::Id(id)
    } else if let Some((domain, import_id)) = s.split_once(':') {
        Ref::Import(pb::ImportKey {
            domain: domain.to_string(),
            import_id: import_id.to_string(),
        })
    } else {
        return Err(format!("account {s:?}: expected an id or DOMAIN:IMPORT_ID"));
    };
    Ok(pb::AccountRef { r#ref: Some(r) })
}

fn as_of(s: &Option<String>) -> Result<Option<prost_types::Timestamp>, String> {
    s.as_deref()
        .map(|s| {
            parse_instant(s)
                .map(us_to_timestamp)
                .map_err(|e| format!("--as-of {e}"))
        })
        .transpose()
}

fn cmd(conn_account: &str, w: &WriteOpts) -> Result<pb::AccountCommandRequest, String> {
    Ok(pb::AccountCommandRequest {
        account: Some(account_ref(conn_account)?),
        request_id: w.request_id.clone(),
        expected_version: w.expected_version,
    })
}

fn ask(question: &str) -> Result<bool, String> {
    if !std::io::stdin().is_terminal() {
        return Err("not confirmed: stdin is not a terminal; re-run with --yes to confirm".into());
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(matches!(line.trim().to_lowercase().as_str(), "y" | "yes"))
}

pub async fn run(command: ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Domain { conn, command } => {
            let mut c = Client::connect(&conn).await?;
            let r = match command {
                DomainCommand::Create { domain, limit } => {
                    let req = c.req(pb::RegisterDomainRequest {
                        domain,
                        license_limit: u64::from(limit),
                        request_id: None,
                        expected_version: None,
                    });
                    c.inner.register_domain(req).await
                }
                DomainCommand::Limit { domain, limit } => {
                    let req = c.req(pb::SetLicenseLimitRequest {
                        domain,
                        license_limit: u64::from(limit),
                        request_id: None,
                        expected_version: None,
                    });
                    c.inner.set_license_limit(req).await
                }
                DomainCommand::Guard { domain, percent } => {
                    let req = c.req(pb::SetMassChangeGuardRequest {
                        domain,
                        percent,
                        request_id: None,
                        expected_version: None,
                    });
                    c.inner.set_mass_change_guard(req).await
                }
            }
            .map_err(status_text)?;
            c.reply(r.get_ref());
        }
        ClientCommand::Token { conn, command } => {
            let mut c = Client::connect(&conn).await?;
            match command {
                TokenCommand::Add {
                    principal,
                    role,
                    domains,
                    expires_in,
                    expires_at,
                } => {
                    let role = match role.as_str() {
                        "operator" => pb::Role::Operator,
                        "domain-admin" | "admin" => pb::Role::DomainAdmin,
                        "lms" => pb::Role::Lms,
                        "auditor" => pb::Role::Auditor,
                        other => {
                            return Err(format!(
                                "--role {other:?}: expected operator, domain-admin, lms or auditor"
                            ));
                        }
                    };
                    let expires_at = match (expires_in, expires_at) {
                        (Some(d), _) => Some(
                            crate::store::now_us()
                                .checked_add(
                                    super::time::parse_duration_us(&d)
                                        .map_err(|e| format!("--expires-in {e}"))?,
                                )
                                .ok_or_else(|| format!("--expires-in {d:?}: too far ahead"))?,
                        ),
                        (None, Some(t)) => {
                            Some(parse_instant(&t).map_err(|e| format!("--expires-at {e}"))?)
                        }
                        (None, None) => None,
                    };
                    let req = c.req(pb::CreateTokenRequest {
                        principal,
                        role: role as i32,
                        domains,
                        expires_at: expires_at.map(us_to_timestamp),
                    });
                    let r = c.inner.create_token(req).await.map_err(status_text)?;
                    let r = r.get_ref();
                    for w in &r.warnings {
                        eprintln!("warning: {w}");
                    }
                    if c.json {
                        println!(
                            "{}",
                            json!({"token": r.token, "id": r.id, "warnings": r.warnings})
                        );
                    } else {
                        println!("{}", r.token);
                    }
                }
                TokenCommand::List => {
                    let req = c.req(pb::ListTokensRequest {});
                    let r = c.inner.list_tokens(req).await.map_err(status_text)?;
                    let tokens = &r.get_ref().tokens;
                    if c.json {
                        let all: Vec<_> = tokens.iter().map(output::token_json).collect();
                        println!("{}", serde_json::Value::Array(all));
                    } else {
                        output::table(&output::TOKEN_HEADER, &output::token_rows(tokens));
                    }
                }
                TokenCommand::Revoke { id } => {
                    let req = c.req(pb::RevokeTokenRequest { id });
                    let r = c.inner.revoke_token(req).await.map_err(status_text)?;
                    let t = r.get_ref();
                    if c.json {
                        println!("{}", output::token_json(t));
                    } else {
                        println!(
                            "revoked token {} ({})",
                            t.id,
                            output::printable(&t.principal, false)
                        );
                    }
                }
            }
        }
        ClientCommand::Account { conn, command } => account(conn, command).await?,
        ClientCommand::License {
            conn,
            domain,
            as_of: when,
        } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::GetLicenseUsageRequest {
                domain,
                as_of: as_of(&when)?,
            });
            let u = c.inner.get_license_usage(req).await.map_err(status_text)?;
            let u = u.get_ref();
            if c.json {
                println!(
                    "{}",
                    json!({"domain": u.domain, "used": u.used, "limit": u.limit})
                );
            } else {
                println!("{}: {} of {} licenses in use", u.domain, u.used, u.limit);
            }
        }
        ClientCommand::Export {
            conn,
            domain,
            as_of: when,
            csv,
            csv_version,
        } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::ExportUsersRequest {
                domain,
                as_of: as_of(&when)?,
            });
            let mut stream = c
                .inner
                .export_users(req)
                .await
                .map_err(status_text)?
                .into_inner();
            let out = || std::io::BufWriter::new(std::io::stdout().lock());
            let version = match csv_version {
                2 => Version::V2,
                _ => Version::V1,
            };
            let mut csv = match csv {
                true => Some(UsersCsvWriter::new(out(), version).map_err(|e| e.to_string())?),
                false => None,
            };
            // JSON lines through one buffer: `println!` flushed a write per row.
            let mut json = (csv.is_none() && c.json).then(out);
            let (mut all, mut left_out) = (Vec::new(), 0u64);
            while let Some(a) = stream.message().await.map_err(status_text)? {
                if let Some(w) = csv.as_mut() {
                    let p = a.profile.clone().unwrap_or_default();
                    let row = UserRow {
                        import_id: a.import_id.as_deref(),
                        first_name: &p.first_name,
                        last_name: &p.last_name,
                        login: &p.login,
                        email: &p.email,
                        role: &a.role,
                        enabled: a.enabled,
                    };
                    left_out += u64::from(!w.write(row).map_err(|e| e.to_string())?);
                } else if let Some(w) = json.as_mut() {
                    writeln!(w, "{}", output::account_json(&a)).map_err(|e| e.to_string())?;
                } else {
                    all.push(a);
                }
            }
            match (csv, json) {
                (Some(w), _) => w.finish().map_err(|e| e.to_string())?,
                (None, Some(mut w)) => w.flush().map_err(|e| e.to_string())?,
                (None, None) => output::table(&ACCOUNT_HEADER, &output::account_rows(&all)),
            }
            if left_out > 0 {
                let (n, has) = if left_out == 1 {
                    ("1 account".to_string(), "has")
                } else {
                    (format!("{left_out} accounts"), "have")
                };
                eprintln!("{n} {has} no import id (created by hand): left out of the users.csv");
            }
        }
        ClientCommand::CanSignIn {
            conn,
            domain,
            login,
        } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::CanSignInRequest { domain, login });
            let r = c.inner.can_sign_in(req).await.map_err(status_text)?;
            let r = r.get_ref();
            if c.json {
                println!(
                    "{}",
                    json!({"allowed": r.allowed, "account": r.account, "status": output::status_text(r.status)})
                );
            } else {
                match r.account {
                    Some(a) => println!(
                        "{} (account {a}, {})",
                        if r.allowed { "allowed" } else { "not allowed" },
                        output::status_text(r.status)
                    ),
                    None => println!("not allowed (no account with this login in the domain)"),
                }
            }
        }
        ClientCommand::Log {
            conn,
            from,
            to,
            limit,
        } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::ReadLogRequest {
                from_position: from,
                to_position: to,
                limit,
            });
            let r = c.inner.read_log(req).await.map_err(status_text)?;
            print_events(c.json, &r.get_ref().events);
        }
        ClientCommand::Verify { conn } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::VerifyProjectionsRequest {});
            let r = c.inner.verify_projections(req).await.map_err(status_text)?;
            let v = r.get_ref();
            if c.json {
                println!(
                    "{}",
                    json!({"equal": v.equal, "events_replayed": v.events_replayed, "accounts": v.accounts, "detail": v.detail})
                );
            } else {
                println!(
                    "{}: {} events replayed, {} accounts; {}",
                    if v.equal { "EQUAL" } else { "DIFFERENT" },
                    v.events_replayed,
                    v.accounts,
                    v.detail
                );
            }
            if !v.equal {
                return Err("replay differs from the live projections".into());
            }
        }
        ClientCommand::Rebuild { conn } => {
            let mut c = Client::connect(&conn).await?;
            let req = c.req(pb::RebuildProjectionsRequest {});
            let r = c
                .inner
                .rebuild_projections(req)
                .await
                .map_err(status_text)?;
            if c.json {
                println!(
                    "{}",
                    json!({"events_replayed": r.get_ref().events_replayed})
                );
            } else {
                println!("rebuilt from {} events", r.get_ref().events_replayed);
            }
        }
    }
    Ok(())
}

fn print_events(json: bool, events: &[pb::LedgerEvent]) {
    if json {
        for e in events {
            println!("{}", output::event_json(e));
        }
    } else {
        output::table(&EVENT_HEADER, &output::event_rows(events));
    }
}

async fn confirm(
    c: &mut Client,
    delete: bool,
    account: String,
    yes: bool,
    w: WriteOpts,
) -> Result<(), String> {
    let make = |token: Option<String>| -> Result<pb::ConfirmableRequest, String> {
        Ok(pb::ConfirmableRequest {
            account: Some(account_ref(&account)?),
            confirmation_token: token,
            request_id: w.request_id.clone(),
            expected_version: w.expected_version,
        })
    };
    let call = |c: &mut Client, r: pb::ConfirmableRequest| {
        let req = c.req(r);
        let mut inner = c.inner.clone();
        async move {
            if delete {
                inner.delete_account(req).await
            } else {
                inner.disable_account(req).await
            }
        }
    };
    let first = call(c, make(None)?)
        .await
        .map_err(status_text)?
        .into_inner();
    let confirmation = match first.outcome {
        Some(pb::confirmable_reply::Outcome::Done(done)) => {
            c.reply(&done);
            return Ok(());
        }
        Some(pb::confirmable_reply::Outcome::ConfirmationRequired(conf)) => conf,
        None => return Err("the server answered neither a warning nor a result".into()),
    };
    eprintln!("WARNING: {}", confirmation.warning);
    if !yes && !ask(if delete { "Delete?" } else { "Disable?" })? {
        return Err("cancelled; nothing changed".into());
    }
    let second = call(c, make(Some(confirmation.confirmation_token))?)
        .await
        .map_err(status_text)?
        .into_inner();
    match second.outcome {
        Some(pb::confirmable_reply::Outcome::Done(done)) => {
            c.reply(&done);
            Ok(())
        }
        _ => Err("the server asked for confirmation again; nothing changed".into()),
    }
}

async fn account(conn: Conn, command: AccountCommand) -> Result<(), String> {
    let mut c = Client::connect(&conn).await?;
    let reply = match command {
        AccountCommand::Create {
            domain,
            login,
            first_name,
            last_name,
            email,
            role,
            import_id,
            disabled,
            write,
        } => {
            let req = c.req(pb::CreateAccountRequest {
                domain,
                import_id,
                profile: Some(pb::Profile {
                    login,
                    first_name,
                    last_name,
                    email,
                }),
                role,
                enabled: Some(!disabled),
                request_id: write.request_id,
                expected_version: write.expected_version,
            });
            c.inner.create_account(req).await
        }
        AccountCommand::Disable {
            account,
            yes,
            write,
        } => return confirm(&mut c, false, account, yes, write).await,
        AccountCommand::Delete {
            account,
            yes,
            write,
        } => return confirm(&mut c, true, account, yes, write).await,
        AccountCommand::Enable { account, write } => {
            let req = c.req(cmd(&account, &write)?);
            c.inner.enable_account(req).await
        }
        AccountCommand::Deactivate { account, write } => {
            let req = c.req(cmd(&account, &write)?);
            c.inner.deactivate_account(req).await
        }
        AccountCommand::Reactivate {
            account,
            disabled,
            write,
        } => {
            let req = c.req(pb::ReactivateAccountRequest {
                account: Some(account_ref(&account)?),
                enabled: Some(!disabled),
                request_id: write.request_id,
                expected_version: write.expected_version,
            });
            c.inner.reactivate_account(req).await
        }
        AccountCommand::Show {
            account,
            as_of: when,
        } => {
            let req = c.req(pb::GetAccountRequest {
                account: Some(account_ref(&account)?),
                as_of: as_of(&when)?,
            });
            let a = c.inner.get_account(req).await.map_err(status_text)?;
            if c.json {
                println!("{}", output::account_json(a.get_ref()));
            } else {
                output::print_account(a.get_ref());
            }
            return Ok(());
        }
        AccountCommand::List {
            domain,
            include_disabled,
            include_deactivated,
            search,
            role,
            page_token,
            offset,
            limit,
            as_of: when,
        } => {
            let req = c.req(pb::ListAccountsRequest {
                domain,
                include_disabled,
                include_deactivated,
                search,
                role,
                offset,
                limit,
                as_of: as_of(&when)?,
                page_token,
            });
            let r = c.inner.list_accounts(req).await.map_err(status_text)?;
            let r = r.get_ref();
            if c.json {
                let accounts: Vec<_> = r.accounts.iter().map(output::account_json).collect();
                println!(
                    "{}",
                    json!({"total": r.total, "accounts": accounts, "next_page_token": r.next_page_token})
                );
            } else {
                output::table(&ACCOUNT_HEADER, &output::account_rows(&r.accounts));
                println!("({} shown of {} matching)", r.accounts.len(), r.total);
                if !r.next_page_token.is_empty() {
                    println!("next page: --page-token {}", r.next_page_token);
                }
            }
            return Ok(());
        }
        AccountCommand::History { account } => {
            let req = c.req(pb::GetAccountHistoryRequest {
                account: Some(account_ref(&account)?),
            });
            let r = c
                .inner
                .get_account_history(req)
                .await
                .map_err(status_text)?;
            print_events(c.json, &r.get_ref().events);
            return Ok(());
        }
    };
    let reply = reply.map_err(status_text)?;
    c.reply(reply.get_ref());
    Ok(())
}
