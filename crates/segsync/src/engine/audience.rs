//! The audience read of a run: what in the audience can differ from what the export
//! delivered (see `segsync_core::refresh`). It starts once the audience itself has answered
//! the run's first request, so that its requests go while the profiles are read; the run
//! takes its answer before it compares anything with the audience, and keeps what it said in
//! the snapshot. The audience's tags are read ahead too, while the diff goes on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Utc};
use segsync_core::{statuses_to_read, MemberKey, SnapshotEntry, Status, TagSet};
use tokio::task::JoinHandle;

use super::RunError;
use crate::mailchimp::{self, encoder::core_status, Client};
use crate::state::{ExportConfig, StateStore};

/// Each member's status, as the audience told it (compact, whatever the audience's size).
pub(super) type Statuses = HashMap<MemberKey, Status>;

/// What the audience read answers: the statuses, and when the next run should read from.
type Answer = Result<(Statuses, DateTime<Utc>), mailchimp::Error>;

/// A read of the audience started before its answer is needed, in a task of its own, so
/// that its requests go while the run works locally. Dropped unused (the run failed first,
/// or did not need it), its requests stop.
pub(crate) struct Ahead<T>(JoinHandle<Result<T, mailchimp::Error>>);

impl<T: Send + 'static> Ahead<T> {
    pub fn start(
        read: impl std::future::Future<Output = Result<T, mailchimp::Error>> + Send + 'static,
    ) -> Ahead<T> {
        Ahead(tokio::spawn(read))
    }

    /// The answer, once it is in.
    pub async fn answer(mut self) -> Result<T, RunError> {
        let answer = (&mut self.0)
            .await
            .map_err(|e| anyhow::anyhow!("a read of the audience failed: {e}"))?;
        Ok(answer?)
    }
}

impl<T> Drop for Ahead<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The audience's tags (id, name), read ahead: from the diff's first decision that tags
/// anyone, while the diff and the plan go on, for the tag ids the run's writes name.
pub(crate) type TagsAhead = Ahead<Vec<(u64, String)>>;

/// Starts the read of the tags of `client`'s audience `list_id`.
pub(super) fn read_tags_ahead(client: &Client, list_id: &str) -> TagsAhead {
    let (client, list_id) = (client.clone(), list_id.to_string());
    Ahead::start(async move { client.tags(&list_id).await })
}

/// An audience read under way: everything on an export's first run; afterwards the members
/// changed since the last read whose status can differ from what the export delivered.
pub(super) struct AudienceRead {
    first_run: bool,
    read: Ahead<(Statuses, DateTime<Utc>)>,
}

impl AudienceRead {
    /// Starts the read of `export`'s audience, in a task of its own.
    pub fn start(
        client: &Client,
        state: &StateStore,
        export: &ExportConfig,
    ) -> Result<AudienceRead, RunError> {
        let first_run = !state.has_snapshot(&export.name)?;
        let since = match state.audience_read_at(&export.name)? {
            Some(t) if !first_run => DateTime::parse_from_rfc3339(&t)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => None,
        };
        let reads = audience_reads(state, export, since.is_some())?;
        tracing::debug!(?since, ?reads, "reading the audience");
        let (client, list_id) = (client.clone(), export.audience_id.clone());
        let read = Ahead::start(async move { read(&client, &list_id, since, &reads).await });
        Ok(AudienceRead { first_run, read })
    }

    /// The read's answer, once it is all in, kept in the snapshot (see
    /// [`keep_what_the_audience_said`]); `t` is when the run began preparing, for the debug
    /// log's stages.
    pub async fn finish(
        self,
        state: &mut StateStore,
        export: &ExportConfig,
        t: Instant,
    ) -> Result<(Statuses, DateTime<Utc>), RunError> {
        let (audience, read_at) = self.read.answer().await?;
        tracing::debug!(changed = audience.len(), elapsed = ?t.elapsed(), "audience read");
        keep_what_the_audience_said(state, export, &audience, self.first_run)?;
        Ok((audience, read_at))
    }
}

/// The reads, side by side; each member's status goes in as it comes.
async fn read(
    client: &Client,
    list_id: &str,
    since: Option<DateTime<Utc>>,
    reads: &[Option<&'static str>],
) -> Answer {
    let local_start = Utc::now();
    let audience: Mutex<Statuses> = Mutex::new(HashMap::new());
    let answers = futures_util::future::join_all(reads.iter().map(|status| {
        let audience = &audience;
        client.members_with_status_each(list_id, since, *status, move |m| {
            if let Some(k) = MemberKey::from_hex(&m.hash) {
                let mut audience = audience.lock().unwrap_or_else(|e| e.into_inner());
                audience.insert(k, core_status(&m.status));
            }
        })
    }))
    .await;
    let mut server_time: Option<DateTime<Utc>> = None;
    for answer in answers {
        if let Some(at) = answer? {
            server_time = Some(server_time.map_or(at, |t| t.min(at)));
        }
    }
    let audience = audience.into_inner().unwrap_or_else(|e| e.into_inner());
    // The next run reads what changed after this read began, by Mailchimp's own clock when
    // it tells it (a few seconds of margin for its one-second resolution), else by ours with
    // a margin for clock skew.
    let read_at = match server_time {
        Some(t) => t - chrono::Duration::seconds(AUDIENCE_MARGIN_SECS),
        None => local_start - chrono::Duration::minutes(10),
    };
    Ok((audience, read_at))
}

/// The member reads of one audience read, by status (`None`: every status but, in some
/// answers, archived). Without an earlier read to go on from: everyone, and archived
/// contacts by name (some answers leave them out of a plain read, and a contact archived in
/// Mailchimp must never be sent a status: that unarchives it). After one: the statuses that
/// can differ from what the export delivered, and all of them when a run died before it knew
/// what its creates did (their members are recognised by their create intents).
fn audience_reads(
    state: &StateStore,
    export: &ExportConfig,
    incremental: bool,
) -> Result<Vec<Option<&'static str>>, RunError> {
    if !incremental {
        return Ok(vec![None, Some("archived")]);
    }
    let held = if state.create_intents(&export.name)?.is_empty() {
        state.snapshot_statuses(&export.name)?
    } else {
        // Any status other than the one it delivers: every status is read.
        vec![Status::Archived, Status::Subscribed, Status::Pending]
    };
    Ok(statuses_to_read(export.status_if_new.status(), &held)
        .into_iter()
        .map(|s| Some(s.as_str()))
        .collect())
}

/// What the audience said is true now: keep it, so that a member who unsubscribed in
/// Mailchimp is never sent back as subscribed by a later run, even one that does not read
/// that change again. Members a run created without living to checkpoint them (killed
/// between Mailchimp's write and the answer) show in the audience now, and their intent
/// says they are this export's own; their content is sent again (fingerprint unknown).
fn keep_what_the_audience_said(
    state: &mut StateStore,
    export: &ExportConfig,
    audience: &Statuses,
    first_run: bool,
) -> Result<(), RunError> {
    let intents = state.create_intents(&export.name)?;
    let intent_keys: Vec<MemberKey> = intents.iter().map(|(k, _)| *k).collect();
    let known = state.snapshot_entries(&export.name, &intent_keys)?;
    let mut learned: Vec<(MemberKey, SnapshotEntry)> = Vec::new();
    for (k, email) in intents {
        if let (None, Some(status)) = (known.get(&k), audience.get(&k)) {
            learned.push((
                k,
                SnapshotEntry {
                    email,
                    fingerprint: None,
                    tags: TagSet::default(),
                    status: *status,
                    owned: true,
                    profiles: None,
                },
            ));
        }
    }
    drop(known);
    // Statuses that changed, compared in chunks (an audience read back whole stays cheap).
    if !first_run {
        let keys: Vec<MemberKey> = audience.keys().copied().collect();
        for chunk in keys.chunks(LEARN_CHUNK) {
            for (k, mut e) in state.snapshot_entries(&export.name, chunk)? {
                let s = audience[&k];
                if e.status != s {
                    e.status = s;
                    learned.push((k, e));
                }
            }
        }
    }
    state.save_snapshot(&export.name, &learned)?;
    Ok(())
}

/// Snapshot entries compared at once with the statuses the audience reported.
const LEARN_CHUNK: usize = 10_000;

/// Seconds subtracted from Mailchimp's clock at the audience read, for the next run's
/// `since_last_changed` (its timestamps have a one-second resolution).
const AUDIENCE_MARGIN_SECS: i64 = 5;
