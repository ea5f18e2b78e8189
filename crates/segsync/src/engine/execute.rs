//! The second stage of a run: the plan sent, phase by phase (upserts, tags, removals; see
//! `segsync_core::requests`). For each phase the core groups the staged rows into
//! operations, the Mailchimp destination sends each one and reads its answer
//! (`segsync_mailchimp::sink`), and the answer's facts go to the checkpoint thread. Up to
//! `max_in_flight` requests are in flight; each phase ends once its answers are all written.
//!
//! Requests that failed transiently after all their retries go again after their phase (the
//! destination decides which: `segsync_mailchimp::retry::requeue`); creates that met a member
//! already there become updates carrying that member's own status.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use segsync_core::{
    MemberKey, Move, Op, Part, PlannedRows, RecordError, Requests, Status, Upsert, BATCH,
};
use tokio::task::JoinSet;

use super::checkpoint::{self, Checkpoints};
use super::report::{self, profile_key, Tallied};
use super::stream::Streamed;
use super::tracking::{RunPhase, Tracker};
use super::{crash, Prepared, Progress, RunError, RunReport, StopReason, StopSignal};
use crate::mailchimp::{self, encoder::core_status, sink, Client, Sink};
use crate::state::{PlannedUpsert, RunCounts, StateStore, UpsertPhase};

/// Above this many members met again ("exists") in a phase, their statuses are read from
/// the audience's recent changes (a few pages) rather than asked one by one.
const MANY_TO_LOOK_UP: usize = 10;

/// Sends a prepared plan, phase by phase, handing every acknowledged request's facts to the
/// checkpoint thread, which writes them through `checkpoint_store` (a second connection to
/// the same store); each phase ends once they are all written.
pub async fn execute(
    state: &mut StateStore,
    checkpoint_store: StateStore,
    run_id: i64,
    mut p: Prepared,
    progress: Arc<dyn Progress>,
    stop: &StopSignal,
) -> Result<RunReport, RunError> {
    let refused = std::mem::take(&mut p.refused);
    state.add_run_errors(run_id, &refused)?;
    // Refused addresses whose content changed are sent again: their refusals are spent.
    state.forget_refusals(&p.export.name, &p.held.retrying)?;
    let mut names = tag_names(&p);
    for (bit, name) in state.tag_names(&p.export.name)? {
        names.entry(bit).or_insert(name);
    }
    let checkpoints = Checkpoints::start(checkpoint_store, p.export.name.clone(), run_id, names)
        .map_err(|e| anyhow::anyhow!("starting the checkpoint thread: {e}"))?;
    let mut run = Sending {
        state,
        run_id,
        export: p.export.name.clone(),
        list_id: p.export.audience_id.as_str().into(),
        client: p.client.clone(),
        tally: Tallied {
            counts: p.counts.clone(),
            errors: refused,
            failure: None,
        },
        undelivered: HashSet::new(),
        sink: Sink::new(tag_names(&p)),
        checkpoints,
        progress,
        hook: crash::Hook::from_env(),
        answered: 0,
        changed_since: p.audience_read_at,
        tracker: Tracker::new(),
    };
    let segment_ids = Arc::new(sink::AudienceTags {
        ids: run.ready_audience(&mut p).await?,
        names: tag_names(&p),
    });
    // A diff going on while the upserts are sent: the phases after them come from the
    // whole plan, once it is written.
    let mut queue = match p.diffing.take() {
        Some(d) => vec![Phase::streamed(d)],
        None => phases(&p, 0),
    };
    let mut i = 0;
    while i < queue.len() {
        if let Some(reason) = stop.reason() {
            run.checkpoints.flush().await?;
            return run.stopped(&p.export.name, reason);
        }
        let mut phase = std::mem::replace(&mut queue[i], Phase::memory(VecDeque::new(), 0));
        let end = run.send_phase(&mut phase, &segment_ids, stop).await?;
        let streamed = match phase.source {
            Source::Streamed(s) => Some(s.into_done()),
            _ => None,
        };
        // Members whose address was not delivered are not tagged: the phase is done with
        // what it answered.
        let c = &mut run.tally.counts;
        c.members_total = c.members_total.min(c.members_done);
        if let Some(reason) = stop.reason() {
            run.save_counts()?;
            return run.stopped(&p.export.name, reason);
        }
        if let Some(done) = streamed {
            let d = done.ok_or_else(|| anyhow::anyhow!("the upserts ran out before the diff"))?;
            p.end_diffing(run.state, d)?;
            run.diffed(&p.counts);
            queue.extend(phases(&p, 1));
        }
        if !end.again.is_empty() {
            queue.insert(i + 1, Phase::memory(end.again.into(), phase.round + 1));
        }
        let updates = run.met_again(end.exists).await?;
        if !updates.is_empty() {
            let ops = updates.chunks(BATCH).map(|c| Op::Upsert {
                update_existing: true,
                items: c.to_vec(),
            });
            queue.insert(i + 1, Phase::memory(ops.collect(), 0));
        }
        run.save_counts()?;
        i += 1;
    }
    // Every create was answered (acknowledged, or refused): the intents are spent.
    run.state.clear_create_intents(&p.export.name)?;
    run.tracker.settle(&mut run.tally.counts, &run.client);
    report::finished(
        run.state,
        run_id,
        &p.export.name,
        &run.client,
        run.tally,
        p.audience_read_at,
    )
}

/// The records an answer refused, as the run reports them, and those refused for good (with
/// the fingerprint of the content refused), to remember.
fn record_errors(
    state: &StateStore,
    refused: Vec<sink::Refused>,
) -> (Vec<RecordError>, Vec<super::holds::ForGood>) {
    let mut for_good = Vec::new();
    let errors = refused
        .into_iter()
        .map(|r| {
            let e = RecordError {
                profile_key: profile_key(state, &r.email),
                email: r.email,
                reason: r.reason,
            };
            if let Some(fp) = r.for_good {
                for_good.push((e.clone(), fp));
            }
            e
        })
        .collect();
    (errors, for_good)
}

/// The export's tag names, by tag bit.
fn tag_names(p: &Prepared) -> HashMap<usize, String> {
    p.tag_bits
        .iter()
        .copied()
        .zip(p.tag_names.iter().cloned())
        .collect()
}

/// The plan's phases from the `from`th on (0: upserts, 1: tags, 2: removals), each from the
/// plan on disk, with its members to go.
fn phases(p: &Prepared, from: usize) -> Vec<Phase> {
    let s = &p.plan.summary;
    let sizes = [
        s.moves + s.creates + s.updates,
        s.tag_adds + s.tag_removes,
        s.unsubscribes + s.archives,
    ];
    segsync_core::requests::phases(&p.plan.tag_bits)
        .into_iter()
        .zip(sizes)
        .skip(from)
        .filter(|(_, size)| *size > 0)
        .map(|(parts, size)| Phase {
            source: Source::Stored(Requests::new(parts)),
            round: 0,
            total: size as u64,
            exhausted: false,
            named: false,
        })
        .collect()
}

/// Where a phase's requests come from: the plan on disk, grouped by the core, the upserts of
/// a plan still being diffed, or requests kept in memory (sent again after a transient
/// failure, or updates of members met again).
enum Source {
    Stored(Requests),
    Streamed(Box<Streamed>),
    Memory(VecDeque<Op>),
}

struct Phase {
    source: Source,
    /// 0 for the plan's own requests; n for the nth time requests are sent again.
    round: u32,
    /// Members to go, for the progress display.
    total: u64,
    exhausted: bool,
    /// Whether the progress display was told this phase's name.
    named: bool,
}

impl Phase {
    fn memory(ops: VecDeque<Op>, round: u32) -> Phase {
        let total = ops.iter().map(Op::size).sum::<usize>() as u64;
        Phase {
            source: Source::Memory(ops),
            round,
            total,
            exhausted: false,
            named: false,
        }
    }

    /// The upserts of a plan whose diff goes on (their total for the display: the members
    /// staged, at most the upserts).
    fn streamed(diffing: super::prepare::Diffing) -> Phase {
        Phase {
            total: diffing.staged_members(),
            source: Source::Streamed(Box::new(Streamed::new(diffing))),
            round: 0,
            exhausted: false,
            named: false,
        }
    }

    fn next_op(
        &mut self,
        state: &mut StateStore,
        export: &str,
        undelivered: &HashSet<String>,
    ) -> Result<Option<Op>, RunError> {
        match &mut self.source {
            Source::Memory(ops) => Ok(ops.pop_front()),
            Source::Stored(requests) => Ok(requests.next(&mut StagedRows(state), undelivered)?),
            Source::Streamed(upserts) => upserts.next(state, export),
        }
    }
}

/// A planned upsert as the sink sends it, its merge values read back.
pub(super) fn upsert_of(r: PlannedUpsert) -> Result<Upsert, RunError> {
    let merge = match r.merge_json {
        Some(j) => Some(serde_json::from_str(&j).map_err(|e| {
            RunError::Other(anyhow::anyhow!("a staged member's merge values: {e}"))
        })?),
        None => None,
    };
    Ok(Upsert {
        key: r.key,
        email: r.email,
        status: r.status,
        merge,
        fingerprint: r.fingerprint,
        profiles: r.profiles,
        tags: r.tags,
    })
}

/// The run's plan on disk, as the core's grouping reads it.
struct StagedRows<'a>(&'a StateStore);

impl PlannedRows for StagedRows<'_> {
    type Error = RunError;

    fn upserts(
        &mut self,
        part: Part,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Upsert)>, RunError> {
        let phase = match part {
            Part::Creates => UpsertPhase::Create,
            Part::Updates => UpsertPhase::Update,
            Part::Unsubscribes => UpsertPhase::Unsubscribe,
            Part::Tag(_) | Part::Archives | Part::Moves => return Ok(Vec::new()),
        };
        let rows = self.0.planned_upserts(phase, after, limit)?;
        rows.into_iter()
            .map(|r| Ok((r.seq, upsert_of(r)?)))
            .collect()
    }

    fn moves(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, Move)>, RunError> {
        let rows = self.0.planned_moves(after, limit)?;
        rows.into_iter()
            .map(|(from, from_email, to)| {
                let seq = to.seq;
                let to = upsert_of(to)?;
                Ok((
                    seq,
                    Move {
                        from,
                        from_email,
                        to,
                    },
                ))
            })
            .collect()
    }

    fn tags(
        &mut self,
        bit: usize,
        adding: bool,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, MemberKey, String)>, RunError> {
        Ok(self.0.planned_tags(bit, adding, after, limit)?)
    }

    fn archives(
        &mut self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, MemberKey, String)>, RunError> {
        Ok(self.0.planned_archives(after, limit)?)
    }
}

/// What a phase left for later: requests to send again, members to update.
#[derive(Default)]
struct PhaseEnd {
    again: Vec<Op>,
    exists: Vec<Upsert>,
}

/// A run while it sends: what it has counted so far, and the parts it sends through.
struct Sending<'a> {
    state: &'a mut StateStore,
    run_id: i64,
    export: String,
    list_id: Arc<str>,
    client: Client,
    tally: Tallied,
    /// Addresses whose upsert was not delivered: their tag additions are not sent.
    undelivered: HashSet<String>,
    sink: Sink,
    checkpoints: Checkpoints,
    progress: Arc<dyn Progress>,
    hook: crash::Hook,
    /// Requests answered in this run's send phases.
    answered: u64,
    /// Every member this run creates changed after this (prepare's read, minus a margin).
    changed_since: chrono::DateTime<chrono::Utc>,
    /// The phase it is in, and where its retries happened.
    tracker: Tracker,
}

impl Sending<'_> {
    /// Enters `phase` (`total` members to go): the display is told, the run's counts say so.
    fn enter(&mut self, phase: RunPhase, total: u64) -> Result<(), RunError> {
        self.tracker
            .enter(&mut self.tally.counts, &self.client, phase, total);
        self.progress.phase(phase.label(), total);
        self.save_counts()
    }

    /// The diff that went on while the upserts were sent is done: the counts it gives.
    fn diffed(&mut self, counts: &RunCounts) {
        let c = &mut self.tally.counts;
        c.members = counts.members;
        c.unchanged = counts.unchanged;
        c.skipped += counts.skipped;
        c.suppressed = counts.suppressed;
        c.remembered_refusals = counts.remembered_refusals;
    }

    /// Saves the run's counts (its phase and retries with them).
    fn save_counts(&mut self) -> Result<(), RunError> {
        self.tracker.settle(&mut self.tally.counts, &self.client);
        self.state
            .update_run_counts(self.run_id, &self.tally.counts)?;
        Ok(())
    }

    /// Creates the merge fields the export creates, and finds (or creates) the audience's
    /// tags, if this plan tags anyone: the tag ids by the export's tag bits. The fields are
    /// created one after another (Mailchimp lists them in the order they were created),
    /// beside the tags' read and creates, which need none of them.
    async fn ready_audience(&mut self, p: &mut Prepared) -> Result<HashMap<usize, u64>, RunError> {
        let summary = &p.plan.summary;
        // A plan still being diffed may tag anyone: the ids are ready before it sends.
        let tagging = summary.tag_adds + summary.tag_removes > 0
            || (p.diffing.is_some() && !p.tag_bits.is_empty());
        if !p.fields_to_create.is_empty() || tagging {
            self.enter(RunPhase::Preparing, 0)?;
        }
        let fields: Vec<_> = p
            .fields_to_create
            .iter()
            .map(|t| new_merge_field(p, t))
            .collect();
        let (client, list_id) = (&self.client, &self.list_id);
        let create_fields = async move {
            for field in &fields {
                client.create_merge_field_with(list_id, field).await?;
            }
            Ok::<_, RunError>(())
        };
        let find_tags = async {
            if !tagging {
                return Ok(None);
            }
            let existing = p.tags().await?;
            let ids = tag_ids(client, list_id, &p.tag_names, &p.tag_bits, &existing).await?;
            Ok::<_, RunError>(Some((ids, existing)))
        };
        let ((), found) = tokio::try_join!(create_fields, find_tags)?;
        let Some((mut tag_ids, existing)) = found else {
            return Ok(HashMap::new());
        };
        // Tags named in the snapshot but no longer chosen still need removing.
        for (bit, name) in self.state.tag_names(&p.export.name)? {
            if let std::collections::hash_map::Entry::Vacant(v) = tag_ids.entry(bit) {
                if let Some((id, _)) = existing.iter().find(|(_, n)| *n == name) {
                    v.insert(*id);
                }
            }
        }
        Ok(tag_ids)
    }

    /// Sends one phase with up to `max_in_flight` requests in flight (each a task of its
    /// own, so that encoding and decoding run on any of the runtime's threads; dropped, the
    /// set cancels them), and writes every answer's facts.
    async fn send_phase(
        &mut self,
        phase: &mut Phase,
        segment_ids: &Arc<sink::AudienceTags>,
        stop: &StopSignal,
    ) -> Result<PhaseEnd, RunError> {
        let mut end = PhaseEnd::default();
        let mut in_flight = JoinSet::new();
        loop {
            self.fill(phase, &mut in_flight, segment_ids, stop)?;
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            let sent = done.map_err(|e| anyhow::anyhow!("a request's task failed: {e}"))?;
            self.answered += 1;
            self.hook.answered(self.answered);
            // The next request leaves before this answer is handled, unless the answer
            // stops the run (nothing more may be sent with a revoked credential).
            if !sent.stops_the_run() {
                self.fill(phase, &mut in_flight, segment_ids, stop)?;
            }
            self.take_answer(sent, phase.round, &mut end).await?;
            if let Source::Streamed(upserts) = &mut phase.source {
                upserts.plan_ahead(self.state, &self.export)?;
            }
        }
        // The phase's answers are all written before anything reads the store again.
        self.checkpoints.flush().await?;
        Ok(end)
    }

    /// Keeps the requests in flight at the limit; a stop request sends no new one (what is
    /// not sent stays for the next run). Creates are recorded as intents before they leave.
    fn fill(
        &mut self,
        phase: &mut Phase,
        in_flight: &mut JoinSet<sink::Sent>,
        segment_ids: &Arc<sink::AudienceTags>,
        stop: &StopSignal,
    ) -> Result<(), RunError> {
        let max_in_flight = self.client.max_in_flight().max(1);
        while !phase.exhausted && in_flight.len() < max_in_flight && stop.reason().is_none() {
            let Some(op) = phase.next_op(self.state, &self.export, &self.undelivered)? else {
                phase.exhausted = true;
                break;
            };
            if !phase.named {
                let name = match &op {
                    Op::Upsert { .. } | Op::Move(_) => RunPhase::Sending,
                    Op::Tag { .. } => RunPhase::Tagging,
                    Op::Archive { .. } => RunPhase::Removing,
                };
                self.enter(name, phase.total)?;
                phase.named = true;
            }
            if let Op::Upsert {
                update_existing: false,
                items,
            } = &op
            {
                let creating: Vec<(MemberKey, &str)> =
                    items.iter().map(|u| (u.key, u.email.as_str())).collect();
                self.state.record_create_intents(&self.export, &creating)?;
            }
            in_flight.spawn(sink::send(
                self.client.clone(),
                self.list_id.clone(),
                segment_ids.clone(),
                op,
            ));
        }
        Ok(())
    }

    /// One answer: read by the destination, counted, and handed to the checkpoint thread
    /// (with the answers that arrive while it writes, if any).
    async fn take_answer(
        &mut self,
        sent: sink::Sent,
        round: u32,
        end: &mut PhaseEnd,
    ) -> Result<(), RunError> {
        let size = sent.op.size() as u64;
        let read = self.sink.read(sent, round)?;
        self.undelivered.extend(read.undelivered);
        // Tags new members' creates did not apply: the tag phase sends them.
        self.state.add_planned_tags(&read.retag)?;
        add_tally(&mut self.tally.counts, read.tally);
        end.exists.extend(read.exists);
        end.again.extend(read.again);
        if let Some(e) = read.failure {
            self.tally.failure.get_or_insert_with(|| e.to_string());
        }
        let deferred = read.refused.iter().filter(|r| r.deferred).count() as u64;
        let (errors, for_good) = record_errors(self.state, read.refused);
        super::holds::remember(self.state, &self.export, self.run_id, &for_good)?;
        self.tally.counts.deferred += deferred;
        self.tally.counts.failed += errors.len() as u64 - deferred;
        self.tally.errors.extend(errors.iter().cloned());
        self.checkpoints
            .record(checkpoint::Answer {
                facts: read.facts,
                not_ours: read.not_ours,
                errors,
            })
            .await?;
        self.progress.advance(size);
        if self.tracker.answered(&mut self.tally.counts, size) {
            self.save_counts()?;
        }
        Ok(())
    }

    /// Members that turned out to exist: each one's status learned, to update it with. Many
    /// of them (batches replayed after a lost answer) are learned from one read of the
    /// audience's changes since this run began; the others one by one. Archived ones are
    /// left alone, and ones Mailchimp cannot return are reported.
    async fn met_again(&mut self, mut exists: Vec<Upsert>) -> Result<Vec<Upsert>, RunError> {
        let mut learned: Vec<(Upsert, Option<Status>)> = Vec::new();
        if exists.len() > MANY_TO_LOOK_UP {
            let since = self.changed_since;
            exists =
                learn_from_recent_changes(&self.client, &self.list_id, since, exists, &mut learned)
                    .await?;
        }
        learn_one_by_one(&self.client, &self.list_id, exists, &mut learned).await?;
        let mut updates = Vec::new();
        for (mut u, status) in learned {
            match status {
                Some(Status::Archived) => {
                    self.undelivered.insert(u.email.clone());
                    let e = self.record_error(&u.email, "archived in Mailchimp: not brought back");
                    self.state.add_run_errors(self.run_id, &[e])?;
                    self.tally.counts.skipped += 1;
                }
                Some(status) => {
                    u.status = status;
                    updates.push(u);
                }
                None => {
                    self.undelivered.insert(u.email.clone());
                    let e = self.record_error(
                        &u.email,
                        "Mailchimp said the member exists but could not return it",
                    );
                    self.state
                        .add_run_errors(self.run_id, std::slice::from_ref(&e))?;
                    self.tally.counts.failed += 1;
                    self.tally.errors.push(e);
                }
            }
        }
        Ok(updates)
    }

    fn record_error(&self, email: &str, reason: &str) -> RecordError {
        RecordError {
            profile_key: profile_key(self.state, email),
            email: email.to_string(),
            reason: reason.into(),
        }
    }

    fn stopped(mut self, export: &str, reason: StopReason) -> Result<RunReport, RunError> {
        self.tracker.settle(&mut self.tally.counts, &self.client);
        report::stopped(
            self.state,
            self.run_id,
            export,
            &self.client,
            self.tally.counts,
            self.tally.errors,
            reason,
        )
    }
}

/// Learns the statuses of `exists` from the audience's changes since this run began;
/// returns the members still unknown.
async fn learn_from_recent_changes(
    client: &Client,
    list_id: &str,
    changed_since: chrono::DateTime<chrono::Utc>,
    exists: Vec<Upsert>,
    learned: &mut Vec<(Upsert, Option<Status>)>,
) -> Result<Vec<Upsert>, RunError> {
    let wanted: HashSet<MemberKey> = exists.iter().map(|u| u.key).collect();
    let mut now: HashMap<MemberKey, Status> = HashMap::new();
    let read = client
        .members_each(list_id, Some(changed_since), |m| {
            if let Some(k) = MemberKey::from_hex(&m.hash).filter(|k| wanted.contains(k)) {
                now.insert(k, core_status(&m.status));
            }
        })
        .await;
    match read {
        Ok(_) => {
            let (found, rest): (Vec<Upsert>, Vec<Upsert>) =
                exists.into_iter().partition(|u| now.contains_key(&u.key));
            learned.extend(found.into_iter().map(|u| {
                let status = now[&u.key];
                (u, Some(status))
            }));
            tracing::debug!(
                learned = learned.len(),
                left = rest.len(),
                "statuses of members met again, from the audience's recent changes"
            );
            Ok(rest)
        }
        Err(mailchimp::Error::CredentialRejected) => {
            Err(mailchimp::Error::CredentialRejected.into())
        }
        // Asked one by one instead.
        Err(e) => {
            tracing::debug!(error = %e, "reading the audience's recent changes failed");
            Ok(exists)
        }
    }
}

/// Asks Mailchimp for each member of `exists`, those that fail transiently again in a
/// later round (as many rounds as requests are re-queued).
async fn learn_one_by_one(
    client: &Client,
    list_id: &str,
    mut exists: Vec<Upsert>,
    learned: &mut Vec<(Upsert, Option<Status>)>,
) -> Result<(), RunError> {
    let max_in_flight = client.max_in_flight().max(1);
    let mut round = 0;
    while !exists.is_empty() {
        let last = round == mailchimp::REQUEUE_ROUNDS;
        round += 1;
        let statuses = stream::iter(std::mem::take(&mut exists).into_iter().map(|u| async move {
            let m = client.member(list_id, &u.email).await;
            (u, m)
        }))
        .buffer_unordered(max_in_flight);
        tokio::pin!(statuses);
        while let Some((u, m)) = statuses.next().await {
            match m {
                Err(mailchimp::Error::CredentialRejected) => {
                    return Err(mailchimp::Error::CredentialRejected.into())
                }
                // Asked again in the next round.
                Err(e) if e.is_retryable() && !last => exists.push(u),
                Ok(Some(m)) => learned.push((u, Some(core_status(&m.status)))),
                Ok(None) | Err(_) => learned.push((u, None)),
            }
        }
    }
    Ok(())
}

fn add_tally(counts: &mut RunCounts, t: mailchimp::Tally) {
    counts.created += t.created;
    counts.updated += t.updated;
    counts.unsubscribed += t.unsubscribed;
    counts.tagged += t.tagged;
    counts.untagged += t.untagged;
    counts.archived += t.archived;
    counts.moved += t.moved;
}

/// The ids of the export's tags (`names`, by their `bits`): the audience's `existing` one of
/// each name, else one created now (all created side by side).
async fn tag_ids(
    client: &Client,
    list_id: &str,
    names: &[String],
    bits: &[usize],
    existing: &[(u64, String)],
) -> Result<HashMap<usize, u64>, mailchimp::Error> {
    let created =
        futures_util::future::join_all(names.iter().zip(bits).map(|(name, bit)| async move {
            let id = match existing.iter().find(|(_, n)| n == name) {
                Some((id, _)) => *id,
                None => client.create_tag(list_id, name).await?,
            };
            Ok::<_, mailchimp::Error>((*bit, id))
        }))
        .await;
    created.into_iter().collect()
}

/// A merge field the run creates, with the type and date format its values are formatted for.
fn new_merge_field(p: &Prepared, tag: &str) -> mailchimp::NewMergeField {
    let spec = p.specs.iter().find(|s| s.tag == tag);
    let kind = spec
        .and_then(|s| serde_json::to_value(s.kind).ok())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "text".into());
    mailchimp::NewMergeField {
        name: tag.to_string(),
        tag: Some(tag.to_string()),
        r#type: Some(mailchimp::MergeFieldType::from(kind)),
        date_format: spec
            .map(|s| s.date_format.clone())
            .filter(|f| !f.is_empty()),
        ..mailchimp::NewMergeField::default()
    }
}
