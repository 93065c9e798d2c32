//! Jobs as values: what a job does ([`JobRequest`], of a [`JobKind`]) and who started it
//! ([`Trigger`]). The job runner stores and runs them; `/admin/jobs` shows them.

use super::{Circuit, ListKind};

/// The kinds of jobs (the `kind` of `/admin/jobs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// A refresh of token BIN ranges.
    BinRefresh,
    /// A cycle of PAR lookups.
    ParCycle,
    /// A build of published lists.
    ListBuild,
    /// The daily erasure of what is kept no longer (`data.md`, `matching.md`: retention).
    Retention,
}

impl JobKind {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::BinRefresh => "bin-refresh",
            JobKind::ParCycle => "par-refresh",
            JobKind::ListBuild => "list-build",
            JobKind::Retention => "retention",
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobRequest {
    /// Refresh the token BIN ranges of one circuit, or of every enabled one.
    BinRefresh {
        /// Only this circuit.
        circuit: Option<Circuit>,
        /// Accept a set much smaller than the current one.
        forced: bool,
    },
    /// Ask the circuits for the PARs owed.
    ParCycle {
        /// Only this circuit.
        circuit: Option<Circuit>,
        /// At most this many lookups per circuit.
        limit: Option<u64>,
        /// Queue every lookup owed first (a full eligibility scan).
        scan: bool,
    },
    /// Build published lists (each a new generation).
    ListBuild {
        /// The lists, in build order, without repeats.
        kinds: Vec<ListKind>,
    },
    /// Erase the ciphertexts of cards and tokens inactive for `vault.inactive_retention_days`
    /// and the transaction outcomes older than `matching.retention_days`.
    Retention,
}

impl JobRequest {
    /// Its kind.
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::BinRefresh { .. } => JobKind::BinRefresh,
            JobRequest::ParCycle { .. } => JobKind::ParCycle,
            JobRequest::ListBuild { .. } => JobKind::ListBuild,
            JobRequest::Retention => JobKind::Retention,
        }
    }

    /// Its scope as stored: the circuit or the lists (comma-separated), or `ALL`.
    pub fn scope(&self) -> String {
        match self {
            JobRequest::BinRefresh { circuit, .. } | JobRequest::ParCycle { circuit, .. } => {
                circuit.map_or("ALL", Circuit::as_str).to_owned()
            }
            JobRequest::ListBuild { kinds } if kinds.len() == ListKind::ALL.len() => {
                "ALL".to_owned()
            }
            JobRequest::ListBuild { kinds } => kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(","),
            JobRequest::Retention => "ALL".to_owned(),
        }
    }
}

/// Who started a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// An operator (the client's name).
    Admin(String),
    /// The owner's own timer.
    Schedule,
    /// New work was queued (a card batch or consent change woke the resolver).
    WakeUp,
    /// The process started.
    StartUp,
}

impl Trigger {
    /// The audit name (`created_by`).
    pub fn by(&self) -> &str {
        match self {
            Trigger::Admin(name) => name,
            Trigger::Schedule => "schedule",
            Trigger::WakeUp => "wake-up",
            Trigger::StartUp => "start-up",
        }
    }

    /// Started by tkm itself: a routine run that finds nothing to do leaves no job behind, and
    /// one asked for while the same kind runs is coalesced into a single run after it.
    pub fn is_routine(&self) -> bool {
        !matches!(self, Trigger::Admin(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_kinds_and_triggers() {
        let r = JobRequest::ParCycle {
            circuit: Some(Circuit::Visa),
            limit: None,
            scan: true,
        };
        assert_eq!(
            (r.kind().as_str(), r.scope().as_str()),
            ("par-refresh", "VISA")
        );
        let b = JobRequest::BinRefresh {
            circuit: None,
            forced: false,
        };
        assert_eq!(
            (b.kind().as_str(), b.scope().as_str()),
            ("bin-refresh", "ALL")
        );
        let l = JobRequest::ListBuild {
            kinds: vec![ListKind::Pars, ListKind::Hpans],
        };
        assert_eq!(
            (l.kind().as_str(), l.scope().as_str()),
            ("list-build", "pars,hpans")
        );
        assert!(Trigger::WakeUp.is_routine() && !Trigger::Admin("ops".into()).is_routine());
        assert_eq!(Trigger::Admin("ops".into()).by(), "ops");
    }
}
