//! Platform storage in an S3 bucket (any S3-compatible endpoint, path-style).

use super::{ByteRange, ByteStream, ObjectStore};
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_s3::config::endpoint::{Endpoint, EndpointFuture, Params, ResolveEndpoint};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use aws_smithy_types::endpoint::EndpointAuthScheme;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::time::Duration;
use tokio_util::io::ReaderStream;

/// Parts of a streamed write; memory per write is bounded by this.
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
}

impl S3Location {
    /// Parses `s3://bucket/prefix?endpoint=URL&region=REGION`.
    pub fn parse(spec: &str) -> Result<Self> {
        let url = url::Url::parse(spec).context("invalid s3:// URL")?;
        let bucket = url
            .host_str()
            .context("s3:// URL needs a bucket")?
            .to_string();
        let prefix = url.path().trim_matches('/').to_string();
        let mut endpoint = None;
        let mut region = "us-east-1".to_string();
        for (k, v) in url.query_pairs() {
            match &*k {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = v.into_owned(),
                other => bail!("unknown s3:// URL option {other:?}"),
            }
        }
        Ok(Self {
            bucket,
            prefix,
            endpoint,
            region,
        })
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

/// How long an object-store call may wait. No call may hang a worker or a request forever, yet a
/// long legitimate transfer must never be cut: there is no cap on a whole call, only on each wait.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// From sending a request until the head of its answer (the request's body is sent meanwhile).
    pub first_byte: Duration,
    /// A body, either way, may move slower than 1 byte/s for this long before the call fails.
    pub stalled_body: Duration,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        first_byte: Duration::from_secs(60),
        stalled_body: Duration::from_secs(20),
    };
}

/// Builds one reusable S3 client: path-style, explicit credentials, no default checksum
/// headers (some S3-compatible servers reject them), the default timeouts, and the activity
/// interceptor the engine's stall detection reads.
pub fn build_client(
    endpoint: Option<&str>,
    region: &str,
    credentials: impl ProvideCredentials + 'static,
) -> Client {
    build_client_with(endpoint, region, credentials, Timeouts::DEFAULT)
}

/// `build_client` with virtual-hosted addressing (`bucket.host`), for S3-compatible services
/// that refuse path-style requests (Alibaba OSS).
pub fn build_virtual_hosted_client(
    endpoint: &str,
    region: &str,
    credentials: impl ProvideCredentials + 'static,
) -> Client {
    let conf = base_config(region, credentials, Timeouts::DEFAULT)
        .force_path_style(false)
        .endpoint_url(endpoint);
    Client::from_conf(conf.build())
}

fn build_client_with(
    endpoint: Option<&str>,
    region: &str,
    credentials: impl ProvideCredentials + 'static,
    timeouts: Timeouts,
) -> Client {
    let mut conf = base_config(region, credentials, timeouts);
    if let Some(endpoint) = endpoint {
        conf = conf.endpoint_resolver(PathStyle::new(endpoint));
    }
    Client::from_conf(conf.build())
}

fn base_config(
    region: &str,
    credentials: impl ProvideCredentials + 'static,
    timeouts: Timeouts,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeouts.connect)
                .read_timeout(timeouts.first_byte)
                .build(),
        )
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(timeouts.stalled_body)
                .build(),
        )
        .interceptor(super::activity::Observe)
}

/// Path-style addressing on a fixed endpoint, worked out directly. For endpoints of the form
/// `scheme://host[:port]` (volumes are normalized to it), the SDK's general rules engine arrives
/// at the same URL and signing scheme, but runs for every request.
#[derive(Debug)]
struct PathStyle {
    /// The endpoint as configured, for requests without a bucket.
    endpoint: String,
    /// The endpoint ending in exactly one `/`, which a bucket name follows.
    base: String,
}

/// What S3 leaves unencoded in a bucket name: the unreserved characters of RFC 3986.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl PathStyle {
    fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            base: format!("{}/", endpoint.trim_end_matches('/')),
        }
    }

    fn resolve(&self, bucket: Option<&str>, region: Option<&str>) -> Endpoint {
        let url = match bucket {
            Some(bucket) => {
                let mut url = self.base.clone();
                url.extend(percent_encoding::utf8_percent_encode(bucket, UNRESERVED));
                url
            }
            None => self.endpoint.clone(),
        };
        let mut auth = EndpointAuthScheme::with_capacity("sigv4", 3)
            .put("disableDoubleEncoding", true)
            .put("signingName", "s3".to_string());
        if let Some(region) = region {
            auth = auth.put("signingRegion", region.to_string());
        }
        Endpoint::builder().url(url).auth_scheme(auth).build()
    }
}

impl ResolveEndpoint for PathStyle {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        EndpointFuture::ready(Ok(self.resolve(params.bucket(), params.region())))
    }
}

pub struct S3Store {
    client: Client,
    location: S3Location,
}

impl S3Store {
    /// Credentials come from the standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// (and optional `AWS_SESSION_TOKEN`) environment variables.
    pub fn from_env(location: S3Location) -> Result<Self> {
        let key = std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?;
        let secret =
            std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY is not set")?;
        let token = std::env::var("AWS_SESSION_TOKEN").ok();
        let credentials = Credentials::new(key, secret, token, None, "environment");
        let client = build_client(location.endpoint.as_deref(), &location.region, credentials);
        Ok(Self { client, location })
    }

    async fn put_multipart(&self, key: &str, first: Bytes, body: &mut ByteStream) -> Result<u64> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.location.bucket)
            .key(key)
            .send()
            .await?;
        let upload_id = upload.upload_id().context("no upload id")?.to_string();
        let result = self.upload_parts(key, &upload_id, first, body).await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.location.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut ByteStream,
    ) -> Result<u64> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            total += chunk.len() as u64;
            let number = parts.len() as i32 + 1;
            let done = self
                .client
                .upload_part()
                .bucket(&self.location.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(SdkBody::from(chunk))
                .send()
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(done.e_tag)
                    .build(),
            );
            next = read_part(body).await?;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.location.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await?;
        Ok(total)
    }
}

/// Reads up to `PART_SIZE` bytes; `None` at the end of the stream.
async fn read_part(body: &mut ByteStream) -> Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while buf.len() < PART_SIZE {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok(if buf.is_empty() {
        None
    } else {
        Some(buf.freeze())
    })
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64> {
        let key = self.location.key(key);
        let first = read_part(&mut body).await?.unwrap_or_default();
        if first.len() < PART_SIZE {
            let size = first.len() as u64;
            self.client
                .put_object()
                .bucket(&self.location.bucket)
                .key(&key)
                .body(SdkBody::from(first))
                .send()
                .await?;
            return Ok(size);
        }
        self.put_multipart(&key, first, &mut body).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream> {
        let mut request = self
            .client
            .get_object()
            .bucket(&self.location.bucket)
            .key(self.location.key(key));
        if let Some(r) = range {
            request = request.range(format!("bytes={}-{}", r.start, r.end));
        }
        let output = request.send().await?;
        Ok(Box::pin(ReaderStream::new(output.body.into_async_read())))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(self.location.key(key))
            .send()
            .await?;
        Ok(())
    }

    /// One DeleteObjects per 1,000 keys instead of a request per key.
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(self.location.key(k))
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.location.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()?,
                )
                .send()
                .await?;
            if let Some(e) = output.errors().first() {
                bail!(
                    "deleting {}: {}",
                    e.key().unwrap_or_default(),
                    e.message().unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    fn s3_source(&self, key: &str) -> Option<super::S3Source> {
        let endpoint = self
            .location
            .endpoint
            .clone()
            .unwrap_or_else(|| egress_core::volume::DEFAULT_ENDPOINT.to_string());
        Some(super::S3Source {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: self.location.bucket.clone(),
            key: self.location.key(key),
        })
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(self.location.key(key))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn path_style_endpoints_match_the_sdk_rules() {
        let sdk = aws_sdk_s3::config::endpoint::DefaultResolver::new();
        for endpoint in [
            "http://127.0.0.1:9000",
            "http://127.0.0.1:9000/",
            "https://s3.eu-west-1.amazonaws.com",
        ] {
            for bucket in [Some("bucket"), Some("my.bucket-1"), None] {
                for region in ["us-east-1", "eu-west-2"] {
                    let mut params = Params::builder()
                        .region(region)
                        .force_path_style(true)
                        .endpoint(endpoint);
                    if let Some(bucket) = bucket {
                        params = params.bucket(bucket);
                    }
                    let params = params.build().unwrap();
                    let ours = PathStyle::new(endpoint).resolve_endpoint(&params).await;
                    let theirs = sdk.resolve_endpoint(&params).await;
                    assert_eq!(
                        ours.unwrap(),
                        theirs.unwrap(),
                        "{endpoint} {bucket:?} {region}"
                    );
                }
            }
        }
    }

    fn test_client(endpoint: &str, first_byte: Duration) -> Client {
        let timeouts = Timeouts {
            connect: Duration::from_secs(2),
            first_byte,
            stalled_body: Duration::from_secs(2),
        };
        let credentials = Credentials::new("k", "s", None, None, "test");
        build_client_with(Some(endpoint), "us-east-1", credentials, timeouts)
    }

    /// An endpoint that accepts connections and reads requests but never answers: a call must
    /// fail with a retryable timeout instead of holding its caller forever.
    #[tokio::test]
    async fn a_silent_endpoint_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let client = test_client(&endpoint, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let err = client
            .head_object()
            .bucket("b")
            .key("k")
            .send()
            .await
            .unwrap_err();
        let classified = crate::volume::classify(&err);
        assert_eq!(classified.code, "Timeout", "{err:?}");
        assert!(classified.is_retryable());
        // The SDK's own retries (3 attempts) each wait 200 ms; nowhere near a hang.
        assert!(started.elapsed() < Duration::from_secs(30));
        silent.abort();
    }

    /// An answer moves the activity of the job whose task made the call on; between calls the
    /// job is not busy.
    #[tokio::test]
    async fn answers_move_the_calling_job_on() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let client = test_client(&endpoint, Duration::from_secs(5));
        let activity = std::sync::Arc::new(super::super::activity::Activity::default());
        let outside = client.head_object().bucket("b").key("k").send().await;
        assert!(outside.is_err());
        assert_eq!(activity.snapshot(), (0, false));
        let inside = activity
            .clone()
            .scope(client.head_object().bucket("b").key("k").send())
            .await;
        assert!(inside.is_err());
        let (events, busy) = activity.snapshot();
        assert!(
            events >= 2,
            "the answer's head and the attempt's end: {events}"
        );
        assert!(!busy);
        server.abort();
    }

    /// An error inside a 200 (S3 documents it for CopyObject and CompleteMultipartUpload) is
    /// worth another attempt, with or without a code the SDK could read.
    #[test]
    fn errors_inside_a_200_are_retryable() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ErrorMetadata, SdkError};
        use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError;
        for (code, status) in [(None, 200), (Some("InternalError"), 200), (None, 403)] {
            let mut meta = ErrorMetadata::builder();
            if let Some(code) = code {
                meta = meta.code(code);
            }
            let err = SdkError::service_error(
                CompleteMultipartUploadError::generic(meta.build()),
                HttpResponse::new(
                    status.try_into().unwrap(),
                    aws_smithy_types::body::SdkBody::empty(),
                ),
            );
            let classified = crate::volume::classify(&err);
            assert_eq!(
                classified.is_retryable(),
                status == 200,
                "{code:?} {status}"
            );
        }
    }

    #[test]
    fn parses_platform_urls() {
        let l = S3Location::parse(
            "s3://bucket/some/prefix?endpoint=http://127.0.0.1:5000&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(l.bucket, "bucket");
        assert_eq!(l.prefix, "some/prefix");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(l.region, "eu-west-1");
        assert_eq!(l.key("blobs/x"), "some/prefix/blobs/x");
        let plain = S3Location::parse("s3://b").unwrap();
        assert_eq!(
            (plain.prefix.as_str(), plain.region.as_str(), plain.endpoint),
            ("", "us-east-1", None)
        );
        assert!(S3Location::parse("s3://b?bogus=1").is_err());
    }
}
