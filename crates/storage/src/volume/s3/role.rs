//! S3 volumes on an IAM role: Egress assumes the role through STS AssumeRole with its own AWS
//! identity and the volume's external id, and signs with the temporary credentials. The S3
//! client's identity cache keeps them and asks again shortly before they expire.

use super::super::{VolumeError, VolumeErrorKind};
use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_sdk_s3::config::Credentials;
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use std::time::{Duration, SystemTime};

/// STS's global endpoint, used when the server names no other.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.amazonaws.com";

/// How long the temporary credentials are asked for; the identity cache renews them before.
const SESSION: Duration = Duration::from_secs(3600);

/// The server's own AWS identity, which roles trust.
#[derive(Clone)]
pub struct AwsIdentity {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsIdentity")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsIdentity {
    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, as the AWS
    /// SDKs read them; `None` when the first two are not both set.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

/// Why STS refused or failed to hand out the role's credentials; found again in an S3 call's
/// error chain by `refusal_in`, so a job tells a refused role from a passing outage.
#[derive(Debug)]
pub struct RoleError(pub VolumeError);

impl std::fmt::Display for RoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssumeRole failed: {}", self.0)
    }
}

impl std::error::Error for RoleError {}

/// The `RoleError` somewhere in an error's chain of sources, if there is one.
pub fn role_error_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a VolumeError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(RoleError(v)) = e.downcast_ref::<RoleError>() {
            return Some(v);
        }
        next = e.source();
    }
    None
}

/// A credentials provider that assumes one role.
#[derive(Debug)]
pub struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: String,
    session_name: String,
}

impl AssumeRole {
    pub fn new(
        identity: &AwsIdentity,
        sts_endpoint: &str,
        region: &str,
        role_arn: &str,
        external_id: &str,
        volume_id: &str,
    ) -> Self {
        let own = Credentials::new(
            &identity.access_key_id,
            &identity.secret_access_key,
            identity.session_token.clone(),
            None,
            "egress",
        );
        let endpoint = if sts_endpoint.is_empty() {
            DEFAULT_STS_ENDPOINT
        } else {
            sts_endpoint
        };
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(own)
            .endpoint_url(endpoint)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build();
        // Session names show in the role owner's CloudTrail: say who assumed it for what.
        let session_name: String = format!("egress-{volume_id}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        Self {
            sts: aws_sdk_sts::Client::from_conf(config),
            role_arn: role_arn.to_string(),
            external_id: external_id.to_string(),
            session_name,
        }
    }

    /// One AssumeRole call: the temporary credentials, or why there are none.
    pub async fn assume(&self) -> Result<Credentials, VolumeError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id((!self.external_id.is_empty()).then(|| self.external_id.clone()))
            .duration_seconds(SESSION.as_secs() as i32)
            .send()
            .await
            .map_err(|e| classify_sts(&e))?;
        let c = out.credentials().ok_or_else(|| {
            VolumeError::new(
                VolumeErrorKind::Transient,
                "AssumeRole returned no credentials",
            )
        })?;
        let expiry = SystemTime::try_from(c.expiration().to_owned()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "assume-role",
        ))
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.assume()
                .await
                .map_err(|e| CredentialsError::provider_error(RoleError(e)))
        })
    }
}

/// What an STS failure means for the volume: a refusal the user must fix, or an outage.
fn classify_sts<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_sts::config::http::HttpResponse>,
) -> VolumeError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (kind, code) = match err {
        SdkError::ServiceError(_) => {
            // Some STS stand-ins nest the error where the SDK does not find its code.
            let code = match (err.code(), status) {
                (Some(code), _) => code.to_string(),
                (None, Some(403)) => "AccessDenied".to_string(),
                (None, _) => "Unknown".to_string(),
            };
            let kind = match code.as_str() {
                "Throttling" | "ThrottlingException" => VolumeErrorKind::Throttled,
                _ if status.is_some_and(|s| s >= 500) => VolumeErrorKind::Transient,
                _ => VolumeErrorKind::AccessDenied,
            };
            (kind, code)
        }
        SdkError::ConstructionFailure(_) => (VolumeErrorKind::Other, "InvalidRequest".into()),
        _ => (VolumeErrorKind::Transient, "StsUnreachable".into()),
    };
    VolumeError {
        kind,
        code: format!("AssumeRole {code}"),
        status,
    }
}
