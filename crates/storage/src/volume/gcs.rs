//! A read-only volume in a Google Cloud Storage bucket, through the GCS JSON API
//! (`/storage/v1/b/{bucket}/o`): listing, object metadata and media downloads. A service
//! account authenticates with a self-signed JWT (RS256, signed with its private key) as the
//! bearer token, which Google accepts for Cloud Storage without an OAuth round trip; tokens are
//! kept until shortly before they expire. Objects are served through Egress's own signed URLs.

use super::{
    read_only, CopyError, CopyIn, CopyProgress, Listing, ObjectInfo, VolumeBackend, VolumeError,
    VolumeErrorKind,
};
use crate::{ByteRange, ByteStream};
use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use egress_core::volume::Service;
use futures_util::TryStreamExt;
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use egress_core::volume::DEFAULT_GCS_ENDPOINT;
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const TOKEN_LIFETIME: u64 = 3600;
/// A token is made anew this long before it expires.
const RENEW_BEFORE: u64 = 300;

/// Parses a PEM private key (PKCS #8, as in a service account's JSON key file).
pub fn parse_private_key(pem: &str) -> Option<RsaKeyPair> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    let der = STANDARD.decode(body).ok()?;
    RsaKeyPair::from_pkcs8(&der).ok()
}

/// A service account: its email and key, and the token last made from them.
struct ServiceAccount {
    email: String,
    key: RsaKeyPair,
    token: Mutex<Option<(String, u64)>>,
}

impl ServiceAccount {
    fn bearer(&self) -> Result<String, VolumeError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut kept = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((token, expires)) = kept.as_ref() {
            if now + RENEW_BEFORE < *expires {
                return Ok(token.clone());
            }
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({
            "iss": self.email, "sub": self.email, "scope": SCOPE,
            "iat": now, "exp": now + TOKEN_LIFETIME,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| VolumeError::new(VolumeErrorKind::Other, "SigningFailed"))?;
        let token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
        *kept = Some((token.clone(), now + TOKEN_LIFETIME));
        Ok(token)
    }
}

/// How Egress may authenticate to the bucket.
enum Auth {
    Account(ServiceAccount),
    /// A workload identity federation configuration: Google would have to trust this server's
    /// own cloud identity, which an Egress server does not have.
    Federated,
}

pub(super) struct GcsVolume {
    http: reqwest::Client,
    /// `scheme://host[:port]`, without a trailing `/`.
    base: String,
    bucket: String,
    auth: Auth,
}

impl GcsVolume {
    /// `secret` is the PEM private key, or for a federated volume its configuration.
    pub(super) fn open(
        http: reqwest::Client,
        service: &Service,
        secret: &str,
    ) -> Result<Self, &'static str> {
        let auth = if service.federated {
            Auth::Federated
        } else {
            let key = parse_private_key(secret).ok_or("the stored private key cannot be read")?;
            Auth::Account(ServiceAccount {
                email: service.credential_id.clone(),
                key,
                token: Mutex::new(None),
            })
        };
        let base = if service.endpoint.is_empty() {
            DEFAULT_GCS_ENDPOINT
        } else {
            &service.endpoint
        };
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            bucket: service.bucket.clone(),
            auth,
        })
    }

    fn objects_url(&self) -> String {
        format!("{}/storage/v1/b/{}/o", self.base, enc(&self.bucket))
    }

    fn object_url(&self, key: &str) -> String {
        format!("{}/{}", self.objects_url(), enc(key))
    }

    async fn get(
        &self,
        url: &str,
        query: &[(&str, &str)],
        range: Option<ByteRange>,
    ) -> Result<reqwest::Response, VolumeError> {
        let token = match &self.auth {
            Auth::Account(account) => account.bearer()?,
            Auth::Federated => {
                return Err(VolumeError::new(
                    VolumeErrorKind::AccessDenied,
                    "this server has no Google identity to federate with (workload identity \
                     federation); connect the bucket with a service account key \
                     (client_email, private_key)",
                ))
            }
        };
        let mut request = self.http.get(url).query(query).bearer_auth(token);
        if let Some(r) = range {
            request = request.header("Range", format!("bytes={}-{}", r.start, r.end));
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        // The JSON error body names the reason (`notFound`, `forbidden`…).
        let body: Value = response.json().await.unwrap_or_default();
        let reason = body
            .pointer("/error/errors/0/reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        use VolumeErrorKind as K;
        let kind = match status {
            401 | 403 => K::AccessDenied,
            404 => K::NotFound,
            429 => K::Throttled,
            s if s >= 500 => K::Transient,
            400 => K::InvalidArgument,
            _ => K::Other,
        };
        let code = if reason.is_empty() {
            format!("HTTP{status}")
        } else {
            reason
        };
        Err(VolumeError {
            kind,
            code,
            status: Some(status),
        })
    }

    async fn list_page(
        &self,
        query: &[(&str, &str)],
    ) -> Result<(Vec<ObjectInfo>, Vec<String>, Option<String>), VolumeError> {
        let response = self.get(&self.objects_url(), query, None).await;
        let body: Value = match response {
            Ok(r) => r.json().await.map_err(transport)?,
            // The bucket itself is missing.
            Err(e) if e.kind == VolumeErrorKind::NotFound => {
                return Err(VolumeError {
                    kind: VolumeErrorKind::NoSuchBucket,
                    ..e
                })
            }
            Err(e) => return Err(e),
        };
        let objects = body["items"]
            .as_array()
            .map(|items| items.iter().map(object_info).collect())
            .unwrap_or_default();
        let prefixes = body["prefixes"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let next = body["nextPageToken"].as_str().map(str::to_string);
        Ok((objects, prefixes, next))
    }
}

/// What a path segment keeps unencoded: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment (an object name may hold `/`, which is encoded).
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn transport(e: reqwest::Error) -> VolumeError {
    let code = if e.is_timeout() {
        "Timeout"
    } else if e.is_decode() {
        "BadResponse"
    } else {
        "ConnectionFailed"
    };
    VolumeError::new(VolumeErrorKind::Transient, code)
}

/// An object resource of the JSON API.
fn object_info(o: &Value) -> ObjectInfo {
    let size = match &o["size"] {
        Value::String(s) => s.parse().unwrap_or(0),
        v => v.as_i64().unwrap_or(0),
    };
    let mut info = ObjectInfo::new(o["name"].as_str().unwrap_or_default().to_string(), size);
    info.etag = o["etag"].as_str().map(str::to_string);
    info.md5 = o["md5Hash"]
        .as_str()
        .and_then(|b| STANDARD.decode(b).ok())
        .filter(|d| d.len() == 16)
        .map(hex::encode);
    info.content_type = o["contentType"].as_str().map(str::to_string);
    info.storage_class = o["storageClass"].as_str().map(str::to_string);
    info.last_modified = o["updated"]
        .as_str()
        .and_then(egress_core::util::parse_rfc3339_ms);
    if let Some(Value::Object(meta)) = o.get("metadata") {
        info.user_metadata = meta
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
    }
    info
}

#[async_trait]
impl VolumeBackend for GcsVolume {
    async fn probe_read(&self, prefix: &str) -> Result<(), VolumeError> {
        self.list_page(&[("prefix", prefix), ("maxResults", "1")])
            .await
            .map(|_| ())
    }

    async fn probe_write(
        &self,
        _prefix: &str,
        _properties: &Map<String, Value>,
    ) -> Result<(), VolumeError> {
        Err(read_only())
    }

    async fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        limit: i32,
    ) -> Result<Listing, VolumeError> {
        let limit = limit.to_string();
        let mut query = vec![
            ("prefix", prefix),
            ("delimiter", "/"),
            ("maxResults", &limit),
        ];
        if let Some(t) = token {
            query.push(("pageToken", t));
        }
        let (objects, prefixes, next_token) = self.list_page(&query).await?;
        Ok(Listing {
            objects,
            prefixes,
            next_token,
        })
    }

    async fn list_recursive(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<ObjectInfo>, bool), VolumeError> {
        let max = limit.max(1).to_string();
        let mut query = vec![("prefix", prefix), ("maxResults", max.as_str())];
        if let Some(after) = start_after {
            // `startOffset` is inclusive; the key itself is dropped below.
            query.push(("startOffset", after));
        }
        let (mut objects, _, next) = self.list_page(&query).await?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(after) = start_after {
            objects.retain(|o| o.key.as_str() > after);
        }
        let limit = limit.max(1) as usize;
        let more = next.is_some() || objects.len() > limit;
        objects.truncate(limit);
        Ok((objects, more))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, VolumeError> {
        match self.get(&self.object_url(key), &[], None).await {
            Ok(r) => {
                let body: Value = r.json().await.map_err(transport)?;
                Ok(Some(object_info(&body)))
            }
            Err(e) if e.kind == VolumeErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream, VolumeError> {
        let response = self
            .get(&self.object_url(key), &[("alt", "media")], range)
            .await?;
        Ok(Box::pin(
            response.bytes_stream().map_err(std::io::Error::other),
        ))
    }

    async fn copy_in(
        &self,
        _req: &CopyIn<'_>,
        _progress: &dyn CopyProgress,
    ) -> Result<(), CopyError> {
        Err(CopyError::Volume(read_only()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_read_from_the_json_api() {
        let o = json!({"name": "a/b.txt", "size": "12", "etag": "CJ+", "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==",
            "contentType": "text/plain", "updated": "2024-01-02T03:04:05.678Z", "metadata": {"k": "v"}});
        let info = object_info(&o);
        assert_eq!((info.key.as_str(), info.size), ("a/b.txt", 12));
        assert_eq!(
            info.md5.as_deref(),
            Some("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(info.user_metadata["k"], "v");
        assert!(info.last_modified.is_some());
        assert!(
            parse_private_key("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----")
                .is_none()
        );
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }
}
