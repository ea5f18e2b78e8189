//! Users and their API tokens: `/api/users`, `/api/tokens`. Admins manage users; everyone
//! manages their own tokens.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{state_of, ApiResult};
use crate::ops;
use crate::server::auth::{self, Authed, ClientAddr};
use crate::server::extract::{Json, Path};
use crate::server::{AppState, ErrorBody};
use crate::state::{Role, UserRecord};

/// Every user (admins).
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, body = [UserRecord]), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<UserRecord>>> {
    who.require(Role::Admin, "listing users")?;
    Ok(Json(state_of(&app)?.users()?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    #[schema(schema_with = crate::server::openapi::user_name)]
    pub name: String,
    pub role: Role,
    /// At least 8 characters; stored as an argon2id hash.
    #[schema(schema_with = crate::server::openapi::password)]
    pub password: String,
}

/// Adds a user (admins).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserRecord), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_user(
    State(app): State<AppState>,
    who: Authed,
    Json(u): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<UserRecord>)> {
    let password = SecretString::from(u.password);
    let user = auth::add_user(&app, &who.actor, &u.name, u.role, password).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize, ToSchema)]
pub struct UserChange {
    pub role: Option<Role>,
    /// The new password (at least 8 characters). Every session of the user ends and every
    /// API token of theirs is revoked.
    #[schema(format = Password, write_only, min_length = 8)]
    pub password: Option<String>,
    /// The password the caller logs in with now: required to change one's own password (not
    /// when an admin sets another user's). A wrong one counts as a failed login.
    #[schema(format = Password, write_only)]
    pub current_password: Option<String>,
}

/// Changes a user's role (admins) or password (admins for anyone; everyone for themselves,
/// with `current_password`). A new password ends every session of the user, the caller's
/// own included, and revokes every API token of theirs.
#[utoipa::path(patch, path = "/api/users/{name}", tag = "users", request_body = UserChange,
    params(("name" = String, Path)),
    responses((status = 200, body = UserRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_user(
    State(app): State<AppState>,
    who: Authed,
    from: ClientAddr,
    Path(name): Path<String>,
    Json(c): Json<UserChange>,
) -> ApiResult<Json<UserRecord>> {
    if c.role.is_none() && c.password.is_none() {
        who.require(Role::Admin, "changing a user")?;
    }
    if c.password.is_some() && name == who.actor.name {
        auth::check_current_password(&app, &name, c.current_password, from).await?;
    }
    if let Some(role) = c.role {
        ops::set_role(&app.app, &who.actor, &name, role)?;
    }
    if let Some(p) = c.password {
        auth::set_password(&app, &who.actor, &name, SecretString::from(p)).await?;
    }
    Ok(Json(state_of(&app)?.user(&name)?))
}

/// Removes a user, their sessions and tokens (admins).
#[utoipa::path(delete, path = "/api/users/{name}", tag = "users", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_user(
    State(app): State<AppState>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ops::remove_user(&app.app, &who.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// API tokens: the caller's own (admins: everyone's). Values are never shown again.
#[utoipa::path(get, path = "/api/tokens", tag = "users",
    responses((status = 200, body = [crate::state::TokenRecord])))]
pub async fn list_tokens(
    State(app): State<AppState>,
    who: Authed,
) -> ApiResult<Json<Vec<crate::state::TokenRecord>>> {
    let user = (who.actor.role != Role::Admin).then_some(who.actor.name.as_str());
    Ok(Json(state_of(&app)?.tokens(user)?))
}

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    #[schema(schema_with = crate::server::openapi::name)]
    pub label: String,
    /// Whose token (admins only; by default the caller's).
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub user: String,
    pub label: String,
    /// Shown this once: send it as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Creates an API token.
#[utoipa::path(post, path = "/api/tokens", tag = "users", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(app): State<AppState>,
    who: Authed,
    Json(t): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    use secrecy::ExposeSecret;
    let user = t.user.unwrap_or_else(|| who.actor.name.clone());
    let (id, token) = ops::create_token(&app.app, &who.actor, &user, &t.label)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            user,
            label: t.label,
            token: token.expose_secret().to_string(),
        }),
    ))
}

/// Revokes an API token (one's own; admins: anyone's).
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(app): State<AppState>,
    who: Authed,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    ops::revoke_token(&app.app, &who.actor, id)?;
    Ok(StatusCode::NO_CONTENT)
}
