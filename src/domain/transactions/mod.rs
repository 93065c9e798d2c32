//! Transaction records (`files.md`, TRNLOG; `messages.md`, `tkm-transactions`) and their
//! duplicate key.

mod dup_key;
mod message;
mod record;
#[cfg(test)]
mod tests;

pub use dup_key::DupKey;
pub use message::{parse_message, Message, MessageRefusal};
pub use record::{parse_row, Column4, HashKey, Invalid, Operation, ParsedRow, Record, MAX_AMOUNT};
