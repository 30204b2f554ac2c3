//! OneRoster CSV, 1.1 and 1.2: a directory or a .zip holding `manifest.csv`
//! (`propertyName,value`) and `users.csv`, and for 1.2 `roles.csv`. The manifest's
//! `oneroster.version` says which (1.0 reads as 1.1; others are refused, see
//! [`check_version`]). In 1.2 users.csv has no `role` column: each user's role is its
//! `primary` row of roles.csv (else its first active row). `file.users` in the manifest says `bulk` (a full import), `delta` (rows applied
//! one by one; `status=tobedeleted` acts like delete_users.csv) or `absent` (nothing to do).
//! `sourcedId` is the import id, `username` the login, `givenName`/`familyName` the names,
//! `enabledUser` the enabled flag. `password` is never read.

use std::io::Read;

use serde::Serialize;

use super::error::{ColumnNames, ImportError, RowError};
use super::rows::{FlagStyle, Layout, Roles, UserReader};
use super::table::{Next, Table};

/// What the manifest says about users.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UsersMode {
    Bulk,
    Delta,
    Absent,
}

/// Which OneRoster version a set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RosterVersion {
    V1_1,
    V1_2,
}

impl RosterVersion {
    pub fn name(self) -> &'static str {
        match self {
            RosterVersion::V1_1 => "OneRoster 1.1",
            RosterVersion::V1_2 => "OneRoster 1.2",
        }
    }
}

/// What the manifest says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) version: RosterVersion,
    pub(crate) users: UsersMode,
    /// `file.roles` (1.2): absent unless listed.
    pub(crate) roles: UsersMode,
}

/// OneRoster 1.2 users.csv columns (1.1's `role` and `orgSourcedIds` moved to roles.csv).
pub const USERS_COLUMNS_1_2: &[&str] = &[
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "preferredFirstName",
    "preferredMiddleName",
    "preferredLastName",
    "pronouns",
    "primaryOrgSourcedId",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "resourceSourcedIds",
];

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
) -> Result<(Manifest, Vec<String>), ImportError> {
    let mut t = Table::open(file, input)?;
    let name = t.require("propertyName")?;
    let value = t.require("value")?;
    let mut users = None;
    let mut roles = UsersMode::Absent;
    let mut warnings = Vec::new();
    let mut version = None;
    loop {
        match t.next()? {
            Next::End => break,
            Next::Bad(e) => return Err(bad_row(file, e)),
            Next::Row => {
                let key = t.get(Some(name)).to_string();
                let v = t.get(Some(value)).to_lowercase();
                if key.eq_ignore_ascii_case("oneroster.version") {
                    version = Some(check_version(file, t.line(), v.trim())?);
                } else if key.eq_ignore_ascii_case("file.users")
                    || key.eq_ignore_ascii_case("file.roles")
                {
                    let mode = match v.as_str() {
                        "bulk" => UsersMode::Bulk,
                        "delta" => UsersMode::Delta,
                        "absent" => UsersMode::Absent,
                        other => {
                            return Err(ImportError::Manifest {
                                file: file.to_string(),
                                row: t.line(),
                                reason: format!(
                                    "{key} is {}; expected bulk, delta or absent",
                                    super::limits::quote(other)
                                ),
                            });
                        }
                    };
                    if key.eq_ignore_ascii_case("file.users") {
                        users = Some(mode);
                    } else {
                        roles = mode;
                    }
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
    let version = version.unwrap_or_else(|| {
        warnings.push(format!(
            "{file}: no oneroster.version entry; read as OneRoster 1.1"
        ));
        RosterVersion::V1_1
    });
    if version == RosterVersion::V1_1 {
        // 1.1 has a roles.csv-free users.csv; a listed roles file is not read.
        roles = UsersMode::Absent;
    }
    Ok((
        Manifest {
            version,
            users,
            roles,
        },
        warnings,
    ))
}

/// A malformed row of manifest.csv or roles.csv: the whole set is refused, naming it.
fn bad_row(file: &str, e: RowError) -> ImportError {
    ImportError::Manifest {
        file: file.to_string(),
        row: e.row,
        reason: e.reason,
    }
}

/// The manifest's `oneroster.version`: 1.1 (and 1.0, whose users.csv is the same) or 1.2;
/// any other is refused, since reading a users.csv of another layout would make wrong
/// accounts (1.2 read as 1.1 made every teacher a student).
fn check_version(file: &str, row: u64, version: &str) -> Result<RosterVersion, ImportError> {
    match version {
        "1.0" | "1.1" => Ok(RosterVersion::V1_1),
        "1.2" => Ok(RosterVersion::V1_2),
        other => Err(ImportError::Manifest {
            file: file.to_string(),
            row,
            reason: format!(
                "oneroster.version is {}; this server imports OneRoster 1.1 and 1.2",
                super::limits::quote(other)
            ),
        }),
    }
}

/// Read a OneRoster 1.2 roles.csv: each user's role, its `primary` row first, else its first
/// row; rows with `status` tobedeleted are left out.
pub(crate) fn read_roles<R: Read>(
    file: &str,
    input: R,
) -> Result<std::collections::HashMap<String, String>, ImportError> {
    let mut t = Table::open(file, input)?;
    let user = t.require("userSourcedId")?;
    let role = t.require("role")?;
    let kind = t.require("roleType")?;
    let status = t.column("status");
    let mut by_user: std::collections::HashMap<String, (String, bool)> = Default::default();
    loop {
        match t.next()? {
            Next::End => break,
            Next::Bad(e) => return Err(bad_row(file, e)),
            Next::Row => {
                if status.is_some_and(|c| t.get(Some(c)).eq_ignore_ascii_case("tobedeleted")) {
                    continue;
                }
                let (u, r) = (t.get(Some(user)).trim(), t.get(Some(role)).trim());
                if u.is_empty() || r.is_empty() {
                    continue;
                }
                let primary = t.get(Some(kind)).eq_ignore_ascii_case("primary");
                match by_user.get_mut(u) {
                    Some(held) if primary && !held.1 => *held = (r.to_string(), true),
                    Some(_) => {}
                    None => {
                        by_user.insert(u.to_string(), (r.to_string(), primary));
                    }
                }
            }
        }
    }
    Ok(by_user.into_iter().map(|(u, (r, _))| (u, r)).collect())
}

/// users.csv columns OneRoster 1.1 requires that the import does not read: missing ones are
/// a warning (the columns it reads are required outright).
const REQUIRED_UNREAD: &[&str] = &["status", "dateLastModified", "orgSourcedIds"];

/// Read the header of a OneRoster users.csv (1.2: roles come from `roles`).
pub(crate) fn open_users<R: Read>(
    file: &str,
    input: R,
    version: RosterVersion,
    roles: Option<Roles>,
) -> Result<(UserReader<R>, Vec<String>), ImportError> {
    let table = Table::open(file, input)?;
    let mut warnings = Vec::new();
    let known = match version {
        RosterVersion::V1_1 => USERS_COLUMNS,
        RosterVersion::V1_2 => USERS_COLUMNS_1_2,
    };
    let unknown = table.unknown_columns(known);
    if !unknown.is_empty() {
        warnings.push(format!(
            "{file}: unknown columns ignored: {}",
            unknown.join(", ")
        ));
    }
    let unread: &[&str] = match version {
        RosterVersion::V1_1 => REQUIRED_UNREAD,
        RosterVersion::V1_2 => &["status", "dateLastModified"],
    };
    let missing: Vec<&str> = unread
        .iter()
        .copied()
        .filter(|c| table.column(c).is_none())
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "{file}: columns {} requires are missing (not read here): {}",
            version.name(),
            missing.join(", ")
        ));
    }
    // The columns read that OneRoster requires: without one, every row would be wrong
    // (without `role` every teacher a student).
    let role = match version {
        RosterVersion::V1_1 => Some(table.require("role")?),
        RosterVersion::V1_2 => None,
    };
    let layout = Layout {
        import_id: table.require("sourcedId")?,
        login: Some(table.require("username")?),
        first_name: Some(table.require("givenName")?),
        last_name: Some(table.require("familyName")?),
        email: table.column("email"),
        role,
        flag: Some((table.require("enabledUser")?, FlagStyle::EnabledUser)),
        status: table.column("status"),
        all_remove: false,
    };
    Ok((
        UserReader {
            table,
            layout,
            roles,
        },
        warnings,
    ))
}
