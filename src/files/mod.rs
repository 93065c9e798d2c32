//! Files tkm writes and reads: the published lists (ZIP parts with their SHA-256, deltas between
//! generations); the acquirers' token lists and transaction files follow.

pub mod delta;
pub mod lines;
pub mod zip_parts;
