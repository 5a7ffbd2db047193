//! Members of projects and volumes: list, add, get, change permissions, remove. The caller's
//! right to do each is checked by the resource's own routes before these run.

use super::views;
use super::wire::{list_page, object, Params};
use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use egress_store::{Member, MemberKind, Perms};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The body that adds a member.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only; `Members::add` reads it field by field.
pub struct NewMember {
    #[schema(min_length = 1)]
    username: String,
    /// Only `USER` (any case).
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Permissions over the default (`read` only).
    permissions: Option<PermissionChanges>,
}

/// Permissions to change; those not given stay. Volumes ignore `execute`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the body only; `apply_perms` reads it.
#[serde(deny_unknown_fields)]
pub struct PermissionChanges {
    read: Option<bool>,
    copy: Option<bool>,
    write: Option<bool>,
    execute: Option<bool>,
    admin: Option<bool>,
}

/// The members of one resource; `href` is the absolute URL of its members collection.
pub struct Members<'a> {
    pub state: &'a AppState,
    pub kind: MemberKind,
    pub resource_id: &'a str,
    pub href: String,
    /// The resource's owner keeps full rights: it can be neither removed nor reduced.
    pub owner: String,
}

impl Members<'_> {
    fn render(&self, m: &Member) -> views::Member {
        views::member(&self.href, m)
    }

    async fn find(&self, username: &str) -> ApiResult<Member> {
        self.state
            .store
            .get_member(self.kind, self.resource_id, username)
            .await?
            .ok_or_else(|| ApiError::new(Code::ProjectNotFound, "Requested member does not exist."))
    }

    pub async fn list(&self, uri: &Uri, params: &Params) -> ApiResult<Response> {
        let page = params.page()?;
        let (members, total) = self
            .state
            .store
            .list_members(self.kind, self.resource_id, page)
            .await?;
        let items: Vec<views::Member> = members.iter().map(|m| self.render(m)).collect();
        Ok(list_page(self.state.base(), uri, page, total, items))
    }

    pub async fn get(&self, username: &str) -> ApiResult<Json<views::Member>> {
        Ok(Json(self.render(&self.find(username).await?)))
    }

    pub async fn add(&self, body: Value) -> ApiResult<Json<views::Member>> {
        let body = object(body)?;
        let username = match body.get("username") {
            Some(Value::String(u)) if !u.is_empty() => u.clone(),
            _ => return Err(ApiError::from(Code::MemberUsernameMissing)),
        };
        if let Some(kind) = body.get("type").and_then(Value::as_str) {
            if !kind.eq_ignore_ascii_case("user") {
                return Err(ApiError::new(
                    Code::BadRequest,
                    "Only members of type USER are supported.",
                ));
            }
        }
        self.state
            .store
            .get_user(&username)
            .await?
            .ok_or_else(|| ApiError::from(Code::UserNotFound))?;
        if username == self.owner {
            return Err(ApiError::new(
                Code::ProjectExists,
                "The owner is already a member.",
            ));
        }
        let base = Perms {
            read: true,
            ..Perms::default()
        };
        let perms = apply_perms(base, body.get("permissions").unwrap_or(&Value::Null))?;
        let member = Member {
            kind: self.kind,
            resource_id: self.resource_id.to_string(),
            username,
            perms,
        };
        self.state.store.put_member(&member).await?;
        Ok(Json(self.render(&member)))
    }

    pub async fn set_permissions(
        &self,
        username: &str,
        body: Value,
    ) -> ApiResult<Json<views::Permissions>> {
        let mut member = self.find(username).await?;
        if username == self.owner {
            return Err(ApiError::new(
                Code::ProjectForbidden,
                "The owner's permissions cannot be changed.",
            ));
        }
        member.perms = apply_perms(member.perms, &body)?;
        self.state.store.put_member(&member).await?;
        // The client does not read the answer; the new permissions are the natural one.
        Ok(Json(views::permissions(&member)))
    }

    pub async fn remove(&self, username: &str) -> ApiResult<()> {
        if username == self.owner {
            return Err(ApiError::new(
                Code::ProjectForbidden,
                "The owner cannot be removed.",
            ));
        }
        if !self
            .state
            .store
            .delete_member(self.kind, self.resource_id, username)
            .await?
        {
            return Err(ApiError::new(
                Code::ProjectNotFound,
                "Requested member does not exist.",
            ));
        }
        Ok(())
    }
}

/// Applies a partial `{read, copy, write, execute, admin}` object to `perms`.
fn apply_perms(mut perms: Perms, value: &Value) -> ApiResult<Perms> {
    let map: Map<String, Value> = match value {
        Value::Null => return Ok(perms),
        Value::Object(m) => m.clone(),
        _ => {
            return Err(ApiError::new(
                Code::InvalidPermissions,
                "Permissions must be an object of booleans.",
            ))
        }
    };
    for (key, v) in map {
        let flag = v.as_bool().ok_or_else(|| {
            ApiError::new(
                Code::InvalidPermissions,
                format!("Permission '{key}' must be true or false."),
            )
        })?;
        match key.as_str() {
            "read" => perms.read = flag,
            "copy" => perms.copy = flag,
            "write" => perms.write = flag,
            "execute" => perms.execute = flag,
            "admin" => perms.admin = flag,
            other => {
                return Err(ApiError::new(
                    Code::InvalidPermissions,
                    format!("Unknown permission '{other}'."),
                ))
            }
        }
    }
    Ok(perms)
}
