//! The schema's versioned migrations: created and migrated by the server itself
//! (`ledger_migrations`); a database migrated by a newer binary is refused.

use tokio_postgres::{Client, GenericClient};

use super::{StoreError, append_lock, col, pg};

/// Migrations in order; the database records the last one applied.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE events (
        position bigint PRIMARY KEY,
        stream text NOT NULL,
        stream_version bigint NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        recorded_at_us bigint NOT NULL,
        body bytea NOT NULL,
        UNIQUE (stream, stream_version)
    )",
    "CREATE TABLE account_keys (account bigint PRIMARY KEY, key bytea NOT NULL)",
    // Which store this is: a view cache made from another store (a schema dropped and made
    // again) must never be caught up with this one's events.
    "CREATE TABLE store_identity (id uuid NOT NULL);
     INSERT INTO store_identity VALUES (gen_random_uuid())",
    // Several servers (store/pg_cluster.rs): who is serving, which server decides which
    // domain (a lease with an epoch that fences the old owner's appends), account numbers
    // handed out in blocks, the token table, and the secret servers forward commands with.
    "CREATE TABLE servers (id uuid PRIMARY KEY, address text NOT NULL,
                           seen_at timestamptz NOT NULL DEFAULT now());
     CREATE TABLE leases (domain text PRIMARY KEY, owner uuid NOT NULL, epoch bigint NOT NULL,
                          expires_at timestamptz NOT NULL);
     CREATE TABLE account_numbers (next bigint NOT NULL);
     INSERT INTO account_numbers VALUES (1);
     CREATE TABLE tokens (id int PRIMARY KEY, version bigint NOT NULL, config text NOT NULL);
     CREATE TABLE cluster_secret (secret bytea NOT NULL);
     INSERT INTO cluster_secret
         VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))",
    // What authentication knows beyond one server: each token's last use, and each peer
    // address's failed authentications in its current window (times in the database's clock).
    "CREATE TABLE token_uses (id text PRIMARY KEY, last_used_us bigint NOT NULL);
     CREATE TABLE auth_failures (peer text PRIMARY KEY, started_us bigint NOT NULL,
                                 failures integer NOT NULL)",
];

/// The last migration `schema` records, read without any lock; 0 when it has none yet.
async fn applied_migrations(client: &impl GenericClient, schema: &str) -> Result<i32, StoreError> {
    let table = format!("{schema}.ledger_migrations");
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(pg)?;
    if !col::<bool>(&row, 0)? {
        return Ok(0);
    }
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {table}"),
            &[],
        )
        .await
        .map_err(pg)?;
    col(&row, 0)
}

fn refuse_newer(schema: &str, applied: i32) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(StoreError::Io(format!(
            "the database schema {schema} is at version {applied}, newer than this binary knows \
             ({known}): run a newer account-ledger"
        )));
    }
    Ok(())
}

pub(super) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    // A schema already at this binary's version needs no lock: the migration's lock is the
    // append lock, which an import on another server may hold for longer than the session's
    // lock timeout, and a server opening then must not fail for it.
    let applied = applied_migrations(client, schema).await?;
    refuse_newer(schema, applied)?;
    if applied == MIGRATIONS.len() as i32 {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&append_lock(schema)])
        .await
        .map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.ledger_migrations (
             version int PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(pg)?;
    // Read again under the lock: another server may have migrated meanwhile.
    let applied = applied_migrations(&tx, schema).await?;
    refuse_newer(schema, applied)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(&format!("SET LOCAL search_path TO {schema}; {sql}"))
            .await
            .map_err(pg)?;
        tx.execute(
            &format!("INSERT INTO {schema}.ledger_migrations (version) VALUES ($1)"),
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}
