//! Account lists: which accounts a listing shows ([`AccountFilter`]), and pages of them by
//! cursor, now or as of an instant, served from the read model's [`AccountIndex`].
//!
//! A page costs a few index range seeks plus the page. As of an instant, the domain is its
//! current rows with the accounts that differ at that instant put back as they were
//! ([`PastView`]): found from the log after the instant when that is short (a minute ago costs
//! the events of the last minute), else from the stream index (accounts whose last event is
//! after the instant); only those accounts are folded.

use std::collections::BTreeMap;

use crate::domain::{AccountId, AccountState, LedgerState, Status, StreamId};
use crate::ledger::{Ledger, LedgerError};
use crate::projections::AccountIndex;
use crate::projections::index::{LISTED_STATUSES, matches_search, search_words};

use super::unknown_domain;

/// Which accounts a listing shows. Deleted accounts are never listed.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub include_disabled: bool,
    pub include_deactivated: bool,
    /// Words, each a case-insensitive prefix of the login, the email, the import id or a word
    /// of the first or last name (see [`matches_search`]).
    pub search: Option<String>,
    pub role: Option<String>,
}

impl AccountFilter {
    /// The statuses shown: Enabled always, the others when asked.
    pub fn statuses(&self) -> Vec<Status> {
        LISTED_STATUSES
            .into_iter()
            .filter(|s| match s {
                Status::Enabled => true,
                Status::Disabled => self.include_disabled,
                Status::Deactivated => self.include_deactivated,
                Status::Deleted => false,
            })
            .collect()
    }

    fn words(&self) -> Vec<String> {
        self.search.as_deref().map(search_words).unwrap_or_default()
    }

    /// The rule itself, row by row (what the index answers must equal).
    pub fn matches(&self, a: &AccountState) -> bool {
        self.matcher()(a)
    }

    /// [`AccountFilter::matches`] with the statuses, role and search words worked out once,
    /// for checking many rows.
    pub fn matcher(&self) -> impl Fn(&AccountState) -> bool + '_ {
        let (statuses, words) = (self.statuses(), self.words());
        let role = self.role.as_ref().map(|r| r.to_lowercase());
        move |a| {
            statuses.contains(&a.status())
                && role.as_ref().is_none_or(|r| a.role.to_lowercase() == *r)
                && matches_search(a, &words)
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default)]
pub struct AccountPage {
    pub accounts: Vec<AccountState>,
    /// Accounts matching the filter in the whole domain (not only this page).
    pub total: u64,
    /// Set when more accounts follow: the cursor of the next page (the last account listed).
    pub next_after: Option<AccountId>,
}

/// Where a page starts: after the account `after` (0: from the first), skipping `skip` more.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageStart {
    pub after: AccountId,
    pub skip: usize,
}

/// A domain as of an instant: its current rows and index (O(1) copies of the read model) with
/// the accounts that differ at that instant.
pub struct PastView {
    state: LedgerState,
    index: AccountIndex,
    domain: String,
    /// Rows as they were, by account; None: it did not exist then.
    changed: BTreeMap<AccountId, Option<AccountState>>,
    /// Held while a view of many past rows lives (one such view at a time).
    large_fold: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl PastView {
    /// Every account of the domain as it was (deleted ones included), in creation order.
    pub fn accounts(&self) -> Vec<AccountState> {
        self.rows().cloned().collect()
    }

    /// Give up this view's turn among large views (see `Shared::large_folds`) before holding
    /// it for long.
    pub(crate) fn end_turn(&mut self) {
        self.large_fold = None;
    }

    /// [`PastView::accounts`], borrowed.
    pub fn rows(&self) -> impl Iterator<Item = &AccountState> + Send + '_ {
        self.state
            .domain_accounts
            .get(&self.domain)
            .into_iter()
            .flatten()
            .filter_map(|id| match self.changed.get(id) {
                Some(past) => past.as_ref(),
                None => self.state.account(*id),
            })
    }

    pub fn page(&self, filter: &AccountFilter, start: PageStart, limit: usize) -> AccountPage {
        page(
            &self.state,
            &self.index,
            &self.changed,
            filter,
            start,
            limit,
        )
    }
}

/// One page: the index's rows, except `changed` accounts, which are taken from there.
pub(crate) fn page(
    state: &LedgerState,
    index: &AccountIndex,
    changed: &BTreeMap<AccountId, Option<AccountState>>,
    filter: &AccountFilter,
    start: PageStart,
    limit: usize,
) -> AccountPage {
    let statuses = filter.statuses();
    let role = filter.role.as_deref();
    let matches = filter.matcher();
    let after = start.after;
    let unchanged = |id: &AccountId| !changed.contains_key(id);
    let (current, current_total): (Box<dyn Iterator<Item = AccountId> + '_>, u64) =
        match filter.words().first() {
            None => {
                let changed_now = changed
                    .keys()
                    .filter(|id| state.account(**id).is_some_and(&matches))
                    .count() as u64;
                (
                    Box::new(index.listed_after(&statuses, role, after).filter(unchanged)),
                    index.count(&statuses, role).saturating_sub(changed_now),
                )
            }
            Some(first) => {
                let hits: Vec<AccountId> = index
                    .search_candidates(first)
                    .into_iter()
                    .filter(|id| unchanged(id) && state.account(*id).is_some_and(&matches))
                    .collect();
                let total = hits.len() as u64;
                (
                    Box::new(hits.into_iter().filter(move |id| *id > after)),
                    total,
                )
            }
        };
    let past: Vec<&AccountState> = changed.values().flatten().filter(|a| matches(a)).collect();
    let total = current_total + past.len() as u64;
    let mut past = past.into_iter().filter(|a| a.id > after).peekable();
    let mut current = current.filter_map(|id| state.account(id)).peekable();
    // Both sides ascend by account number: merge them.
    let merged = std::iter::from_fn(|| match (current.peek(), past.peek()) {
        (Some(c), Some(p)) if p.id < c.id => past.next(),
        (Some(_), _) => current.next(),
        (None, _) => past.next(),
    });
    let mut accounts: Vec<AccountState> =
        merged.skip(start.skip).take(limit + 1).cloned().collect();
    let next_after = if accounts.len() > limit {
        accounts.truncate(limit);
        accounts.last().map(|a| a.id)
    } else {
        None
    };
    AccountPage {
        accounts,
        total,
        next_after,
    }
}

/// Reading (and opening) one event of the log costs about as much as this many lookups of a
/// stream's newest position (~2 µs against ~0.1 µs): past this ratio, asking the stream index
/// about each account of the domain is cheaper than reading the log after the instant.
const INDEX_LOOKUPS_PER_EVENT_READ: u64 = 20;

/// Accounts past which a view as of an instant waits for any other such view to end (1M past
/// rows took ~650 MiB more at the peak while they were folded and paged).
const LARGE_FOLD: usize = 100_000;

impl Ledger {
    /// One page of a domain's accounts now, in creation order.
    pub async fn list_accounts(
        &self,
        domain: &str,
        filter: &AccountFilter,
        start: PageStart,
        limit: usize,
    ) -> Result<AccountPage, LedgerError> {
        let part = self
            .shared
            .routes
            .partition(domain)
            .ok_or_else(|| unknown_domain(domain))?;
        let read = part.indexed().await;
        read.domain().ok_or_else(|| unknown_domain(domain))?;
        Ok(page(
            &read.state,
            &read.index,
            &BTreeMap::new(),
            filter,
            start,
            limit,
        ))
    }

    /// One page of a domain's accounts as they were at `at_us`.
    pub async fn list_accounts_as_of(
        &self,
        domain: &str,
        filter: &AccountFilter,
        at_us: i64,
        start: PageStart,
        limit: usize,
    ) -> Result<AccountPage, LedgerError> {
        Ok(self
            .past_view(domain, at_us)
            .await?
            .page(filter, start, limit))
    }

    /// The domain's accounts as they were at `at_us` (deleted ones included, with status).
    pub async fn accounts_as_of(
        &self,
        domain: &str,
        at_us: i64,
    ) -> Result<Vec<AccountState>, LedgerError> {
        Ok(self.past_view(domain, at_us).await?.accounts())
    }

    /// The domain as it was at `at_us` (see [`PastView`]).
    pub async fn past_view(&self, domain: &str, at_us: i64) -> Result<PastView, LedgerError> {
        let part = self
            .shared
            .routes
            .partition(domain)
            .ok_or_else(|| unknown_domain(domain))?;
        let (state, index, through) = {
            let read = part.indexed().await;
            read.domain().ok_or_else(|| unknown_domain(domain))?;
            (read.state.clone(), read.index.clone(), read.checkpoint)
        };
        let mut view = PastView {
            state,
            index,
            domain: domain.to_string(),
            changed: BTreeMap::new(),
            large_fold: None,
        };
        let position = self.log().position_at(at_us);
        // Before its registration the domain did not exist: the same answer as license usage
        // as of then (NOT_FOUND), not an empty list.
        let registered = self
            .log()
            .stream_positions(&StreamId::Domain(domain.to_string()))
            .first()
            .copied()
            .unwrap_or(0);
        if position < registered {
            return Err(unknown_domain(domain));
        }
        if position >= through {
            return Ok(view);
        }
        // Ascending, as the fold's rows and the view's map are (creation order is, within a
        // domain; sorted anyway, as that costs one pass over sorted numbers).
        let mut ids: Vec<AccountId> = view
            .state
            .domain_accounts
            .get(domain)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        ids.sort_unstable();
        // The accounts that differ then are those with events after the instant (created
        // after it included: they did not exist). A short tail of the log names them for
        // less than asking the stream index about every account of the domain.
        let touched = if (through - position) * INDEX_LOOKUPS_PER_EVENT_READ <= ids.len() as u64 {
            self.accounts_touched(&view.state, position, through)
                .await?
        } else {
            self.log().accounts_changed_after(&ids, position)
        };
        debug_assert!(
            touched.windows(2).all(|w| w[0] < w[1]),
            "the merge below needs it"
        );
        // Several auditors' old instants in a large district must not each fold a copy at
        // once: the view keeps its turn until it is dropped (a page) or gives it up (an
        // export, once folded).
        // Accounts created since count too: an upper bound of the rows folded.
        if touched.len() > LARGE_FOLD {
            view.large_fold = self.shared.large_folds.clone().acquire_owned().await.ok();
        }
        // Both ascend by account number: the fold's map is consumed (and freed) as the view's
        // is built, not held beside it.
        let mut past = self
            .fold_accounts(&touched, position)
            .await?
            .into_iter()
            .peekable();
        view.changed = touched
            .into_iter()
            .map(|id| {
                let mut row = past.next_if(|(p, _)| *p == id).map(|(_, row)| row);
                // A profile unchanged since then shares the current row's bytes.
                if let (Some(row), Some(now)) = (row.as_mut(), view.state.account(id))
                    && row.profile == now.profile
                {
                    row.profile = now.profile.clone();
                }
                (id, row)
            })
            .collect();
        Ok(view)
    }

    /// Accounts of `state` with events in `from + 1 ..= to`, ascending.
    async fn accounts_touched(
        &self,
        state: &LedgerState,
        from: u64,
        to: u64,
    ) -> Result<Vec<AccountId>, LedgerError> {
        let mut touched = Vec::new();
        let mut next = from + 1;
        while next <= to {
            let events = self.log().read_range(next, to, 16384).await?;
            let Some(last) = events.last() else { break };
            next = last.position + 1;
            touched.extend(
                events
                    .iter()
                    .filter_map(|e| e.event.account())
                    .filter(|id| state.account(*id).is_some()),
            );
        }
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }
}
