//! Which API and token a run uses, found the way the official clients find them.

use crate::Fail;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// The API's base URL, e.g. https://cavatica-api.sbgenomics.com/v2 (with --token).
    #[arg(long, requires = "token")]
    pub api: Option<String>,
    /// The authentication token (with --api).
    #[arg(long, requires = "api")]
    pub token: Option<String>,
    /// A profile of ~/.sevenbridges/credentials.
    #[arg(long, conflicts_with = "api")]
    pub profile: Option<String>,
}

/// Where to connect, and where that came from (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Ends with `/v2`, without a trailing slash.
    pub base: String,
    pub token: String,
    pub source: String,
}

/// The environment the resolution reads; a struct so tests need not touch the process's.
pub struct Env {
    pub endpoint: Option<String>,
    pub token: Option<String>,
    pub credentials_file: Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        Self {
            endpoint: var("SB_API_ENDPOINT"),
            token: var("SB_AUTH_TOKEN"),
            credentials_file: var("HOME")
                .map(|home| Path::new(&home).join(".sevenbridges").join("credentials")),
        }
    }
}

/// `--api`/`--token`, then `--profile`, then `SB_API_ENDPOINT`/`SB_AUTH_TOKEN`, then the
/// `[default]` profile.
pub fn resolve(args: &ConnectArgs, env: &Env) -> Result<Connection, Fail> {
    if let (Some(api), Some(token)) = (&args.api, &args.token) {
        return connection(api, token, "--api and --token");
    }
    if let Some(profile) = &args.profile {
        return from_profile(env, profile);
    }
    if let (Some(api), Some(token)) = (&env.endpoint, &env.token) {
        return connection(api, token, "SB_API_ENDPOINT and SB_AUTH_TOKEN");
    }
    from_profile(env, "default").map_err(|e| {
        Fail::Usage(format!("no API to talk to: give --api URL --token TOKEN, --profile NAME, set SB_API_ENDPOINT and SB_AUTH_TOKEN, or add a [default] profile ({e})"))
    })
}

fn from_profile(env: &Env, name: &str) -> Result<Connection, Fail> {
    let path = env
        .credentials_file
        .as_ref()
        .ok_or_else(|| Fail::Usage("HOME is not set, so there is no credentials file".into()))?;
    let mut ini = configparser::ini::Ini::new_cs();
    ini.load(path)
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    if !ini.sections().iter().any(|s| s == name) {
        return Err(Fail::Usage(format!(
            "{} has no [{name}] profile",
            path.display()
        )));
    }
    let field = |key: &str| {
        ini.get(name, key)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                Fail::Usage(format!(
                    "the [{name}] profile of {} has no {key}",
                    path.display()
                ))
            })
    };
    let source = format!("profile [{name}] of {}", path.display());
    connection(&field("api_endpoint")?, &field("auth_token")?, &source)
}

fn connection(api: &str, token: &str, source: &str) -> Result<Connection, Fail> {
    let trimmed = api.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed).map_err(|e| {
        Fail::Usage(format!(
            "the API URL '{api}' from {source} is not a URL: {e}"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Fail::Usage(format!(
            "the API URL '{api}' from {source} must start with https:// (or http://)"
        )));
    }
    let base = if trimmed.ends_with("/v2") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/v2")
    };
    Ok(Connection {
        base,
        token: token.trim().to_string(),
        source: source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path, endpoint: Option<&str>, token: Option<&str>) -> Env {
        Env {
            endpoint: endpoint.map(Into::into),
            token: token.map(Into::into),
            credentials_file: Some(dir.join("credentials")),
        }
    }

    fn args(api: Option<&str>, token: Option<&str>, profile: Option<&str>) -> ConnectArgs {
        ConnectArgs {
            api: api.map(Into::into),
            token: token.map(Into::into),
            profile: profile.map(Into::into),
        }
    }

    #[test]
    fn flags_then_profile_then_environment_then_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "[default]\napi_endpoint = https://default.example/v2\nauth_token = d\n\n\
             [cavatica]\napi_endpoint = https://cavatica.example/v2/\nauth_token = c\n",
        )
        .unwrap();
        let with_env = env(dir.path(), Some("http://env.example"), Some("e"));
        let pick = |a: &ConnectArgs, e: &Env| resolve(a, e).unwrap();

        let flags = pick(
            &args(Some("http://flag.example"), Some("f"), None),
            &with_env,
        );
        assert_eq!(
            (flags.base.as_str(), flags.token.as_str()),
            ("http://flag.example/v2", "f")
        );
        let profile = pick(&args(None, None, Some("cavatica")), &with_env);
        assert_eq!(
            (profile.base.as_str(), profile.token.as_str()),
            ("https://cavatica.example/v2", "c")
        );
        let from_env = pick(&args(None, None, None), &with_env);
        assert_eq!(
            (from_env.base.as_str(), from_env.token.as_str()),
            ("http://env.example/v2", "e")
        );
        let default = pick(
            &args(None, None, None),
            &env(dir.path(), Some("http://x"), None),
        );
        assert_eq!(
            (default.base.as_str(), default.token.as_str()),
            ("https://default.example/v2", "d")
        );
    }

    #[test]
    fn missing_profiles_and_bad_urls_say_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let none = env(dir.path(), None, None);
        let msg = |r: Result<Connection, Fail>| r.unwrap_err().to_string();
        assert!(msg(resolve(&args(None, None, None), &none)).contains("no API to talk to"));
        std::fs::write(
            dir.path().join("credentials"),
            "[p]\napi_endpoint = https://x/v2\n",
        )
        .unwrap();
        assert!(msg(resolve(&args(None, None, Some("q")), &none)).contains("has no [q] profile"));
        assert!(msg(resolve(&args(None, None, Some("p")), &none)).contains("has no auth_token"));
        assert!(msg(resolve(&args(Some("ftp://x"), Some("t"), None), &none)).contains("https://"));
        assert!(
            msg(resolve(&args(Some("not a url"), Some("t"), None), &none)).contains("not a URL")
        );
    }
}
