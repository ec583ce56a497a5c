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
        Digest(Sha256::digest(bytes).into())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
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
        sha.update(&p[..]);
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
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let bytes = crate::FileBytes::open(path)?;
    let mut h = Sha256::new();
    const WINDOW: usize = 16 << 20;
    let mut done = 0;
    for w in bytes.chunks(WINDOW) {
        h.update(w);
        done += w.len();
        bytes.release(done);
    }
    Ok((Digest(h.finalize().into()).to_string(), bytes.len() as u64))
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
}
