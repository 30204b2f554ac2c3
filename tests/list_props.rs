//! Property tests of account lists: the indexed, cursor-paged ListAccounts (now and as of an
//! instant) answers exactly what a brute-force scan of the views answers, for random accounts,
//! statuses, roles, searches and instants; a deleted account is found by no search term.

mod support;

use std::collections::HashMap;

use account_ledger::domain::{AccountState, Command, LedgerState, Profile, Status};
use account_ledger::ledger::{Ledger, LedgerError, Request};
use account_ledger::queries::{AccountFilter, AccountPage, PageStart};
use proptest::prelude::*;

const DOMAINS: [&str; 2] = ["north", "south"];
const FIRST: [&str; 5] = ["Ann", "Anna", "Bob", "Mary Ann", "Zoë"];
const LAST: [&str; 3] = ["Smith", "Smithers", "Jones"];
const ROLES: [&str; 3] = ["student", "teacher", "Staff"];
const SEARCHES: [&str; 10] = [
    "an",
    "ann",
    "mary ann",
    "smith",
    "SMITHERS",
    "zo",
    "user1",
    "sis-",
    "jones bob",
    "x",
];

#[derive(Debug, Clone)]
enum Op {
    Create {
        domain: usize,
        first: usize,
        last: usize,
        role: usize,
        enabled: bool,
    },
    Update(usize, usize, usize, usize),
    Enable(usize),
    Disable(usize),
    Deactivate(usize),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..2usize, 0..5usize, 0..3usize, 0..3usize, any::<bool>()).prop_map(
            |(domain, first, last, role, enabled)| Op::Create { domain, first, last, role, enabled }
        ),
        1 => (any::<usize>(), 0..5usize, 0..3usize, 0..3usize)
            .prop_map(|(i, f, l, r)| Op::Update(i, f, l, r)),
        2 => any::<usize>().prop_map(Op::Enable),
        2 => any::<usize>().prop_map(Op::Disable),
        1 => any::<usize>().prop_map(Op::Deactivate),
        1 => any::<usize>().prop_map(Op::Delete),
    ]
}

fn filter() -> impl Strategy<Value = AccountFilter> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0..SEARCHES.len()),
        prop::option::of(0..ROLES.len()),
    )
        .prop_map(|(dis, deact, search, role)| AccountFilter {
            include_disabled: dis,
            include_deactivated: deact,
            search: search.map(|i| SEARCHES[i].to_string()),
            // Asked in another case than stored: roles match case-insensitively.
            role: role.map(|i| ROLES[i].to_uppercase()),
        })
}

fn profile(n: usize, first: usize, last: usize) -> Profile {
    Profile {
        login: format!("user{n}"),
        first_name: FIRST[first].into(),
        last_name: LAST[last].into(),
        email: format!("user{n}@school.example"),
    }
}

/// The listing rule restated plainly, row by row.
fn brute_matches(f: &AccountFilter, a: &AccountState) -> bool {
    let shown = match a.status() {
        Status::Enabled => true,
        Status::Disabled => f.include_disabled,
        Status::Deactivated => f.include_deactivated,
        Status::Deleted => false,
    };
    let role = f
        .role
        .as_ref()
        .is_none_or(|r| r.to_lowercase() == a.role.to_lowercase());
    let p = &a.profile;
    let mut tokens: Vec<String> = vec![
        p.login().to_lowercase(),
        p.email().to_lowercase(),
        a.import_id.clone().unwrap_or_default().to_lowercase(),
    ];
    for name in [p.first_name(), p.last_name()] {
        tokens.extend(name.split_whitespace().map(str::to_lowercase));
    }
    let search = f.search.as_deref().unwrap_or("").to_lowercase();
    let found = search
        .split_whitespace()
        .all(|w| tokens.iter().any(|t| !t.is_empty() && t.starts_with(w)));
    shown && role && found
}

fn brute_list(state: &LedgerState, domain: &str, f: &AccountFilter) -> Vec<AccountState> {
    state
        .domain_accounts
        .get(domain)
        .into_iter()
        .flatten()
        .map(|id| (*state.accounts[id]).clone())
        .filter(|a| brute_matches(f, a))
        .collect()
}

/// Every page, following the cursor; checks each page's total.
async fn walk(
    ledger: &Ledger,
    domain: &str,
    f: &AccountFilter,
    at: Option<i64>,
    limit: usize,
    want_total: usize,
) -> Result<Vec<AccountState>, TestCaseError> {
    let mut all = Vec::new();
    let mut start = PageStart::default();
    loop {
        let page: AccountPage = match at {
            None => ledger.list_accounts(domain, f, start, limit).await.unwrap(),
            Some(at) => ledger
                .list_accounts_as_of(domain, f, at, start, limit)
                .await
                .unwrap(),
        };
        prop_assert_eq!(page.total as usize, want_total);
        prop_assert!(page.accounts.len() <= limit);
        all.extend(page.accounts);
        match page.next_after {
            Some(after) => start.after = after,
            None => return Ok(all),
        }
        prop_assert!(all.len() <= want_total, "the cursor runs past the total");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn indexed_pages_equal_a_brute_force_scan_now_and_as_of(
        ops in prop::collection::vec(op(), 1..70),
        filters in prop::collection::vec(filter(), 1..6),
        limit in 1..7usize,
        skip in 0..4usize,
        probes in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        support::run(async {
            let (_dir, ledger) = support::open().await;
            for d in DOMAINS {
                support::register(&ledger, d, 1000).await;
            }
            let mut created: Vec<u64> = Vec::new();
            let mut profiles: HashMap<u64, Profile> = HashMap::new();
            for (n, op) in ops.iter().enumerate() {
                let pick = |i: &usize| created.get(i % created.len().max(1)).copied();
                let cmd = match op {
                    Op::Create { domain, first, last, role, enabled } => Command::CreateAccount {
                        domain: DOMAINS[*domain].into(),
                        account: 0,
                        import_id: Some(format!("sis-{n}")),
                        profile: profile(n, *first, *last),
                        role: ROLES[*role].into(),
                        enabled: *enabled,
                    },
                    Op::Update(i, f, l, r) => match pick(i) {
                        Some(account) => Command::UpdateProfile {
                            account,
                            profile: profile(n, *f, *l),
                            role: ROLES[*r].into(),
                        },
                        None => continue,
                    },
                    Op::Enable(i) => match pick(i) { Some(account) => Command::Enable { account }, None => continue },
                    Op::Disable(i) => match pick(i) { Some(account) => Command::Disable { account }, None => continue },
                    Op::Deactivate(i) => match pick(i) { Some(account) => Command::Deactivate { account }, None => continue },
                    Op::Delete(i) => match pick(i) { Some(account) => Command::Delete { account }, None => continue },
                };
                let given = match &cmd {
                    Command::CreateAccount { profile, .. } | Command::UpdateProfile { profile, .. } => Some(profile.clone()),
                    _ => None,
                };
                match ledger.execute(Request::manual("admin", cmd)).await {
                    Ok(done) => {
                        if let Some(id) = done.account {
                            if !created.contains(&id) {
                                created.push(id);
                            }
                            if let Some(p) = given {
                                profiles.insert(id, p);
                            }
                        }
                    }
                    Err(LedgerError::Domain(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }

            let now = ledger.state_snapshot();
            for f in &filters {
                for d in DOMAINS {
                    let want = brute_list(&now, d, f);
                    let got = walk(&ledger, d, f, None, limit, want.len()).await?;
                    prop_assert_eq!(&got, &want, "{} {:?}", d, f);
                    let first = ledger.list_accounts(d, f, PageStart { after: 0, skip }, limit).await.unwrap();
                    let expected: Vec<_> = want.iter().skip(skip).take(limit).cloned().collect();
                    prop_assert_eq!(first.accounts, expected);
                }
            }

            // As of instants between events: a fold of the log up to there.
            let log = ledger.read_log(1, u64::MAX, usize::MAX).await.unwrap();
            for probe in &probes {
                let at = probe.get(&log).recorded_at_us;
                let position = ledger.log().position_at(at);
                let mut then = LedgerState::default();
                for e in log.iter().take_while(|e| e.position <= position) {
                    then.evolve(&e.event);
                }
                for f in &filters {
                    for d in DOMAINS {
                        if !then.domains.contains_key(d) {
                            // Not registered yet: NOT_FOUND, as license usage answers.
                            let r = ledger.list_accounts_as_of(d, f, at, PageStart::default(), limit).await;
                            prop_assert!(r.is_err());
                            continue;
                        }
                        let want = brute_list(&then, d, f);
                        let got = walk(&ledger, d, f, Some(at), limit, want.len()).await?;
                        prop_assert_eq!(&got, &want, "{} as of {} {:?}", d, at, f);
                    }
                }
            }

            // After a restart the index is built with the loaded rows: the same pages.
            let dir = _dir;
            ledger.close().await.unwrap();
            drop(ledger);
            let ledger = Ledger::open(dir.path()).await.unwrap();
            for f in &filters {
                for d in DOMAINS {
                    let want = brute_list(&now, d, f);
                    let got = walk(&ledger, d, f, None, limit, want.len()).await?;
                    prop_assert_eq!(&got, &want, "after reopen: {} {:?}", d, f);
                }
            }

            // A deleted account is found by none of the words it ever had.
            let everything = AccountFilter { include_disabled: true, include_deactivated: true, ..Default::default() };
            for a in now.accounts.values().filter(|a| a.deleted) {
                let Some(p) = profiles.get(&a.id) else { continue };
                for word in [p.login.as_str(), p.email.as_str(), p.first_name.as_str(), p.last_name.as_str(), &p.login[..3]] {
                    let f = AccountFilter { search: Some(word.to_string()), ..everything.clone() };
                    let page = ledger.list_accounts(&a.domain, &f, PageStart::default(), 1000).await.unwrap();
                    prop_assert!(page.accounts.iter().all(|b| b.id != a.id), "deleted {} found by {:?}", a.id, word);
                }
            }
            Ok(())
        })?;
    }
}

/// An instant after which every account of the domain changed (disabled, deactivated, renamed,
/// or created later): each row is folded as it was then, and the pages equal a fold of the log
/// up to that instant.
#[test]
fn a_list_as_of_before_every_account_changed_shows_each_as_it_was() {
    support::run(async {
        let (_dir, ledger) = support::open().await;
        support::register(&ledger, "north", 1000).await;
        let mut ids = Vec::new();
        for n in 0..40 {
            ids.push(support::create(&ledger, "north", &format!("user{n}"), n % 5 != 0).await);
        }
        let log = ledger.read_log(1, u64::MAX, usize::MAX).await.unwrap();
        let before = log.last().unwrap().recorded_at_us;
        std::thread::sleep(std::time::Duration::from_millis(2));
        for (i, &account) in ids.iter().enumerate() {
            let command = match i % 3 {
                0 => Command::Disable { account },
                1 => Command::Deactivate { account },
                _ => Command::UpdateProfile {
                    account,
                    profile: support::profile(&format!("renamed{i}")),
                    role: "teacher".into(),
                },
            };
            ledger
                .execute(Request::manual("admin", command))
                .await
                .unwrap();
        }
        support::create(&ledger, "north", "late", true).await;

        let log = ledger.read_log(1, u64::MAX, usize::MAX).await.unwrap();
        let position = ledger.log().position_at(before);
        let mut then = LedgerState::default();
        for e in log.iter().take_while(|e| e.position <= position) {
            then.evolve(&e.event);
        }
        let every = AccountFilter {
            include_disabled: true,
            include_deactivated: true,
            ..AccountFilter::default()
        };
        for f in [AccountFilter::default(), every] {
            let want = brute_list(&then, "north", &f);
            let got = walk(&ledger, "north", &f, Some(before), 7, want.len())
                .await
                .unwrap();
            assert_eq!(got, want, "{f:?}");
        }
        let all = brute_list(
            &then,
            "north",
            &AccountFilter {
                include_disabled: true,
                include_deactivated: true,
                ..AccountFilter::default()
            },
        );
        assert_eq!(
            all.len(),
            40,
            "the accounts that existed then, none renamed"
        );
        assert!(all.iter().all(|a| a.profile.login().starts_with("user") && a.status() != Status::Deactivated));
    });
}
