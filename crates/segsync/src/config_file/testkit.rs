//! What the unit tests of the configuration file share: a small installation (a connection,
//! two segments, an export), and a file planned against it with every outside check passing.

use std::collections::BTreeMap;

use secrecy::SecretString;
use segsync_core::{NewStatus, RemovalPolicy};

use crate::ops::ConnectionView;
use crate::state::{ExportConfig, FieldMap, Schedule, SegmentRecord, SegmentTag};

use super::{parse, plan, Checks, Installation, Options, Plan, PredicateCheck, Problem, Source};

pub(super) fn src(text: &str) -> Source {
    Source::new("segsync.toml", "/nonexistent", text)
}

pub(super) fn no_checks() -> (
    Box<PredicateCheck<'static>>,
    impl Fn(&str) -> Option<SecretString>,
) {
    (Box::new(|_: &str, _: Option<&str>| Ok(())), |_: &str| None)
}

pub(super) fn plan_of(
    text: &str,
    inst: &Installation,
    options: Options,
) -> Result<Plan, Vec<Problem>> {
    let file = parse(src(text)).map_err(|e| e.to_vec())?;
    let (pred, secret) = no_checks();
    plan(
        &file,
        inst,
        options,
        &Checks {
            predicate: &pred,
            stored_secret: &secret,
        },
    )
}

pub(super) fn messages(r: Result<Plan, Vec<Problem>>) -> Vec<String> {
    match r {
        Ok(_) => panic!("the file should be refused"),
        Err(ps) => ps.iter().map(|p| p.to_string()).collect(),
    }
}

pub(super) fn installation() -> Installation {
    Installation {
        sources: vec![],
        connections: vec![ConnectionView {
            name: "mailchimp".into(),
            display_name: "Mailchimp (marketing)".into(),
            base_url: "https://us6.api.mailchimp.com/3.0".into(),
            credential_kind: "api_key".into(),
            consent_by: "ana".into(),
            consent_at: "2026-11-22T10:00:00Z".into(),
            shared_with_contributors: true,
            export_user: Some("ana".into()),
            created_at: "2026-11-22T10:00:00Z".into(),
            account_id: Some("sim-account".into()),
            slot_budget: 8,
            health: None,
        }],
        segments: vec![
            SegmentRecord {
                name: "romania".into(),
                predicate: "country = 'RO'".into(),
                source: None,
                rule: None,
                created_at: "x".into(),
            },
            SegmentRecord {
                name: "high-value".into(),
                predicate: "lifetime_value > 500 AND note <> \"a\\b\"".into(),
                source: None,
                rule: None,
                created_at: "x".into(),
            },
        ],
        exports: vec![ExportConfig {
            name: "newsletter".into(),
            connection: "mailchimp".into(),
            audience_id: "a1b2c3d4e5".into(),
            email_field: "email".into(),
            fields: vec![
                FieldMap {
                    tag: "FNAME".into(),
                    column: "first_name".into(),
                    kind: None,
                },
                FieldMap {
                    tag: "LTV".into(),
                    column: "lifetime_value".into(),
                    kind: None,
                },
                FieldMap {
                    tag: "CITY".into(),
                    column: "city".into(),
                    kind: None,
                },
            ],
            segments: vec![
                SegmentTag {
                    segment: "romania".into(),
                    tag: "romania".into(),
                },
                SegmentTag {
                    segment: "high-value".into(),
                    tag: "High value".into(),
                },
            ],
            status_if_new: NewStatus::Pending,
            removal: RemovalPolicy::Archive,
            max_profiles: 5000,
            create_merge_fields: true,
            updated_at_field: Some("updated_at".into()),
            schedule: Schedule::Cron {
                cron: "0 6 * * *".into(),
                timezone: "Europe/Bucharest".into(),
            },
            paused: true,
            audience_name: None,
        }],
        columns: [
            "customer_id",
            "email",
            "first_name",
            "last_name",
            "city",
            "lifetime_value",
            "updated_at",
            "country",
            "note",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        source_columns: BTreeMap::new(),
        rule_columns: BTreeMap::new(),
    }
}
