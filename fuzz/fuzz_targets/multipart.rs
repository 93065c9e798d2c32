//! Fuzz target `multipart`: arbitrary bytes through `tkm::fuzzing::multipart`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::multipart(data));
