//! Where a connection's secret comes from: an environment variable or a file that the
//! configuration names, never the configuration itself. A secret is read only when a step
//! needs it, and checked as a Mailchimp credential without being sent anywhere.

use std::ops::Range;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::mailchimp::{ClientConfig, CredentialKind};

use super::model::ConnectionSpec;
use super::source::{Problem, Source};

/// Where a connection's secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable holding an API key (`kind` api_key) or an OAuth token (oauth).
    Env { var: String, kind: CredentialKind },
    /// A file holding an API key; `path` as written, `resolved` from the file's folder.
    File { path: String, resolved: PathBuf },
}

impl SecretSource {
    pub fn kind(&self) -> CredentialKind {
        match self {
            SecretSource::Env { kind, .. } => *kind,
            SecretSource::File { .. } => CredentialKind::ApiKey,
        }
    }

    /// As the file says it: `api_key_env MAILCHIMP_API_KEY`.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env { var, kind } => format!(
                "{} {var}",
                if *kind == CredentialKind::OAuth {
                    "oauth_token_env"
                } else {
                    "api_key_env"
                }
            ),
            SecretSource::File { path, .. } => format!("api_key_file {path}"),
        }
    }

    /// Reads the secret (trimmed). The error never contains it.
    pub fn read(&self) -> Result<SecretString, String> {
        let text = match self {
            SecretSource::Env { var, .. } => match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(format!("{}: the variable is not set", self.describe()))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(format!(
                        "{}: the variable is not valid UTF-8",
                        self.describe()
                    ))
                }
            },
            SecretSource::File { path, resolved } => {
                std::fs::read_to_string(resolved).map_err(|e| {
                    if Path::new(path).is_absolute() {
                        format!("api_key_file {path}: cannot read it: {e}")
                    } else {
                        format!(
                            "api_key_file {path} ({}): cannot read it: {e}",
                            resolved.display()
                        )
                    }
                })?
            }
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!("{}: it is empty", self.describe()));
        }
        Ok(SecretString::from(trimmed.to_string()))
    }
}

impl ConnectionSpec {
    /// The secret source the file names, if any (a problem if it names several).
    pub(super) fn secret_source(
        &self,
        source: &Source,
    ) -> Result<Option<(SecretSource, Range<usize>)>, Problem> {
        let mut found = Vec::new();
        if let Some(v) = &self.api_key_env {
            found.push((
                SecretSource::Env {
                    var: v.get_ref().clone(),
                    kind: CredentialKind::ApiKey,
                },
                v.span(),
            ));
        }
        if let Some(v) = &self.api_key_file {
            found.push((
                SecretSource::File {
                    path: v.get_ref().clone(),
                    resolved: source.dir.join(v.get_ref()),
                },
                v.span(),
            ));
        }
        if let Some(v) = &self.oauth_token_env {
            found.push((
                SecretSource::Env {
                    var: v.get_ref().clone(),
                    kind: CredentialKind::OAuth,
                },
                v.span(),
            ));
        }
        if found.len() > 1 {
            return Err(source.problem(
                Some(found[1].1.clone()),
                format!(
                    "connection \"{}\": give one secret source (api_key_env, api_key_file or oauth_token_env), not {}",
                    self.name.get_ref(),
                    found.len()
                ),
            ));
        }
        for (s, span) in &found {
            let empty = match s {
                SecretSource::Env { var, .. } => var.trim().is_empty(),
                SecretSource::File { path, .. } => path.trim().is_empty(),
            };
            if empty {
                return Err(source.problem(
                    Some(span.clone()),
                    format!(
                        "connection \"{}\": the secret source is empty: name an environment variable or a file",
                        self.name.get_ref()
                    ),
                ));
            }
        }
        Ok(found.pop())
    }
}

/// Checks a secret as a credential of its kind, and the API root it would be used with,
/// without sending anything. The message never contains the secret. Where the API root
/// points (a public address, unless the installation allows private ones) is checked when a
/// client is built for it, with the installation's setting.
pub fn check_credential(
    secret: &SecretString,
    kind: CredentialKind,
    base_url: Option<&str>,
) -> Result<(), String> {
    let credential = kind.credential(secret.clone()).map_err(|e| e.to_string())?;
    let mut config = ClientConfig::new(credential);
    config.allow_private_targets = true;
    if let Some(u) = base_url {
        config.base_url =
            url::Url::parse(u).map_err(|e| format!("base_url \"{u}\" is not a URL: {e}"))?;
    }
    config.validate().map_err(|e| e.to_string())
}

impl super::model::SourceSpec {
    /// The URL of a `[[source]]`: read from the environment variable `url = "env:VAR"` names,
    /// or written in the file when it holds no password. A URL with a password in the file
    /// is refused (a file lives in git): the message never shows the password.
    pub fn read_url(&self) -> Result<SecretString, String> {
        let name = self.name.get_ref();
        let given = self.url.get_ref().trim();
        if let Some(var) = given.strip_prefix("env:") {
            let var = var.trim();
            if var.is_empty() {
                return Err(format!(
                    "source \"{name}\": url = \"env:\" names no environment variable"
                ));
            }
            return match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
                Ok(_) => Err(format!("source \"{name}\": url env:{var}: it is empty")),
                Err(std::env::VarError::NotPresent) => Err(format!(
                    "source \"{name}\": url env:{var}: the variable is not set"
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                    "source \"{name}\": url env:{var}: the variable is not valid UTF-8"
                )),
            };
        }
        let shown = crate::pg::redact(given);
        if shown != given {
            return Err(format!(
                "source \"{name}\": the url {shown} holds a password, which must never be written in \
                 the file: put the URL in an environment variable and write url = \"env:VAR\""
            ));
        }
        Ok(SecretString::from(given.to_string()))
    }
}
