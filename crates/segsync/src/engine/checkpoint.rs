//! The run's checkpoints, written on a thread of their own with a connection of their own.
//!
//! The sending task hands over what each answer established (the facts) and goes straight
//! back to keeping requests in flight; this thread moves the snapshot forward for them. When
//! it keeps up, every answer is one transaction; when answers arrive faster than the disk
//! takes them, the ones waiting are written together, in one transaction, in the order they
//! were answered. The snapshot therefore may lag behind Mailchimp by a few answers, never run
//! ahead of it: a crash in between loses facts the next run learns again (its diff sends
//! those members once more, idempotent upserts and tag changes; creates are covered by their
//! intents, recorded before they were sent).

use std::collections::HashMap;
use std::thread::JoinHandle;

use segsync_core::plan::{
    acknowledge_archive, acknowledge_forgotten, acknowledge_move, acknowledge_tag,
    acknowledge_upsert,
};
use segsync_core::{
    profile_keys as split_profile_keys, Fact, MemberKey, RecordError, SnapshotEntry, Status,
    TagSet, Upsert,
};
use tokio::sync::{mpsc, oneshot};

use super::RunError;
use crate::state::{ChangeAction, RunChange, StateError, StateStore};

/// Answers waiting for the thread, at most. Beyond that the sending task waits: the
/// snapshot never lags further behind than this.
const WAITING: usize = 64;

/// Everything one answer taught: its facts, the create intents to drop (members found
/// to be someone else's), the records it could not send.
#[derive(Default)]
pub(super) struct Answer {
    pub facts: Vec<Fact>,
    pub not_ours: Vec<MemberKey>,
    pub errors: Vec<RecordError>,
}

enum Msg {
    Answer(Answer),
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// The checkpoint thread of one run. Dropping it writes what it was given, then ends the
/// thread: a run that fails half-way keeps every acknowledged fact.
pub(super) struct Checkpoints {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<Result<(), StateError>>>,
}

impl Checkpoints {
    /// Starts the thread for run `run_id` of `export`, writing through `state`: a connection
    /// of its own, so that the sending task goes on reading the plan while it writes.
    /// `tags` names the export's tags by bit, for the run's change log.
    pub fn start(
        state: StateStore,
        export: String,
        run_id: i64,
        tags: HashMap<usize, String>,
    ) -> std::io::Result<Checkpoints> {
        let (tx, rx) = mpsc::channel(WAITING);
        let thread = std::thread::Builder::new()
            .name("segsync-checkpoints".into())
            .spawn(move || Writer::new(state, export, run_id, tags).serve(rx))?;
        Ok(Checkpoints {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands over one answer's facts.
    pub async fn record(&mut self, answer: Answer) -> Result<(), RunError> {
        if answer.facts.is_empty() && answer.not_ours.is_empty() && answer.errors.is_empty() {
            return Ok(());
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(Msg::Answer(answer)).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// Waits until everything handed over is written.
    pub async fn flush(&mut self) -> Result<(), RunError> {
        let (done, written) = oneshot::channel();
        let sent = match &self.tx {
            Some(tx) => tx.send(Msg::Flush(done)).await.is_ok(),
            None => false,
        };
        if sent && written.await.is_ok() {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The error that ended the thread (it only ends early on one).
    fn failure(&mut self) -> RunError {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e.into(),
            Some(Err(_)) => anyhow::anyhow!("the checkpoint thread panicked").into(),
            Some(Ok(Ok(()))) | None => anyhow::anyhow!("the checkpoint thread has ended").into(),
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "writing the run's last checkpoints"),
                Err(_) => tracing::warn!("the checkpoint thread panicked"),
            }
        }
    }
}

struct Writer {
    state: StateStore,
    export: String,
    run_id: i64,
    /// Entries of members created by a replayed request, until a fact of theirs is written.
    replayed: HashMap<MemberKey, SnapshotEntry>,
    /// The export's tag names by bit, for the change log.
    tags: HashMap<usize, String>,
}

impl Writer {
    fn new(state: StateStore, export: String, run_id: i64, tags: HashMap<usize, String>) -> Writer {
        Writer {
            state,
            export,
            run_id,
            replayed: HashMap::new(),
            tags,
        }
    }

    fn serve(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), StateError> {
        let mut answers = Vec::new();
        let mut flushes = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            // Whatever else is waiting goes into the same transaction.
            while let Some(m) = next.take().or_else(|| rx.try_recv().ok()) {
                match m {
                    Msg::Answer(a) => answers.push(a),
                    Msg::Flush(done) => flushes.push(done),
                }
            }
            self.write(std::mem::take(&mut answers))?;
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
        }
        Ok(())
    }

    /// One checkpoint for answers taken in the order they came.
    fn write(&mut self, answers: Vec<Answer>) -> Result<(), StateError> {
        if answers.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<MemberKey> = answers
            .iter()
            .flat_map(|a| a.facts.iter().flat_map(Fact::keys))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut snapshot = self.state.snapshot_entries(&self.export, &keys)?;
        let mut changes = Changes::default();
        let mut not_ours: Vec<MemberKey> = Vec::new();
        let mut errors: Vec<RecordError> = Vec::new();
        for a in answers {
            for fact in a.facts {
                if let Some(c) = self.change_of(&fact, &snapshot) {
                    changes.log.push(c);
                }
                self.apply(fact, &mut snapshot, &mut changes);
            }
            not_ours.extend(a.not_ours);
            errors.extend(a.errors);
        }
        let Changes {
            mut touched,
            mut moved_away,
            log,
        } = changes;
        self.state.add_run_changes(self.run_id, &log)?;
        touched.sort_unstable();
        touched.dedup();
        let entries: Vec<(MemberKey, SnapshotEntry)> = touched
            .iter()
            .filter_map(|k| snapshot.remove(k).map(|e| (*k, e)))
            .collect();
        self.state.save_snapshot(&self.export, &entries)?;
        // The old address of a moved member is no member any more; its entry went with it.
        moved_away.retain(|k| !touched.contains(k));
        if !moved_away.is_empty() {
            self.state
                .remove_snapshot_entries(&self.export, &moved_away)?;
        }
        if !not_ours.is_empty() {
            self.state.forget_create_intents(&self.export, &not_ours)?;
        }
        if !errors.is_empty() {
            self.state.add_run_errors(self.run_id, &errors)?;
        }
        Ok(())
    }

    /// The change-log line of one fact, read against the snapshot before the fact moves it
    /// (an unsubscribe is a status that changes to unsubscribed; a move names the old
    /// address; an archive the address it had).
    fn change_of(
        &self,
        fact: &Fact,
        snapshot: &HashMap<MemberKey, SnapshotEntry>,
    ) -> Option<RunChange> {
        let before = |k: &MemberKey| snapshot.get(k).or_else(|| self.replayed.get(k));
        let keys_of = |p: &Option<String>| p.as_deref().map(profile_keys).unwrap_or_default();
        let (action, email, detail, profiles) = match fact {
            Fact::Upserted {
                key,
                email,
                status,
                created,
                profiles,
                ..
            } => {
                let was = before(key).map(|e| e.status);
                let action = if *created {
                    ChangeAction::Created
                } else if *status == Status::Unsubscribed && was != Some(Status::Unsubscribed) {
                    ChangeAction::Unsubscribed
                } else {
                    ChangeAction::Updated
                };
                let detail = status.as_str();
                (action, email.clone(), detail.to_string(), keys_of(profiles))
            }
            Fact::Moved {
                from,
                email,
                profiles,
                ..
            } => {
                let old = before(from).map(|e| e.email.clone()).unwrap_or_default();
                (ChangeAction::Moved, email.clone(), old, keys_of(profiles))
            }
            Fact::Tagged {
                key,
                email,
                bit,
                added,
            } => {
                let action = if *added {
                    ChangeAction::Tagged
                } else {
                    ChangeAction::Untagged
                };
                let tag = self.tags.get(bit).cloned().unwrap_or_default();
                let profiles = before(key)
                    .map(|e| keys_of(&e.profiles))
                    .unwrap_or_default();
                (action, email.clone(), tag, profiles)
            }
            Fact::Archived { key } => {
                let e = before(key)?;
                (
                    ChangeAction::Archived,
                    e.email.clone(),
                    String::new(),
                    keys_of(&e.profiles),
                )
            }
            Fact::Forgotten { email, .. } => (
                ChangeAction::Forgotten,
                email.clone(),
                "permanently deleted in Mailchimp".to_string(),
                String::new(),
            ),
            Fact::Replayed { .. } => return None,
        };
        Some(RunChange {
            action,
            email,
            detail,
            profile_key: profiles,
        })
    }

    /// Moves the loaded `snapshot` forward by one fact.
    fn apply(
        &mut self,
        fact: Fact,
        snapshot: &mut HashMap<MemberKey, SnapshotEntry>,
        changes: &mut Changes,
    ) {
        let key = fact.key();
        if let Some(e) = self.replayed.get(&key) {
            snapshot.entry(key).or_insert_with(|| e.clone());
        }
        match fact {
            Fact::Upserted {
                key,
                email,
                status,
                created,
                fingerprint,
                profiles,
            } => {
                let item = written(key, email, status, fingerprint, profiles);
                acknowledge_upsert(snapshot, &item, status, created);
                self.replayed.remove(&key);
            }
            Fact::Replayed { key, email } => {
                if !snapshot.contains_key(&key) {
                    self.replayed.insert(key, replayed_entry(email));
                }
                return;
            }
            // The status is the entry's own; a member without one was just tagged, so it is
            // in the audience, subscribed as far as we know.
            Fact::Tagged {
                key,
                email,
                bit,
                added,
            } => acknowledge_tag(snapshot, key, &email, bit, added, Status::Subscribed),
            Fact::Moved {
                from,
                key,
                email,
                status,
                fingerprint,
                profiles,
            } => {
                let item = written(key, email, status, fingerprint, profiles);
                acknowledge_move(snapshot, from, &item);
                changes.moved_away.push(from);
            }
            Fact::Archived { key } => acknowledge_archive(snapshot, key),
            Fact::Forgotten { key, email } => acknowledge_forgotten(snapshot, key, &email),
        }
        changes.touched.push(key);
    }
}

/// What one checkpoint's facts changed: the entries to write, and the old addresses of moved
/// members, whose entries went with them.
#[derive(Default)]
struct Changes {
    touched: Vec<MemberKey>,
    moved_away: Vec<MemberKey>,
    /// The lines of the run's change log.
    log: Vec<RunChange>,
}

/// A write Mailchimp acknowledged, as the snapshot's rules read it.
fn written(
    key: MemberKey,
    email: String,
    status: Status,
    fingerprint: Option<u64>,
    profiles: Option<String>,
) -> Upsert {
    Upsert {
        key,
        email,
        status,
        merge: None,
        fingerprint,
        profiles,
        tags: TagSet::default(),
    }
}

/// A member a lost answer's create made: the export's own, subscribed as far as we know,
/// until the update that follows says more.
fn replayed_entry(email: String) -> SnapshotEntry {
    SnapshotEntry {
        email,
        fingerprint: None,
        tags: TagSet::default(),
        status: Status::Subscribed,
        owned: true,
        profiles: None,
    }
}

/// The profile keys of a snapshot's `profiles` value, `;`-separated.
fn profile_keys(profiles: &str) -> String {
    split_profile_keys(profiles).collect::<Vec<_>>().join(";")
}
