//! The read model's account indexes, so that a ListAccounts page or search costs a few range
//! seeks plus the page, never a pass over the domain:
//! - `listed`: (status, role, account) of every live (not deleted) account. "Enabled teachers"
//!   is one range; several statuses or roles are ranges merged by account number, which is
//!   creation order (the order of every list). Counts per (status, role) give totals.
//! - `terms`: (first 8 bytes of a search token, account). A search word is the range of its
//!   prefix; candidates are then checked against the profile with [`matches_search`], the one
//!   definition of what a search finds. Held as sorted vectors built in one pass, one per core
//!   that built them (16 bytes an entry; a persistent set took 40), plus a persistent set of
//!   the terms added since. A changed
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
    /// Sorted runs, one per part of the rows built on its own core ([`AccountIndex::build`]).
    terms_built: Arc<Vec<Vec<(u64, AccountId)>>>,
    terms_added: OrdSet<(u64, AccountId)>,
}

impl fmt::Debug for AccountIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountIndex")
            .field("listed", &self.listed.len())
            .field("terms_built", &self.terms_built_len())
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

/// Domains with at least this many rows are indexed on both cores.
const PARALLEL_BUILD_ROWS: usize = 65_536;

/// The index entries of some rows, roles numbered in the order met.
#[derive(Default)]
struct Entries {
    roles: Vec<Arc<str>>,
    /// (status, role, account), unsorted.
    listed: Vec<(u8, u32, AccountId)>,
    /// Sorted.
    terms: Vec<(u64, AccountId)>,
}

impl Entries {
    fn of(rows: &[&AccountState]) -> Entries {
        let mut numbering = AccountIndex::default();
        let mut listed = Vec::with_capacity(rows.len());
        let mut terms = Vec::new();
        let mut keys = Vec::new();
        for a in rows {
            let Some(status) = status_code(a.status()) else {
                continue;
            };
            listed.push((status, numbering.role_number(&a.role), a.id));
            // Deduplicated per account first (a login and an email often share 8 bytes):
            // the vector to sort stays a fifth smaller.
            keys.clear();
            keys.extend(token_fields(a).map(token_key));
            keys.sort_unstable();
            keys.dedup();
            terms.extend(keys.iter().map(|k| (*k, a.id)));
        }
        terms.sort_unstable();
        terms.shrink_to_fit();
        Entries {
            roles: numbering.roles,
            listed,
            terms,
        }
    }
}

/// Two ascending sequences as one ascending sequence.
fn merge_ascending<T: Ord>(
    a: impl Iterator<Item = T>,
    b: impl Iterator<Item = T>,
) -> impl Iterator<Item = T> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

impl AccountIndex {
    /// The index of a set of account rows (start-up, after a rebuild, after an import). A
    /// large set is indexed on both cores, each half of the rows on its own.
    pub fn build<'a>(accounts: impl Iterator<Item = &'a AccountState>) -> AccountIndex {
        let rows: Vec<&AccountState> = accounts.collect();
        AccountIndex::build_in_halves(&rows, rows.len() >= PARALLEL_BUILD_ROWS)
    }

    fn build_in_halves(rows: &[&AccountState], split: bool) -> AccountIndex {
        let (first, second) = if split {
            let (first, second) = rows.split_at(rows.len() / 2);
            crate::threads::join(|| Entries::of(first), || Entries::of(second))
        } else {
            (Entries::of(rows), Entries::default())
        };
        let mut index = AccountIndex {
            roles: first.roles,
            ..AccountIndex::default()
        };
        // The second half numbered its roles on its own: renumber them as the first did.
        let renumbered: Vec<u32> = second.roles.iter().map(|r| index.role_number(r)).collect();
        let (mut listed, mut other) = (first.listed, second.listed);
        for entry in &mut other {
            entry.1 = renumbered[entry.1 as usize];
        }
        crate::threads::join(|| listed.sort_unstable(), || other.sort_unstable());
        let counts = &mut index.counts;
        // Sorted input: each insert walks the tree's rightmost path, cache-warm.
        index.listed = merge_ascending(listed.into_iter(), other.into_iter())
            .inspect(|(status, role, _)| *counts.entry((*status, *role)).or_default() += 1)
            .collect();
        index.terms_built = Arc::new(
            [first.terms, second.terms]
                .into_iter()
                .filter(|run| !run.is_empty())
                .collect(),
        );
        index
    }

    fn terms_built_len(&self) -> usize {
        self.terms_built.iter().map(Vec::len).sum()
    }

    /// Whether enough terms were added since the last build that a new build pays off.
    pub fn wants_rebuild(&self) -> bool {
        self.terms_added.len() > self.terms_built_len() / 4 + 65_536
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
            if self
                .terms_built
                .iter()
                .all(|run| run.binary_search(&term).is_err())
            {
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
        let mut ids: Vec<AccountId> = self
            .terms_built
            .iter()
            .flat_map(|run| {
                let from = run.partition_point(|t| *t < low);
                let to = run.partition_point(|t| *t <= high);
                &run[from..to]
            })
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
    fn an_index_built_in_halves_answers_as_one_built_whole() {
        // Roles met in another order in each half, some accounts not enabled or deleted.
        let roles = ["student", "Teacher", "admin", "STUDENT", "parent"];
        let rows: Vec<AccountState> = (1..=400u64)
            .map(|id| {
                let role = roles[((id * 7 + u64::from(id > 200) * 3) % 5) as usize];
                let mut a = account(
                    id,
                    &format!("u{:03}", id * 13 % 400),
                    &format!("F{}", id % 9),
                    role,
                );
                a.enabled = id % 3 != 0;
                a.active = id % 11 != 0;
                a.deleted = id % 17 == 0;
                a
            })
            .collect();
        let refs: Vec<&AccountState> = rows.iter().collect();
        let whole = AccountIndex::build_in_halves(&refs, false);
        let halves = AccountIndex::build_in_halves(&refs, true);
        assert_eq!(halves.terms_built.len(), 2, "built in two runs");
        for statuses in [
            &LISTED_STATUSES[..1],
            &LISTED_STATUSES[1..],
            &LISTED_STATUSES[..],
        ] {
            for role in [
                None,
                Some("student"),
                Some("TEACHER"),
                Some("parent"),
                Some("none"),
            ] {
                for after in [0, 150, 250] {
                    let a: Vec<_> = whole.listed_after(statuses, role, after).collect();
                    let b: Vec<_> = halves.listed_after(statuses, role, after).collect();
                    assert_eq!(a, b, "{statuses:?} {role:?} after {after}");
                }
                assert_eq!(whole.count(statuses, role), halves.count(statuses, role));
            }
        }
        assert!(whole.count(&LISTED_STATUSES, None) > 0);
        for word in ["u1", "u39", "f3", "s1", "smith", "u012@", "zz"] {
            assert_eq!(
                whole.search_candidates(word),
                halves.search_candidates(word),
                "{word}"
            );
        }
        assert!(!halves.search_candidates("u1").is_empty());
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
