//! The real binary as outside users meet it: `account-ledger serve` in a child process on a
//! free port (its operator token and stderr captured), and CLI invocations against it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// The operator token printed at first start (None on a restart).
    pub token: Option<String>,
    /// The server's stderr, line by line.
    pub stderr: Receiver<String>,
    /// Where `--metrics-listen` serves, when given.
    pub metrics: Option<SocketAddr>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(data: &Path, listen: &str, extra: &[&str]) -> Child {
    spawn_with_env(data, listen, extra, &[])
}

/// [`spawn`] with extra environment variables.
pub fn spawn_with_env(data: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data)
        .args(extra)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve")
}

impl Served {
    /// Start `serve` and wait until it listens.
    pub fn start(data: &Path, listen: &str, extra: &[&str]) -> Served {
        Served::start_with_env(data, listen, extra, &[])
    }

    /// [`Served::start`] with extra environment variables.
    pub fn start_with_env(
        data: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Served {
        let mut child = spawn_with_env(data, listen, extra, env);
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
            let mut metrics = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.strip_prefix("export ACCOUNT_LEDGER_TOKEN=") {
                    token = Some(t.to_string());
                }
                if let Some(m) = line.strip_prefix("metrics on http://") {
                    metrics = m.trim_end_matches("/metrics").parse::<SocketAddr>().ok();
                }
                if let Some(addr) = line.strip_prefix("account-ledger listening on ") {
                    let _ = tx.send((addr.parse::<SocketAddr>().unwrap(), token.clone(), metrics));
                }
            }
        });
        let (addr, token, metrics) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its address");
        Served {
            child,
            addr,
            token,
            stderr: err_rx,
            metrics,
        }
    }

    /// Run the CLI against this server with `token`: (exit code, stdout, stderr).
    pub fn cli(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        cli(&format!("http://{}", self.addr), token, args, &[])
    }

    /// With the operator token `op`: register `domain` (license limit 10) and return a new
    /// domain-admin token for it (principal "ada").
    pub fn domain_admin(&self, op: &str, domain: &str) -> String {
        let (code, _, err) = self.cli(op, &["domain", "create", domain, "--limit", "10"]);
        assert_eq!(code, 0, "{err}");
        let (code, token, err) = self.cli(
            op,
            &[
                "token",
                "add",
                "--principal",
                "ada",
                "--role",
                "domain-admin",
                "--domain",
                domain,
            ],
        );
        assert_eq!(code, 0, "{err}");
        token.trim().to_string()
    }

    /// Server stderr lines written so far (waits up to `quiet` for each next line).
    pub fn stderr_lines(&self, quiet: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(l) = self.stderr.recv_timeout(quiet) {
            lines.push(l);
        }
        lines
    }
}

/// Run the CLI with `ACCOUNT_LEDGER_SERVER`/`_TOKEN` set and extra environment.
pub fn cli(
    server: &str,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_account-ledger"))
        .args(args)
        .env("ACCOUNT_LEDGER_SERVER", server)
        .env("ACCOUNT_LEDGER_TOKEN", token)
        .envs(env.iter().copied())
        .output()
        .expect("run the CLI");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
