//! What names may hold: one place for the character rules every layer applies (the domain's
//! commands, token principals, the CLI's output).

use super::DomainError;

/// A domain name is an identifier that appears in paths, URLs, logs and terminals: ASCII
/// letters, digits, `.`, `-` and `_`, starting with a letter or digit, at most 63 bytes.
pub fn validate_domain_name(domain: &str) -> Result<(), DomainError> {
    let invalid = |reason: String| DomainError::Invalid {
        field: "domain",
        reason,
    };
    if domain.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if domain.len() > 63 {
        return Err(invalid("longer than 63 bytes".into()));
    }
    if !domain.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid("must start with a letter or digit".into()));
    }
    if let Some((i, c)) = domain
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(invalid(format!(
            "{} at byte {i} is not allowed (letters, digits, '.', '-', '_')",
            describe_char(c)
        )));
    }
    Ok(())
}

/// Characters no name, login or email may hold: control characters (NUL, escape sequences
/// that would reach a terminal), bidirectional overrides (text that displays reversed) and
/// byte-order marks / zero-width characters (names that look equal but are not).
pub fn forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn describe_char(c: char) -> String {
    format!("character U+{:04X}", c as u32)
}

/// Refuse forbidden characters, naming the field, the character and where it is.
pub fn validate_text(field: &'static str, value: &str) -> Result<(), DomainError> {
    refuse_chars(field, value, forbidden_char)
}

/// [`validate_text`] for free text (first and last names): line breaks and tabs are allowed
/// there (a quoted CSV cell may hold them); terminals get them escaped by the CLI.
pub fn validate_free_text(field: &'static str, value: &str) -> Result<(), DomainError> {
    refuse_chars(field, value, |c| {
        forbidden_char(c) && !matches!(c, '\n' | '\r' | '\t')
    })
}

fn refuse_chars(
    field: &'static str,
    value: &str,
    forbidden: impl Fn(char) -> bool,
) -> Result<(), DomainError> {
    if let Some((i, c)) = value.char_indices().find(|(_, c)| forbidden(*c)) {
        return Err(DomainError::Invalid {
            field,
            reason: format!(
                "contains {} at byte {i} (control, bidirectional or invisible characters are not allowed)",
                describe_char(c)
            ),
        });
    }
    Ok(())
}
