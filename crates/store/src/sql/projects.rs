//! Projects and the members of projects and volumes.

use super::*;

#[async_trait]
impl<E: Engine> ProjectStore for SqlStore<E> {
    async fn create_project(&self, project: &Project, root: &FileRec) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::query(
            "INSERT INTO projects (id, owner, name, description, billing_group, category, tags, \
             settings, root_folder, is_public, created_by, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&project.id)
        .bind(&project.owner)
        .bind(&project.name)
        .bind(&project.description)
        .bind(&project.billing_group)
        .bind(&project.category)
        .bind(Json(&project.tags))
        .bind(Json(&project.settings))
        .bind(&project.root_folder)
        .bind(project.is_public)
        .bind(&project.created_by)
        .bind(project.created_at)
        .bind(project.modified_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Self::insert_file(&mut tx, root).await?;
        let owner = Member {
            kind: MemberKind::Project,
            resource_id: project.id.clone(),
            username: project.created_by.clone(),
            perms: crate::Perms::ALL,
        };
        Self::upsert_member(&mut *tx, &owner).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        Ok(Self::query(format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_projects(
        &self,
        username: &str,
        owner: Option<&str>,
        name: Option<&str>,
        page: Page,
    ) -> Result<(Vec<Project>, i64)> {
        let from = format!(
            "FROM members m JOIN projects p ON p.id = m.resource_id \
             WHERE m.kind = {PROJECT} AND m.username = $1 \
             AND ($2 IS NULL OR p.owner = $2) AND ($3 IS NULL OR p.name = $3)"
        );
        let (total,): (i64,) = Self::query(format!("SELECT COUNT(*) {from}"))
            .bind(username)
            .bind(owner)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let items = Self::query(format!(
            "SELECT {PROJECT_COLUMNS} {from} ORDER BY p.created_at, p.id LIMIT $4 OFFSET $5"
        ))
        .bind(username)
        .bind(owner)
        .bind(name)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((items, total))
    }

    async fn update_project(&self, project: &Project) -> Result<(), StoreError> {
        let done = Self::query(
            "UPDATE projects SET name = $1, description = $2, billing_group = $3, category = $4, \
             tags = $5, settings = $6, is_public = $7, modified_at = $8 WHERE id = $9",
        )
        .bind(&project.name)
        .bind(&project.description)
        .bind(&project.billing_group)
        .bind(&project.category)
        .bind(Json(&project.tags))
        .bind(Json(&project.settings))
        .bind(project.is_public)
        .bind(project.modified_at)
        .bind(&project.id)
        .execute(&mut *self.engine.writer(&self.pool).await?)
        .await?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_project(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        let gone = Self::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if gone == 0 {
            return Err(StoreError::NotFound);
        }
        Self::query(
            "UPDATE blobs SET refs = refs - (SELECT COUNT(*) FROM files f \
             WHERE f.project_id = $1 AND f.blob_id = blobs.id) \
             WHERE id IN (SELECT blob_id FROM files WHERE project_id = $1 AND blob_id IS NOT NULL)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::query("DELETE FROM files WHERE project_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::query("DELETE FROM uploads WHERE project_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::query("DELETE FROM members WHERE kind = $1 AND resource_id = $2")
            .bind(MemberKind::Project)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_member(
        &self,
        kind: MemberKind,
        resource_id: &str,
        username: &str,
    ) -> Result<Option<Member>> {
        Ok(Self::query(
            "SELECT kind, resource_id, username, read, copy, write, execute, admin FROM members \
             WHERE kind = $1 AND resource_id = $2 AND username = $3",
        )
        .bind(kind)
        .bind(resource_id)
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_members(
        &self,
        kind: MemberKind,
        resource_id: &str,
        page: Page,
    ) -> Result<(Vec<Member>, i64)> {
        let (total,): (i64,) =
            Self::query("SELECT COUNT(*) FROM members WHERE kind = $1 AND resource_id = $2")
                .bind(kind)
                .bind(resource_id)
                .fetch_one(&self.pool)
                .await?;
        let items = Self::query(
            "SELECT kind, resource_id, username, read, copy, write, execute, admin FROM members \
             WHERE kind = $1 AND resource_id = $2 ORDER BY username LIMIT $3 OFFSET $4",
        )
        .bind(kind)
        .bind(resource_id)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((items, total))
    }

    async fn put_member(&self, m: &Member) -> Result<()> {
        Self::upsert_member(&mut *self.engine.writer(&self.pool).await?, m).await?;
        Ok(())
    }

    async fn delete_member(
        &self,
        kind: MemberKind,
        resource_id: &str,
        username: &str,
    ) -> Result<bool> {
        let done = Self::query(
            "DELETE FROM members WHERE kind = $1 AND resource_id = $2 AND username = $3",
        )
        .bind(kind)
        .bind(resource_id)
        .bind(username)
        .execute(&mut *self.engine.writer(&self.pool).await?)
        .await?;
        Ok(done > 0)
    }
}
