//! OneRoster 1.1 CSV: a directory or a .zip holding `manifest.csv` (`propertyName,value`) and
//! `users.csv`. `file.users` in the manifest says `bulk` (a full import), `delta` (rows applied
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
                if key.eq_ignore_ascii_case("file.users") {
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
    Ok((users, warnings))
}

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
    let layout = Layout {
        import_id: table.require("sourcedId")?,
        login: Some(table.require("username")?),
        first_name: table.column("givenName"),
        last_name: table.column("familyName"),
        email: table.column("email"),
        role: table.column("role"),
        flag: Some((table.require("enabledUser")?, FlagStyle::EnabledUser)),
        status: table.column("status"),
        all_remove: false,
    };
    Ok((UserReader { table, layout }, warnings))
}
