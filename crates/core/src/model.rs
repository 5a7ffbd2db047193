//! The closed sets of values Egress stores and sends: job states, volume access modes and the
//! kinds of resource members belong to. Each has one text form, used alike in the database
//! (TEXT columns), on the wire (JSON) and in query strings (`?state=`); it is spelled here only.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A text value that names no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}'")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// Declares a text-valued enum: `as_str`, `Display`, `FromStr` (exact text), serde with the
/// same text, and sqlx `Type`/`Encode`/`Decode` as the engine's text type.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal, $serde_case:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = $serde_case)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and wire text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_string() }),
                }
            }
        }

        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'q str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }
    };
}

text_enum! {
    /// Where an export or import job is. Claims move it from `Pending` to `Running`; a retry
    /// or an expired lease moves it back.
    JobState, "state", "UPPERCASE" {
        Pending = "PENDING",
        Running = "RUNNING",
        Completed = "COMPLETED",
        Failed = "FAILED",
    }
}

text_enum! {
    /// What Egress may do with a volume: read and write, or only read.
    AccessMode, "access mode", "UPPERCASE" {
        Rw = "RW",
        Ro = "RO",
    }
}

text_enum! {
    /// The resource a member belongs to.
    MemberKind, "member kind", "lowercase" {
        Project = "project",
        Volume = "volume",
    }
}

/// The values above as SQL literals, for the few statements that must spell a value out rather
/// than bind it: a partial index (`exports_unfinished_moves`) serves only queries that repeat its
/// predicate, and the queue queries keep the plans their literal states give them.
pub mod sql {
    pub const PENDING: &str = "'PENDING'";
    pub const RUNNING: &str = "'RUNNING'";
    /// Jobs not finished yet: `state IN` this list.
    pub const UNFINISHED: &str = "('PENDING', 'RUNNING')";
    pub const RW: &str = "'RW'";
    pub const PROJECT: &str = "'project'";
    pub const VOLUME: &str = "'volume'";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        format!("'{s}'")
    }

    #[test]
    fn sql_literals_match_the_enums() {
        assert_eq!(sql::PENDING, quoted(JobState::Pending.as_str()));
        assert_eq!(sql::RUNNING, quoted(JobState::Running.as_str()));
        let unfinished = [JobState::Pending, JobState::Running].map(|s| quoted(s.as_str()));
        assert_eq!(sql::UNFINISHED, format!("({})", unfinished.join(", ")));
        assert_eq!(sql::RW, quoted(AccessMode::Rw.as_str()));
        assert_eq!(sql::PROJECT, quoted(MemberKind::Project.as_str()));
        assert_eq!(sql::VOLUME, quoted(MemberKind::Volume.as_str()));
    }

    #[test]
    fn text_round_trips_through_parse_and_serde() {
        fn check<T>(all: &[T], as_str: fn(T) -> &'static str)
        where
            T: Copy + fmt::Debug + PartialEq + FromStr + Serialize + for<'de> Deserialize<'de>,
        {
            for &v in all {
                let text = as_str(v);
                assert_eq!(text.parse::<T>().ok(), Some(v));
                assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(text));
                assert_eq!(
                    serde_json::from_value::<T>(serde_json::json!(text)).unwrap(),
                    v
                );
            }
        }
        check(JobState::ALL, JobState::as_str);
        check(AccessMode::ALL, AccessMode::as_str);
        check(MemberKind::ALL, MemberKind::as_str);
        assert_eq!(
            JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
        );
        assert_eq!(
            AccessMode::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["RW", "RO"]
        );
        assert_eq!(
            MemberKind::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["project", "volume"]
        );
    }

    #[test]
    fn parsing_is_exact() {
        for bad in ["pending", "Running", "", "DONE", " FAILED"] {
            let err = bad.parse::<JobState>().unwrap_err();
            assert_eq!(err.value, bad);
        }
        assert!("rw".parse::<AccessMode>().is_err());
        assert!("PROJECT".parse::<MemberKind>().is_err());
    }
}
