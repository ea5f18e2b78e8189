//! The OpenAPI document of the REST API, at `/api/openapi.json`, generated from the handlers'
//! annotations (so it cannot drift from the code; a test checks every route is in it).
//!
//! It is the API's contract, checked by `scripts/api-contract.sh`: every status an operation
//! can answer is listed with its body. The handlers' annotations give their own statuses;
//! [`Contract`] adds those that come from the layers every operation goes through (the
//! credentials, the extractors, the router), so that no annotation can forget them.

use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::extract::Json;
use super::{api, auth, oauth, settings, AppState};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (POST /api/tokens)"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                auth::SESSION_COOKIE,
                "The session cookie of POST /api/login; changes also need the X-CSRF-Token header",
            ))),
        );
    }
}

/// What every operation can answer besides what its handler says, by what it takes:
///
/// | status | on | why |
/// | --- | --- | --- |
/// | 401 | every operation that needs credentials | none sent, or unknown ones |
/// | 403 | those that change something | a session's change without its CSRF token |
/// | 400 | those with parameters or a body | a parameter of the wrong type, a body that is not JSON |
/// | 404 | those with path parameters | nothing has that name or id |
/// | 413, 415, 422 | those that take a JSON body | too large, not sent as JSON, not of the expected shape |
/// | 500 | every operation | the server failed (its log says why) |
///
/// Every error answer has the [`super::ErrorBody`] shape. An operation annotated with
/// `security(())` needs no credentials: its requirement becomes `security: []`.
///
/// It also fixes what the generated schemas say differently from what serde does: a query
/// or path parameter is never `null` (absent, rather); an integer of a request can be as
/// large as its Rust type allows, which the document says with exact bounds; a struct
/// flattened into another (`#[serde(flatten)]`) keeps its fields but not its refusal of
/// others (`additionalProperties: false`), which would refuse the outer struct's own fields.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut value = serde_json::to_value(&*doc).expect("the OpenAPI document serialises");
        contract(&mut value);
        *doc = serde_json::from_value(value).expect("the OpenAPI document reads back");
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What a status means here, for the responses whose annotation says nothing more.
fn describe(status: &str) -> &'static str {
    match status {
        "400" => "Refused: a path or query parameter of the wrong type, or a body that is not JSON",
        "401" => "No credentials, or unknown ones: log in (POST /api/login) or send an API token",
        "403" => "Refused: the caller's role does not allow it, or a change made with a session lacks its X-CSRF-Token",
        "404" => "Nothing has that name or id",
        "409" => "In conflict with the current state (the name exists, it is running, it is in use)",
        "413" => "The body is larger than the server takes",
        "415" => "The body was not sent as JSON (Content-Type: application/json)",
        "422" => "Refused: the body or a parameter is not valid (the message says why)",
        "429" => "Too many attempts: wait before trying again",
        "500" => "The server failed; its log says why",
        "502" => "Mailchimp refused or did not answer",
        other => other
            .parse::<u16>()
            .ok()
            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or("See the operation's description"),
    }
}

fn contract(doc: &mut Value) {
    let problem =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for method in METHODS {
                let Some(op) = item.get_mut(method) else {
                    continue;
                };
                let public = match op.get_mut("security") {
                    Some(s) if is_anonymous(s) => {
                        *s = json!([]);
                        true
                    }
                    _ => false,
                };
                let params = op.get("parameters").and_then(Value::as_array);
                let has_params = path.contains('{') || params.is_some_and(|p| !p.is_empty());
                let body_types: Vec<String> = op
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object)
                    .map(|c| c.keys().cloned().collect())
                    .unwrap_or_default();
                let json_body = body_types.iter().any(|t| t == "application/json");
                let mut common = vec!["500"];
                if !public {
                    common.push("401");
                    if method != "get" {
                        common.push("403");
                    }
                }
                if has_params || !body_types.is_empty() {
                    common.push("400");
                }
                if path.contains('{') {
                    common.push("404");
                }
                if json_body {
                    common.extend(["413", "415", "422"]);
                }
                let responses = op
                    .as_object_mut()
                    .expect("an operation is an object")
                    .entry("responses")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("responses are an object");
                for status in common {
                    responses.entry(status).or_insert_with(|| json!({}));
                }
                for (status, response) in responses.iter_mut() {
                    let r = response.as_object_mut().expect("a response is an object");
                    let empty = r
                        .get("description")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                    if empty {
                        r.insert("description".into(), describe(status).into());
                    }
                    if (status.starts_with('4') || status.starts_with('5'))
                        && !r.contains_key("content")
                    {
                        r.insert("content".into(), problem.clone());
                    }
                }
                let bodies = op
                    .pointer_mut("/requestBody/content")
                    .and_then(Value::as_object_mut);
                for body in bodies.into_iter().flat_map(|c| c.values_mut()) {
                    if let Some(schema) = body.get_mut("schema") {
                        not_null(schema);
                    }
                }
                let params = op.get_mut("parameters").and_then(Value::as_array_mut);
                for p in params.into_iter().flatten() {
                    if let Some(schema) = p.get_mut("schema") {
                        not_null(schema);
                    }
                }
            }
        }
    }
    // Integers of requests get exact bounds, as wide as their type.
    walk(doc, &mut integer_bounds);
    flattened_structs(doc);
}

/// `security(())`: one empty requirement, "no credentials needed".
fn is_anonymous(security: &Value) -> bool {
    security
        .as_array()
        .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)))
}

/// A parameter absent is `None`, and so is a body left out: `null` is neither a value a URL
/// can carry nor a body the server reads as "none".
fn not_null(schema: &mut Value) {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let t = types[0].clone();
            schema["type"] = t;
        }
    }
    if let Some(alternatives) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        alternatives.retain(|a| a != &json!({"type": "null"}));
        if let [only] = alternatives.as_slice() {
            let mut only = only.clone();
            let outer = schema
                .as_object_mut()
                .expect("a schema with oneOf is an object");
            outer.remove("oneOf");
            if let (Some(o), Value::Object(inner)) = (outer.get("description").cloned(), &mut only)
            {
                inner.entry("description").or_insert(o);
            }
            *schema = only;
        }
    }
}

fn walk(v: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    match v {
        Value::Object(m) => {
            f(m);
            for x in m.values_mut() {
                walk(x, f);
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, f);
            }
        }
        _ => {}
    }
}

/// utoipa writes an unsigned integer as `minimum: 0` (with `format: int64` for u64, none for
/// usize, `int32` for u32), a signed one with its format only. The bound that utoipa leaves
/// out is added, exactly (as integers, not floats): without it, a client (or a test
/// generator) would take values above what the server reads as refused, or refuse values it
/// takes. A narrower type (u8, u16) says its own `maximum` in its annotation.
fn integer_bounds(m: &mut Map<String, Value>) {
    let is_integer = match m.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    if !is_integer || m.contains_key("maximum") {
        return;
    }
    let unsigned = m.get("minimum").and_then(Value::as_i64) == Some(0);
    let format = m.get("format").and_then(Value::as_str).unwrap_or("");
    let max: Value = match (unsigned, format) {
        (true, "int32") => u32::MAX.into(),
        (true, _) => u64::MAX.into(),
        (false, "int32") => i32::MAX.into(),
        (false, "int64") => i64::MAX.into(),
        _ => return,
    };
    if !unsigned {
        let min: Value = if format == "int32" {
            i32::MIN.into()
        } else {
            i64::MIN.into()
        };
        m.entry("minimum").or_insert(min);
    }
    m.insert("maximum".into(), max);
}

/// A schema that is `allOf` a struct refusing unknown fields and the fields of the struct it
/// is flattened into refuses every answer; the flattened struct is copied in without the
/// refusal.
fn flattened_structs(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    walk(doc, &mut |m| {
        let Some(parts) = m.get_mut("allOf").and_then(Value::as_array_mut) else {
            return;
        };
        for part in parts {
            let target = part
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .and_then(|name| schemas.get(name));
            if let Some(target) = target {
                if target.get("additionalProperties") == Some(&Value::Bool(false)) {
                    let mut copy = target.clone();
                    copy.as_object_mut()
                        .expect("a struct's schema is an object")
                        .remove("additionalProperties");
                    *part = copy;
                }
            }
        }
    });
}

/// The pattern of a name ([`crate::ops::check_name`]): 1 to 100 characters, none of them a
/// control character, neither starting nor ending with white space.
pub const NAME_PATTERN: &str = concat!(
    r"^[^\x00-\x1F\x7F-\x9F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"([^\x00-\x1F\x7F-\x9F]{0,98}",
    r"[^\x00-\x1F\x7F-\x9F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?$"
);

fn name_object(nullable: bool, pattern: &str, description: &str) -> Object {
    let t = if nullable {
        utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null])
    } else {
        utoipa::openapi::schema::SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(t)
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

/// A name (of a connection, a segment, an export, a token's label...): for
/// `#[schema(schema_with = name)]`.
pub fn name() -> Object {
    name_object(
        false,
        NAME_PATTERN,
        "1 to 100 characters, no control character, no white space at either end",
    )
}

/// A name that may be left out or `null`.
pub fn optional_name() -> Object {
    name_object(
        true,
        NAME_PATTERN,
        "1 to 100 characters, no control character, no white space at either end",
    )
}

/// A user's name: a name that does not start with `cli:` (kept for the command line).
pub fn user_name() -> Object {
    name_object(
        false,
        &NAME_PATTERN.replacen('^', "^(?!cli:)", 1),
        "1 to 100 characters, no control character, no white space at either end, not starting with cli:",
    )
}

/// A password ([`crate::ops`]: at least 8 characters).
pub fn password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Password,
        )))
        .min_length(Some(8))
        .description(Some(
            "At least 8 characters; stored as an argon2id hash, never logged",
        ))
        .build()
}

/// A consent that must be given: `true`.
pub fn consent() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Boolean)
        .enum_values(Some([true]))
        .description(Some(
            "Agreement to the data privacy statement: must be true (the refusal quotes the statement)",
        ))
        .build()
}

/// The status a new member gets, as `segsync_core::NewStatus` reads it (that crate has no
/// OpenAPI derive; a test checks the two agree).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum NewStatus {
    Subscribed,
    Pending,
    Transactional,
}

/// What happens to a member that leaves every chosen segment, as
/// `segsync_core::RemovalPolicy` reads it (a test checks the two agree).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum RemovalPolicy {
    Untag,
    Archive,
    Unsubscribe,
}

/// A file uploaded as the request body, as it is.
pub struct Upload;

impl utoipa::PartialSchema for Upload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl utoipa::ToSchema for Upload {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "segsync",
        description = "Export segments of customer profiles to Mailchimp audiences. Roles: viewer (reads exports, runs and segments with their counts, never the personal data of profiles or of the records a run could not send), contributor (segments, exports on shared connections, the records runs could not send, previews of runs; a segment that an export on a connection kept for admins uses is changed or removed by admins only: 403 naming those exports), admin (everything). Every error answer under /api, whoever refuses (a handler, a body that is not JSON, an unknown route), is an ErrorBody {error, message} in JSON, and every status an operation can answer is listed with it. Endpoints that evaluate segment predicates (segment list, preview, add, change; an export's plan) run them in a bounded number of slots per server: 503 with error \"busy\" when none frees within 10 s. Mailchimp base URLs and alert webhooks must be public addresses unless the server runs with --allow-private-targets (422 otherwise); errors never repeat another server's answer. Every answer under /api carries X-Content-Type-Options: nosniff and Cache-Control: no-store.",
    ),
    modifiers(&Security, &Contract),
    // The segment rule refers to itself, so its parts are listed here (schemas reached from
    // the operations are collected on their own).
    components(schemas(crate::rules::Rule, crate::rules::Condition, crate::rules::Op, crate::rules::Kind)),
    security(("token" = []), ("session" = [])),
    paths(
        auth::api_login, auth::api_logout, auth::api_me,
        api::users::list_users, api::users::add_user, api::users::change_user,
        api::users::remove_user,
        api::users::list_tokens, api::users::create_token, api::users::revoke_token,
        api::connections::list_connections, api::connections::add_connection,
        api::connections::get_connection, api::connections::change_connection,
        api::connections::remove_connection, api::connections::test_connection, api::connections::check_connection,
        api::connections::audiences,
        oauth::api_begin,
        api::segments::list_segments, api::segments::add_segment, api::segments::get_segment,
        api::segments::change_segment, api::segments::remove_segment,
        api::segments::preview_draft, api::segments::column_stats, api::segments::export_sizes,
        api::profiles::profiles, api::profiles::import_profiles, api::profiles::refresh_profiles,
        api::uploads::upload, api::uploads::get_upload, api::uploads::repreview,
        api::uploads::commit, api::uploads::discard,
        api::sources::list_sources, api::sources::get_source, api::sources::add_source,
        api::sources::remove_source,
        api::exports::list_exports, api::exports::add_export, api::exports::get_export,
        api::exports::change_export, api::exports::remove_export,
        api::exports::pause_export, api::exports::resume_export,
        api::preview::plan_export,
        api::runs::run_export, api::runs::cancel_export,
        api::runs::list_runs, api::runs::get_run, api::runs::run_errors, api::runs::run_changes, api::runs::cancel_run,
        api::audit::audit_log,
        api::suppressions::installation_list, api::suppressions::installation_add,
        api::suppressions::installation_remove, api::suppressions::export_list,
        api::suppressions::export_add, api::suppressions::export_remove,
        api::suppressions::refusals, api::suppressions::forget_refusal,
        api::suppressions::suppress_refusal,
        settings::get_alerts, settings::put_alerts, settings::test_alerts,
    )
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn valid(schema: Object, value: &str) -> bool {
        let schema = serde_json::to_value(schema).unwrap();
        jsonschema::is_valid(&schema, &Value::from(value))
    }

    fn names() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ \t\u{a0}\u{3000}\u{85}\u{feff}a-c\u{0}\u{1f}\u{7f}\u{9f}]{0,4}",
            "(cli:)?[a-z ]{0,3}[\u{0}-\u{a0}]?[a-z]{0,3}",
            "[a-z]{99,101}",
        ]
    }

    proptest! {
        /// The name patterns of the document take what the server takes, no more, no less.
        #[test]
        fn name_patterns_agree_with_the_server(name in names()) {
            let server = crate::ops::check_name("segment", &name).is_ok();
            prop_assert_eq!(valid(super::name(), &name), server, "{:?}", name);
            prop_assert_eq!(
                valid(user_name(), &name),
                server && !name.starts_with("cli:"),
                "{:?}", name
            );
        }
    }

    /// The enums described here for `segsync_core`'s types take what serde takes.
    #[test]
    fn core_enums_are_described_as_serde_reads_them() {
        use segsync_core::{NewStatus as N, RemovalPolicy as R};
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let values = |name: &str| doc["components"]["schemas"][name]["enum"].clone();
        let serde = |v: Vec<Value>| Value::Array(v);
        assert_eq!(
            values("NewStatus"),
            serde(
                [N::Subscribed, N::Pending, N::Transactional]
                    .iter()
                    .map(|v| serde_json::to_value(v).unwrap())
                    .collect()
            )
        );
        assert_eq!(
            values("RemovalPolicy"),
            serde(
                [R::Untag, R::Archive, R::Unsubscribe]
                    .iter()
                    .map(|v| serde_json::to_value(v).unwrap())
                    .collect()
            )
        );
        for text in ["subscribed", "pending", "transactional"] {
            serde_json::from_value::<N>(json!(text)).unwrap();
        }
    }

    #[test]
    fn the_document_lists_every_status_with_the_error_shape() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let login = &doc["paths"]["/api/login"]["post"];
        assert_eq!(login["security"], json!([]));
        assert!(login["responses"].get("401").is_some(), "a wrong password");
        let run = &doc["paths"]["/api/runs/{id}"]["get"];
        for status in ["400", "401", "404", "500"] {
            assert_eq!(
                run["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{status}"
            );
        }
        let id = &run["parameters"][0]["schema"];
        assert_eq!(
            (&id["minimum"], &id["maximum"]),
            (&json!(i64::MIN), &json!(i64::MAX))
        );
        let limit = &doc["paths"]["/api/runs"]["get"]["parameters"][1]["schema"];
        assert_eq!(
            limit["type"], "integer",
            "a query parameter is never null: {limit}"
        );
        assert_eq!(limit["maximum"], json!(u64::MAX));
    }

    /// Every `$ref` names a schema of the document (the segment rule refers to itself).
    #[test]
    fn every_reference_resolves_and_rules_are_described() {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = doc["components"]["schemas"].clone();
        let mut refs = Vec::new();
        walk(&mut doc, &mut |m| {
            if let Some(Value::String(r)) = m.get("$ref") {
                refs.push(r.clone());
            }
        });
        for r in &refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
            assert!(schemas.get(name).is_some(), "{r} does not resolve");
        }
        let rule = serde_json::to_string(&schemas["Rule"]).unwrap();
        for variant in ["all", "any", "not", "condition", "sql"] {
            assert!(
                rule.contains(&format!("\"{variant}\"")),
                "{variant}: {rule}"
            );
        }
        assert!(refs.iter().any(|r| r.ends_with("/Rule")));
        let new_segment = &doc["paths"]["/api/segments"]["post"]["requestBody"];
        assert!(new_segment.is_object());
        assert!(doc["paths"]["/api/segment-preview"]["post"].is_object());
        assert!(doc["paths"]["/api/export-sizes"]["post"].is_object());
        assert!(doc["paths"]["/api/profiles/columns"]["get"].is_object());
    }
}
