//! PowerSchool Learning user files: `users.csv` (full import), `update_users.csv` and
//! `delete_users.csv` (partial import), in v1 (`enabled` 1/0) and v2 (`blocked` 1/0).
//!
//! The version is read from the header: an `enabled` column is v1, `blocked` v2; both or neither
//! refuse the file unless the caller names the version (with neither, flags are left as they
//! are and new accounts are created enabled). Columns are matched by name; the vendor's whole
//! column list is accepted, other columns are a warning. `password` is never read.
//! Also writes the users export in the same format ([`write_users_csv`]), so an export can be
//! re-imported.

use std::io::{Read, Write};

use serde::Serialize;

use super::error::{ColumnNames, ImportError};
use super::rows::{FlagStyle, Layout, UserReader};
use super::table::Table;
use crate::domain::AccountState;

/// Which PowerSchool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FileKind {
    /// `users.csv`: the full list; imported accounts left out are removed.
    Users,
    /// `update_users.csv`: creates, updates, enables, disables, reactivates.
    UpdateUsers,
    /// `delete_users.csv`: Deletes stubs, Deactivates the others.
    DeleteUsers,
}

impl FileKind {
    /// The kind a file name says (`users.csv`, `update_users.csv`, `delete_users.csv`; any case,
    /// any directory).
    pub fn from_file_name(name: &str) -> Option<FileKind> {
        let base = name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(name)
            .to_lowercase();
        match base.as_str() {
            "users.csv" => Some(FileKind::Users),
            "update_users.csv" => Some(FileKind::UpdateUsers),
            "delete_users.csv" => Some(FileKind::DeleteUsers),
            _ => None,
        }
    }
}

/// PowerSchool import format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    /// `enabled` column: 1 = enabled, 0 = disabled.
    V1,
    /// `blocked` column: 1 = disabled, 0 = enabled.
    V2,
}

/// The vendor's users.csv columns (v1 order), plus v2's `blocked`.
pub const VENDOR_COLUMNS: &[&str] = &[
    "import_id",
    "first_name",
    "middle_init",
    "last_name",
    "suffix",
    "nickname",
    "login",
    "password",
    "email",
    "user_type",
    "organization_id",
    "enabled",
    "display_id",
    "google_email_address",
    "blocked",
];

pub(crate) const NAMES: ColumnNames = ColumnNames {
    import_id: "import_id",
    login: "login",
    first_name: "first_name",
    last_name: "last_name",
    email: "email",
    role: "user_type",
};

/// An opened PowerSchool file: its rows, and what the header said.
pub(crate) struct Opened<R> {
    pub reader: UserReader<R>,
    pub version: Option<Version>,
    pub warnings: Vec<String>,
}

/// Read the header of a PowerSchool file and decide its layout.
pub(crate) fn open<R: Read>(
    file: &str,
    input: R,
    kind: FileKind,
    version: Option<Version>,
) -> Result<Opened<R>, ImportError> {
    let table = Table::open(file, input)?;
    let mut warnings = Vec::new();
    let unknown = table.unknown_columns(VENDOR_COLUMNS);
    if !unknown.is_empty() {
        warnings.push(format!(
            "{file}: unknown columns ignored: {}",
            unknown.join(", ")
        ));
    }
    let import_id = table.require("import_id")?;
    if kind == FileKind::DeleteUsers {
        let layout = Layout {
            import_id,
            all_remove: true,
            ..Layout::default()
        };
        return Ok(Opened {
            reader: UserReader {
                table,
                layout,
                roles: None,
            },
            version,
            warnings,
        });
    }
    let login = Some(table.require("login")?);
    let enabled = table.column("enabled");
    let blocked = table.column("blocked");
    let bad = |reason: String| ImportError::Version {
        file: file.to_string(),
        reason,
    };
    let (flag, version) = match (version, enabled, blocked) {
        (None, Some(_), Some(_)) => {
            return Err(bad(
                "the header has both `enabled` (v1) and `blocked` (v2); remove one, or name the version (`--version v1` or `v2`; gRPC `header.version`)".into(),
            ));
        }
        (None, None, None) => {
            return Err(bad(
                "the header has neither `enabled` (v1) nor `blocked` (v2), so the version is unknown; add the column, or name the version (`--version v1` or `v2`; gRPC `header.version`) to import without changing flags".into(),
            ));
        }
        (None, Some(c), None) | (Some(Version::V1), Some(c), _) => {
            (Some((c, FlagStyle::Enabled)), Version::V1)
        }
        (None, None, Some(c)) | (Some(Version::V2), _, Some(c)) => {
            (Some((c, FlagStyle::Blocked)), Version::V2)
        }
        (Some(Version::V1), None, Some(_)) => {
            return Err(bad(
                "v1 was named but the header has `blocked` (v2) and no `enabled`".into(),
            ));
        }
        (Some(Version::V2), Some(_), None) => {
            return Err(bad(
                "v2 was named but the header has `enabled` (v1) and no `blocked`".into(),
            ));
        }
        (Some(v), None, None) => {
            warnings.push(format!(
                "{file}: no `enabled` or `blocked` column: existing accounts keep their flags, new accounts are created enabled"
            ));
            (None, v)
        }
    };
    let layout = Layout {
        import_id,
        login,
        first_name: table.column("first_name"),
        last_name: table.column("last_name"),
        email: table.column("email"),
        role: table.column("user_type"),
        flag,
        status: None,
        all_remove: false,
    };
    Ok(Opened {
        reader: UserReader {
            table,
            layout,
            roles: None,
        },
        version: Some(version),
        warnings,
    })
}

/// One row of the users export, as [`UsersCsvWriter`] writes it.
pub struct UserRow<'a> {
    pub import_id: Option<&'a str>,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub login: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub enabled: bool,
}

impl<'a> From<&'a AccountState> for UserRow<'a> {
    fn from(a: &'a AccountState) -> UserRow<'a> {
        UserRow {
            import_id: a.import_id.as_deref(),
            first_name: a.profile.first_name(),
            last_name: a.profile.last_name(),
            login: a.profile.login(),
            email: a.profile.email(),
            role: &a.role,
            enabled: a.enabled,
        }
    }
}

/// Writes a PowerSchool users.csv row by row (the users export streams through it), in
/// `version`'s flag column, so an export can be imported again.
pub struct UsersCsvWriter<W: Write> {
    out: csv::Writer<W>,
    version: Version,
}

fn csv_error(e: csv::Error) -> ImportError {
    ImportError::Io {
        file: "users.csv".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl<W: Write> UsersCsvWriter<W> {
    /// Start the file: its header row.
    pub fn new(out: W, version: Version) -> Result<Self, ImportError> {
        let mut out = csv::Writer::from_writer(out);
        let flag = match version {
            Version::V1 => "enabled",
            Version::V2 => "blocked",
        };
        out.write_record([
            "import_id",
            "first_name",
            "last_name",
            "login",
            "email",
            "user_type",
            flag,
        ])
        .map_err(csv_error)?;
        Ok(UsersCsvWriter { out, version })
    }

    /// Write one account. An account without an import id (created by hand) cannot be listed
    /// in an import file: it is skipped and this answers false.
    pub fn write(&mut self, row: UserRow<'_>) -> Result<bool, ImportError> {
        let Some(import_id) = row.import_id else {
            return Ok(false);
        };
        let on = match self.version {
            Version::V1 => row.enabled,
            Version::V2 => !row.enabled,
        };
        self.out
            .write_record([
                import_id,
                row.first_name,
                row.last_name,
                row.login,
                row.email,
                row.role,
                if on { "1" } else { "0" },
            ])
            .map_err(csv_error)?;
        Ok(true)
    }

    pub fn finish(mut self) -> Result<(), ImportError> {
        self.out.flush().map_err(|e| ImportError::Io {
            file: "users.csv".into(),
            source: e,
        })
    }
}

/// Write accounts as a PowerSchool users.csv (the users export); returns how many rows were
/// written (accounts without an import id are skipped).
pub fn write_users_csv<W: Write>(
    out: W,
    accounts: &[AccountState],
    version: Version,
) -> Result<u64, ImportError> {
    let mut w = UsersCsvWriter::new(out, version)?;
    let mut n = 0;
    for a in accounts {
        n += u64::from(w.write(a.into())?);
    }
    w.finish()?;
    Ok(n)
}
