//! The format-independent row: what one line of any user file asks for (an import id, and
//! either the account's wanted fields or its removal), and [`UserReader`], which maps a
//! [`Table`]'s columns onto it. PowerSchool and OneRoster differ only in the [`Layout`] they
//! build from their header.

use std::io::Read;

use super::error::{ImportError, RowError};
use super::table::{Next, Table};

/// What one row asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Line the row starts on (header = 1).
    pub row: u64,
    pub import_id: String,
    pub action: RowAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowAction {
    /// Create or update the account (users.csv, update_users.csv, OneRoster active rows).
    Upsert(UserFields),
    /// delete_users.csv or OneRoster `status=tobedeleted`: Delete a stub, Deactivate the rest.
    Remove,
}

/// Wanted values; `None` means "the file does not say": keep the account's value (or the
/// default when creating). There is no password field: it is never read into memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFields {
    pub login: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub enabled: Option<bool>,
}

/// How the enabled flag is written in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagStyle {
    /// PowerSchool v1 `enabled`: 1 = enabled.
    Enabled,
    /// PowerSchool v2 `blocked`: 1 = disabled.
    Blocked,
    /// OneRoster `enabledUser`: true = enabled.
    EnabledUser,
}

/// Column indexes of one file's header.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub import_id: usize,
    pub login: Option<usize>,
    pub first_name: Option<usize>,
    pub last_name: Option<usize>,
    pub email: Option<usize>,
    pub role: Option<usize>,
    pub flag: Option<(usize, FlagStyle)>,
    /// OneRoster `status`: `tobedeleted` removes.
    pub status: Option<usize>,
    /// Every row removes (delete_users.csv).
    pub all_remove: bool,
}

pub(crate) struct UserReader<R> {
    pub(crate) table: Table<R>,
    pub(crate) layout: Layout,
    /// Roles by import id, for files without a role column (OneRoster 1.2: roles.csv).
    pub(crate) roles: Option<Roles>,
}

/// Roles read from a separate file, by import id.
pub(crate) struct Roles {
    pub(crate) by_user: std::collections::HashMap<String, String>,
    /// The file they came from (named when a user has none).
    pub(crate) file: String,
    /// A user without a role is a bad row (a full import); else the role is kept as is.
    pub(crate) required: bool,
}

/// The values a flag column takes, as an error message names them. PowerSchool files hold
/// `1`/`0` (the vendor's documentation and its exports); OneRoster's `enabledUser` is
/// `true`/`false`. Blank keeps the account's flag as it is (a new account is created enabled),
/// which is what a blank cell of a partial update means.
fn flag_values(style: FlagStyle) -> &'static str {
    match style {
        FlagStyle::Enabled => "1 (enabled), 0 (disabled) or blank (keep as is)",
        FlagStyle::Blocked => "1 (disabled), 0 (enabled) or blank (keep as is)",
        FlagStyle::EnabledUser => "true, false (any case) or blank (keep as is)",
    }
}

fn parse_flag(style: FlagStyle, v: &str) -> Result<Option<bool>, String> {
    let v = v.trim();
    let truth = match (style, v) {
        (_, "") => return Ok(None),
        (FlagStyle::Enabled | FlagStyle::Blocked, "1") => true,
        (FlagStyle::Enabled | FlagStyle::Blocked, "0") => false,
        (FlagStyle::EnabledUser, t) if t.eq_ignore_ascii_case("true") => true,
        (FlagStyle::EnabledUser, f) if f.eq_ignore_ascii_case("false") => false,
        (_, other) => {
            return Err(format!(
                "{} is not a flag value: this column takes {}",
                super::limits::quote(other),
                flag_values(style)
            ));
        }
    };
    Ok(Some(match style {
        FlagStyle::Enabled | FlagStyle::EnabledUser => truth,
        FlagStyle::Blocked => !truth,
    }))
}

impl<R: Read> UserReader<R> {
    /// The next row: `Ok(None)` at the end; `Ok(Some(Err(_)))` a bad row (report, skip);
    /// `Err(_)` a file error (refuse the whole file).
    pub(crate) fn next_row(&mut self) -> Result<Option<Result<UserRow, RowError>>, ImportError> {
        match self.table.next()? {
            Next::End => Ok(None),
            Next::Bad(mut e) => {
                let iid = self.table.get(Some(self.layout.import_id));
                if !iid.is_empty() {
                    e.import_id = Some(iid.to_string());
                }
                Ok(Some(Err(e)))
            }
            Next::Row => Ok(Some(self.current())),
        }
    }

    fn current(&self) -> Result<UserRow, RowError> {
        let t = &self.table;
        let l = &self.layout;
        let import_id = t.get(Some(l.import_id));
        if import_id.is_empty() {
            return Err(t.row_error(l.import_id, None, "the import id is empty".into()));
        }
        let row = t.line();
        let remove = l.all_remove
            || l.status
                .is_some_and(|c| t.get(Some(c)).eq_ignore_ascii_case("tobedeleted"));
        if remove {
            return Ok(UserRow {
                row,
                import_id: import_id.to_string(),
                action: RowAction::Remove,
            });
        }
        let text = |c: Option<usize>| c.map(|c| t.get(Some(c)).to_string());
        let nonempty = |c: Option<usize>| text(c).filter(|s| !s.is_empty());
        let mut role = nonempty(l.role);
        if let Some(roles) = &self.roles {
            role = roles.by_user.get(import_id).cloned();
            if role.is_none() && roles.required {
                let reason = format!(
                    "{} has no role in {}",
                    super::limits::quote(import_id),
                    roles.file
                );
                return Err(t.row_error(l.import_id, Some(import_id), reason));
            }
        }
        let enabled = match l.flag {
            Some((c, style)) => parse_flag(style, t.get(Some(c)))
                .map_err(|reason| t.row_error(c, Some(import_id), reason))?,
            None => None,
        };
        Ok(UserRow {
            row,
            import_id: import_id.to_string(),
            action: RowAction::Upsert(UserFields {
                login: nonempty(l.login),
                first_name: text(l.first_name),
                last_name: text(l.last_name),
                email: text(l.email),
                role,
                enabled,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_the_values_their_format_defines_and_blank_keeps() {
        for (style, on, off) in [
            (FlagStyle::Enabled, "1", "0"),
            (FlagStyle::Blocked, "0", "1"),
            (FlagStyle::EnabledUser, "TRUE", "false"),
        ] {
            assert_eq!(parse_flag(style, on), Ok(Some(true)));
            assert_eq!(parse_flag(style, off), Ok(Some(false)));
            assert_eq!(parse_flag(style, " "), Ok(None));
        }
        for (style, bad) in [
            (FlagStyle::Enabled, "yes"),
            (FlagStyle::Enabled, "FALSE"),
            (FlagStyle::Blocked, "no"),
            (FlagStyle::EnabledUser, "1"),
        ] {
            let e = parse_flag(style, bad).unwrap_err();
            assert!(e.contains(flag_values(style)), "{e}");
        }
    }
}
