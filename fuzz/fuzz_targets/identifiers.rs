//! Fuzz target `identifiers`: arbitrary bytes through `tkm::fuzzing::identifiers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::identifiers(data));
