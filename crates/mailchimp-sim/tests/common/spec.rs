//! The official Mailchimp Marketing API spec (OpenAPI 3.0.1) as a test oracle: checks that a
//! response body has the shape the spec gives for its operation and status.
//!
//! The spec is read once from `tests/spec/marketing-openapi.json` in this crate (its provenance,
//! version, checksum and licence are in `tests/spec/PROVENANCE.md`).
//! Its schemas are OpenAPI 3.0 schemas, which are close to JSON Schema draft 4 but not equal,
//! so they are converted before use:
//! - `nullable: true` becomes a `type` (and `enum`) that also admits `null`;
//! - `format` is dropped: Mailchimp itself sends `""` for unset `date-time` fields;
//! - `x-*` extensions, `example`, `readOnly`, `writeOnly`, `discriminator`, `xml`,
//!   `externalDocs` and `deprecated` are dropped, as they are annotations in OpenAPI;
//! - an empty `required: []` (invalid in draft 4) is dropped.
//!
//! Where the spec contradicts what Mailchimp sends, it is corrected by [`ERRATA`], each with
//! its evidence.
//!
//! `$ref`s (`#/components/schemas/X`) resolve against the converted spec, which is carried in
//! the root of every validator.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::{json, Map, Value};

/// Where the spec lives: inside the repository, beside these tests.
pub const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/spec/marketing-openapi.json"
);

/// The SHA-256 of the spec file as copied from its source (`tests/spec/PROVENANCE.md`).
pub const SPEC_SHA256: &str = "ab58965d976eb992be3892534f5f2987965c829c1ee0b8c70e0c03a1e63ba815";

/// The spec as published (unconverted).
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(SPEC_PATH).unwrap_or_else(|e| {
            panic!("cannot read the Mailchimp OpenAPI spec at {SPEC_PATH}: {e}")
        });
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the spec at {SPEC_PATH} is not valid JSON: {e}"))
    })
}

/// `{"components": {"schemas": ...}}` with every schema converted to JSON Schema draft 4.
fn converted_components() -> &'static Value {
    static CONVERTED: OnceLock<Value> = OnceLock::new();
    CONVERTED.get_or_init(|| {
        let schemas = spec()
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .expect("the spec has components.schemas");
        let converted: Map<String, Value> = schemas
            .iter()
            .map(|(name, s)| (name.clone(), to_json_schema(s)))
            .collect();
        let mut root = json!({"components": {"schemas": converted}});
        for e in ERRATA {
            let n = (e.apply)(&mut root);
            assert!(
                n > 0,
                "the spec erratum \"{}\" no longer applies: fixed upstream? Remove it.",
                e.what
            );
        }
        root
    })
}

/// A place where the spec contradicts what Mailchimp sends, corrected before validation.
pub struct Erratum {
    pub what: &'static str,
    /// Corrects the converted components; returns how many places it changed.
    apply: fn(&mut Value) -> usize,
}

/// The spec's mistakes, each with its evidence. Nothing else is relaxed.
pub const ERRATA: &[Erratum] = &[
    Erratum {
        what: "merge field values are strings, numbers or address objects, not only objects",
        // Every `merge_fields` map says `additionalProperties: {type: object}`, which no
        // member with a text merge field (FNAME) satisfies. Mailchimp's newer official OAS3
        // (mailchimp/fern-marketing-api-docs, and the Fern SDKs generated from it, e.g.
        // `AudiencesContactMergeFieldsValue`) types a value as address | string | number,
        // the address with addr1, city, state, zip required and addr2, country optional.
        apply: fix_merge_field_values,
    },
    Erratum {
        what: "sms_subscription_status is \"\" for a contact without SMS",
        // The enum lists subscribed, unsubscribed, nonsubscribed, pending; Mailchimp sends
        // "sms_phone_number":"","sms_subscription_status":"","sms_subscription_last_updated":""
        // for every contact without an SMS channel (captured member responses).
        apply: allow_unset_sms_status,
    },
];

/// Applies `f` to every object in `v`, depth first; sums what it returns.
fn each_object(v: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>) -> usize) -> usize {
    match v {
        Value::Object(o) => {
            let mut n = f(o);
            for child in o.values_mut() {
                n += each_object(child, f);
            }
            n
        }
        Value::Array(a) => a.iter_mut().map(|c| each_object(c, f)).sum(),
        _ => 0,
    }
}

fn fix_merge_field_values(root: &mut Value) -> usize {
    let value = json!({"anyOf": [
        {"type": "string"},
        {"type": "number"},
        {"type": "object", "required": ["addr1", "city", "state", "zip"], "properties": {
            "addr1": {"type": "string"}, "addr2": {"type": "string"}, "city": {"type": "string"},
            "state": {"type": "string"}, "zip": {"type": "string"}, "country": {"type": "string"},
        }},
    ]});
    each_object(root, &mut |o| {
        let is_merge_map = o
            .get("additionalProperties")
            .and_then(|a| a.get("description"))
            .and_then(Value::as_str)
            .is_some_and(|d| d.starts_with("This object's keys are merge tags"));
        if is_merge_map {
            o.insert("additionalProperties".into(), value.clone());
        }
        usize::from(is_merge_map)
    })
}

fn allow_unset_sms_status(root: &mut Value) -> usize {
    each_object(root, &mut |o| {
        let Some(Value::Array(e)) = o
            .get_mut("properties")
            .and_then(|p| p.get_mut("sms_subscription_status"))
            .and_then(|s| s.get_mut("enum"))
        else {
            return 0;
        };
        e.push(json!(""));
        1
    })
}

/// Converts one OpenAPI 3.0 schema object (and its subschemas) to JSON Schema draft 4.
pub fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(o) = schema else {
        // `additionalProperties: true/false` and the like.
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        let v = match k.as_str() {
            "format" | "nullable" | "example" | "readOnly" | "writeOnly" | "discriminator"
            | "xml" | "externalDocs" | "deprecated" => continue,
            k if k.starts_with("x-") => continue,
            "required" if v.as_array().is_some_and(Vec::is_empty) => continue,
            "properties" | "patternProperties" | "definitions" => match v {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), to_json_schema(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "not" | "additionalItems" => match v {
                Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
                other => to_json_schema(other),
            },
            "allOf" | "anyOf" | "oneOf" => match v {
                Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if o.get("nullable") == Some(&Value::Bool(true)) {
        allow_null(&mut out);
    }
    Value::Object(out)
}

/// Makes a converted schema also accept `null`.
fn allow_null(s: &mut Map<String, Value>) {
    if let Some(Value::Array(e)) = s.get_mut("enum") {
        if !e.contains(&Value::Null) {
            e.push(Value::Null);
        }
    }
    match s.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            s.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) => {
            if !ts.contains(&json!("null")) {
                ts.push(json!("null"));
            }
        }
        _ => {
            // No type of its own (a `$ref` or a combination): wrap it.
            let inner = Value::Object(std::mem::take(s));
            s.insert("anyOf".into(), json!([{"type": "null"}, inner]));
        }
    }
}

/// The response schema of `method spec_path` for `status` (or the operation's `default`), or
/// `None` when that response has no body (a 204). Panics if the spec lacks the operation.
pub fn response_schema(method: &str, spec_path: &str, status: u16) -> Option<&'static Value> {
    let paths = spec().get("paths").expect("the spec has paths");
    let Some(item) = paths.get(spec_path) else {
        panic!("the spec has no path {spec_path:?} (path params are camelCased there, e.g. /lists/{{listId}})");
    };
    let m = method.to_ascii_lowercase();
    let Some(op) = item.get(&m) else {
        panic!(
            "the spec has no operation {} {spec_path}",
            method.to_ascii_uppercase()
        );
    };
    let responses = op.get("responses").expect("an operation has responses");
    let Some(response) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        panic!(
            "the spec gives {} {spec_path} no response {status} and no default",
            method.to_ascii_uppercase()
        );
    };
    response
        .get("content")
        .and_then(|c| c.get("application/json"))
        .and_then(|c| c.get("schema"))
}

/// A validator for one (converted) OpenAPI schema, with `#/components/...` resolvable; built
/// once per distinct schema.
pub fn validator_for(schema: &Value) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&key) {
        return v.clone();
    }
    let mut root = converted_components().clone();
    root["allOf"] = json!([to_json_schema(schema)]);
    let validator = jsonschema::options()
        .with_draft(Draft::Draft4)
        .should_validate_formats(false)
        .build(&root)
        .unwrap_or_else(|e| panic!("cannot build a validator for {key}: {e}"));
    let validator = Arc::new(validator);
    cache.lock().unwrap().insert(key, validator.clone());
    validator
}

/// The validator for `#/components/schemas/{name}`.
pub fn component_validator(name: &str) -> Arc<Validator> {
    assert!(
        spec()
            .pointer(&format!("/components/schemas/{name}"))
            .is_some(),
        "the spec has no schema {name}"
    );
    validator_for(&json!({"$ref": format!("#/components/schemas/{name}")}))
}

fn shorten(s: String) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Every way `body` breaks `validator`, one line each: the JSON pointer, what is wrong, and
/// where in the schema.
pub fn violations_of(validator: &Validator, body: &Value) -> Vec<String> {
    let mut out: Vec<String> = validator
        .iter_errors(body)
        .map(|e| {
            let at = e.instance_path.to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            shorten(format!("{at}: {e} [schema {}]", e.schema_path))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What is wrong with `body` as the answer `status` of `method spec_path`; empty when it
/// conforms. A 4xx or 5xx is also checked against `ProblemDetailDocument`.
pub fn violations(method: &str, spec_path: &str, status: u16, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match response_schema(method, spec_path, status) {
        None => {
            if !body.is_null() {
                out.push(format!(
                    "/: the spec gives no body for {status}, but one came: {}",
                    shorten(body.to_string())
                ));
            }
        }
        Some(schema) => out.extend(violations_of(&validator_for(schema), body)),
    }
    if status >= 400 {
        for v in violations_of(&component_validator("ProblemDetailDocument"), body) {
            out.push(format!("(as ProblemDetailDocument) {v}"));
        }
        if body.get("status").and_then(Value::as_u64) != Some(u64::from(status)) {
            out.push(format!(
                "/status: a problem document must repeat the HTTP status {status}, found {}",
                body.get("status").unwrap_or(&Value::Null)
            ));
        }
    }
    out
}

/// Panics, listing every violation, unless `body` conforms to the spec's response schema of
/// `method spec_path` for `status` (or `default`). `spec_path` is the spec's form of the path,
/// e.g. `/lists/{listId}/members/{subscriberHash}`.
pub fn assert_conforms(method: &str, spec_path: &str, status: u16, body: &Value) {
    let v = violations(method, spec_path, status, body);
    if !v.is_empty() {
        panic!(
            "{} {spec_path} answered {status} with a body that does not conform to the spec ({} violations):\n  {}\nbody: {}",
            method.to_ascii_uppercase(),
            v.len(),
            v.join("\n  "),
            shorten(body.to_string()),
        );
    }
}

/// [`assert_conforms`] for a whole answer, also checking its content type: JSON for success,
/// `application/problem+json` for errors, nothing for a 204.
pub fn assert_answer_conforms(method: &str, spec_path: &str, answer: &super::Answer) {
    let ct = answer
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    let wanted = if answer.status >= 400 {
        Some("application/problem+json")
    } else if response_schema(method, spec_path, answer.status).is_some() {
        Some("application/json")
    } else {
        None
    };
    match wanted {
        Some(w) => assert_eq!(
            mime,
            w,
            "{} {spec_path} answered {} with content type {ct:?}",
            method.to_ascii_uppercase(),
            answer.status
        ),
        None => assert!(
            mime.is_empty(),
            "{} {spec_path} answered {} (no body) with content type {ct:?}",
            method.to_ascii_uppercase(),
            answer.status
        ),
    }
    assert_conforms(method, spec_path, answer.status, &answer.body);
}

/// Panics unless `answer` is an error as Mailchimp sends them, whatever the request: a 4xx or
/// 5xx, `application/problem+json`, a body that conforms to `ProblemDetailDocument` and repeats
/// the status. For answers to requests the spec has no operation for (a wrong method, an
/// unknown path).
pub fn assert_problem(answer: &super::Answer) {
    assert!(
        answer.status >= 400,
        "not an error: {} {}",
        answer.status,
        answer.body
    );
    let ct = answer
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(
        ct.split(';').next().unwrap_or("").trim(),
        "application/problem+json",
        "an error of status {} came as {ct:?}: {}",
        answer.status,
        answer.body
    );
    let mut v = violations_of(&component_validator("ProblemDetailDocument"), &answer.body);
    if answer.body.get("status").and_then(Value::as_u64) != Some(u64::from(answer.status)) {
        v.push(format!(
            "/status: does not repeat the HTTP status {}",
            answer.status
        ));
    }
    assert!(
        v.is_empty(),
        "an error of status {} is not a problem document:\n  {}\nbody: {}",
        answer.status,
        v.join("\n  "),
        answer.body
    );
}

/// The spec's form of a route of the simulator's router: `/3.0` dropped (the root becomes `/`)
/// and path params camelCased, as the spec writes them: `/3.0/lists/{list_id}` is
/// `/lists/{listId}`.
pub fn spec_path_of(route: &str) -> String {
    let rest = route
        .strip_prefix("/3.0")
        .unwrap_or_else(|| panic!("{route} is not a /3.0 route"));
    if rest.is_empty() || rest == "/" {
        return "/".into();
    }
    let mut out = String::new();
    let mut in_param = false;
    let mut upper = false;
    for c in rest.chars() {
        match c {
            '{' => in_param = true,
            '}' => in_param = false,
            '_' if in_param => {
                upper = true;
                continue;
            }
            _ => {}
        }
        if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Properties in `body` that the response schema does not declare (the schema allows them, as
/// OpenAPI objects are open unless `additionalProperties: false`), as JSON pointers. Objects
/// the schema describes only by `additionalProperties` (maps such as `merge_fields`) are not
/// searched.
pub fn undeclared(method: &str, spec_path: &str, status: u16, body: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(schema) = response_schema(method, spec_path, status) {
        walk_undeclared(schema, body, String::new(), &mut out);
    }
    out
}

fn resolve(schema: &Value) -> &Value {
    let mut s = schema;
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let ptr = r.strip_prefix('#').expect("local $ref");
        s = spec()
            .pointer(ptr)
            .unwrap_or_else(|| panic!("dangling $ref {r}"));
    }
    s
}

/// The schemas `schema` is made of (itself and its `allOf` / `anyOf` / `oneOf` parts).
fn parts(schema: &Value) -> Vec<&Value> {
    let s = resolve(schema);
    let mut out = vec![s];
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(a) = s.get(k).and_then(Value::as_array) {
            out.extend(a.iter().flat_map(parts));
        }
    }
    out
}

fn walk_undeclared(schema: &Value, v: &Value, at: String, out: &mut BTreeSet<String>) {
    let ps = parts(schema);
    match v {
        Value::Object(o) => {
            let declared: Vec<&Map<String, Value>> = ps
                .iter()
                .filter_map(|p| p.get("properties").and_then(Value::as_object))
                .collect();
            let open_map = ps.iter().any(|p| p.get("additionalProperties").is_some());
            if declared.is_empty() {
                return;
            }
            for (k, child) in o {
                match declared.iter().find_map(|d| d.get(k)) {
                    Some(sub) => walk_undeclared(sub, child, format!("{at}/{k}"), out),
                    None if open_map => {}
                    None => {
                        out.insert(format!("{at}/{k}"));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = ps.iter().find_map(|p| p.get("items")) {
                for child in items {
                    walk_undeclared(item_schema, child, format!("{at}/*"), out);
                }
            }
        }
        _ => {}
    }
}
