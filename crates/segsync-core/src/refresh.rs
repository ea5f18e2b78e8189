//! What a re-run asks the audience: only what can differ from what the export delivered.
//! Pure; the engine reads each status it names with `status` and `since_last_changed`.
//!
//! `since_last_changed` alone returns every member changed since the last read, the
//! export's own writes included: after a first export of a million members, a million of
//! them, to learn statuses that are, for all but a handful, exactly what segsync set. Filtered
//! by status, the reads leave out the one status the export's writes leave its members at
//! (the status it gives new members), and return only members who left it: unsubscribed,
//! cleaned (bounced), archived, pending, transactional. Members at the export's own status
//! are read too only when the snapshot holds members at another status, since one of those
//! may have come back (a pending member who confirmed, an unsubscribed one who signed up
//! again, an archived one restored); that read includes the previous run's own writes.
//!
//! A permanently deleted contact appears in no read (Mailchimp lists no deleted contacts);
//! a delete is learned the first time segsync writes that member again, from Mailchimp's
//! refusal, and never undone.

use crate::model::Status;

/// Every status Mailchimp's member list can be filtered by, in reading order.
pub const STATUSES: [Status; 6] = [
    Status::Unsubscribed,
    Status::Cleaned,
    Status::Archived,
    Status::Pending,
    Status::Transactional,
    Status::Subscribed,
];

/// The statuses whose members changed since the last read a re-run asks for: every status
/// but `delivered` (the status the export gives new members), and `delivered` too when the
/// snapshot's members (whose statuses are `held`) are not all at it.
pub fn statuses_to_read(delivered: Status, held: &[Status]) -> Vec<Status> {
    let may_come_back = held.iter().any(|s| *s != delivered);
    STATUSES
        .into_iter()
        .filter(|s| *s != delivered || may_come_back)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn members_at_the_exports_own_status_are_not_read_back() {
        assert_eq!(
            statuses_to_read(Subscribed, &[Subscribed]),
            [Unsubscribed, Cleaned, Archived, Pending, Transactional]
        );
        assert_eq!(
            statuses_to_read(Pending, &[Pending]),
            [Unsubscribed, Cleaned, Archived, Transactional, Subscribed],
            "pending members that confirm are read"
        );
    }

    #[test]
    fn members_that_may_come_back_make_the_exports_own_status_read_too() {
        for other in [Unsubscribed, Cleaned, Archived, Pending, Transactional] {
            assert_eq!(
                statuses_to_read(Subscribed, &[Subscribed, other]).len(),
                6,
                "{other:?}"
            );
        }
        assert_eq!(statuses_to_read(Subscribed, &[]).len(), 5);
    }
}
