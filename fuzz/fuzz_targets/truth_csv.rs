//! The ground-truth CSV reader on any bytes: rows or an error naming the line, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = models::dataset::parse_truth(data, "fuzz");
});
