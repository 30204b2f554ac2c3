//! `decide`: the rules of DOMAIN.md, as a pure function of the current state and one command.

use super::names::{validate_domain_name, validate_free_text, validate_text};
use super::schedule::{Change, Phase, Schedule, ScheduleId, ScheduleStatus, Selection, Target};
use super::{
    AccountState, Command, DomainError, DomainState, Event, LedgerState, PackedProfile, Profile,
    SharedName,
};

/// Decide what happens. `Ok(vec![])` means the command is a no-op (already so).
pub fn decide(state: &LedgerState, command: &Command) -> Result<Vec<Event>, DomainError> {
    match command {
        Command::RegisterDomain {
            domain,
            license_limit,
        } => {
            validate_domain_name(domain)?;
            if state.domains.contains_key(domain) {
                return Err(DomainError::DomainExists {
                    domain: domain.clone(),
                });
            }
            Ok(vec![Event::DomainRegistered {
                domain: domain.clone(),
                license_limit: *license_limit,
            }])
        }
        Command::SetLicenseLimit {
            domain,
            license_limit,
        } => {
            let d = domain_of(state, domain)?;
            if d.license_limit == *license_limit {
                return Ok(vec![]);
            }
            if *license_limit < d.licenses_used {
                return Err(DomainError::LimitBelowUsage {
                    domain: domain.clone(),
                    limit: *license_limit,
                    used: d.licenses_used,
                });
            }
            Ok(vec![Event::LicenseLimitChanged {
                domain: domain.clone(),
                license_limit: *license_limit,
            }])
        }
        Command::SetMassChangeGuard { domain, percent } => {
            let d = domain_of(state, domain)?;
            if *percent > 100 {
                return Err(DomainError::Invalid {
                    field: "percent",
                    reason: format!("{percent} is more than 100"),
                });
            }
            if d.mass_change_percent == *percent {
                return Ok(vec![]);
            }
            Ok(vec![Event::MassChangeGuardChanged {
                domain: domain.clone(),
                percent: *percent,
            }])
        }
        Command::CreateAccount {
            domain,
            account,
            import_id,
            profile,
            role,
            enabled,
        } => {
            let d = domain_of(state, domain)?;
            validate_profile(profile)?;
            validate_name("role", role)?;
            if let Some(iid) = import_id {
                validate_name("import_id", iid)?;
                if state.account_by_import_id(domain, iid).is_some() {
                    return Err(DomainError::ImportIdTaken {
                        domain: domain.clone(),
                        import_id: iid.clone(),
                    });
                }
            }
            if state.account_by_login(domain, &profile.login).is_some() {
                return Err(DomainError::LoginTaken {
                    domain: domain.clone(),
                    login: profile.login.clone(),
                });
            }
            if state.accounts.contains_key(account) {
                return Err(DomainError::Invalid {
                    field: "account",
                    reason: format!("account number {account} is already used"),
                });
            }
            if *enabled {
                check_license_free(d)?;
            }
            Ok(vec![Event::AccountCreated {
                account: *account,
                domain: SharedName::new(domain),
                import_id: import_id.clone(),
                profile: PackedProfile::new(profile),
                role: SharedName::new(role),
                enabled: *enabled,
            }])
        }
        Command::UpdateProfile {
            account,
            profile,
            role,
        } => {
            let acc = live_account(state, *account)?;
            validate_profile(profile)?;
            validate_name("role", role)?;
            if acc.profile == *profile && acc.role == *role {
                return Ok(vec![]);
            }
            if let Some(other) = state.account_by_login(&acc.domain, &profile.login)
                && other.id != acc.id
            {
                return Err(DomainError::LoginTaken {
                    domain: acc.domain.to_string(),
                    login: profile.login.clone(),
                });
            }
            Ok(vec![Event::ProfileUpdated {
                account: *account,
                profile: PackedProfile::new(profile),
                role: SharedName::new(role),
            }])
        }
        Command::Disable { account } => {
            let acc = live_account(state, *account)?;
            Ok(if acc.enabled {
                vec![Event::AccountDisabled { account: *account }]
            } else {
                vec![]
            })
        }
        Command::Enable { account } => set_flags(state, *account, true),
        Command::Reactivate { account, enabled } => set_flags(state, *account, *enabled),
        Command::Deactivate { account } => {
            let acc = live_account(state, *account)?;
            Ok(if acc.active {
                vec![Event::AccountDeactivated { account: *account }]
            } else {
                vec![]
            })
        }
        Command::Delete { account } => {
            live_account(state, *account)?;
            Ok(vec![Event::AccountDeleted { account: *account }])
        }
        Command::RecordSignIn { account, at_us } => {
            live_account(state, *account)?;
            Ok(vec![Event::SignInRecorded {
                account: *account,
                at_us: *at_us,
            }])
        }
        Command::RecordDataOwned { account } => {
            let acc = live_account(state, *account)?;
            Ok(if acc.owns_data {
                vec![]
            } else {
                vec![Event::DataOwnershipRecorded { account: *account }]
            })
        }
        Command::ScheduleChange {
            domain,
            target,
            change,
            reason,
        } => {
            let d = domain_of(state, domain)?;
            validate_reason(reason)?;
            if let Change::Disable {
                at_us,
                until_us: Some(until),
            } = change
                && until <= at_us
            {
                return Err(DomainError::Invalid {
                    field: "until",
                    reason: "must be after the disable instant".into(),
                });
            }
            let Some(selection) = select(state, domain, target)? else {
                return Ok(vec![]);
            };
            // Checked: a saturated id would replace the schedule that holds it.
            let schedule = match d.schedules.keys().next_back() {
                None => 1,
                Some(last) => last.checked_add(1).ok_or_else(|| DomainError::Invalid {
                    field: "schedule",
                    reason: "the domain's schedule numbers are used up".into(),
                })?,
            };
            Ok(vec![Event::ChangeScheduled {
                domain: domain.clone(),
                schedule,
                selection,
                change: *change,
                reason: reason.clone(),
            }])
        }
        Command::RecordImportJob {
            domain,
            job,
            row_errors,
        } => {
            let d = domain_of(state, domain)?;
            if d.import_jobs.iter().any(|j| j.job_id == job.job_id) {
                // Recorded already (a retry): nothing new.
                return Ok(vec![]);
            }
            let mut events = vec![Event::ImportJobRecorded {
                domain: domain.clone(),
                job: job.clone(),
            }];
            if !row_errors.is_empty() {
                events.push(Event::ImportRowErrorsRecorded {
                    domain: domain.clone(),
                    job: job.job_id,
                    errors: row_errors.clone(),
                });
            }
            Ok(events)
        }
        Command::SetDeletionGrace { domain, grace_us } => {
            let d = domain_of(state, domain)?;
            if !(0..=MAX_DELETION_GRACE_US).contains(grace_us) {
                return Err(DomainError::Invalid {
                    field: "grace_seconds",
                    reason: "must be between 0 and 365 days".into(),
                });
            }
            if d.deletion_grace_us == *grace_us {
                return Ok(vec![]);
            }
            Ok(vec![Event::DeletionGraceChanged {
                domain: domain.clone(),
                grace_us: *grace_us,
            }])
        }
        Command::CancelSchedule {
            domain,
            schedule,
            reason,
        } => {
            validate_reason(reason)?;
            let s = open_schedule(state, domain, *schedule, "cancelled", |st| {
                matches!(st, ScheduleStatus::Pending | ScheduleStatus::Started)
            })?;
            Ok(vec![Event::ScheduleCancelled {
                domain: domain.clone(),
                schedule: s.id,
                reason: reason.clone(),
            }])
        }
        Command::FireSchedule {
            domain,
            schedule,
            phase,
            changed,
            not_enabled,
        } => {
            let s = open_schedule(state, domain, *schedule, "fired", |st| {
                st == match phase {
                    Phase::Start => ScheduleStatus::Pending,
                    Phase::End => ScheduleStatus::Started,
                }
            })?;
            // The firing's commands follow this marker in one batch: they are exactly what
            // the current state plans, or the batch is refused and planned again. So a
            // firing never acts on what its plan did not see (an account brought back,
            // signed in, held by an import or another schedule since), and what it leaves
            // to another schedule is worked out on the same state (evolve's hand-over).
            let now = super::schedule::plan_firing(state, domain, *schedule, *phase);
            if now.is_none_or(|f| f.changed != *changed || f.not_enabled != *not_enabled) {
                return Err(DomainError::FiringOutdated {
                    domain: domain.clone(),
                    schedule: *schedule,
                });
            }
            Ok(vec![Event::ScheduleFired {
                domain: domain.clone(),
                schedule: s.id,
                phase: *phase,
                changed: changed.clone(),
                not_enabled: not_enabled.clone(),
            }])
        }
        Command::HoldImport {
            domain,
            schedule,
            enable,
            keep_disabled,
        } => {
            // Refused once the schedule ended (fired or cancelled after the import was
            // planned): recorded there, the hold would keep its accounts disabled for good.
            let s = open_schedule(state, domain, *schedule, "held", |status| {
                matches!(status, ScheduleStatus::Pending | ScheduleStatus::Started)
            })?;
            let enable = accounts_of_import_ids(state, domain, enable, true)?;
            let keep_disabled = accounts_of_import_ids(state, domain, keep_disabled, true)?;
            if enable.is_empty() && keep_disabled.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::ImportHeld {
                domain: domain.clone(),
                schedule: s.id,
                enable,
                keep_disabled,
            }])
        }
    }
}

/// The longest deletion grace period a domain may set.
pub const MAX_DELETION_GRACE_US: i64 = 365 * 86_400 * 1_000_000;

/// A schedule of `domain` whose status passes `open`; otherwise the error says why.
fn open_schedule<'a>(
    state: &'a LedgerState,
    domain: &str,
    id: ScheduleId,
    action: &'static str,
    open: impl Fn(ScheduleStatus) -> bool,
) -> Result<&'a Schedule, DomainError> {
    let d = domain_of(state, domain)?;
    let s = d
        .schedules
        .get(&id)
        .ok_or_else(|| DomainError::UnknownSchedule {
            domain: domain.to_string(),
            schedule: id,
        })?;
    if !open(s.status) {
        return Err(DomainError::ScheduleNotOpen {
            domain: domain.to_string(),
            schedule: id,
            status: s.status.as_str(),
            action,
        });
    }
    Ok(s)
}

/// The stored selection of a target: live accounts of `domain` only. None when an import's
/// own target resolved to no account (nothing to schedule).
fn select(
    state: &LedgerState,
    domain: &str,
    target: &Target,
) -> Result<Option<Selection>, DomainError> {
    let mut ids = match target {
        Target::Everyone => return Ok(Some(Selection::Everyone)),
        Target::Role(role) => {
            validate_name("role", role)?;
            return Ok(Some(Selection::Role(role.clone())));
        }
        Target::Accounts(ids) => {
            for id in ids {
                // Another domain's account is unknown here, deleted or not: its state is
                // not this domain's to learn.
                if state.account(*id).is_none_or(|a| a.domain != domain) {
                    return Err(DomainError::UnknownAccount { account: *id });
                }
                live_account(state, *id)?;
            }
            ids.clone()
        }
        Target::ImportIds { ids, skip_unknown } => {
            let out = accounts_of_import_ids(state, domain, ids, *skip_unknown)?;
            if out.is_empty() && *skip_unknown {
                return Ok(None);
            }
            out
        }
    };
    if ids.is_empty() {
        return Err(DomainError::Invalid {
            field: "selection",
            reason: "no account selected".into(),
        });
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(Some(Selection::Accounts(ids)))
}

/// The live accounts of `domain` with these import ids. An unknown id is left out with
/// `skip_unknown` (an import's own commands, whose refused rows created nothing), else refused.
fn accounts_of_import_ids(
    state: &LedgerState,
    domain: &str,
    ids: &[String],
    skip_unknown: bool,
) -> Result<Vec<u64>, DomainError> {
    let mut out = Vec::with_capacity(ids.len());
    for iid in ids {
        match state.account_by_import_id(domain, iid) {
            Some(acc) => out.push(acc.id),
            None if skip_unknown => {}
            None => {
                return Err(DomainError::Invalid {
                    field: "import_ids",
                    reason: format!("domain {domain:?} has no account with import id {iid:?}"),
                });
            }
        }
    }
    Ok(out)
}

fn validate_reason(reason: &str) -> Result<(), DomainError> {
    if reason.len() > 1000 {
        return Err(DomainError::Invalid {
            field: "reason",
            reason: "longer than 1000 bytes".into(),
        });
    }
    validate_free_text("reason", reason)
}

/// Make the account active with the given `enabled` flag; refuse if that would take a license
/// the domain does not have.
fn set_flags(state: &LedgerState, account: u64, enabled: bool) -> Result<Vec<Event>, DomainError> {
    let acc = live_account(state, account)?;
    let mut events = Vec::new();
    if !acc.active {
        events.push(Event::AccountReactivated { account });
    }
    if acc.enabled != enabled {
        events.push(if enabled {
            Event::AccountEnabled { account }
        } else {
            Event::AccountDisabled { account }
        });
    }
    let takes_after = enabled;
    if takes_after && !acc.takes_license() {
        check_license_free(domain_of(state, &acc.domain)?)?;
    }
    Ok(events)
}

fn check_license_free(d: &DomainState) -> Result<(), DomainError> {
    if d.licenses_used >= d.license_limit {
        return Err(DomainError::LicenseLimitReached {
            domain: d.name.clone(),
            limit: d.license_limit,
            used: d.licenses_used,
        });
    }
    Ok(())
}

fn domain_of<'a>(state: &'a LedgerState, domain: &str) -> Result<&'a DomainState, DomainError> {
    state
        .domains
        .get(domain)
        .ok_or_else(|| DomainError::UnknownDomain {
            domain: domain.to_string(),
        })
}

/// An account that exists and is not deleted (Deleted is terminal).
fn live_account(state: &LedgerState, account: u64) -> Result<&AccountState, DomainError> {
    let acc = state
        .accounts
        .get(&account)
        .ok_or(DomainError::UnknownAccount { account })?;
    if acc.deleted {
        return Err(DomainError::AccountDeleted { account });
    }
    Ok(acc)
}

fn validate_name(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.len() > 256 {
        return Err(DomainError::Invalid {
            field,
            reason: "longer than 256 bytes".into(),
        });
    }
    validate_text(field, value)
}

fn validate_profile(p: &Profile) -> Result<(), DomainError> {
    validate_name("login", &p.login)?;
    for (field, v) in [
        ("first_name", &p.first_name),
        ("last_name", &p.last_name),
        ("email", &p.email),
    ] {
        if v.len() > 256 {
            return Err(DomainError::Invalid {
                field,
                reason: "longer than 256 bytes".into(),
            });
        }
        if field == "email" {
            validate_text(field, v)?;
        } else {
            validate_free_text(field, v)?;
        }
    }
    if !p.email.is_empty() && !p.email.contains('@') {
        return Err(DomainError::Invalid {
            field: "email",
            reason: format!("{:?} is not an email address", p.email),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(events: &[Event]) -> LedgerState {
        let mut s = LedgerState::default();
        for e in events {
            s.evolve(e);
        }
        s
    }

    fn domain(limit: u32) -> Event {
        Event::DomainRegistered {
            domain: "d".into(),
            license_limit: limit,
        }
    }

    fn created(id: u64, enabled: bool) -> Event {
        Event::AccountCreated {
            account: id,
            domain: "d".into(),
            import_id: Some(format!("i{id}")),
            profile: PackedProfile::new(&Profile {
                login: format!("u{id}"),
                ..Default::default()
            }),
            role: "student".into(),
            enabled,
        }
    }

    #[test]
    fn enabling_past_the_limit_is_refused_with_limit_and_count() {
        let s = given(&[domain(1), created(0, true), created(1, false)]);
        let err = decide(&s, &Command::Enable { account: 1 }).unwrap_err();
        assert_eq!(
            err,
            DomainError::LicenseLimitReached {
                domain: "d".into(),
                limit: 1,
                used: 1
            }
        );
        assert!(err.to_string().contains("1 of 1"));
    }

    #[test]
    fn disable_twice_is_a_no_op() {
        let s = given(&[domain(5), created(0, false)]);
        assert_eq!(decide(&s, &Command::Disable { account: 0 }), Ok(vec![]));
    }

    #[test]
    fn deleted_is_terminal() {
        let s = given(&[
            domain(5),
            created(0, true),
            Event::AccountDeleted { account: 0 },
        ]);
        for cmd in [
            Command::Enable { account: 0 },
            Command::Delete { account: 0 },
            Command::RecordSignIn {
                account: 0,
                at_us: 1,
            },
        ] {
            assert_eq!(
                decide(&s, &cmd),
                Err(DomainError::AccountDeleted { account: 0 })
            );
        }
        assert_eq!(s.domains["d"].licenses_used, 0);
        assert!(s.account_by_import_id("d", "i0").is_none());
    }

    #[test]
    fn manual_enable_reactivates_a_deactivated_account() {
        let s = given(&[
            domain(5),
            created(0, false),
            Event::AccountDeactivated { account: 0 },
        ]);
        assert_eq!(
            decide(&s, &Command::Enable { account: 0 }),
            Ok(vec![
                Event::AccountReactivated { account: 0 },
                Event::AccountEnabled { account: 0 }
            ])
        );
    }

    #[test]
    fn status_precedence() {
        let s = given(&[
            domain(5),
            created(0, false),
            Event::AccountDeactivated { account: 0 },
        ]);
        assert_eq!(s.accounts[&0].status(), crate::domain::Status::Deactivated);
    }

    #[test]
    fn limit_cannot_drop_below_usage() {
        let s = given(&[domain(2), created(0, true), created(1, true)]);
        assert!(matches!(
            decide(
                &s,
                &Command::SetLicenseLimit {
                    domain: "d".into(),
                    license_limit: 1
                }
            ),
            Err(DomainError::LimitBelowUsage { used: 2, .. })
        ));
    }
}
