//! Volumes without I/O: the stored service description, validation of create and update bodies,
//! export properties, the endpoint allowlist and object-key building.

use crate::error::{Code, SbgError, SbgResult};
use crate::model::AccessMode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub const MAX_KEY_BYTES: usize = 1024;
pub const DEFAULT_ENDPOINT: &str = "https://s3.amazonaws.com";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_GCS_ENDPOINT: &str = "https://storage.googleapis.com";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    #[default]
    S3,
    Gcs,
    Local,
    /// Alibaba Cloud OSS, through its S3-compatible API; read-only.
    Oss,
    /// Azure Blob Storage; read-only.
    Azure,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::S3 => "s3",
            ServiceKind::Gcs => "gcs",
            ServiceKind::Local => "local",
            ServiceKind::Oss => "oss",
            ServiceKind::Azure => "azure",
        }
    }

    /// Whether the volume is reached through the S3 API.
    pub fn speaks_s3(self) -> bool {
        matches!(self, ServiceKind::S3 | ServiceKind::Oss)
    }

    /// Whether Egress only reads such volumes: exports to them are refused (9027).
    pub fn read_only(self) -> bool {
        matches!(
            self,
            ServiceKind::Gcs | ServiceKind::Oss | ServiceKind::Azure
        )
    }
}

/// What a volume connects to, minus its secret (which is sealed separately).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub kind: ServiceKind,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub region: String,
    /// S3 access key id, or the GCS client email: the public half of the credentials.
    #[serde(default)]
    pub credential_id: String,
    /// S3 volumes on an IAM role: the role Egress assumes with its own AWS identity. The
    /// external id is the sealed secret.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_arn: String,
    /// GCS volumes given an IAM `configuration` (workload identity federation) instead of a
    /// service account key; the configuration is the sealed secret.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub federated: bool,
    /// Azure: the storage account (the container is `bucket`, the client id `credential_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Azure: the Entra ID tenant of the volume's application.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tenant_id: String,
    /// Local volumes: the folder objects live under.
    #[serde(default)]
    pub root: String,
    /// Export defaults: `sse_algorithm`, `sse_aws_kms_key_id`, `aws_canned_acl`, `aws_storage_class`.
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// A validated create body.
#[derive(Debug, Clone)]
pub struct NewVolume {
    pub name: String,
    pub description: Option<String>,
    pub access_mode: AccessMode,
    pub service: Service,
    /// The secret half of the credentials (S3 secret key, GCS private key); empty for local.
    pub secret: String,
}

/// Server-side rules for volumes.
#[derive(Debug, Clone, Default)]
pub struct VolumePolicy {
    /// URL prefixes of S3 endpoints users may connect; empty means only AWS S3 over https.
    pub allow_endpoints: Vec<String>,
    /// The endpoint of S3 volumes whose body names none; empty means `DEFAULT_ENDPOINT`.
    pub s3_default_endpoint: String,
    /// The endpoint of GCS volumes whose body names none; empty means `DEFAULT_GCS_ENDPOINT`.
    pub gcs_default_endpoint: String,
    /// Folders local volumes may live in (`--local-volume-root`), resolved; none turns local
    /// volumes off.
    pub local_roots: Vec<PathBuf>,
    /// The server's own folders (data dir, platform storage), resolved: no local volume may
    /// overlap one.
    pub reserved: Vec<PathBuf>,
}

impl VolumePolicy {
    /// The endpoint of GCS volumes whose body names none.
    pub fn gcs_default_endpoint(&self) -> &str {
        if self.gcs_default_endpoint.is_empty() {
            DEFAULT_GCS_ENDPOINT
        } else {
            &self.gcs_default_endpoint
        }
    }

    /// The endpoint of S3 volumes whose body names none.
    pub fn s3_default_endpoint(&self) -> &str {
        if self.s3_default_endpoint.is_empty() {
            DEFAULT_ENDPOINT
        } else {
            &self.s3_default_endpoint
        }
    }

    /// Why a resolved local volume root may not be used, if it may not.
    pub fn refuse_local_root(&self, root: &Path) -> Option<&'static str> {
        if self.local_roots.is_empty() {
            return Some("local volumes are disabled on this server (--local-volume-root)");
        }
        if !self
            .local_roots
            .iter()
            .any(|declared| root.starts_with(declared))
        {
            return Some("root must lie inside a folder declared with --local-volume-root");
        }
        if self
            .reserved
            .iter()
            .any(|own| root.starts_with(own) || own.starts_with(root))
        {
            return Some("root overlaps the server's own files");
        }
        None
    }
}

const CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];
const PROPERTY_KEYS: &[&str] = &[
    "sse_algorithm",
    "sse_aws_kms_key_id",
    "aws_canned_acl",
    "aws_storage_class",
];

fn invalid_service(detail: impl std::fmt::Display) -> SbgError {
    SbgError::new(
        Code::InvalidService,
        format!("The service object is invalid: {detail}"),
    )
}

/// Checks export properties as given (keys optional, values strings or null).
pub fn check_properties(props: &Map<String, Value>) -> SbgResult<()> {
    for (key, value) in props {
        if !PROPERTY_KEYS.contains(&key.as_str()) {
            return Err(invalid_service(format!("unknown property '{key}'")));
        }
        if !(value.is_null() || value.is_string()) {
            return Err(invalid_service(format!(
                "property '{key}' must be a string or null"
            )));
        }
    }
    let get = |k: &str| props.get(k).and_then(Value::as_str);
    match get("sse_algorithm") {
        None | Some("AES256") | Some("aws:kms") => {}
        Some(_) => return Err(SbgError::new(
            Code::InvalidSse,
            "Invalid server-side encryption selected (sse_algorithm): use AES256, aws:kms or null.",
        )),
    }
    if get("sse_aws_kms_key_id").is_some_and(|k| !k.is_empty())
        && get("sse_algorithm") != Some("aws:kms")
    {
        return Err(SbgError::new(
            Code::InvalidSse,
            "sse_aws_kms_key_id is only allowed with sse_algorithm aws:kms.",
        ));
    }
    if let Some(acl) = get("aws_canned_acl") {
        if !CANNED_ACLS.contains(&acl) {
            return Err(SbgError::new(
                Code::InvalidCannedAcl,
                format!("Invalid canned ACL selected (aws_canned_acl): {acl}."),
            ));
        }
    }
    if let Some(class) = get("aws_storage_class") {
        if !STORAGE_CLASSES.contains(&class) {
            return Err(SbgError::new(
                Code::InvalidStorageClass,
                format!("Invalid S3 storage class selected (aws_storage_class): {class}."),
            ));
        }
    }
    Ok(())
}

/// The properties an export applies: its own values over the volume's, over `AES256`. Setting
/// `sse_algorithm` drops an inherited KMS key, which belongs to the algorithm it came with.
pub fn effective_properties(
    volume: &Map<String, Value>,
    export: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sse_algorithm".into(), Value::from("AES256"));
    for key in &PROPERTY_KEYS[1..] {
        out.insert((*key).into(), Value::Null);
    }
    for layer in [volume, export] {
        if layer.contains_key("sse_algorithm") {
            out.insert("sse_aws_kms_key_id".into(), Value::Null);
        }
        for (k, v) in layer {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Volume names: 3 to 32 English letters, digits and underscores.
pub fn check_name(name: &str) -> SbgResult<()> {
    if name.is_empty() {
        return Err(SbgError::from(Code::VolumeNameEmpty));
    }
    if !(3..=32).contains(&name.len())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(SbgError::from(Code::InvalidVolumeName));
    }
    Ok(())
}

/// `RW` or `RO`, in any case.
pub fn parse_access_mode(value: Option<&Value>) -> SbgResult<AccessMode> {
    value
        .and_then(Value::as_str)
        .and_then(|mode| mode.to_ascii_uppercase().parse().ok())
        .ok_or_else(|| SbgError::from(Code::AccessModeMissing))
}

/// A volume of a kind Egress only reads (GCS, OSS, Azure) cannot be RW (9057, naming the kind).
pub fn check_access_mode(kind: ServiceKind, mode: AccessMode) -> SbgResult<()> {
    if kind.read_only() && mode == AccessMode::Rw {
        return Err(SbgError::new(
            Code::GcsReadOnlyOnly,
            format!(
                "This environment only supports RO buckets of type {}.",
                kind.as_str().to_uppercase()
            ),
        ));
    }
    Ok(())
}

/// Normalizes an S3 endpoint to `scheme://host[:port]` (a bare host means https) and checks it
/// against the allowlist before anything connects to it.
pub fn check_endpoint(endpoint: &str, policy: &VolumePolicy) -> SbgResult<String> {
    check_endpoint_for(ServiceKind::S3, endpoint, policy)
}

/// Whether `host` is an OSS region endpoint, `oss-<region>.aliyuncs.com`.
pub fn is_oss_host(host: &str) -> bool {
    host.strip_suffix(".aliyuncs.com")
        .and_then(|rest| rest.strip_prefix("oss-"))
        .is_some_and(|region| {
            !region.is_empty()
                && !region.starts_with('-')
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `check_endpoint` for a kind of volume: without an explicit allowlist, each kind allows its
/// own cloud's hosts over https.
pub fn check_endpoint_for(
    kind: ServiceKind,
    endpoint: &str,
    policy: &VolumePolicy,
) -> SbgResult<String> {
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|_| invalid_service("endpoint is not a valid URL"))?;
    let host = url.host_str().unwrap_or("");
    if !matches!(url.scheme(), "http" | "https")
        || host.is_empty()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.path().trim_matches('/').is_empty()
    {
        return Err(invalid_service("endpoint must be http(s)://host[:port]"));
    }
    let normalized = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    // The AWS forms are matched label by label: a looser match such as `s3*.amazonaws.com`
    // also admits hosts whose first label anyone can choose (`s3-x.us-east-1.elb.amazonaws.com`).
    fn is_region(r: &str) -> bool {
        let parts: Vec<&str> = r.split('-').collect();
        let letters = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
        parts.len() >= 3
            && parts[0].len() == 2
            && letters(&parts[0])
            && parts[1..parts.len() - 1].iter().all(letters)
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty()
    }
    fn is_aws_s3_host(host: &str) -> bool {
        let (rest, china) = match host.strip_suffix(".amazonaws.com") {
            Some(rest) => (rest, false),
            None => match host.strip_suffix(".amazonaws.com.cn") {
                Some(rest) => (rest, true),
                None => return false,
            },
        };
        match rest.split('.').collect::<Vec<_>>().as_slice() {
            ["s3"] | ["s3-external-1"] => !china,
            ["s3", region]
            | ["s3", "dualstack", region]
            | ["s3-fips", region]
            | ["s3-fips", "dualstack", region] => is_region(region),
            [legacy] => legacy.strip_prefix("s3-").is_some_and(is_region),
            _ => false,
        }
    }
    let allowed = if policy.allow_endpoints.is_empty() {
        let own_cloud = match kind {
            ServiceKind::Oss => is_oss_host(host),
            ServiceKind::Gcs => matches!(host, "storage.googleapis.com" | "www.googleapis.com"),
            ServiceKind::Azure => host
                .strip_suffix(".blob.core.windows.net")
                .is_some_and(|a| {
                    !a.is_empty()
                        && a.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                }),
            _ => is_aws_s3_host(host),
        };
        url.scheme() == "https" && url.port().is_none() && own_cloud
    } else {
        policy.allow_endpoints.iter().any(|prefix| {
            let prefix = prefix.trim_end_matches('/');
            normalized == prefix || normalized.starts_with(&format!("{prefix}/"))
        })
    };
    if !allowed {
        return Err(SbgError::new(
            Code::InvalidService,
            format!("The endpoint {normalized} is not allowed on this server."),
        ));
    }
    Ok(normalized)
}

fn text(obj: &Map<String, Value>, key: &str) -> SbgResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid_service(format!("'{key}' must be a string"))),
    }
}

fn required(obj: &Map<String, Value>, key: &str) -> SbgResult<String> {
    text(obj, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid_service(format!("'{key}' is required")))
}

/// A volume prefix: relative, no `..`, no empty segments; outer slashes are dropped.
pub fn normalize_prefix(prefix: &str) -> SbgResult<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.split('/').any(|s| s == ".." || s == ".") || trimmed.contains("//") {
        return Err(invalid_service(
            "prefix must not contain '.', '..' or empty segments",
        ));
    }
    Ok(trimmed.to_string())
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
pub fn check_role_arn(arn: &str) -> SbgResult<String> {
    let bad = || {
        invalid_service("role_arn must be an IAM role ARN (arn:aws:iam::123456789012:role/name)")
    };
    let rest = arn.strip_prefix("arn:").ok_or_else(bad)?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, region, account, resource) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let name = resource.strip_prefix("role/").unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if !(partition == "aws" || partition.starts_with("aws-"))
        || !partition
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-')
        || service != "iam"
        || !region.is_empty()
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || !name_ok
    {
        return Err(bad());
    }
    Ok(arn.to_string())
}

/// An STS external id: empty (the role asks for none), or 2 to 1224 characters of
/// `[\w+=,.@:/-]`, as STS takes it.
pub fn check_external_id(id: &str) -> SbgResult<String> {
    let ok = id.is_empty()
        || ((2..=1224).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c)));
    if !ok {
        return Err(invalid_service(
            "external_id must be 2 to 1224 letters, digits or _+=,.@:/- characters",
        ));
    }
    Ok(id.to_string())
}

/// A GCS IAM `configuration`: the credential configuration file Google Cloud Console gives for
/// workload identity federation, as a JSON object or a string holding one. Returns it as
/// compact JSON, to be sealed.
pub fn check_gcs_configuration(value: Option<&Value>) -> SbgResult<String> {
    let parsed = match value {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| invalid_service("configuration must be a JSON object"))?,
        _ => return Err(invalid_service("configuration must be a JSON object")),
    };
    let Some(config) = parsed.as_object() else {
        return Err(invalid_service("configuration must be a JSON object"));
    };
    let field = |k: &str| config.get(k).and_then(Value::as_str).unwrap_or("");
    if field("type") != "external_account" || field("audience").is_empty() {
        return Err(invalid_service(
            "configuration must be a workload identity federation configuration \
             (type external_account, with an audience)",
        ));
    }
    Ok(parsed.to_string())
}

/// Parses the `service` object of a create body into the stored service and its secret.
pub fn parse_service(
    value: Option<&Value>,
    access_mode: AccessMode,
    policy: &VolumePolicy,
) -> SbgResult<(Service, String)> {
    let obj = match value {
        Some(Value::Object(o)) => o,
        _ => return Err(SbgError::from(Code::ServiceMissing)),
    };
    let kind = match text(obj, "type")?
        .map(|t| t.to_ascii_lowercase())
        .as_deref()
    {
        Some("s3") => ServiceKind::S3,
        Some("gcs") => ServiceKind::Gcs,
        Some("local") => ServiceKind::Local,
        Some("oss") => ServiceKind::Oss,
        Some("azure") => ServiceKind::Azure,
        _ => return Err(invalid_service("type must be s3, gcs, oss, azure or local")),
    };
    let empty = Map::new();
    let credentials = match obj.get("credentials") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(invalid_service("credentials must be an object")),
    };
    let properties = match obj.get("properties") {
        Some(Value::Object(p)) => p.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(invalid_service("properties must be an object")),
    };
    if kind == ServiceKind::Azure {
        // The R client sends the storage account's resource id here.
        for (key, value) in &properties {
            if key != "resource_id" || !(value.is_string() || value.is_null()) {
                return Err(invalid_service(format!(
                    "Azure volumes take only the property resource_id (a string), not '{key}'"
                )));
            }
        }
    } else {
        check_properties(&properties)?;
    }
    let mut service = Service {
        kind,
        bucket: String::new(),
        prefix: normalize_prefix(&text(obj, "prefix")?.unwrap_or_default())?,
        endpoint: String::new(),
        region: text(obj, "region")?.unwrap_or_else(|| DEFAULT_REGION.to_string()),
        credential_id: String::new(),
        root: String::new(),
        properties,
        ..Default::default()
    };
    check_access_mode(kind, access_mode)?;
    let secret = match kind {
        ServiceKind::S3 => {
            service.bucket = required(obj, "bucket")?;
            service.endpoint = check_endpoint(
                &text(obj, "endpoint")?.unwrap_or_else(|| policy.s3_default_endpoint().into()),
                policy,
            )?;
            if credentials.contains_key("role_arn") {
                if credentials.contains_key("access_key_id")
                    || credentials.contains_key("secret_access_key")
                {
                    return Err(invalid_service(
                        "give either role_arn (and external_id) or access_key_id and secret_access_key, not both",
                    ));
                }
                service.role_arn = check_role_arn(&required(credentials, "role_arn")?)?;
                check_external_id(&text(credentials, "external_id")?.unwrap_or_default())?
            } else {
                service.credential_id = required(credentials, "access_key_id")?;
                required(credentials, "secret_access_key")?
            }
        }
        ServiceKind::Oss => {
            service.bucket = required(obj, "bucket")?;
            service.endpoint = check_endpoint_for(kind, &required(obj, "endpoint")?, policy)?;
            // OSS signs with its region, `oss-cn-hangzhou` for oss-cn-hangzhou.aliyuncs.com.
            if text(obj, "region")?.is_none() {
                let host = service.endpoint.split("://").nth(1).unwrap_or("");
                if let Some(region) = host
                    .strip_suffix(".aliyuncs.com")
                    .filter(|_| is_oss_host(host))
                {
                    service.region = region.to_string();
                }
            }
            service.credential_id = required(credentials, "access_key_id")?;
            required(credentials, "secret_access_key")?
        }
        ServiceKind::Azure => {
            service.account = required(obj, "storage_account")?;
            if !(3..=24).contains(&service.account.len())
                || !service
                    .account
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(invalid_service(
                    "storage_account must be 3 to 24 lowercase letters and digits",
                ));
            }
            service.bucket = required(obj, "container")?;
            let default = format!("https://{}.blob.core.windows.net", service.account);
            let endpoint = text(obj, "endpoint")?.unwrap_or(default);
            service.endpoint = check_endpoint_for(kind, &endpoint, policy)?;
            service.tenant_id = required(credentials, "tenant_id")?;
            service.credential_id = required(credentials, "client_id")?;
            required(credentials, "client_secret")?
        }
        ServiceKind::Gcs => {
            service.bucket = required(obj, "bucket")?;
            // `root_url` is what the docs and the R client call the API endpoint.
            let endpoint = match (text(obj, "endpoint")?, text(obj, "root_url")?) {
                (Some(e), _) | (None, Some(e)) => e,
                (None, None) => policy.gcs_default_endpoint().to_string(),
            };
            service.endpoint = check_endpoint_for(kind, &endpoint, policy)?;
            if credentials.contains_key("configuration") {
                if credentials.contains_key("private_key") {
                    return Err(invalid_service(
                        "give either configuration or client_email and private_key, not both",
                    ));
                }
                service.federated = true;
                check_gcs_configuration(credentials.get("configuration"))?
            } else {
                service.credential_id = required(credentials, "client_email")?;
                if !service.credential_id.contains('@') {
                    return Err(invalid_service("client_email must be an email address"));
                }
                let key = required(credentials, "private_key")?;
                if !key.contains("-----BEGIN") || !key.contains("PRIVATE KEY-----") {
                    return Err(SbgError::from(Code::InvalidPrivateKey));
                }
                key
            }
        }
        ServiceKind::Local => {
            // Only the syntax here; the API resolves the folder and checks it against the
            // policy, and so does every later use.
            let root = required(obj, "root")?;
            if !root.starts_with('/') || root.split('/').any(|s| s == "..") {
                return Err(invalid_service(
                    "root must be an absolute path without '..'",
                ));
            }
            service.root = root;
            String::new()
        }
    };
    Ok((service, secret))
}

/// Parses a whole create body.
pub fn parse_new_volume(body: &Map<String, Value>, policy: &VolumePolicy) -> SbgResult<NewVolume> {
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(SbgError::new(
                Code::InvalidVolumeName,
                "Volume name must be a string.",
            ))
        }
    };
    check_name(&name)?;
    // SBG creates an RW volume when the body names no access mode (null counts as none).
    let access_mode = match body.get("access_mode") {
        None | Some(Value::Null) => AccessMode::Rw,
        given => parse_access_mode(given)?,
    };
    let description = text(body, "description")
        .map_err(|_| SbgError::new(Code::BadRequest, "description must be a string"))?;
    let (service, secret) = parse_service(body.get("service"), access_mode, policy)?;
    Ok(NewVolume {
        name,
        description,
        access_mode,
        service,
        secret,
    })
}

/// Checks an export or import location: not empty, no leading `/`, no `.` or `..` segment.
pub fn check_location(location: &str) -> SbgResult<()> {
    let bad = |why: &str| SbgError::new(Code::InvalidLocation, format!("Invalid location: {why}."));
    if location.is_empty() {
        return Err(bad("it must not be empty"));
    }
    if location.starts_with('/') {
        return Err(bad("it must be relative to the volume (no leading '/')"));
    }
    if location.split('/').any(|s| s == ".." || s == ".") {
        return Err(bad("'.' and '..' segments are not allowed"));
    }
    if location.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(())
}

/// The object key for a volume-relative location: the prefix joined with one `/`.
pub fn object_key(prefix: &str, location: &str) -> String {
    if prefix.is_empty() {
        location.to_string()
    } else {
        format!("{prefix}/{location}")
    }
}

/// The key for `location`, checked and at most 1024 bytes long.
pub fn checked_key(prefix: &str, location: &str) -> SbgResult<String> {
    check_location(location)?;
    let key = object_key(prefix, location);
    if key.len() > MAX_KEY_BYTES {
        return Err(SbgError::new(
            Code::InvalidLocation,
            format!(
                "Invalid location: the object key would be {} bytes; the limit is {MAX_KEY_BYTES}.",
                key.len()
            ),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn access_mode_parses_in_any_case() {
        for (given, mode) in [
            ("RW", AccessMode::Rw),
            ("ro", AccessMode::Ro),
            ("Rw", AccessMode::Rw),
        ] {
            assert_eq!(parse_access_mode(Some(&json!(given))).unwrap(), mode);
        }
        for bad in [json!("RX"), json!(""), json!(1), Value::Null] {
            let err = parse_access_mode(Some(&bad)).unwrap_err();
            assert_eq!(err.code, Code::AccessModeMissing, "{bad}");
        }
        assert_eq!(
            parse_access_mode(None).unwrap_err().code,
            Code::AccessModeMissing
        );
    }

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn property_rules() {
        assert!(check_properties(&props(json!({"sse_algorithm": "AES256", "aws_canned_acl": "private", "aws_storage_class": "GLACIER"}))).is_ok());
        assert!(check_properties(&props(
            json!({"sse_algorithm": "aws:kms", "sse_aws_kms_key_id": "k"})
        ))
        .is_ok());
        assert!(check_properties(&props(json!({"sse_algorithm": null}))).is_ok());
        assert_eq!(
            check_properties(&props(json!({"sse_algorithm": "rot13"})))
                .unwrap_err()
                .code
                .number(),
            9023
        );
        assert_eq!(
            check_properties(&props(
                json!({"sse_algorithm": "AES256", "sse_aws_kms_key_id": "k"})
            ))
            .unwrap_err()
            .code
            .number(),
            9023
        );
        assert_eq!(
            check_properties(&props(json!({"sse_aws_kms_key_id": "k"})))
                .unwrap_err()
                .code
                .number(),
            9023
        );
        assert_eq!(
            check_properties(&props(json!({"aws_canned_acl": "everyone"})))
                .unwrap_err()
                .code
                .number(),
            9022
        );
        assert_eq!(
            check_properties(&props(json!({"aws_storage_class": "COLD"})))
                .unwrap_err()
                .code
                .number(),
            9024
        );
        assert_eq!(
            check_properties(&props(json!({"bogus": "x"})))
                .unwrap_err()
                .code
                .number(),
            9017
        );
    }

    #[test]
    fn effective_properties_layer() {
        let none = Map::new();
        let e = effective_properties(&none, &none);
        assert_eq!(e["sse_algorithm"], "AES256");
        assert!(e["aws_canned_acl"].is_null());
        let vol = props(
            json!({"sse_algorithm": "aws:kms", "sse_aws_kms_key_id": "k1", "aws_canned_acl": "private"}),
        );
        let e = effective_properties(&vol, &props(json!({"aws_storage_class": "STANDARD_IA"})));
        assert_eq!(
            (
                e["sse_algorithm"].as_str(),
                e["sse_aws_kms_key_id"].as_str()
            ),
            (Some("aws:kms"), Some("k1"))
        );
        assert_eq!(e["aws_storage_class"], "STANDARD_IA");
        let e = effective_properties(&vol, &props(json!({"sse_algorithm": "AES256"})));
        assert!(
            e["sse_aws_kms_key_id"].is_null(),
            "the KMS key went with its algorithm"
        );
        assert_eq!(e["aws_canned_acl"], "private");
        let e = effective_properties(&vol, &props(json!({"sse_algorithm": null})));
        assert!(e["sse_algorithm"].is_null());
    }

    #[test]
    fn names() {
        assert!(check_name("my_volume_1").is_ok());
        assert_eq!(check_name("").unwrap_err().code.number(), 9013);
        for bad in ["my-volume", "ab", &"x".repeat(33), "vol ume", "vølume"] {
            assert_eq!(check_name(bad).unwrap_err().code.number(), 9014, "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        let aws = VolumePolicy::default();
        assert_eq!(
            check_endpoint("s3.amazonaws.com", &aws).unwrap(),
            "https://s3.amazonaws.com"
        );
        for good in [
            "https://s3.eu-west-1.amazonaws.com",
            "s3.us-gov-west-1.amazonaws.com",
            "https://s3-us-west-2.amazonaws.com",
            "https://s3-external-1.amazonaws.com",
            "https://s3.dualstack.ap-southeast-2.amazonaws.com",
            "https://s3-fips.us-east-1.amazonaws.com",
            "https://s3-fips.dualstack.us-gov-east-1.amazonaws.com",
            "https://s3.cn-north-1.amazonaws.com.cn",
            "https://s3.dualstack.cn-northwest-1.amazonaws.com.cn",
            "https://S3.US-EAST-1.AMAZONAWS.COM",
        ] {
            assert!(check_endpoint(good, &aws).is_ok(), "{good}");
        }
        for bad in [
            "http://s3.amazonaws.com",
            "https://s3.amazonaws.com:8443",
            "https://169.254.169.254",
            "http://127.0.0.1:5000",
            "https://evil.com/s3.amazonaws.com",
            "https://s3.amazonaws.com.evil.com",
            // ELB names: the first label is chosen by whoever creates the load balancer.
            "https://s3-attacker-1234567890.us-east-1.elb.amazonaws.com",
            "https://s3.us-east-1.elb.amazonaws.com",
            "https://s3attacker.amazonaws.com",
            "https://s3-attacker.amazonaws.com",
            "https://s3-.amazonaws.com",
            "https://s3..amazonaws.com",
            "https://s3.amazonaws.com.",
            "https://s3.evil.amazonaws.com",
            "https://s3.us-east-.amazonaws.com",
            "https://s3.us-east-1x.amazonaws.com",
            "https://s3.u-east-1.amazonaws.com",
            "https://s3.dualstack.amazonaws.com",
            "https://s3-fips.amazonaws.com",
            "https://s3.website-us-east-1.amazonaws.com",
            "https://bucket.s3.us-east-1.amazonaws.com",
            "https://s3.us-east-1.amazonaws.com.cn.evil.com",
            "https://s3.amazonaws.com.cn",
            "https://ec2.us-east-1.amazonaws.com",
            "https://amazonaws.com",
        ] {
            let err = check_endpoint(bad, &aws).unwrap_err();
            assert_eq!((err.status(), err.code.number()), (400, 9017), "{bad}");
        }
        let local = VolumePolicy {
            allow_endpoints: vec!["http://127.0.0.1:5000".into()],
            ..Default::default()
        };
        assert_eq!(
            check_endpoint("http://127.0.0.1:5000/", &local).unwrap(),
            "http://127.0.0.1:5000"
        );
        assert!(check_endpoint("http://127.0.0.1:50001", &local).is_err());
        assert!(check_endpoint("http://user:pw@127.0.0.1:5000", &local).is_err());
        assert!(
            check_endpoint("s3.amazonaws.com", &local).is_err(),
            "an explicit allowlist replaces the default"
        );
    }

    #[test]
    fn locations_and_keys() {
        assert_eq!(checked_key("pre", "a/b.txt").unwrap(), "pre/a/b.txt");
        assert_eq!(checked_key("", "a.txt").unwrap(), "a.txt");
        for bad in ["", "/a", "a/../b", "..", "./a", "a\nb"] {
            assert!(checked_key("pre", bad).is_err(), "{bad:?}");
        }
        assert!(checked_key("", &"k".repeat(1024)).is_ok());
        assert!(
            checked_key("p", &"k".repeat(1023)).is_err(),
            "the prefix counts toward 1024 bytes"
        );
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b");
        assert!(normalize_prefix("a/../b").is_err());
    }

    #[test]
    fn services() {
        let policy = VolumePolicy {
            allow_endpoints: vec!["http://127.0.0.1:5000".into()],
            ..Default::default()
        };
        let s3 = json!({"type": "S3", "bucket": "b", "endpoint": "http://127.0.0.1:5000", "credentials": {"access_key_id": "AK", "secret_access_key": "SK"}});
        let (svc, secret) = parse_service(Some(&s3), AccessMode::Rw, &policy).unwrap();
        assert_eq!(
            (
                svc.kind,
                svc.credential_id.as_str(),
                secret.as_str(),
                svc.region.as_str()
            ),
            (ServiceKind::S3, "AK", "SK", "us-east-1")
        );
        let gcs = json!({"type": "gcs", "bucket": "b", "root_url": "http://127.0.0.1:5000", "credentials": {"client_email": "e@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----"}});
        assert_eq!(
            parse_service(Some(&gcs), AccessMode::Rw, &policy)
                .unwrap_err()
                .code
                .number(),
            9057
        );
        assert_eq!(
            parse_service(Some(&gcs), AccessMode::Ro, &policy)
                .unwrap()
                .0
                .kind,
            ServiceKind::Gcs
        );
        assert_eq!(
            parse_service(Some(&json!({"type": "azure"})), AccessMode::Ro, &policy)
                .unwrap_err()
                .code
                .number(),
            9017
        );
        assert_eq!(
            parse_service(None, AccessMode::Ro, &policy)
                .unwrap_err()
                .code
                .number(),
            9016
        );
        for bad_root in ["tmp", "/tmp/../etc", ""] {
            let body = json!({"type": "local", "root": bad_root});
            assert_eq!(
                parse_service(Some(&body), AccessMode::Rw, &policy)
                    .unwrap_err()
                    .code
                    .number(),
                9017,
                "{bad_root}"
            );
        }
    }

    #[test]
    fn role_credentials() {
        let policy = VolumePolicy {
            allow_endpoints: vec!["http://127.0.0.1:5000".into()],
            s3_default_endpoint: "http://127.0.0.1:5000".into(),
            ..Default::default()
        };
        let arn = "arn:aws:iam::123456789012:role/path/reader";
        let body = json!({"type": "s3", "bucket": "b", "credentials": {"role_arn": arn, "external_id": "ext-1"}});
        let (svc, secret) = parse_service(Some(&body), AccessMode::Rw, &policy).unwrap();
        assert_eq!(
            (
                svc.role_arn.as_str(),
                svc.credential_id.as_str(),
                secret.as_str()
            ),
            (arn, "", "ext-1")
        );
        assert_eq!(
            svc.endpoint, "http://127.0.0.1:5000",
            "the server's default endpoint"
        );
        let no_ext = json!({"type": "s3", "bucket": "b", "credentials": {"role_arn": arn, "external_id": null}});
        assert_eq!(
            parse_service(Some(&no_ext), AccessMode::Ro, &policy)
                .unwrap()
                .1,
            ""
        );
        for bad in [
            json!({"role_arn": "arn:aws:iam::12345:role/x"}),
            json!({"role_arn": "arn:aws:iam::123456789012:user/x"}),
            json!({"role_arn": "arn:aws:s3:::bucket"}),
            json!({"role_arn": "arn:aws:iam:us-east-1:123456789012:role/x"}),
            json!({"role_arn": "arn:aws:iam::123456789012:role/"}),
            json!({"role_arn": "arn:aws:iam::123456789012:role/a b"}),
            json!({"role_arn": ""}),
            json!({"role_arn": arn, "external_id": "x"}),
            json!({"role_arn": arn, "external_id": "has space"}),
            json!({"role_arn": arn, "external_id": 7}),
            json!({"role_arn": arn, "access_key_id": "AK", "secret_access_key": "SK"}),
        ] {
            let body = json!({"type": "s3", "bucket": "b", "credentials": bad});
            let err = parse_service(Some(&body), AccessMode::Ro, &policy).unwrap_err();
            assert_eq!((err.status(), err.code.number()), (400, 9017), "{bad}");
        }
        assert!(check_role_arn("arn:aws-us-gov:iam::123456789012:role/r").is_ok());
        assert!(check_role_arn("arn:aws-cn:iam::123456789012:role/a+=,.@_-").is_ok());
    }

    #[test]
    fn oss_services() {
        let aws_only = VolumePolicy::default();
        let body = |endpoint: &str, mode| {
            let b = json!({"type": "OSS", "bucket": "b", "endpoint": endpoint,
                "credentials": {"access_key_id": "AK", "secret_access_key": "SK"}});
            parse_service(Some(&b), mode, &aws_only)
        };
        let (svc, secret) = body("https://oss-cn-hangzhou.aliyuncs.com", AccessMode::Ro).unwrap();
        assert_eq!(
            (svc.kind, svc.region.as_str(), secret.as_str()),
            (ServiceKind::Oss, "oss-cn-hangzhou", "SK")
        );
        assert_eq!(
            body("https://oss-cn-hangzhou.aliyuncs.com", AccessMode::Rw)
                .unwrap_err()
                .code
                .number(),
            9057
        );
        for bad in [
            "http://oss-cn-hangzhou.aliyuncs.com",
            "https://s3.amazonaws.com",
            "https://oss-.aliyuncs.com",
            "https://evil-oss-cn.aliyuncs.com",
            "https://oss-cn-hangzhou.aliyuncs.com.evil.com",
            "http://127.0.0.1:9000",
        ] {
            assert_eq!(
                body(bad, AccessMode::Ro).unwrap_err().code.number(),
                9017,
                "{bad}"
            );
        }
        assert!(
            check_endpoint("https://oss-cn-hangzhou.aliyuncs.com", &aws_only).is_err(),
            "an OSS host is no S3 volume's endpoint"
        );
        assert!(ServiceKind::Oss.read_only() && ServiceKind::Oss.speaks_s3());
    }

    #[test]
    fn gcs_services() {
        let google = VolumePolicy::default();
        let key = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----";
        let sa = json!({"type": "GCS", "bucket": "b", "credentials": {"client_email": "e@p.iam.gserviceaccount.com", "private_key": key}});
        let (svc, secret) = parse_service(Some(&sa), AccessMode::Ro, &google).unwrap();
        assert_eq!(
            (svc.endpoint.as_str(), secret.as_str(), svc.federated),
            ("https://storage.googleapis.com", key, false)
        );
        let mut r_client = sa.clone();
        r_client["root_url"] = json!("https://www.googleapis.com");
        assert!(parse_service(Some(&r_client), AccessMode::Ro, &google).is_ok());
        let config = json!({"type": "external_account", "audience": "//iam.googleapis.com/x"});
        for given in [config.clone(), json!(config.to_string())] {
            let iam =
                json!({"type": "gcs", "bucket": "b", "credentials": {"configuration": given}});
            let (svc, secret) = parse_service(Some(&iam), AccessMode::Ro, &google).unwrap();
            assert!(svc.federated && svc.credential_id.is_empty());
            assert_eq!(serde_json::from_str::<Value>(&secret).unwrap(), config);
        }
        for bad in [
            json!({"configuration": "{"}),
            json!({"configuration": 5}),
            json!({"configuration": {"type": "service_account"}}),
            json!({"configuration": {"type": "external_account"}}),
            json!({"configuration": config, "private_key": key}),
            json!({"client_email": "no-at-sign", "private_key": key}),
        ] {
            let body = json!({"type": "gcs", "bucket": "b", "credentials": bad});
            let err = parse_service(Some(&body), AccessMode::Ro, &google).unwrap_err();
            assert_eq!(err.code.number(), 9017, "{bad}");
        }
        let mut far = sa.clone();
        far["root_url"] = json!("https://gcs.evil.example");
        assert_eq!(
            parse_service(Some(&far), AccessMode::Ro, &google)
                .unwrap_err()
                .code
                .number(),
            9017
        );
        let mut no_pem = sa.clone();
        no_pem["credentials"]["private_key"] = json!("plain");
        assert_eq!(
            parse_service(Some(&no_pem), AccessMode::Ro, &google)
                .unwrap_err()
                .code
                .number(),
            9025
        );
    }

    #[test]
    fn local_roots() {
        let off = VolumePolicy::default();
        assert!(off.refuse_local_root(Path::new("/srv/vols/a")).is_some());
        let policy = VolumePolicy {
            local_roots: vec!["/srv/vols".into()],
            reserved: vec!["/srv/vols/egress-data".into()],
            ..Default::default()
        };
        assert_eq!(policy.refuse_local_root(Path::new("/srv/vols/a")), None);
        for bad in [
            "/srv/vols",
            "/srv/volsx",
            "/srv",
            "/etc",
            "/srv/vols/egress-data",
            "/srv/vols/egress-data/platform",
        ] {
            assert!(policy.refuse_local_root(Path::new(bad)).is_some(), "{bad}");
        }
        let over_data = VolumePolicy {
            local_roots: vec!["/".into()],
            reserved: vec!["/var/lib/egress".into()],
            ..Default::default()
        };
        assert!(
            over_data.refuse_local_root(Path::new("/var")).is_some(),
            "a root holding the data dir overlaps it"
        );
    }
}
