//! The typed calls segsync makes, each one request (or a few pages) through the
//! [service](super::service) stack: build the path, query and body; read the answer into
//! segsync's types; give Mailchimp's 404s and replays their meaning for that call.
//!
//! Answers are asked slim with `fields=`: a batch upsert's full answer repeats every member
//! with all its merge fields, most of the bytes of a run.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::config::ClientConfig;
use crate::error::Error;
use crate::service::{Answer, Call, Service};
use crate::stats::{ClientStats, Endpoint};
use crate::types::*;

/// Members one batch upsert takes (Mailchimp's limit).
pub const MAX_BATCH_MEMBERS: usize = 500;
/// Addresses one tag update takes to add, and to remove (Mailchimp's limit).
pub const MAX_TAG_CHANGES: usize = 500;
/// The largest page Mailchimp serves.
pub const PAGE_SIZE: usize = 1000;

const LIST_FIELDS: &str = "id,name,double_optin,stats.member_count,stats.unsubscribe_count,stats.cleaned_count,stats.total_contacts,stats.merge_field_count";
const MERGE_FIELD_FIELDS: &str = "merge_fields.merge_id,merge_fields.tag,merge_fields.name,merge_fields.type,merge_fields.required,merge_fields.default_value,merge_fields.options,total_items";
const MEMBER_PAGE_FIELDS: &str =
    "members.email_address,members.id,members.status,members.last_changed,total_items";
const MEMBER_FIELDS: &str = "email_address,id,status,last_changed";
const BATCH_FIELDS: &str = "new_members.email_address,new_members.status,new_members.tags.name,updated_members.email_address,updated_members.status,updated_members.tags.name,errors,total_created,total_updated,error_count";
const TAG_PAGE_FIELDS: &str = "segments.id,segments.name,total_items";
const TAG_UPDATE_FIELDS: &str = "total_added,total_removed,error_count,errors";

/// A Mailchimp Marketing API client. Cheap to clone (clones share the in-flight limit and
/// the stats), safe to use from many tasks at once.
#[derive(Clone)]
pub struct Client {
    service: Arc<Service>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.service)
            .finish()
    }
}

/// Reads an answer. When it is not what Mailchimp sends, the error says where it stopped
/// making sense, never what it held: a base URL pointing elsewhere must not make segsync
/// repeat another server's answer (which might even echo the credential back).
fn decode<T: DeserializeOwned>(endpoint: Endpoint, answer: &Answer) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| Error::UnexpectedAnswer {
        endpoint: endpoint.as_str(),
        message: format!(
            "HTTP {}, not the JSON Mailchimp sends (at line {}, column {}; the body is not shown)",
            answer.status.as_u16(),
            e.line(),
            e.column()
        ),
    })
}

fn check_list_id(list_id: &str) -> Result<(), Error> {
    if list_id.trim().is_empty() {
        return Err(Error::InvalidConfig(
            "the audience id is empty: give the id shown in Mailchimp under Audience > Settings"
                .into(),
        ));
    }
    Ok(())
}

/// A 404 on an audience-level route means the audience is not in this account.
fn audience_404(list_id: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        Error::Rejected { status: 404, .. } => Error::AudienceNotFound {
            list_id: list_id.to_string(),
        },
        e => e,
    }
}

fn is_404(e: &Error) -> bool {
    matches!(e, Error::Rejected { status: 404, .. })
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

impl Client {
    /// A client for `config`, checked first ([`ClientConfig::validate`]).
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        Ok(Client {
            service: Arc::new(Service::new(&config)?),
        })
    }

    /// The live counters, to read from any task (a progress bar, a metrics endpoint).
    pub fn stats(&self) -> Arc<ClientStats> {
        self.service.stats().clone()
    }

    /// Requests this client keeps in flight at most.
    pub fn max_in_flight(&self) -> usize {
        self.service.max_in_flight()
    }

    async fn send(&self, call: Call) -> Result<Answer, Error> {
        self.service.send(&call).await.0
    }

    async fn get<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let endpoint = call.endpoint;
        let answer = self.send(call).await?;
        decode(endpoint, &answer)
    }

    /// One call through the stack, its refusals kept as answers: a 4xx other than 401 is
    /// `Err((status, problem))` in the `Ok`, for the probe, which asks questions whose
    /// answer may be a refusal.
    pub(crate) async fn answer(
        &self,
        call: Call,
    ) -> Result<Result<serde_json::Value, (u16, crate::error::Problem)>, Error> {
        match self.send(call).await {
            Ok(a) => Ok(Ok(if a.body.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&a.body).unwrap_or(serde_json::Value::Null)
            })),
            Err(Error::Rejected {
                status, problem, ..
            }) => Ok(Err((status, problem))),
            Err(Error::Forbidden { problem, .. }) => Ok(Err((403, problem))),
            Err(Error::NotFound { problem, .. }) => Ok(Err((404, problem))),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn service(&self) -> &Service {
        &self.service
    }

    /// `GET /ping`: checks that Mailchimp answers and takes the credential. A rejected
    /// credential is [`Error::CredentialRejected`], after exactly one request.
    pub async fn ping(&self) -> Result<(), Error> {
        match self
            .send(Call::new(Endpoint::Ping, Method::GET, path(&["ping"])))
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Rejected { status: 404, .. }) => Err(Error::InvalidConfig(
                "the base URL answers 404 to /ping: it is not Mailchimp's API root (https://<dc>.api.mailchimp.com/3.0)".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// `GET /`: the account's id and name (a connection's check shows the name).
    pub async fn account_info(&self) -> Result<(String, String), Error> {
        #[derive(serde::Deserialize)]
        struct Root {
            account_id: String,
            #[serde(default)]
            account_name: String,
        }
        let call = Call::new(Endpoint::Root, Method::GET, Vec::new())
            .query("fields", "account_id,account_name");
        let root: Root = self.get(call).await?;
        Ok((root.account_id, root.account_name))
    }

    /// `GET /` (the API root, `/3.0`): the id of the Mailchimp account the credential belongs to. Two
    /// credentials of one account (keys, OAuth tokens) share its connection limit, so segsync
    /// keeps one connection budget per account id.
    pub async fn account_id(&self) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Root {
            account_id: String,
        }
        let call = Call::new(Endpoint::Root, Method::GET, Vec::new()).query("fields", "account_id");
        let root: Root = self.get(call).await?;
        if root.account_id.trim().is_empty() {
            return Err(Error::UnexpectedAnswer {
                endpoint: Endpoint::Root.as_str(),
                message: "the API root names no account_id".into(),
            });
        }
        Ok(root.account_id)
    }

    /// How long ago the client was made (what its slot time is averaged over).
    pub fn age(&self) -> std::time::Duration {
        self.service.age()
    }

    /// The connection budget this client's requests take their slots from.
    pub fn budget(&self) -> &Arc<crate::budget::AccountBudget> {
        self.service.budget()
    }

    /// `GET /lists`, every page: the audiences the credential can see.
    pub async fn lists(&self) -> Result<Vec<ListInfo>, Error> {
        let mut out = Vec::new();
        let fields: String = LIST_FIELDS
            .split(',')
            .map(|f| format!("lists.{f}"))
            .chain(std::iter::once("total_items".to_string()))
            .collect::<Vec<_>>()
            .join(",");
        loop {
            let call = Call::new(Endpoint::ListLists, Method::GET, path(&["lists"]))
                .query("count", PAGE_SIZE.to_string())
                .query("offset", out.len().to_string())
                .query("fields", fields.clone())
                .query("include_total_contacts", "true");
            let page: WireListPage = self.get(call).await?;
            let n = page.lists.len();
            out.extend(page.lists.into_iter().map(ListInfo::from));
            if n == 0 || out.len() as u64 >= page.total_items {
                return Ok(out);
            }
        }
    }

    /// `GET /lists/{list_id}`: the audience's name, double opt-in and counts.
    pub async fn list(&self, list_id: &str) -> Result<ListInfo, Error> {
        check_list_id(list_id)?;
        let call = Call::new(Endpoint::GetList, Method::GET, path(&["lists", list_id]))
            .query("fields", LIST_FIELDS)
            .query("include_total_contacts", "true");
        let w: WireList = self.get(call).await.map_err(audience_404(list_id))?;
        Ok(w.into())
    }

    /// `GET /lists/{list_id}/merge-fields`, every page.
    pub async fn merge_fields(&self, list_id: &str) -> Result<Vec<MergeFieldInfo>, Error> {
        check_list_id(list_id)?;
        let mut out = Vec::new();
        loop {
            let call = Call::new(
                Endpoint::ListMergeFields,
                Method::GET,
                path(&["lists", list_id, "merge-fields"]),
            )
            .query("count", PAGE_SIZE.to_string())
            .query("offset", out.len().to_string())
            .query("fields", MERGE_FIELD_FIELDS);
            let page: WireMergeFieldPage = self.get(call).await.map_err(audience_404(list_id))?;
            let n = page.merge_fields.len();
            out.extend(page.merge_fields.into_iter().map(MergeFieldInfo::from));
            if n == 0 || out.len() as u64 >= page.total_items {
                return Ok(out);
            }
        }
    }

    /// `POST /lists/{list_id}/merge-fields`: a field of `type` named `name` with merge tag
    /// `tag` (upper case, at most 10 characters).
    pub async fn create_merge_field(
        &self,
        list_id: &str,
        name: &str,
        tag: &str,
        r#type: MergeFieldType,
    ) -> Result<MergeFieldInfo, Error> {
        self.create_merge_field_with(
            list_id,
            &NewMergeField {
                name: name.to_string(),
                tag: Some(tag.to_string()),
                r#type: Some(r#type),
                ..NewMergeField::default()
            },
        )
        .await
    }

    /// `POST /lists/{list_id}/merge-fields` with every option. When Mailchimp refuses it and
    /// a field with the same tag and type already exists (an earlier attempt of this very
    /// request, or another run), that field is the answer.
    pub async fn create_merge_field_with(
        &self,
        list_id: &str,
        field: &NewMergeField,
    ) -> Result<MergeFieldInfo, Error> {
        check_list_id(list_id)?;
        let mut body = json!({"name": field.name, "required": field.required});
        if let Some(t) = &field.r#type {
            body["type"] = json!(t.as_str());
        }
        if let Some(tag) = &field.tag {
            body["tag"] = json!(tag);
        }
        let mut options = serde_json::Map::new();
        if let Some(f) = &field.date_format {
            options.insert("date_format".into(), json!(f));
        }
        if !field.choices.is_empty() {
            options.insert("choices".into(), json!(field.choices));
        }
        if !options.is_empty() {
            body["options"] = options.into();
        }
        let call = Call::new(
            Endpoint::CreateMergeField,
            Method::POST,
            path(&["lists", list_id, "merge-fields"]),
        )
        .json(&body);
        match self.get::<WireMergeField>(call).await {
            Ok(w) => Ok(w.into()),
            Err(e @ Error::Rejected { status: 400, .. }) => {
                let Some(tag) = &field.tag else {
                    return Err(e);
                };
                let existing = self.merge_fields(list_id).await?;
                existing
                    .into_iter()
                    .find(|f| {
                        f.tag.eq_ignore_ascii_case(tag.trim())
                            && field.r#type.as_ref().is_none_or(|t| *t == f.r#type)
                    })
                    .ok_or(e)
            }
            Err(e) => Err(audience_404(list_id)(e)),
        }
    }

    async fn members_page(
        &self,
        list_id: &str,
        since: Option<&str>,
        status: Option<&str>,
        offset: usize,
    ) -> Result<(WireMemberPage, Option<DateTime<Utc>>), Error> {
        let mut call = Call::new(
            Endpoint::ListMembers,
            Method::GET,
            path(&["lists", list_id, "members"]),
        )
        .query("count", PAGE_SIZE.to_string())
        .query("offset", offset.to_string())
        .query("fields", MEMBER_PAGE_FIELDS);
        if let Some(since) = since {
            call = call.query("since_last_changed", since);
        }
        if let Some(status) = status {
            call = call.query("status", status);
        }
        let answer = self.send(call).await.map_err(audience_404(list_id))?;
        let page = decode(Endpoint::ListMembers, &answer)?;
        Ok((page, answer.date))
    }

    /// `GET /lists/{list_id}/members`: every member (or those changed since
    /// `since_last_changed`, inclusive, at Mailchimp's one-second resolution) with status
    /// and last change. The first page tells the total; the others are then fetched
    /// concurrently, up to the in-flight cap. Pages are offsets into a list that can change
    /// meanwhile, so a member is reported once even if a shift shows it twice.
    pub async fn members(
        &self,
        list_id: &str,
        since_last_changed: Option<DateTime<Utc>>,
    ) -> Result<Vec<MemberState>, Error> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        self.members_each(list_id, since_last_changed, |m| {
            if seen.insert(m.hash.clone()) {
                out.push(m);
            }
        })
        .await?;
        Ok(out)
    }

    /// Like [`Client::members`], but hands each member to `f` as its page arrives, so a
    /// large audience is never held whole (a member shown twice by a shifting page is handed
    /// twice). Returns Mailchimp's clock when it answered the first page: changes after it
    /// are not in what was read.
    pub async fn members_each(
        &self,
        list_id: &str,
        since_last_changed: Option<DateTime<Utc>>,
        f: impl FnMut(MemberState),
    ) -> Result<Option<DateTime<Utc>>, Error> {
        self.members_with_status_each(list_id, since_last_changed, None, f)
            .await
    }

    /// Like [`Client::members_each`], only the members of `status` (`archived`: some
    /// answers leave archived contacts out of a plain read, so they are asked for by name).
    pub async fn members_with_status_each(
        &self,
        list_id: &str,
        since_last_changed: Option<DateTime<Utc>>,
        status: Option<&str>,
        mut f: impl FnMut(MemberState),
    ) -> Result<Option<DateTime<Utc>>, Error> {
        check_list_id(list_id)?;
        let since = since_last_changed.map(format_time);
        let since = since.as_deref();
        let (first, date) = self.members_page(list_id, since, status, 0).await?;
        let mut total = first.total_items as usize;
        first
            .members
            .into_iter()
            .map(MemberState::from)
            .for_each(&mut f);
        let mut next = PAGE_SIZE;
        // More pages than the total promised can appear while we read (members added
        // meanwhile): keep going until the latest total is covered.
        while next < total {
            let offsets: Vec<usize> = (next..total).step_by(PAGE_SIZE).collect();
            next = offsets.last().map_or(next, |o| o + PAGE_SIZE);
            let mut pages = stream::iter(offsets)
                .map(|o| self.members_page(list_id, since, status, o))
                .buffered(self.max_in_flight());
            while let Some(page) = pages.next().await {
                let (page, _) = page?;
                total = total.max(page.total_items as usize);
                page.members
                    .into_iter()
                    .map(MemberState::from)
                    .for_each(&mut f);
            }
        }
        Ok(date)
    }

    /// `GET /lists/{list_id}/members/{hash}`: one member, `None` when the address is not on
    /// the audience (Mailchimp answers the same 404 for a missing audience).
    pub async fn member(&self, list_id: &str, email: &str) -> Result<Option<MemberState>, Error> {
        check_list_id(list_id)?;
        let hash = subscriber_hash(email);
        let call = Call::new(
            Endpoint::GetMember,
            Method::GET,
            path(&["lists", list_id, "members", &hash]),
        )
        .query("fields", MEMBER_FIELDS);
        match self.get::<WireMember>(call).await {
            Ok(w) => Ok(Some(w.into())),
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /lists/{list_id}`: creates or updates up to 500 members. Mailchimp answers 200
    /// even when members fail; each failure comes back in [`BatchOutcome::failed`] with its
    /// reason. Use `update_existing: true` for a sync (it also makes a replayed request
    /// harmless; see [`BatchOutcome::replayed`]).
    pub async fn batch_upsert(
        &self,
        list_id: &str,
        items: &[UpsertItem],
        update_existing: bool,
    ) -> Result<BatchOutcome, Error> {
        check_list_id(list_id)?;
        if items.len() > MAX_BATCH_MEMBERS {
            return Err(Error::TooManyItems {
                what: "a batch upsert (POST /lists/{list_id})",
                max: MAX_BATCH_MEMBERS,
                got: items.len(),
            });
        }
        if items.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let call = Call::new(
            Endpoint::BatchUpsert,
            Method::POST,
            path(&["lists", list_id]),
        )
        .query("fields", BATCH_FIELDS)
        .json(&json!({"members": items, "update_existing": update_existing}));
        let (result, attempts) = self.service.send(&call).await;
        let answer = result.map_err(audience_404(list_id))?;
        let w: WireBatchAnswer = decode(Endpoint::BatchUpsert, &answer)?;

        let mut outcome = BatchOutcome {
            replayed: attempts.replayed,
            ..BatchOutcome::default()
        };
        let mut answered = HashSet::new();
        for (members, created) in [(w.new_members, true), (w.updated_members, false)] {
            for m in members {
                let hash = subscriber_hash(&m.email_address);
                answered.insert(hash.clone());
                outcome.accepted.push(AcceptedMember {
                    email: m.email_address,
                    hash,
                    status: m.status,
                    created,
                    tags: m.tags.into_iter().map(|t| t.name).collect(),
                });
            }
        }
        for e in w.errors {
            answered.insert(subscriber_hash(&e.email_address));
            outcome.failed.push(MemberFailure {
                kind: FailureKind::of(&e.error_code, &e.error),
                message: e.error,
                field: e.field.filter(|f| !f.is_empty()),
                field_message: e.field_message.filter(|f| !f.is_empty()),
                email: e.email_address,
            });
        }
        outcome.unanswered = items
            .iter()
            .filter(|i| !answered.contains(&subscriber_hash(&i.email)))
            .map(|i| i.email.clone())
            .collect();
        Ok(outcome)
    }

    /// `GET /lists/{list_id}/segments?type=static`: every tag, as `(id, name)`.
    pub async fn tags(&self, list_id: &str) -> Result<Vec<(u64, String)>, Error> {
        check_list_id(list_id)?;
        let mut out = Vec::new();
        loop {
            let call = Call::new(
                Endpoint::ListTags,
                Method::GET,
                path(&["lists", list_id, "segments"]),
            )
            .query("type", "static")
            .query("count", PAGE_SIZE.to_string())
            .query("offset", out.len().to_string())
            .query("fields", TAG_PAGE_FIELDS);
            let page: WireSegmentPage = self.get(call).await.map_err(audience_404(list_id))?;
            let n = page.segments.len();
            out.extend(page.segments.into_iter().map(|s| (s.id, s.name)));
            if n == 0 || out.len() as u64 >= page.total_items {
                return Ok(out);
            }
        }
    }

    /// `POST /lists/{list_id}/segments` with `static_segment: []`: a new, empty tag; its id.
    /// When Mailchimp refuses because a tag of that name exists (an earlier attempt of this
    /// very request, or another run), that tag's id is the answer.
    pub async fn create_tag(&self, list_id: &str, name: &str) -> Result<u64, Error> {
        check_list_id(list_id)?;
        let call = Call::new(
            Endpoint::CreateTag,
            Method::POST,
            path(&["lists", list_id, "segments"]),
        )
        .query("fields", "id,name")
        .json(&json!({"name": name, "static_segment": []}));
        match self.get::<WireSegment>(call).await {
            Ok(s) => Ok(s.id),
            Err(e @ Error::Rejected { status: 400, .. }) => self
                .tags(list_id)
                .await?
                .into_iter()
                .find(|(_, n)| n.trim().eq_ignore_ascii_case(name.trim()))
                .map(|(id, _)| id)
                .ok_or(e),
            Err(e) => Err(audience_404(list_id)(e)),
        }
    }

    /// `POST /lists/{list_id}/segments/{tag_id}`: tags up to 500 addresses and untags up to
    /// 500. Addresses that are not members are ignored by Mailchimp and listed in
    /// [`TagOutcome::not_members`]. Adding a tag twice, or removing it twice, is harmless.
    pub async fn update_tag_members(
        &self,
        list_id: &str,
        tag_id: u64,
        add: &[String],
        remove: &[String],
    ) -> Result<TagOutcome, Error> {
        check_list_id(list_id)?;
        for (what, v) in [
            ("the additions of a tag update", add),
            ("the removals of a tag update", remove),
        ] {
            if v.len() > MAX_TAG_CHANGES {
                return Err(Error::TooManyItems {
                    what,
                    max: MAX_TAG_CHANGES,
                    got: v.len(),
                });
            }
        }
        if add.is_empty() && remove.is_empty() {
            return Ok(TagOutcome::default());
        }
        let id = tag_id.to_string();
        let call = Call::new(
            Endpoint::UpdateTagMembers,
            Method::POST,
            path(&["lists", list_id, "segments", &id]),
        )
        .query("fields", TAG_UPDATE_FIELDS)
        .json(&json!({"members_to_add": add, "members_to_remove": remove}));
        let w: WireTagAnswer = self.get(call).await.map_err(|e| match e {
            Error::Rejected {
                status: 404,
                problem,
                ..
            } => Error::NotFound {
                what: format!("tag {tag_id} of audience {list_id}"),
                problem,
            },
            e => e,
        })?;
        Ok(TagOutcome {
            added: w.total_added,
            removed: w.total_removed,
            not_members: w
                .errors
                .into_iter()
                .flat_map(|e| e.email_addresses)
                .collect(),
        })
    }

    /// `DELETE /lists/{list_id}/members/{hash}`: archives a member. A 404 (not a member, or
    /// already gone) is [`Archived::AlreadyGone`]. A 405 (Mailchimp cannot archive pending or
    /// cleaned contacts) is a permanent error with Mailchimp's detail, unless the request was
    /// replayed and the member is now archived: then an earlier attempt did it.
    pub async fn archive(&self, list_id: &str, email: &str) -> Result<Archived, Error> {
        check_list_id(list_id)?;
        let hash = subscriber_hash(email);
        let call = Call::new(
            Endpoint::ArchiveMember,
            Method::DELETE,
            path(&["lists", list_id, "members", &hash]),
        );
        let (result, attempts) = self.service.send(&call).await;
        match result {
            Ok(_) => Ok(Archived::Archived),
            Err(e) if is_404(&e) => Ok(Archived::AlreadyGone),
            Err(e @ Error::Rejected { status: 405, .. }) if attempts.replayed => {
                match self.member(list_id, email).await? {
                    Some(m) if m.status == MemberStatus::Archived => Ok(Archived::Archived),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `PATCH /lists/{list_id}/members/{hash of from}` with the new `email_address` (and the
    /// merge values to write there): the member moves to its new address, keeping its status,
    /// tags and history. The member as it now is.
    pub async fn move_member(
        &self,
        list_id: &str,
        from: &str,
        to: &str,
        merge_fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<MemberState, Error> {
        check_list_id(list_id)?;
        let call = Call::new(
            Endpoint::UpdateMember,
            Method::PATCH,
            path(&["lists", list_id, "members", &subscriber_hash(from)]),
        )
        .query("fields", MEMBER_FIELDS)
        .json(&json!({"email_address": to, "merge_fields": merge_fields}));
        let w: WireMember = self.get(call).await?;
        Ok(w.into())
    }

    /// `PATCH /lists/{list_id}/members/{hash}` with a new status (the `unsubscribe` removal
    /// policy); the member as it now is.
    pub async fn set_status(
        &self,
        list_id: &str,
        email: &str,
        status: MemberStatus,
    ) -> Result<MemberState, Error> {
        check_list_id(list_id)?;
        let hash = subscriber_hash(email);
        let call = Call::new(
            Endpoint::UpdateMember,
            Method::PATCH,
            path(&["lists", list_id, "members", &hash]),
        )
        .query("fields", MEMBER_FIELDS)
        .json(&json!({"status": status}));
        let w: WireMember = self.get(call).await.map_err(|e| match e {
            Error::Rejected {
                status: 404,
                problem,
                ..
            } => Error::NotFound {
                what: format!("member {email} of audience {list_id}"),
                problem,
            },
            e => e,
        })?;
        Ok(w.into())
    }
}
