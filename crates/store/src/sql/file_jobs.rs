//! The file job queue: submission, claims with a lease, and items applied one by one. Each
//! item's effect (a copy, move or delete of a file or a whole folder), its result and the job's
//! cursor are one transaction, fenced by the attempt and the cursor itself: an item is never
//! done twice, and the owner's rights are read inside that transaction, at the moment of effect.

use super::*;
use crate::{FileJobItem, FileJobKind, FileJobQueue, FileJobRec, ItemApplied, ItemFailure};

const JOB_COLUMNS: &str = "seq, id, owner, kind, state, total_items, next_item, completed_items, \
     failed_items, attempt, lease_owner, lease_expires_at, next_attempt_at, error, created_at, \
     started_at, finished_at";

const ITEM_COLUMNS: &str =
    "job_id, position, file_id, project_id, parent_id, name, done, resource, error";

/// Ids per statement when a whole subtree is changed.
const CHUNK: usize = 256;

/// What a job's owner may do in a project, read where an item takes effect: membership,
/// public read/copy, or a platform administrator's every right (as `access.rs` in the API).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Access {
    /// A member (of any rights), an administrator, or a public project: else 404.
    pub visible: bool,
    pub copy: bool,
    pub write: bool,
    pub public: bool,
}

type Item<T> = Result<T, ItemFailure>;

impl<E: Engine> SqlStore<E> {
    async fn access(
        tx: &mut Conn<E>,
        owner: &str,
        project_id: &str,
    ) -> Result<Option<Access>, sqlx::Error> {
        Self::query(format!(
            "SELECT (COALESCE(u.is_admin, FALSE) OR m.username IS NOT NULL OR p.is_public) AS visible, \
             (COALESCE(u.is_admin, FALSE) OR COALESCE(m.copy OR m.admin, FALSE) OR p.is_public) AS copy, \
             (COALESCE(u.is_admin, FALSE) OR COALESCE(m.write OR m.admin, FALSE)) AS write, \
             p.is_public AS public \
             FROM projects p \
             LEFT JOIN users u ON u.username = $2 \
             LEFT JOIN members m ON m.kind = {PROJECT} AND m.resource_id = p.id AND m.username = $2 \
             WHERE p.id = $1"
        ))
        .bind(project_id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
    }

    async fn file_in(
        tx: &mut Conn<E>,
        id: &str,
        lock: &str,
    ) -> Result<Option<FileRec>, sqlx::Error> {
        Self::query(format!("{FILE_SELECT} WHERE f.id = $1{lock}"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
    }

    /// The item's file, if the owner may act on it with the right `need` picks.
    async fn source(
        tx: &mut Conn<E>,
        owner: &str,
        id: &str,
        need: fn(&Access) -> bool,
    ) -> Result<Item<(FileRec, Access)>, StoreError> {
        let row_lock = E::ROW_LOCK;
        let Some(file) = Self::file_in(tx, id, row_lock).await? else {
            return Ok(Err(ItemFailure::SourceMissing));
        };
        let access = match Self::access(tx, owner, &file.project_id).await? {
            Some(a) if a.visible => a,
            _ => return Ok(Err(ItemFailure::SourceMissing)),
        };
        if !need(&access) {
            return Ok(Err(ItemFailure::SourceForbidden));
        }
        if file.parent_id.is_none() {
            return Ok(Err(ItemFailure::RootFolder));
        }
        Ok(Ok((file, access)))
    }

    /// The folder a copy or move goes into, if the owner may write it. It stays share-locked
    /// (Postgres) until the commit, so it cannot be deleted meanwhile.
    async fn destination(
        tx: &mut Conn<E>,
        owner: &str,
        item: &FileJobItem,
    ) -> Result<Item<FileRec>, StoreError> {
        let parent_lock = E::PARENT_LOCK;
        let (folder_id, missing, forbidden) = match (&item.project_id, &item.parent_id) {
            (Some(project), _) => {
                let root: Option<(String,)> =
                    Self::query("SELECT root_folder FROM projects WHERE id = $1")
                        .bind(project)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((root,)) = root else {
                    return Ok(Err(ItemFailure::ProjectMissing));
                };
                (
                    root,
                    ItemFailure::ProjectMissing,
                    ItemFailure::ProjectForbidden,
                )
            }
            (None, Some(parent)) => (
                parent.clone(),
                ItemFailure::ParentMissing,
                ItemFailure::ParentForbidden,
            ),
            // Refused at submission; an item stored without a destination is none.
            (None, None) => return Ok(Err(ItemFailure::ParentMissing)),
        };
        let Some(folder) = Self::file_in(tx, &folder_id, parent_lock).await? else {
            return Ok(Err(missing));
        };
        match Self::access(tx, owner, &folder.project_id).await? {
            Some(a) if a.visible && a.write => {}
            Some(a) if a.visible => return Ok(Err(forbidden)),
            _ => return Ok(Err(missing)),
        }
        if !folder.is_folder {
            return Ok(Err(ItemFailure::ParentNotFolder));
        }
        Ok(Ok(folder))
    }

    /// A file or folder and everything beneath it, the top first.
    async fn subtree(tx: &mut Conn<E>, id: &str) -> Result<Vec<FileRec>, sqlx::Error> {
        // UNION, not UNION ALL: the walk ends even on a tree that is somehow cyclic.
        let mut files: Vec<FileRec> = Self::query(format!(
            "WITH RECURSIVE tree (id) AS ( \
               SELECT id FROM files WHERE id = $1 \
               UNION SELECT f.id FROM files f JOIN tree t ON f.parent_id = t.id) \
             {FILE_SELECT} WHERE f.id IN (SELECT id FROM tree)"
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        files.sort_by_key(|f| f.id != id);
        Ok(files)
    }

    /// A subtree whose rows are all locked (Postgres), so nothing is added to it or taken out
    /// before the commit: files committed into it meanwhile are found by the look after the lock.
    async fn locked_subtree(tx: &mut Conn<E>, id: &str) -> Result<Vec<FileRec>, sqlx::Error> {
        let row_lock = E::ROW_LOCK;
        let mut files = Self::subtree(tx, id).await?;
        if row_lock.is_empty() {
            return Ok(files);
        }
        let mut locked: HashSet<String> = HashSet::new();
        loop {
            let fresh: Vec<String> = files
                .iter()
                .map(|f| f.id.clone())
                .filter(|id| !locked.contains(id))
                .collect();
            if fresh.is_empty() {
                return Ok(files);
            }
            for chunk in fresh.chunks(CHUNK) {
                let mut qb = Self::builder("SELECT id FROM files WHERE id IN (");
                push_list(&mut qb, chunk);
                qb.push(row_lock);
                let _: Vec<(String,)> = qb.build().fetch_all(&mut *tx).await?;
            }
            locked.extend(fresh);
            files = Self::subtree(tx, id).await?;
        }
    }

    /// Whether an unfinished move export will take any of these files.
    async fn any_exported(tx: &mut Conn<E>, files: &[FileRec]) -> Result<bool, sqlx::Error> {
        let ids: Vec<String> = files
            .iter()
            .filter(|f| !f.is_folder)
            .map(|f| f.id.clone())
            .collect();
        let moves_index = E::MOVES_INDEX;
        for chunk in ids.chunks(CHUNK) {
            let mut qb = Self::builder(format!(
                "SELECT file_id, id FROM exports{moves_index} WHERE NOT copy_only AND state IN {UNFINISHED} AND file_id IN ("
            ));
            push_list(&mut qb, chunk);
            let found: Vec<(String, String)> = qb.build().fetch_all(&mut *tx).await?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `name`, or `_1_name`, `_2_name`… : the first that is free in `folder` (a name held by
    /// `except` counts as free). `None` when none is.
    async fn free_name(
        tx: &mut Conn<E>,
        folder: &str,
        name: &str,
        except: Option<&str>,
    ) -> Result<Option<String>, sqlx::Error> {
        for n in 0..=1000 {
            let candidate = match n {
                0 => name.to_string(),
                n => format!("_{n}_{name}"),
            };
            if egress_core::names::check(&candidate).is_err() {
                return Ok(None);
            }
            let holder: Option<(String,)> =
                Self::query("SELECT id FROM files WHERE parent_id = $1 AND name = $2")
                    .bind(folder)
                    .bind(&candidate)
                    .fetch_optional(&mut *tx)
                    .await?;
            match holder {
                None => return Ok(Some(candidate)),
                Some((id,)) if Some(id.as_str()) == except => return Ok(Some(candidate)),
                Some(_) => {}
            }
        }
        Ok(None)
    }

    /// Takes `n` more references to a blob; false when its bytes are being freed.
    async fn take_refs(tx: &mut Conn<E>, blob: &str, n: i64) -> Result<bool, sqlx::Error> {
        let held = Self::query("UPDATE blobs SET refs = refs + $1 WHERE id = $2 AND NOT deleting")
            .bind(n)
            .bind(blob)
            .execute(&mut *tx)
            .await?;
        Ok(held == 1)
    }

    /// Folder moves in a project take turns on its row (as `update_file` does), the rows of
    /// both projects in one order, so that crossing moves can neither make a cycle nor deadlock.
    async fn lock_projects(tx: &mut Conn<E>, a: &str, b: &str) -> Result<(), sqlx::Error> {
        let row_lock = E::ROW_LOCK;
        let _: Vec<(String,)> = Self::query(format!(
            "SELECT id FROM projects WHERE id IN ($1, $2) ORDER BY id{row_lock}"
        ))
        .bind(a)
        .bind(b)
        .fetch_all(&mut *tx)
        .await?;
        Ok(())
    }

    /// Copies a file, or a folder with everything in it, into the destination: no bytes are
    /// copied, the copies take references to the same blobs.
    async fn copy_item(
        tx: &mut Conn<E>,
        owner: &str,
        item: &FileJobItem,
    ) -> Result<Item<FileRec>, StoreError> {
        let (source, access) = match Self::source(tx, owner, &item.file_id, |a| a.copy).await? {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let dest = match Self::destination(tx, owner, item).await? {
            Ok(dest) => dest,
            Err(why) => return Ok(Err(why)),
        };
        let tree = if source.is_folder {
            Self::lock_projects(tx, &source.project_id, &dest.project_id).await?;
            Self::subtree(tx, &source.id).await?
        } else {
            vec![source.clone()]
        };
        if tree.iter().any(|f| f.id == dest.id) {
            return Ok(Err(ItemFailure::IntoItself));
        }
        let name = item.name.clone().unwrap_or_else(|| source.name.clone());
        let Some(name) = Self::free_name(tx, &dest.id, &name, None).await? else {
            return Ok(Err(ItemFailure::NoFreeName));
        };
        let mut refs: HashMap<String, i64> = HashMap::new();
        for f in &tree {
            if let Some(blob) = &f.blob_id {
                *refs.entry(blob.clone()).or_default() += 1;
            }
        }
        for (blob, n) in &refs {
            if !Self::take_refs(tx, blob, *n).await? {
                return Ok(Err(ItemFailure::SourceMissing));
            }
        }
        // Parents come before their children: the tree is walked from the top.
        let mut children: HashMap<&str, Vec<&FileRec>> = HashMap::new();
        for f in &tree[1..] {
            if let Some(parent) = &f.parent_id {
                children.entry(parent.as_str()).or_default().push(f);
            }
        }
        let copy_of = |f: &FileRec, parent: &str, name: &str| {
            let mut copy = FileRec::new(&dest.project_id, Some(parent), name, f.is_folder);
            copy.size = f.size;
            copy.blob_id = f.blob_id.clone();
            copy.volume_id = f.volume_id.clone();
            copy.volume_uid = f.volume_uid.clone();
            copy.location = f.location.clone();
            copy.is_public = f.is_public || access.public;
            copy.metadata = f.metadata.clone();
            copy.tags = f.tags.clone();
            copy.md5 = f.md5.clone();
            copy.crc32c = f.crc32c.clone();
            copy
        };
        let top = copy_of(&source, &dest.id, &name);
        Self::insert_file(tx, &top).await?;
        let mut queue = vec![(source.id.as_str(), top.id.clone())];
        while let Some((from, to)) = queue.pop() {
            for child in children.get(from).into_iter().flatten() {
                let copy = copy_of(child, &to, &child.name);
                Self::insert_file(tx, &copy).await?;
                if child.is_folder {
                    queue.push((child.id.as_str(), copy.id));
                }
            }
        }
        Ok(Ok(top))
    }

    /// Moves a file (it keeps its id) or a folder into the destination, across projects when
    /// the owner may write both. A name taken by a file becomes `_1_name`, …; a folder merges
    /// into a folder of the same name there, or else into a new one (so a moved folder gets a
    /// new id, as SBG documents).
    async fn move_item(
        tx: &mut Conn<E>,
        owner: &str,
        item: &FileJobItem,
    ) -> Result<Item<FileRec>, StoreError> {
        let (source, _) = match Self::source(tx, owner, &item.file_id, |a| a.write).await? {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let dest = match Self::destination(tx, owner, item).await? {
            Ok(dest) => dest,
            Err(why) => return Ok(Err(why)),
        };
        let name = item.name.clone().unwrap_or_else(|| source.name.clone());
        if source.parent_id.as_deref() == Some(dest.id.as_str()) && name == source.name {
            return Ok(Ok(source));
        }
        if source.is_folder {
            Self::lock_projects(tx, &source.project_id, &dest.project_id).await?;
        }
        let tree = if source.is_folder {
            Self::locked_subtree(tx, &source.id).await?
        } else {
            vec![source.clone()]
        };
        if tree.iter().any(|f| f.id == dest.id) {
            return Ok(Err(ItemFailure::IntoItself));
        }
        if Self::any_exported(tx, &tree).await? {
            return Ok(Err(ItemFailure::BeingExported));
        }
        let now = egress_core::util::now_ms();
        if !source.is_folder {
            let Some(name) = Self::free_name(tx, &dest.id, &name, Some(&source.id)).await? else {
                return Ok(Err(ItemFailure::NoFreeName));
            };
            Self::place(tx, &source.id, &dest, &name, now).await?;
            return Ok(Self::file_in(tx, &source.id, "")
                .await?
                .ok_or(ItemFailure::SourceMissing));
        }
        let Some(top) = Self::merge_target(tx, &dest, &name).await? else {
            return Ok(Err(ItemFailure::NoFreeName));
        };
        let mut queue = vec![(source.id.clone(), top.clone())];
        let mut emptied = vec![source.id.clone()];
        while let Some((from, to)) = queue.pop() {
            let children: Vec<FileRec> =
                Self::query(format!("{FILE_SELECT} WHERE f.parent_id = $1"))
                    .bind(&from)
                    .fetch_all(&mut *tx)
                    .await?;
            for child in children {
                if child.is_folder {
                    let Some(sub) = Self::merge_target(tx, &to, &child.name).await? else {
                        return Ok(Err(ItemFailure::NoFreeName));
                    };
                    emptied.push(child.id.clone());
                    queue.push((child.id, sub));
                } else {
                    let Some(name) = Self::free_name(tx, &to.id, &child.name, None).await? else {
                        return Ok(Err(ItemFailure::NoFreeName));
                    };
                    Self::place(tx, &child.id, &to, &name, now).await?;
                }
            }
        }
        for chunk in emptied.chunks(CHUNK) {
            let mut qb = Self::builder("DELETE FROM files WHERE is_folder AND id IN (");
            push_list(&mut qb, chunk);
            qb.build().execute(&mut *tx).await?;
        }
        Ok(Ok(top))
    }

    /// Puts a file into `folder` under `name`, in the folder's project.
    async fn place(
        tx: &mut Conn<E>,
        id: &str,
        folder: &FileRec,
        name: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        Self::query(
            "UPDATE files SET parent_id = $1, name = $2, project_id = $3, modified_at = $4 WHERE id = $5",
        )
        .bind(&folder.id)
        .bind(name)
        .bind(&folder.project_id)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// The folder a moved folder merges into: `folder`'s sub-folder `name`, made if missing
    /// (as `_1_name`, … when a file holds the name). `None` when no name is free.
    async fn merge_target(
        tx: &mut Conn<E>,
        folder: &FileRec,
        name: &str,
    ) -> Result<Option<FileRec>, StoreError> {
        let parent_lock = E::PARENT_LOCK;
        let existing: Option<FileRec> = Self::query(format!(
            "{FILE_SELECT} WHERE f.parent_id = $1 AND f.name = $2{parent_lock}"
        ))
        .bind(&folder.id)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing.filter(|f| f.is_folder) {
            return Ok(Some(existing));
        }
        let Some(name) = Self::free_name(tx, &folder.id, name, None).await? else {
            return Ok(None);
        };
        let made = FileRec::new(&folder.project_id, Some(&folder.id), &name, true);
        Self::insert_file(tx, &made).await?;
        Ok(Some(made))
    }

    /// Deletes a file, or a folder with everything in it, dropping their blob references; the
    /// sweeper frees the bytes no file refers to any more.
    async fn delete_item(
        tx: &mut Conn<E>,
        owner: &str,
        item: &FileJobItem,
    ) -> Result<Item<FileRec>, StoreError> {
        let (source, _) = match Self::source(tx, owner, &item.file_id, |a| a.write).await? {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let tree = Self::locked_subtree(tx, &source.id).await?;
        if Self::any_exported(tx, &tree).await? {
            return Ok(Err(ItemFailure::BeingExported));
        }
        let mut refs: HashMap<&str, i64> = HashMap::new();
        for f in &tree {
            if let Some(blob) = &f.blob_id {
                *refs.entry(blob.as_str()).or_default() += 1;
            }
        }
        let ids: Vec<String> = tree.iter().map(|f| f.id.clone()).collect();
        for chunk in ids.chunks(CHUNK) {
            let mut qb = Self::builder("DELETE FROM files WHERE id IN (");
            push_list(&mut qb, chunk);
            qb.build().execute(&mut *tx).await?;
        }
        for (blob, n) in refs {
            Self::query("UPDATE blobs SET refs = refs - $1 WHERE id = $2")
                .bind(n)
                .bind(blob)
                .execute(&mut *tx)
                .await?;
        }
        Ok(Ok(source))
    }

    /// Advances the job's cursor past `position`, fenced by the attempt and the cursor itself.
    async fn advance(
        tx: &mut Conn<E>,
        job: &FileJobRec,
        position: i64,
        failed: bool,
    ) -> Result<bool, sqlx::Error> {
        let counter = if failed {
            "failed_items"
        } else {
            "completed_items"
        };
        let done = Self::query(format!(
            "UPDATE file_jobs SET next_item = next_item + 1, {counter} = {counter} + 1 \
             WHERE id = $1 AND attempt = $2 AND state = $3 AND next_item = $4"
        ))
        .bind(&job.id)
        .bind(job.attempt)
        .bind(JobState::Running)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        Ok(done == 1)
    }
}

#[async_trait]
impl<E: Engine> FileJobQueue for SqlStore<E> {
    async fn insert_file_job(
        &self,
        job: &FileJobRec,
        items: &[FileJobItem],
    ) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::query(
            "INSERT INTO file_jobs (id, owner, kind, state, total_items, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&job.id)
        .bind(&job.owner)
        .bind(&job.kind)
        .bind(job.state)
        .bind(job.total_items)
        .bind(job.created_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        for item in items {
            Self::query(
                "INSERT INTO file_job_items (job_id, position, file_id, project_id, parent_id, name) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&job.id)
            .bind(item.position)
            .bind(&item.file_id)
            .bind(&item.project_id)
            .bind(&item.parent_id)
            .bind(&item.name)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
            if let Some(Json(error)) = &item.error {
                Self::query(
                    "UPDATE file_job_items SET error = $1 WHERE job_id = $2 AND position = $3",
                )
                .bind(Json(error))
                .bind(&job.id)
                .bind(item.position)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_file_job(&self, id: &str) -> Result<Option<FileJobRec>> {
        Ok(
            Self::query(format!("SELECT {JOB_COLUMNS} FROM file_jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn file_job_items(&self, job_ids: &[String]) -> Result<Vec<FileJobItem>> {
        let mut qb = Self::builder(format!(
            "SELECT {ITEM_COLUMNS} FROM file_job_items WHERE job_id IN ("
        ));
        push_list(&mut qb, job_ids);
        qb.push(" ORDER BY job_id, position");
        Ok(qb.build().fetch_all(&self.pool).await?)
    }

    async fn list_file_jobs(&self, owner: &str, page: Page) -> Result<(Vec<FileJobRec>, i64)> {
        Self::list_jobs(&self.pool, "file_jobs", JOB_COLUMNS, owner, &[], &[], page).await
    }

    async fn claim_file_jobs(
        &self,
        node: &str,
        now: i64,
        lease_until: i64,
        max: i64,
    ) -> Result<Vec<FileJobRec>> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        let runnable = runnable();
        let claim_lock = E::CLAIM_LOCK;
        let claimed = Self::query(format!(
            "WITH picked AS MATERIALIZED (SELECT seq FROM file_jobs WHERE {runnable} ORDER BY seq LIMIT $4{claim_lock}) \
             UPDATE file_jobs SET state = $5, lease_owner = $2, lease_expires_at = $3, \
             attempt = attempt + 1, started_at = COALESCE(started_at, $1) \
             WHERE seq IN (SELECT seq FROM picked) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(now)
        .bind(node)
        .bind(lease_until)
        .bind(max)
        .bind(JobState::Running)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn renew_file_job(&self, id: &str, attempt: i64, lease_until: i64) -> Result<bool> {
        Self::renew_lease(
            &mut *self.engine.writer(&self.jobs_pool).await?,
            "file_jobs",
            id,
            attempt,
            lease_until,
        )
        .await
    }

    async fn apply_file_job_item(
        &self,
        job: &FileJobRec,
        item: &FileJobItem,
    ) -> Result<ItemApplied, StoreError> {
        let Some(kind) = job.kind() else {
            return Err(StoreError::NotFound);
        };
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        // The fence first: the job row stays locked (Postgres) until the commit.
        if !Self::advance(&mut tx, job, item.position, false).await? {
            return Ok(ItemApplied::LeaseLost);
        }
        let applied = match kind {
            FileJobKind::Copy => Self::copy_item(&mut tx, &job.owner, item).await?,
            FileJobKind::Move => Self::move_item(&mut tx, &job.owner, item).await?,
            FileJobKind::Delete => Self::delete_item(&mut tx, &job.owner, item).await?,
        };
        let file = match applied {
            Ok(file) => file,
            // Dropping the transaction rolls back the cursor too.
            Err(why) => return Ok(ItemApplied::Failed(why)),
        };
        let snapshot = serde_json::to_value(&file)
            .map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))?;
        Self::query(
            "UPDATE file_job_items SET done = TRUE, resource = $1, error = NULL \
             WHERE job_id = $2 AND position = $3",
        )
        .bind(Json(&snapshot))
        .bind(&job.id)
        .bind(item.position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ItemApplied::Done(Box::new(file)))
    }

    async fn fail_file_job_item(
        &self,
        job: &FileJobRec,
        position: i64,
        error: &serde_json::Value,
    ) -> Result<bool> {
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        if !Self::advance(&mut tx, job, position, true).await? {
            return Ok(false);
        }
        Self::query(
            "UPDATE file_job_items SET done = TRUE, resource = NULL, error = $1 \
             WHERE job_id = $2 AND position = $3",
        )
        .bind(Json(error))
        .bind(&job.id)
        .bind(position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn finish_file_job(&self, id: &str, attempt: i64, end: &JobEnd) -> Result<bool> {
        let now = egress_core::util::now_ms();
        let mut tx = self.engine.begin_write(&self.jobs_pool).await?;
        let done = match end {
            JobEnd::Completed { .. } => Self::query(
                "UPDATE file_jobs SET finished_at = $3, error = NULL, lease_owner = NULL, state = $4 \
                 WHERE id = $1 AND attempt = $2 AND state = $5",
            )
            .bind(id)
            .bind(attempt)
            .bind(now)
            .bind(JobState::Completed)
            .bind(JobState::Running),
            JobEnd::Failed { error } => {
                // The items not done yet end with the job's error.
                let ended = Self::query(
                    "UPDATE file_job_items SET done = TRUE, error = COALESCE(error, $1) WHERE job_id = $2 AND NOT done \
                     AND EXISTS (SELECT 1 FROM file_jobs WHERE id = $2 AND attempt = $3 AND state = $4)",
                )
                .bind(Json(error))
                .bind(id)
                .bind(attempt)
                .bind(JobState::Running)
                .execute(&mut *tx)
                .await?;
                Self::query(
                    "UPDATE file_jobs SET failed_items = failed_items + $3, next_item = total_items, \
                     finished_at = $4, lease_owner = NULL, state = $5 \
                     WHERE id = $1 AND attempt = $2 AND state = $6",
                )
                .bind(id)
                .bind(attempt)
                .bind(ended as i64)
                .bind(now)
                .bind(JobState::Failed)
                .bind(JobState::Running)
            }
            JobEnd::Retry { at, error } => Self::query(
                "UPDATE file_jobs SET error = $3, next_attempt_at = $4, lease_owner = NULL, \
                 lease_expires_at = 0, state = $5 WHERE id = $1 AND attempt = $2 AND state = $6",
            )
            .bind(id)
            .bind(attempt)
            .bind(Json(error))
            .bind(*at)
            .bind(JobState::Pending)
            .bind(JobState::Running),
        }
        .execute(&mut *tx)
        .await?;
        if done != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
