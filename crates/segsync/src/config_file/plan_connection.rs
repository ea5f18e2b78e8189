//! How a `[[connection]]` of the file becomes a step. A new connection needs consent and a
//! secret that reads and checks well; an existing one changes only in what the file says,
//! and its credential and API root only with `--rotate-secrets`.

use std::ops::Range;

use secrecy::{ExposeSecret, SecretString};

use crate::ops::{self, ConnectionView};
use crate::PRIVACY_STATEMENT;

use super::model::ConnectionSpec;
use super::plan::{step, Action, Checks, Installation, Kind, Op, Options, Problems, Step};
use super::secrets::{check_credential, SecretSource};

pub(super) fn plan_connection(
    c: &ConnectionSpec,
    inst: &Installation,
    options: Options,
    checks: &Checks<'_>,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let checked = check_keys(c, p)?;
    match inst
        .connections
        .iter()
        .find(|x| &x.name == c.name.get_ref())
    {
        None => plan_new(checked, p),
        Some(current) => plan_existing(checked, current, options, checks, p),
    }
}

/// A connection of the file whose keys were checked on their own, before it is compared
/// with the installation.
struct Checked<'c> {
    spec: &'c ConnectionSpec,
    /// `connection "NAME"`, as messages about it begin.
    what: String,
    /// The API root, normalised, and where the file says it.
    base_url: Option<(String, Range<usize>)>,
    /// The secret source, and where the file names it.
    secret_source: Option<(SecretSource, Range<usize>)>,
    /// False once a problem was found that lets the other checks go on: the connection
    /// gets no step, but the rest of its problems are still listed.
    ok: bool,
}

/// Checks what needs no installation: the names, the API root, the secret source. `None`
/// when a problem leaves nothing more worth checking.
fn check_keys<'c>(c: &'c ConnectionSpec, p: &mut Problems<'_>) -> Option<Checked<'c>> {
    let name = c.name.get_ref();
    let span = c.name.span();
    let what = format!("connection \"{name}\"");
    let mut ok = true;
    if let Err(e) = ops::check_name("connection", name) {
        p.op(span, "connection", e);
        return None;
    }
    if let Some(d) = &c.display_name {
        if let Err(e) = ops::check_name("display", d.get_ref()) {
            p.op(d.span(), &what, e);
            ok = false;
        }
    }
    if let Some(u) = &c.export_user {
        if let Err(e) = ops::check_name("export user", u.get_ref()) {
            p.op(u.span(), &what, e);
            ok = false;
        }
    }
    if let Some(b) = &c.slot_budget {
        if let Err(e) = crate::budget::check_slot_budget(*b.get_ref()) {
            p.at(b.span(), format!("{what}: {e}"));
            ok = false;
        }
    }
    let base_url = match &c.base_url {
        Some(u) => match url::Url::parse(u.get_ref().trim()) {
            Ok(parsed) => Some((parsed.to_string(), u.span())),
            Err(e) => {
                p.at(
                    u.span(),
                    format!("{what}: base_url \"{}\" is not a URL: {e}", u.get_ref()),
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let secret_source = match c.secret_source(p.source) {
        Ok(s) => s,
        Err(problem) => {
            p.list.push(problem);
            return None;
        }
    };
    Some(Checked {
        spec: c,
        what,
        base_url,
        secret_source,
        ok,
    })
}

/// Reads and checks the secret, locally; a problem at the source's place otherwise.
fn read_secret(
    p: &mut Problems<'_>,
    what: &str,
    base_url: Option<&(String, Range<usize>)>,
    (s, sspan): &(SecretSource, Range<usize>),
) -> Option<SecretString> {
    let secret = match s.read() {
        Ok(v) => v,
        Err(e) => {
            p.at(sspan.clone(), format!("{what}: {e}"));
            return None;
        }
    };
    if let Err(e) = check_credential(&secret, s.kind(), base_url.map(|b| b.0.as_str())) {
        let at = match (base_url, e.contains("base URL")) {
            (Some((_, bspan)), true) => bspan.clone(),
            _ => sspan.clone(),
        };
        p.at(at, format!("{what}: {e}"));
        return None;
    }
    Some(secret)
}

/// A new connection: consent, a secret, checked before anything is sent.
fn plan_new(checked: Checked<'_>, p: &mut Problems<'_>) -> Option<Step> {
    let Checked {
        spec: c,
        what,
        base_url,
        secret_source,
        mut ok,
    } = checked;
    let name = c.name.get_ref();
    let span = c.name.span();
    if !c
        .accept_privacy_terms
        .as_ref()
        .is_some_and(|a| *a.get_ref())
    {
        let at = c
            .accept_privacy_terms
            .as_ref()
            .map(|a| a.span())
            .unwrap_or(span.clone());
        p.at(
            at,
            format!(
                "{what} is new: creating it needs accept_privacy_terms = true, your agreement to this statement: {PRIVACY_STATEMENT}"
            ),
        );
        ok = false;
    }
    let Some(source) = secret_source else {
        p.at(
            span,
            format!(
                "{what} is new: name where its secret comes from (api_key_env, api_key_file or oauth_token_env)"
            ),
        );
        return None;
    };
    let secret = read_secret(p, &what, base_url.as_ref(), &source)?;
    if !ok {
        return None;
    }
    let mut st = step(
        Kind::Connection,
        name,
        Action::Create,
        Op::AddConnection(Box::new(ops::NewConnection {
            name: name.clone(),
            display_name: c.display_name.as_ref().map(|d| d.get_ref().clone()),
            credential: ops::CredentialInput {
                secret,
                kind: source.0.kind(),
            },
            base_url: base_url.map(|b| b.0),
            accept_privacy_terms: true,
            share_with_contributors: c.share_with_contributors.unwrap_or(false),
            export_user: c.export_user.as_ref().map(|u| u.get_ref().clone()),
            slot_budget: c.slot_budget.as_ref().map(|b| *b.get_ref()),
        })),
    );
    st.notes
        .push(format!("secret from {}", source.0.describe()));
    st.blame = Some(source.1);
    Some(st)
}

/// An existing connection changes only in what the file says.
fn plan_existing(
    checked: Checked<'_>,
    current: &ConnectionView,
    options: Options,
    checks: &Checks<'_>,
    p: &mut Problems<'_>,
) -> Option<Step> {
    let Checked {
        spec: c,
        what,
        base_url,
        secret_source,
        ok,
    } = checked;
    let name = c.name.get_ref();
    let (mut change, mut changes) = described_changes(c, current);
    let mut notes = Vec::new();
    let base_url_changes = base_url
        .as_ref()
        .is_some_and(|(b, _)| *b != current.base_url);
    let mut blame = None;
    match (&secret_source, options.rotate_secrets) {
        (Some(source), true) => {
            let secret = read_secret(p, &what, base_url.as_ref(), source)?;
            let same = (checks.stored_secret)(name)
                .is_some_and(|old| old.expose_secret() == secret.expose_secret())
                && source.0.kind().as_str() == current.credential_kind;
            if !same || base_url_changes {
                if base_url_changes {
                    changes.push("base_url".to_string());
                }
                if !same {
                    changes.push("credential".to_string());
                }
                change.base_url = base_url.as_ref().map(|b| b.0.clone());
                change.credential = Some(ops::CredentialInput {
                    secret,
                    kind: source.0.kind(),
                });
                notes.push(format!("secret from {}", source.0.describe()));
                blame = Some(source.1.clone());
            } else {
                notes.push(format!(
                    "secret from {} is the one stored",
                    source.0.describe()
                ));
            }
        }
        (Some(source), false) => {
            notes.push(format!(
                "secret kept: --rotate-secrets replaces it from {}",
                source.0.describe()
            ));
        }
        (None, _) => notes.push("secret kept".into()),
    }
    if base_url_changes && change.credential.is_none() {
        let (b, bspan) = base_url.as_ref().expect("base_url_changes");
        p.at(
            bspan.clone(),
            format!(
                "{what}: base_url {b} differs from the installation's ({}): the API root changes only with a new credential (name its secret source and use --rotate-secrets)",
                current.base_url
            ),
        );
        return None;
    }
    if !ok {
        return None;
    }
    let (action, op) = if changes.is_empty() {
        (Action::Unchanged, Op::None)
    } else {
        (Action::Update, Op::UpdateConnection(Box::new(change)))
    };
    Some(Step {
        kind: Kind::Connection,
        name: name.clone(),
        action,
        changes,
        notes,
        op,
        blame,
    })
}

/// What the file says of an existing connection that differs from it, its secret and API
/// root aside.
fn described_changes(
    c: &ConnectionSpec,
    current: &ConnectionView,
) -> (ops::ConnectionChange, Vec<String>) {
    let mut change = ops::ConnectionChange::default();
    let mut changes = Vec::new();
    if let Some(d) = &c.display_name {
        if d.get_ref() != &current.display_name {
            change.display_name = Some(d.get_ref().clone());
            changes.push("display_name".to_string());
        }
    }
    if let Some(s) = c.share_with_contributors {
        if s != current.shared_with_contributors {
            change.share_with_contributors = Some(s);
            changes.push("share_with_contributors".to_string());
        }
    }
    if let Some(u) = &c.export_user {
        if Some(u.get_ref()) != current.export_user.as_ref() {
            change.export_user = Some(u.get_ref().clone());
            changes.push("export_user".to_string());
        }
    }
    if let Some(b) = &c.slot_budget {
        if *b.get_ref() != current.slot_budget {
            change.slot_budget = Some(*b.get_ref());
            changes.push("slot_budget".to_string());
        }
    }
    (change, changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::testkit::{installation, messages, no_checks, plan_of};
    use crate::config_file::{parse, plan, Source};

    #[test]
    fn existing_connections_change_only_in_what_the_file_says() {
        let inst = installation();
        let text = "[[connection]]\nname = \"mailchimp\"\napi_key_env = \"SEGSYNC_TEST_NEVER_SET_1\"\n[[segment]]\nname = \"romania\"\nwhere = \"country = 'RO'\"\n";
        let plan = plan_of(text, &inst, Options::default()).unwrap();
        let c = &plan.steps[0];
        assert_eq!((c.kind, c.action), (Kind::Connection, Action::Unchanged));
        assert_eq!(
            c.notes,
            ["secret kept: --rotate-secrets replaces it from api_key_env SEGSYNC_TEST_NEVER_SET_1"]
        );
        // Rotating needs the secret: the variable is not set.
        let m = messages(plan_of(
            text,
            &inst,
            Options {
                rotate_secrets: true,
                prune: false,
            },
        ));
        assert_eq!(
            m,
            ["segsync.toml:3:15: connection \"mailchimp\": api_key_env SEGSYNC_TEST_NEVER_SET_1: the variable is not set"]
        );
        // A new API root needs a new credential.
        let text = "[[connection]]\nname = \"mailchimp\"\nbase_url = \"https://us7.api.mailchimp.com/3.0\"\n";
        let m = messages(plan_of(text, &inst, Options::default()));
        assert!(
            m[0].contains("the API root changes only with a new credential"),
            "{m:?}"
        );
        // Prune never removes connections; it needs a file that declares something.
        let text = "[[connection]]\nname = \"mailchimp\"\n";
        let m = messages(plan_of(
            text,
            &inst,
            Options {
                prune: true,
                rotate_secrets: false,
            },
        ));
        assert!(
            m[0].contains("would remove every export and segment"),
            "{m:?}"
        );
    }

    #[test]
    fn a_new_connection_needs_consent_and_a_readable_well_formed_secret() {
        let text = "[[connection]]\nname = \"new\"\napi_key_file = \"missing-key\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with("segsync.toml:2:8: connection \"new\" is new: creating it needs accept_privacy_terms = true"), "{m:?}");
        assert!(m[1].starts_with("segsync.toml:3:16: connection \"new\": api_key_file missing-key (/nonexistent/missing-key): cannot read it"), "{m:?}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "not-a-key\n").unwrap();
        let text =
            "[[connection]]\nname = \"new\"\napi_key_file = \"key\"\naccept_privacy_terms = true\n";
        let file = parse(Source::new("f.toml", dir.path(), text)).unwrap();
        let (pred, secret) = no_checks();
        let m = plan(
            &file,
            &Installation::default(),
            Options::default(),
            &Checks {
                predicate: &pred,
                stored_secret: &secret,
            },
        )
        .err()
        .unwrap();
        assert!(
            m[0].to_string().contains("invalid Mailchimp credential"),
            "{m:?}"
        );
        assert!(
            !m[0].to_string().contains("not-a-key"),
            "the secret is never echoed: {m:?}"
        );

        let text = "[[connection]]\nname = \"new\"\napi_key_env = \"A\"\noauth_token_env = \"B\"\n";
        let m = messages(plan_of(text, &Installation::default(), Options::default()));
        assert!(
            m[0].starts_with("segsync.toml:4:19:") && m[0].contains("give one secret source"),
            "{m:?}"
        );
    }
}
