//! Helpers shared by the integration tests: they run the real binary.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dunning"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn policy() -> PathBuf {
    root().join("rules/retail-fr")
}

/// One night of a fixture scenario.
#[derive(Debug, Clone)]
pub struct Night {
    pub date: String,
    pub dir: PathBuf,
    pub ledger: PathBuf,
    pub debtors: PathBuf,
    pub events: Option<PathBuf>,
}

/// The nights of `fixtures/<scenario>`, in date order. A night's folder
/// holds its ledger; debtors and events come from the night's folder when it
/// has its own, else from the scenario's.
pub fn nights(scenario: &Path) -> Vec<Night> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenario.join("nights"))
        .expect("nights folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let pick = |dir: &Path, name: &str| -> Option<PathBuf> {
        [dir.join(name), scenario.join(name)]
            .into_iter()
            .find(|p| p.exists())
    };
    dirs.into_iter()
        .map(|dir| Night {
            date: dir.file_name().unwrap().to_string_lossy().into_owned(),
            ledger: dir.join("ledger.csv"),
            debtors: pick(&dir, "debtors.csv").expect("debtors.csv"),
            events: pick(&dir, "events.csv"),
            dir,
        })
        .collect()
}

pub fn run_night(
    night: &Night,
    policy: &Path,
    state: &Path,
    out: &Path,
    extra_env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(night_args(night, policy, state, out));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("run dunning")
}

/// The arguments of `dunning run` for `night`.
pub fn night_args(night: &Night, policy: &Path, state: &Path, out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "run".into(),
        "--policy".into(),
        policy.into(),
        "--ledger".into(),
        night.ledger.clone().into(),
        "--debtors".into(),
        night.debtors.clone().into(),
        "--as-of".into(),
        night.date.clone().into(),
        "--state".into(),
        state.into(),
        "--out".into(),
        out.into(),
    ];
    if let Some(e) = &night.events {
        args.extend(["--events".into(), e.clone().into()]);
    }
    args
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run dunning")
}

/// `dunning gen`: `debtors` debtors of seed `seed`, as CSV, into `out`.
pub fn generate(out: &Path, debtors: usize, seed: u64) {
    let o = run(&[
        "gen",
        "--debtors",
        &debtors.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "dunning gen: {}", stderr(&o));
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir`, relative path and bytes, sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Copies a tree (for state snapshots in tests).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// A copy of rules/retail-fr under `dir`, its policy.yaml passed through
/// `edit`.
pub fn edited_policy(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let pol = dir.join("policy");
    copy_tree(&policy(), &pol);
    let text = std::fs::read_to_string(pol.join("policy.yaml")).unwrap();
    std::fs::write(pol.join("policy.yaml"), edit(text)).unwrap();
    pol
}

/// Runs a night on the three files `ledger`, `debtors`, `events` of `dir`
/// (with extension `ext`, as `dunning gen` writes them), plus `extra`.
pub fn run_generated(
    dir: &Path,
    ext: &str,
    as_of: &str,
    state: &Path,
    out: &Path,
    extra: &[&str],
) -> Output {
    let f = |n: &str| dir.join(format!("{n}.{ext}")).display().to_string();
    let mut args: Vec<String> = vec!["-q".into(), "run".into(), "--policy".into()];
    args.push(policy().display().to_string());
    for (k, v) in [
        ("--ledger", f("ledger")),
        ("--debtors", f("debtors")),
        ("--events", f("events")),
        ("--as-of", as_of.to_owned()),
        ("--state", state.display().to_string()),
        ("--out", out.display().to_string()),
    ] {
        args.push(k.into());
        args.push(v);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// One edit of a policy file in a test corpus: replace the first `find`
/// with `replace`, and/or append text.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub file: String,
    #[serde(default)]
    pub find: Option<String>,
    #[serde(default)]
    pub replace: Option<String>,
    #[serde(default)]
    pub append: Option<String>,
}

/// Applies a corpus case's edits to the policy copy in `pol`.
pub fn apply_edits(case: &str, pol: &Path, edits: &[Edit]) {
    for e in edits {
        let path = pol.join(&e.file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        if let Some(find) = &e.find {
            assert!(
                text.contains(find.as_str()),
                "{case}: `{find}` not in {}",
                e.file
            );
            text = text.replacen(find.as_str(), e.replace.as_deref().unwrap_or(""), 1);
        }
        if let Some(a) = &e.append {
            text.push_str(a);
        }
        std::fs::write(&path, text).unwrap();
    }
}

/// The case folders of a corpus under `fixtures/`, sorted.
pub fn corpus(name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("fixtures").join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}
