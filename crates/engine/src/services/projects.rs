//! Creating a project: shared by the API and the demo's seeding.

use crate::services::Services;
use egress_core::error::{Code, SbgError, SbgResult};
use egress_core::limits;
use egress_core::util::now_ms;
use egress_store::{FileRec, Project, StoreError, User};
use serde::Deserialize;
use serde_json::{Map, Value};

const MAX_NAME: usize = 255;

/// A new project as the API receives it.
#[derive(Deserialize)]
pub struct NewProject {
    pub name: Option<String>,
    pub billing_group: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub settings: Map<String, Value>,
}

/// A URL-safe slug from a project name: lowercase letters, digits and single dashes.
fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "project".to_string()
    } else {
        slug.chars().take(64).collect()
    }
}

pub fn check_name(name: &str) -> SbgResult<()> {
    if name.trim().is_empty() {
        return Err(SbgError::from(Code::ProjectNameEmpty));
    }
    if name.chars().count() > MAX_NAME {
        return Err(SbgError::new(
            Code::BadRequest,
            format!("Project name must be at most {MAX_NAME} characters."),
        ));
    }
    Ok(())
}

pub fn check_billing_group(value: &str) -> SbgResult<String> {
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| SbgError::from(Code::BillingGroupNotUuid))
}

/// Creates a project owned by `user`, with a root folder, and makes `user` its admin.
pub async fn create_project(
    services: &Services,
    user: &User,
    name: &str,
    description: Option<String>,
) -> SbgResult<Project> {
    let body = NewProject {
        name: Some(name.into()),
        billing_group: None,
        description,
        tags: vec![],
        settings: Map::new(),
    };
    insert(services, user, body).await
}

pub async fn insert(services: &Services, user: &User, body: NewProject) -> SbgResult<Project> {
    let name = body.name.unwrap_or_default();
    check_name(&name)?;
    limits::check_tags(&body.tags)?;
    let settings = Value::Object(body.settings);
    limits::check_settings(&settings)?;
    let billing_group = match body.billing_group.as_deref() {
        Some(b) => check_billing_group(b)?,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let base_slug = slugify(&name);
    let now = now_ms();
    for n in 0..100 {
        let slug = if n == 0 {
            base_slug.clone()
        } else {
            format!("{base_slug}-{n}")
        };
        let id = format!("{}/{slug}", user.username);
        let root = FileRec::new(&id, None, &id, true);
        let project = Project {
            id,
            owner: user.username.clone(),
            name: name.clone(),
            description: body.description.clone(),
            billing_group: billing_group.clone(),
            category: "PRIVATE".into(),
            tags: body.tags.clone(),
            settings: settings.clone(),
            root_folder: root.id.clone(),
            is_public: false,
            created_by: user.username.clone(),
            created_at: now,
            modified_at: now,
        };
        match services.store.create_project(&project, &root).await {
            Ok(()) => return Ok(project),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(SbgError::from(Code::ProjectExists))
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Project"), "my-project");
        assert_eq!(slugify("  a//b  c "), "a-b-c");
        assert_eq!(slugify("!!!"), "project");
        assert_eq!(slugify("Ünï"), "n");
    }
}
