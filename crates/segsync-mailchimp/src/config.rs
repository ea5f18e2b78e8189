//! How to reach Mailchimp: the credential, the base URL, and the limits of the request stack
//! (in-flight cap, timeout, retry policy), validated before a client is built.
//!
//! The credential lives in a [`SecretString`] and is only exposed where the `Authorization`
//! header is built; `Debug` of every type here shows `<redacted>` in its place, and no error
//! message ever quotes it (a malformed key is described, never echoed).

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::Error;
pub use crate::retry::RetryPolicy;

/// What Mailchimp allows one user to have in flight at once; the 11th request gets 429.
pub const MAILCHIMP_MAX_IN_FLIGHT: usize = 10;

/// Mailchimp's own per-call timeout, and the official SDKs' default.
pub const MAILCHIMP_TIMEOUT: Duration = Duration::from_secs(120);

/// The kind of a stored credential, as a connection records it (`api_key` or `oauth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An API key pasted by an admin.
    ApiKey,
    /// An access token from "Authenticate with Mailchimp" (OAuth2).
    OAuth,
}

impl CredentialKind {
    /// The name stored with a connection and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::OAuth => "oauth",
        }
    }

    /// The kind a stored name means; `None` for a name no version of segsync wrote.
    pub fn parse(s: &str) -> Option<CredentialKind> {
        match s {
            "api_key" => Some(CredentialKind::ApiKey),
            "oauth" => Some(CredentialKind::OAuth),
            _ => None,
        }
    }

    /// The credential of this kind made of `secret`, checked for its form.
    pub fn credential(self, secret: impl Into<SecretString>) -> Result<Credential, Error> {
        match self {
            CredentialKind::ApiKey => Credential::api_key(secret),
            CredentialKind::OAuth => Credential::oauth_token(secret),
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential for one Mailchimp account.
#[derive(Clone)]
pub enum Credential {
    /// An API key: 32 hex characters, a dash, the data center (`...-us6`). Sent as HTTP Basic
    /// with user `segsync`.
    ApiKey {
        key: SecretString,
        /// The data center the key names (`us6`); not secret.
        data_center: String,
    },
    /// An OAuth2 access token (they never expire; a rejected one was revoked). Sent as
    /// `Authorization: Bearer`.
    OAuthToken(SecretString),
}

impl Credential {
    /// An API key, checked for Mailchimp's form. The error never contains the key.
    pub fn api_key(key: impl Into<SecretString>) -> Result<Credential, Error> {
        let key: SecretString = key.into();
        let data_center = {
            let text = key.expose_secret().trim();
            let Some((hex, dc)) = text.split_once('-') else {
                return Err(Error::invalid_key("it has no dash before the data center"));
            };
            if hex.len() != 32
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(Error::invalid_key(
                    "the part before the dash is not 32 lower-case hex characters",
                ));
            }
            if !valid_data_center(dc) {
                return Err(Error::invalid_key(
                    "the part after the dash is not a data center such as us6",
                ));
            }
            dc.to_string()
        };
        // Keep the trimmed form, so that a key pasted with a newline still authenticates.
        let trimmed = key.expose_secret().trim();
        let key = if trimmed.len() == key.expose_secret().len() {
            key
        } else {
            SecretString::from(trimmed.to_string())
        };
        Ok(Credential::ApiKey { key, data_center })
    }

    /// An OAuth2 access token (from the authorization-code flow). The error never contains it.
    pub fn oauth_token(token: impl Into<SecretString>) -> Result<Credential, Error> {
        let token: SecretString = token.into();
        let t = token.expose_secret().trim();
        if t.is_empty() {
            return Err(Error::InvalidCredential(
                "the OAuth token is empty: authenticate the connection with Mailchimp again".into(),
            ));
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::InvalidCredential(
                "the OAuth token contains spaces or control characters: copy it again".into(),
            ));
        }
        let token = if t.len() == token.expose_secret().len() {
            token
        } else {
            SecretString::from(t.to_string())
        };
        Ok(Credential::OAuthToken(token))
    }

    /// Its kind, as a connection stores it.
    pub fn kind(&self) -> CredentialKind {
        match self {
            Credential::ApiKey { .. } => CredentialKind::ApiKey,
            Credential::OAuthToken(_) => CredentialKind::OAuth,
        }
    }

    /// The data center of an API key (`us6`); OAuth tokens carry none.
    pub fn data_center(&self) -> Option<&str> {
        match self {
            Credential::ApiKey { data_center, .. } => Some(data_center),
            Credential::OAuthToken(_) => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ApiKey { data_center, .. } => f
                .debug_struct("ApiKey")
                .field("key", &format_args!("<redacted>"))
                .field("data_center", data_center)
                .finish(),
            Credential::OAuthToken(_) => f
                .debug_tuple("OAuthToken")
                .field(&format_args!("<redacted>"))
                .finish(),
        }
    }
}

fn valid_data_center(dc: &str) -> bool {
    let letters = dc.trim_end_matches(|c: char| c.is_ascii_digit());
    !letters.is_empty()
        && letters.len() < dc.len()
        && letters.chars().all(|c| c.is_ascii_lowercase())
}

/// The API root for a credential: `https://<dc>.api.mailchimp.com/3.0` for an API key (the
/// classic form every key works with), `https://api.mailchimp.com/3.0` for an OAuth token
/// (current docs: the same root for every account; the OAuth metadata's `api_endpoint` plus
/// `/3.0` works too).
pub fn default_base_url(credential: &Credential) -> Url {
    let text = match credential.data_center() {
        Some(dc) => format!("https://{dc}.api.mailchimp.com/3.0"),
        None => "https://api.mailchimp.com/3.0".to_string(),
    };
    Url::parse(&text).expect("a data center makes a valid host name")
}

/// Everything a [`Client`](super::Client) needs. Build with [`ClientConfig::new`] and change
/// fields as needed; [`Client::new`](super::Client::new) validates it.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The API root, ending in `/3.0` (the simulator: `RunningSim::api_url()`). Must be https,
    /// except on a loopback address (a local simulator), so the credential never crosses a
    /// network in clear; and a public address unless `allow_private_targets`.
    pub base_url: Url,
    /// Whether the base URL may be (or resolve to) a loopback, private or link-local address
    /// (a local simulator, a test server): off by default, so that the credential is never
    /// sent to, nor an answer read from, a machine of the internal network ([`crate::targets`]).
    pub allow_private_targets: bool,
    pub credential: Credential,
    /// Requests in flight at once (Mailchimp allows 10 per user, over all its tools; lower it
    /// when other tools share the user).
    pub max_in_flight: usize,
    /// How long one attempt may take, from sending to the last byte of the answer.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// The connection budget of the account, shared with the other clients of the account
    /// ([`crate::budget::Budgets`]); `None`: a budget of the client's own, of `max_in_flight`
    /// slots. Either way `max_in_flight` also caps this client's share.
    pub budget: Option<std::sync::Arc<crate::budget::AccountBudget>>,
}

impl ClientConfig {
    /// Mailchimp's defaults for `credential`: its default base URL, 10 in flight, 120 s
    /// timeout, the default retry policy.
    pub fn new(credential: Credential) -> ClientConfig {
        ClientConfig {
            base_url: default_base_url(&credential),
            allow_private_targets: false,
            credential,
            max_in_flight: MAILCHIMP_MAX_IN_FLIGHT,
            timeout: MAILCHIMP_TIMEOUT,
            retry: RetryPolicy::default(),
            budget: None,
        }
    }

    /// The configuration of a stored connection: its credential kind, its opened secret and
    /// its base URL. Every client segsync makes for a connection starts here.
    pub fn for_connection(
        kind: CredentialKind,
        secret: impl Into<SecretString>,
        base_url: &str,
    ) -> Result<ClientConfig, Error> {
        ClientConfig::for_credential(kind, secret, Some(base_url))
    }

    /// The configuration for a credential of `kind` being added or checked: at `base_url`,
    /// else the credential's default API root.
    pub fn for_credential(
        kind: CredentialKind,
        secret: impl Into<SecretString>,
        base_url: Option<&str>,
    ) -> Result<ClientConfig, Error> {
        let mut config = ClientConfig::new(kind.credential(secret)?);
        if let Some(u) = base_url {
            config.base_url = Url::parse(u).map_err(|e| {
                Error::InvalidConfig(format!("the Mailchimp base URL {u:?} is not a URL: {e}"))
            })?;
        }
        Ok(config)
    }

    /// Checks the settings; the message of an error says which one to fix.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let url = &self.base_url;
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return bad(format!(
                "the Mailchimp base URL {url} is not an http(s) address such as https://us6.api.mailchimp.com/3.0"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad("the Mailchimp base URL must not carry a user name or password: the credential is given separately".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return bad(format!(
                "the Mailchimp base URL {url} must not have a query or fragment"
            ));
        }
        crate::targets::check_literal(url, self.allow_private_targets)
            .map_err(|e| Error::InvalidConfig(format!("the Mailchimp base URL {url}: {e}")))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url) => {}
            "http" => {
                return bad(format!(
                    "the Mailchimp base URL {url} is plain http: use https so the credential is not sent in clear (http is accepted only on 127.0.0.1, ::1 or localhost, for the simulator)"
                ))
            }
            s => {
                return bad(format!(
                    "the Mailchimp base URL has scheme {s}: use https"
                ))
            }
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be at least 1 (Mailchimp allows 10)".into());
        }
        if self.timeout.is_zero() {
            return bad(
                "the request timeout must be longer than zero (Mailchimp's is 120 s)".into(),
            );
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1 (1 = no retry)".into());
        }
        if self.retry.base_delay > self.retry.max_delay {
            return bad("retry.base_delay must not be longer than retry.max_delay".into());
        }
        Ok(())
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef-us6";

    #[test]
    fn api_keys_are_checked_without_being_echoed() {
        let c = Credential::api_key(KEY).unwrap();
        assert_eq!(c.data_center(), Some("us6"));
        assert_eq!(
            default_base_url(&c).as_str(),
            "https://us6.api.mailchimp.com/3.0"
        );
        let c = Credential::api_key(format!("{KEY}\n")).unwrap();
        let Credential::ApiKey { key, .. } = &c else {
            panic!("an API key")
        };
        assert_eq!(key.expose_secret(), KEY);
        for bad in [
            "0123456789abcdef0123456789abcde-us6",
            "0123456789ABCDEF0123456789abcdef-us6",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef-6",
            "0123456789abcdef0123456789abcdef-us",
            "",
        ] {
            let e = Credential::api_key(bad).unwrap_err();
            assert!(e.is_permanent());
            if !bad.is_empty() {
                assert!(!e.to_string().contains(bad), "{e}");
                assert!(!e.to_string().contains(&bad[..16]), "{e}");
            }
        }
    }

    #[test]
    fn debug_redacts() {
        let c = Credential::api_key(KEY).unwrap();
        let d = format!("{c:?} {:?}", ClientConfig::new(c.clone()));
        assert!(!d.contains(&KEY[..32]), "{d}");
        assert!(d.contains("<redacted>"));
        let t = Credential::oauth_token("tok_abcdefghijklmnop").unwrap();
        assert!(!format!("{t:?}").contains("abcdefghijklmnop"));
        assert_eq!(
            default_base_url(&t).as_str(),
            "https://api.mailchimp.com/3.0"
        );
        assert!(Credential::oauth_token("  ").is_err());
    }

    #[test]
    fn config_checks() {
        let c = Credential::api_key(KEY).unwrap();
        let ok = ClientConfig::new(c);
        ok.validate().unwrap();
        let with = |f: &dyn Fn(&mut ClientConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate()
        };
        let local = |u: &'static str| {
            move |c: &mut ClientConfig| {
                c.base_url = u.parse().unwrap();
                c.allow_private_targets = true;
            }
        };
        with(&local("http://127.0.0.1:8080/3.0")).unwrap();
        with(&local("http://localhost:8080/3.0")).unwrap();
        // Private targets only when allowed.
        for private in [
            "http://127.0.0.1:8080/3.0",
            "https://10.0.0.5/3.0",
            "https://169.254.169.254/3.0",
            "https://[fd00::1]/3.0",
        ] {
            let e = with(&|c| c.base_url = private.parse().unwrap()).unwrap_err();
            assert!(e.to_string().contains("--allow-private-targets"), "{e}");
        }
        assert!(
            with(&|c| c.base_url = "http://us6.api.mailchimp.com/3.0".parse().unwrap()).is_err()
        );
        assert!(with(&|c| c.base_url = "https://u:p@x.test/3.0".parse().unwrap()).is_err());
        assert!(with(&|c| c.max_in_flight = 0).is_err());
        assert!(with(&|c| c.timeout = Duration::ZERO).is_err());
        assert!(with(&|c| c.retry.max_attempts = 0).is_err());
    }
}
