//! The network edge of the real binary: gRPC over TLS (certificates made here with rcgen),
//! optional client certificates, and no plaintext on a non-loopback address unless
//! `--insecure` (which warns).

mod served;

use std::path::{Path, PathBuf};
use std::time::Duration;

use served::{Served, spawn};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, san) in [("server", "127.0.0.1"), ("client", "client.example")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![san.to_string()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn started(data: &Path, listen: &str, extra: &[&str]) -> Served {
    Served::start(data, listen, extra)
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    // The server and token come from `env` (ACCOUNT_LEDGER_SERVER / _TOKEN).
    let (code, out, err) = served::cli("", "", args, env);
    (code, format!("{out}{err}"))
}

#[test]
fn commands_travel_over_tls_and_plaintext_clients_are_not_served() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let cert = pki.path("server.pem");
    let key = pki.path("server.key");
    let server = started(
        data.path(),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let https = format!("https://{}", server.addr);
    let ca = pki.path("ca.pem");
    let (code, out) = cli(
        &["domain", "create", "d1", "--limit", "5"],
        &[
            ("ACCOUNT_LEDGER_SERVER", &https),
            ("ACCOUNT_LEDGER_TOKEN", &server.token.clone().unwrap()),
            ("ACCOUNT_LEDGER_TLS_CA", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}");
    // A plaintext client gets nothing.
    let (code, out) = cli(
        &["domain", "create", "d2", "--limit", "5"],
        &[
            ("ACCOUNT_LEDGER_SERVER", &format!("http://{}", server.addr)),
            ("ACCOUNT_LEDGER_TOKEN", &server.token.clone().unwrap()),
        ],
    );
    assert_ne!(code, 0, "{out}");
    // https without a CA: told what is missing.
    let (code, out) = cli(
        &["domain", "create", "d3", "--limit", "5"],
        &[
            ("ACCOUNT_LEDGER_SERVER", &https),
            ("ACCOUNT_LEDGER_TOKEN", &server.token.clone().unwrap()),
        ],
    );
    assert_ne!(code, 0);
    assert!(out.contains("--tls-ca"), "{out}");
}

#[test]
fn a_required_client_certificate_is_checked() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let p = |n: &str| pki.path(n).to_str().unwrap().to_string();
    let server = started(
        data.path(),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
    );
    let https = format!("https://{}", server.addr);
    let base = [
        ("ACCOUNT_LEDGER_SERVER", https.as_str()),
        ("ACCOUNT_LEDGER_TOKEN", server.token.as_deref().unwrap()),
    ];
    let ca = p("ca.pem");
    let mut without = base.to_vec();
    without.push(("ACCOUNT_LEDGER_TLS_CA", &ca));
    let (code, out) = cli(&["domain", "create", "d1", "--limit", "5"], &without);
    assert_ne!(code, 0, "no client certificate: {out}");
    let (cert, key) = (p("client.pem"), p("client.key"));
    let mut with = without.clone();
    with.push(("ACCOUNT_LEDGER_TLS_CLIENT_CERT", &cert));
    with.push(("ACCOUNT_LEDGER_TLS_CLIENT_KEY", &key));
    let (code, out) = cli(&["domain", "create", "d1", "--limit", "5"], &with);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn plaintext_on_a_non_loopback_address_needs_insecure_and_warns() {
    let data = tempfile::tempdir().unwrap();
    let out = spawn(data.path(), "0.0.0.0:0", &[])
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--insecure") && err.contains("--tls-cert"),
        "{err}"
    );
    let server = started(data.path(), "0.0.0.0:0", &["--insecure"]);
    let warned = (0..50).any(|_| {
        server
            .stderr
            .recv_timeout(Duration::from_millis(100))
            .is_ok_and(|l| l.contains("WARN") && l.contains("without TLS"))
    });
    assert!(warned, "a warning is logged");
}
