//! Segment predicate validation: arbitrary text checked as a predicate, then counted and
//! selected when accepted (`segsync::profiles::fuzz_predicate` checks that the check and the
//! queries agree and that no profile changes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use segsync::profiles::fuzz_predicate;

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_predicate(data);
});
