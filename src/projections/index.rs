//! The read model's account indexes, so that a ListAccounts page or search costs a few range
//! seeks plus the page, never a pass over the domain:
//! - `listed`: (status, role, account) of every live (not deleted) account. "Enabled teachers"
//!   is one range; several statuses or roles are ranges merged by account number, which is
//!   creation order (the order of every list). Counts per (status, role) give totals.
//! - `terms`: (first 8 bytes of a search token, account). A search word is the range of its
//!   prefix; candidates are then checked against the profile with [`matches_search`], the one
//!   definition of what a search finds. Held as a sorted vector built in one pass (16 bytes an
//!   entry; a persistent set took 40) plus a persistent set of the terms added since. A changed
//!   name leaves its old term behind: candidates are checked anyway, and the writer rebuilds
//!   the vector once the added terms reach a quarter of it ([`AccountIndex::wants_rebuild`]).
//!
//! Held in memory only, built from the views at start and kept in step by the writer's
//! publish: the data files gain nothing, so an attacker with them learns nothing from it. A
//! deleted account leaves both indexes with its row, so no old name or email finds it.
//! Both are persistent maps: a point-in-time page clones them in O(1).

use std::collections::HashMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;

use imbl::OrdSet;

use crate::domain::{AccountId, AccountState, PackedProfile, Status};

/// Statuses that appear in lists (Deleted never does).
pub const LISTED_STATUSES: [Status; 3] = [Status::Enabled, Status::Disabled, Status::Deactivated];

#[derive(Clone, Default)]
pub struct AccountIndex {
    listed: OrdSet<(u8, u32, AccountId)>,
    counts: HashMap<(u8, u32), u64>,
    /// Role names (lowercase) by role number; roles are few per domain.
    roles: Vec<Arc<str>>,
    terms_built: Arc<Vec<(u64, AccountId)>>,
    terms_added: OrdSet<(u64, AccountId)>,
}

impl fmt::Debug for AccountIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountIndex")
            .field("listed", &self.listed.len())
            .field("terms_built", &self.terms_built.len())
            .field("terms_added", &self.terms_added.len())
            .field("roles", &self.roles)
            .finish()
    }
}

fn status_code(s: Status) -> Option<u8> {
    match s {
        Status::Enabled => Some(0),
        Status::Disabled => Some(1),
        Status::Deactivated => Some(2),
        Status::Deleted => None,
    }
}

/// Lowercase (char by char, as [`matches_search`] compares), trimmed: how tokens and search
/// words are compared.
fn normalize(s: &str) -> String {
    let s = s.trim();
    if s.is_ascii() {
        // The same result for ASCII, without a char-by-char walk: most tokens are ASCII.
        return s.to_ascii_lowercase();
    }
    s.chars().flat_map(char::to_lowercase).collect()
}

/// What a search word may be a prefix of, as written: login, email and import id whole, and
/// each word of the first and last name. Nothing for a deleted account (its profile is
/// erased and it is not listed). The one definition both the index and the check use.
fn token_fields(a: &AccountState) -> impl Iterator<Item = &str> {
    let p = &a.profile;
    let fields = (!a.deleted).then(|| {
        [p.login(), p.email(), a.import_id.as_deref().unwrap_or("")]
            .into_iter()
            .chain(p.first_name().split_whitespace())
            .chain(p.last_name().split_whitespace())
    });
    fields
        .into_iter()
        .flatten()
        .filter(|t| !t.trim().is_empty())
}

/// The index key of one token: the first 8 bytes of it normalized ([`normalize`]). When
/// those bytes are ASCII (nearly always) they are lowercased in place, without building the
/// normalized token: a later character cannot change them.
fn token_key(token: &str) -> u64 {
    let t = token.trim();
    let head = &t.as_bytes()[..t.len().min(8)];
    if !head.is_ascii() {
        return prefix_key(&normalize(t));
    }
    let mut key = [0u8; 8];
    for (k, b) in key.iter_mut().zip(head) {
        *k = b.to_ascii_lowercase();
    }
    u64::from_be_bytes(key)
}

/// The words of a search (lowercase); empty when the search is blank.
pub fn search_words(search: &str) -> Vec<String> {
    search.split_whitespace().map(normalize).collect()
}

/// Whether `field` (trimmed, any case) starts with `word` (lowercase), without allocating.
fn starts_with_word(field: &str, word: &str) -> bool {
    let mut field = field.trim().chars().flat_map(char::to_lowercase);
    word.chars().all(|w| field.next() == Some(w))
}

/// The search rule: every word (lowercase, from [`search_words`]) is a prefix of one of the
/// account's tokens (see [`token_fields`]), case-insensitively. Checked per candidate of a
/// search, so it allocates nothing.
pub fn matches_search(a: &AccountState, words: &[String]) -> bool {
    words
        .iter()
        .all(|w| token_fields(a).any(|t| starts_with_word(t, w)))
}

/// The first 8 bytes of a token, zero-padded, as a big-endian number: tokens sort as these do.
fn prefix_key(token: &str) -> u64 {
    let bytes = token.as_bytes();
    let mut key = [0u8; 8];
    let n = bytes.len().min(8);
    key[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(key)
}

/// Every prefix key a token starting with `word` can have.
fn prefix_range(word: &str) -> RangeInclusive<u64> {
    let low = prefix_key(word);
    let n = word.len().min(8);
    let high = if n == 8 {
        low
    } else {
        low | (u64::MAX >> (8 * n))
    };
    low..=high
}

impl AccountIndex {
    /// The index of a set of account rows (start-up, after a rebuild, after an import).
    pub fn build<'a>(accounts: impl Iterator<Item = &'a AccountState>) -> AccountIndex {
        let mut index = AccountIndex::default();
        let mut listed = Vec::new();
        let mut terms = Vec::new();
        let mut keys = Vec::new();
        for a in accounts {
            let Some(status) = status_code(a.status()) else {
                continue;
            };
            let role = index.role_number(&a.role);
            listed.push((status, role, a.id));
            *index.counts.entry((status, role)).or_default() += 1;
            // Deduplicated per account first (a login and an email often share 8 bytes):
            // the vector to sort stays a fifth smaller.
            keys.clear();
            keys.extend(token_fields(a).map(token_key));
            keys.sort_unstable();
            keys.dedup();
            terms.extend(keys.iter().map(|k| (*k, a.id)));
        }
        // The two halves are independent: build them on both cores.
        let (terms, listed) = crate::threads::join(
            move || {
                terms.sort_unstable();
                terms.dedup();
                terms.shrink_to_fit();
                terms
            },
            || {
                // Sorted input: each insert walks the tree's rightmost path, cache-warm.
                listed.sort_unstable();
                listed.into_iter().collect::<OrdSet<_>>()
            },
        );
        index.listed = listed;
        index.terms_built = Arc::new(terms);
        index
    }

    /// Whether enough terms were added since the last build that a new build pays off.
    pub fn wants_rebuild(&self) -> bool {
        self.terms_added.len() > self.terms_built.len() / 4 + 65_536
    }

    /// Replace what the index holds for one account: `old` its row before, `new` after. A
    /// change of status alone (most changes) moves one list entry and leaves the terms.
    pub fn replace(&mut self, old: Option<&AccountState>, new: Option<&AccountState>) {
        let same_terms = match (old, new) {
            (Some(o), Some(n)) => {
                (PackedProfile::ptr_eq(&o.profile, &n.profile) || o.profile == n.profile)
                    && o.import_id == n.import_id
            }
            _ => false,
        };
        if let (Some(o), Some(n)) = (old, new)
            && same_terms
            && o.status() == n.status()
            && o.role == n.role
        {
            return;
        }
        if let Some(a) = old {
            self.remove(a);
        }
        if let Some(a) = new {
            self.insert(a, !same_terms);
        }
    }

    fn insert(&mut self, a: &AccountState, with_terms: bool) {
        let Some(status) = status_code(a.status()) else {
            return;
        };
        let role = self.role_number(&a.role);
        if self.listed.insert((status, role, a.id)).is_none() {
            *self.counts.entry((status, role)).or_default() += 1;
        }
        if !with_terms {
            return;
        }
        for t in token_fields(a) {
            let term = (token_key(t), a.id);
            if self.terms_built.binary_search(&term).is_err() {
                self.terms_added.insert(term);
            }
        }
    }

    fn remove(&mut self, a: &AccountState) {
        let Some(status) = status_code(a.status()) else {
            return;
        };
        let Some(role) = self.find_role(&a.role) else {
            return;
        };
        if self.listed.remove(&(status, role, a.id)).is_some()
            && let Some(n) = self.counts.get_mut(&(status, role))
        {
            *n = n.saturating_sub(1);
        }
        // Its terms stay (see the module doc): candidates are checked against the row.
    }

    fn role_number(&mut self, role: &str) -> u32 {
        if let Some(n) = self.find_role(role) {
            return n;
        }
        self.roles.push(Arc::from(role.to_lowercase()));
        (self.roles.len() - 1) as u32
    }

    fn find_role(&self, role: &str) -> Option<u32> {
        // Roles are few and nearly always ASCII: compared without a lowercase copy.
        let found = if role.is_ascii() {
            self.roles.iter().position(|r| {
                r.len() == role.len()
                    && r.bytes()
                        .zip(role.bytes())
                        .all(|(a, b)| a == b.to_ascii_lowercase())
            })
        } else {
            let role = role.to_lowercase();
            self.roles.iter().position(|r| **r == *role)
        };
        found.map(|n| n as u32)
    }

    /// The (status, role) ranges a listing reads; `role` None means every role.
    fn ranges(&self, statuses: &[Status], role: Option<&str>) -> Vec<(u8, u32)> {
        let roles: Vec<u32> = match role {
            Some(r) => self.find_role(r).into_iter().collect(),
            None => (0..self.roles.len() as u32).collect(),
        };
        statuses
            .iter()
            .filter_map(|s| status_code(*s))
            .flat_map(|s| roles.iter().map(move |r| (s, *r)))
            .collect()
    }

    /// How many live accounts have one of `statuses` (and `role`, when given).
    pub fn count(&self, statuses: &[Status], role: Option<&str>) -> u64 {
        self.ranges(statuses, role)
            .iter()
            .map(|k| self.counts.get(k).copied().unwrap_or(0))
            .sum()
    }

    /// Accounts numbered above `after` with one of `statuses` (and `role`), ascending.
    pub fn listed_after(
        &self,
        statuses: &[Status],
        role: Option<&str>,
        after: AccountId,
    ) -> impl Iterator<Item = AccountId> + '_ {
        let mut heads: Vec<_> = self
            .ranges(statuses, role)
            .into_iter()
            .filter(|_| after < AccountId::MAX)
            .map(|(s, r)| {
                self.listed
                    .range((s, r, after + 1)..=(s, r, AccountId::MAX))
                    .map(|k| k.2)
                    .peekable()
            })
            .collect();
        std::iter::from_fn(move || {
            // Few heads (statuses × roles): a linear pick of the smallest is cheapest.
            let (best, _) = heads
                .iter_mut()
                .enumerate()
                .filter_map(|(i, h)| h.peek().map(|id| (i, *id)))
                .min_by_key(|(_, id)| *id)?;
            heads[best].next()
        })
    }

    /// Accounts with a token starting with `word` (lowercase), ascending, no duplicates. A
    /// superset (words over 8 bytes, names changed since): check each with [`matches_search`].
    pub fn search_candidates(&self, word: &str) -> Vec<AccountId> {
        let range = prefix_range(word);
        let (low, high) = ((*range.start(), 0), (*range.end(), AccountId::MAX));
        let built = &self.terms_built;
        let from = built.partition_point(|t| *t < low);
        let to = built.partition_point(|t| *t <= high);
        let mut ids: Vec<AccountId> = built[from..to]
            .iter()
            .chain(self.terms_added.range(low..=high))
            .map(|k| k.1)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;

    fn account(id: AccountId, login: &str, first: &str, role: &str) -> AccountState {
        AccountState {
            id,
            domain: "d".into(),
            import_id: Some(format!("S{id}")),
            profile: PackedProfile::new(&Profile {
                login: login.into(),
                first_name: first.into(),
                last_name: "Smith".into(),
                email: format!("{login}@school.example"),
            }),
            role: role.into(),
            enabled: true,
            active: true,
            deleted: false,
            last_sign_in_us: None,
            owns_data: false,
            version: 1,
        }
    }

    #[test]
    fn prefix_ranges_hold_every_token_with_the_prefix() {
        for (word, token) in [("ab", "abc"), ("ab", "ab"), ("abcdefgh", "abcdefghij")] {
            assert!(
                prefix_range(word).contains(&prefix_key(token)),
                "{word} {token}"
            );
        }
        assert!(!prefix_range("ab").contains(&prefix_key("ac")));
        assert!(!prefix_range("abc").contains(&prefix_key("ab")));
    }

    #[test]
    fn a_token_key_is_the_prefix_of_the_normalized_token() {
        for token in [
            "ab",
            "  Ann ",
            "ABCDEFGHIJ",
            "ABCDEFGHİJ",
            "ÉCOLE",
            "abcdefgÉ",
            "Straße",
            "",
        ] {
            assert_eq!(token_key(token), prefix_key(&normalize(token)), "{token:?}");
        }
    }

    #[test]
    fn roles_compare_without_case() {
        let mut index = AccountIndex::default();
        let student = index.role_number("Student");
        assert_eq!(index.role_number("STUDENT"), student);
        assert_eq!(index.find_role("student"), Some(student));
        assert_eq!(index.find_role("Élève"), None);
        let eleve = index.role_number("Élève");
        assert_eq!(index.find_role("ÉLÈVE"), Some(eleve));
        assert_eq!(index.find_role("students"), None);
    }

    #[test]
    fn lists_merge_roles_in_account_order_and_count() {
        let rows = [
            account(1, "ann", "Ann", "student"),
            account(2, "tom", "Tom", "teacher"),
            account(3, "amy", "Amy Lou", "Student"),
        ];
        let mut index = AccountIndex::build(rows.iter());
        let all: Vec<_> = index.listed_after(&[Status::Enabled], None, 0).collect();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(index.count(&[Status::Enabled], Some("STUDENT")), 2);
        let mut disabled = rows[1].clone();
        disabled.enabled = false;
        index.replace(Some(&rows[1]), Some(&disabled));
        let enabled: Vec<_> = index.listed_after(&[Status::Enabled], None, 1).collect();
        assert_eq!(enabled, vec![3]);
        assert_eq!(index.count(&[Status::Disabled], None), 1);
        assert_eq!(index.search_candidates("lou"), vec![3]);
        let mut renamed = rows[0].clone();
        let mut profile = renamed.profile.to_profile();
        profile.first_name = "Louise".into();
        renamed.profile = PackedProfile::new(&profile);
        index.replace(Some(&rows[0]), Some(&renamed));
        assert_eq!(index.search_candidates("lou"), vec![1, 3]);
        index.replace(Some(&rows[2]), None);
        assert_eq!(index.count(&[Status::Enabled], None), 1);
    }
}
