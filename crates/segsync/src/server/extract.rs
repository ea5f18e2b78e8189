//! The extractors of the JSON API: axum's [`axum::Json`], [`axum::extract::Path`] and
//! [`axum::extract::Query`], whose refusals (a body that is not JSON or not of the expected
//! shape, a missing or other content type, a body over the size limit, a path or query
//! parameter of the wrong type) answer the API's one error shape, an [`ApiError`] in JSON,
//! with axum's status, instead of axum's plain text.
//!
//! Handlers use these in place of axum's; [`Json`] also answers, as `axum::Json` does.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// A JSON body (`Content-Type: application/json`), or a JSON answer.
///
/// A body is a JSON object, as the API describes every body: axum's `Json` reads the body
/// (its content type, size and syntax) as an object, which is then read as `T`; serde alone
/// would also read a struct from an array of its fields (`[null, null]`), which no client
/// following the document sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(object) =
            axum::Json::<serde_json::Map<String, Value>>::from_request(req, state)
                .await
                .map_err(|r| match r {
                    JsonRejection::JsonDataError(_) => refused(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "the body must be a JSON object".into(),
                    ),
                    r => ApiError::from(r),
                })?;
        serde_path_to_error::deserialize(Value::Object(object))
            .map(Json)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = if path == "." {
                    format!("the body does not read: {}", e.inner())
                } else {
                    format!("the body does not read: {path}: {}", e.inner())
                };
                refused(StatusCode::UNPROCESSABLE_ENTITY, message)
            })
    }
}

impl<T> IntoResponse for Json<T>
where
    axum::Json<T>: IntoResponse,
{
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The stable code of a refusal by its status (see [`super::ErrorBody`]).
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    }
}

fn refused(status: StatusCode, message: String) -> ApiError {
    ApiError::new(status, code_of(status), message)
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let message = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "the body must be JSON, sent with Content-Type: application/json".to_string()
            }
            _ => r.body_text(),
        };
        refused(r.status(), message)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        refused(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        refused(r.status(), r.body_text())
    }
}
