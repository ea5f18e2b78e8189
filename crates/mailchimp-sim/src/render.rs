//! How resources look on the wire: members, audiences, merge fields, segments, in the shapes
//! of the spec's schemas, and the `fields` / `exclude_fields` filters every endpoint takes.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::rules::{MergeType, Status};
use crate::store::list::{format_time, Key, List, Member, MergeField, Segment, SegmentKind};

fn link(rel: &str, href: String, method: &str) -> Value {
    json!({"rel": rel, "href": href, "method": method})
}

/// A member as `GET /lists/{id}/members/{hash}` returns it, serialised straight from the
/// store: building a JSON tree per member was most of the cost of a 500-member answer.
pub struct MemberDoc<'a> {
    list: &'a List,
    key: &'a Key,
    m: &'a Member,
    /// Only these top-level fields (from `fields=members.x,...`), or all.
    only: Option<&'a [String]>,
}

/// A member's answer, borrowing from the audience.
pub fn member<'a>(list: &'a List, key: &'a Key) -> MemberDoc<'a> {
    member_only(list, key, None)
}

/// A member's answer with only the top-level fields `only`, when given.
pub fn member_only<'a>(list: &'a List, key: &'a Key, only: Option<&'a [String]>) -> MemberDoc<'a> {
    MemberDoc {
        list,
        key,
        m: &list.members[key],
        only,
    }
}

/// The member fields `fields=` asks of the members under `name` (`members.id,members.status`
/// gives `[id, status]`), or `None` when it asks for whole members or sets no `fields`.
pub fn member_projection(
    q: &std::collections::HashMap<String, String>,
    name: &str,
) -> Option<Vec<String>> {
    let fields = q.get("fields").filter(|f| !f.trim().is_empty())?;
    let mut keys = Vec::new();
    for path in fields.split(',').map(str::trim) {
        if path == name {
            return None;
        }
        if let Some(rest) = path.strip_prefix(name).and_then(|r| r.strip_prefix('.')) {
            let key = rest.split('.').next().unwrap_or(rest).to_string();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Some(keys)
}

/// The members `keys` for top-level field `name` of an answer, with only the member fields
/// the request's `fields` names (its filter then runs on small trees), or none when
/// `fields` / `exclude_fields` leave that field out: rendering them is most of the work.
pub fn members_for<'a>(
    list: &'a List,
    keys: &'a [Key],
    q: &std::collections::HashMap<String, String>,
    name: &str,
    projection: &'a Option<Vec<String>>,
) -> Vec<MemberDoc<'a>> {
    if field_wanted(q, name) {
        let only = projection.as_deref();
        keys.iter().map(|k| member_only(list, k, only)).collect()
    } else {
        Vec::new()
    }
}

impl MemberDoc<'_> {
    /// The same answer as a JSON tree, for callers that take it apart.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a member serialises")
    }

    fn merge_value(&self, f: &MergeField) -> Option<&Value> {
        self.m
            .merge
            .iter()
            .find(|(id, _)| *id == f.merge_id)
            .map(|(_, v)| v)
    }
}

/// `merge_fields`: every field of the audience, "" when the member has no value.
struct MergeDoc<'a>(&'a MemberDoc<'a>);

impl Serialize for MergeDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.list.merge_fields.len()))?;
        for f in &self.0.list.merge_fields {
            match self.0.merge_value(f) {
                Some(v) => map.serialize_entry(&f.tag, v)?,
                None => map.serialize_entry(&f.tag, "")?,
            }
        }
        map.end()
    }
}

struct TagsDoc<'a>(&'a MemberDoc<'a>);

impl Serialize for TagsDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let list = self.0.list;
        let tags = self
            .0
            .m
            .tags
            .iter()
            .filter_map(|(id, _)| list.segments.get(id));
        s.collect_seq(tags.map(|t| TagRef {
            id: t.id,
            name: &t.name,
        }))
    }
}

#[derive(Serialize)]
struct TagRef<'a> {
    id: u32,
    name: &'a str,
}

struct LinksDoc<'a> {
    list_id: &'a str,
    hash: &'a str,
}

impl Serialize for LinksDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Link<'a> {
            rel: &'static str,
            href: std::fmt::Arguments<'a>,
            method: &'static str,
        }
        let (l, h) = (self.list_id, self.hash);
        let mut seq = s.serialize_seq(Some(5))?;
        for (rel, method) in [
            ("self", "GET"),
            ("update", "PATCH"),
            ("upsert", "PUT"),
            ("delete", "DELETE"),
        ] {
            seq.serialize_element(&Link {
                rel,
                href: format_args!("/3.0/lists/{l}/members/{h}"),
                method,
            })?;
        }
        seq.serialize_element(&Link {
            rel: "parent",
            href: format_args!("/3.0/lists/{l}/members"),
            method: "GET",
        })?;
        seq.end()
    }
}

impl Serialize for MemberDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.m;
        let hash = hex::encode(self.key);
        let text = |tag: &str| {
            self.list
                .merge_field_by_tag(tag)
                .and_then(|f| self.merge_value(f))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let full_name = format!("{} {}", text("FNAME"), text("LNAME"));
        let tags_count = m
            .tags
            .iter()
            .filter(|(id, _)| self.list.segments.contains_key(id))
            .count();
        let mut map = s.serialize_map(None)?;
        let wants = |k: &str| self.only.is_none_or(|only| only.iter().any(|o| o == k));
        macro_rules! entry {
            ($k:expr, $v:expr $(,)?) => {
                if wants($k) {
                    map.serialize_entry($k, $v)?;
                }
            };
        }
        entry!("id", &hash);
        entry!("email_address", &m.email);
        entry!("unique_email_id", &hash[..10]);
        entry!("contact_id", &hash);
        entry!("full_name", full_name.trim());
        entry!("web_id", &m.web_id);
        entry!("email_type", &m.email_type);
        entry!("status", m.status.as_str());
        entry!("unsubscribe_reason", &m.unsubscribe_reason);
        entry!("consents_to_one_to_one_messaging", &true);
        entry!("sms_phone_number", "");
        entry!("sms_subscription_status", "");
        entry!("sms_subscription_last_updated", "");
        entry!("merge_fields", &MergeDoc(self));
        entry!("interests", &EmptyObject);
        entry!(
            "stats",
            &Stats {
                avg_open_rate: 0,
                avg_click_rate: 0,
            },
        );
        entry!("ip_signup", &m.ip_signup);
        entry!("timestamp_signup", &m.timestamp_signup);
        entry!("ip_opt", &m.ip_opt);
        entry!("timestamp_opt", &m.timestamp_opt);
        entry!("member_rating", &2);
        entry!("last_changed", &format_time(m.last_changed));
        entry!("language", &m.language);
        entry!("vip", &m.vip);
        entry!("email_client", "");
        entry!("location", &Location::default());
        entry!("marketing_permissions", &[(); 0]);
        entry!("source", m.source);
        entry!("tags_count", &tags_count);
        entry!("tags", &TagsDoc(self));
        entry!("list_id", &self.list.id);
        entry!(
            "_links",
            &LinksDoc {
                list_id: &self.list.id,
                hash: &hash,
            },
        );
        map.end()
    }
}

struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

#[derive(Serialize)]
struct Stats {
    avg_open_rate: u8,
    avg_click_rate: u8,
}

#[derive(Serialize, Default)]
struct Location {
    latitude: u8,
    longitude: u8,
    gmtoff: u8,
    dstoff: u8,
    country_code: &'static str,
    timezone: &'static str,
    region: &'static str,
}

/// The string fields `keys` of `v` (a stored request object), "" for those it lacks: the
/// shape Mailchimp answers whatever subset was sent.
fn string_fields(v: &Value, keys: &[&str]) -> Value {
    let fields: Map<String, Value> = keys
        .iter()
        .map(|k| {
            let s = v.get(*k).and_then(Value::as_str).unwrap_or("");
            (k.to_string(), Value::String(s.to_string()))
        })
        .collect();
    Value::Object(fields)
}

/// An audience as `GET /lists/{id}` returns it, with live stats.
pub fn list(l: &List) -> Value {
    let count = |s| l.count_status(s);
    let merge_field_count = l.merge_fields.len();
    json!({
        "id": l.id,
        "web_id": l.web_id,
        "name": l.info.name,
        "contact": string_fields(
            &l.info.contact,
            &["company", "address1", "address2", "city", "state", "zip", "country", "phone"],
        ),
        "permission_reminder": l.info.permission_reminder,
        "use_archive_bar": l.info.use_archive_bar,
        "campaign_defaults": string_fields(
            &l.info.campaign_defaults,
            &["from_name", "from_email", "subject", "language"],
        ),
        "notify_on_subscribe": l.info.notify_on_subscribe,
        "notify_on_unsubscribe": l.info.notify_on_unsubscribe,
        "date_created": format_time(l.date_created),
        "list_rating": 0,
        "email_type_option": l.info.email_type_option,
        "subscribe_url_short": format!("http://eepurl.com/sim{}", l.web_id),
        "subscribe_url_long": format!("https://mailchimp.com/subscribe?u=sim&id={}", l.id),
        "beamer_address": format!("us1-{}@inbound.mailchimp.com", &l.id),
        "visibility": l.info.visibility,
        "double_optin": l.info.double_optin,
        "has_welcome": false,
        "marketing_permissions": l.info.marketing_permissions,
        "modules": [],
        "stats": {
            "member_count": count(Status::Subscribed),
            "total_contacts": l.contacts(),
            "unsubscribe_count": count(Status::Unsubscribed),
            "cleaned_count": count(Status::Cleaned),
            "member_count_since_send": count(Status::Subscribed),
            "unsubscribe_count_since_send": count(Status::Unsubscribed),
            "cleaned_count_since_send": count(Status::Cleaned),
            "campaign_count": 0,
            "campaign_last_sent": "",
            "merge_field_count": merge_field_count,
            "avg_sub_rate": 0,
            "avg_unsub_rate": 0,
            "target_sub_rate": 0,
            "open_rate": 0,
            "click_rate": 0,
            "last_sub_date": l.last_sub_date.map(format_time).unwrap_or_default(),
            "last_unsub_date": l.last_unsub_date.map(format_time).unwrap_or_default(),
        },
        "_links": [
            link("self", format!("/3.0/lists/{}", l.id), "GET"),
            link("members", format!("/3.0/lists/{}/members", l.id), "GET"),
        ],
    })
}

pub fn merge_field(list_id: &str, f: &MergeField) -> Value {
    let mut options = Map::new();
    match f.ty {
        MergeType::Text => {
            options.insert("size".into(), json!(f.size));
        }
        MergeType::Address => {
            options.insert("default_country".into(), json!(f.default_country));
        }
        MergeType::Phone => {
            options.insert("phone_format".into(), json!(f.phone_format));
        }
        MergeType::Date | MergeType::Birthday => {
            options.insert("date_format".into(), json!(f.date_format));
        }
        MergeType::Radio | MergeType::Dropdown => {
            options.insert("choices".into(), json!(f.choices));
        }
        _ => {}
    }
    json!({
        "merge_id": f.merge_id,
        "tag": f.tag,
        "name": f.name,
        "type": f.ty.as_str(),
        "required": f.required,
        "default_value": f.default_value,
        "public": f.public,
        "display_order": f.display_order,
        "options": options,
        "help_text": f.help_text,
        "list_id": list_id,
        "_links": [link("self", format!("/3.0/lists/{list_id}/merge-fields/{}", f.merge_id), "GET")],
    })
}

pub fn segment(list: &List, s: &Segment) -> Value {
    segment_counted(list, s, true)
}

/// A segment, its `member_count` counted only when `count` (a scan of its members: an
/// answer whose `fields` leave the count out is spared it, as Mailchimp, which keeps its
/// counts, spares it too; otherwise `null`, which the filter drops).
pub fn segment_counted(list: &List, s: &Segment, count: bool) -> Value {
    let member_count = count.then(|| {
        s.members
            .iter()
            .filter(|k| {
                list.members
                    .get(*k)
                    .is_some_and(|m| m.status != Status::Archived)
            })
            .count()
    });
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "member_count": member_count,
        "type": match s.kind { SegmentKind::Static => "static", SegmentKind::Saved => "saved" },
        "created_at": format_time(s.created_at),
        "updated_at": format_time(s.updated_at),
        "list_id": list.id,
        "_links": [link("self", format!("/3.0/lists/{}/segments/{}", list.id, s.id), "GET")],
    });
    if s.kind == SegmentKind::Saved {
        v["options"] = s.options.clone();
    }
    v
}

/// Whether the answer keeps the field at `path` (dotted: `segments.member_count`) under the
/// request's `fields` / `exclude_fields`, so that a handler can skip building what would be
/// filtered out: a listed path that leads to it or into it keeps it; an excluded one that
/// leads to it drops it.
pub fn field_wanted(q: &std::collections::HashMap<String, String>, path: &str) -> bool {
    let listed = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let leads_to = |p: &str, q: &str| q == p || q.starts_with(&format!("{p}."));
    if let Some(f) = q.get("fields").filter(|f| !f.trim().is_empty()) {
        return listed(f)
            .iter()
            .any(|p| leads_to(p, path) || leads_to(path, p));
    }
    if let Some(x) = q.get("exclude_fields").filter(|x| !x.trim().is_empty()) {
        return !listed(x).iter().any(|p| leads_to(p, path));
    }
    true
}

/// Applies `fields` or `exclude_fields` (comma lists in dot notation) to a response body.
pub fn filter_fields(body: Value, fields: Option<&str>, exclude: Option<&str>) -> Value {
    let split = |s: &str| -> Vec<Vec<String>> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split('.').map(String::from).collect())
            .collect()
    };
    if let Some(f) = fields.filter(|f| !f.trim().is_empty()) {
        let paths = split(f);
        keep(&body, &paths.iter().map(|p| &p[..]).collect::<Vec<_>>())
    } else if let Some(x) = exclude.filter(|x| !x.trim().is_empty()) {
        let mut body = body;
        for p in split(x) {
            drop_path(&mut body, &p);
        }
        body
    } else {
        body
    }
}

fn keep(v: &Value, paths: &[&[String]]) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| keep(i, paths)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, child) in o {
                let sub: Vec<&[String]> = paths
                    .iter()
                    .filter(|p| p.first() == Some(k))
                    .map(|p| &p[1..])
                    .collect();
                if sub.is_empty() {
                    continue;
                }
                if sub.iter().any(|p| p.is_empty()) {
                    out.insert(k.clone(), child.clone());
                } else {
                    out.insert(k.clone(), keep(child, &sub));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn drop_path(v: &mut Value, path: &[String]) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_path(i, path)),
        Value::Object(o) => {
            if path.len() == 1 {
                o.remove(&path[0]);
            } else if let Some(child) = o.get_mut(&path[0]) {
                drop_path(child, &path[1..]);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_filter() {
        let body = json!({"members": [{"id": "a", "email_address": "x", "merge_fields": {"FNAME": "A", "LNAME": "B"}}],
                          "total_items": 1, "_links": []});
        assert_eq!(
            filter_fields(
                body.clone(),
                Some("members.id,members.merge_fields.FNAME,total_items"),
                None
            ),
            json!({"members": [{"id": "a", "merge_fields": {"FNAME": "A"}}], "total_items": 1})
        );
        assert_eq!(
            filter_fields(body, None, Some("_links,members.merge_fields")),
            json!({"members": [{"id": "a", "email_address": "x"}], "total_items": 1})
        );
    }

    #[test]
    fn a_value_is_wanted_when_the_filter_keeps_it() {
        let q =
            |k: &str, v: &str| std::collections::HashMap::from([(k.to_string(), v.to_string())]);
        let wanted = |k: &str, v: &str| field_wanted(&q(k, v), "segments.member_count");
        assert!(field_wanted(&Default::default(), "segments.member_count"));
        assert!(wanted("fields", "segments"));
        assert!(wanted("fields", "total_items,segments.member_count"));
        assert!(!wanted("fields", "segments.id,segments.name,total_items"));
        assert!(!wanted("fields", "segments.member_count_x"));
        assert!(!wanted("exclude_fields", "segments.member_count"));
        assert!(!wanted("exclude_fields", "segments"));
        assert!(wanted("exclude_fields", "_links,segments.options"));
    }
}
