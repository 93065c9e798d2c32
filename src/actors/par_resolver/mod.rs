//! ParResolver: asks the circuits for the PARs of eligible cards and tokens, under one rate
//! limiter per circuit. This session holds its plain parts; the actor arrives with issue #4.

pub mod gate;
pub mod outcome;
