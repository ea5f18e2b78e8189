//! A short scripted session on a test audience that checks, against a real account, each
//! reading of Mailchimp's behaviour the simulator had to choose without a source that settles
//! it (the simulator's `variants`). Each check is made with fresh contacts at the user's own
//! domain (`segsync-probe-<random hex>@DOMAIN`, status `unsubscribed`, so that Mailchimp sends
//! them nothing), and everything the session created is permanently deleted at the end,
//! whatever happened before: contacts, the tags and the merge field it made. Contacts it did
//! not create are never written to.
//!
//! Each [`Row`] compares what Mailchimp answered with what the simulator's default profile
//! assumes, in the simulator's own terms (the values of its `variants` fields), so that a
//! `differs` names the switch to turn and the value to give it.

use std::time::Duration;

use futures_util::future::join_all;
use rand::Rng;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::{Error, Problem};
use crate::service::Call;
use crate::stats::Endpoint;
use crate::types::subscriber_hash;

/// How every address, tag and merge field name the probe makes begins.
pub const PREFIX: &str = "segsync-probe-";

/// Requests sent at once by the load check: one more than Mailchimp's 10 per user.
pub const LOAD_REQUESTS: usize = 11;

/// The readings checked, in the order of the report: the simulator's switch (`variants.`
/// field), the question, and the default profile's value.
pub const ASSUMPTIONS: [(&str, &str, &str); 11] = [
    (
        "archived_members",
        "are archived contacts in a plain member list?",
        "included",
    ),
    (
        "batch_schema_errors",
        "does a schema-bad item reject the whole batch?",
        "per_item",
    ),
    (
        "updated_members",
        "are unchanged members listed in updated_members?",
        "all",
    ),
    (
        "date_merge_values",
        "is 31/01/2020 accepted for a DD/MM/YYYY date field?",
        "display_format",
    ),
    (
        "throttle_status",
        "how is a request over 10 in flight refused?",
        "429",
    ),
    (
        "ascii_local_parts",
        "is a non-ASCII local part refused?",
        "off",
    ),
    (
        "recent_signups",
        "are new addresses refused as recent signups?",
        "none",
    ),
    (
        "tag_name_max",
        "is a 51-character tag name refused?",
        "no cap",
    ),
    (
        "oauth_redirect",
        "must an OAuth redirect_uri equal the registered one?",
        "prefix",
    ),
    (
        "malformed_since",
        "is a malformed since_last_changed refused or ignored?",
        "reject",
    ),
    (
        "batch_item_tags",
        "are tags in batch items applied, to new members and to updated ones?",
        "applied",
    ),
];

/// How Mailchimp's answer compares with the simulator's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "same")]
    Same,
    #[serde(rename = "differs")]
    Differs,
    #[serde(rename = "not probed")]
    NotProbed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Differs => "differs",
            Verdict::NotProbed => "not probed",
        }
    }
}

/// One assumption checked.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The simulator's switch (its `variants.` field).
    pub assumption: &'static str,
    pub question: &'static str,
    /// The reading Mailchimp's answers show, as a value of the switch; `None` when not
    /// probed.
    pub mailchimp: Option<String>,
    /// The simulator's default profile's value.
    pub simulator: &'static str,
    pub verdict: Verdict,
    /// What Mailchimp answered, or why the assumption was not probed.
    pub detail: String,
}

/// What the probe created and removed again.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cleanup {
    /// Contacts permanently deleted.
    pub members_deleted: Vec<String>,
    pub tags_deleted: Vec<String>,
    pub merge_fields_deleted: Vec<String>,
    /// What could not be deleted, with why: the user removes it in Mailchimp.
    pub left_over: Vec<String>,
}

/// The probe's result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub audience: String,
    pub domain: String,
    pub rows: Vec<Row>,
    pub cleanup: Cleanup,
}

/// What the probe may do beyond its default session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Send [`LOAD_REQUESTS`] requests at once, to see how Mailchimp refuses the one over
    /// its cap (`throttle_status`).
    pub load: bool,
}

/// A reading and what was seen, or why nothing could be read.
type Outcome = Result<(String, String), String>;

/// An answer: the JSON of a success, or a refusal's status and problem document.
type Answer = Result<Value, (u16, Problem)>;

fn hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).expect("a hex digit"))
        .collect()
}

fn refusal(status: u16, p: &Problem) -> String {
    let mut s = format!("HTTP {status} {}", p.title);
    if !p.detail.is_empty() {
        s.push_str(&format!(": {}", p.detail));
    }
    if let Some(e) = p.errors.first() {
        s.push_str(&format!(" ({}: {})", e.field, e.message));
    }
    s
}

fn row(assumption: &'static str, outcome: Outcome) -> Row {
    let (_, question, simulator) = ASSUMPTIONS
        .iter()
        .find(|(a, _, _)| *a == assumption)
        .copied()
        .expect("a known assumption");
    let (mailchimp, verdict, detail) = match outcome {
        Ok((reading, detail)) => {
            let verdict = if reading == simulator {
                Verdict::Same
            } else {
                Verdict::Differs
            };
            (Some(reading), verdict, detail)
        }
        Err(why) => (None, Verdict::NotProbed, why),
    };
    Row {
        assumption,
        question,
        mailchimp,
        simulator,
        verdict,
        detail,
    }
}

/// The addresses of a batch answer's list `key` (`new_members`, `updated_members`).
fn listed(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["email_address"].as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// The `errors[]` entry of a batch answer for `email`: its message and field message.
fn item_error(v: &Value, email: &str) -> Option<String> {
    v["errors"].as_array()?.iter().find_map(|e| {
        let addr = e["email_address"].as_str().unwrap_or("");
        addr.eq_ignore_ascii_case(email).then(|| {
            let mut s = e["error"].as_str().unwrap_or("").to_string();
            if let Some(f) = e["field_message"].as_str().filter(|f| !f.is_empty()) {
                s.push_str(&format!(" ({f})"));
            }
            s
        })
    })
}

struct Session<'a> {
    client: &'a Client,
    list: &'a str,
    domain: &'a str,
    /// Every address the session may have created.
    addresses: Vec<String>,
    /// Every tag name the session may have created.
    tags: Vec<String>,
    /// Merge fields created: (merge_id, tag).
    merge_fields: Vec<(u64, String)>,
    /// This session's mark in tag and merge field names.
    mark: String,
}

impl<'a> Session<'a> {
    fn address(&mut self, local_suffix: &str) -> String {
        let a = format!("{PREFIX}{}{local_suffix}@{}", hex(12), self.domain);
        self.addresses.push(a.clone());
        a
    }

    fn call(&self, endpoint: Endpoint, method: Method, rest: &[&str]) -> Call {
        let mut path = vec!["lists".to_string(), self.list.to_string()];
        path.extend(rest.iter().map(|s| s.to_string()));
        Call::new(endpoint, method, path)
    }

    async fn ask(&self, call: Call) -> Result<Answer, String> {
        self.client
            .answer(call)
            .await
            .map_err(|e| format!("no answer: {e}"))
    }

    /// `POST /lists/{id}` with `update_existing`.
    async fn batch(&self, members: Value) -> Result<Answer, String> {
        self.ask(
            self.call(Endpoint::BatchUpsert, Method::POST, &[])
                .query(
                    "fields",
                    "new_members.email_address,updated_members.email_address,errors,error_count",
                )
                .json(&json!({"members": members, "update_existing": true})),
        )
        .await
    }

    /// Creates one test contact; its address, or why it could not be created.
    async fn new_contact(&mut self, local_suffix: &str, extra: Value) -> Result<String, String> {
        let email = self.address(local_suffix);
        let mut item = json!({"email_address": email, "status": "unsubscribed"});
        if let (Some(item), Some(extra)) = (item.as_object_mut(), extra.as_object()) {
            item.extend(extra.clone());
        }
        match self.batch(json!([item])).await? {
            Ok(v) if listed(&v, "new_members").contains(&email.to_lowercase()) => Ok(email),
            Ok(v) => Err(format!(
                "the test contact {email} was not created: {}",
                item_error(&v, &email).unwrap_or_else(|| v.to_string())
            )),
            Err((s, p)) => Err(format!(
                "the test contact {email} was not created: {}",
                refusal(s, &p)
            )),
        }
    }

    /// `batch_item_tags` on a new contact, then on the same contact updated: `applied` to
    /// both, `new_members_only`, or `ignored`. The contact's address is returned for the next
    /// checks.
    async fn item_tags(&mut self) -> (Outcome, Option<String>) {
        let tag = format!("{PREFIX}{}-tag", self.mark);
        self.tags.push(tag.clone());
        let email = match self.new_contact("", json!({"tags": [tag]})).await {
            Ok(e) => e,
            Err(why) => return (Err(why), None),
        };
        let created = match self.contact_tags(&email).await {
            Ok(names) => names,
            Err(why) => return (Err(why), Some(email)),
        };
        if !created.contains(&tag) {
            let why = format!("the new contact has no tag (tags: {created:?})");
            return (Ok(("ignored".into(), why)), Some(email));
        }
        let gained = format!("{PREFIX}{}-tag2", self.mark);
        self.tags.push(gained.clone());
        let item = json!([{"email_address": email, "status": "unsubscribed", "tags": [gained]}]);
        let outcome = match self.batch(item).await {
            Ok(Ok(v)) if item_error(&v, &email).is_some() => Err(format!(
                "the update with a tag was refused: {}",
                item_error(&v, &email).unwrap_or_default()
            )),
            Ok(Ok(_)) => match self.contact_tags(&email).await {
                Ok(names) if names.contains(&gained) => Ok((
                    "applied".into(),
                    format!("the new contact has the item's tag {tag}, and the update's {gained} was added"),
                )),
                Ok(names) => Ok((
                    "new_members_only".into(),
                    format!("the new contact has the item's tag {tag}, but an update's item tag was not added (tags: {names:?})"),
                )),
                Err(why) => Err(why),
            },
            Ok(Err((s, p))) => Err(format!("the update with a tag: {}", refusal(s, &p))),
            Err(why) => Err(why),
        };
        (outcome, Some(email))
    }

    /// The names of the tags of contact `email`.
    async fn contact_tags(&self, email: &str) -> Result<Vec<String>, String> {
        let hash = subscriber_hash(email);
        let answer = self
            .ask(
                self.call(Endpoint::GetMember, Method::GET, &["members", &hash])
                    .query("fields", "email_address,tags"),
            )
            .await?;
        match answer {
            Ok(v) => Ok(v["tags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()),
            Err((s, p)) => Err(format!("reading the test contact: {}", refusal(s, &p))),
        }
    }

    /// `updated_members`: the contact sent again exactly as it is.
    async fn unchanged_update(&self, email: &str) -> Outcome {
        match self
            .batch(json!([{"email_address": email, "status": "unsubscribed"}]))
            .await?
        {
            Ok(v) => {
                if let Some(e) = item_error(&v, email) {
                    Err(format!("the unchanged update was refused: {e}"))
                } else if listed(&v, "updated_members").contains(&email.to_lowercase()) {
                    Ok((
                        "all".into(),
                        "the unchanged contact is in updated_members".into(),
                    ))
                } else {
                    Ok((
                        "changed_only".into(),
                        "the unchanged contact is in neither updated_members nor errors".into(),
                    ))
                }
            }
            Err((s, p)) => Err(format!(
                "the unchanged update was refused: {}",
                refusal(s, &p)
            )),
        }
    }

    /// `date_merge_values`: a `DD/MM/YYYY` date field of the session's own, given a value in
    /// that form.
    async fn date_value(&mut self, email: &str) -> Outcome {
        let tag = format!("SP{}", self.mark[..8].to_uppercase());
        let created = self
            .ask(
                self.call(Endpoint::CreateMergeField, Method::POST, &["merge-fields"])
                    .query("fields", "merge_id,tag")
                    .json(&json!({
                        "name": format!("{PREFIX}{}", self.mark),
                        "tag": tag,
                        "type": "date",
                        "required": false,
                        "options": {"date_format": "DD/MM/YYYY"},
                    })),
            )
            .await?;
        let tag = match created {
            Ok(v) => {
                let Some(id) = v["merge_id"].as_u64() else {
                    return Err(format!(
                        "the merge field was created, but its answer names no merge_id: {v}"
                    ));
                };
                let tag = v["tag"].as_str().unwrap_or(&tag).to_string();
                self.merge_fields.push((id, tag.clone()));
                tag
            }
            Err((s, p)) => {
                return Err(format!(
                    "a test date field could not be created: {}",
                    refusal(s, &p)
                ))
            }
        };
        let value = "31/01/2020";
        match self
            .batch(json!([{
                "email_address": email,
                "status": "unsubscribed",
                "merge_fields": {tag.clone(): value},
            }]))
            .await?
        {
            Ok(v) => match item_error(&v, email) {
                Some(e) => Ok(("documented_only".into(), format!("{value} refused: {e}"))),
                None => Ok(("display_format".into(), format!("{value} accepted"))),
            },
            Err((s, p)) => Ok((
                "documented_only".into(),
                format!("{value} refused: {}", refusal(s, &p)),
            )),
        }
    }

    /// Whether `email` is on a member list read page by page (`status`, if given, asked).
    async fn in_member_list(&self, email: &str, status: Option<&str>) -> Result<bool, String> {
        let mut offset = 0u64;
        loop {
            let mut call = self
                .call(Endpoint::ListMembers, Method::GET, &["members"])
                .query("count", "1000")
                .query("offset", offset.to_string())
                .query("fields", "members.email_address,total_items");
            if let Some(s) = status {
                call = call.query("status", s);
            }
            let v = match self.ask(call).await? {
                Ok(v) => v,
                Err((s, p)) => return Err(format!("reading members: {}", refusal(s, &p))),
            };
            let page = listed(&v, "members");
            if page.contains(&email.to_lowercase()) {
                return Ok(true);
            }
            offset += page.len() as u64;
            if page.is_empty() || offset >= v["total_items"].as_u64().unwrap_or(0) {
                return Ok(false);
            }
        }
    }

    /// `archived_members`: the contact archived, then looked for in a plain read.
    async fn archived(&self, email: &str) -> Outcome {
        let hash = subscriber_hash(email);
        if let Err((s, p)) = self
            .ask(self.call(Endpoint::ArchiveMember, Method::DELETE, &["members", &hash]))
            .await?
        {
            return Err(format!("archiving the test contact: {}", refusal(s, &p)));
        }
        if self.in_member_list(email, None).await? {
            return Ok((
                "included".into(),
                "the archived contact is in GET /members without status".into(),
            ));
        }
        if self.in_member_list(email, Some("archived")).await? {
            Ok((
                "excluded".into(),
                "the archived contact is listed only with status=archived".into(),
            ))
        } else {
            Err("the archived contact is in no member list, not even with status=archived (not there yet?)".into())
        }
    }

    /// `batch_schema_errors`: a good item and one with a status out of the enum.
    async fn schema_error(&mut self) -> Outcome {
        let good = self.address("");
        let bad = self.address("");
        let answer = self
            .batch(json!([
                {"email_address": good, "status": "unsubscribed"},
                {"email_address": bad, "status": "segsync-probe-not-a-status"},
            ]))
            .await?;
        match answer {
            Ok(v) => {
                let created = listed(&v, "new_members").contains(&good.to_lowercase());
                match item_error(&v, &bad) {
                    Some(e) if created => Ok((
                        "per_item".into(),
                        format!("200: the good item applied, the bad one in errors[]: {e}"),
                    )),
                    _ => Err(format!("an answer of neither kind: {v}")),
                }
            }
            Err((400, p)) => Ok(("whole_request".into(), refusal(400, &p))),
            Err((s, p)) => Err(format!("an unexpected refusal: {}", refusal(s, &p))),
        }
    }

    /// `ascii_local_parts`: a new contact with a `ü` before the `@`.
    async fn non_ascii(&mut self) -> Outcome {
        let email = self.address("-\u{fc}");
        match self
            .batch(json!([{"email_address": email, "status": "unsubscribed"}]))
            .await?
        {
            Ok(v) => {
                if listed(&v, "new_members").contains(&email.to_lowercase()) {
                    Ok(("off".into(), format!("{email} accepted")))
                } else if let Some(e) = item_error(&v, &email) {
                    Ok(("on".into(), format!("refused: {e}")))
                } else {
                    Err(format!("an answer of neither kind: {v}"))
                }
            }
            Err((s, p)) => Ok(("on".into(), format!("refused: {}", refusal(s, &p)))),
        }
    }

    /// `tag_name_max`: a new tag of 51 characters.
    async fn long_tag(&mut self) -> Outcome {
        let mut name = format!("{PREFIX}{}-", self.mark);
        while name.chars().count() < 51 {
            name.push('x');
        }
        self.tags.push(name.clone());
        match self
            .ask(
                self.call(Endpoint::CreateTag, Method::POST, &["segments"])
                    .query("fields", "id,name")
                    .json(&json!({"name": name, "static_segment": []})),
            )
            .await?
        {
            Ok(_) => Ok(("no cap".into(), "a 51-character tag was created".into())),
            Err((400, p)) => Ok(("capped".into(), refusal(400, &p))),
            Err((s, p)) => Err(format!("an unexpected refusal: {}", refusal(s, &p))),
        }
    }

    /// `malformed_since`: a member read with a `since_last_changed` that is no date.
    async fn malformed_since(&self) -> Outcome {
        match self
            .ask(
                self.call(Endpoint::ListMembers, Method::GET, &["members"])
                    .query("since_last_changed", "segsync-probe-not-a-date")
                    .query("count", "1")
                    .query("fields", "total_items"),
            )
            .await?
        {
            Ok(v) => Ok((
                "ignore".into(),
                format!("200, the filter dropped (total_items {})", v["total_items"]),
            )),
            Err((400, p)) => Ok(("reject".into(), refusal(400, &p))),
            Err((s, p)) => Err(format!("an unexpected refusal: {}", refusal(s, &p))),
        }
    }

    /// `throttle_status`: [`LOAD_REQUESTS`] reads at once, outside the client's own limit,
    /// up to three rounds until one is refused.
    async fn throttle(&self) -> Outcome {
        let call = || {
            self.call(Endpoint::GetList, Method::GET, &[])
                .query("fields", "id,name")
        };
        let mut seen = Vec::new();
        for round in 0..3 {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let calls: Vec<Call> = (0..LOAD_REQUESTS).map(|_| call()).collect();
            let answers = join_all(
                calls
                    .iter()
                    .map(|c| self.client.service().send_unlimited(c)),
            )
            .await;
            for a in answers {
                match a {
                    Ok((429, _)) => return Ok(("429".into(), "429 Too Many Requests".into())),
                    Ok((403, false)) => return Ok(("403".into(), "a 403 with no body".into())),
                    Ok((403, _)) => {
                        return Ok(("403".into(), "a 403 with a problem document".into()))
                    }
                    Ok((s, _)) => seen.push(s.to_string()),
                    Err(e) => seen.push(e.to_string()),
                }
            }
        }
        seen.sort();
        seen.dedup();
        Err(format!(
            "{} requests at once, three times, were all answered ({}): no throttling was provoked",
            LOAD_REQUESTS,
            seen.join(", ")
        ))
    }

    /// Deletes everything the session may have created; never anything else.
    async fn clean_up(&self) -> Cleanup {
        let mut c = Cleanup::default();
        for email in &self.addresses {
            let hash = subscriber_hash(email);
            let call = self
                .call(
                    Endpoint::DeleteMemberPermanently,
                    Method::POST,
                    &["members", &hash, "actions", "delete-permanent"],
                )
                .json(&json!({}));
            match self.client.answer(call).await {
                Ok(Ok(_)) => c.members_deleted.push(email.clone()),
                // Never created (refused by a check), or already gone.
                Ok(Err((404, _))) => {}
                Ok(Err((s, p))) => c
                    .left_over
                    .push(format!("contact {email}: {}", refusal(s, &p))),
                Err(e) => c.left_over.push(format!("contact {email}: {e}")),
            }
        }
        for (id, tag) in &self.merge_fields {
            let id_s = id.to_string();
            let call = self.call(
                Endpoint::DeleteMergeField,
                Method::DELETE,
                &["merge-fields", &id_s],
            );
            match self.client.answer(call).await {
                Ok(Ok(_)) | Ok(Err((404, _))) => c.merge_fields_deleted.push(tag.clone()),
                Ok(Err((s, p))) => c
                    .left_over
                    .push(format!("merge field {tag}: {}", refusal(s, &p))),
                Err(e) => c.left_over.push(format!("merge field {tag}: {e}")),
            }
        }
        if !self.tags.is_empty() {
            match self.client.tags(self.list).await {
                Ok(all) => {
                    for (id, name) in all {
                        if !self.tags.contains(&name) {
                            continue;
                        }
                        let id_s = id.to_string();
                        let call =
                            self.call(Endpoint::DeleteTag, Method::DELETE, &["segments", &id_s]);
                        match self.client.answer(call).await {
                            Ok(Ok(_)) | Ok(Err((404, _))) => c.tags_deleted.push(name),
                            Ok(Err((s, p))) => {
                                c.left_over.push(format!("tag {name}: {}", refusal(s, &p)))
                            }
                            Err(e) => c.left_over.push(format!("tag {name}: {e}")),
                        }
                    }
                }
                Err(e) => c.left_over.push(format!(
                    "tags named {PREFIX}{}-...: could not be listed: {e}",
                    self.mark
                )),
            }
        }
        c
    }
}

/// Runs the probe on audience `list_id` with addresses at `domain`, and removes what it
/// created. The caller has checked that the audience is a small test audience and that the
/// user agreed; the probe itself only refuses a domain that is no domain.
pub async fn run(
    client: &Client,
    list_id: &str,
    domain: &str,
    options: Options,
) -> Result<Report, Error> {
    let domain = domain.trim().trim_start_matches('@').to_lowercase();
    if domain.is_empty()
        || !domain.contains('.')
        || domain.contains(|c: char| c == '@' || c.is_whitespace() || c == '/')
    {
        return Err(Error::InvalidConfig(format!(
            "\"{domain}\" is not a domain: give one whose mail you receive, such as example.org"
        )));
    }
    let mut s = Session {
        client,
        list: list_id,
        domain: &domain,
        addresses: Vec::new(),
        tags: Vec::new(),
        merge_fields: Vec::new(),
        mark: hex(8),
    };
    let mut rows = Vec::new();

    let (tags, contact) = s.item_tags().await;
    rows.push(row("batch_item_tags", tags));
    let no_contact = |why: &str| Err(format!("no test contact to check it with ({why})"));
    match &contact {
        Some(email) => {
            rows.push(row("updated_members", s.unchanged_update(email).await));
            rows.push(row("date_merge_values", s.date_value(email).await));
            rows.push(row("archived_members", s.archived(email).await));
        }
        None => {
            let why = rows[0].detail.clone();
            for a in ["updated_members", "date_merge_values", "archived_members"] {
                rows.push(row(a, no_contact(&why)));
            }
        }
    }
    rows.push(row("batch_schema_errors", s.schema_error().await));
    rows.push(row("ascii_local_parts", s.non_ascii().await));
    rows.push(row("tag_name_max", s.long_tag().await));
    rows.push(row("malformed_since", s.malformed_since().await));
    rows.push(row(
        "throttle_status",
        if options.load {
            s.throttle().await
        } else {
            Err(format!(
                "it takes {LOAD_REQUESTS} requests at once; run with --load to check it"
            ))
        },
    ));
    rows.push(row(
        "recent_signups",
        Err("Mailchimp refuses an address this way after it signed up to many lists; fresh addresses cannot provoke it".into()),
    ));
    rows.push(row(
        "oauth_redirect",
        Err("it concerns an OAuth app's login page, which an API key never goes through".into()),
    ));
    let cleanup = s.clean_up().await;
    rows.sort_by_key(|r| ASSUMPTIONS.iter().position(|(a, _, _)| *a == r.assumption));
    Ok(Report {
        audience: list_id.to_string(),
        domain,
        rows,
        cleanup,
    })
}
