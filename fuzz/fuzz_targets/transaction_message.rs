//! Fuzz target `transaction_message`: arbitrary bytes through `tkm::fuzzing::transaction_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tkm::fuzzing::transaction_message(data));
