//! Wire conventions shared by every route (sbg-api.md §0–1): JSON bodies that tolerate the
//! client's `null`, query strings with repeated keys and Python-cased booleans, the offset-paged
//! list envelope with absolute links, and the bulk envelope.

use crate::error::{ApiError, ApiResult, Code};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use egress_store::Page;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 100;
pub const MAX_BULK: usize = 100;

/// A JSON request body. Malformed JSON, a wrong shape and an oversized body all become SBG errors.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(Body)
    }
}

/// Parses a JSON request body; an empty body is refused like a malformed one.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            Code::BadRequest,
            "A JSON request body is required.",
        ));
    }
    serde_json::from_slice(bytes).map_err(ApiError::invalid_json)
}

/// A raw request body, for handlers that need the bytes themselves (to hash them, say).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status().as_u16() == 413 {
                    ApiError::from(Code::RequestTooLarge)
                } else {
                    ApiError::new(
                        Code::BadRequest,
                        format!("Could not read the request body: {rejection}"),
                    )
                }
            })
    }
}

/// Reads a JSON object body whose fields are checked by the handler (for PATCH-style partial bodies).
pub fn object(value: Value) -> ApiResult<serde_json::Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            Code::BadRequest,
            "The request body must be a JSON object.",
        )),
    }
}

/// The decoded query string, keeping repeated keys in order (`tag=a&tag=b`).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        Ok(Params::parse(parts.uri.query().unwrap_or("")))
    }
}

impl Params {
    pub fn parse(query: &str) -> Self {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean flag; the client sends `True`/`False`, others `true`/`1`.
    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("Query parameter '{key}' must be true or false."),
                )
            }),
        }
    }

    /// `offset` (≥ 0, default 0) and `limit` (1–100, default 50).
    pub fn page(&self) -> ApiResult<Page> {
        let number = |key: &str, default: i64| -> ApiResult<i64> {
            match self.get(key) {
                None | Some("") => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    ApiError::new(
                        Code::BadRequest,
                        format!("Query parameter '{key}' must be an integer."),
                    )
                }),
            }
        };
        let offset = number("offset", 0)?;
        let limit = number("limit", DEFAULT_LIMIT)?;
        if offset < 0 {
            return Err(ApiError::new(
                Code::BadRequest,
                "Query parameter 'offset' must not be negative.",
            ));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                Code::BadRequest,
                format!("Query parameter 'limit' must be between 1 and {MAX_LIMIT}."),
            ));
        }
        Ok(Page { offset, limit })
    }
}

/// The paging query parameters of a list, for the API document (`Params::page` reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
pub struct Paging {
    /// Items to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// Items per page.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// The `fields` selector, for the API document (`fields::Fields` reads it).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Describes the parameters only.
pub struct Selector {
    /// `_all` (the default) or a comma list of the keys to return; `href` and `id` are always
    /// returned, and names the resource does not have select nothing.
    fields: Option<String>,
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The offset-paged list envelope: absolute `href` reproducing this page and `next`/`prev`
/// links. The `X-Total-Matching-Query` header, which the client requires, carries the total.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListPage<T> {
    pub href: String,
    pub items: Vec<T>,
    pub links: Vec<Link>,
}

/// A link to another page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    pub href: String,
    pub method: LinkMethod,
    pub rel: LinkRel,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LinkMethod {
    Get,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkRel {
    Next,
    Prev,
}

/// The header with the number of items matching a list query, over all pages.
pub const TOTAL_HEADER: &str = "x-total-matching-query";

/// Answers with one page of a list: the envelope and the total in its header.
pub fn list_page<T: Serialize>(
    public_url: &str,
    uri: &Uri,
    page: Page,
    total: i64,
    items: Vec<T>,
) -> Response {
    let mut response = axum::Json(envelope(public_url, uri, page, total, items)).into_response();
    response
        .headers_mut()
        .insert(TOTAL_HEADER, HeaderValue::from(total));
    response
}

/// The envelope of one page of `total` items, with links to its neighbours.
fn envelope<T>(public_url: &str, uri: &Uri, page: Page, total: i64, items: Vec<T>) -> ListPage<T> {
    let href_with_offset = |offset: i64| -> String {
        let mut query: Vec<(String, String)> = Params::parse(uri.query().unwrap_or(""))
            .0
            .into_iter()
            .filter(|(k, _)| k != "offset" && k != "limit")
            .collect();
        query.push(("offset".into(), offset.to_string()));
        query.push(("limit".into(), page.limit.to_string()));
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        format!("{public_url}{}?{encoded}", uri.path())
    };
    let link = |offset: i64, rel: LinkRel| Link {
        href: href_with_offset(offset),
        method: LinkMethod::Get,
        rel,
    };
    let mut links = Vec::new();
    if page.offset + (items.len() as i64) < total {
        links.push(link(page.offset + page.limit, LinkRel::Next));
    }
    if page.offset > 0 {
        links.push(link((page.offset - page.limit).max(0), LinkRel::Prev));
    }
    let href = match uri.query() {
        Some(q) => format!("{public_url}{}?{q}", uri.path()),
        None => format!("{public_url}{}", uri.path()),
    };
    ListPage { href, items, links }
}

/// The bulk envelope: one entry per item of the request, in its order.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bulk<T> {
    pub items: Vec<BulkEntry<T>>,
}

/// One bulk entry: the resource, or the error that item met.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkEntry<T> {
    Resource(T),
    Error(BulkError),
}

/// The error of one bulk item, in the SBG shape. Its keys come in alphabetical order, as they
/// did when bulk answers were `serde_json` maps; a whole error response keeps `status` first.
#[derive(Debug, Serialize)]
pub struct BulkError {
    code: u32,
    message: String,
    more_info: &'static str,
    status: u16,
}

impl From<ApiError> for BulkError {
    fn from(ApiError(e): ApiError) -> Self {
        BulkError {
            code: e.code.number(),
            message: e.message,
            more_info: crate::error::MORE_INFO,
            status: e.code.status(),
        }
    }
}

/// The same schema as every error: `Error`.
impl utoipa::PartialSchema for BulkError {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        super::openapi::ErrorSchema::schema()
    }
}

impl ToSchema for BulkError {
    fn name() -> std::borrow::Cow<'static, str> {
        super::openapi::ErrorSchema::name()
    }
}

impl<T> Bulk<T> {
    pub fn new(results: impl IntoIterator<Item = ApiResult<T>>) -> Self {
        let items = results
            .into_iter()
            .map(|result| match result {
                Ok(resource) => BulkEntry::Resource(resource),
                Err(error) => BulkEntry::Error(error.into()),
            })
            .collect();
        Bulk { items }
    }
}

/// Checks the size of a bulk request as a whole.
pub fn check_bulk_len(len: usize) -> ApiResult<()> {
    if len == 0 {
        return Err(ApiError::new(
            Code::BadRequest,
            "The list of items must not be empty.",
        ));
    }
    if len > MAX_BULK {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("At most {MAX_BULK} items are allowed per call."),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_ignore_case() {
        for v in ["True", "true", "TRUE", "1"] {
            assert_eq!(parse_bool(v), Some(true));
        }
        for v in ["False", "false", "0"] {
            assert_eq!(parse_bool(v), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn params_keep_repeats_and_decode() {
        let p = Params::parse("tag=a&tag=b&project=u%2Fp&name=a+b.txt");
        assert_eq!(p.all("tag"), vec!["a", "b"]);
        assert_eq!(p.get("project"), Some("u/p"));
        assert_eq!(p.get("name"), Some("a b.txt"));
    }

    #[test]
    fn paging_bounds() {
        assert_eq!(Params::parse("").page().unwrap().limit, 50);
        assert!(Params::parse("limit=0").page().is_err());
        assert!(Params::parse("limit=1000").page().is_err());
        assert!(Params::parse("offset=-1").page().is_err());
        assert!(Params::parse("limit=x").page().is_err());
        let p = Params::parse("offset=10&limit=100").page().unwrap();
        assert_eq!((p.offset, p.limit), (10, 100));
    }

    #[test]
    fn links_are_absolute_and_stop_at_the_end() {
        let uri: Uri = "/v2/files?project=u%2Fp&offset=0&limit=2&fields=_all"
            .parse()
            .unwrap();
        let page = Page {
            offset: 0,
            limit: 2,
        };
        let response = list_page("http://h", &uri, page, 3, vec![1, 2]);
        assert_eq!(response.headers()["x-total-matching-query"], "3");
        let last = list_page(
            "http://h",
            &uri,
            Page {
                offset: 2,
                limit: 2,
            },
            3,
            vec![3],
        );
        assert_eq!(last.headers()["x-total-matching-query"], "3");
    }

    #[test]
    fn envelopes_keep_their_wire_bytes() {
        let uri: Uri = "/v2/files?project=u%2Fp&offset=2&limit=2".parse().unwrap();
        let page = Page {
            offset: 2,
            limit: 2,
        };
        let middle = envelope(
            "http://h",
            &uri,
            page,
            5,
            vec![json!({"id": 3}), json!({"id": 4})],
        );
        let link = |offset: i64, rel: &str| json!({"href": format!("http://h/v2/files?project=u%2Fp&offset={offset}&limit=2"), "rel": rel, "method": "GET"});
        assert_eq!(
            serde_json::to_string(&middle).unwrap(),
            serde_json::to_string(&json!({
                "href": "http://h/v2/files?project=u%2Fp&offset=2&limit=2",
                "items": [{"id": 3}, {"id": 4}],
                "links": [link(4, "next"), link(0, "prev")],
            }))
            .unwrap()
        );
        let bulk = Bulk::new([
            Ok(json!({"id": 1})),
            Err(ApiError::from(Code::FileNotFound)),
        ]);
        assert_eq!(
            serde_json::to_string(&bulk).unwrap(),
            serde_json::to_string(&json!({"items": [
                {"resource": {"id": 1}},
                {"error": ApiError::from(Code::FileNotFound)},
            ]}))
            .unwrap()
        );
    }
}
