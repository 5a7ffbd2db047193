//! Size limits on what users may store beside their bytes, kept in one place so that the
//! README ("Limits") lists exactly what the server enforces. Each check runs on the value as it
//! would be stored (after a merge), so many small PATCHes cannot add up past a limit.

use crate::error::{Code, SbgError, SbgResult};
use serde_json::{Map, Value};

/// A file or folder name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;
/// Keys in one file's metadata.
pub const MAX_METADATA_KEYS: usize = 100;
/// One metadata key, in bytes.
pub const MAX_METADATA_KEY_BYTES: usize = 128;
/// One file's metadata, serialized as JSON.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Tags on one file, and on one project.
pub const MAX_TAGS: usize = 100;
/// One tag, in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// One project's settings, serialized as JSON.
pub const MAX_SETTINGS_BYTES: usize = 16 * 1024;
/// Filter values (`name`, `tag`, `tags`, `category`, `metadata.*`, `origin.*`) in one list
/// request: each becomes a condition in the query, and the databases bound how deep a query's
/// conditions may nest.
pub const MAX_FILTER_VALUES: usize = 100;

/// The filter values of one list request.
pub fn check_filter_values(count: usize) -> SbgResult<()> {
    if count > MAX_FILTER_VALUES {
        return Err(over(format!(
            "A list may be filtered by at most {MAX_FILTER_VALUES} values; this request gives {count}."
        )));
    }
    Ok(())
}

fn over(message: String) -> SbgError {
    SbgError::new(Code::BadRequest, message)
}

/// Bytes of `value` as compact JSON.
fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

/// A file's metadata as it would be stored.
pub fn check_metadata(metadata: &Map<String, Value>) -> SbgResult<()> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(over(format!(
            "Metadata may have at most {MAX_METADATA_KEYS} keys; this change would leave {}.",
            metadata.len()
        )));
    }
    if let Some(key) = metadata.keys().find(|k| k.len() > MAX_METADATA_KEY_BYTES) {
        return Err(over(format!(
            "A metadata key may be at most {MAX_METADATA_KEY_BYTES} bytes; one is {}.",
            key.len()
        )));
    }
    let size = json_len(metadata);
    if size > MAX_METADATA_BYTES {
        return Err(over(format!(
            "Metadata may be at most {MAX_METADATA_BYTES} bytes as JSON; this change would make it {size}."
        )));
    }
    Ok(())
}

/// The tags of a file or a project.
pub fn check_tags(tags: &[String]) -> SbgResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(over(format!(
            "At most {MAX_TAGS} tags are allowed; {} were given.",
            tags.len()
        )));
    }
    if let Some(tag) = tags.iter().find(|t| t.len() > MAX_TAG_BYTES) {
        return Err(over(format!(
            "A tag may be at most {MAX_TAG_BYTES} bytes; one is {}.",
            tag.len()
        )));
    }
    Ok(())
}

/// A project's settings as they would be stored.
pub fn check_settings(settings: &Value) -> SbgResult<()> {
    let size = json_len(settings);
    if size > MAX_SETTINGS_BYTES {
        return Err(over(format!(
            "Project settings may be at most {MAX_SETTINGS_BYTES} bytes as JSON; this change would make them {size}."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_hold_at_their_edges() {
        let mut m = Map::new();
        for i in 0..MAX_METADATA_KEYS {
            m.insert(format!("k{i}"), json!(i));
        }
        assert!(check_metadata(&m).is_ok());
        m.insert("one-more".into(), json!(1));
        assert_eq!(check_metadata(&m).unwrap_err().code.number(), 90000);

        let key = |n| Map::from_iter([("k".repeat(n), json!(1))]);
        assert!(check_metadata(&key(MAX_METADATA_KEY_BYTES)).is_ok());
        assert!(check_metadata(&key(MAX_METADATA_KEY_BYTES + 1)).is_err());

        // {"v":"…"} is 8 bytes around the string.
        let big = |n| Map::from_iter([("v".to_string(), json!("x".repeat(n)))]);
        assert!(check_metadata(&big(MAX_METADATA_BYTES - 8)).is_ok());
        assert!(check_metadata(&big(MAX_METADATA_BYTES - 7)).is_err());

        let tags = |n, len| vec!["t".repeat(len); n];
        assert!(check_tags(&tags(MAX_TAGS, MAX_TAG_BYTES)).is_ok());
        assert!(check_tags(&tags(MAX_TAGS + 1, 1)).is_err());
        assert!(check_tags(&tags(1, MAX_TAG_BYTES + 1)).is_err());

        let settings = |n| json!({"v": "x".repeat(n)});
        assert!(check_settings(&settings(MAX_SETTINGS_BYTES - 8)).is_ok());
        let err = check_settings(&settings(MAX_SETTINGS_BYTES - 7)).unwrap_err();
        assert!(err.message.contains("16384"), "{err}");
    }
}
