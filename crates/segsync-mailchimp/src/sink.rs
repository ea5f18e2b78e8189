//! The sink: sends one plan operation (built by the [`encoder`](crate::encoder), through the
//! client's request stack) and reads Mailchimp's answer into what a run acts on:
//! - the facts Mailchimp acknowledged (the snapshot moves only for those);
//! - the members it refused, and why, in words a user can act on;
//! - members a create found already there, to update with their own status;
//! - members whose upsert did not apply the tags it carried (judged from the answer's
//!   `new_members[].tags` and `updated_members[].tags`), to tag by tag batches in the same
//!   run;
//! - the request to send again later (Mailchimp failing transiently, [`retry::requeue`]);
//! - an error that fails the run, or one that stops it at once (a rejected credential).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use segsync_core::{Fact, MemberKey, Op, TagSet, Upsert};

use crate::client::Client;
use crate::encoder::{addresses, core_status, upsert_items};
use crate::error::Error;
use crate::retry;
use crate::types::{Archived, BatchOutcome, FailureKind, MemberFailure, MemberState, TagOutcome};

/// A request sent, with Mailchimp's answer (after the client's retries).
pub struct Sent {
    pub op: Op,
    pub result: Result<Answer, Error>,
}

pub enum Answer {
    Upsert(BatchOutcome),
    Tag(TagOutcome),
    Archive(Archived),
    Moved(MemberState),
}

impl Sent {
    /// Whether this answer ends the run at once (a rejected credential: every further
    /// request would be refused too), so that no new request should leave after it.
    pub fn stops_the_run(&self) -> bool {
        matches!(self.result, Err(Error::CredentialRejected))
    }
}

/// The export's tags on the audience, by tag bit.
#[derive(Clone, Debug, Default)]
pub struct AudienceTags {
    /// The audience's tag ids (a tag missing from the audience has nothing to remove).
    pub ids: HashMap<usize, u64>,
    /// The tags' names, which creates carry.
    pub names: HashMap<usize, String>,
}

/// Sends `op` to audience `list_id`, with the export's tags `tags`.
pub async fn send(client: Client, list_id: Arc<str>, tags: Arc<AudienceTags>, op: Op) -> Sent {
    let result = match &op {
        Op::Upsert {
            update_existing,
            items,
        } => client
            .batch_upsert(
                &list_id,
                &upsert_items(items, &tags.names),
                *update_existing,
            )
            .await
            .map(Answer::Upsert),
        Op::Tag { tag, add, remove } => match tags.ids.get(tag) {
            Some(id) => client
                .update_tag_members(&list_id, *id, &addresses(add), &addresses(remove))
                .await
                .map(Answer::Tag),
            None => Ok(Answer::Tag(TagOutcome::default())),
        },
        Op::Archive { email, .. } => client.archive(&list_id, email).await.map(Answer::Archive),
        Op::Move(m) => {
            let merge = m.to.merge.clone().unwrap_or_default().into_iter().collect();
            client
                .move_member(&list_id, &m.from_email, &m.to.email, &merge)
                .await
                .map(Answer::Moved)
        }
    };
    Sent { op, result }
}

/// What one answer did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: u64,
    pub updated: u64,
    pub unsubscribed: u64,
    pub tagged: u64,
    pub untagged: u64,
    pub archived: u64,
    pub moved: u64,
}

/// A member a request did not deliver, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub email: String,
    pub reason: String,
    /// Refused for now only (Mailchimp's temporary per-address refusal): the next run sends
    /// it again; not a failure of the run.
    pub deferred: bool,
    /// Refused for good (an address Mailchimp finds invalid or fake, one in a compliance
    /// state or permanently deleted, a merge value it refuses): the fingerprint of the
    /// content sent, so that later runs hold it back until that content changes.
    pub for_good: Option<u64>,
}

/// Everything one answer taught.
#[derive(Default)]
pub struct Read {
    pub facts: Vec<Fact>,
    /// Members this run meant to create that someone else added meanwhile.
    pub not_ours: Vec<MemberKey>,
    pub refused: Vec<Refused>,
    /// Addresses whose upsert was not delivered: their tag additions are not sent.
    pub undelivered: Vec<String>,
    pub tally: Tally,
    /// Members a create found on the audience: to update, each with its own status.
    pub exists: Vec<Upsert>,
    /// Tags (`(bit, member, address)`) that new members' creates carried and Mailchimp did
    /// not apply (its answer does not list them on the member), or that a create found
    /// already there may lack: to add by tag batches.
    pub retag: Vec<(usize, MemberKey, String)>,
    /// Requests to send again after the rest of the phase: one that failed transiently, or
    /// the parts of a batch split around the items Mailchimp refused.
    pub again: Vec<Op>,
    /// An error that fails the run; the run still sends the rest.
    pub failure: Option<Error>,
}

/// What the sink remembers between the answers of one run.
#[derive(Default)]
pub struct Sink {
    /// The export's tag names by bit: what a create's answer is checked against.
    tag_names: HashMap<usize, String>,
    /// Members of re-queued creates: an earlier attempt may have created them.
    maybe_applied: HashSet<MemberKey>,
    /// Members a replayed create made (its first attempt applied, its answer lost): counted
    /// as created, and the update that follows (sent to be safe) not as an update.
    created_by_replay: HashSet<MemberKey>,
}

impl Sink {
    /// A sink for a run whose creates carry the tags `tag_names` (by tag bit).
    pub fn new(tag_names: HashMap<usize, String>) -> Sink {
        Sink {
            tag_names,
            ..Sink::default()
        }
    }

    /// Reads the answer to a request sent in re-queue round `round`. A rejected credential
    /// comes back as the error: the run stops at once, as every further request would fail.
    pub fn read(&mut self, sent: Sent, round: u32) -> Result<Read, Error> {
        let mut read = Read::default();
        let answer = match sent.result {
            Ok(answer) => answer,
            Err(Error::CredentialRejected) => return Err(Error::CredentialRejected),
            // Archives are not re-queued: a contact that could not be archived is reported,
            // and the next run's diff asks again.
            Err(e) if retry::requeue(&e, round) && !matches!(sent.op, Op::Archive { .. }) => {
                self.requeued(&mut read, sent.op, &e, round);
                return Ok(read);
            }
            Err(e) if is_member_exists(&e) && matches!(sent.op, Op::Move(_)) => {
                moved_onto_a_member(&mut read, sent.op);
                return Ok(read);
            }
            Err(e) => {
                refused_whole(&mut read, sent.op, e);
                return Ok(read);
            }
        };
        match (sent.op, answer) {
            (
                Op::Upsert {
                    items,
                    update_existing,
                },
                Answer::Upsert(outcome),
            ) => self.upserted(&mut read, &items, outcome, !update_existing),
            (Op::Tag { tag, add, remove }, Answer::Tag(outcome)) => {
                tagged(&mut read, tag, &add, &remove, &outcome)
            }
            (Op::Archive { key, .. }, Answer::Archive(_)) => {
                read.facts.push(Fact::Archived { key });
                read.tally.archived += 1;
            }
            (Op::Move(m), Answer::Moved(member)) => {
                read.facts.push(Fact::Moved {
                    from: m.from,
                    key: m.to.key,
                    email: m.to.email,
                    status: core_status(&member.status),
                    fingerprint: m.to.fingerprint,
                    profiles: m.to.profiles,
                });
                read.tally.moved += 1;
            }
            // [`send`] answers every request with its own kind of answer.
            _ => unreachable!("an answer of another kind than its request"),
        }
        Ok(read)
    }

    fn requeued(&mut self, read: &mut Read, op: Op, e: &Error, round: u32) {
        tracing::debug!(error = %e, round, endpoint = op.endpoint(), "request re-queued");
        if let Op::Upsert {
            update_existing: false,
            items,
        } = &op
        {
            self.maybe_applied.extend(items.iter().map(|u| u.key));
        }
        read.again.push(op);
    }

    fn upserted(
        &mut self,
        read: &mut Read,
        items: &[Upsert],
        outcome: BatchOutcome,
        creates: bool,
    ) {
        let by_email: HashMap<String, &Upsert> =
            items.iter().map(|u| (u.email.clone(), u)).collect();
        for a in &outcome.accepted {
            let Some(u) = by_email.get(&a.email.to_lowercase()) else {
                continue;
            };
            read.facts.push(Fact::Upserted {
                key: u.key,
                email: u.email.clone(),
                status: core_status(&a.status),
                created: a.created,
                fingerprint: u.fingerprint,
                profiles: u.profiles.clone(),
            });
            if a.created {
                read.tally.created += 1;
            } else {
                self.count_update(&mut read.tally, u);
            }
            self.tags_taken(read, u, &a.tags);
        }
        for f in &outcome.failed {
            let email = f.email.to_lowercase();
            match by_email.get(&email) {
                Some(u) if creates && f.kind == FailureKind::Exists => {
                    self.met_again(read, u, outcome.replayed)
                }
                u => refused(read, u.copied(), email, f),
            }
        }
        for email in &outcome.unanswered {
            // An update Mailchimp did not mention changed nothing there (some answers list
            // only the members they changed): the member has what was sent.
            if let (false, Some(u)) = (creates, by_email.get(&email.to_lowercase())) {
                read.facts.push(Fact::Upserted {
                    key: u.key,
                    email: u.email.clone(),
                    status: u.status,
                    created: false,
                    fingerprint: u.fingerprint,
                    profiles: u.profiles.clone(),
                });
                self.count_update(&mut read.tally, u);
                // Whether the tags it carried took is unknown: tag batches add them.
                retag(read, u, u.tags);
                continue;
            }
            read.undelivered.push(email.to_lowercase());
            read.refused.push(Refused {
                email: email.clone(),
                reason: "Mailchimp's answer did not mention this member; it will be sent again on the next run".into(),
                deferred: false,
                for_good: None,
            });
        }
    }

    /// Counts an acknowledged write to an existing member: an unsubscribe, an update, or
    /// nothing for the update that follows a create found applied (counted as created).
    fn count_update(&mut self, tally: &mut Tally, u: &Upsert) {
        if self.created_by_replay.remove(&u.key) {
            // Counted when its create was found applied.
        } else if u.merge.is_none() {
            tally.unsubscribed += 1;
        } else {
            tally.updated += 1;
        }
    }

    /// A create found the member on the audience after all: added meanwhile by someone
    /// else, or by a request of ours whose answer was lost. It is updated with its own status.
    fn met_again(&mut self, read: &mut Read, u: &Upsert, replayed: bool) {
        let ours = replayed || self.maybe_applied.contains(&u.key);
        if ours {
            read.tally.created += 1;
            self.created_by_replay.insert(u.key);
            read.facts.push(Fact::Replayed {
                key: u.key,
                email: u.email.clone(),
            });
        } else {
            read.not_ours.push(u.key);
        }
        // Whether its tags took is unknown (or they did not): tag batches add them, once
        // the update that follows has delivered it.
        retag(read, u, u.tags);
        read.exists.push(Upsert {
            tags: TagSet::default(),
            ..u.clone()
        });
    }

    /// The tags an upserted member's answer lists (`answered`, by name), against those its
    /// item carried: each one listed is acknowledged; the others are left to tag batches.
    fn tags_taken(&self, read: &mut Read, u: &Upsert, answered: &[String]) {
        let mut missing = TagSet::default();
        for bit in u.tags.iter() {
            let took = self.tag_names.get(&bit).is_some_and(|name| {
                answered
                    .iter()
                    .any(|a| a == name || a.to_lowercase() == name.to_lowercase())
            });
            if took {
                read.facts.push(Fact::Tagged {
                    key: u.key,
                    email: u.email.clone(),
                    bit,
                    added: true,
                });
                read.tally.tagged += 1;
            } else {
                missing = missing.with(bit);
            }
        }
        retag(read, u, missing);
    }
}

/// Leaves the tags `tags` of member `u` to tag batches.
fn retag(read: &mut Read, u: &Upsert, tags: TagSet) {
    read.retag
        .extend(tags.iter().map(|bit| (bit, u.key, u.email.clone())));
}

/// Whether Mailchimp refused a write because the address is already on the audience.
fn is_member_exists(e: &Error) -> bool {
    matches!(e, Error::Rejected { status: 400, problem, .. } if problem.title == "Member Exists")
}

/// A move whose new address turned out to be on the audience already (added since the
/// audience was read): no move; that member is updated with its own status, like any member
/// a create finds there, and the old one is left to the removal policy on the next run.
fn moved_onto_a_member(read: &mut Read, op: Op) {
    if let Op::Move(m) = op {
        read.exists.push(m.to);
    }
}

/// A member a batch upsert refused (an `ERROR_CONTACT_EXISTS` for an update counts too).
fn refused(read: &mut Read, u: Option<&Upsert>, email: String, f: &MemberFailure) {
    read.undelivered.push(email.clone());
    if let (Some(u), FailureKind::Forgotten) = (u, f.kind) {
        // Permanently deleted in Mailchimp: remember it, so that no later run asks again.
        read.facts.push(Fact::Forgotten {
            key: u.key,
            email: u.email.clone(),
        });
    }
    let reason = match &f.field {
        Some(field) if !field.is_empty() => format!(
            "Mailchimp: {} ({field}: {})",
            f.message,
            f.field_message.clone().unwrap_or_default()
        ),
        _ if f.kind == FailureKind::Deferred => format!(
            "deferred: Mailchimp refuses new sign-ups of this address for now ({}); the next run sends it again",
            f.message
        ),
        _ => format!("Mailchimp: {}", f.message),
    };
    read.refused.push(Refused {
        email,
        reason,
        deferred: f.kind == FailureKind::Deferred,
        for_good: u.and_then(|u| refused_for_good(u, f.kind)),
    });
}

/// The fingerprint of the content of `u` when Mailchimp refused it for good (`kind`): an
/// upsert with content (not a status-only write), refused for what the address or that
/// content is, not for now. A permanently deleted contact is not among them: the snapshot
/// keeps it as such ([`Fact::Forgotten`]), and no run ever sends it again, whatever its
/// profile becomes.
fn refused_for_good(u: &Upsert, kind: FailureKind) -> Option<u64> {
    let lasting = matches!(kind, FailureKind::Invalid | FailureKind::Compliance);
    u.merge.as_ref().and(u.fingerprint).filter(|_| lasting)
}

fn tagged(
    read: &mut Read,
    bit: usize,
    add: &[(MemberKey, String)],
    remove: &[(MemberKey, String)],
    outcome: &TagOutcome,
) {
    let missing: HashSet<String> = outcome
        .not_members
        .iter()
        .map(|e| e.to_lowercase())
        .collect();
    for (key, email) in add {
        if missing.contains(email) {
            read.refused.push(Refused {
                email: email.clone(),
                reason: "not tagged: the address is not a member of the audience".into(),
                deferred: false,
                for_good: None,
            });
            continue;
        }
        read.facts.push(Fact::Tagged {
            key: *key,
            email: email.clone(),
            bit,
            added: true,
        });
        read.tally.tagged += 1;
    }
    for (key, email) in remove {
        read.facts.push(Fact::Tagged {
            key: *key,
            email: email.clone(),
            bit,
            added: false,
        });
        read.tally.untagged += 1;
    }
}

/// A request Mailchimp refused whole. A batch upsert refused for some of its items (400
/// "Invalid Resource", its `errors` naming fields such as `members.item:3.status`, as
/// Mailchimp does when one item fails its schema) is split: the named items are reported
/// with Mailchimp's message and the others go again; one refused without naming items is
/// halved until the bad ones stand alone. Anything else is [`not_sent`].
fn refused_whole(read: &mut Read, op: Op, e: Error) {
    let (update_existing, items, problem) = match (&op, &e) {
        (
            Op::Upsert {
                update_existing,
                items,
            },
            Error::Rejected {
                status: 400,
                problem,
                ..
            },
        ) if problem.title == "Invalid Resource" => (*update_existing, items, problem),
        _ => return not_sent(read, op, e),
    };
    let named = bad_items(problem, items.len());
    if named.is_empty() && items.len() < 2 {
        return not_sent(read, op, e);
    }
    let batch = |items: Vec<Upsert>| Op::Upsert {
        update_existing,
        items,
    };
    if named.is_empty() {
        let (a, b) = items.split_at(items.len() / 2);
        read.again.extend([batch(a.to_vec()), batch(b.to_vec())]);
        return;
    }
    let mut rest = Vec::new();
    for (i, u) in items.iter().enumerate() {
        match named.get(&i) {
            Some(complaints) => {
                read.undelivered.push(u.email.clone());
                read.refused.push(Refused {
                    email: u.email.clone(),
                    reason: format!("Mailchimp: {} ({})", problem.title, complaints.join("; ")),
                    deferred: false,
                    for_good: refused_for_good(u, FailureKind::Invalid),
                });
            }
            None => rest.push(u.clone()),
        }
    }
    if !rest.is_empty() {
        read.again.push(batch(rest));
    }
}

/// The items a refused batch's problem names (`members.item:N...`), with what it says of
/// each (`field: message`); indices outside the batch are ignored.
fn bad_items(problem: &crate::error::Problem, len: usize) -> HashMap<usize, Vec<String>> {
    let mut named: HashMap<usize, Vec<String>> = HashMap::new();
    for f in &problem.errors {
        let index = f
            .field
            .strip_prefix("members.item:")
            .and_then(|rest| rest.split(['.', ':']).next())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < len);
        if let Some(i) = index {
            let what = f.field.split_once('.').map_or("", |(_, w)| w);
            let what = what.split_once('.').map_or(what, |(_, w)| w);
            named
                .entry(i)
                .or_default()
                .push(format!("{what}: {}", f.message));
        }
    }
    named
}

/// A request that failed for good: its members are reported. A contact Mailchimp cannot
/// archive (pending, cleaned, already archived: 405) is reported without failing the run;
/// anything else fails it.
fn not_sent(read: &mut Read, op: Op, e: Error) {
    let (emails, words): (Vec<String>, &str) = match &op {
        Op::Upsert { items, .. } => {
            let emails: Vec<String> = items.iter().map(|u| u.email.clone()).collect();
            read.undelivered.extend(emails.iter().cloned());
            (emails, "not sent")
        }
        Op::Tag { add, remove, .. } => (
            add.iter().chain(remove).map(|(_, e)| e.clone()).collect(),
            "tag not changed",
        ),
        Op::Archive { email, .. } => (vec![email.clone()], "not archived"),
        Op::Move(m) => {
            read.undelivered.push(m.to.email.clone());
            (vec![m.to.email.clone()], "not moved from its old address")
        }
    };
    for email in emails {
        read.refused.push(Refused {
            email,
            reason: format!("{words}: {e}"),
            deferred: false,
            for_good: None,
        });
    }
    // One member Mailchimp will not archive or move is reported; the run goes on unfailed.
    let member_refused = matches!(op, Op::Archive { .. } | Op::Move(_)) && e.is_permanent();
    if !member_refused {
        read.failure = Some(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldError, Problem};
    use segsync_core::Status;

    fn member(i: usize) -> Upsert {
        let email = format!("m{i}@posta.ro");
        Upsert {
            key: MemberKey::of(&email),
            email,
            status: Status::Subscribed,
            merge: Some(Default::default()),
            fingerprint: Some(i as u64),
            profiles: None,
            tags: TagSet::default(),
        }
    }

    fn batch(n: usize, update_existing: bool) -> Op {
        Op::Upsert {
            update_existing,
            items: (0..n).map(member).collect(),
        }
    }

    fn invalid_resource(errors: &[(&str, &str)]) -> Error {
        Error::Rejected {
            endpoint: "POST /lists/{list_id}",
            status: 400,
            problem: Problem {
                title: "Invalid Resource".into(),
                detail: "The resource submitted could not be validated. For field-specific details, see the 'errors' array.".into(),
                errors: errors
                    .iter()
                    .map(|(f, m)| FieldError {
                        field: f.to_string(),
                        message: m.to_string(),
                    })
                    .collect(),
                ..Problem::default()
            },
        }
    }

    /// What a fresh sink reads from `op` answered with `result` in the first round.
    fn read_one(op: Op, result: Result<Answer, Error>) -> Read {
        Sink::default().read(Sent { op, result }, 0).unwrap()
    }

    fn emails(op: &Op) -> Vec<String> {
        match op {
            Op::Upsert { items, .. } => items.iter().map(|u| u.email.clone()).collect(),
            _ => panic!("an upsert"),
        }
    }

    #[test]
    fn a_batch_refused_for_named_items_goes_again_without_them() {
        let e = invalid_resource(&[(
            "members.item:3.status",
            "Data did not match any of the schemas described in anyOf.",
        )]);
        let read = read_one(batch(5, false), Err(e));
        assert_eq!(read.refused.len(), 1);
        assert_eq!(read.refused[0].email, "m3@posta.ro");
        assert_eq!(
            read.refused[0].reason,
            "Mailchimp: Invalid Resource (status: Data did not match any of the schemas described in anyOf.)"
        );
        assert_eq!(read.undelivered, vec!["m3@posta.ro".to_string()]);
        assert_eq!(read.again.len(), 1);
        assert_eq!(
            emails(&read.again[0]),
            ["m0@posta.ro", "m1@posta.ro", "m2@posta.ro", "m4@posta.ro"]
        );
        assert!(
            read.failure.is_none(),
            "the run does not fail for one bad item"
        );
    }

    #[test]
    fn a_batch_refused_without_naming_items_is_halved_down_to_the_bad_one() {
        let e = || invalid_resource(&[]);
        let mut sink = Sink::default();
        let read = sink
            .read(
                Sent {
                    op: batch(5, true),
                    result: Err(e()),
                },
                0,
            )
            .unwrap();
        assert!(read.refused.is_empty());
        let halves: Vec<Vec<String>> = read.again.iter().map(emails).collect();
        assert_eq!(halves[0], ["m0@posta.ro", "m1@posta.ro"]);
        assert_eq!(halves[1], ["m2@posta.ro", "m3@posta.ro", "m4@posta.ro"]);
        // One member alone, still refused: reported, the run goes on.
        let single = Op::Upsert {
            update_existing: true,
            items: vec![member(7)],
        };
        let read = sink
            .read(
                Sent {
                    op: single,
                    result: Err(e()),
                },
                0,
            )
            .unwrap();
        assert!(read.again.is_empty());
        assert_eq!(read.refused.len(), 1);
        assert!(read.refused[0].reason.starts_with("not sent: "));
    }

    #[test]
    fn updates_an_answer_leaves_out_are_acknowledged_as_sent() {
        let op = batch(2, true);
        let outcome = BatchOutcome {
            accepted: vec![crate::types::AcceptedMember {
                email: "m0@posta.ro".into(),
                hash: crate::types::subscriber_hash("m0@posta.ro"),
                status: crate::types::MemberStatus::Subscribed,
                created: false,
                tags: Vec::new(),
            }],
            unanswered: vec!["m1@posta.ro".into()],
            ..Default::default()
        };
        let read = Sink::default()
            .read(
                Sent {
                    op,
                    result: Ok(Answer::Upsert(outcome)),
                },
                0,
            )
            .unwrap();
        assert!(read.refused.is_empty(), "{:?}", read.refused);
        assert!(read.undelivered.is_empty(), "its tags are still sent");
        assert_eq!(read.tally.updated, 2);
        assert_eq!(read.facts.len(), 2);
    }

    #[test]
    fn creates_an_answer_leaves_out_are_not_taken_as_sent() {
        let outcome = BatchOutcome {
            unanswered: vec!["m0@posta.ro".into()],
            ..Default::default()
        };
        let read = read_one(batch(1, false), Ok(Answer::Upsert(outcome)));
        assert_eq!(read.refused.len(), 1);
        assert_eq!(read.undelivered, vec!["m0@posta.ro".to_string()]);
    }

    #[test]
    fn a_temporary_refusal_of_one_address_is_deferred() {
        let message = "m0@posta.ro has signed up to a lot of lists very recently; we're not allowing more signups for now";
        let outcome = BatchOutcome {
            failed: vec![MemberFailure {
                email: "m0@posta.ro".into(),
                kind: FailureKind::of("ERROR_GENERIC", message),
                message: message.into(),
                field: None,
                field_message: None,
            }],
            ..Default::default()
        };
        let read = read_one(batch(1, false), Ok(Answer::Upsert(outcome)));
        assert_eq!(read.refused.len(), 1);
        assert!(read.refused[0].deferred);
        assert!(read.refused[0].reason.starts_with("deferred: "));
        assert!(read.failure.is_none());
    }

    /// Refusals for good carry the content refused (to hold it back until it changes);
    /// refusals for now, or for a full account, do not, nor permanent deletions (the
    /// snapshot holds those back for ever).
    #[test]
    fn only_refusals_for_good_are_to_remember() {
        let cases = [
            ("m0@posta.ro looks fake or invalid, please enter a real email address.", true),
            ("m0@posta.ro is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.", true),
            ("m0@posta.ro was permanently deleted and cannot be re-imported.", false),
            ("m0@posta.ro has signed up to a lot of lists very recently; we're not allowing more signups for now", false),
            ("m0@posta.ro could not be added: the account has reached its limit of 10 contacts.", false),
        ];
        for (message, lasting) in cases {
            let outcome = BatchOutcome {
                failed: vec![MemberFailure {
                    email: "m0@posta.ro".into(),
                    kind: FailureKind::of("ERROR_GENERIC", message),
                    message: message.into(),
                    field: None,
                    field_message: None,
                }],
                ..Default::default()
            };
            let op = batch(1, false);
            let Op::Upsert { items, .. } = &op else {
                unreachable!()
            };
            let fp = items[0].fingerprint;
            let read = read_one(op, Ok(Answer::Upsert(outcome)));
            let want = if lasting { fp } else { None };
            assert_eq!(read.refused[0].for_good, want, "{message}");
        }
    }

    fn a_move(to: usize) -> Op {
        Op::Move(segsync_core::Move {
            from: MemberKey::of("old@posta.ro"),
            from_email: "old@posta.ro".into(),
            to: member(to),
        })
    }

    #[test]
    fn a_move_onto_an_address_already_there_updates_that_member_instead() {
        let refused = Error::Rejected {
            endpoint: "PATCH /lists/{list_id}/members/{subscriber_hash}",
            status: 400,
            problem: Problem {
                title: "Member Exists".into(),
                detail: "m1@posta.ro is already a list member. Use PUT to insert or update list members.".into(),
                ..Default::default()
            },
        };
        let read = read_one(a_move(1), Err(refused));
        assert_eq!(read.exists, vec![member(1)], "updated with its own status");
        assert!(read.facts.is_empty() && read.refused.is_empty() && read.failure.is_none());
    }

    #[test]
    fn a_move_mailchimp_refuses_is_reported_without_failing_the_run() {
        let read = read_one(a_move(2), Err(invalid_resource(&[])));
        assert_eq!(read.refused.len(), 1);
        assert!(
            read.refused[0]
                .reason
                .starts_with("not moved from its old address: "),
            "{}",
            read.refused[0].reason
        );
        assert_eq!(read.undelivered, ["m2@posta.ro"], "its tags are not sent");
        assert!(read.failure.is_none());
    }

    fn tagged_create(i: usize, tags: TagSet) -> Op {
        Op::Upsert {
            update_existing: false,
            items: vec![Upsert { tags, ..member(i) }],
        }
    }

    fn named_sink() -> Sink {
        Sink::new(HashMap::from([
            (0, "romania".to_string()),
            (1, "High value".to_string()),
        ]))
    }

    fn created(i: usize, tags: &[&str]) -> BatchOutcome {
        let email = format!("m{i}@posta.ro");
        BatchOutcome {
            accepted: vec![crate::types::AcceptedMember {
                hash: crate::types::subscriber_hash(&email),
                email,
                status: crate::types::MemberStatus::Subscribed,
                created: true,
                tags: tags.iter().map(|t| t.to_string()).collect(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn tags_a_create_applied_are_acknowledged_and_the_others_go_by_tag_batches() {
        let both = TagSet::default().with(0).with(1);
        let read = named_sink()
            .read(
                Sent {
                    op: tagged_create(1, both),
                    result: Ok(Answer::Upsert(created(1, &["romania"]))),
                },
                0,
            )
            .unwrap();
        assert_eq!(read.tally.tagged, 1);
        assert!(read.facts.contains(&Fact::Tagged {
            key: MemberKey::of("m1@posta.ro"),
            email: "m1@posta.ro".into(),
            bit: 0,
            added: true,
        }));
        assert_eq!(
            read.retag,
            vec![(1, MemberKey::of("m1@posta.ro"), "m1@posta.ro".to_string())],
            "the tag the answer does not list"
        );
        // Mailchimp ignored them all.
        let read = named_sink()
            .read(
                Sent {
                    op: tagged_create(2, both),
                    result: Ok(Answer::Upsert(created(2, &[]))),
                },
                0,
            )
            .unwrap();
        assert_eq!(read.tally.tagged, 0);
        assert_eq!(read.retag.len(), 2);
    }

    #[test]
    fn a_create_that_meets_a_member_leaves_its_tags_to_tag_batches() {
        let outcome = BatchOutcome {
            failed: vec![MemberFailure {
                email: "m3@posta.ro".into(),
                kind: FailureKind::Exists,
                message: "m3@posta.ro is already a list member".into(),
                field: None,
                field_message: None,
            }],
            ..Default::default()
        };
        let read = named_sink()
            .read(
                Sent {
                    op: tagged_create(3, TagSet::default().with(1)),
                    result: Ok(Answer::Upsert(outcome)),
                },
                0,
            )
            .unwrap();
        assert_eq!(
            read.retag,
            vec![(1, MemberKey::of("m3@posta.ro"), "m3@posta.ro".to_string())]
        );
        assert_eq!(read.exists.len(), 1);
        assert!(read.exists[0].tags.is_empty(), "the update carries no tags");
    }

    #[test]
    fn an_item_carries_its_tags_and_only_those() {
        let names = HashMap::from([(0, "romania".to_string())]);
        let u = Upsert {
            tags: TagSet::default().with(0),
            ..member(4)
        };
        let tagged = crate::encoder::upsert_items(std::slice::from_ref(&u), &names);
        assert_eq!(tagged[0].tags, ["romania"]);
        let bare = crate::encoder::upsert_items(&[member(5)], &names);
        let body = serde_json::to_value(&bare[0]).unwrap();
        assert!(body.get("tags").is_none(), "{body}");
    }

    fn tagged_update(i: usize, tags: TagSet) -> Op {
        Op::Upsert {
            update_existing: true,
            items: vec![Upsert { tags, ..member(i) }],
        }
    }

    #[test]
    fn tags_an_update_carried_are_acknowledged_when_listed_and_tag_batches_add_the_others() {
        let both = TagSet::default().with(0).with(1);
        let mut answer = created(6, &["High value"]);
        answer.accepted[0].created = false;
        let read = named_sink()
            .read(
                Sent {
                    op: tagged_update(6, both),
                    result: Ok(Answer::Upsert(answer)),
                },
                0,
            )
            .unwrap();
        assert_eq!((read.tally.updated, read.tally.tagged), (1, 1));
        assert!(read.facts.contains(&Fact::Tagged {
            key: MemberKey::of("m6@posta.ro"),
            email: "m6@posta.ro".into(),
            bit: 1,
            added: true,
        }));
        assert_eq!(
            read.retag,
            vec![(0, MemberKey::of("m6@posta.ro"), "m6@posta.ro".to_string())]
        );
        // An answer that lists only the members it changed, and not this one: whether its
        // tags took is unknown, so tag batches add them.
        let read = named_sink()
            .read(
                Sent {
                    op: tagged_update(7, both),
                    result: Ok(Answer::Upsert(BatchOutcome {
                        unanswered: vec!["m7@posta.ro".into()],
                        ..Default::default()
                    })),
                },
                0,
            )
            .unwrap();
        assert_eq!((read.tally.updated, read.tally.tagged), (1, 0));
        assert_eq!(read.retag.len(), 2);
        assert!(read.undelivered.is_empty());
    }
}
