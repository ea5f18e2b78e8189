//! Every `/3.0` endpoint of the simulator, driven through HTTP with realistic data, answers
//! with bodies that conform to the official Mailchimp Marketing API spec (OpenAPI 3.0.1,
//! `tests/spec/marketing-openapi.json`): success bodies to the operation's response
//! schema, errors to `ProblemDetailDocument` as `application/problem+json`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::spec::{
    assert_answer_conforms, assert_conforms, assert_problem, response_schema, spec, spec_path_of,
    to_json_schema, undeclared, validator_for, violations, SPEC_PATH, SPEC_SHA256,
};
use common::{Answer, Env};
use reqwest::Method;
use serde_json::{json, Value};

/// Every `/3.0` route of `src/http/mod.rs`, as the router writes it. A route added there must be
/// added here, and driven below.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/3.0"),
    ("GET", "/3.0/ping"),
    ("GET", "/3.0/lists"),
    ("POST", "/3.0/lists"),
    ("GET", "/3.0/lists/{list_id}"),
    ("PATCH", "/3.0/lists/{list_id}"),
    ("DELETE", "/3.0/lists/{list_id}"),
    ("POST", "/3.0/lists/{list_id}"),
    ("GET", "/3.0/lists/{list_id}/members"),
    ("POST", "/3.0/lists/{list_id}/members"),
    ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("PUT", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("PATCH", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    ("DELETE", "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    (
        "POST",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent",
    ),
    ("GET", "/3.0/lists/{list_id}/members/{subscriber_hash}/tags"),
    (
        "POST",
        "/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
    ),
    ("GET", "/3.0/lists/{list_id}/merge-fields"),
    ("POST", "/3.0/lists/{list_id}/merge-fields"),
    ("GET", "/3.0/lists/{list_id}/merge-fields/{merge_id}"),
    ("PATCH", "/3.0/lists/{list_id}/merge-fields/{merge_id}"),
    ("DELETE", "/3.0/lists/{list_id}/merge-fields/{merge_id}"),
    ("GET", "/3.0/lists/{list_id}/segments"),
    ("POST", "/3.0/lists/{list_id}/segments"),
    ("GET", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("PATCH", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("DELETE", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("POST", "/3.0/lists/{list_id}/segments/{segment_id}"),
    ("GET", "/3.0/lists/{list_id}/segments/{segment_id}/members"),
    ("POST", "/3.0/lists/{list_id}/segments/{segment_id}/members"),
    (
        "DELETE",
        "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}",
    ),
    ("GET", "/3.0/lists/{list_id}/tag-search"),
    ("GET", "/3.0/batches"),
    ("POST", "/3.0/batches"),
    ("GET", "/3.0/batches/{batch_id}"),
    ("DELETE", "/3.0/batches/{batch_id}"),
];

fn expected_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .collect()
}

/// The `/3.0` routes declared in `src/http/mod.rs`, read from its source: each
/// `.route("/3.0...", get(..).post(..)...)` with the method routers it chains.
fn routes_in_router_source() -> BTreeSet<(String, String)> {
    let src = include_str!("../src/http/mod.rs");
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        // The call's text, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find_map(|(j, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(j)
            })
            .expect("a .route( call closes");
        let call = &rest[..end];
        let path = call
            .split('"')
            .nth(1)
            .expect("a route's first argument is a string literal");
        if !path.starts_with("/3.0") {
            continue;
        }
        let bytes = call.as_bytes();
        for m in ["get", "post", "put", "patch", "delete"] {
            let mut from = 0;
            while let Some(k) = call[from..].find(m) {
                let at = from + k;
                from = at + m.len();
                let before_ok =
                    at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
                let after_paren = bytes.get(at + m.len()) == Some(&b'(');
                if before_ok && after_paren {
                    out.insert((m.to_ascii_uppercase(), path.to_string()));
                }
            }
        }
    }
    out
}

/// Does `path` (under `/3.0`, query string allowed) fit the router's `route`?
fn fits(route: &str, path: &str) -> bool {
    let full = format!("/3.0{}", path.split('?').next().unwrap_or(""));
    let full = if full.len() > 4 {
        full.trim_end_matches('/').to_string()
    } else {
        full
    };
    let a: Vec<&str> = route.split('/').collect();
    let b: Vec<&str> = full.split('/').collect();
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(r, p)| (r.starts_with('{') && !p.is_empty()) || r == p)
}

/// Calls endpoints, checks each answer against the spec, and remembers what was covered.
struct Checker<'a> {
    env: &'a Env,
    /// (method, route) answered with a 2xx and checked.
    ok: BTreeSet<(String, String)>,
    /// (method, route) answered with a 4xx and checked.
    errors: BTreeSet<(String, String)>,
    /// Per operation, properties the simulator sends that its response schema does not declare.
    undeclared: BTreeMap<String, BTreeSet<String>>,
    checked: usize,
}

impl<'a> Checker<'a> {
    fn new(env: &'a Env) -> Self {
        Checker {
            env,
            ok: BTreeSet::new(),
            errors: BTreeSet::new(),
            undeclared: BTreeMap::new(),
            checked: 0,
        }
    }

    /// `method path` (relative to `/3.0`) must answer `want`; its answer must conform to the
    /// spec operation of `route`.
    async fn expect(
        &mut self,
        want: u16,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let a = self.env.call(method.clone(), path, body).await;
        self.record(want, method.as_str(), route, path, &a);
        a
    }

    fn record(&mut self, want: u16, method: &str, route: &str, path: &str, a: &Answer) {
        assert!(
            ROUTES.contains(&(method, route)),
            "{method} {route} is not in ROUTES"
        );
        assert!(fits(route, path), "{path} is not a path of {route}");
        assert_eq!(
            a.status, want,
            "{method} {path} answered {}: {}",
            a.status, a.body
        );
        let spec_path = spec_path_of(route);
        assert_answer_conforms(method, &spec_path, a);
        self.checked += 1;
        let key = (method.to_string(), route.to_string());
        if a.status < 300 {
            self.ok.insert(key);
        } else {
            self.errors.insert(key);
        }
        let extra = undeclared(method, &spec_path, a.status, &a.body);
        if !extra.is_empty() {
            self.undeclared
                .entry(format!("{method} {spec_path} {}", a.status))
                .or_default()
                .extend(extra);
        }
    }

    async fn get(&mut self, route: &str, path: &str) -> Answer {
        self.expect(200, Method::GET, route, path, None).await
    }
    async fn post(&mut self, route: &str, path: &str, body: Value) -> Answer {
        self.expect(200, Method::POST, route, path, Some(body))
            .await
    }
    async fn put(&mut self, route: &str, path: &str, body: Value) -> Answer {
        self.expect(200, Method::PUT, route, path, Some(body)).await
    }
    async fn patch(&mut self, route: &str, path: &str, body: Value) -> Answer {
        self.expect(200, Method::PATCH, route, path, Some(body))
            .await
    }
    /// A call answered `204 No Content`.
    async fn no_content(
        &mut self,
        method: Method,
        route: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.expect(204, method, route, path, body).await
    }
}

const LIST: &str = "/3.0/lists/{list_id}";
const LISTS: &str = "/3.0/lists";
const MEMBERS: &str = "/3.0/lists/{list_id}/members";
const MEMBER: &str = "/3.0/lists/{list_id}/members/{subscriber_hash}";
const DELETE_PERMANENT: &str =
    "/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent";
const MEMBER_TAGS: &str = "/3.0/lists/{list_id}/members/{subscriber_hash}/tags";
const MERGE_FIELDS: &str = "/3.0/lists/{list_id}/merge-fields";
const MERGE_FIELD: &str = "/3.0/lists/{list_id}/merge-fields/{merge_id}";
const SEGMENTS: &str = "/3.0/lists/{list_id}/segments";
const SEGMENT: &str = "/3.0/lists/{list_id}/segments/{segment_id}";
const SEGMENT_MEMBERS: &str = "/3.0/lists/{list_id}/segments/{segment_id}/members";
const SEGMENT_MEMBER: &str = "/3.0/lists/{list_id}/segments/{segment_id}/members/{subscriber_hash}";
const TAG_SEARCH: &str = "/3.0/lists/{list_id}/tag-search";
const BATCHES: &str = "/3.0/batches";
const BATCH: &str = "/3.0/batches/{batch_id}";

fn hash(email: &str) -> String {
    mailchimp_sim::subscriber_hash(email)
}

fn id_of(a: &Answer) -> String {
    match &a.body["id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("no id in {other}: {}", a.body),
    }
}

#[tokio::test]
async fn every_endpoint_answers_as_the_spec_says() {
    let env = common::start().await;
    let mut c = Checker::new(&env);
    let l = env.list_id.clone();
    let members = format!("/lists/{l}/members");

    // The account and the health check.
    c.get("/3.0", "/").await;
    c.get("/3.0/ping", "/ping").await;

    // Audiences: create, read, update, list; deleted at the end.
    let created = c
        .post(
            LISTS,
            "/lists",
            json!({
                "name": "Spring Launch Waitlist",
                "contact": {"company": "Northwind Traders", "address1": "675 Ponce de Leon Ave NE",
                            "address2": "Suite 5000", "city": "Atlanta", "state": "GA", "zip": "30308",
                            "country": "US", "phone": "+1 404 555 0199"},
                "permission_reminder": "You joined the Spring Launch waitlist on northwind.example.org.",
                "use_archive_bar": true,
                "campaign_defaults": {"from_name": "Northwind Traders", "from_email": "hello@northwind.dev",
                                      "subject": "Spring is coming", "language": "en"},
                "notify_on_subscribe": "ops@northwind.dev",
                "notify_on_unsubscribe": "",
                "email_type_option": true,
                "double_optin": false,
                "marketing_permissions": false,
                "visibility": "prv",
            }),
        )
        .await;
    let spring = id_of(&created);
    c.get(LIST, &format!("/lists/{spring}")).await;
    c.patch(
        LIST,
        &format!("/lists/{spring}"),
        json!({"name": "Spring Launch Waitlist 2025", "double_optin": true, "visibility": "pub"}),
    )
    .await;
    c.get(LISTS, "/lists").await;
    c.get(LISTS, "/lists?count=1&offset=1").await;

    // Merge fields of every type, read, updated, listed; one deleted.
    let mut merge_ids = BTreeMap::new();
    for (tag, name, ty, options) in [
        ("COMPANY", "Company", "text", json!({"size": 40})),
        ("SEATS", "Seats", "number", json!({})),
        (
            "BIRTHDAY",
            "Birthday",
            "birthday",
            json!({"date_format": "MM/DD"}),
        ),
        (
            "RENEWAL",
            "Renewal date",
            "date",
            json!({"date_format": "DD/MM/YYYY"}),
        ),
        (
            "PLAN",
            "Plan",
            "radio",
            json!({"choices": ["Free", "Standard", "Premium"]}),
        ),
        (
            "REGION",
            "Region",
            "dropdown",
            json!({"choices": ["EMEA", "AMER", "APAC"]}),
        ),
        ("WEBSITE", "Website", "url", json!({})),
        ("AVATAR", "Avatar", "imageurl", json!({})),
        ("ZIPCODE", "Zip code", "zip", json!({})),
        ("MOBILE", "Mobile", "phone", json!({"phone_format": "US"})),
        (
            "SHIPTO",
            "Shipping address",
            "address",
            json!({"default_country": 164}),
        ),
    ] {
        let a = c
            .post(
                MERGE_FIELDS,
                &format!("/lists/{l}/merge-fields"),
                json!({"tag": tag, "name": name, "type": ty, "required": false, "public": true,
                       "default_value": "", "help_text": format!("Your {}", name.to_lowercase()),
                       "options": options}),
            )
            .await;
        merge_ids.insert(tag, a.body["merge_id"].as_u64().expect("merge_id"));
    }
    let plan = merge_ids["PLAN"];
    c.get(MERGE_FIELD, &format!("/lists/{l}/merge-fields/{plan}"))
        .await;
    c.patch(
        MERGE_FIELD,
        &format!("/lists/{l}/merge-fields/{plan}"),
        json!({"name": "Subscription plan", "options": {"choices": ["Free", "Standard", "Premium", "Enterprise"]}}),
    )
    .await;
    c.get(MERGE_FIELDS, &format!("/lists/{l}/merge-fields"))
        .await;
    c.get(
        MERGE_FIELDS,
        &format!("/lists/{l}/merge-fields?type=text&count=100"),
    )
    .await;
    let temp = c
        .post(
            MERGE_FIELDS,
            &format!("/lists/{l}/merge-fields"),
            json!({"tag": "TEMP", "name": "Temporary", "type": "text"}),
        )
        .await;
    let temp = temp.body["merge_id"].as_u64().unwrap();
    c.no_content(
        Method::DELETE,
        MERGE_FIELD,
        &format!("/lists/{l}/merge-fields/{temp}"),
        None,
    )
    .await;

    // Members: create with every kind of merge value, upsert, update, read, list.
    let ada = "ada.lovelace@analytical.dev";
    let a = c
        .post(
            MEMBERS,
            &members,
            json!({
                "email_address": ada,
                "status": "subscribed",
                "email_type": "html",
                "merge_fields": {
                    "FNAME": "Ada", "LNAME": "Lovelace",
                    "ADDRESS": {"addr1": "12 St James's Square", "addr2": "", "city": "London",
                                "state": "London", "zip": "SW1Y 4LB", "country": "GB"},
                    "PHONE": "+44 20 7946 0958",
                    "COMPANY": "Analytical Engines Ltd", "SEATS": 12, "BIRTHDAY": "12/10",
                    "RENEWAL": "01/03/2026", "PLAN": "Premium", "REGION": "EMEA",
                    "WEBSITE": "https://analytical.dev", "AVATAR": "https://analytical.dev/ada.png",
                    "ZIPCODE": "30308", "MOBILE": "+1 404 555 0100",
                    "SHIPTO": {"addr1": "675 Ponce de Leon Ave NE", "city": "Atlanta", "state": "GA",
                               "zip": "30308", "country": "US"},
                },
                "language": "en",
                "vip": true,
                "tags": ["Founders", "2024 import"],
                "ip_signup": "203.0.113.7",
                "timestamp_signup": "2024-11-05T10:15:00+00:00",
                "ip_opt": "203.0.113.7",
                "timestamp_opt": "2024-11-05T10:16:30+00:00",
            }),
        )
        .await;
    assert_eq!(a.body["status"], "subscribed");
    let ada_hash = hash(ada);
    let ada_path = format!("{members}/{ada_hash}");
    let grace = "grace.hopper@navy-cobol.dev";
    let grace_path = format!("{members}/{}", hash(grace));
    c.put(
        MEMBER,
        &grace_path,
        json!({"email_address": grace, "status_if_new": "pending",
               "merge_fields": {"FNAME": "Grace", "LNAME": "Hopper", "PLAN": "Standard"}}),
    )
    .await;
    c.put(
        MEMBER,
        &ada_path,
        json!({"email_address": ada, "status_if_new": "subscribed", "status": "subscribed",
               "merge_fields": {"SEATS": 15}}),
    )
    .await;
    c.patch(
        MEMBER,
        &ada_path,
        json!({"email_type": "text", "merge_fields": {"LNAME": "King-Noel"}, "vip": false, "language": "fr"}),
    )
    .await;
    let alan = "alan.turing@bletchley.dev";
    c.post(
        MEMBERS,
        &members,
        json!({"email_address": alan, "status": "transactional", "merge_fields": {"FNAME": "Alan"}}),
    )
    .await;
    let linus = "linus.torvalds@kernel-mail.dev";
    c.post(
        MEMBERS,
        &members,
        json!({"email_address": linus, "status": "subscribed"}),
    )
    .await;
    c.patch(
        MEMBER,
        &format!("{members}/{}", hash(linus)),
        json!({"status": "unsubscribed"}),
    )
    .await;
    c.get(MEMBER, &ada_path).await;
    c.get(MEMBER, &format!("{members}/{ada}")).await;
    c.get(MEMBERS, &members).await;
    c.get(
        MEMBERS,
        &format!("{members}?status=subscribed&count=2&offset=0"),
    )
    .await;
    c.get(MEMBERS, &format!("{members}?since_last_changed=2020-01-01T00:00:00%2B00:00&sort_field=last_changed&sort_dir=DESC")).await;

    // Batch upsert, with errors among the members: an existing address without
    // update_existing, an address that looks fake, a malformed one, a duplicate, a bad status.
    let batch = c
        .post(
            LIST,
            &format!("/lists/{l}"),
            json!({
                "members": [
                    {"email_address": "katherine.johnson@langley.dev", "status": "subscribed",
                     "merge_fields": {"FNAME": "Katherine", "LNAME": "Johnson", "PLAN": "Free"},
                     "language": "en", "vip": false},
                    {"email_address": "dorothy.vaughan@langley.dev", "status": "pending", "email_type": "text"},
                    {"email_address": ada, "status": "subscribed"},
                    {"email_address": "someone@example.com", "status": "subscribed"},
                    {"email_address": "not-an-address", "status": "subscribed"},
                    {"email_address": "katherine.johnson@langley.dev", "status": "subscribed"},
                    {"email_address": "mary.jackson@langley.dev", "status": "bogus"},
                    {"email_address": "mae.jemison@nasa-alumni.dev", "status": "subscribed",
                     "merge_fields": {"PLAN": "Gold"}},
                ],
                "update_existing": false,
            }),
        )
        .await;
    assert_eq!(batch.body["total_created"], 2, "{}", batch.body);
    assert!(
        batch.body["error_count"].as_u64().unwrap() >= 5,
        "{}",
        batch.body
    );
    let batch = c
        .post(
            LIST,
            &format!("/lists/{l}?skip_duplicate_check=true"),
            json!({
                "members": [
                    {"email_address": ada, "status": "subscribed", "merge_fields": {"COMPANY": "Babbage & Co"}},
                    {"email_address": "mary.jackson@langley.dev", "status": "subscribed"},
                ],
                "update_existing": true,
                "sync_tags": false,
            }),
        )
        .await;
    assert_eq!(
        (
            batch.body["total_created"].as_u64(),
            batch.body["total_updated"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Member tags.
    c.no_content(
        Method::POST,
        MEMBER_TAGS,
        &format!("{ada_path}/tags"),
        Some(json!({"tags": [{"name": "Founders", "status": "inactive"}, {"name": "Beta testers", "status": "active"},
                             {"name": "VIP", "status": "active"}], "is_syncing": false})),
    )
    .await;
    let tags = c.get(MEMBER_TAGS, &format!("{ada_path}/tags")).await;
    assert_eq!(tags.body["total_items"], 3, "{}", tags.body);
    c.get(MEMBER_TAGS, &format!("{grace_path}/tags")).await;

    // Segments: a static one (a tag), a saved one; batch add/remove; segment members.
    let stat = c
        .post(
            SEGMENTS,
            &format!("/lists/{l}/segments"),
            json!({"name": "Webinar attendees", "static_segment": [ada, grace, "nobody@nowhere-in-list.dev"]}),
        )
        .await;
    let stat = id_of(&stat);
    let saved = c
        .post(
            SEGMENTS,
            &format!("/lists/{l}/segments"),
            json!({"name": "Premium planners", "options": {"match": "any", "conditions": [
                {"condition_type": "TextMerge", "field": "PLAN", "op": "is", "value": "Premium"},
                {"condition_type": "EmailAddress", "field": "EMAIL", "op": "contains", "value": "langley.dev"},
            ]}}),
        )
        .await;
    let saved = id_of(&saved);
    c.get(SEGMENT, &format!("/lists/{l}/segments/{stat}")).await;
    c.get(SEGMENT, &format!("/lists/{l}/segments/{saved}"))
        .await;
    c.patch(
        SEGMENT,
        &format!("/lists/{l}/segments/{stat}"),
        json!({"name": "Webinar attendees (March)", "static_segment": [ada, grace, alan]}),
    )
    .await;
    c.patch(
        SEGMENT,
        &format!("/lists/{l}/segments/{saved}"),
        json!({"name": "Premium planners", "options": {"match": "all", "conditions": [
            {"condition_type": "TextMerge", "field": "PLAN", "op": "is", "value": "Premium"}]}}),
    )
    .await;
    c.get(SEGMENTS, &format!("/lists/{l}/segments")).await;
    c.get(
        SEGMENTS,
        &format!("/lists/{l}/segments?type=static&count=50"),
    )
    .await;
    let b = c
        .post(
            SEGMENT,
            &format!("/lists/{l}/segments/{stat}"),
            json!({"members_to_add": ["katherine.johnson@langley.dev", "ghost@nowhere-in-list.dev"],
                   "members_to_remove": [alan]}),
        )
        .await;
    assert_eq!(b.body["total_added"], 1, "{}", b.body);
    c.get(
        SEGMENT_MEMBERS,
        &format!("/lists/{l}/segments/{stat}/members"),
    )
    .await;
    c.get(
        SEGMENT_MEMBERS,
        &format!("/lists/{l}/segments/{stat}/members?include_transactional=true&include_unsubscribed=true"),
    )
    .await;
    c.post(
        SEGMENT_MEMBERS,
        &format!("/lists/{l}/segments/{stat}/members"),
        json!({"email_address": "dorothy.vaughan@langley.dev"}),
    )
    .await;
    c.no_content(
        Method::DELETE,
        SEGMENT_MEMBER,
        &format!("/lists/{l}/segments/{stat}/members/{}", hash(grace)),
        None,
    )
    .await;
    c.get(TAG_SEARCH, &format!("/lists/{l}/tag-search?name=web"))
        .await;
    c.get(TAG_SEARCH, &format!("/lists/{l}/tag-search")).await;
    c.no_content(
        Method::DELETE,
        SEGMENT,
        &format!("/lists/{l}/segments/{saved}"),
        None,
    )
    .await;

    // The audience with its stats after all that; its contact has every field, whatever
    // subset it was created with.
    let a = c.get(LIST, &format!("/lists/{l}")).await;
    let contact = a.body["contact"].as_object().expect("a contact");
    for k in [
        "company", "address1", "address2", "city", "state", "zip", "country", "phone",
    ] {
        assert!(
            contact.get(k).is_some_and(Value::is_string),
            "contact.{k}: {}",
            a.body["contact"]
        );
    }

    // Batches: submitted, polled until finished, listed, deleted.
    let ops = json!({"operations": [
        {"method": "PUT", "path": format!("/lists/{l}/members/{}", hash("hedy.lamarr@spread-spectrum.dev")),
         "operation_id": "upsert-hedy",
         "body": json!({"email_address": "hedy.lamarr@spread-spectrum.dev", "status_if_new": "subscribed",
                        "merge_fields": {"FNAME": "Hedy"}}).to_string()},
        {"method": "GET", "path": format!("/lists/{l}/members"), "operation_id": "list-members",
         "params": {"count": 5, "status": "subscribed"}},
        {"method": "POST", "path": format!("/lists/{l}/members/{}/tags", hash(ada)), "operation_id": "tag-ada",
         "body": json!({"tags": [{"name": "Batch tagged", "status": "active"}]}).to_string()},
        {"method": "GET", "path": "/lists/0000000000", "operation_id": "missing"},
    ]});
    // Slow enough that the polls see the batch pass through its states.
    let mut settings = env.sim.settings();
    let fast = settings.batches.clone();
    settings.batches.state_ms = 15;
    settings.batches.op_ms = 5.0;
    env.sim.set_settings(settings.clone()).unwrap();
    let submitted = c.post(BATCHES, "/batches", ops).await;
    let batch_id = id_of(&submitted);
    let mut statuses = BTreeSet::new();
    let finished = loop {
        let a = c.get(BATCH, &format!("/batches/{batch_id}")).await;
        statuses.insert(a.body["status"].as_str().unwrap_or("").to_string());
        if a.body["status"] == "finished" {
            break a;
        }
        assert!(
            c.checked < 5000,
            "the batch never finishes (seen {statuses:?}): {}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(3)).await;
    };
    settings.batches = fast;
    env.sim.set_settings(settings).unwrap();
    assert_eq!(finished.body["total_operations"], 4, "{}", finished.body);
    assert_eq!(finished.body["errored_operations"], 1, "{}", finished.body);
    // The answers of the operations, in the results archive, conform too.
    let url = finished.body["response_body_url"]
        .as_str()
        .expect("a finished batch has results");
    let archive = env
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let results = batch_results(&archive);
    assert_eq!(results.len(), 4);
    for r in &results {
        let (method, route) = match r["operation_id"].as_str().unwrap() {
            "upsert-hedy" => ("PUT", MEMBER),
            "list-members" => ("GET", MEMBERS),
            "tag-ada" => ("POST", MEMBER_TAGS),
            "missing" => ("GET", LIST),
            other => panic!("unknown operation {other}"),
        };
        let status = r["status_code"].as_u64().unwrap() as u16;
        let text = r["response"].as_str().unwrap_or("");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap()
        };
        assert_conforms(method, &spec_path_of(route), status, &body);
        c.checked += 1;
    }
    c.get(BATCHES, "/batches").await;
    c.get(BATCHES, "/batches?count=1").await;
    c.no_content(Method::DELETE, BATCH, &format!("/batches/{batch_id}"), None)
        .await;

    // Archive and permanent deletion; and the audience created above.
    c.no_content(
        Method::DELETE,
        MEMBER,
        &format!("{members}/{}", hash(linus)),
        None,
    )
    .await;
    c.get(MEMBERS, &format!("{members}?status=archived")).await;
    c.no_content(
        Method::POST,
        DELETE_PERMANENT,
        &format!("{members}/{}/actions/delete-permanent", hash(alan)),
        None,
    )
    .await;
    c.no_content(Method::DELETE, LIST, &format!("/lists/{spring}"), None)
        .await;

    // Errors: each a problem document (application/problem+json, ProblemDetailDocument).
    error_answers(&mut c, &l, &ada_path, stat.as_str()).await;

    // Every route was driven to a success, and to an error.
    let expected = expected_routes();
    assert_eq!(
        routes_in_router_source(),
        expected,
        "ROUTES differs from the /3.0 routes of src/http/mod.rs"
    );
    for (m, r) in &expected {
        let sp = spec_path_of(r);
        // Panics when the spec has no such operation.
        let _ = response_schema(m, &sp, 200);
    }
    let missing: Vec<_> = expected.difference(&c.ok).collect();
    assert!(
        missing.is_empty(),
        "routes never answered with a success: {missing:?}"
    );
    assert_eq!(c.ok, expected);
    let missing: Vec<_> = expected.difference(&c.errors).collect();
    assert!(
        missing.is_empty(),
        "routes never answered with an error: {missing:?}"
    );

    if !c.undeclared.is_empty() {
        eprintln!("properties sent that the response schemas do not declare:");
        for (op, props) in &c.undeclared {
            eprintln!("  {op}: {props:?}");
        }
    }
    eprintln!("{} answers checked against the spec", c.checked);
}

/// The results of a finished batch: every JSON file of its gzipped tar, each an array of
/// `{status_code, operation_id, response}`.
fn batch_results(archive: &[u8]) -> Vec<Value> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().expect("a tar archive") {
        let mut entry = entry.unwrap();
        if !entry.path().unwrap().to_string_lossy().ends_with(".json") {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        let items: Vec<Value> = serde_json::from_str(&text).unwrap();
        out.extend(items);
    }
    out
}

/// Error answers of every route, and the usual 4xx of the API.
async fn error_answers(c: &mut Checker<'_>, l: &str, ada_path: &str, stat: &str) {
    let env = c.env;
    // Without a valid key, every route answers 401.
    for (m, r) in ROUTES {
        let path = r
            .trim_start_matches("/3.0")
            .replace("{list_id}", l)
            .replace("{subscriber_hash}", &hash("ada.lovelace@analytical.dev"))
            .replace("{merge_id}", "1")
            .replace("{segment_id}", stat)
            .replace("{batch_id}", "0000000000");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let a = env
            .call_as(
                "0123456789abcdef0123456789abcdef-us1",
                method,
                &path,
                Some(json!({})),
            )
            .await;
        c.record(401, m, r, &path, &a);
        assert_eq!(a.body["title"], "API Key Invalid");
    }
    // An unknown audience, member, merge field, segment or batch: 404.
    let nl = "/lists/0000000000";
    let nobody = hash("nobody@nowhere-in-list.dev");
    for (m, r, path, body) in [
        ("GET", LIST, nl.to_string(), None),
        ("PATCH", LIST, nl.to_string(), Some(json!({"name": "x"}))),
        ("DELETE", LIST, nl.to_string(), None),
        ("POST", LIST, nl.to_string(), Some(json!({"members": []}))),
        ("GET", MEMBERS, format!("{nl}/members"), None),
        ("GET", MEMBER, format!("/lists/{l}/members/{nobody}"), None),
        (
            "PATCH",
            MEMBER,
            format!("/lists/{l}/members/{nobody}"),
            Some(json!({"status": "subscribed"})),
        ),
        (
            "DELETE",
            MEMBER,
            format!("/lists/{l}/members/{nobody}"),
            None,
        ),
        (
            "POST",
            DELETE_PERMANENT,
            format!("/lists/{l}/members/{nobody}/actions/delete-permanent"),
            None,
        ),
        (
            "GET",
            MEMBER_TAGS,
            format!("/lists/{l}/members/{nobody}/tags"),
            None,
        ),
        (
            "POST",
            MEMBER_TAGS,
            format!("/lists/{l}/members/{nobody}/tags"),
            Some(json!({"tags": [{"name": "A", "status": "active"}]})),
        ),
        ("GET", MERGE_FIELDS, format!("{nl}/merge-fields"), None),
        (
            "GET",
            MERGE_FIELD,
            format!("/lists/{l}/merge-fields/999"),
            None,
        ),
        (
            "PATCH",
            MERGE_FIELD,
            format!("/lists/{l}/merge-fields/999"),
            Some(json!({"name": "x"})),
        ),
        (
            "DELETE",
            MERGE_FIELD,
            format!("/lists/{l}/merge-fields/999"),
            None,
        ),
        ("GET", SEGMENTS, format!("{nl}/segments"), None),
        ("GET", SEGMENT, format!("/lists/{l}/segments/999999"), None),
        (
            "PATCH",
            SEGMENT,
            format!("/lists/{l}/segments/999999"),
            Some(json!({"name": "x"})),
        ),
        (
            "DELETE",
            SEGMENT,
            format!("/lists/{l}/segments/999999"),
            None,
        ),
        (
            "POST",
            SEGMENT,
            format!("/lists/{l}/segments/999999"),
            Some(json!({"members_to_add": []})),
        ),
        (
            "GET",
            SEGMENT_MEMBERS,
            format!("/lists/{l}/segments/999999/members"),
            None,
        ),
        (
            "POST",
            SEGMENT_MEMBERS,
            format!("/lists/{l}/segments/999999/members"),
            Some(json!({"email_address": "ada.lovelace@analytical.dev"})),
        ),
        (
            "DELETE",
            SEGMENT_MEMBER,
            format!("/lists/{l}/segments/{stat}/members/{nobody}"),
            None,
        ),
        ("GET", TAG_SEARCH, format!("{nl}/tag-search?name=a"), None),
        ("GET", BATCH, "/batches/0000000000".to_string(), None),
        ("DELETE", BATCH, "/batches/0000000000".to_string(), None),
    ] {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        c.expect(404, method, r, &path, body).await;
    }
    // Validation errors: 400 Invalid Resource with field errors, and the member rules.
    let a = c
        .expect(
            400,
            Method::POST,
            LISTS,
            "/lists",
            Some(json!({"name": "No contact"})),
        )
        .await;
    assert!(
        a.body["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "{}",
        a.body
    );
    c.expect(
        400,
        Method::PATCH,
        LIST,
        &format!("/lists/{l}"),
        Some(json!({"visibility": "secret"})),
    )
    .await;
    // Under `batch_schema_errors: whole_request`, a schema-bad batch item refuses the whole
    // batch upsert with a problem document.
    let set_whole = |mode: &'static str| {
        env.admin(
            Method::PATCH,
            "/settings",
            Some(json!({"variants": {"batch_schema_errors": mode}})),
        )
    };
    assert_eq!(set_whole("whole_request").await.status, 200);
    let a = c
        .expect(
            400,
            Method::POST,
            LIST,
            &format!("/lists/{l}"),
            Some(json!({"members": [
                {"email_address": "ok@langley.dev", "status": "subscribed"},
                {"email_address": "bad@langley.dev", "status": "maybe", "merge_fields": {"FNAME": true}},
            ]})),
        )
        .await;
    assert_eq!(a.body["errors"][0]["field"], "members.item:1.status");
    assert_problem(&a);
    assert_eq!(set_whole("per_item").await.status, 200);
    let members = format!("/lists/{l}/members");
    c.expect(
        400,
        Method::POST,
        MEMBERS,
        &members,
        Some(json!({"email_address": "no.status@langley.dev"})),
    )
    .await;
    let a = c
        .expect(
            400,
            Method::POST,
            MEMBERS,
            &members,
            Some(json!({"email_address": "ada.lovelace@analytical.dev", "status": "subscribed"})),
        )
        .await;
    assert_eq!(a.body["title"], "Member Exists", "{}", a.body);
    c.expect(
        400,
        Method::POST,
        MEMBERS,
        &members,
        Some(json!({"email_address": "someone@example.com", "status": "subscribed"})),
    )
    .await;
    c.expect(
        400,
        Method::PUT,
        MEMBER,
        ada_path,
        Some(json!({"email_address": "ada.lovelace@analytical.dev", "merge_fields": "Ada"})),
    )
    .await;
    c.expect(
        400,
        Method::PATCH,
        MEMBER,
        ada_path,
        Some(json!({"status": "transactional"})),
    )
    .await;
    let pending = format!("{members}/{}", hash("grace.hopper@navy-cobol.dev"));
    let a = c.expect(405, Method::DELETE, MEMBER, &pending, None).await;
    assert!(a.headers.contains_key("allow"));
    c.expect(
        400,
        Method::POST,
        MEMBER_TAGS,
        &format!("{ada_path}/tags"),
        Some(json!({"tags": [{"name": "X", "status": "on"}]})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        MERGE_FIELDS,
        &format!("/lists/{l}/merge-fields"),
        Some(json!({"name": "Bad", "type": "colour"})),
    )
    .await;
    c.expect(
        400,
        Method::PATCH,
        MERGE_FIELD,
        &format!("/lists/{l}/merge-fields/1"),
        Some(json!({"type": "number"})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        SEGMENTS,
        &format!("/lists/{l}/segments"),
        Some(json!({"name": "Neither"})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        SEGMENT_MEMBERS,
        &format!("/lists/{l}/segments/{stat}/members"),
        Some(json!({"email_address": "stranger@nowhere-in-list.dev"})),
    )
    .await;
    let many: Vec<String> = (0..501).map(|i| format!("reader{i}@langley.dev")).collect();
    c.expect(
        400,
        Method::POST,
        SEGMENT,
        &format!("/lists/{l}/segments/{stat}"),
        Some(json!({"members_to_add": many})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        BATCHES,
        "/batches",
        Some(json!({"operations": [{"method": "FETCH", "path": "lists"}]})),
    )
    .await;
    c.expect(
        400,
        Method::POST,
        LIST,
        &format!("/lists/{l}"),
        Some(json!({"update_existing": true})),
    )
    .await;
    // Bodies the spec could not answer back: refused, as Mailchimp validates them.
    let a = c
        .expect(
            400,
            Method::POST,
            LISTS,
            "/lists",
            Some(json!({"name": "Numbers", "permission_reminder": "You asked.", "email_type_option": false,
                        "contact": {"company": "Northwind", "address1": "1 Main St", "city": "Atlanta",
                                    "state": "GA", "zip": 30308, "country": "US"},
                        "campaign_defaults": {"from_name": "N", "from_email": "n@northwind.dev",
                                              "subject": "", "language": "en"}})),
        )
        .await;
    assert_eq!(a.body["errors"][0]["field"], "contact.zip", "{}", a.body);
    c.expect(
        400,
        Method::POST,
        SEGMENTS,
        &format!("/lists/{l}/segments"),
        Some(json!({"name": "Odd", "options": {"match": "some", "conditions": []}})),
    )
    .await;
    c.expect(
        400,
        Method::PATCH,
        SEGMENT,
        &format!("/lists/{l}/segments/{stat}"),
        Some(json!({"options": {"conditions": "FNAME is Ada"}})),
    )
    .await;
    // A known resource with a method it lacks, and an unknown resource.
    for (m, path, allow) in [
        (Method::PUT, "/lists".to_string(), "GET,HEAD,POST"),
        (Method::DELETE, "/ping".to_string(), "GET,HEAD"),
        (Method::PUT, format!("/lists/{l}/segments"), "GET,HEAD,POST"),
        (Method::PATCH, "/batches".to_string(), "GET,HEAD,POST"),
    ] {
        let a = env.call(m.clone(), &path, Some(json!({}))).await;
        assert_eq!(a.status, 405, "{m} {path}: {}", a.body);
        assert_problem(&a);
        assert_eq!(
            a.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{m} {path}"
        );
        c.checked += 1;
    }
    for path in ["/nothing/here", "/lists/{l}/interest-categories"] {
        let a = env.get(&path.replace("{l}", l)).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_problem(&a);
        c.checked += 1;
    }
    // A body that is not JSON.
    let resp = env
        .http
        .post(env.url(&members))
        .basic_auth("anystring", Some(&env.key))
        .header("content-type", "application/json")
        .body("{\"email_address\": ")
        .send()
        .await
        .unwrap();
    let a = common::answer(resp).await;
    c.record(400, "POST", MEMBERS, &members, &a);
    assert_eq!(a.body["title"], "JSON Parse Exception");
    // Errors asked for with X-Trigger-Error, of every status the API documents.
    for (trigger, status) in [
        ("BadRequest", 400),
        ("Forbidden", 403),
        ("ResourceNotFound", 404),
        ("MethodNotAllowed", 405),
        ("ResourceNestingTooDeep", 414),
        ("RequestedFieldsInvalid", 422),
        ("TooManyRequests", 429),
        ("InternalServerError", 500),
    ] {
        let resp = env
            .http
            .get(env.url("/ping"))
            .basic_auth("anystring", Some(&env.key))
            .header("x-trigger-error", trigger)
            .send()
            .await
            .unwrap();
        let a = common::answer(resp).await;
        c.record(status, "GET", "/3.0/ping", "/ping", &a);
    }
}

/// A member as Mailchimp sends it, which conforms to `ListMembers2`.
fn sample_member() -> Value {
    json!({
        "id": "852aaa9532cb36adfb5e9fef7a4206a9",
        "email_address": "urist.mcvankab+3@freddiesjokes.com",
        "unique_email_id": "2f6b0e2a3d",
        "contact_id": "852aaa9532cb36adfb5e9fef7a4206a9",
        "full_name": "Urist McVankab",
        "web_id": 123456,
        "email_type": "html",
        "status": "subscribed",
        "unsubscribe_reason": "",
        "consents_to_one_to_one_messaging": true,
        "merge_fields": {"FNAME": "Urist", "LNAME": "McVankab", "ADDRESS": "", "PHONE": ""},
        "interests": {},
        "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "",
        "timestamp_signup": "",
        "ip_opt": "198.2.191.34",
        "timestamp_opt": "2015-09-16T19:24:29+00:00",
        "member_rating": 2,
        "last_changed": "2015-09-16T19:24:29+00:00",
        "language": "",
        "vip": false,
        "email_client": "",
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "",
                     "timezone": "", "region": ""},
        "marketing_permissions": [],
        "source": "API - Generic",
        "tags_count": 0,
        "tags": [],
        "list_id": "57afe96172",
        "_links": [{"rel": "self", "href": "https://us1.api.mailchimp.com/3.0/lists/57afe96172/members/852aaa9532cb36adfb5e9fef7a4206a9",
                    "method": "GET", "targetSchema": "https://us1.api.mailchimp.com/schema/3.0/Definitions/Lists/Members/Response.json"}],
    })
}

fn panics(f: impl FnOnce() + std::panic::UnwindSafe) -> Option<String> {
    std::panic::catch_unwind(f).err().map(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// The oracle is the spec its provenance note names, byte for byte, and it lives inside the
/// repository (a clone alone runs these tests).
#[test]
fn the_spec_is_the_one_its_provenance_names() {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(SPEC_PATH).expect("the spec is in the repository");
    assert_eq!(hex_digest(&Sha256::digest(&bytes)), SPEC_SHA256);
    let provenance =
        std::fs::read_to_string(SPEC_PATH.replace("marketing-openapi.json", "PROVENANCE.md"))
            .expect("the spec has a provenance note");
    assert!(
        provenance.contains(SPEC_SHA256),
        "PROVENANCE.md names the checksum"
    );
    assert_eq!(spec()["info"]["version"], "3.0.85");
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The check is not vacuous: wrong bodies fail it, and say where.
#[test]
fn wrong_bodies_fail_the_check() {
    const MEMBER: &str = "/lists/{listId}/members/{subscriberHash}";
    let good = sample_member();
    assert_conforms("GET", MEMBER, 200, &good);

    let mut bogus = good.clone();
    bogus["status"] = json!("bogus");
    let msg =
        panics(|| assert_conforms("GET", MEMBER, 200, &bogus)).expect("status \"bogus\" must fail");
    assert!(
        msg.contains("/status"),
        "the violation names /status: {msg}"
    );

    let mut string_merge = good.clone();
    string_merge["merge_fields"] = json!("FNAME=Urist");
    let msg = panics(|| assert_conforms("PUT", MEMBER, 200, &string_merge))
        .expect("a string merge_fields must fail");
    assert!(
        msg.contains("/merge_fields"),
        "the violation names /merge_fields: {msg}"
    );

    // Every violation is listed, not only the first.
    let mut both = bogus.clone();
    both["merge_fields"] = json!("FNAME=Urist");
    both["web_id"] = json!("123456");
    assert_eq!(
        violations("GET", MEMBER, 200, &both).len(),
        3,
        "{:?}",
        violations("GET", MEMBER, 200, &both)
    );

    // Deep inside a collection, through $refs.
    let mut list = json!({"members": [good.clone(), good.clone()], "list_id": "57afe96172", "total_items": 2, "_links": []});
    list["members"][1]["tags"] = json!([{"id": "seven", "name": "VIP"}]);
    let msg = panics(|| assert_conforms("GET", "/lists/{listId}/members", 200, &list))
        .expect("a string tag id must fail");
    assert!(msg.contains("/members/1/tags/0/id"), "{msg}");

    // An error must be a problem document, whatever the operation.
    let problem = json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Resource Not Found",
                         "status": 404, "detail": "The requested resource could not be found.",
                         "instance": "995c5cb0-3280-4a6e-808b-3b096d0bb219"});
    assert_conforms("GET", MEMBER, 404, &problem);
    let mut no_instance = problem.clone();
    no_instance.as_object_mut().unwrap().remove("instance");
    assert!(panics(|| assert_conforms("GET", MEMBER, 404, &no_instance)).is_some());
    assert!(
        panics(|| assert_conforms("GET", MEMBER, 400, &problem)).is_some(),
        "status 404 in a 400"
    );
    assert!(
        panics(|| assert_conforms("GET", MEMBER, 404, &good)).is_some(),
        "a member is not an error"
    );

    // A 204 has no body.
    assert_conforms("DELETE", MEMBER, 204, &Value::Null);
    assert!(panics(|| assert_conforms("DELETE", MEMBER, 204, &good)).is_some());

    // Formats are not asserted: Mailchimp sends "" for unset date-times.
    let mut unset = good.clone();
    unset["timestamp_opt"] = json!("");
    unset["last_changed"] = json!("");
    assert_conforms("GET", MEMBER, 200, &unset);
}

/// `nullable` (OpenAPI 3.0) becomes a null-admitting type; `format` is not asserted.
#[test]
fn openapi_schemas_are_converted() {
    let s = json!({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "string", "nullable": true, "format": "date-time", "x-extra": 1},
        "b": {"type": "string", "enum": ["x", "y"], "nullable": true},
        "c": {"$ref": "#/components/schemas/ProblemDetailDocument", "nullable": true},
        "format": {"type": "integer"},
    }});
    let v = validator_for(&s);
    assert!(v.is_valid(&json!({"a": null, "b": null, "c": null})));
    assert!(v.is_valid(&json!({"a": "not a date", "b": "x", "format": 3})));
    assert!(!v.is_valid(&json!({"a": 1})));
    assert!(!v.is_valid(&json!({"a": "", "b": "z"})));
    assert!(!v.is_valid(&json!({"a": "", "c": {"title": "no status"}})));
    assert!(
        !v.is_valid(&json!({"a": "", "format": "three"})),
        "a property named format is kept"
    );
    assert_eq!(
        to_json_schema(&json!({"type": "string", "required": []})),
        json!({"type": "string"})
    );
}

#[test]
fn routes_map_to_spec_paths() {
    assert_eq!(spec_path_of("/3.0"), "/");
    assert_eq!(spec_path_of("/3.0/ping"), "/ping");
    assert_eq!(
        spec_path_of("/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent"),
        "/lists/{listId}/members/{subscriberHash}/actions/delete-permanent"
    );
    assert_eq!(
        spec_path_of("/3.0/lists/{list_id}/tag-search"),
        "/lists/{listId}/tag-search"
    );
    assert_eq!(routes_in_router_source(), expected_routes());
}
