//! Fuzzes every JSON request body the API parses, and item-name path segments.

#![no_main]

use blindfold::server::fuzzing::{decode_item_name, parse_request_bodies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    parse_request_bodies(data);
    if let Ok(segment) = std::str::from_utf8(data) {
        decode_item_name(segment);
    }
});
