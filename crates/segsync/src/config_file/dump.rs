//! `segsync dump`: an installation's configuration written as a file `apply` takes, secrets
//! left out.

use crate::mailchimp::CredentialKind;
use std::fmt::Write as _;

use segsync_core::{NewStatus, RemovalPolicy};

use crate::ops::{self, ConnectionView, ExportInput};
use crate::sources::SourceView;
use crate::state::{ExportConfig, Schedule, SegmentRecord};

use super::model::DEFAULT_MAX_PROFILES;

/// A TOML basic string: quoted, with `\`, `"` and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key as TOML allows it bare (`CITY`), else quoted.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        quote(s)
    }
}

fn status_word(s: NewStatus) -> &'static str {
    match s {
        NewStatus::Subscribed => "subscribed",
        NewStatus::Pending => "pending",
        NewStatus::Transactional => "transactional",
    }
}

fn removal_word(r: RemovalPolicy) -> &'static str {
    match r {
        RemovalPolicy::Untag => "untag",
        RemovalPolicy::Archive => "archive",
        RemovalPolicy::Unsubscribe => "unsubscribe",
    }
}

/// The configuration of an installation as a file `apply` takes, secrets left out. Objects
/// are sorted by name, and merge fields and segments within an export too, so that two dumps
/// of the same configuration are the same bytes and dumps diff well in git.
pub fn render(
    connections: &[ConnectionView],
    sources: &[SourceView],
    segments: &[SegmentRecord],
    exports: &[ExportConfig],
) -> String {
    let mut out = String::new();
    out.push_str(
        "# segsync configuration, written by `segsync dump`; apply it with `segsync apply FILE`.\n\
         # Secrets are never written. To create a connection on another installation, uncomment\n\
         # its secret source (an environment variable or a file) and accept_privacy_terms.\n",
    );
    let mut connections: Vec<&ConnectionView> = connections.iter().collect();
    connections.sort_by(|a, b| a.name.cmp(&b.name));
    for c in connections {
        render_connection(&mut out, c);
    }
    let mut sources: Vec<&SourceView> = sources.iter().collect();
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    for s in sources {
        render_source(&mut out, s);
    }
    let mut segments: Vec<&SegmentRecord> = segments.iter().collect();
    segments.sort_by(|a, b| a.name.cmp(&b.name));
    for s in segments {
        render_segment(&mut out, s);
    }
    let mut exports: Vec<&ExportConfig> = exports.iter().collect();
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    for e in exports {
        render_export(&mut out, e);
    }
    out
}

/// The environment variable a dumped source's URL is read from: `SEGSYNC_SOURCE_` and its
/// name in capitals, other characters as `_`.
pub fn source_url_var(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SEGSYNC_SOURCE_{name}")
}

/// A database source: its URL stays in the installation; the file names a variable for it,
/// with the URL without its password in a comment.
fn render_source(out: &mut String, s: &SourceView) {
    let _ = writeln!(out, "\n[[source]]");
    let _ = writeln!(out, "name = {}", quote(&s.name));
    let _ = writeln!(out, "kind = {}", quote(&s.kind));
    let _ = writeln!(
        out,
        "url = {}   # the URL stays in the installation: {}",
        quote(&format!("env:{}", source_url_var(&s.name))),
        s.url.replace(['\n', '\r'], " ")
    );
    let _ = writeln!(out, "{} = {}", key(&s.relation_kind), quote(&s.relation));
    let _ = writeln!(out, "key = {}", quote(&s.key_column));
    if let Some(c) = &s.cursor_column {
        let _ = writeln!(out, "cursor = {}", quote(c));
    }
}

/// A connection; its secret source and consent are commented out, since the secret stays in
/// the installation and whoever creates the connection elsewhere must agree anew.
fn render_connection(out: &mut String, c: &ConnectionView) {
    let _ = writeln!(out, "\n[[connection]]");
    let _ = writeln!(out, "name = {}", quote(&c.name));
    let _ = writeln!(out, "display_name = {}", quote(&c.display_name));
    let _ = writeln!(out, "base_url = {}", quote(&c.base_url));
    let _ = writeln!(
        out,
        "share_with_contributors = {}",
        c.shared_with_contributors
    );
    if let Some(u) = &c.export_user {
        let _ = writeln!(out, "export_user = {}", quote(u));
    }
    if c.slot_budget as usize != crate::mailchimp::DEFAULT_SLOT_BUDGET {
        let _ = writeln!(out, "slot_budget = {}", c.slot_budget);
    }
    let source = if c.credential_kind == CredentialKind::OAuth.as_str() {
        "oauth_token_env"
    } else {
        "api_key_env"
    };
    let _ = writeln!(
        out,
        "# {:<29} # the secret stays in the installation",
        format!("{source} = \"...\"")
    );
    let _ = writeln!(
        out,
        "# {:<29} # agreed by {} at {}",
        "accept_privacy_terms = true",
        c.consent_by.replace('\n', " "),
        c.consent_at.replace('\n', " ")
    );
}

fn render_segment(out: &mut String, s: &SegmentRecord) {
    let _ = writeln!(out, "\n[[segment]]");
    let _ = writeln!(out, "name = {}", quote(&s.name));
    match s
        .rule
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
    {
        Some(Ok(rule)) => {
            let _ = writeln!(out, "rule = {}", inline(&rule));
            let _ = writeln!(out, "# where = {}", quote(&s.predicate).replace('\n', " "));
        }
        _ => {
            let _ = writeln!(out, "where = {}", quote(&s.predicate));
        }
    }
    if let Some(src) = &s.source {
        let _ = writeln!(out, "source = {}", quote(src));
    }
}

/// A segment rule (as JSON) written as a TOML inline value.
fn inline(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "\"\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{} = {}", quote(k), inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn render_export(out: &mut String, e: &ExportConfig) {
    let input = ExportInput::from_config(e);
    let _ = writeln!(out, "\n[[export]]");
    let _ = writeln!(out, "name = {}", quote(&e.name));
    let _ = writeln!(out, "connection = {}", quote(&e.connection));
    let _ = writeln!(out, "audience = {}", quote(&e.audience_id));
    let _ = writeln!(out, "email_field = {}", quote(&e.email_field));
    if let Some(f) = &input.first_name {
        let _ = writeln!(out, "first_name = {}", quote(f));
    }
    if let Some(l) = &input.last_name {
        let _ = writeln!(out, "last_name = {}", quote(l));
    }
    let mut merge = input.merge.clone();
    merge.sort_by(|a, b| a.tag.cmp(&b.tag));
    if !merge.is_empty() {
        let pairs: Vec<String> = merge
            .iter()
            .map(|m| format!("{} = {}", key(&m.tag), quote(&m.column)))
            .collect();
        let _ = writeln!(out, "merge = {{ {} }}", pairs.join(", "));
    }
    let mut segs = input.segments.clone();
    segs.sort_by(|a, b| a.segment.cmp(&b.segment));
    let seg = |s: &ops::SegmentChoice| match &s.tag {
        Some(t) => format!("{{ segment = {}, tag = {} }}", quote(&s.segment), quote(t)),
        None => format!("{{ segment = {} }}", quote(&s.segment)),
    };
    if segs.len() == 1 {
        let _ = writeln!(out, "segments = [{}]", seg(&segs[0]));
    } else {
        let _ = writeln!(out, "segments = [");
        for s in &segs {
            let _ = writeln!(out, "  {},", seg(s));
        }
        let _ = writeln!(out, "]");
    }
    let _ = writeln!(
        out,
        "status_if_new = {}",
        quote(status_word(e.status_if_new))
    );
    let _ = writeln!(out, "removal = {}", quote(removal_word(e.removal)));
    let _ = writeln!(out, "create_merge_fields = {}", e.create_merge_fields);
    if let Some(u) = &e.updated_at_field {
        let _ = writeln!(out, "updated_at_field = {}", quote(u));
    }
    if e.max_profiles != DEFAULT_MAX_PROFILES {
        let _ = writeln!(out, "max_profiles = {}", e.max_profiles);
    }
    let schedule = match &e.schedule {
        Schedule::Manual => quote("manual"),
        Schedule::AfterRefresh => quote("after_refresh"),
        Schedule::Cron { cron, timezone } => format!(
            "{{ cron = {}, timezone = {} }}",
            quote(cron),
            quote(timezone)
        ),
    };
    let _ = writeln!(out, "schedule = {schedule}");
    if e.paused {
        let _ = writeln!(out, "paused = true");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::testkit::{installation, plan_of};
    use crate::config_file::{Action, Options};

    #[test]
    fn a_dump_parses_back_and_plans_nothing() {
        let inst = installation();
        let text = render(
            &inst.connections,
            &inst.sources,
            &inst.segments,
            &inst.exports,
        );
        let plan = plan_of(&text, &inst, Options::default()).unwrap_or_else(|e| {
            panic!("{text}\n{e:?}");
        });
        assert!(!plan.changes_anything(), "{text}");
        assert_eq!(plan.count(Action::Unchanged), 4, "{text}");
        // Sorted by name, whatever the installation's order.
        let hv = text.find("name = \"high-value\"").unwrap();
        let ro = text.find("name = \"romania\"").unwrap();
        assert!(hv < ro, "{text}");
        assert!(
            text.contains("merge = { CITY = \"city\", LTV = \"lifetime_value\" }"),
            "{text}"
        );
        assert!(text.contains("paused = true"), "{text}");
        assert!(text.contains("max_profiles = 5000"), "{text}");
        assert!(text.contains("# api_key_env = \"...\""), "{text}");
        // The same configuration in another order renders the same bytes.
        let mut shuffled = inst.clone();
        shuffled.segments.reverse();
        shuffled.exports[0].fields.reverse();
        assert_eq!(
            render(
                &shuffled.connections,
                &shuffled.sources,
                &shuffled.segments,
                &shuffled.exports
            ),
            text
        );
    }

    #[test]
    fn quoting_round_trips() {
        for s in [
            "plain",
            "a \"b\" \\ c",
            "line\nbreak\ttab",
            "\u{1b}[31m",
            "Ștefan’s",
        ] {
            let text = format!("v = {}", quote(s));
            let t: toml::Table = toml::from_str(&text).unwrap();
            assert_eq!(t["v"].as_str(), Some(s), "{text}");
        }
    }
}
