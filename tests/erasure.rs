//! Crypto-shredding: personal data is never on disk in plain text, and after Delete neither the
//! data nor the account's key can be found anywhere in the data directory.

mod support;

use account_ledger::domain::{Command, Profile};
use account_ledger::ledger::{Ledger, Request};

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .find(|f| contains(&std::fs::read(f).unwrap(), needle))
}

#[tokio::test]
async fn deleting_an_account_leaves_neither_its_data_nor_its_key_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let email = "zebulon.quartermaine.4711@district.example";
    let login = "zquartermaine4711";
    let ledger = Ledger::open(dir.path()).await.unwrap();
    support::register(&ledger, "d", 5).await;
    let id = ledger
        .execute(Request::manual(
            "admin",
            Command::CreateAccount {
                domain: "d".into(),
                account: 0,
                import_id: Some("sis-4711".into()),
                profile: Profile {
                    login: login.into(),
                    first_name: "Zebulon".into(),
                    last_name: "Quartermaine".into(),
                    email: email.into(),
                },
                role: "student".into(),
                enabled: true,
            },
        ))
        .await
        .unwrap()
        .account
        .unwrap();
    // Keep someone else alive so the vault file is not trivially empty.
    support::create(&ledger, "d", "survivor", true).await;
    ledger.close().await.unwrap();
    drop(ledger);

    // At rest, personal data is encrypted even before deletion.
    assert_eq!(dir_contains(dir.path(), email.as_bytes()), None);
    assert_eq!(dir_contains(dir.path(), login.as_bytes()), None);
    let vault = std::fs::read(dir.path().join("keys.vault")).unwrap();
    let key = vault[id as usize * 32..(id as usize + 1) * 32].to_vec();
    assert!(key.iter().any(|b| *b != 0), "the account has a key");

    let ledger = Ledger::open(dir.path()).await.unwrap();
    assert_eq!(ledger.account(id).unwrap().profile.email(), email);
    ledger
        .execute(Request::manual("admin", Command::Delete { account: id }))
        .await
        .unwrap();
    ledger.close().await.unwrap();
    drop(ledger);

    assert_eq!(dir_contains(dir.path(), email.as_bytes()), None);
    assert_eq!(dir_contains(dir.path(), login.as_bytes()), None);
    assert_eq!(dir_contains(dir.path(), &key), None, "the key is destroyed");

    // The fact of the deletion stays; the person does not.
    let ledger = Ledger::open(dir.path()).await.unwrap();
    let history = ledger.account_history(id).await.unwrap();
    assert_eq!(history.last().unwrap().event.kind(), "AccountDeleted");
    assert_eq!(&*history.last().unwrap().actor, "admin");
    match &history[0].event {
        account_ledger::domain::Event::AccountCreated { profile, .. } => {
            assert!(profile.is_erased())
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(ledger.verify_projections().await.unwrap().equal);
}
