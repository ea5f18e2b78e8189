//! Alerts when a run fails for good (after its retries): a Slack-compatible webhook and/or
//! an e-mail. Configured per installation (`/api/settings/alerts`, see
//! [`super::settings`]), stored in the state store's settings as one JSON document
//! ([`SETTING`]) that never holds a secret: the SMTP password is given once as
//! `smtp.password` and stored apart, sealed with the master key, or comes from
//! `SEGSYNC_SMTP_PASSWORD` in the server's environment at start-up ([`password`]). No
//! request names an environment variable for the server to read.
//!
//! A run that ends `failed` alerts; one that met transient errors and recovered
//! (`succeeded`, `succeeded_with_errors`), or was cancelled or interrupted, does not. The same
//! failure of the same export is told once per [`REPEAT_AFTER`], not at every scheduled tick;
//! a run that succeeds in between resets that.
//!
//! Delivery never blocks or endangers the server: each alert is sent from its own task, each
//! attempt is bounded by [`ATTEMPT_TIMEOUT`], a failed attempt that may succeed later is
//! retried with backoff, and what fails in the end is logged (never with a secret: the
//! webhook URL, which carries a token in Slack's case, is logged by its host only).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

pub mod password;

pub use password::PasswordSource;
use secrecy::{ExposeSecret, SecretString};

use super::runs::{Event, RunEnded};
use super::AppState;
use crate::app::App;
use crate::mailchimp::targets;
use crate::state::Outcome;

/// The name of the alert settings in the state store's settings table.
pub const SETTING: &str = "alerts";

/// How long one delivery attempt (an HTTP POST, an SMTP session) may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pauses between the attempts of one delivery: 3 attempts in all.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// The same failure of the same export alerts again after this long.
pub const REPEAT_AFTER: Duration = Duration::from_secs(3600);

/// Deliveries under way at once (a Mailchimp outage failing every export at once sends its
/// alerts a few at a time).
const CONCURRENT_DELIVERIES: usize = 4;

/// At most this many recipients.
const MAX_RECIPIENTS: usize = 50;

/// Where alerts go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Teams workflows,
    /// any endpoint that takes a JSON POST): it gets `{"text": "...", "segsync": {...}}`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Who gets alert e-mails (needs `smtp`).
    #[serde(default)]
    pub email_to: Vec<String>,
    /// The mail server alert e-mails go through.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// The environment variable that settings stored by an older segsync named for the SMTP
    /// password (`smtp.password_env`): no longer read, only told about in the warnings.
    #[serde(skip)]
    pub legacy_password_env: Option<String>,
}

/// An SMTP relay. No password here: it is given as `smtp.password` when the settings are
/// changed and stored apart, sealed ([`password`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Host name (or address) of the relay: `smtp.example.com`.
    pub host: String,
    /// By default 587 with STARTTLS, 25 without.
    #[serde(default, deserialize_with = "crate::ops::numbers::option_u16")]
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    /// The sender: `alerts@example.com` or `segsync <alerts@example.com>`.
    pub from: String,
    /// The login, if the relay wants one; its password is `smtp.password` (write-only) or
    /// `SEGSYNC_SMTP_PASSWORD` in the server's environment.
    #[serde(default)]
    pub username: Option<String>,
    /// Upgrade the connection with STARTTLS (required). Off only for a relay on this
    /// machine or a test sink: the connection is then in clear text.
    #[serde(default = "yes")]
    pub starttls: bool,
}

fn yes() -> bool {
    true
}

impl AlertSettings {
    /// The stored settings' relay, if it has a login.
    pub fn smtp_relay(&self) -> Option<String> {
        self.smtp.as_ref().and_then(password::relay_of)
    }

    /// Whether e-mails are sent: recipients and a relay.
    pub fn email_enabled(&self) -> bool {
        !self.email_to.is_empty() && self.smtp.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.webhook_url.is_none() && !self.email_enabled()
    }
}

/// The alert settings in `home` (none set: no alerts). Settings stored by an older segsync
/// may name an environment variable for the SMTP password (`smtp.password_env`): that name
/// is kept aside, never read ([`AlertSettings::legacy_password_env`]).
pub fn load(app: &App) -> anyhow::Result<AlertSettings> {
    let state = app.state()?;
    let Some(text) = state.setting(SETTING)? else {
        return Ok(AlertSettings::default());
    };
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the stored alert settings do not parse: {e}"))?;
    let legacy = value
        .get_mut("smtp")
        .and_then(|s| s.as_object_mut())
        .and_then(|s| s.remove("password_env"))
        .and_then(|v| v.as_str().map(str::to_string));
    let mut settings: AlertSettings = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("the stored alert settings do not parse: {e}"))?;
    settings.legacy_password_env = legacy;
    Ok(settings)
}

/// Stores checked settings (from [`check`]).
pub fn save(app: &App, settings: &AlertSettings) -> anyhow::Result<()> {
    let state = app.state()?;
    if *settings == AlertSettings::default() {
        state.set_setting(SETTING, None)?;
    } else {
        state.set_setting(SETTING, Some(&serde_json::to_string(settings)?))?;
    }
    Ok(())
}

/// Settings sent by a person, checked, and the SMTP password they gave (write-only).
#[derive(Debug)]
pub struct Checked {
    pub settings: AlertSettings,
    pub password: Option<SecretString>,
}

/// Takes `smtp.password` out of a request's body: never kept in the settings, never
/// repeated in a message.
fn take_password(body: &mut serde_json::Value) -> Result<Option<SecretString>, String> {
    let Some(smtp) = body.get_mut("smtp").and_then(|s| s.as_object_mut()) else {
        return Ok(None);
    };
    if smtp.contains_key("password_env") {
        return Err(format!(
            "smtp.password_env is no longer accepted: the server reads no environment \
             variable named in a request. Give the password itself as smtp.password (stored \
             sealed, never shown again), or start the server with {} set",
            password::ENV
        ));
    }
    match smtp.remove("password") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(p)) if p.is_empty() => Err(
            "smtp.password is empty: give the relay's password, or leave the field out to keep \
             the one stored"
                .into(),
        ),
        Some(serde_json::Value::String(p)) => Ok(Some(SecretString::from(p))),
        Some(_) => Err("smtp.password is text: the relay's password".into()),
    }
}

/// Reads settings sent by a person and checks them; normalised (trimmed, empty values
/// dropped, the port resolved), or what is wrong, in words. A webhook on a loopback, private
/// or link-local address is refused unless `allow_private` (see [`check_webhook_target`] for
/// the host names that resolve to one).
pub fn check(mut body: serde_json::Value, allow_private: bool) -> Result<Checked, String> {
    let password = take_password(&mut body)?;
    let mut s: AlertSettings = serde_json::from_value(body).map_err(|e| {
        format!("the alert settings do not read: {e} (fields: webhook_url, email_to, smtp {{host, port, from, username, password, starttls}})")
    })?;

    s.webhook_url = s
        .webhook_url
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if let Some(u) = &s.webhook_url {
        check_webhook_url(u, allow_private)?;
    }

    let mut to = Vec::new();
    for a in &s.email_to {
        let a = a.trim();
        if a.is_empty() {
            continue;
        }
        a.parse::<lettre::Address>()
            .map_err(|e| format!("email_to: \"{a}\" is not an e-mail address ({e})"))?;
        if !to.iter().any(|t: &String| t.eq_ignore_ascii_case(a)) {
            to.push(a.to_string());
        }
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(format!(
            "email_to: at most {MAX_RECIPIENTS} addresses (use a mailing list)"
        ));
    }
    s.email_to = to;

    if let Some(smtp) = &mut s.smtp {
        check_smtp(smtp)?;
    }
    if !s.email_to.is_empty() && s.smtp.is_none() {
        return Err(
            "email_to needs a mail server: give smtp {host, from} (and port, username, \
             password, starttls as needed)"
                .into(),
        );
    }
    if password.is_some() && s.smtp_relay().is_none() {
        return Err("smtp.password needs smtp.username (the login)".into());
    }
    Ok(Checked {
        settings: s,
        password,
    })
}

/// Refuses a webhook whose host name resolves to a non-public address, unless
/// `allow_private` (the delivery checks again at each connection).
pub async fn check_webhook_target(s: &AlertSettings, allow_private: bool) -> Result<(), String> {
    let Some(url) = s
        .webhook_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    else {
        return Ok(());
    };
    targets::check_resolved(&url, allow_private)
        .await
        .map_err(|e| format!("webhook_url: {e}"))
}

fn check_webhook_url(u: &str, allow_private: bool) -> Result<(), String> {
    let url = url::Url::parse(u)
        .map_err(|e| format!("webhook_url is not a URL ({e}): give the full https://... address of the incoming webhook"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "webhook_url must be an http:// or https:// URL, not {}:",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("webhook_url names no host".into());
    }
    targets::check_literal(&url, allow_private).map_err(|e| format!("webhook_url: {e}"))
}

fn check_smtp(smtp: &mut SmtpSettings) -> Result<(), String> {
    smtp.host = smtp.host.trim().to_string();
    let host = &smtp.host;
    if host.is_empty() {
        return Err("smtp.host is empty: give the mail server's host name".into());
    }
    if host.contains("://")
        || host.contains('/')
        || host.contains(char::is_whitespace)
        || host.contains('@')
        || url::Host::parse(host.trim_start_matches('[').trim_end_matches(']')).is_err()
    {
        return Err(format!(
            "smtp.host \"{host}\" is not a host name: give one such as smtp.example.com (the port goes in smtp.port)"
        ));
    }
    match smtp.port {
        Some(0) => return Err("smtp.port takes 1 to 65535".into()),
        Some(_) => {}
        None => smtp.port = Some(if smtp.starttls { 587 } else { 25 }),
    }
    smtp.from = smtp.from.trim().to_string();
    if smtp.from.is_empty() {
        return Err("smtp.from is empty: give the sender address of alert e-mails".into());
    }
    smtp.from.parse::<Mailbox>().map_err(|e| {
        format!(
            "smtp.from: \"{}\" is not an address such as alerts@example.com or \"segsync <alerts@example.com>\" ({e})",
            smtp.from
        )
    })?;
    smtp.username = smtp
        .username
        .take()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if smtp.username.is_some() && !smtp.starttls && !is_local(host) {
        return Err(format!(
            "smtp.starttls is off: the password would cross the network in clear text to \
             {host}. Turn starttls on (only a relay on this machine may go without)"
        ));
    }
    Ok(())
}

fn is_local(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What a person should know about settings that are accepted but will not work as they
/// may think (a login without a password, a relay with no recipients, a variable named by
/// settings of an older segsync). `source`: where the relay's password comes from.
pub fn warnings(s: &AlertSettings, source: Option<PasswordSource>) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(var) = &s.legacy_password_env {
        w.push(format!(
            "the stored settings name the environment variable {var} for the SMTP password \
             (smtp.password_env): the server no longer reads variables named in settings. \
             Give the password as smtp.password (stored sealed), or start the server with {} set",
            password::ENV
        ));
    }
    if let Some(smtp) = &s.smtp {
        if smtp.username.is_some() && source.is_none() {
            w.push(no_password_message());
        }
        if s.email_to.is_empty() {
            w.push("smtp is set but email_to is empty: no e-mail is sent".into());
        }
    }
    if s.is_empty() {
        w.push("no webhook_url and no email_to: failed runs alert no one".into());
    }
    w
}

/// Why e-mails cannot log in: a login without a password.
pub fn no_password_message() -> String {
    format!(
        "smtp.username is set but no password is: give smtp.password (stored sealed, never \
         shown again) or start the server with {} set",
        password::ENV
    )
}

/// The settings in words, for the audit log: no secret (the webhook's path, which holds
/// Slack's token, is left out; the password only by where it comes from).
pub fn describe(s: &AlertSettings, source: Option<PasswordSource>) -> String {
    let webhook = match s
        .webhook_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    {
        Some(u) => format!("webhook to {}", u.host_str().unwrap_or("?")),
        None => "no webhook".into(),
    };
    let email = match &s.smtp {
        Some(smtp) if !s.email_to.is_empty() => format!(
            "e-mail to {} via {}:{}{}{}",
            s.email_to.join(", "),
            smtp.host,
            smtp.port.unwrap_or(0),
            if smtp.starttls { " (STARTTLS)" } else { "" },
            smtp.username
                .as_ref()
                .map(|u| format!(
                    " as {u}, {}",
                    match source {
                        Some(PasswordSource::Settings) => "password stored (sealed)".to_string(),
                        Some(PasswordSource::Environment) =>
                            format!("password from {}", password::ENV),
                        None => "no password".to_string(),
                    }
                ))
                .unwrap_or_default()
        ),
        _ => "no e-mail".into(),
    };
    format!("{webhook}; {email}")
}

// --- what is sent ---

/// One alert, as the webhook and the e-mail tell it.
#[derive(Clone, Debug)]
pub struct Alert {
    pub subject: String,
    /// Plain text (the e-mail's body; the webhook's `text`, escaped for Slack).
    pub text: String,
    /// Structured fields for the webhook's `segsync` object.
    pub fields: serde_json::Value,
}

fn export_link(app: &AppState, export: &str) -> String {
    let mut url = match url::Url::parse(&format!("{}/", app.public_url())) {
        Ok(u) => u,
        Err(_) => return format!("{}/exports/{export}", app.public_url()),
    };
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("exports").push(export);
    }
    url.to_string()
}

/// The alert of a run that failed for good.
pub fn run_failed(app: &AppState, r: &RunEnded) -> Alert {
    let link = export_link(app, &r.export);
    let error = r
        .error
        .as_deref()
        .unwrap_or("no error message was recorded");
    let text = format!(
        "segsync: export \"{}\" failed (run {}, {}): {error}\n\
         Delivered before the failure: {} created, {} updated, {} not sent. \
         What Mailchimp acknowledged is kept; the next run sends the rest.\n\
         Open the export: {link}",
        r.export,
        r.run_id,
        describe_trigger(&r.trigger),
        r.counts.created,
        r.counts.updated,
        r.counts.failed,
    );
    Alert {
        subject: format!("segsync: export \"{}\" failed (run {})", r.export, r.run_id),
        text,
        fields: json!({
            "event": "run_failed",
            "export": r.export,
            "run_id": r.run_id,
            "trigger": r.trigger,
            "outcome": r.outcome.as_str(),
            "error": error,
            "url": link,
            "seconds": r.seconds,
            "counts": r.counts,
        }),
    }
}

fn describe_trigger(t: &str) -> String {
    match t {
        "schedule" => "on schedule".into(),
        "after-refresh" => "after a profile refresh".into(),
        "resume" => "resuming an interrupted run".into(),
        t => match t.strip_prefix("manual:") {
            Some(who) => format!("started by {who}"),
            None => t.to_string(),
        },
    }
}

/// The alert of `POST /api/settings/alerts/test`.
pub fn test_alert(app: &AppState, actor: &str) -> Alert {
    let text = format!(
        "segsync: a test alert, sent by {actor} from {}. When a run fails for good, alerts \
         like this one say which export, the run and the error.",
        app.public_url()
    );
    Alert {
        subject: "segsync: test alert".into(),
        text,
        fields: json!({"event": "test", "sent_by": actor, "url": app.public_url()}),
    }
}

/// Slack's escaping of `&`, `<` and `>` in message text: an error that quotes
/// `<!channel>` or `<http://...|...>` shows as text instead of pinging or linking.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// --- delivery ---

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug)]
struct Failure {
    message: String,
    retry: bool,
}

/// How one channel fared.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelReport {
    /// `sent`, `failed` or `not_configured`.
    pub status: String,
    /// What happened, for a person.
    pub message: String,
}

impl ChannelReport {
    fn not_configured(what: &str) -> ChannelReport {
        ChannelReport {
            status: "not_configured".into(),
            message: what.into(),
        }
    }
    fn of(r: Result<String, Failure>) -> ChannelReport {
        match r {
            Ok(m) => ChannelReport {
                status: "sent".into(),
                message: m,
            },
            Err(f) => ChannelReport {
                status: "failed".into(),
                message: f.message,
            },
        }
    }
}

/// How an alert fared on each channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveryReport {
    pub webhook: ChannelReport,
    pub email: ChannelReport,
}

/// The webhook's HTTP client: no redirect followed, and (unless `allow_private`) no
/// connection to a name that resolves to a non-public address.
fn http_client(allow_private: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("segsync/", env!("CARGO_PKG_VERSION"), " (alerts)"));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(targets::PublicOnly));
    }
    builder.build().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the alerts' HTTP client could not start; webhooks fail");
        reqwest::Client::new()
    })
}

fn host_of(u: &str) -> String {
    url::Url::parse(u)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

async fn post_webhook(http: &reqwest::Client, url: &str, alert: &Alert) -> Result<String, Failure> {
    let body = json!({
        "text": slack_escape(&alert.text),
        "segsync": alert.fields,
    });
    let resp = http.post(url).json(&body).send().await.map_err(|e| {
        // Without the URL: Slack's carries its token.
        let e = e.without_url();
        Failure {
            message: format!("the webhook at {} did not answer: {e}", host_of(url)),
            retry: true,
        }
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(format!(
            "the webhook at {} answered {}",
            host_of(url),
            status.as_u16()
        ));
    }
    // The answer's body is never repeated: the webhook may be any server, and its answer
    // is not ours to show.
    Err(Failure {
        message: format!(
            "the webhook at {} answered {status} (its body is not shown)",
            host_of(url)
        ),
        retry: status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT,
    })
}

async fn send_email(
    s: &AlertSettings,
    password: Option<&SecretString>,
    alert: &Alert,
) -> Result<String, Failure> {
    let permanent = |message: String| Failure {
        message,
        retry: false,
    };
    let smtp = s
        .smtp
        .as_ref()
        .ok_or_else(|| permanent("no smtp server is set".into()))?;
    let from: Mailbox = smtp
        .from
        .parse()
        .map_err(|e| permanent(format!("smtp.from: {e}")))?;
    let mut msg = Message::builder()
        .from(from)
        .subject(alert.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &s.email_to {
        let to: Mailbox = to
            .parse()
            .map_err(|e| permanent(format!("email_to {to}: {e}")))?;
        msg = msg.to(to);
    }
    let msg = msg
        .body(alert.text.clone())
        .map_err(|e| permanent(format!("building the e-mail: {e}")))?;

    let mut transport = if smtp.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| permanent(format!("smtp {}: {e}", smtp.host)))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
    };
    let port = smtp.port.unwrap_or(if smtp.starttls { 587 } else { 25 });
    transport = transport.port(port).timeout(Some(ATTEMPT_TIMEOUT));
    if let Some(user) = &smtp.username {
        let password = password.ok_or_else(|| permanent(no_password_message()))?;
        transport = transport.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_string(),
        ));
    }
    let transport = transport.build();
    let where_ = format!("{}:{port}", smtp.host);
    match tokio::time::timeout(ATTEMPT_TIMEOUT, transport.send(msg)).await {
        Err(_) => Err(Failure {
            message: format!(
                "the mail server {where_} did not finish within {}s",
                ATTEMPT_TIMEOUT.as_secs()
            ),
            retry: true,
        }),
        Ok(Err(e)) => Err(Failure {
            message: format!("the mail server {where_} refused or failed: {e}"),
            retry: !e.is_permanent(),
        }),
        Ok(Ok(_)) => Ok(format!(
            "the mail server {where_} accepted the e-mail to {}",
            s.email_to.join(", ")
        )),
    }
}

/// Tries `attempt` up to 1 + [`BACKOFF`]`.len()` times while it may succeed.
async fn with_retries<F, Fut>(channel: &str, mut attempt: F) -> Result<String, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<String, Failure>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Ok(m) => return Ok(m),
            Err(f) if f.retry && n < BACKOFF.len() => {
                tracing::info!(channel, attempt = n + 1, error = %f.message, "alert delivery failed; trying again");
                tokio::time::sleep(BACKOFF[n]).await;
                n += 1;
            }
            Err(f) => return Err(f),
        }
    }
}

/// Sends `alert` on every configured channel, at once; with `retries`, an attempt that may
/// succeed later is made again after a pause.
pub async fn deliver(
    http: &reqwest::Client,
    settings: &AlertSettings,
    password: Option<&SecretString>,
    alert: &Alert,
    retries: bool,
) -> DeliveryReport {
    let webhook = async {
        match &settings.webhook_url {
            None => ChannelReport::not_configured("no webhook_url is set"),
            Some(url) if retries => {
                ChannelReport::of(with_retries("webhook", || post_webhook(http, url, alert)).await)
            }
            Some(url) => ChannelReport::of(post_webhook(http, url, alert).await),
        }
    };
    let email = async {
        if !settings.email_enabled() {
            ChannelReport::not_configured("no email_to with an smtp server is set")
        } else if retries {
            ChannelReport::of(with_retries("email", || send_email(settings, password, alert)).await)
        } else {
            ChannelReport::of(send_email(settings, password, alert).await)
        }
    };
    let (webhook, email) = tokio::join!(webhook, email);
    DeliveryReport { webhook, email }
}

/// The password the relay's login uses, if any ([`password::resolve`]).
pub fn smtp_password(app: &AppState, s: &AlertSettings) -> anyhow::Result<Option<SecretString>> {
    match &s.smtp {
        Some(smtp) => password::resolve(&app.app, smtp, app.config.smtp_password.as_ref()),
        None => Ok(None),
    }
}

/// Where the relay's password comes from, if anywhere ([`password::source`]).
pub fn password_source(
    app: &AppState,
    s: &AlertSettings,
) -> anyhow::Result<Option<PasswordSource>> {
    password::source(&app.app, s.smtp.as_ref(), app.config.smtp_password.as_ref())
}

/// Sends the test alert now, once per channel, and tells how each fared.
pub async fn send_test(app: &AppState, actor: &str) -> anyhow::Result<DeliveryReport> {
    let settings = load(&app.app)?;
    let password = smtp_password(app, &settings)?;
    let alert = test_alert(app, actor);
    let report = deliver(
        &http_client(app.app.private_targets()),
        &settings,
        password.as_ref(),
        &alert,
        false,
    )
    .await;
    log_report("test alert", None, &report);
    Ok(report)
}

fn log_report(what: &str, export: Option<&str>, r: &DeliveryReport) {
    for (channel, c) in [("webhook", &r.webhook), ("email", &r.email)] {
        match c.status.as_str() {
            "sent" => tracing::info!(what, export, channel, "{}", c.message),
            "failed" => {
                tracing::error!(what, export, channel, error = %c.message, "alert not delivered")
            }
            _ => {}
        }
    }
}

/// The last alert sent per export, to tell the same failure once per [`REPEAT_AFTER`].
#[derive(Default)]
struct Throttle {
    last: HashMap<String, (String, Instant)>,
}

impl Throttle {
    /// Whether `r` should alert (and remembers it if so); a success forgets the export.
    fn admit(&mut self, r: &RunEnded) -> bool {
        match r.outcome {
            Outcome::Failed => {
                let error = r.error.clone().unwrap_or_default();
                if let Some((last, at)) = self.last.get(&r.export) {
                    if *last == error && at.elapsed() < REPEAT_AFTER {
                        return false;
                    }
                }
                self.last.insert(r.export.clone(), (error, Instant::now()));
                true
            }
            Outcome::Succeeded | Outcome::SucceededWithErrors => {
                self.last.remove(&r.export);
                false
            }
            // Cancelled, interrupted: someone stopped it; it tells nothing new.
            Outcome::Cancelled | Outcome::Interrupted | Outcome::Running => false,
        }
    }
}

/// What to tell the operator at start-up about settings of an older segsync that named an
/// environment variable for the SMTP password (`smtp.password_env`), if they do.
pub fn legacy_notice(app: &App) -> Option<String> {
    let var = load(app).ok()?.legacy_password_env?;
    Some(format!(
        "the alert settings name the environment variable {var} for the SMTP password \
         (smtp.password_env), which is no longer read: give the password as smtp.password in \
         PUT /api/settings/alerts, or start the server with {} set",
        password::ENV
    ))
}

/// The settings and the relay's password for an alert now; `None` (logged) when they cannot
/// be read or no channel is set.
fn settings_for(app: &AppState, ended: &RunEnded) -> Option<(AlertSettings, Option<SecretString>)> {
    let read = load(&app.app).and_then(|s| {
        let p = smtp_password(app, &s)?;
        Ok((s, p))
    });
    match read {
        Ok((s, _)) if s.is_empty() => {
            tracing::info!(export = %ended.export, run_id = ended.run_id, "run failed; no alert channel is set (PUT /api/settings/alerts)");
            None
        }
        Ok(read) => Some(read),
        Err(e) => {
            tracing::error!(export = %ended.export, run_id = ended.run_id, error = %e, "no alert sent: reading the alert settings");
            None
        }
    }
}

/// Follows the runs' events and alerts when one fails for good.
pub fn spawn(app: &AppState) {
    let mut events = app.runs.subscribe();
    let app = app.clone();
    tokio::spawn(async move {
        let http = http_client(app.app.private_targets());
        let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
        let mut throttle = Throttle::default();
        loop {
            let ended = match events.recv().await {
                Ok(Event::RunEnded(r)) => r,
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "alerts missed run events");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            if ended.outcome != Outcome::Failed {
                // A success forgets the export's last failure; nothing else alerts.
                throttle.admit(&ended);
                continue;
            }
            let Some((settings, password)) = settings_for(&app, &ended) else {
                continue;
            };
            if !throttle.admit(&ended) {
                tracing::info!(export = %ended.export, run_id = ended.run_id, "no alert: the same failure of this export was told less than an hour ago");
                continue;
            }
            let alert = run_failed(&app, &ended);
            let (http, slots) = (http.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                let report = deliver(&http, &settings, password.as_ref(), &alert, true).await;
                log_report("run failed", Some(&ended.export), &report);
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`check`] as an installation that forbids private targets runs it.
    fn check_local(body: serde_json::Value) -> Result<Checked, String> {
        check(body, false)
    }

    #[test]
    fn webhooks_on_private_addresses_are_refused_unless_allowed() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/hook",
            "https://[::1]/hook",
            "http://[fe80::1]/hook",
            "https://[::ffff:a9fe:a9fe]/hook",
            "http://localhost:9000/hook",
        ] {
            let e = check_local(json!({ "webhook_url": url })).unwrap_err();
            assert!(e.contains("--allow-private-targets"), "{url}: {e}");
            check(json!({ "webhook_url": url }), true).unwrap();
        }
    }

    fn smtp() -> serde_json::Value {
        json!({"host": "smtp.example.com", "from": "segsync <alerts@example.com>"})
    }

    #[test]
    fn settings_are_normalised_and_the_port_follows_starttls() {
        let s = check_local(json!({
            "webhook_url": " https://hooks.slack.com/services/T0/B0/XYZ ",
            "email_to": ["ops@example.com", " OPS@example.com", ""],
            "smtp": smtp(),
        }))
        .unwrap()
        .settings;
        assert_eq!(
            s.webhook_url.as_deref(),
            Some("https://hooks.slack.com/services/T0/B0/XYZ")
        );
        assert_eq!(s.email_to, ["ops@example.com"]);
        let smtp = s.smtp.as_ref().unwrap();
        assert!(smtp.starttls);
        assert_eq!(smtp.port, Some(587));
        let plain = check_local(
            json!({"smtp": {"host": "127.0.0.1", "from": "a@b.ro", "starttls": false}}),
        )
        .unwrap()
        .settings;
        assert_eq!(plain.smtp.unwrap().port, Some(25));
        assert_eq!(
            check_local(json!({})).unwrap().settings,
            AlertSettings::default()
        );
    }

    #[test]
    fn bad_settings_are_refused_with_what_is_wrong() {
        let refused = |v: serde_json::Value, says: &str| {
            let e = check_local(v.clone()).expect_err(&v.to_string());
            assert!(e.contains(says), "{v}: {e}");
        };
        refused(
            json!({"webhook_url": "hooks.slack.com/x"}),
            "webhook_url is not a URL",
        );
        refused(
            json!({"webhook_url": "ftp://x.ro/a"}),
            "http:// or https://",
        );
        refused(
            json!({"email_to": ["ops@"]}),
            "email_to: \"ops@\" is not an e-mail address",
        );
        refused(
            json!({"email_to": ["ops@example.com"]}),
            "email_to needs a mail server",
        );
        refused(
            json!({"smtp": {"host": "smtp://x.ro", "from": "a@b.ro"}}),
            "smtp.host",
        );
        refused(
            json!({"smtp": {"host": "x.ro", "from": "nobody"}}),
            "smtp.from",
        );
        refused(
            json!({"smtp": {"host": "x.ro", "from": "a@b.ro", "port": 0}}),
            "smtp.port",
        );
        refused(
            json!({"smtp": {"host": "x.ro", "from": "a@b.ro", "password": "hunter2"}}),
            "smtp.password needs smtp.username",
        );
        refused(
            json!({"smtp": {"host": "x.ro", "from": "a@b.ro", "username": "u", "password": 7}}),
            "smtp.password is text",
        );
        let e = check_local(json!({"smtp": {"host": "x.ro", "from": "a@b.ro", "username": "u", "password_env": "OAUTH_SECRET"}}))
            .unwrap_err();
        assert!(e.contains("smtp.password_env is no longer accepted"), "{e}");
        refused(
            json!({"smtp": {"host": "mail.example.com", "from": "a@b.ro", "username": "u", "password": "P", "starttls": false}}),
            "clear text",
        );
        let local = check_local(json!({"smtp": {"host": "localhost", "from": "a@b.ro", "username": "u", "password": "hunter2", "starttls": false}}))
            .unwrap();
        assert!(!format!("{local:?}").contains("hunter2"), "{local:?}");
        assert!(!serde_json::to_string(&local.settings)
            .unwrap()
            .contains("hunter2"));
        refused(json!({"webhook": "https://x.ro"}), "unknown field");
    }

    #[test]
    fn the_audit_description_keeps_the_webhook_token_out() {
        let s = check_local(json!({
            "webhook_url": "https://hooks.slack.com/services/T0/B0/SECRETTOKEN",
            "email_to": ["ops@example.com"],
            "smtp": {"host": "smtp.example.com", "from": "a@b.ro", "username": "bot", "password": "pw-SECRET"},
        }))
        .unwrap()
        .settings;
        let d = describe(&s, Some(PasswordSource::Settings));
        assert!(
            d.contains("hooks.slack.com")
                && d.contains("ops@example.com")
                && d.contains("password stored (sealed)"),
            "{d}"
        );
        assert!(!d.contains("pw-SECRET"), "{d}");
        assert!(!d.contains("SECRETTOKEN"), "{d}");
    }

    #[test]
    fn slack_text_cannot_ping_or_link() {
        assert_eq!(
            slack_escape("<!channel> & <http://x|y>"),
            "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"
        );
    }

    fn ended(outcome: Outcome, error: &str) -> RunEnded {
        RunEnded {
            export: "newsletter".into(),
            run_id: 1,
            trigger: "schedule".into(),
            outcome,
            error: Some(error.into()),
            counts: Default::default(),
            seconds: 1.0,
            client: None,
        }
    }

    #[test]
    fn the_same_failure_alerts_once_until_a_success() {
        let mut t = Throttle::default();
        assert!(t.admit(&ended(Outcome::Failed, "credential rejected")));
        assert!(!t.admit(&ended(Outcome::Failed, "credential rejected")));
        assert!(t.admit(&ended(Outcome::Failed, "another error")));
        assert!(!t.admit(&ended(Outcome::Interrupted, "")));
        assert!(!t.admit(&ended(Outcome::Succeeded, "")));
        assert!(t.admit(&ended(Outcome::Failed, "another error")));
    }
}
