//! The segment builder and true sizes through the HTTP API (issue 18, items 1 and 2): column
//! statistics for the pickers, a draft's live count, segments saved from a structured rule
//! (kept next to the SQL it compiles to), the distinct members of chosen segments with their
//! overlaps and the limit check, and the members a changed segment would tag or untag in
//! each export using it. Every count is checked against what the profiles must give.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::*;
use crate::harness::*;

/// The standard people, plus profiles that share an address with some of them (upper-cased,
/// in Romania, low value) and one Romanian profile without a valid address.
pub fn profiles() -> Vec<Profile> {
    let mut p = people(90);
    for i in 0..6 {
        let mut twin = p[i * 7].clone();
        twin.id = format!("T{i:04}");
        twin.email = twin.email.to_uppercase();
        twin.country = "RO".into();
        twin.ltv = 12.5;
        p.push(twin);
    }
    p.push(Profile::new(
        "X0001",
        "not-an-address",
        "Nu",
        "Mail",
        "Iasi",
        "RO",
        900.5,
    ));
    p
}

/// Per valid lower-cased address, which of `tests` any of its profiles passes.
pub fn members(
    profiles: &[Profile],
    tests: &[&dyn Fn(&Profile) -> bool],
) -> BTreeMap<String, Vec<bool>> {
    let mut m: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for p in profiles.iter().filter(|p| p.email.contains('@')) {
        let bits = m
            .entry(p.email.trim().to_lowercase())
            .or_insert_with(|| vec![false; tests.len()]);
        for (b, t) in bits.iter_mut().zip(tests) {
            *b |= t(p);
        }
    }
    m.retain(|_, bits| bits.iter().any(|b| *b));
    m
}

fn rule_ro_high() -> Value {
    json!({"all": [
        {"condition": {"column": "country", "op": "one_of", "value": ["RO"]}},
        {"condition": {"column": "lifetime_value", "op": "gte", "value": 500}}
    ]})
}

#[test]
fn the_builder_counts_drafts_and_saves_rules_with_their_sql() {
    let sim = Sim::start();
    let profiles = profiles();
    let s = crate::api::installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let carl = server.token_client(CONTRIBUTOR);
    let vera = server.token_client(VERA_OR_VIEWER);

    // The pickers' statistics: top values of text, min/max/percentiles of numbers.
    let (code, stats) = carl.get("/api/profiles/columns");
    assert_eq!(code, 200, "{stats}");
    let col = |name: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name}: {stats}"))
            .clone()
    };
    let country = col("country");
    assert_eq!(country["kind"], "text");
    let ro = profiles.iter().filter(|p| p.country == "RO").count();
    let top_ro = country["top"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["value"] == "RO")
        .unwrap();
    assert_eq!(top_ro["count"], ro, "{country}");
    let ltv = col("lifetime_value");
    assert_eq!(ltv["kind"], "number");
    let values: Vec<f64> = profiles.iter().map(|p| p.ltv).collect();
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(ltv["min"].as_f64(), Some(min));
    assert_eq!(ltv["max"].as_f64(), Some(max));
    assert_eq!(ltv["percentiles"].as_array().unwrap().len(), 5);
    assert_eq!(col("updated_at")["kind"], "date");
    // Viewers get no values (they can be personal data).
    let (code, body) = vera.get("/api/profiles/columns");
    assert_eq!(code, 403, "{body}");

    // A draft's live count and SQL; a sample for contributors, the count only for viewers.
    let want = profiles
        .iter()
        .filter(|p| p.country == "RO" && p.ltv >= 500.0)
        .count() as u64;
    let (code, draft) = carl.post(
        "/api/segment-preview",
        json!({"rule": rule_ro_high(), "sample": 3}),
    );
    assert_eq!(code, 200, "{draft}");
    assert_eq!(draft["count"], want);
    assert_eq!(
        draft["predicate"],
        "(\"country\" IN ('RO') AND \"lifetime_value\" >= 500)"
    );
    assert_eq!(draft["sample"].as_array().unwrap().len(), 3);
    let (code, seen) = vera.post(
        "/api/segment-preview",
        json!({"rule": rule_ro_high(), "sample": 3}),
    );
    assert_eq!(code, 200, "{seen}");
    assert_eq!(seen["count"], want);
    assert_eq!(seen["sample"], json!([]));

    // Relative dates and NOT: every profile was updated on 2026-01-15.
    let (_, recent) = carl.post(
        "/api/segment-preview",
        json!({"rule": {"not": {"condition": {"column": "updated_at", "op": "before", "value": "2026-01-01"}}}}),
    );
    assert_eq!(recent["count"], profiles.len(), "{recent}");
    let (code, old) = carl.post(
        "/api/segment-preview",
        json!({"rule": {"condition": {"column": "updated_at", "op": "more_than_ago", "value": {"amount": 1, "unit": "days"}}}}),
    );
    assert_eq!(code, 200, "{old}");
    assert_eq!(old["count"], profiles.len(), "{old}");

    // A mistake says where and what, and nothing is saved.
    let bad = json!({"all": [{"condition": {"column": "country", "op": "gt", "value": 3}}]});
    let (code, e) = carl.post("/api/segment-preview", json!({"rule": bad}));
    assert_eq!(code, 422, "{e}");
    assert_eq!(
        e["message"],
        "rule, at all[0] (condition on \"country\"): \"gt\" does not apply to a text column (it takes is, is_not, one_of, none_of, contains, not_contains, starts_with, ends_with, is_empty, is_not_empty)"
    );
    let (code, e) = carl.post("/api/segments", json!({"name": "broken", "rule": bad}));
    assert_eq!(code, 422, "{e}");
    let (code, e) = carl.post(
        "/api/segments",
        json!({"name": "both", "rule": rule_ro_high(), "predicate": "1 = 1"}),
    );
    assert_eq!(code, 422, "{e}");
    assert_eq!(
        e["message"],
        "give either a predicate (SQL) or a rule, not both"
    );
    let (_, list) = carl.get("/api/segments");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "broken" && s["name"] != "both"),
        "{list}"
    );

    // Saved from the rule: the SQL is kept next to it, and counted.
    let (code, saved) = carl.post(
        "/api/segments",
        json!({"name": "ro_high", "rule": rule_ro_high()}),
    );
    assert_eq!(code, 201, "{saved}");
    assert_eq!(saved["count"], want);
    assert_eq!(saved["rule"], rule_ro_high());
    assert_eq!(saved["predicate"], draft["predicate"]);
    let (_, got) = vera.get("/api/segments/ro_high");
    assert_eq!(got["rule"], rule_ro_high());
    assert_eq!(got["count"], want);
    assert_eq!(got["sample"], json!([]));

    // Changed to another rule; then to SQL, which drops the rule.
    let fr = json!({"condition": {"column": "country", "op": "is", "value": "FR"}});
    let (code, changed) = carl.put("/api/segments/ro_high", json!({"rule": fr}));
    assert_eq!(code, 200, "{changed}");
    assert_eq!(
        changed["count"],
        profiles.iter().filter(|p| p.country == "FR").count()
    );
    assert_eq!(changed["predicate"], "\"country\" = 'FR'");
    let (code, changed) = carl.put(
        "/api/segments/ro_high",
        json!({"predicate": "country = 'RO'"}),
    );
    assert_eq!(code, 200, "{changed}");
    assert_eq!(changed["rule"], Value::Null);
}

/// The viewer's credentials (named for what it is).
const VERA_OR_VIEWER: (&str, &str) = VIEWER;

#[test]
fn export_sizes_merge_shared_addresses_and_changes_say_who_gains_or_loses_a_tag() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = profiles();
    let s = crate::api::installation(&sim, &profiles);
    let server = Server::start(&s, &[]);
    let admin = server.login(ADMIN);
    let carl = server.token_client(CONTRIBUTOR);
    let vera = server.token_client(VIEWER);

    let high = |p: &Profile| p.ltv >= 500.0;
    let romanian = |p: &Profile| p.country == "RO";
    let want = members(&profiles, &[&high, &romanian]);
    let both = want.values().filter(|b| b[0] && b[1]).count();
    let in_high = want.values().filter(|b| b[0]).count();
    let in_ro = want.values().filter(|b| b[1]).count();
    let profiles_in_any = profiles.iter().filter(|p| high(p) || romanian(p)).count();
    let sum_of_counts = profiles.iter().filter(|p| high(p)).count()
        + profiles.iter().filter(|p| romanian(p)).count();
    assert!(
        sum_of_counts > want.len(),
        "the fixture has overlaps and twins"
    );

    let body = json!({"segments": ["high_value", "romania"], "email_field": "email", "max_profiles": want.len()});
    for who in [&carl, &vera] {
        let (code, sizes) = who.post("/api/export-sizes", body.clone());
        assert_eq!(code, 200, "{sizes}");
        assert_eq!(sizes["members"], want.len(), "{sizes}");
        assert_eq!(sizes["profiles"], profiles_in_any);
        assert_eq!(sizes["refused"], 1, "the profile without an address");
        assert_eq!(sizes["segments"][0]["segment"], "high_value");
        assert_eq!(sizes["segments"][0]["members"], in_high);
        assert_eq!(sizes["segments"][1]["members"], in_ro);
        assert_eq!(
            sizes["overlaps"],
            json!([{"a": "high_value", "b": "romania", "members": both}])
        );
        assert_eq!(sizes["over_limit"], false);
    }
    let (_, sizes) = carl.post(
        "/api/export-sizes",
        json!({"segments": ["high_value", "romania"], "email_field": "email", "max_profiles": want.len() - 1}),
    );
    assert_eq!(sizes["over_limit"], true, "{sizes}");
    let (code, e) = carl.post(
        "/api/export-sizes",
        json!({"segments": ["high_value", "nope"], "email_field": "email"}),
    );
    assert_eq!(code, 404, "{e}");

    // An export uses both segments; changing "romania" to France says, for that export, how
    // many members would gain and lose the tag "romania".
    let (code, c) = admin.post(
        "/api/connections",
        json!({
            "name": CONNECTION, "display_name": "Mailchimp (simulator)", "api_key": sim.key,
            "base_url": sim.api_url(), "accept_privacy_terms": true,
            "share_with_contributors": true
        }),
    );
    assert_eq!(code, 201, "{c}");
    let (code, e) = carl.post("/api/exports", export_body(EXPORT, &list));
    assert_eq!(code, 201, "{e}");
    let french = |p: &Profile| p.country == "FR";
    let change = members(&profiles, &[&high, &romanian, &french]);
    let gain = change.values().filter(|b| !b[1] && b[2]).count();
    let lose = change.values().filter(|b| b[1] && !b[2]).count();
    assert!(gain > 0 && lose > 0);
    let (code, draft) = carl.post(
        "/api/segment-preview",
        json!({"segment": "romania", "rule": {"condition": {"column": "country", "op": "is", "value": "FR"}}}),
    );
    assert_eq!(code, 200, "{draft}");
    assert_eq!(
        draft["tag_changes"],
        json!([{"export": EXPORT, "tag": "romania", "gain": gain, "lose": lose}])
    );
}

#[test]
fn apply_takes_rules_and_dump_writes_them_back() {
    let sim = Sim::start();
    let profiles = profiles();
    let s = Session::new(&sim);
    s.import(&profiles);
    let file = s.path("segsync.toml");
    std::fs::write(
        &file,
        r#"
[[segment]]
name = "ro_high"
rule = { all = [
  { condition = { column = "country", op = "one_of", value = ["RO"] } },
  { condition = { column = "lifetime_value", op = "gte", value = 500 } },
] }

[[segment]]
name = "recent"
rule = { condition = { column = "updated_at", op = "in_last", value = { amount = 30, unit = "years" } } }
"#,
    )
    .unwrap();
    let out = s.ok(&["apply", file.to_str().unwrap()]);
    let ro_high = profiles
        .iter()
        .filter(|p| p.country == "RO" && p.ltv >= 500.0)
        .count();
    assert!(
        out.text().contains(&format!("{ro_high} profiles match")),
        "{}",
        out.text()
    );
    // Applying again changes nothing.
    let again = s.ok(&["apply", file.to_str().unwrap()]);
    assert!(!again.text().contains("profiles match"), "{}", again.text());

    // A rule with a mistake is refused with its place in the file, and nothing is applied.
    std::fs::write(
        &file,
        "[[segment]]\nname = \"bad\"\nrule = { condition = { column = \"country\", op = \"gt\", value = 1 } }\n",
    )
    .unwrap();
    let refused = s.expect(2, &["apply", file.to_str().unwrap()]);
    assert!(
        refused.text().contains("segsync.toml:3")
            && refused
                .text()
                .contains("\"gt\" does not apply to a text column"),
        "{}",
        refused.text()
    );

    // The dump writes the rule back, and applying the dump changes nothing.
    let dumped = s.ok(&["dump"]).stdout;
    assert!(dumped.contains("rule = { \"all\" = ["), "{dumped}");
    let back = s.path("dumped.toml");
    std::fs::write(&back, &dumped).unwrap();
    let again = s.ok(&["apply", back.to_str().unwrap()]);
    assert!(!again.text().contains("profiles match"), "{}", again.text());
}
