//! Messages the JobRunner answers.

use actix::{Addr, Message};
use uuid::Uuid;

use crate::actors::circuit_poller::CircuitPoller;
use crate::actors::list_builder::ListBuilder;
use crate::actors::par_resolver::ParResolver;
use crate::db::jobs::Job;
use crate::db::DbError;
use crate::domain::{Circuit, JobRequest, Trigger};

/// Why a job request failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The database failed (unavailable: retry later).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The request names a circuit that is not enabled.
    #[error("circuit {0} is not enabled")]
    DisabledCircuit(Circuit),
    /// The actors that run jobs are not registered yet (start-up).
    #[error("the job runner is starting")]
    Starting,
}

/// Request: start a job, or join the same one running; answers its id.
#[derive(Debug, Message)]
#[rtype(result = "Result<Uuid, JobError>")]
pub struct StartJob {
    /// What to run.
    pub request: JobRequest,
    /// Who asks.
    pub trigger: Trigger,
}

/// Request: the most recent jobs, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Job>, JobError>")]
pub struct ListJobs {
    /// At most this many.
    pub limit: i64,
}

/// Request: one job (`None`: unknown).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<Job>, JobError>")]
pub struct GetJob {
    /// Its id.
    pub id: Uuid,
}

/// Notification: the actors that run jobs (registered after they start, since they also ask the
/// runner for jobs of their own).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Executors {
    /// One poller per enabled circuit.
    pub pollers: Vec<(Circuit, Addr<CircuitPoller>)>,
    /// The PAR resolver.
    pub resolver: Addr<ParResolver>,
    /// The list builder.
    pub lists: Addr<ListBuilder>,
    /// What the retention job keeps.
    pub retention: Retention,
}

/// What the retention job keeps (`vault.inactive_retention_days`, `matching.retention_days`).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Days an inactive card's or a deleted token's ciphertext is kept.
    pub ciphertext_days: u32,
    /// Days transaction outcomes are kept.
    pub outcome_days: u32,
    /// The zone of processing days.
    pub zone: chrono_tz::Tz,
}
