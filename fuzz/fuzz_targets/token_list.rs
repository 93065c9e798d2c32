//! Fuzz target `token_list`: arbitrary bytes through `tkm::fuzzing::token_list`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::token_list(data));
