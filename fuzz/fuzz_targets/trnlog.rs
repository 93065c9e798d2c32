//! Fuzz target `trnlog`: arbitrary bytes through `tkm::fuzzing::trnlog`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::trnlog(data));
