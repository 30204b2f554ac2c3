//! OneRoster 1.1 CSV: a directory or a .zip holding `manifest.csv` (`propertyName,value`) and
//! `users.csv`. The manifest's `oneroster.version` must be 1.1 (or 1.0); 1.2 and others are
//! refused (see [`check_version`]). `file.users` in the manifest says `bulk` (a full import), `delta` (rows applied
//! one by one; `status=tobedeleted` acts like delete_users.csv) or `absent` (nothing to do).
//! `sourcedId` is the import id, `username` the login, `givenName`/`familyName` the names,
//! `enabledUser` the enabled flag. `password` is never read.

use std::io::Read;

use serde::Serialize;

use super::error::{ColumnNames, ImportError};
use super::rows::{FlagStyle, Layout, UserReader};
use super::table::{Next, Table};

/// What the manifest says about users.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UsersMode {
    Bulk,
    Delta,
    Absent,
}

/// OneRoster 1.1 users.csv columns.
pub const USERS_COLUMNS: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
];

pub(crate) const NAMES: ColumnNames = ColumnNames {
    import_id: "sourcedId",
    login: "username",
    first_name: "givenName",
    last_name: "familyName",
    email: "email",
    role: "role",
};

/// Read `manifest.csv`: the mode of `file.users`, and warnings about other files (not imported).
pub(crate) fn read_manifest<R: Read>(
    file: &str,
    input: R,
) -> Result<(UsersMode, Vec<String>), ImportError> {
    let mut t = Table::open(file, input)?;
    let name = t.require("propertyName")?;
    let value = t.require("value")?;
    let mut users = None;
    let mut warnings = Vec::new();
    let mut version_seen = false;
    loop {
        match t.next()? {
            Next::End => break,
            Next::Bad(e) => {
                return Err(ImportError::Manifest {
                    file: file.to_string(),
                    row: e.row,
                    reason: e.reason,
                });
            }
            Next::Row => {
                let key = t.get(Some(name)).to_string();
                let v = t.get(Some(value)).to_lowercase();
                if key.eq_ignore_ascii_case("oneroster.version") {
                    check_version(file, t.line(), v.trim())?;
                    version_seen = true;
                } else if key.eq_ignore_ascii_case("file.users") {
                    users = Some(match v.as_str() {
                        "bulk" => UsersMode::Bulk,
                        "delta" => UsersMode::Delta,
                        "absent" => UsersMode::Absent,
                        other => {
                            return Err(ImportError::Manifest {
                                file: file.to_string(),
                                row: t.line(),
                                reason: format!(
                                    "file.users is {}; expected bulk, delta or absent",
                                    super::limits::quote(other)
                                ),
                            });
                        }
                    });
                } else if key.to_lowercase().starts_with("file.") && v != "absent" {
                    warnings.push(format!(
                        "{file}: {} is {}; only users are imported, that file is ignored",
                        super::limits::quote(&key),
                        super::limits::quote(&v)
                    ));
                }
            }
        }
    }
    let users = users.ok_or_else(|| ImportError::Manifest {
        file: file.to_string(),
        row: 0,
        reason: "no file.users entry".into(),
    })?;
    if !version_seen {
        warnings.push(format!(
            "{file}: no oneroster.version entry; read as OneRoster 1.1"
        ));
    }
    Ok((users, warnings))
}

/// The manifest's `oneroster.version`: 1.1 (and 1.0, whose users.csv is the same) is
/// imported; 1.2 moves roles to roles.csv and changes users.csv, so reading it as 1.1 would
/// make every teacher a student: refused until it is supported, as is any other version.
fn check_version(file: &str, row: u64, version: &str) -> Result<(), ImportError> {
    let reason = match version {
        "1.0" | "1.1" => return Ok(()),
        "1.2" => "oneroster.version is 1.2; this server imports OneRoster 1.1 only (1.2 keeps \
                  roles in roles.csv, which a 1.1 import would miss): export the set as \
                  OneRoster 1.1"
            .to_string(),
        other => format!(
            "oneroster.version is {}; this server imports OneRoster 1.1",
            super::limits::quote(other)
        ),
    };
    Err(ImportError::Manifest {
        file: file.to_string(),
        row,
        reason,
    })
}

/// users.csv columns OneRoster 1.1 requires that the import does not read: missing ones are
/// a warning (the columns it reads are required outright).
const REQUIRED_UNREAD: &[&str] = &["status", "dateLastModified", "orgSourcedIds"];

/// Read the header of a OneRoster users.csv.
pub(crate) fn open_users<R: Read>(
    file: &str,
    input: R,
) -> Result<(UserReader<R>, Vec<String>), ImportError> {
    let table = Table::open(file, input)?;
    let mut warnings = Vec::new();
    let unknown = table.unknown_columns(USERS_COLUMNS);
    if !unknown.is_empty() {
        warnings.push(format!(
            "{file}: unknown columns ignored: {}",
            unknown.join(", ")
        ));
    }
    let missing: Vec<&str> = REQUIRED_UNREAD
        .iter()
        .copied()
        .filter(|c| table.column(c).is_none())
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "{file}: columns OneRoster 1.1 requires are missing (not read here): {}",
            missing.join(", ")
        ));
    }
    // The columns read that OneRoster 1.1 requires: without one, every row would be wrong
    // (without `role` every teacher a student).
    let layout = Layout {
        import_id: table.require("sourcedId")?,
        login: Some(table.require("username")?),
        first_name: Some(table.require("givenName")?),
        last_name: Some(table.require("familyName")?),
        email: table.column("email"),
        role: Some(table.require("role")?),
        flag: Some((table.require("enabledUser")?, FlagStyle::EnabledUser)),
        status: table.column("status"),
        all_remove: false,
    };
    Ok((UserReader { table, layout }, warnings))
}
