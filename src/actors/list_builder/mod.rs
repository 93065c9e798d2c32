//! ListBuilder: the published lists (`files.md`, TK8) — builds them daily at `lists.build_at`
//! (Europe/Rome) and on request, each as a new generation of ZIP parts with their SHA-256; mints
//! the one-shot links that serve the newest generation; redeems them; hands out the salt.

mod build;
mod links;
mod messages;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Recipient, ResponseFuture, Supervised};
use deadpool_postgres::Pool;
use secrecy::SecretString;

pub use build::{delta_names, generation_dir, Builder, Built};
pub use messages::{
    BuildLists, Download, GetSalt, IssueLinks, IssuedLink, LinkSet, LinkTarget, ListError, Redeem,
};

use crate::actors::job_runner::StartJob;
use crate::db::{jobs, lists as store};
use crate::domain::lists::ListKind;
use crate::domain::{JobRequest, Trigger};
use crate::metrics::Metrics;

/// How often a running build's progress is recorded in its job.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Notification: where to start jobs (the daily build runs as a job, shown in `/admin/jobs`).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct JobsAt(pub Recipient<StartJob>);

/// The actor.
pub struct ListBuilder {
    builder: Builder,
    pool: Pool,
    metrics: Metrics,
    salt: SecretString,
    build_at: chrono::NaiveTime,
    build_on_start: bool,
    jobs: Option<Recipient<StartJob>>,
}

impl ListBuilder {
    /// The name in status reports.
    pub const NAME: &'static str = "list-builder";

    /// A builder over `builder`'s storage.
    pub fn new(
        builder: Builder,
        pool: Pool,
        metrics: Metrics,
        salt: SecretString,
        build_at: chrono::NaiveTime,
    ) -> Self {
        let build_on_start = builder.settings().build_on_start;
        ListBuilder {
            builder,
            pool,
            metrics,
            salt,
            build_at,
            build_on_start,
            jobs: None,
        }
    }

    fn schedule_next(&self, ctx: &mut Context<Self>) {
        let wait = crate::domain::daily::until_next(chrono::Utc::now(), self.build_at);
        tracing::info!(in_secs = wait.as_secs(), "next list build scheduled");
        ctx.run_later(wait, |act, ctx| {
            act.start_build(ctx, ListKind::ALL.to_vec(), Trigger::Schedule);
            act.schedule_next(ctx);
        });
    }

    /// Starts a build as a job (or directly while the job runner is not known yet).
    fn start_build(&self, ctx: &mut Context<Self>, kinds: Vec<ListKind>, trigger: Trigger) {
        match &self.jobs {
            Some(jobs) => jobs.do_send(StartJob {
                request: JobRequest::ListBuild { kinds },
                trigger,
            }),
            None => ctx.address().do_send(BuildLists { kinds, job: None }),
        }
    }
}

impl Actor for ListBuilder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule_next(ctx);
    }
}

impl Supervised for ListBuilder {}

impl Handler<JobsAt> for ListBuilder {
    type Result = ();

    fn handle(&mut self, msg: JobsAt, ctx: &mut Self::Context) {
        self.jobs = Some(msg.0);
        // A fresh installation (or one whose lists were all lost) builds at once rather than
        // answering 404 until the night.
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        let jobs = self.jobs.clone().filter(|_| self.build_on_start);
        ctx.spawn(actix::fut::wrap_future(async move {
            let mut missing = Vec::new();
            for kind in ListKind::ALL {
                match store::latest(&pool, kind).await {
                    Ok(Some(g)) => metrics
                        .list_entries
                        .with_label_values(&[kind.as_str()])
                        .set(g.entries),
                    Ok(None) => missing.push(kind),
                    Err(e) => tracing::warn!(error = %e, "cannot read the published lists"),
                }
            }
            if let (false, Some(jobs)) = (missing.is_empty(), jobs) {
                jobs.do_send(StartJob {
                    request: JobRequest::ListBuild { kinds: missing },
                    trigger: Trigger::StartUp,
                });
            }
        }));
    }
}

impl Handler<BuildLists> for ListBuilder {
    type Result = ResponseFuture<Result<i64, ListError>>;

    fn handle(&mut self, msg: BuildLists, _: &mut Self::Context) -> Self::Result {
        let builder = self.builder.clone();
        let pool = self.pool.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let mut total = 0i64;
            let mut errors = Vec::new();
            for kind in msg.kinds {
                let progress = Arc::new(AtomicU64::new(0));
                let reporter = msg.job.map(|job| {
                    let (pool, progress, base) = (pool.clone(), progress.clone(), total);
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(PROGRESS_EVERY).await;
                            let done =
                                i64::try_from(progress.load(std::sync::atomic::Ordering::Relaxed))
                                    .unwrap_or(i64::MAX);
                            let _ =
                                jobs::progress(&pool, job, base.saturating_add(done), None).await;
                        }
                    })
                });
                let outcome = builder.build(kind, progress).await;
                if let Some(r) = reporter {
                    r.abort();
                }
                match outcome {
                    Ok(built) => {
                        metrics
                            .list_builds
                            .with_label_values(&[kind.as_str(), "ok"])
                            .inc();
                        let label = [kind.as_str()];
                        metrics
                            .list_build_seconds
                            .with_label_values(&label)
                            .set(built.seconds);
                        let entries = i64::try_from(built.entries).unwrap_or(i64::MAX);
                        metrics.list_entries.with_label_values(&label).set(entries);
                        tracing::info!(
                            list = kind.as_str(),
                            generation = built.generation,
                            entries = built.entries,
                            parts = built.parts.len(),
                            seconds = built.seconds,
                            "list built"
                        );
                        total = total.saturating_add(entries);
                        if let Some(job) = msg.job {
                            let _ = jobs::progress(&pool, job, total, None).await;
                        }
                    }
                    Err(e) => {
                        metrics
                            .list_builds
                            .with_label_values(&[kind.as_str(), "failed"])
                            .inc();
                        tracing::error!(list = kind.as_str(), error = %e, "list build failed; the last good generation stays published");
                        errors.push(format!("{}: {e}", kind.as_str()));
                    }
                }
            }
            if errors.is_empty() {
                Ok(total)
            } else {
                Err(ListError::Io(std::io::Error::other(errors.join("; "))))
            }
        })
    }
}

impl Handler<IssueLinks> for ListBuilder {
    type Result = ResponseFuture<Result<LinkSet, ListError>>;

    fn handle(&mut self, msg: IssueLinks, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let settings = self.builder.settings().clone();
        Box::pin(async move { links::issue(&pool, &settings, msg).await })
    }
}

impl Handler<Redeem> for ListBuilder {
    type Result = ResponseFuture<Result<Download, ListError>>;

    fn handle(&mut self, msg: Redeem, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let root: PathBuf = self.builder.root().to_path_buf();
        Box::pin(async move { links::redeem(&pool, &root, msg).await })
    }
}

impl Handler<GetSalt> for ListBuilder {
    type Result = actix::MessageResult<GetSalt>;

    fn handle(&mut self, msg: GetSalt, _: &mut Self::Context) -> Self::Result {
        tracing::info!(client = %msg.client, "salt read");
        actix::MessageResult(self.salt.clone())
    }
}

impl Handler<crate::actors::Ping> for ListBuilder {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            in_flight: 0,
        })
    }
}
