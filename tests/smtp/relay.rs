//! The delivery tests' relay (`server.py` beside this file: aiosmtpd, from
//! Debian's python3-aiosmtpd, which scripts/setup.sh installs) on
//! loopback, for `tests/send.rs` and the bench's `send` part.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Server {
    /// A relay on `port` (0: any free one) keeping what it receives in
    /// `dir`, behaving as `extra` says (see server.py).
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Server {
        let mut child = Command::new("/usr/bin/python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py"))
            .args(["--port", &port.to_string(), "--out"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/setup.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("server said `{line}`"))
            .parse()
            .unwrap();
        Server {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Message-ID -> every copy received.
    pub fn received(&self) -> BTreeMap<String, Vec<Vec<u8>>> {
        let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for j in files {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&j).unwrap()).unwrap();
            let eml = std::fs::read(j.with_extension("eml")).unwrap();
            out.entry(v["message_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(eml);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
