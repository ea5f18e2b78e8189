//! A member follows its profile: when a profile's address changes, the member it had is
//! moved to the new address (one `PATCH` with the new `email_address`), keeping its status,
//! tags and history, instead of a new member being created and the old one removed. Pure:
//! the engine finds the candidates, this decides.
//!
//! The rule, in the words of the design (README § "A member follows its profile"):
//! - Every member the export delivered records the keys of the profiles behind it.
//! - A **new address** is one the export wants, never delivered, and the audience did not
//!   report. Its **holders** are the members that held one of its profiles before.
//! - A holder whose address no profile wants any more is **free**. A new address with a free
//!   holder takes it over: the member is moved. With several (profiles merged onto one new
//!   address), the most cautious status moves (unsubscribed, then pending, transactional,
//!   subscribed; then the smallest subscriber hash); the others are left to the removal
//!   policy. A holder moves once: another new address of its profiles (a split) is a new
//!   member.
//! - Nobody unsubscribed or cleaned is subscribed under a new address: a new address one of
//!   whose holders is cleaned or archived in Mailchimp is skipped and reported; one with an
//!   unsubscribed holder moves that holder (staying unsubscribed), or, if it cannot (the
//!   holder still has its address: a split), is skipped and reported.
//! - An address already in the audience is never a move's target: it is updated like any
//!   member (its status unchanged), and the old member is left to the removal policy.

use std::collections::{HashMap, HashSet};

use crate::model::{profile_keys, MemberKey, SnapshotEntry, Status};

/// An address the export wants that it never delivered and the audience did not report.
#[derive(Clone, Debug)]
pub struct NewAddress {
    pub key: MemberKey,
    pub email: String,
    /// The keys of its profiles, as [`SnapshotEntry::profiles`] holds them.
    pub profiles: String,
}

/// A member the export delivered that held a profile of a new address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub key: MemberKey,
    /// What the export knows of it, with the status the audience last reported.
    pub entry: SnapshotEntry,
    /// Whether a profile still wants the member's own address.
    pub wanted: bool,
}

/// What happens to one member because of the moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Nothing to do with moves: the diff's usual rules.
    Usual,
    /// A new address that takes this member over.
    MoveFrom(&'a Holder),
    /// A new address left alone, and why.
    Skip(&'a str),
    /// A member moved to a new address: nothing is removed from it.
    MovedAway,
}

/// The moves of one run.
#[derive(Clone, Debug, Default)]
pub struct Moves {
    holders: Vec<Holder>,
    /// New address -> the holder moved to it.
    to: HashMap<MemberKey, usize>,
    skips: HashMap<MemberKey, String>,
    away: HashSet<MemberKey>,
}

impl Moves {
    /// How `key` is treated: `wanted` if the export wants it, `delivered` if it delivered
    /// it before.
    pub fn route(&self, key: MemberKey, wanted: bool, delivered: bool) -> Route<'_> {
        match (wanted, delivered) {
            (true, false) => {
                if let Some(i) = self.to.get(&key) {
                    Route::MoveFrom(&self.holders[*i])
                } else if let Some(reason) = self.skips.get(&key) {
                    Route::Skip(reason)
                } else {
                    Route::Usual
                }
            }
            (false, true) if self.away.contains(&key) => Route::MovedAway,
            _ => Route::Usual,
        }
    }

    pub fn len(&self) -> usize {
        self.to.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to.is_empty() && self.skips.is_empty()
    }
}

/// Decides the moves for `new` addresses given their `holders` (in any order).
pub fn pair_moves(new: &[NewAddress], holders: Vec<Holder>) -> Moves {
    let mut by_profile: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in holders.iter().enumerate() {
        for p in profile_keys(h.entry.profiles.as_deref().unwrap_or("")) {
            by_profile.entry(p).or_default().push(i);
        }
    }
    let mut order: Vec<&NewAddress> = new.iter().collect();
    order.sort_by_key(|n| n.key);
    let mut to = HashMap::new();
    let mut skips = HashMap::new();
    let mut claimed: HashSet<usize> = HashSet::new();
    for n in order {
        let mut held: Vec<usize> = profile_keys(&n.profiles)
            .flat_map(|p| by_profile.get(p).into_iter().flatten().copied())
            .collect();
        held.sort_unstable();
        held.dedup();
        match choose(&holders, &held, &claimed) {
            Choice::Usual => {}
            Choice::Move(i) => {
                claimed.insert(i);
                to.insert(n.key, i);
            }
            Choice::Skip(i) => {
                skips.insert(n.key, skip_reason(&n.email, &holders[i]));
            }
        }
    }
    let away = claimed.iter().map(|i| holders[*i].key).collect();
    Moves {
        holders,
        to,
        skips,
        away,
    }
}

enum Choice {
    Usual,
    Move(usize),
    /// Skipped because of this holder.
    Skip(usize),
}

/// The holder a new address takes over among `held`, by the rule of this module.
fn choose(holders: &[Holder], held: &[usize], claimed: &HashSet<usize>) -> Choice {
    let status = |i: &usize| holders[*i].entry.status;
    if let Some(i) = held
        .iter()
        .find(|i| matches!(status(i), Status::Cleaned | Status::Archived))
    {
        return Choice::Skip(*i);
    }
    let free = held
        .iter()
        .filter(|i| !holders[**i].wanted && !claimed.contains(i))
        .min_by_key(|i| (caution(status(i)), holders[**i].key));
    let unsubscribed = held.iter().find(|i| status(i) == Status::Unsubscribed);
    match (free, unsubscribed) {
        (Some(i), Some(u)) if status(i) != Status::Unsubscribed => Choice::Skip(*u),
        (Some(i), _) => Choice::Move(*i),
        (None, Some(u)) => Choice::Skip(*u),
        (None, None) => Choice::Usual,
    }
}

/// The order in which holders are preferred: the most cautious status first.
fn caution(s: Status) -> u8 {
    match s {
        Status::Unsubscribed => 0,
        Status::Pending => 1,
        Status::Transactional => 2,
        Status::Subscribed => 3,
        Status::Cleaned | Status::Archived => 4,
    }
}

fn skip_reason(email: &str, h: &Holder) -> String {
    let old = &h.entry.email;
    let why = match h.entry.status {
        Status::Archived => "archived in Mailchimp",
        Status::Cleaned => "cleaned in Mailchimp (its address bounced)",
        _ => "unsubscribed in Mailchimp",
    };
    format!(
        "{email} is the new address of a profile whose contact {old} is {why}: segsync does not subscribe that person under a new address (change the address in Mailchimp, or add the contact there, to include it)"
    )
}
