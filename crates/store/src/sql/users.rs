//! Users and their API tokens.

use super::*;

#[async_trait]
impl<E: Engine> UserStore for SqlStore<E> {
    async fn create_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        let mut tx = self.engine.begin_write(&self.pool).await?;
        Self::query(
            "INSERT INTO users (username, email, is_admin, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.username)
        .bind(&user.email)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Self::query("INSERT INTO tokens (hash, username, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(&user.username)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_token(&self, username: &str, token_hash: &str) -> Result<(), StoreError> {
        Self::query(
            "INSERT INTO tokens (hash, username, created_at) \
             SELECT $1, username, $2 FROM users WHERE username = $3",
        )
        .bind(token_hash)
        .bind(egress_core::util::now_ms())
        .bind(username)
        .execute(&mut *self.engine.writer(&self.pool).await?)
        .await
        .map_err(classify)
        .and_then(|r| {
            if r == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        })
    }

    async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>> {
        Ok(Self::query(
            "SELECT u.username, u.email, u.is_admin, u.created_at FROM tokens t \
             JOIN users u ON u.username = t.username WHERE t.hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        Ok(Self::query(
            "SELECT username, email, is_admin, created_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }
}
