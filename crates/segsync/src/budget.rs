//! Connection budgets, wired to segsync's connections and state store: which account a
//! connection's credential belongs to (learned once from the API root, then stored), the
//! process's shared budget of that account ([`Budgets::shared`]), and, when the state store
//! is PostgreSQL, slot leases in it so that every process on the store shares the budget.
//!
//! The limiter itself (fair sharing, adaptive budget, leases) is
//! [`segsync_mailchimp::budget`]; this module only decides which budget a run uses.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::app::App;
use crate::mailchimp::{AccountBudget, Budgets, Client};
use crate::state::{ConnectionRecord, StateStore};

/// How long a worker's slot lease lasts without renewal, by default: a worker that dies gives
/// its slots back within this time.
pub const DEFAULT_SLOT_LEASE: Duration = Duration::from_secs(30);

/// The most slots a connection's budget may have (Mailchimp allows 10 per account).
pub const MAX_SLOT_BUDGET: u32 = crate::mailchimp::config::MAILCHIMP_MAX_IN_FLIGHT as u32;

/// Checks a slot budget given for a connection; the message says what is allowed.
pub fn check_slot_budget(budget: u32) -> Result<u32, String> {
    if (1..=MAX_SLOT_BUDGET).contains(&budget) {
        Ok(budget)
    } else {
        Err(format!(
            "the slot budget must be between 1 and {MAX_SLOT_BUDGET} (Mailchimp allows {MAX_SLOT_BUDGET} requests in flight per account, shared by all its apps), not {budget}"
        ))
    }
}

/// Makes this process's budgets hold leases in the state store when it is shared
/// (PostgreSQL), each for `lease` unless renewed. Call once, before the first run; later
/// calls do nothing.
pub fn share_across_processes(app: &App, lease: Duration) -> anyhow::Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if !app.shared_state() || INSTALLED.get().is_some() {
        return Ok(());
    }
    drop(app.state()?); // migrations applied
    let leases = crate::state::postgres::slots::PgSlotLeases::connect(&app.state_location(), lease)
        .map_err(|e| anyhow::anyhow!("connection slot leases: {e}"))?;
    Budgets::shared().set_leases(leases);
    let _ = INSTALLED.set(());
    Ok(())
}

/// The slot budget of `account`: the smallest of its connections' (every connection to it
/// shares one budget, so the most careful setting wins).
pub fn account_cap(connections: &[ConnectionRecord], account: &str) -> Option<usize> {
    connections
        .iter()
        .filter(|c| c.account_id.as_deref() == Some(account))
        .map(ConnectionRecord::budget)
        .min()
}

/// The shared budget of `c`'s account, if its account is known.
pub fn budget_of(state: &StateStore, c: &ConnectionRecord) -> Option<Arc<AccountBudget>> {
    let account = c.account_id.as_deref()?;
    let cap = state
        .connections()
        .ok()
        .and_then(|all| account_cap(&all, account))
        .unwrap_or_else(|| c.budget());
    Some(Budgets::shared().account(account, cap))
}

/// Learns the account of `c` with `client` (one `GET /`) and records it, if not known yet.
/// Returns the connection with its account.
pub async fn learn_account(
    state: &mut StateStore,
    client: &Client,
    mut c: ConnectionRecord,
) -> Result<ConnectionRecord, crate::mailchimp::Error> {
    if c.account_id.is_none() {
        let id = client.account_id().await?;
        if let Err(e) = state.set_connection_account(&c.name, &id) {
            tracing::warn!(connection = %c.name, error = %e, "the connection's account could not be recorded; it is asked again next time");
        }
        c.account_id = Some(id);
    }
    Ok(c)
}
