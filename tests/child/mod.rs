//! The crash tests' writer: the test binary re-run as a child process (one test, selected by an
//! environment variable the test checks first), its stdout read line by line, and kill -9.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

pub struct Child {
    proc: std::process::Child,
    lines: Receiver<String>,
}

impl Child {
    /// Run this test binary's `test` alone, with `key` set to `dir` in its environment.
    pub fn spawn(test: &str, key: &str, dir: &Path) -> Child {
        let mut proc = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(key, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = proc.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Child { proc, lines }
    }

    /// Wait (up to a minute) for a line containing `marker`, dropping the lines before it.
    pub fn wait_for(&self, marker: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(l) if l.contains(marker) => return,
                Ok(_) => continue,
                Err(e) => panic!("the child printed no {marker:?}: {e}"),
            }
        }
    }

    /// kill -9; then every line it printed before dying (each one was written before the kill).
    pub fn kill(mut self) -> Vec<String> {
        self.proc.kill().expect("kill -9");
        let _ = self.proc.wait();
        let mut printed = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            printed.push(line);
        }
        printed
    }
}
