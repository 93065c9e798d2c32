//! Domain types: every value from outside is parsed here into a type that cannot hold a bad value.

mod abi;
mod bin_range;
mod card_event;
pub mod cards;
mod circuit;
mod consent;
pub mod daily;
mod hashes;
mod jobs;
pub mod lists;
mod masking;
pub mod matching;
mod pan;
mod par;
mod service;
mod source;
mod tax_code;
mod timestamp;
pub mod token_list;
pub mod transactions;
mod upload_name;

pub use abi::Abi;
pub use bin_range::BinRange;
pub use card_event::{
    CardCommand, CardDeletion, CardEvent, CardRef, MessageOrigin, Sourced, TokenRef,
};
pub use circuit::Circuit;
pub use consent::{
    next_instant, truncate_micros, Change, Consent, ConsentChange, ConsentState, Summary,
};
pub use hashes::{Hpan, Htoken};
pub use jobs::{JobKind, JobRequest, Trigger};
pub use lists::ListKind;
pub use masking::{mask_card_numbers, mask_card_numbers_str};
pub use pan::{Pan, TokenPan};
pub use par::Par;
pub use service::Service;
pub use source::Source;
pub use tax_code::TaxCode;
pub use timestamp::{
    format_update_timestamp, next_update_timestamp, parse_event_timestamp, tick, truncate_to_tick,
};
pub use upload_name::{UploadKind, UploadName};

/// Why a value from outside was refused; names what was wrong, never echoes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);

/// Masks an identifier for logs: the first 6 characters then `…` (`data.md`: PARs, hashes and tax
/// codes are logged only truncated).
pub fn truncated(value: &str) -> String {
    let head: String = value.chars().take(6).collect();
    format!("{head}…")
}
