//! The card registry's model and rules, free of actors and I/O (`data.md`, card registry
//! rules): the slice of the registry a batch touches ([`model`]), the merge rules that apply
//! card events and deletions to it ([`rules`]), and the card updates the platform is told
//! ([`updates`]). The database layer loads and saves the model; the actor only hands work over.

pub mod model;
pub mod rules;
#[cfg(test)]
mod tests;
pub mod updates;

pub use model::{last4, CardRow, CardView, Conflict, LinkRow, Reassociation, Snapshot, TokenRow};
pub use rules::{apply, Limits, Outcome};
pub use updates::{
    has_consent, reconcile, Action, CardUpdate, CardUpdateEntry, Outgoing, TokenUpdate,
};
