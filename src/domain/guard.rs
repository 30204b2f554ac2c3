//! The mass-change guard: a full import (or the revert of a job) that would deactivate or
//! delete more than the domain's share (`mass_change_percent`, default 10%) of its active
//! imported accounts is refused unless the administrator confirms it. Catches truncated or wrong users.csv files before they empty a
//! district.

use serde::Serialize;

/// The numbers the guard decides on, kept in the report so a refusal can say how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuardCheck {
    /// Imported (has an import id), not deleted, not deactivated accounts of the domain.
    pub active_imported: u64,
    /// Of those, how many this import would deactivate or delete.
    pub removals: u64,
    /// The domain's allowed share, in percent.
    pub percent: u8,
}

impl GuardCheck {
    /// True when the removals exceed the allowed share (so confirmation is needed).
    pub fn exceeded(&self) -> bool {
        self.removals * 100 > self.active_imported * u64::from(self.percent)
    }
}

#[cfg(test)]
mod tests {
    use super::GuardCheck;

    fn check(active: u64, removals: u64, percent: u8) -> bool {
        GuardCheck {
            active_imported: active,
            removals,
            percent,
        }
        .exceeded()
    }

    #[test]
    fn share_boundaries() {
        assert!(!check(100, 10, 10));
        assert!(check(100, 11, 10));
        assert!(!check(0, 0, 10));
        assert!(check(5, 1, 10));
        assert!(!check(5, 5, 100));
        assert!(check(5, 1, 0));
    }
}
