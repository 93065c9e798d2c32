//! Files tkm writes and reads: the published lists (ZIP parts with their SHA-256, deltas between
//! generations), and the acquirers' uploads (stored encrypted, read as streams of lines).

pub mod delta;
pub mod lines;
pub mod physical;
pub mod sealing;
pub mod token_list;
pub mod trnlog;
pub mod uploads;
pub mod zip_parts;
