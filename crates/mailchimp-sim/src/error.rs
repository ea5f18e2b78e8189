//! Mailchimp's error answers: `application/problem+json` with `type`, `title`, `status`,
//! `detail`, `instance` (also sent as `X-Request-Id`), optional field `errors`, and the
//! titles and texts Mailchimp uses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

pub const ERROR_TYPE: &str = "https://mailchimp.com/developer/marketing/docs/errors/";
const DESCRIBED_BY: &str =
    "<https://us1.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel=\"describedBy\"";

/// One field-level complaint, as in the `errors` array of a validation error.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error answer of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// For 405: the methods the resource allows.
    pub allow: Option<&'static str>,
    /// Mailchimp sometimes answers 429 (or 403) with no body at all under heavy load.
    pub bodyless: bool,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            allow: None,
            bodyless: false,
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Resource Not Found",
            "The requested resource could not be found.",
        )
    }

    pub fn invalid_resource(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Invalid Resource", detail)
    }

    /// A request body that does not follow the schema, with the fields at fault.
    pub fn schema(errors: Vec<FieldError>) -> Self {
        Self::invalid_resource(
            "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        )
        .with_errors(errors)
    }

    pub fn json_parse() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "JSON Parse Exception",
            "We encountered an unspecified JSON parsing error.",
        )
    }

    pub fn api_key_missing() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "API Key Missing",
            "Your request did not include an API key.",
        )
    }

    pub fn api_key_invalid() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        )
    }

    pub fn too_many_requests(limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            format!("You have exceeded the limit of {limit} simultaneous connections."),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "An unexpected internal error has occurred. Please contact Support for more information.",
        )
    }

    pub fn method_not_allowed(detail: impl Into<String>, allow: &'static str) -> Self {
        let mut e = Self::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", detail);
        e.allow = Some(allow);
        e
    }

    /// The error that `X-Trigger-Error: NAME` asks for, by Mailchimp's trigger names.
    pub fn triggered(name: &str) -> Option<Self> {
        use StatusCode as S;
        let e = match name {
            "BadRequest" => Self::new(
                S::BAD_REQUEST,
                "Bad Request",
                "Your request could not be processed.",
            ),
            "InvalidAction" => Self::new(
                S::BAD_REQUEST,
                "Invalid Action",
                "The action requested was not valid for this resource.",
            ),
            "InvalidResource" => Self::schema(vec![FieldError::new(
                "email_address",
                "This value should not be blank.",
            )]),
            "JSONParseError" => Self::json_parse(),
            "APIKeyMissing" => Self::api_key_missing(),
            "APIKeyInvalid" => Self::api_key_invalid(),
            "Forbidden" => Self::new(
                S::FORBIDDEN,
                "Forbidden",
                "You don't have permission to access this resource.",
            ),
            "UserDisabled" => Self::new(
                S::FORBIDDEN,
                "User Disabled",
                "This account has been disabled.",
            ),
            "WrongDatacenter" => Self::new(
                S::FORBIDDEN,
                "Wrong Datacenter",
                "The API key provided is linked to a different datacenter.",
            ),
            "ResourceNotFound" => Self::not_found(),
            "MethodNotAllowed" => Self::method_not_allowed(
                "The requested method and resource are not compatible.",
                "GET",
            ),
            "ResourceNestingTooDeep" => Self::new(
                S::URI_TOO_LONG,
                "Resource Nesting Too Deep",
                "The requested resource is nested too deeply.",
            ),
            "InvalidMethodOverride" => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "Invalid Method Override",
                "You can only use the X-HTTP-Method-Override header with the POST method.",
            ),
            "RequestedFieldsInvalid" => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "Requested Fields Invalid",
                "The fields requested from this resource are invalid.",
            ),
            "TooManyRequests" => Self::too_many_requests(10),
            "InternalServerError" => Self::internal(),
            "ComplianceRelated" => Self::new(
                S::FORBIDDEN,
                "Compliance Related",
                "This account is currently under compliance review.",
            ),
            _ => return None,
        };
        Some(e)
    }

    /// The problem document, with a fresh request id as `instance`.
    pub fn body(&self, instance: &str) -> serde_json::Value {
        let mut v = json!({
            "type": ERROR_TYPE,
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "instance": instance,
        });
        if !self.errors.is_empty() {
            v["errors"] = serde_json::to_value(&self.errors).expect("field errors serialise");
        }
        v
    }
}

pub fn request_id() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::thread_rng().gen();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let id = request_id();
        let mut resp = if self.bodyless {
            self.status.into_response()
        } else {
            let body = serde_json::to_vec(&self.body(&id)).expect("problem serialises");
            let mut r = (self.status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::LINK, HeaderValue::from_static(DESCRIBED_BY));
            r
        };
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}
