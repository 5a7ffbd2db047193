//! Who may do what: project membership (or public read/copy), applied to projects and files.
//! A caller who is not a member gets 404, so private projects stay invisible; a member lacking
//! the needed permission gets 403.

use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use egress_store::{FileRec, MemberKind, Perms, Project, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Copy,
    Write,
    Admin,
}

impl Need {
    pub fn granted_by(self, p: Perms) -> bool {
        match self {
            Need::Read => p.read || p.admin,
            Need::Copy => p.copy || p.admin,
            Need::Write => p.write || p.admin,
            Need::Admin => p.admin,
        }
    }
}

/// Splits and checks an `owner/slug` project id.
pub fn parse_project_id(id: &str) -> ApiResult<(&str, &str)> {
    match id.split_once('/') {
        Some((owner, slug)) if !owner.is_empty() && !slug.is_empty() && !slug.contains('/') => {
            Ok((owner, slug))
        }
        _ => Err(ApiError::from(Code::MalformedProjectId)),
    }
}

impl AppState {
    /// The caller's permissions on a project: membership, public read/copy, or a platform admin's all.
    pub async fn project_perms(&self, user: &User, project: &Project) -> ApiResult<Option<Perms>> {
        if user.is_admin {
            return Ok(Some(Perms::ALL));
        }
        let member = self
            .store
            .get_member(MemberKind::Project, &project.id, &user.username)
            .await?;
        Ok(match member {
            Some(m) => Some(m.perms),
            None if project.is_public => Some(Perms::PUBLIC),
            None => None,
        })
    }

    /// Loads a project the caller may act on as `need` says.
    pub async fn project_for(
        &self,
        user: &User,
        id: &str,
        need: Need,
    ) -> ApiResult<(Project, Perms)> {
        parse_project_id(id)?;
        let project = self
            .store
            .get_project(id)
            .await?
            .ok_or_else(|| ApiError::from(Code::ProjectNotFound))?;
        match self.project_perms(user, &project).await? {
            None => Err(ApiError::from(Code::ProjectNotFound)),
            Some(p) if !need.granted_by(p) => Err(ApiError::from(Code::ProjectForbidden)),
            Some(p) => Ok((project, p)),
        }
    }

    /// Loads a file the caller may act on as `need` says (5002 / 5001).
    pub async fn file_for(&self, user: &User, id: &str, need: Need) -> ApiResult<(FileRec, Perms)> {
        let (file, _, perms) = self.file_in_project(user, id, need).await?;
        Ok((file, perms))
    }

    /// Like `file_for`, with the file's project.
    pub async fn file_in_project(
        &self,
        user: &User,
        id: &str,
        need: Need,
    ) -> ApiResult<(FileRec, Project, Perms)> {
        let file = self
            .store
            .get_file(id)
            .await?
            .ok_or_else(|| ApiError::from(Code::FileNotFound))?;
        let found = self.project_with_perms(user, &file.project_id).await?;
        file_access(file, found, need)
    }

    /// A project and the caller's permissions on it (`None`: not visible to the caller).
    pub async fn project_with_perms(
        &self,
        user: &User,
        id: &str,
    ) -> ApiResult<Option<(Project, Option<Perms>)>> {
        match self.store.get_project(id).await? {
            None => Ok(None),
            Some(project) => {
                let perms = self.project_perms(user, &project).await?;
                Ok(Some((project, perms)))
            }
        }
    }
}

/// Whether a file in `project` (seen with `perms`) may be used as `need` says (5002 / 5001).
pub fn file_access(
    file: FileRec,
    project: Option<(Project, Option<Perms>)>,
    need: Need,
) -> ApiResult<(FileRec, Project, Perms)> {
    match project {
        Some((project, Some(p))) if need.granted_by(p) => Ok((file, project, p)),
        Some((_, Some(_))) => Err(ApiError::from(Code::FileForbidden)),
        _ => Err(ApiError::from(Code::FileNotFound)),
    }
}
