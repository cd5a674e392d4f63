//! The receipt, `APPS/APP/.pyapp/receipt.json`: what pyapp-install installed for an app
//! (which bundle, which release is current, the releases kept, the interpreter used). It is
//! replaced atomically after every change and is what makes a repeated install a no-op.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use pyapp_fs::state::{self, Versioned};
use serde::{Deserialize, Serialize};

/// The version of the receipt's layout (pyapp_fs::state refuses a larger one). Format 2
/// names a bundle by its content digest; rows written by format 1 keep the sha256 of their
/// bundle file instead.
pub const RECEIPT_FORMAT: u32 = 2;

/// The whole receipt. The top-level `version`, `content_sha256` and `release` describe the
/// current release; `releases` lists every kept release, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Receipt {
    pub receipt_format: u32,
    pub name: String,
    pub version: String,
    /// The bundle's content digest ([`pyapp_bundle::manifest::content_sha256`]); absent in
    /// a row a format-1 receipt wrote, which has `bundle_sha256` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The sha256 of the bundle file, in rows a format-1 receipt wrote (never written now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    pub release: String,
    pub installed_at: String,
    pub python: String,
    pub python_version: String,
    /// The system user the app runs as (absent when none was made: a `--root` scratch tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub releases: Vec<ReleaseRecord>,
    /// A release built but not switched to (`--stage-only`, `watch` under the manual
    /// policy): kept on disk, not in `releases` (it never ran, so `rollback` never goes
    /// there); installing its bundle switches to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<ReleaseRecord>,
}

/// One release as the receipt remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReleaseRecord {
    pub release: String,
    pub version: String,
    /// The bundle's content digest ([`pyapp_bundle::manifest::content_sha256`]); absent in
    /// a row a format-1 receipt wrote, which has `bundle_sha256` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The sha256 of the bundle file, in rows a format-1 receipt wrote (never written now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    pub installed_at: String,
    pub python: String,
    pub python_version: String,
    /// The bundle file this release was installed from, as it was when it was hashed and
    /// verified: the same file, unchanged, is recognised without hashing it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_file: Option<BundleFile>,
}

/// Who a file is (device and inode) and its state (size, modification and change times,
/// in nanoseconds). The change time cannot be set back by anyone but the clock, so a file
/// with the same values has not been written since they were taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BundleFile {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    pub modified_ns: i64,
    pub changed_ns: i64,
}

impl BundleFile {
    /// The identity of an opened file.
    pub fn of(file: &std::fs::File) -> std::io::Result<BundleFile> {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata()?;
        let ns = |seconds: i64, nanos: i64| seconds.saturating_mul(1_000_000_000) + nanos;
        Ok(BundleFile {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }
}

impl Versioned for Receipt {
    const WHAT: &'static str = "receipt";
    const FORMAT_FIELD: &'static str = "receipt-format";
    const FORMAT: u32 = RECEIPT_FORMAT;
}

impl Receipt {
    /// Reads the receipt at `path`; `None` when the app has none (never installed).
    pub fn load(path: &Path) -> Result<Option<Receipt>> {
        Ok(state::read(path)?)
    }

    /// Writes the receipt to `path` atomically (the old or the new one survives a crash).
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(state::write(path, self)?)
    }

    /// A receipt whose current release is `record`, added after the releases of
    /// `previous` (where it is moved to the end if it was already there; no longer staged
    /// if it was).
    pub fn with_current(name: &str, previous: Option<&Receipt>, record: ReleaseRecord) -> Self {
        let mut releases: Vec<ReleaseRecord> = previous
            .map(|p| p.releases.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.release != record.release)
            .collect();
        releases.push(record.clone());
        let user = previous.and_then(|p| p.user.clone());
        let staged = previous
            .and_then(|p| p.staged.clone())
            .filter(|staged| staged.release != record.release);
        Receipt {
            staged,
            ..Receipt::from_parts(name, user, record, releases)
        }
    }

    /// This receipt with `record` as its staged release (replacing any other).
    pub fn with_staged(&self, record: ReleaseRecord) -> Self {
        Receipt {
            staged: Some(record),
            ..self.clone()
        }
    }

    /// This receipt with `release` (one of its releases) as the current one.
    pub fn switched_to(&self, release: &ReleaseRecord) -> Self {
        Receipt {
            staged: self.staged.clone(),
            ..Receipt::from_parts(
                &self.name,
                self.user.clone(),
                release.clone(),
                self.releases.clone(),
            )
        }
    }

    /// This receipt keeping only the releases `keep` accepts.
    pub fn retaining(&self, keep: impl Fn(&ReleaseRecord) -> bool) -> Self {
        let mut receipt = self.clone();
        receipt.releases.retain(keep);
        receipt
    }

    /// The interpreter `release` was built with (the current one's for a release the
    /// receipt no longer lists).
    pub fn python_of(&self, release: &str) -> &str {
        self.releases
            .iter()
            .find(|record| record.release == release)
            .map_or(self.python.as_str(), |record| record.python.as_str())
    }

    /// Whether the current release came from a bundle with the content digest
    /// `content_sha256`.
    pub fn is_from(&self, content_sha256: &str) -> bool {
        self.content_sha256.as_deref() == Some(content_sha256)
    }

    /// The record of the current release.
    pub fn current(&self) -> Option<&ReleaseRecord> {
        self.releases.iter().find(|r| r.release == self.release)
    }

    /// The release installed just before the current one: where `rollback` goes.
    pub fn previous(&self) -> Option<&ReleaseRecord> {
        let position = self
            .releases
            .iter()
            .position(|r| r.release == self.release)?;
        position.checked_sub(1).map(|i| &self.releases[i])
    }

    fn from_parts(
        name: &str,
        user: Option<String>,
        current: ReleaseRecord,
        releases: Vec<ReleaseRecord>,
    ) -> Self {
        Receipt {
            receipt_format: RECEIPT_FORMAT,
            name: name.to_owned(),
            version: current.version,
            content_sha256: current.content_sha256,
            bundle_sha256: current.bundle_sha256,
            release: current.release,
            installed_at: current.installed_at,
            python: current.python,
            python_version: current.python_version,
            user,
            releases,
            staged: None,
        }
    }
}

/// The time now as an RFC 3339 UTC timestamp, e.g. `2026-11-21T15:15:30Z`.
pub fn now_rfc3339() -> String {
    rfc3339_utc(now_micros() / 1_000_000)
}

/// The time now as RFC 3339 UTC with milliseconds, e.g. `2026-11-21T15:15:30.123Z`: the
/// hook log's timestamps, precise enough to order its lines among the journal's.
pub fn now_rfc3339_millis() -> String {
    let micros = now_micros();
    let seconds = rfc3339_utc(micros / 1_000_000);
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        micros % 1_000_000 / 1_000
    )
}

/// The time now in microseconds since the Unix epoch (the journal's unit).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (proleptic Gregorian calendar,
/// the "days from civil" algorithm of Howard Hinnant, in reverse).
pub fn rfc3339_utc(seconds: u64) -> String {
    let days = seconds / 86_400;
    let secs_of_day = seconds % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3_600,
        secs_of_day % 3_600 / 60,
        secs_of_day % 60
    )
}

/// Microseconds since the Unix epoch of an RFC 3339 UTC timestamp as pyapp writes them,
/// `YYYY-MM-DDTHH:MM:SS[.FRACTION]Z` (1970 or later); `None` for anything else.
pub fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    let (seconds_text, rest) = text.split_at_checked(19)?;
    let fraction = rest.strip_suffix('Z')?;
    let micros = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits) if (1..=9).contains(&digits.len()) && is_digits(digits) => {
            let padded = format!("{digits:0<6}");
            padded[..6].parse::<u64>().ok()?
        }
        _ => return None,
    };
    let bytes = seconds_text.as_bytes();
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = &seconds_text[range];
        is_digits(digits).then(|| digits.parse().ok()).flatten()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant), for years from 1970 on.
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year / 400;
    let year_of_era = shifted_year - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day.checked_sub(1)?;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    // A day the month does not have (2026-02-30) comes back as another date.
    (rfc3339_utc(seconds) == format!("{seconds_text}Z")).then_some(seconds * 1_000_000 + micros)
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_274_130), "2026-11-21T15:15:30Z");
    }

    #[test]
    fn parses_what_it_formats_and_nothing_else() {
        for seconds in [0, 951_782_400, 1_795_274_130, 4_102_444_799] {
            assert_eq!(
                parse_rfc3339_utc(&rfc3339_utc(seconds)),
                Some(seconds * 1_000_000)
            );
        }
        assert_eq!(
            parse_rfc3339_utc("2026-11-21T15:15:30.123Z"),
            Some(1_795_274_130_123_000)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-11-21T15:15:30.1234567Z"),
            Some(1_795_274_130_123_456)
        );
        assert!(
            now_rfc3339_millis().len() == 24 && parse_rfc3339_utc(&now_rfc3339_millis()).is_some()
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-11-21T15:15:30",
            "2026-11-21 15:15:30Z",
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T15:15:30.Z",
            "2026-11-21T15:15:30+01:00",
            "+026-11-21T15:15:30Z",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }

    fn record(release: &str) -> ReleaseRecord {
        ReleaseRecord {
            release: release.into(),
            version: release.into(),
            content_sha256: Some(release.into()),
            bundle_sha256: None,
            installed_at: "t".into(),
            python: "/usr/bin/python3".into(),
            python_version: "3.11.7".into(),
            bundle_file: None,
        }
    }

    #[test]
    fn a_format_1_receipt_is_read_and_kept_its_rows_naming_their_bundle_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.json");
        let row = r#"{"release": "1.0.0-ba9876543210", "version": "1.0.0",
            "bundle-sha256": "ba98765432100000", "installed-at": "t",
            "python": "/usr/bin/python3.11", "python-version": "3.11.7"}"#;
        let old = format!(
            r#"{{"receipt-format": 1, "name": "hello", "version": "1.0.0",
            "bundle-sha256": "ba98765432100000", "release": "1.0.0-ba9876543210",
            "installed-at": "t", "python": "/usr/bin/python3.11",
            "python-version": "3.11.7", "releases": [{row}]}}"#
        );
        std::fs::write(&path, old).unwrap();
        let old = Receipt::load(&path).unwrap().unwrap();
        assert_eq!(
            old.releases[0].bundle_sha256.as_deref(),
            Some("ba98765432100000")
        );
        assert!(
            !old.is_from("ba98765432100000"),
            "a file's sha256 is no content digest"
        );

        let upgraded = Receipt::with_current("hello", Some(&old), record("1.1.0"));
        upgraded.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"receipt-format\": 2"), "{text}");
        let again = Receipt::load(&path).unwrap().unwrap();
        assert_eq!(again, upgraded);
        assert!(again.is_from("1.1.0"));
        assert_eq!(
            again.previous().unwrap().bundle_sha256.as_deref(),
            Some("ba98765432100000")
        );
        assert_eq!(again.previous().unwrap().content_sha256, None);
    }

    #[test]
    fn reinstalling_an_old_release_moves_it_last_and_previous_follows_the_order() {
        let one = Receipt::with_current("app", None, record("a"));
        let two = Receipt::with_current("app", Some(&one), record("b"));
        assert_eq!(two.previous().map(|r| r.release.as_str()), Some("a"));
        let three = Receipt::with_current("app", Some(&two), record("a"));
        let order: Vec<_> = three.releases.iter().map(|r| r.release.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
        assert_eq!(three.release, "a");
        let rolled = three.switched_to(&record("b"));
        assert_eq!(rolled.previous(), None);
    }

    #[test]
    fn a_staged_release_stays_out_of_the_order_until_it_is_installed() {
        let one = Receipt::with_current("app", None, record("a"));
        let staged = one.with_staged(record("b"));
        assert_eq!(staged.release, "a");
        assert_eq!(staged.releases, [record("a")]);
        let json = serde_json::to_string(&staged).unwrap();
        assert!(json.contains(r#""staged":{"release":"b""#), "{json}");
        assert!(!serde_json::to_string(&one).unwrap().contains("staged"));
        // Another release installed meanwhile: b stays staged, a is rollback's target.
        let two = Receipt::with_current("app", Some(&staged), record("c"));
        assert_eq!(two.staged, Some(record("b")));
        assert_eq!(two.previous(), Some(&record("a")));
        assert_eq!(two.switched_to(&record("a")).staged, Some(record("b")));
        // Installing b's bundle makes it current and no longer staged.
        let three = Receipt::with_current("app", Some(&two), record("b"));
        assert_eq!(three.staged, None);
        assert_eq!(three.previous(), Some(&record("c")));
    }
}
