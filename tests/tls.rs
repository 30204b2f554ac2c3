//! The network edge of the real binary: gRPC over TLS (certificates made here with rcgen),
//! optional client certificates, and no plaintext on a non-loopback address unless
//! `--insecure` (which warns).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

struct Server {
    child: Child,
    addr: SocketAddr,
    token: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data: &Path, listen: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data)
        .args(extra)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn started(data: &Path, listen: &str, extra: &[&str]) -> Server {
    let mut child = spawn(data, listen, extra);
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut token = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.strip_prefix("export ACCOUNT_LEDGER_TOKEN=") {
                token = Some(t.to_string());
            }
            if let Some(addr) = line.strip_prefix("account-ledger listening on ") {
                let _ = tx.send((addr.parse::<SocketAddr>().unwrap(), token.clone()));
            }
        }
    });
    let (addr, token) = rx.recv_timeout(Duration::from_secs(30)).expect("listening");
    Server {
        child,
        addr,
        token: token.unwrap(),
        stderr: err_rx,
    }
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
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
            ("ACCOUNT_LEDGER_TOKEN", &server.token),
            ("ACCOUNT_LEDGER_TLS_CA", ca.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{out}");
    // A plaintext client gets nothing.
    let (code, out) = cli(
        &["domain", "create", "d2", "--limit", "5"],
        &[
            ("ACCOUNT_LEDGER_SERVER", &format!("http://{}", server.addr)),
            ("ACCOUNT_LEDGER_TOKEN", &server.token),
        ],
    );
    assert_ne!(code, 0, "{out}");
    // https without a CA: told what is missing.
    let (code, out) = cli(
        &["domain", "create", "d3", "--limit", "5"],
        &[
            ("ACCOUNT_LEDGER_SERVER", &https),
            ("ACCOUNT_LEDGER_TOKEN", &server.token),
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
        ("ACCOUNT_LEDGER_TOKEN", server.token.as_str()),
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
