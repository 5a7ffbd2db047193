//! The OpenAPI 3.1 document of the HTTP API, served at `GET /v2/openapi.json` without a token.
//!
//! Each route module describes its own operations (`#[utoipa::path]` on the handlers, collected
//! by the module's `ApiDoc`); this module merges them, adds the token security schemes and the
//! error responses every operation can give, and serves the result. `docs/openapi.json` is a
//! snapshot of it that a test keeps in step.

use super::{async_jobs, exports, files, imports, projects, transfer, uploads, users, volumes};
use crate::error::{Code, MORE_INFO};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use egress_core::model::{AccessMode, JobState};
use egress_core::volume::ServiceKind;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::{Modify, OpenApi as _, PartialSchema, ToSchema};

/// Where the document is served.
pub const PATH: &str = "/v2/openapi.json";

/// The security schemes: a token in `X-SBG-Auth-Token`, or the same token as a bearer.
const TOKEN: &str = "token";
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Egress",
        description = "A Seven Bridges / CAVATICA v2 storage API: projects, files, uploads, \
                       volumes, exports and imports. Every error response has the body \
                       `{status, code, message, more_info}` (schema `Error`); `code` is the SBG \
                       error code. Routes whose path ends in a collection also answer with a \
                       trailing slash.",
    ),
    paths(openapi_json),
    security(("token" = []), ("bearer" = [])),
    tags(
        (name = "server", description = "The endpoint index, this document and metrics."),
        (name = "users", description = "Users and the caller's rate limit."),
        (name = "projects", description = "Projects and their members."),
        (name = "files", description = "Files and folders."),
        (name = "uploads", description = "The multipart upload protocol."),
        (name = "transfers", description = "Signed URLs: downloads and upload parts, without a token."),
        (name = "volumes", description = "Volumes (users' buckets), their members and objects."),
        (name = "exports", description = "Export jobs: platform files to volumes."),
        (name = "imports", description = "Import jobs: volume objects into projects."),
        (name = "async", description = "Async bulk file jobs: copy, move and delete files and folders."),
    ),
)]
struct ApiDoc;

/// The whole document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        for part in [
            users::ApiDoc::openapi(),
            projects::ApiDoc::openapi(),
            files::ApiDoc::openapi(),
            uploads::ApiDoc::openapi(),
            transfer::ApiDoc::openapi(),
            volumes::ApiDoc::openapi(),
            exports::ApiDoc::openapi(),
            imports::ApiDoc::openapi(),
            async_jobs::ApiDoc::openapi(),
        ] {
            doc.merge(part);
        }
        // Modifiers run on the merged document, so that they see every operation.
        for modifier in [&Security as &dyn Modify, &CommonErrors] {
            modifier.modify(&mut doc);
        }
        doc
    })
}

/// The document as served and as kept in `docs/openapi.json`.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        json.push('\n');
        json
    })
}

/// This document; needs no token.
#[utoipa::path(
    get,
    path = "/v2/openapi.json",
    tag = "server",
    operation_id = "openapi",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)),
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// Adds the security schemes the operations refer to.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-SBG-Auth-Token",
                "An API token (`egress admin create-user` prints one).",
            ))),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The same token as `Authorization: Bearer <token>`."))
                    .build(),
            ),
        );
    }
}

/// Adds the error responses any operation can give, where the operation does not describe them
/// itself: a missing or bad token, the request timeout, an oversized body, the rate limit.
struct CommonErrors;

const COMMON: &[(&str, &str, &str)] = &[
    (
        "401",
        "Unauthorized",
        "No token, or an unknown or revoked one (90001).",
    ),
    (
        "408",
        "RequestTimeout",
        "The request took longer than the server allows (90000).",
    ),
    (
        "413",
        "RequestTooLarge",
        "The body is over the size limit; GET and DELETE bodies must be small (90000).",
    ),
    (
        "429",
        "RateLimited",
        "The caller's request quota is spent; see the X-RateLimit-* headers (1000).",
    ),
];

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert(ErrorSchema::name().into_owned(), ErrorSchema::schema());
        for (_, name, description) in COMMON {
            components.responses.insert(
                name.to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content("application/json", error_content())
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|reqs| reqs.iter().all(|r| *r == Default::default()));
                for (status, name, _) in COMMON {
                    if *status == "401" && public {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
            }
        }
    }
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ErrorSchema::name())))
        .build()
}

/// The schema of every error body, `{status, code, message, more_info}`
/// ([`ApiError`](crate::error::ApiError)). The
/// schema types here stand for types of the core, so that the API's document needs nothing
/// from the core but its values.
pub struct ErrorSchema;

impl PartialSchema for ErrorSchema {
    fn schema() -> RefOr<Schema> {
        let statuses: BTreeSet<u16> = Code::ALL.iter().map(|c| c.status()).collect();
        let codes: BTreeSet<u32> = Code::ALL.iter().map(|c| c.number()).collect();
        ObjectBuilder::new()
            .description(Some(
                "An SBG error. `code` says what went wrong; `message` says it for a person.",
            ))
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The HTTP status of the response."))
                    .enum_values(Some(statuses)),
            )
            .required("status")
            .property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The SBG error code."))
                    .enum_values(Some(codes)),
            )
            .required("code")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .property(
                "more_info",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([MORE_INFO])),
            )
            .required("more_info")
            .into()
    }
}

impl ToSchema for ErrorSchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Error")
    }
}

/// Bytes of any kind, as a body: a file's, a part's.
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// Declares a schema type for a text enum of the core: its name in the document and its values.
macro_rules! text_enum_schema {
    ($(#[$doc:meta])* $schema:ident, $name:literal, $values:expr) => {
        $(#[$doc])*
        pub struct $schema;

        impl PartialSchema for $schema {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl ToSchema for $schema {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

text_enum_schema!(
    /// [`JobState`], as spelled in src/model.rs.
    JobStateSchema,
    "JobState",
    JobState::ALL.iter().map(|s| s.as_str())
);
text_enum_schema!(
    /// [`AccessMode`], as spelled in src/model.rs.
    AccessModeSchema,
    "AccessMode",
    AccessMode::ALL.iter().map(|m| m.as_str())
);
text_enum_schema!(
    /// [`ServiceKind`], as spelled in src/volume.rs.
    ServiceKindSchema,
    "ServiceKind",
    [
        ServiceKind::S3,
        ServiceKind::Gcs,
        ServiceKind::Local,
        ServiceKind::Oss,
        ServiceKind::Azure,
    ]
    .map(ServiceKind::as_str)
);

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

    /// `docs/openapi.json` is what the server serves; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_committed_document_is_the_served_one() {
        let served = document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::write(SNAPSHOT, served).unwrap();
        }
        let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        assert!(
            committed == served,
            "docs/openapi.json differs from the document the server generates; if the change \
             is intended, rewrite it with `UPDATE_OPENAPI=1 cargo test -j2 --lib openapi` and \
             commit it"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_every_error_is_an_sbg_error() {
        let doc: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{method} {path}: operationId {id:?} repeats"
                );
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        let refers = response.get("$ref").is_some()
                            || response["content"]["application/json"]["schema"]["$ref"]
                                == "#/components/schemas/Error";
                        assert!(refers, "{method} {path} {status}: not the Error shape");
                    }
                }
            }
        }
    }
}
