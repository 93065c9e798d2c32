//! Fuzz target `deletion`: arbitrary bytes through `tkm::fuzzing::deletion`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::deletion(data));
