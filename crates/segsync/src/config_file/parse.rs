//! Reading the TOML into the model: the syntax first, then each table on its own, so that
//! one run lists every mistake of form, each with its place.

use serde::de::DeserializeOwned;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

use super::model::ConfigFile;
use super::source::{sort_problems, Problem, Source};

/// Parses a file. Syntax errors are all reported (the parser recovers); then every object is
/// read on its own, so that a mistake in one does not hide the mistakes of the others.
pub fn parse(source: Source) -> Result<ConfigFile, Vec<Problem>> {
    let text = source.text.clone();
    let (root, errors) = toml::de::DeTable::parse_recoverable(&text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| source.problem(e.span(), e.message()))
            .collect());
    }
    let mut problems = Vec::new();
    let mut connections = Vec::new();
    let mut segments = Vec::new();
    let mut sources = Vec::new();
    let mut exports = Vec::new();
    for (key, value) in root.into_inner() {
        match key.get_ref().as_ref() {
            "connection" => read_tables(&source, "connection", value, &mut connections, &mut problems),
            "segment" => read_tables(&source, "segment", value, &mut segments, &mut problems),
            "source" => read_tables(&source, "source", value, &mut sources, &mut problems),
            "export" => read_tables(&source, "export", value, &mut exports, &mut problems),
            other => problems.push(source.problem(
                Some(key.span()),
                format!(
                    "unknown key `{other}`: a file holds [[connection]], [[source]], [[segment]] and [[export]] tables"
                ),
            )),
        }
    }
    if !problems.is_empty() {
        sort_problems(&mut problems);
        return Err(problems);
    }
    Ok(ConfigFile {
        source,
        connections,
        sources,
        segments,
        exports,
    })
}

fn read_tables<T: DeserializeOwned>(
    source: &Source,
    what: &str,
    value: Spanned<DeValue<'_>>,
    out: &mut Vec<T>,
    problems: &mut Vec<Problem>,
) {
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => {
            for item in items {
                let item_span = item.span();
                if !item.get_ref().is_table() {
                    problems.push(source.problem(
                        Some(item_span),
                        format!("each {what} is a table: write [[{what}]] and its keys below it"),
                    ));
                    continue;
                }
                // Named in messages when its name can be read, whatever else is wrong.
                let named = item
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == "name"))
                    .and_then(|(_, v)| v.get_ref().as_str())
                    .map(|n| format!("{what} \"{n}\""))
                    .unwrap_or_else(|| what.to_string());
                match T::deserialize(ValueDeserializer::from(item)) {
                    Ok(t) => out.push(t),
                    Err(e) => problems.push(source.problem(
                        e.span().or(Some(item_span)),
                        format!("{named}: {}", e.message()),
                    )),
                }
            }
        }
        _ => problems.push(source.problem(
            Some(span),
            format!("write [[{what}]] (double brackets: there may be several), not [{what}]"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::config_file::testkit::{messages, plan_of};
    use crate::config_file::{Installation, Options};

    #[test]
    fn errors_say_file_line_and_column() {
        let text = "[[segment]]\nname = \"a\"\nwher = \"x > 1\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with("segsync.toml:3:1: segment \"a\": unknown field `wher`"),
            "{m:?}"
        );

        // Every object is read: two mistakes in two objects are both reported.
        let text = "[[segment]]\nname = \"a\"\nwhere = 1\n\n[[connection]]\nname = \"c\"\napi_key = \"x\"\n[nope]\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].starts_with("segsync.toml:3:9: segment \"a\": invalid type"),
            "{m:?}"
        );
        assert!(
            m[1].starts_with("segsync.toml:7:1: connection \"c\": unknown field `api_key`"),
            "{m:?}"
        );
        assert!(
            m[2].starts_with("segsync.toml:8:2: unknown key `nope`"),
            "{m:?}"
        );

        // Syntax.
        let m = messages(plan_of(
            "[[segment]\nname = 1",
            &Installation::default(),
            Options::default(),
        ));
        assert!(m[0].starts_with("segsync.toml:1:"), "{m:?}");

        // A single table where an array of tables belongs.
        let m = messages(plan_of(
            "[segment]\nname = \"a\"\nwhere = \"1\"\n",
            &Installation::default(),
            Options::default(),
        ));
        assert!(m[0].contains("write [[segment]]"), "{m:?}");
    }
}
