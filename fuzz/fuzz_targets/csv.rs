//! The CSV reader: arbitrary bytes imported as a CSV file (`segsync::profiles::fuzz_import`
//! checks that a refused file leaves nothing behind and that the count stored is the count
//! reported).
#![no_main]

use libfuzzer_sys::fuzz_target;
use segsync::profiles::{fuzz_import, Format};

fuzz_target!(|data: &[u8]| {
    let _ = fuzz_import(data, Format::Csv);
});
