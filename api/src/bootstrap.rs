//! The first super admin: from `SUPER_ADMIN_EMAIL` / `SUPER_ADMIN_PASSWORD` at start-up, or
//! from `api create-super-admin`. An existing user is never overwritten.

use uuid::Uuid;
use wharf_shared::crypto;

use crate::{state::AppState, validate};

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created(Uuid),
    AlreadyExists,
}

pub async fn ensure_super_admin_from_config(state: &AppState) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (
        state.config.super_admin_email.as_deref(),
        state.config.super_admin_password.as_ref(),
    ) else {
        return Ok(());
    };
    match create_super_admin(&state.db, email, password.expose()).await? {
        Outcome::Created(id) => {
            tracing::info!(user_id = %id, "super admin created from SUPER_ADMIN_EMAIL")
        }
        Outcome::AlreadyExists => {
            tracing::debug!("super admin from SUPER_ADMIN_EMAIL already exists")
        }
    }
    Ok(())
}

/// Creates a super admin unless a user with that email exists.
pub async fn create_super_admin(
    db: &sqlx::PgPool,
    email: &str,
    password: &str,
) -> anyhow::Result<Outcome> {
    let email = validate::normalize_email(email);
    anyhow::ensure!(
        validate::is_valid_email(&email),
        "{email:?} is not a valid email address"
    );
    let mut v = validate::Violations::body();
    v.password("password", password);
    if v.into_result().is_err() {
        anyhow::bail!(
            "the super admin password must be at least {} characters with a letter and a digit",
            validate::MIN_PASSWORD_LEN
        );
    }
    let hash = {
        let password = password.to_string();
        tokio::task::spawn_blocking(move || crypto::hash_password(&password)).await?
    };
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (org_id, email, name, role, password_hash)
         VALUES (NULL, $1, 'Super Admin', 'SUPER_ADMIN', $2)
         ON CONFLICT (lower(email)) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
    )
    .bind(&email)
    .bind(hash)
    .fetch_optional(db)
    .await?;
    Ok(id.map(Outcome::Created).unwrap_or(Outcome::AlreadyExists))
}
