//! Fuzz target `card_event`: arbitrary bytes through `tkm::fuzzing::card_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::card_event(data));
