//! A pass over the embedded store read in a thread of its own: SQLite reads, evaluates and
//! decodes the next rows while the caller works on the last ones (the PostgreSQL and MySQL
//! sources read in their connection's thread the same way). Rows cross in handfuls through
//! a short queue, so what is held between the two sides stays a few thousand rows.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::predicate::{self, Only};
use super::{ProfileRow, SelectError, SelectStats};

/// Rows handed over at once.
const HANDFUL: usize = 512;

/// Handfuls read ahead of the caller.
const QUEUED: usize = 4;

/// The caller stopped taking rows: the reading thread stops too.
struct Gone;

/// What [`predicate::select`] needs to read the store.
pub(super) struct Pass<'a> {
    pub store: &'a std::path::Path,
    pub columns: &'a [String],
    pub predicates: &'a [String],
    pub limit: Duration,
    pub only: Option<Only<'a>>,
}

/// Runs the pass in a scoped thread and calls `each` with its rows, in their order, on the
/// calling thread. An error of `each` stops the pass and is returned as
/// [`SelectError::Callback`]; a panic of the reading thread goes on in the caller.
pub(super) fn select<E, F>(pass: Pass<'_>, mut each: F) -> Result<SelectStats, SelectError<E>>
where
    F: FnMut(ProfileRow) -> Result<(), E>,
{
    let (handfuls, incoming) = mpsc::sync_channel::<Vec<ProfileRow>>(QUEUED);
    std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("segsync-profiles".into())
            .spawn_scoped(s, move || read(pass, handfuls))
            .map_err(|e| SelectError::Failed(format!("starting the profiles' reader: {e}")))?;
        let mut stopped = None;
        let mut starved = Duration::ZERO;
        'taking: loop {
            let asked = Instant::now();
            let Ok(handful) = incoming.recv() else { break };
            starved += asked.elapsed();
            for row in handful {
                if let Err(e) = each(row) {
                    stopped = Some(e);
                    break 'taking;
                }
            }
        }
        // The reader's next hand-over fails once the queue is gone: it stops there.
        drop(incoming);
        let (read, blocked) = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        tracing::debug!(
            ?starved,
            ?blocked,
            "store pass done in its own thread (starved: the caller waited for rows; blocked: rows waited for the caller)"
        );
        match (stopped, read) {
            (Some(e), _) => Err(SelectError::Callback(e)),
            (None, read) => read.map_err(took_back),
        }
    })
}

/// The reading side: rows gathered into handfuls and sent, the last, short one once the
/// pass is done. Returns the pass's result, and how long it waited for the caller to take
/// its rows.
fn read(
    pass: Pass<'_>,
    handfuls: mpsc::SyncSender<Vec<ProfileRow>>,
) -> (Result<SelectStats, SelectError<Gone>>, Duration) {
    let mut handful = Vec::with_capacity(HANDFUL);
    let mut blocked = Duration::ZERO;
    let mut hand_over = |rows: Vec<ProfileRow>| {
        let t = Instant::now();
        let sent = handfuls.send(rows).map_err(|_| Gone);
        blocked += t.elapsed();
        sent
    };
    let stats = predicate::select(
        pass.store,
        pass.columns,
        pass.predicates,
        pass.limit,
        pass.only,
        |row| {
            handful.push(row);
            if handful.len() == HANDFUL {
                hand_over(std::mem::replace(&mut handful, Vec::with_capacity(HANDFUL)))?;
            }
            Ok(())
        },
    );
    let stats = match stats {
        Ok(stats) if !handful.is_empty() => hand_over(handful)
            .map(|()| stats)
            .map_err(SelectError::Callback),
        other => other,
    };
    (stats, blocked)
}

/// The reading side's error, in the caller's type. Its `Callback` (nobody took the rows)
/// happens only when the caller stopped first, whose own error is returned instead.
fn took_back<E>(e: SelectError<Gone>) -> SelectError<E> {
    match e {
        SelectError::Predicate {
            index,
            predicate,
            source,
        } => SelectError::Predicate {
            index,
            predicate,
            source,
        },
        SelectError::UnknownColumn { column, columns } => {
            SelectError::UnknownColumn { column, columns }
        }
        SelectError::NoPredicates => SelectError::NoPredicates,
        SelectError::NoProfiles => SelectError::NoProfiles,
        SelectError::Timeout { limit } => SelectError::Timeout { limit },
        SelectError::Failed(m) => SelectError::Failed(m),
        SelectError::Store(e) => SelectError::Store(e),
        SelectError::Callback(Gone) => {
            SelectError::Failed("the profiles' reading stopped with nobody taking its rows".into())
        }
    }
}
