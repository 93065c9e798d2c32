//! Transaction records (`files.md`, TRNLOG; `messages.md`, `tkm-transactions`) and their
//! duplicate key.

mod dup_key;
mod record;
#[cfg(test)]
mod tests;

pub use dup_key::DupKey;
pub use record::{parse_row, Column4, HashKey, Invalid, Operation, ParsedRow, Record, MAX_AMOUNT};
