//! The JSON state files kept beside the apps (receipt, ports, hook results, the store's
//! entry indexes), read by one function with one rule for their layout version: the
//! `*-format` field is looked at first, and a file without it, or with a version below 1
//! or above the one this build writes, is refused before its layout is; only then is the
//! file read whole, unknown fields being an error.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Serialize;

use crate::error::{FsError, Result};

/// A state file's layout: what it is, the field naming its version, and the version this
/// build reads and writes.
pub trait Versioned: Serialize + DeserializeOwned {
    /// What the file is, in messages: "receipt".
    const WHAT: &'static str;
    /// The field holding the layout version: "receipt-format".
    const FORMAT_FIELD: &'static str;
    /// The newest layout version this build reads, and the one it writes.
    const FORMAT: u32;
}

/// The state file at `path` (never through a link), or `None` when there is none.
pub fn read<T: Versioned>(path: &Path) -> Result<Option<T>> {
    match crate::read_optional(path)? {
        Some(bytes) => parse(path, &bytes).map(Some),
        None => Ok(None),
    }
}

/// The state file `path` whose contents are `bytes`.
pub fn parse<T: Versioned>(path: &Path, bytes: &[u8]) -> Result<T> {
    let invalid = |source| FsError::InvalidState {
        path: path.to_owned(),
        what: T::WHAT,
        source,
    };
    let found = format_field(bytes, T::FORMAT_FIELD).map_err(invalid)?;
    match found.as_ref().and_then(serde_json::Value::as_u64) {
        Some(format) if (1..=u64::from(T::FORMAT)).contains(&format) => {}
        _ => {
            return Err(FsError::StateFormat {
                path: path.to_owned(),
                field: T::FORMAT_FIELD,
                found: found.as_ref().map(ToString::to_string),
                supported: T::FORMAT,
            })
        }
    }
    serde_json::from_slice(bytes).map_err(invalid)
}

/// The value of the top-level field `field` of the JSON object `bytes`, if it has one; the
/// other values are skipped unread (a store index lists thousands of files).
fn format_field(
    bytes: &[u8],
    field: &'static str,
) -> serde_json::Result<Option<serde_json::Value>> {
    struct Probe(&'static str);

    impl<'de> Visitor<'de> for Probe {
        type Value = Option<serde_json::Value>;

        fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == self.0 {
                    found = Some(map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    impl<'de> DeserializeSeed<'de> for Probe {
        type Value = Option<serde_json::Value>;

        fn deserialize<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let found = Probe(field).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(found)
}

/// `value` as the bytes of its file at `path`: pretty JSON and a final newline.
pub fn encode<T: Versioned>(path: &Path, value: &T) -> Result<Vec<u8>> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|source| FsError::InvalidState {
        path: path.to_owned(),
        what: T::WHAT,
        source,
    })?;
    json.push(b'\n');
    Ok(json)
}

/// Replaces the state file at `path` with `value`, atomically (mode 0644).
pub fn write<T: Versioned>(path: &Path, value: &T) -> Result<()> {
    crate::write_atomic(path, &encode(path, value)?, 0o644)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Thing {
        thing_format: u32,
        name: String,
    }

    impl Versioned for Thing {
        const WHAT: &'static str = "thing";
        const FORMAT_FIELD: &'static str = "thing-format";
        const FORMAT: u32 = 1;
    }

    fn parsed(text: &str) -> Result<Thing> {
        parse(Path::new("/x/thing.json"), text.as_bytes())
    }

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thing.json");
        let thing = Thing {
            thing_format: 1,
            name: "a".into(),
        };
        write(&path, &thing).unwrap();
        assert_eq!(read::<Thing>(&path).unwrap(), Some(thing));
        assert!(read::<Thing>(&dir.path().join("none.json"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_version_is_judged_before_the_layout() {
        let newer = parsed(r#"{"thing-format": 2, "name": "a", "colour": "red"}"#).unwrap_err();
        assert_eq!(
            newer.to_string(),
            "`/x/thing.json` has thing-format 2, newer than this build supports (1)"
        );
        let missing = parsed(r#"{"name": "a"}"#).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "`/x/thing.json` has no valid thing-format (this build supports 1)"
        );
        let zero = parsed(r#"{"thing-format": 0, "name": "a"}"#).unwrap_err();
        assert!(zero.to_string().contains("thing-format 0"), "{zero}");
        let unknown = parsed(r#"{"thing-format": 1, "name": "a", "colour": "red"}"#).unwrap_err();
        assert!(
            unknown
                .to_string()
                .starts_with("`/x/thing.json` is not a valid thing"),
            "{unknown}"
        );
    }
}
