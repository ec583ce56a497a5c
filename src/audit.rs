//! Audit: SHA-256 of every input, policy file and output, so that an auditor
//! can tell exactly what a night read and wrote.

use crate::policy::PolicyFile;
use sha2::{Digest as _, Sha256};
use std::path::Path;

pub fn sha256_bytes(bytes: &[u8]) -> String {
    Digest::of(bytes).to_string()
}

/// A SHA-256 digest, written as 64 hex digits: the manifest lists one per
/// file, a million a night, and the bytes take half the room of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(bytes: &[u8]) -> Digest {
        let mut sha = Sha256::new();
        update(&mut sha, bytes);
        Digest(sha.finalize().into())
    }
}

/// Feeds `bytes` to `sha` a kilobyte at a time, asking the memory for the
/// kilobyte after next before each.
///
/// SHA-256 with the CPU's SHA extensions hashes 2 GB/s from the cache, but
/// was measured at 1.17 GB/s from a file's mapped pages: the hardware
/// prefetcher stops at each 4 KiB page, so every new page starts with a
/// wait on memory. Asked two kilobytes ahead, the lines were there in
/// time: 2.0 GB/s over the million-debtor ledger. On another host the
/// mapped pages hashed as fast as the cache allowed with or without the
/// hint (1.5 GB/s): the hint costs nothing where it is not needed
/// (BENCHMARKS.md, "2026-12-02 (fourth)"; `DUNNING_BENCH_PARTS=hash`).
pub fn update(sha: &mut Sha256, bytes: &[u8]) {
    const PIECE: usize = 1024;
    const AHEAD: usize = 2 * PIECE;
    for (i, piece) in bytes.chunks(PIECE).enumerate() {
        let ahead = i * PIECE + AHEAD;
        if let Some(next) = bytes.get(ahead..(ahead + PIECE).min(bytes.len())) {
            for line in next.chunks(64) {
                prefetch(line);
            }
        }
        sha.update(piece);
    }
}

/// A hint that `line` will be read soon; nothing where the hint is not
/// available.
#[inline(always)]
fn prefetch(line: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and cannot fault, and
    // SSE (which has it) is part of every x86_64 CPU.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}

impl std::fmt::Display for Digest {
    /// The 64 digits written at once: a `write!` a byte went through the
    /// formatter's padding 32 times a digest, twice an e-mail (its
    /// Message-ID and its manifest line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 15)];
        }
        f.write_str(std::str::from_utf8(&out).expect("hex digits are ASCII"))
    }
}

impl std::str::FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Digest, String> {
        let bad = || format!("`{s}` is not a SHA-256 digest (64 hex digits)");
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *o = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Digest(out))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The hash and length of the parts received, in order, until their
/// sender is gone: a file's hash made on a thread of its own while the
/// file is written on another.
pub fn hash_received(parts: std::sync::mpsc::Receiver<std::sync::Arc<Vec<u8>>>) -> (Digest, u64) {
    let mut sha = Sha256::new();
    let mut bytes = 0;
    for p in parts {
        update(&mut sha, &p[..]);
        bytes += p.len() as u64;
    }
    (Digest(sha.finalize().into()), bytes)
}

/// A writer that hashes and counts what passes through it, for files
/// written as they are produced.
pub struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: std::io::Write> Hashing<W> {
    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            sha: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, flushed, with the hash and length of all written.
    pub fn finish(mut self) -> std::io::Result<(W, Digest, u64)> {
        self.inner.flush()?;
        Ok((self.inner, Digest(self.sha.finalize().into()), self.bytes))
    }
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        update(&mut self.sha, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut h = FileHasher::new(vec![path.to_path_buf()]);
    h.run(&|| false);
    h.finish().pop().expect("one file")
}

/// Files hashed a window at a time, so that the work can stop between two
/// windows and be taken over by another thread: the night hashes its
/// inputs on a thread at idle priority and, when it needs the hashes and
/// that thread is not done, finishes them on its own.
pub struct FileHasher {
    paths: Vec<std::path::PathBuf>,
    done: Vec<std::io::Result<(String, u64)>>,
    /// The file being hashed: its hash so far and the bytes hashed.
    current: Option<(Sha256, usize)>,
}

impl FileHasher {
    /// A stop is seen within this many bytes of hashing.
    const WINDOW: usize = 1 << 20;

    pub fn new(paths: Vec<std::path::PathBuf>) -> FileHasher {
        FileHasher {
            paths,
            done: Vec::new(),
            current: None,
        }
    }

    /// Hashes on until every file is hashed (true) or `stop` says to stop,
    /// which it is asked before each window (false).
    pub fn run(&mut self, stop: &dyn Fn() -> bool) -> bool {
        while self.done.len() < self.paths.len() {
            let path = &self.paths[self.done.len()];
            let bytes = match crate::FileBytes::open(path) {
                Ok(b) => b,
                Err(e) => {
                    self.done.push(Err(e));
                    self.current = None;
                    continue;
                }
            };
            let (mut sha, mut at) = self.current.take().unwrap_or_else(|| (Sha256::new(), 0));
            while at < bytes.len() {
                if stop() {
                    self.current = Some((sha, at));
                    return false;
                }
                let end = (at + Self::WINDOW).min(bytes.len());
                update(&mut sha, &bytes[at..end]);
                at = end;
                // The pages hashed are given back now and then: a
                // million-debtor ledger is hundreds of megabytes.
                if at % (16 * Self::WINDOW) == 0 {
                    bytes.release(at);
                }
            }
            self.done.push(Ok((
                Digest(sha.finalize().into()).to_string(),
                bytes.len() as u64,
            )));
        }
        true
    }

    /// Each file's hash and size, in the order given. Only once `run` has
    /// returned true.
    pub fn finish(self) -> Vec<std::io::Result<(String, u64)>> {
        debug_assert_eq!(self.done.len(), self.paths.len());
        self.done
    }
}

/// Every regular file under `dir` (hidden ones aside), sorted by relative
/// path, with its hash. The policy's own `tests/` folder is left out: adding
/// a test case changes no decision, so it must not make a committed night
/// look as if it had been run under another policy.
pub fn hash_tree(dir: &Path) -> std::io::Result<Vec<PolicyFile>> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PolicyFile>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') || (dir == root && name == "tests") {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else if ty.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push(PolicyFile {
                path: rel,
                sha256: sha256_file(&path)?.0,
            });
        }
    }
    Ok(())
}

/// One hash over a list of (name, hash) pairs.
pub fn hash_list<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (name, hash) in items {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(hash.as_bytes());
        h.update(b"\n");
    }
    Digest(h.finalize().into()).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// The prefetching update is only a way of feeding the hash: around
    /// its pieces' edges (a kilobyte, and the prefetch two ahead), at
    /// every length and from any start, it gives the plain digest.
    #[test]
    fn prefetched_pieces_hash_as_one() {
        use sha2::Digest as _;
        let bytes: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for len in (0..=bytes.len()).filter(|l| l % 97 == 0 || (l % 1024) < 3 || (l % 1024) > 1021)
        {
            for start in [0, 1, 63] {
                let slice = &bytes[start.min(len)..len];
                let mut sha = sha2::Sha256::new();
                super::update(&mut sha, slice);
                let ours: [u8; 32] = sha.finalize().into();
                let plain: [u8; 32] = sha2::Sha256::digest(slice).into();
                assert_eq!(ours, plain, "{len} bytes from {start}");
            }
        }
        assert_eq!(
            super::Digest::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// A digest kept as bytes reads and writes as the hex text the
    /// manifest always had, and a hashing writer gives the same digest as
    /// hashing the bytes whole.
    #[test]
    fn digest_as_text() {
        use std::io::Write;
        let d = super::Digest::of(b"abc");
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.to_string(), hex);
        assert_eq!(hex.parse::<super::Digest>(), Ok(d));
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{hex}\""));
        let back: super::Digest = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(back, d);
        for bad in [
            "",
            "abc",
            &hex[1..],
            &format!("{}g", &hex[1..]),
            &"é".repeat(32),
        ] {
            assert!(bad.parse::<super::Digest>().is_err(), "{bad}");
            assert!(serde_json::from_str::<super::Digest>(&format!("\"{bad}\"")).is_err());
        }
        let mut w = super::Hashing::new(Vec::new());
        for part in [&b"a"[..], b"", b"bc"] {
            w.write_all(part).unwrap();
        }
        let (inner, digest, bytes) = w.finish().unwrap();
        assert_eq!((inner.as_slice(), digest, bytes), (&b"abc"[..], d, 3));
    }

    /// Files hashed with stops after any number of windows, the rest
    /// hashed by a fresh `run` (as the night takes the work over), give
    /// the hashes of one go; a missing file is an error in its place.
    #[test]
    fn a_hashing_stopped_and_taken_over_gives_the_same_hashes() {
        use super::{Digest, FileHasher};
        use std::cell::Cell;
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..(3 * FileHasher::WINDOW + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let small = b"debtor_id,name\nD1,Ann\n".to_vec();
        std::fs::write(dir.path().join("big.csv"), &big).unwrap();
        std::fs::write(dir.path().join("small.csv"), &small).unwrap();
        let paths = vec![
            dir.path().join("big.csv"),
            dir.path().join("missing.csv"),
            dir.path().join("small.csv"),
            dir.path().join("big.csv"),
        ];
        let want = [
            Some((Digest::of(&big).to_string(), big.len() as u64)),
            None,
            Some((Digest::of(&small).to_string(), small.len() as u64)),
            Some((Digest::of(&big).to_string(), big.len() as u64)),
        ];
        for windows in 0..12 {
            let mut h = FileHasher::new(paths.clone());
            let asked = Cell::new(0);
            let finished = h.run(&|| {
                asked.set(asked.get() + 1);
                asked.get() > windows
            });
            assert_eq!(finished, windows >= 9, "{windows} windows");
            let h = std::thread::spawn(move || {
                h.run(&|| false);
                h.finish()
            })
            .join()
            .unwrap();
            let got: Vec<Option<(String, u64)>> = h.into_iter().map(Result::ok).collect();
            assert_eq!(got, want, "stopped after {windows} windows");
        }
    }
}
