//! The `RECORD` file of a `.dist-info` directory: a CSV of path, hash and size.
//!
//! Read to verify every file of a wheel while it is extracted, and written anew from what
//! was actually installed (never copied from the wheel: a `../` row there could make a later
//! uninstall delete files that belong to someone else).

use std::fmt::Write;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;

/// One row of a RECORD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    /// The path, relative to the directory holding `.dist-info` (may start with `../`).
    pub path: String,
    /// The hash, absent for RECORD itself (and signature files).
    pub hash: Option<RecordHash>,
    /// The size in bytes, when given.
    pub size: Option<u64>,
}

/// A hash algorithm allowed in RECORD (md5 and sha1 are not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Sha384,
    Sha512,
}

/// A `sha256=...` hash value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHash {
    pub algorithm: HashAlgorithm,
    pub digest: Vec<u8>,
}

/// Why a RECORD file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("line {line}: unterminated quoted field")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: expected 3 fields (path,hash,size), found {found}")]
    FieldCount { line: usize, found: usize },
    #[error("line {line}: empty path")]
    EmptyPath { line: usize },
    #[error("line {line}: control character in a field")]
    ControlCharacter { line: usize },
    #[error("line {line}: unsupported hash algorithm `{algorithm}` for {path}")]
    Algorithm {
        line: usize,
        path: String,
        algorithm: String,
    },
    #[error("line {line}: malformed hash `{hash}` for {path}")]
    MalformedHash {
        line: usize,
        path: String,
        hash: String,
    },
    #[error("line {line}: malformed size `{size}` for {path}")]
    MalformedSize {
        line: usize,
        path: String,
        size: String,
    },
    #[error("{path} is listed twice")]
    Duplicate { path: String },
}

impl HashAlgorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha384" => Some(HashAlgorithm::Sha384),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }
}

impl RecordHash {
    /// Parse `sha256=<urlsafe-base64, no padding>`; also accepts padded or standard base64
    /// and hex digests, which some real wheels carry.
    fn parse(text: &str) -> Result<Self, HashProblem> {
        let (name, value) = text.split_once('=').ok_or(HashProblem::Malformed)?;
        let algorithm = HashAlgorithm::from_name(name)
            .ok_or_else(|| HashProblem::Algorithm(name.to_string()))?;
        let len = algorithm.digest_len();
        let digest = if value.len() == 2 * len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(value).ok()
        } else {
            [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD]
                .iter()
                .find_map(|engine| engine.decode(value).ok())
        };
        match digest {
            Some(digest) if digest.len() == len => Ok(RecordHash { algorithm, digest }),
            _ => Err(HashProblem::Malformed),
        }
    }
}

/// What is wrong with a hash field.
enum HashProblem {
    Algorithm(String),
    Malformed,
}

/// A running hash of the algorithm a RECORD row asks for.
pub enum Hasher {
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> RecordHash {
        let (algorithm, digest) = match self {
            Hasher::Sha256(h) => (HashAlgorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha384(h) => (HashAlgorithm::Sha384, h.finalize().to_vec()),
            Hasher::Sha512(h) => (HashAlgorithm::Sha512, h.finalize().to_vec()),
        };
        RecordHash { algorithm, digest }
    }
}

/// Split CSV text (RFC 4180 as Python's `csv` module writes it: `"` quoting with `""` for a
/// quote; `\n` or `\r\n` line ends) into rows of fields, each with its line number.
fn csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, RecordError> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let row_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_quotes = false;
        loop {
            match chars.next() {
                None if in_quotes => return Err(RecordError::UnterminatedQuote { line: row_line }),
                None => break,
                Some('"') if in_quotes => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        in_quotes = false;
                    }
                }
                Some('"') if field.is_empty() => in_quotes = true,
                Some(c) if in_quotes => {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
                Some(',') => fields.push(std::mem::take(&mut field)),
                Some('\r') if chars.peek() == Some(&'\n') => {}
                Some('\n') => {
                    line += 1;
                    break;
                }
                Some(c) => field.push(c),
            }
        }
        fields.push(field);
        // Blank lines carry nothing.
        if !(fields.len() == 1 && fields[0].is_empty()) {
            rows.push((row_line, fields));
        }
    }
    Ok(rows)
}

/// Parse the text of a RECORD file.
pub fn parse_record(text: &str) -> Result<Vec<RecordRow>, RecordError> {
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for (line, fields) in csv_rows(text)? {
        let [path, hash, size] =
            <[String; 3]>::try_from(fields).map_err(|fields| RecordError::FieldCount {
                line,
                found: fields.len(),
            })?;
        if path.is_empty() {
            return Err(RecordError::EmptyPath { line });
        }
        // No entry name has one (see `check_entry_name`), and the messages below show the
        // fields as they are.
        if [&path, &hash, &size]
            .iter()
            .any(|field| field.chars().any(char::is_control))
        {
            return Err(RecordError::ControlCharacter { line });
        }
        let hash = if hash.is_empty() {
            None
        } else {
            match RecordHash::parse(&hash) {
                Ok(parsed) => Some(parsed),
                Err(HashProblem::Algorithm(algorithm)) => {
                    return Err(RecordError::Algorithm {
                        line,
                        path,
                        algorithm,
                    })
                }
                Err(HashProblem::Malformed) => {
                    return Err(RecordError::MalformedHash { line, path, hash })
                }
            }
        };
        let size = if size.is_empty() {
            None
        } else {
            match size.parse() {
                Ok(size) => Some(size),
                Err(_) => return Err(RecordError::MalformedSize { line, path, size }),
            }
        };
        if !seen.insert(path.clone()) {
            return Err(RecordError::Duplicate { path });
        }
        rows.push(RecordRow { path, hash, size });
    }
    Ok(rows)
}

/// Quote one CSV field the way Python's `csv` module does (only when needed).
fn push_csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

/// The text of a RECORD file for `rows`, in the given order, `\n` line ends, hashes in the
/// RECORD form (`sha256=<urlsafe-base64, no padding>`); written
/// straight into one string (a RECORD of thousands of rows is written for every venv).
pub fn write_record(rows: &[RecordRow]) -> String {
    const ROW: usize = 96;
    let mut out = String::with_capacity(rows.len() * ROW);
    for row in rows {
        push_csv_field(&mut out, &row.path);
        out.push(',');
        if let Some(hash) = &row.hash {
            out.push_str(hash.algorithm.name());
            out.push('=');
            URL_SAFE_NO_PAD.encode_string(&hash.digest, &mut out);
        }
        out.push(',');
        if let Some(size) = row.size {
            // Writing into a String cannot fail.
            let _ = write!(out, "{size}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sha256(bytes: &[u8]) -> RecordHash {
        let mut h = Hasher::new(HashAlgorithm::Sha256);
        h.update(bytes);
        h.finish()
    }

    #[test]
    fn parses_plain_rows_and_the_record_row() {
        let rows = parse_record(
            "flask/app.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\r\n\
             flask-3.0.3.dist-info/RECORD,,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, "flask/app.py");
        assert_eq!(rows[0].hash, Some(sha256(b"")));
        assert_eq!(rows[0].size, Some(0));
        assert_eq!(rows[1].hash, None);
        assert_eq!(rows[1].size, None);
    }

    #[test]
    fn quoted_commas_quotes_and_backslashes_survive() {
        let text = "\"a,b/c.py\",sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n\
                    \"say \"\"hi\"\".txt\",,\n\
                    back\\slash.txt,,\n";
        let rows = parse_record(text).unwrap();
        assert_eq!(rows[0].path, "a,b/c.py");
        assert_eq!(rows[1].path, "say \"hi\".txt");
        assert_eq!(rows[2].path, "back\\slash.txt");
        assert_eq!(write_record(&rows), text);
    }

    #[test]
    fn hex_and_padded_digests_are_accepted() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let padded = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=";
        for hash in [hex, padded] {
            let rows = parse_record(&format!("x.py,sha256={hash},0\n")).unwrap();
            assert_eq!(rows[0].hash, Some(sha256(b"")), "{hash}");
        }
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let cases = [
            ("x.py,sha256=abc\n", "expected 3 fields"),
            (
                "ok,,\nx.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,0\n",
                "line 2: unsupported hash algorithm `md5`",
            ),
            ("x.py,sha256=tooshort,0\n", "malformed hash"),
            ("x.py,sha256,0\n", "malformed hash"),
            ("x.py,,12k\n", "malformed size"),
            ("\"x.py,,\n", "unterminated quoted field"),
            (",,\n", "empty path"),
            ("x.py,,\nx.py,,\n", "listed twice"),
            (
                "ok,,\n\"x\ny.py\",sha256=abc,0\n",
                "line 2: control character in a field",
            ),
        ];
        for (text, message) in cases {
            let err = parse_record(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text:?}: {err}");
        }
    }

    #[test]
    fn blank_lines_are_ignored() {
        assert_eq!(parse_record("\n\nx.py,,\n\n").unwrap().len(), 1);
    }
}
