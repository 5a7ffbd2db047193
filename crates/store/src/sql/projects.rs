//! Projects and the members of projects and volumes.

use super::*;

impl<E: Engine> SqlStore<E> {
    /// The `FROM ... WHERE ...` of a project listing: `username`'s projects that pass the filter.
    fn push_project_filter<'a>(
        qb: &mut Builder<'a, E::Db>,
        username: &'a str,
        owner: Option<&'a str>,
        filter: &'a ProjectFilter,
    ) {
        qb.push(format_args!(
            " FROM members m JOIN projects p ON p.id = m.resource_id WHERE m.kind = {PROJECT}"
        ))
        .push(" AND m.username = ")
        .push_bind(username);
        if let Some(owner) = owner {
            qb.push(" AND p.owner = ").push_bind(owner);
        }
        if let Some(name) = &filter.name {
            qb.push(" AND p.name = ").push_bind(name.as_str());
        }
        if !filter.public.is_empty() {
            qb.push(" AND p.is_public IN (");
            let mut any = qb.separated(", ");
            for public in &filter.public {
                any.push_bind(*public);
            }
            qb.push(")");
        }
        Self::push_any(qb, &filter.tags, |qb, tag| {
            E::push_has_tag(qb, "p.tags", tag)
        });
    }
}

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
        filter: &ProjectFilter,
        page: Page,
    ) -> Result<(Vec<Project>, i64)> {
        let mut count = Self::builder("SELECT COUNT(*)");
        Self::push_project_filter(&mut count, username, owner, filter);
        let (total,): (i64,) = count.build().fetch_one(&self.pool).await?;
        let mut select = Self::builder(format!("SELECT {PROJECT_COLUMNS}"));
        Self::push_project_filter(&mut select, username, owner, filter);
        select
            .push(" ORDER BY p.created_at, p.id LIMIT ")
            .push_bind(page.limit)
            .push(" OFFSET ")
            .push_bind(page.offset);
        let items = select.build().fetch_all(&self.pool).await?;
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
