//! Suppression lists and remembered refusals: who may read and edit them, how entries are
//! checked (addresses normalised as the engine normalises members' addresses), and the
//! audit entries (which name the kind of entry, never the address).
//!
//! Rules: the installation's list is edited by admins; an export's list by whoever may
//! manage the export (contributors, on connections shared with them); entries and refusals
//! are personal data, so viewers see counts only.

use segsync_core::check_email;

use super::{audit, check_export_access, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::state::{RefusalRecord, Role, StateStore, Suppression, SuppressionKind};

/// The longest profile key or note accepted.
const MAX_TEXT: usize = 500;

/// An entry to add to a list.
#[derive(Clone, Debug)]
pub struct SuppressionInput {
    pub kind: SuppressionKind,
    pub value: String,
    pub note: String,
}

/// What an import of many entries did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportedSuppressions {
    pub added: u64,
    /// Entries on the list already.
    pub already: u64,
    /// Lines refused, each with its line number and why.
    pub refused: Vec<String>,
}

fn target(export: Option<&str>) -> String {
    export.map_or_else(|| "installation".to_string(), str::to_string)
}

/// Refuses `actor` the list of `export` (the installation's when none) for `what`: editing
/// (`edit`) or reading its entries.
fn check_list(state: &StateStore, actor: &Actor, export: Option<&str>, edit: bool) -> OpResult<()> {
    match export {
        None if edit => require(
            actor,
            Role::Admin,
            "editing the installation's suppression list",
        ),
        None => require(
            actor,
            Role::Contributor,
            "reading suppressed addresses and keys",
        ),
        Some(name) => {
            let what = if edit {
                "editing an export's suppression list"
            } else {
                "reading suppressed addresses and keys"
            };
            require(actor, Role::Contributor, what)?;
            let e = state.export(name)?;
            check_export_access(state, actor, &e)
        }
    }
}

/// The value of an entry as it is kept: an address checked and normalised, a key trimmed.
pub fn normalized_value(kind: SuppressionKind, raw: &str) -> OpResult<String> {
    let bad = |why: String| Err(OpError::Invalid(why));
    match kind {
        SuppressionKind::Email => check_email(raw).map_err(OpError::Invalid),
        SuppressionKind::Key => {
            let key = raw.trim();
            if key.is_empty() {
                return bad("a profile key cannot be empty".into());
            }
            check_text("profile key", key)?;
            Ok(key.to_string())
        }
    }
}

fn check_text(what: &str, text: &str) -> OpResult<()> {
    if text.chars().any(char::is_control) {
        return Err(OpError::Invalid(format!(
            "the {what} holds a control character"
        )));
    }
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(OpError::Invalid(format!(
            "the {what} is {n} characters long (at most {MAX_TEXT})"
        )));
    }
    Ok(())
}

fn entry(actor: &Actor, export: Option<&str>, input: &SuppressionInput) -> OpResult<Suppression> {
    check_text("note", &input.note)?;
    Ok(Suppression {
        export: export.map(str::to_string),
        kind: input.kind,
        value: normalized_value(input.kind, &input.value)?,
        note: input.note.trim().to_string(),
        added_by: actor.name.clone(),
        added_at: crate::state::now(),
    })
}

/// Adds an entry to the list of `export` (the installation's when none).
pub fn add_suppression(
    app: &App,
    actor: &Actor,
    export: Option<&str>,
    input: &SuppressionInput,
) -> OpResult<Suppression> {
    let state = app.state()?;
    check_list(&state, actor, export, true)?;
    let s = entry(actor, export, input)?;
    state.add_suppression(&s)?;
    audit(
        &state,
        actor,
        "suppression.add",
        &target(export),
        s.kind.as_str(),
    )?;
    Ok(s)
}

/// Takes an entry off the list of `export` (the installation's when none).
pub fn remove_suppression(
    app: &App,
    actor: &Actor,
    export: Option<&str>,
    kind: SuppressionKind,
    value: &str,
) -> OpResult<()> {
    let state = app.state()?;
    check_list(&state, actor, export, true)?;
    // As kept (trimmed, an address lower-cased); what never was one is simply not listed.
    let value = match kind {
        SuppressionKind::Email => value.trim().to_lowercase(),
        SuppressionKind::Key => value.trim().to_string(),
    };
    state.remove_suppression(export, kind, &value)?;
    audit(
        &state,
        actor,
        "suppression.remove",
        &target(export),
        kind.as_str(),
    )
}

/// The entries of the list of `export` (the installation's when none).
pub fn suppressions(app: &App, actor: &Actor, export: Option<&str>) -> OpResult<Vec<Suppression>> {
    let state = app.state()?;
    check_list(&state, actor, export, false)?;
    Ok(state.suppressions(export)?)
}

/// How many entries the list of `export` holds (anyone who may read the export may know).
pub fn suppression_count(app: &App, export: Option<&str>) -> OpResult<usize> {
    let state = app.state()?;
    if let Some(name) = export {
        state.export(name)?;
    }
    Ok(state.suppressions(export)?.len())
}

/// Adds many entries at once: one address per line, or a CSV file with an `email` column
/// (its other columns ignored). Bad lines are reported with their numbers; the others added.
pub fn import_suppressions(
    app: &App,
    actor: &Actor,
    export: Option<&str>,
    text: &str,
    note: &str,
) -> OpResult<ImportedSuppressions> {
    let state = app.state()?;
    check_list(&state, actor, export, true)?;
    let mut report = ImportedSuppressions::default();
    for (line, value) in addresses_of(text)? {
        let input = SuppressionInput {
            kind: SuppressionKind::Email,
            value,
            note: note.to_string(),
        };
        let added = entry(actor, export, &input).and_then(|s| Ok(state.add_suppression(&s)?));
        match added {
            Ok(()) => report.added += 1,
            Err(OpError::Conflict(_)) => report.already += 1,
            Err(e) => report.refused.push(format!("line {line}: {e}")),
        }
    }
    let detail = format!("{} addresses imported", report.added);
    audit(
        &state,
        actor,
        "suppression.import",
        &target(export),
        &detail,
    )?;
    Ok(report)
}

/// The addresses of an import, with their line numbers: the `email` column of a CSV file
/// (a first line naming columns, one of them `email`), else every non-empty line.
fn addresses_of(text: &str) -> OpResult<Vec<(usize, String)>> {
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let first = text.lines().next().unwrap_or_default();
    let delimiter = [',', ';', '\t'].into_iter().find(|d| first.contains(*d));
    let Some(delimiter) = delimiter else {
        return Ok(lines
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| (n, l.trim().to_string()))
            .collect());
    };
    let header: Vec<String> = first
        .split(delimiter)
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let column = header.iter().position(|c| c == "email").ok_or_else(|| {
        OpError::Invalid(format!(
            "line 1: a file with several columns needs one named \"email\" (it has: {})",
            header.join(", ")
        ))
    })?;
    lines.next();
    Ok(lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            let cell = l.split(delimiter).nth(column).unwrap_or_default();
            (n, cell.trim().trim_matches('"').to_string())
        })
        .collect())
}

/// The refusals remembered for `export`.
pub fn refusals(app: &App, actor: &Actor, export: &str) -> OpResult<Vec<RefusalRecord>> {
    let state = app.state()?;
    check_list(&state, actor, Some(export), false)?;
    Ok(state.refusals(export)?)
}

/// How many refusals are remembered for `export`.
pub fn refusal_count(app: &App, export: &str) -> OpResult<usize> {
    let state = app.state()?;
    state.export(export)?;
    Ok(state.refusals(export)?.len())
}

/// Forgets a remembered refusal: the next run sends the address again.
pub fn forget_refusal(app: &App, actor: &Actor, export: &str, email: &str) -> OpResult<()> {
    let state = app.state()?;
    check_list(&state, actor, Some(export), true)?;
    forget(&state, export, email)?;
    audit(&state, actor, "refusal.forget", export, "")
}

fn forget(state: &StateStore, export: &str, email: &str) -> OpResult<()> {
    let email = email.trim().to_lowercase();
    if state.forget_refusals(export, std::slice::from_ref(&email))? == 0 {
        return Err(no_refusal(export, &email));
    }
    Ok(())
}

fn no_refusal(export: &str, email: &str) -> OpError {
    OpError::NotFound(format!(
        "export \"{export}\" remembers no refusal of {email:?} (see `segsync refusals list --export {export}`)"
    ))
}

/// Moves a remembered refusal to the export's suppression list: never sent again, even
/// when its profile changes.
pub fn suppress_refusal(
    app: &App,
    actor: &Actor,
    export: &str,
    email: &str,
    note: &str,
) -> OpResult<Suppression> {
    let state = app.state()?;
    check_list(&state, actor, Some(export), true)?;
    let email = email.trim().to_lowercase();
    let refusal = state
        .refusals(export)?
        .into_iter()
        .find(|r| r.email == email)
        .ok_or_else(|| no_refusal(export, &email))?;
    let note = match note.trim() {
        "" => format!("refused by Mailchimp: {}", refusal.reason),
        note => note.to_string(),
    };
    let input = SuppressionInput {
        kind: SuppressionKind::Email,
        value: email,
        note: note.chars().take(MAX_TEXT).collect(),
    };
    let s = entry(actor, Some(export), &input)?;
    forget(&state, export, &s.value)?;
    match state.add_suppression(&s) {
        Ok(()) | Err(crate::state::StateError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    audit(&state, actor, "refusal.suppress", export, "email")?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::addresses_of;

    #[test]
    fn an_import_reads_lines_or_the_email_column_of_a_csv() {
        let lines = addresses_of("a@x.io\n\n B@x.io \n").unwrap();
        assert_eq!(lines, vec![(1, "a@x.io".into()), (3, "B@x.io".into())]);
        let csv = addresses_of("\u{feff}id;\"Email\"\r\n1;a@x.io\r\n2;\"b@x.io\"\r\n").unwrap();
        assert_eq!(csv, vec![(2, "a@x.io".into()), (3, "b@x.io".into())]);
        let e = addresses_of("id,name\n1,Ana\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("\"email\""), "{e}");
    }
}
