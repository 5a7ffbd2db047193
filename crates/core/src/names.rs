//! The rule for file and folder names, in one place for every way a file is made: through the
//! API (which answers 400 5024) and by imports, whose names come from object keys.

use crate::limits::MAX_NAME_BYTES;

/// Why a name is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("a name must be at most {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("'.' and '..' are not names")]
    Dots,
    #[error("a name must not contain '/'")]
    Slash,
    #[error("a name must not contain control characters")]
    Control,
}

/// A file or folder name: 1 to 255 bytes, no `/`, no control characters, not `.` or `..`.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_NAME_BYTES {
        Err(NameError::TooLong)
    } else if name == "." || name == ".." {
        Err(NameError::Dots)
    } else if name.contains('/') {
        Err(NameError::Slash)
    } else if name.chars().any(char::is_control) {
        Err(NameError::Control)
    } else {
        Ok(())
    }
}

/// The name a volume location gives its file or folder when none is given: its last segment
/// (a folder location ends with `/`).
pub fn last_segment(location: &str) -> &str {
    let trimmed = location.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a.txt", "with space ü", "...", ".hidden", &"x".repeat(255)] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
        let cases = [
            ("", NameError::Empty),
            (".", NameError::Dots),
            ("..", NameError::Dots),
            ("a/b", NameError::Slash),
            ("x\0y", NameError::Control),
            ("tab\there", NameError::Control),
            ("new\nline", NameError::Control),
            ("del\u{7f}", NameError::Control),
            ("c1\u{85}", NameError::Control),
        ];
        for (bad, why) in cases {
            assert_eq!(check(bad), Err(why), "{bad:?}");
        }
        assert_eq!(check(&"x".repeat(256)), Err(NameError::TooLong));
        assert_eq!(last_segment("a/b.txt"), "b.txt");
        assert_eq!(last_segment("in/sub/"), "sub");
        assert_eq!(last_segment("solo"), "solo");
        assert_eq!(last_segment("a//"), "a");
        assert_eq!(
            check(&"é".repeat(128)),
            Err(NameError::TooLong),
            "bytes, not characters"
        );
    }
}
