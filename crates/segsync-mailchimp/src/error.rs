//! The one error type of the Mailchimp client, classified as retryable (the request may
//! succeed if sent again later: 429, 5xx, timeouts, broken connections) or permanent (it will
//! fail again until something changes: the credential, the audience, the data).
//!
//! Every message says what to do next. None contains the credential: errors are built from
//! status codes, Mailchimp's problem documents and transport errors stripped of their URL,
//! and the credential only ever travels in a header.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// Where the `type` of every Mailchimp error document starts.
pub const MAILCHIMP_ERROR_TYPE: &str = "https://mailchimp.com/developer/";

/// Mailchimp's `application/problem+json` error document (fields missing from a bodyless or
/// non-JSON answer are filled from the status line).
///
/// Only a document whose `type` is Mailchimp's is read: any other answer (a server that is
/// not Mailchimp's API, reached through a wrong base URL) gives the status line's reason and
/// says that its body was not shown, so that no error repeats what another server said.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Problem {
    /// `Resource Not Found`, `Invalid Resource`, `Member In Compliance State`, ...
    pub title: String,
    /// What Mailchimp says went wrong, for a human.
    pub detail: String,
    /// Field-level complaints of a validation error.
    pub errors: Vec<FieldError>,
    /// Mailchimp's request id (`instance`, also `X-Request-Id`), for its support.
    pub instance: Option<String>,
}

/// What stands in for the detail of an answer whose body is not shown.
const BODY_NOT_SHOWN: &str = "the answer's body is not shown: it is not a Mailchimp error document";

/// One entry of a problem document's `errors` array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    /// Reads an error answer; a bodyless or non-JSON one gets the status line's reason.
    pub fn from_answer(status: StatusCode, body: &[u8]) -> Problem {
        let doc: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let mailchimp = doc
            .get("type")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.starts_with(MAILCHIMP_ERROR_TYPE));
        let mut p = if mailchimp {
            serde_json::from_value(doc).unwrap_or_default()
        } else if body.iter().all(u8::is_ascii_whitespace) {
            Problem::default()
        } else {
            Problem {
                detail: BODY_NOT_SHOWN.to_string(),
                ..Problem::default()
            }
        };
        if p.title.trim().is_empty() {
            p.title = status
                .canonical_reason()
                .unwrap_or("Unknown Error")
                .to_string();
        }
        p
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)?;
        let detail = self.detail.trim();
        if !detail.is_empty() {
            write!(f, ": {detail}")?;
        }
        for (i, e) in self.errors.iter().enumerate() {
            let sep = if i == 0 { " (" } else { "; " };
            if e.field.is_empty() {
                write!(f, "{sep}{}", e.message)?;
            } else {
                write!(f, "{sep}{}: {}", e.field, e.message)?;
            }
        }
        if !self.errors.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to Mailchimp.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 401: the API key or OAuth token is invalid, revoked, or its user was removed. Never
    /// retried: only a new credential helps.
    #[error("Mailchimp refused the connection's credential (the API key or token is invalid or was revoked): re-authenticate")]
    CredentialRejected,

    /// A credential that cannot be a Mailchimp credential, found before anything was sent.
    #[error("invalid Mailchimp credential: {0}")]
    InvalidCredential(String),

    /// A setting of the client that cannot work.
    #[error("invalid Mailchimp client settings: {0}")]
    InvalidConfig(String),

    /// 404 on an audience.
    #[error("Mailchimp has no audience with id {list_id} (it may have been deleted): check the audience id (Audience > Settings in Mailchimp) and that the connection is for the account that owns it")]
    AudienceNotFound { list_id: String },

    /// 404 on something inside an audience (a tag, a member).
    #[error("{what} not found in Mailchimp ({problem}): it may have been deleted there; refresh and try again")]
    NotFound { what: String, problem: Problem },

    /// 403: the user's role does not allow this, the account is disabled or under review.
    #[error("Mailchimp refused access while {doing} (403 {problem}): check the connection's user role and the account's state in Mailchimp", doing = in_words(endpoint))]
    Forbidden {
        endpoint: &'static str,
        problem: Problem,
    },

    /// Any other 4xx (400, 405, 422, ...): Mailchimp refused the request as sent. Sending it
    /// again fails the same way.
    #[error("Mailchimp refused a request while {doing} ({status} {problem}): the request must change before it can succeed", doing = in_words(endpoint))]
    Rejected {
        endpoint: &'static str,
        status: u16,
        problem: Problem,
    },

    /// 429 (or a bodyless 403, Mailchimp's answer under heavy load) on every attempt.
    #[error("Mailchimp answered \"too many requests\"{tries}: another tool is probably using this Mailchimp user's 10 connections; lower max_in_flight or run later", tries = tries(*attempts))]
    RateLimited { attempts: u32 },

    /// 5xx (or 408) on every attempt.
    #[error("Mailchimp had trouble while {doing} ({title}){tries}: run again later", doing = in_words(endpoint), tries = tries(*attempts))]
    ServerError {
        endpoint: &'static str,
        status: u16,
        title: String,
        attempts: u32,
    },

    /// No complete answer within the timeout, on every attempt.
    #[error("Mailchimp did not answer within {secs} s while {doing}{tries}: check the network, or raise the timeout", secs = timeout.as_secs(), doing = in_words(endpoint), tries = tries(*attempts))]
    Timeout {
        endpoint: &'static str,
        timeout: Duration,
        attempts: u32,
    },

    /// The connection failed or broke before a whole answer came, on every attempt.
    #[error("Mailchimp could not be reached while {doing}{tries} ({message}): check the network and the base URL", doing = in_words(endpoint), tries = tries(*attempts))]
    Connection {
        endpoint: &'static str,
        message: String,
        attempts: u32,
    },

    /// A success answer that does not have the shape the API documents.
    #[error("Mailchimp's answer could not be read while {doing} ({message}): this is a segsync bug or a change in Mailchimp's API; please report it (request: {endpoint})", doing = in_words(endpoint))]
    UnexpectedAnswer {
        endpoint: &'static str,
        message: String,
    },

    /// A call with more items than Mailchimp takes at once (the caller must split).
    #[error("{what} takes at most {max} items per request, {got} given: split the work into smaller requests")]
    TooManyItems {
        what: &'static str,
        max: usize,
        got: usize,
    },
}

impl Error {
    pub(crate) fn invalid_key(why: &str) -> Error {
        Error::InvalidCredential(format!(
            "{why}; a Mailchimp API key is 32 lower-case hex characters, a dash and a data center such as us6 (copy it again from Account > Extras > API keys); the value given is not shown"
        ))
    }

    /// The error for a non-success HTTP answer of `endpoint`.
    pub(crate) fn from_answer(endpoint: &'static str, status: StatusCode, body: &[u8]) -> Error {
        let problem = Problem::from_answer(status, body);
        let bodyless = body.iter().all(u8::is_ascii_whitespace);
        match status.as_u16() {
            401 => Error::CredentialRejected,
            // Mailchimp sheds load with a bodyless 429 or 403; a 403 with a problem document
            // is a real refusal.
            429 => Error::RateLimited { attempts: 1 },
            403 if bodyless => Error::RateLimited { attempts: 1 },
            403 => Error::Forbidden { endpoint, problem },
            // 408: the server gave up waiting for us; as transient as a 5xx.
            s if s >= 500 || s == 408 => Error::ServerError {
                endpoint,
                status: s,
                title: if problem.detail == BODY_NOT_SHOWN {
                    problem.to_string()
                } else {
                    problem.title
                },
                attempts: 1,
            },
            s => Error::Rejected {
                endpoint,
                status: s,
                problem,
            },
        }
    }

    /// The error for a transport failure (never an HTTP answer). reqwest's message is taken
    /// without its URL.
    pub(crate) fn from_transport(
        endpoint: &'static str,
        timeout: Duration,
        e: reqwest::Error,
    ) -> Error {
        if e.is_timeout() {
            return Error::Timeout {
                endpoint,
                timeout,
                attempts: 1,
            };
        }
        if e.is_builder() || e.is_redirect() {
            return Error::InvalidConfig(format!(
                "the request for {endpoint} could not be made: {}",
                error_chain(e)
            ));
        }
        Error::Connection {
            endpoint,
            message: error_chain(e),
            attempts: 1,
        }
    }

    /// The attempts a transient error took, once the retry loop gives up.
    pub(crate) fn with_attempts(mut self, n: u32) -> Error {
        match &mut self {
            Error::RateLimited { attempts }
            | Error::ServerError { attempts, .. }
            | Error::Timeout { attempts, .. }
            | Error::Connection { attempts, .. } => *attempts = n,
            _ => {}
        }
        self
    }

    /// Mailchimp's problem document, when the error came with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::NotFound { problem, .. }
            | Error::Forbidden { problem, .. }
            | Error::Rejected { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The HTTP status Mailchimp answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::CredentialRejected => Some(401),
            Error::AudienceNotFound { .. } | Error::NotFound { .. } => Some(404),
            Error::Forbidden { .. } => Some(403),
            Error::Rejected { status, .. } | Error::ServerError { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }
}

/// What the client was doing when it called `endpoint` (`METHOD /route`, as
/// [`crate::stats::Endpoint::as_str`] names it), in a user's words: no route templates in
/// messages people read (the route stays in the error's `Debug` and the logs).
pub fn in_words(endpoint: &str) -> &'static str {
    use crate::stats::Endpoint;
    let e = Endpoint::ALL.into_iter().find(|e| e.as_str() == endpoint);
    match e {
        Some(Endpoint::Ping) => "checking the connection",
        Some(Endpoint::Root) => "reading the account",
        Some(Endpoint::ListLists) => "listing the audiences",
        Some(Endpoint::GetList) => "reading the audience",
        Some(Endpoint::ListMergeFields) => "reading the audience's merge fields",
        Some(Endpoint::CreateMergeField) => "creating a merge field",
        Some(Endpoint::ListMembers) => "reading the audience's members",
        Some(Endpoint::GetMember) => "reading a member",
        Some(Endpoint::BatchUpsert) => "sending members",
        Some(Endpoint::ListTags) => "reading the audience's tags",
        Some(Endpoint::CreateTag) => "creating a tag",
        Some(Endpoint::UpdateTagMembers) => "tagging members",
        Some(Endpoint::ArchiveMember) => "archiving a member",
        Some(Endpoint::UpdateMember) => "updating a member",
        Some(Endpoint::DeleteMemberPermanently) => "deleting a member",
        Some(Endpoint::DeleteTag) => "deleting a tag",
        Some(Endpoint::DeleteMergeField) => "deleting a merge field",
        None => "talking to Mailchimp",
    }
}

/// How often a request was tried, when more than once.
fn tries(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} tries")
    } else {
        String::new()
    }
}

/// An error and its sources on one line, without the URL reqwest adds.
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = |s: u16, body: &str| {
            Error::from_answer("GET /x", StatusCode::from_u16(s).unwrap(), body.as_bytes())
        };
        assert!(matches!(e(401, ""), Error::CredentialRejected));
        assert!(e(401, "").is_permanent());
        assert!(e(429, "").is_retryable());
        assert!(e(403, "").is_retryable());
        assert!(e(403, r#"{"title":"Forbidden","detail":"no"}"#).is_permanent());
        let mailchimp = |doc: &str| {
            doc.replacen(
                '{',
                r#"{"type":"https://mailchimp.com/developer/marketing/docs/errors/","#,
                1,
            )
        };
        assert!(e(500, "").is_retryable());
        assert!(e(503, "<html>").is_retryable());
        assert!(e(400, "").is_permanent());
        assert!(e(404, "").is_permanent());
        let p = e(
            405,
            &mailchimp(r#"{"title":"Method Not Allowed","detail":"Can not archive","status":405}"#),
        );
        assert!(p.is_permanent());
        assert_eq!(p.problem().unwrap().detail, "Can not archive");
        assert!(p
            .to_string()
            .contains("Method Not Allowed: Can not archive"));
        // Bodyless answers take the status line's reason.
        assert_eq!(e(405, "").problem().unwrap().title, "Method Not Allowed");
    }

    /// The audit's finding 10: an answer from a server that is not Mailchimp's API (a base URL
    /// pointing elsewhere) is never repeated in an error, whatever it holds.
    #[test]
    fn only_mailchimp_error_documents_are_shown() {
        for body in [
            r#"{"title":"internal","detail":"db password is hunter2"}"#,
            r#"{"type":"https://evil.example/","detail":"hunter2"}"#,
            "<html>hunter2</html>",
        ] {
            let e = Error::from_answer("GET /ping", StatusCode::BAD_REQUEST, body.as_bytes());
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("internal"), "{text}");
            assert!(text.contains("400 Bad Request"), "{text}");
            assert!(text.contains("body is not shown"), "{text}");
        }
    }

    #[test]
    fn problem_display_lists_field_errors() {
        let p = Problem::from_answer(
            StatusCode::BAD_REQUEST,
            br#"{"type":"https://mailchimp.com/developer/marketing/docs/errors/","title":"Invalid Resource","detail":"Your merge fields were invalid.","errors":[{"field":"ADDRESS","message":"Please enter a complete address"}]}"#,
        );
        assert_eq!(
            p.to_string(),
            "Invalid Resource: Your merge fields were invalid. (ADDRESS: Please enter a complete address)"
        );
    }

    #[test]
    fn credential_message_is_exact() {
        let e = Error::CredentialRejected;
        assert_eq!(
            e.to_string(),
            "Mailchimp refused the connection's credential (the API key or token is invalid or was revoked): re-authenticate"
        );
    }
}
