//! The members a run holds back (see `segsync_core::suppress`): those on the export's or the
//! installation's suppression list, and those Mailchimp refused for good with the content
//! they would be sent with again. A held member is left as it is in Mailchimp (never
//! created, updated, tagged, untagged or removed) and counted, not reported as an error.
//!
//! Refusals are remembered here too: when a run learns that Mailchimp refused an address for
//! good, the content it sent is kept, so that the next runs do not send it again until the
//! profile's content changes (then it is sent once more).

use segsync_core::{Candidate, Held, Holds, MemberKey, RecordError, SnapshotEntry};

use super::RunError;
use crate::state::{RefusalRecord, StagedMember, StateStore, SuppressionKind};

/// The holds of `export`: both suppression lists and its remembered refusals.
pub(super) fn load(state: &StateStore, export: &str) -> Result<Holds, RunError> {
    let mut holds = Holds::default();
    let lists = [state.suppressions(None)?, state.suppressions(Some(export))?];
    for s in lists.iter().flatten() {
        match s.kind {
            SuppressionKind::Key => holds.suppress_profile(&s.value),
            SuppressionKind::Email => {
                if let Err(why) = holds.suppress_address(&s.value) {
                    tracing::warn!(%why, "a suppressed address that is no address is ignored");
                }
            }
        }
    }
    for r in state.refusals(export)? {
        holds.remember_refusal(&r.email, r.fingerprint);
    }
    Ok(holds)
}

/// The members a plan holds back, counted, and the refused addresses it sends again (their
/// content changed): their refusals are forgotten when the run starts sending.
#[derive(Debug, Default, Clone)]
pub struct HeldCounts {
    pub suppressed: u64,
    pub remembered: u64,
    pub retrying: Vec<String>,
}

impl HeldCounts {
    /// Whether the diff leaves member `key` alone (counted here if so).
    pub(super) fn holds(
        &mut self,
        holds: &Holds,
        key: MemberKey,
        staged: Option<&StagedMember>,
        entry: Option<&SnapshotEntry>,
    ) -> bool {
        let candidate = Candidate {
            wanted: staged.map(|w| (w.fingerprint, w.profiles.as_str())),
            delivered_profiles: entry.and_then(|e| e.profiles.as_deref()),
        };
        match holds.judge(key, candidate) {
            Some(Held::Suppressed) => self.suppressed += 1,
            Some(Held::Remembered) => self.remembered += 1,
            None => {
                if let Some(w) = staged.filter(|w| holds.retries(key, w.fingerprint)) {
                    self.retrying.push(w.email.clone());
                }
                return false;
            }
        }
        true
    }
}

/// A record Mailchimp refused for good, with the fingerprint of the content refused.
pub(super) type ForGood = (RecordError, u64);

/// Remembers the refusals for good of one answer of run `run_id`.
pub(super) fn remember(
    state: &StateStore,
    export: &str,
    run_id: i64,
    refused: &[ForGood],
) -> Result<(), RunError> {
    if refused.is_empty() {
        return Ok(());
    }
    let at = crate::state::now();
    let records: Vec<RefusalRecord> = refused
        .iter()
        .map(|(e, fp)| RefusalRecord {
            export: export.to_string(),
            email: e.email.clone(),
            profile_key: e.profile_key.clone(),
            fingerprint: *fp,
            reason: e.reason.clone(),
            refused_at: at.clone(),
            run_id,
        })
        .collect();
    state.remember_refusals(&records)?;
    Ok(())
}
