//! Fuzz target `pgp_message`: arbitrary bytes through `tkm::fuzzing::pgp_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::pgp_message(data));
