//! `/profile`: the signed-in user's own account.

use axum::{extract::State, Json};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{replace_password, OnlyIfUnset, SessionOut},
    users::{fetch_user, verify_password, UserOut},
    Data,
};
use crate::{
    auth::Auth,
    error::{ApiError, ApiResult},
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations, MAX_NAME_LEN},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_profile, update_profile))
        .routes(routes!(change_password))
}

/// Get own user profile.
#[utoipa::path(get, path = "/profile", tag = "profile",
    responses((status = 200, body = Data<UserOut>), (status = 401), (status = 403)))]
async fn get_profile(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<Data<UserOut>>> {
    let me = auth.user()?;
    Ok(Data::new(fetch_user(&state.db, me.id, None).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateProfileRequest {
    pub name: String,
}

impl Validate for UpdateProfileRequest {
    fn validate(&self, v: &mut Violations) {
        v.text("name", &self.name, MAX_NAME_LEN);
    }
}

/// Update own profile name.
#[utoipa::path(patch, path = "/profile", tag = "profile", request_body = UpdateProfileRequest,
    responses((status = 200, body = Data<UserOut>), (status = 401), (status = 422)))]
async fn update_profile(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<UpdateProfileRequest>,
) -> ApiResult<Json<Data<UserOut>>> {
    let me = auth.user()?;
    sqlx::query("UPDATE users SET name = $2 WHERE id = $1")
        .bind(me.id)
        .bind(body.name.trim())
        .execute(&state.db)
        .await?;
    Ok(Data::new(fetch_user(&state.db, me.id, None).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

impl Validate for ChangePasswordRequest {
    fn validate(&self, v: &mut Violations) {
        if self.current_password.is_empty() {
            v.add("currentPassword", "must not be empty");
        }
        v.password("newPassword", &self.new_password);
    }
}

/// Change own password. Requires the current one; other sessions end.
#[utoipa::path(post, path = "/profile/change-password", tag = "profile", request_body = ChangePasswordRequest,
    responses((status = 200, body = Data<SessionOut>), (status = 400, description = "Current password is wrong"),
              (status = 401), (status = 422)))]
async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<ChangePasswordRequest>,
) -> ApiResult<Json<Data<SessionOut>>> {
    let me = auth.user()?;
    let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(me.id)
        .fetch_one(&state.db)
        .await?;
    if !verify_password(body.current_password, hash).await? {
        return Err(ApiError::BadRequest("Current password is incorrect".into()));
    }
    Ok(Data::new(
        replace_password(&state, me.id, body.new_password, OnlyIfUnset(false)).await?,
    ))
}
