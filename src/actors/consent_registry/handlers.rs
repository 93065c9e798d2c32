//! The registry's handlers: reads from the cache (loading on a miss), writes through PostgreSQL.

use std::sync::Arc;

use actix::{fut, ActorFutureExt, Handler, ResponseActFuture, WrapFuture};
use serde_json::{json, Value};

use super::messages::{
    ConsentError, FlushCache, GetConsent, GetConsentHistory, GetConsentStatus, Invalidate,
    RecordConsent,
};
use super::status::{status_at, Status};
use super::views::{consent_view, ConsentView};
use super::{rules, ConsentRegistry};
use crate::actors::{ActorHealth, Ping};
use crate::db::consent::{
    self as repo, Actor as ChangeActor, CitizenConsent, HistoryRow, RECENT_CHANGES as RECENT,
};
use crate::domain::{Consent, ConsentChange, TaxCode};

impl ConsentRegistry {
    /// Runs `f` on the citizen, from the cache or after loading it (then cached).
    fn with_citizen<R: 'static>(
        &mut self,
        tax: TaxCode,
        f: impl FnOnce(&CitizenConsent) -> Result<R, ConsentError> + 'static,
    ) -> ResponseActFuture<Self, Result<R, ConsentError>> {
        let apply = move |entry: &Option<Arc<CitizenConsent>>| match entry {
            Some(c) => f(c),
            None => Err(ConsentError::CitizenNotFound),
        };
        if let Some(entry) = self.cache.get(&tax) {
            return Box::pin(fut::ready(apply(&entry)));
        }
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(fut::ready(Err(ConsentError::Overloaded)));
        };
        self.cache.load_started(&tax);
        let pool = self.pool.clone();
        let key = tax.clone();
        let load = async move {
            let conn = pool.get().await.map_err(crate::db::DbError::from)?;
            repo::load(&conn, &key, RECENT as i64).await
        };
        Box::pin(
            load.into_actor(self)
                .map(move |res, act, _| match (res, ticket) {
                    (Ok(loaded), _done) => {
                        let entry = loaded.map(Arc::new);
                        act.cache.load_finished(&tax, entry.clone());
                        apply(&entry)
                    }
                    (Err(e), _done) => {
                        act.cache.load_failed(&tax);
                        Err(e.into())
                    }
                }),
        )
    }
}

fn request_json(change: &ConsentChange, client_id: Option<&str>) -> Value {
    let names = |s: &std::collections::BTreeSet<crate::domain::Service>| -> Vec<&'static str> {
        s.iter().map(|s| s.as_str()).collect()
    };
    let mut v = match change {
        ConsentChange::All(c) => json!({ "consent": c }),
        ConsentChange::Services(c, s) => json!({ "consent": c, "services": names(s) }),
        ConsentChange::Card(c, h, s) => json!({ "consent": c, "hpan": h, "services": names(s) }),
        ConsentChange::WithdrawAll => json!({ "consent": Consent::Deny, "withdrawAll": true }),
    };
    if let (Some(id), Some(obj)) = (client_id, v.as_object_mut()) {
        obj.insert("clientId".into(), Value::String(id.to_owned()));
    }
    v
}

impl Handler<RecordConsent> for ConsentRegistry {
    type Result = ResponseActFuture<Self, Result<ConsentView, ConsentError>>;

    fn handle(&mut self, msg: RecordConsent, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(fut::ready(Err(ConsentError::Overloaded)));
        };
        let pool = self.pool.clone();
        let cached = self.cache.peek(&msg.tax_code);
        let tax = msg.tax_code.clone();
        let work = async move {
            let request = request_json(&msg.change, msg.client_id.as_deref());
            let actor = ChangeActor { by: msg.by };
            let change = msg.change;
            repo::record_change(
                &pool,
                &msg.tax_code,
                &request,
                &actor,
                cached.as_deref(),
                |cur| rules::apply(cur, &change),
            )
            .await
        };
        Box::pin(work.into_actor(self).map(move |res, act, ctx| {
            drop(ticket);
            let citizen = Arc::new(res??);
            act.cache.store(&tax, Some(citizen.clone()));
            act.announce(ctx, tax.as_str(), citizen.version);
            consent_view(&citizen, None, &[])
        }))
    }
}

impl Handler<GetConsent> for ConsentRegistry {
    type Result = ResponseActFuture<Self, Result<ConsentView, ConsentError>>;

    fn handle(&mut self, msg: GetConsent, _: &mut Self::Context) -> Self::Result {
        let GetConsent {
            tax_code,
            hpan,
            services,
        } = msg;
        self.with_citizen(tax_code, move |c| consent_view(c, hpan.as_ref(), &services))
    }
}

impl Handler<GetConsentStatus> for ConsentRegistry {
    type Result = ResponseActFuture<Self, Result<Status, ConsentError>>;

    fn handle(&mut self, msg: GetConsentStatus, _: &mut Self::Context) -> Self::Result {
        let GetConsentStatus {
            tax_code,
            service,
            hpan,
            at,
        } = msg;
        let (pool, tax, card) = (self.pool.clone(), tax_code.clone(), hpan.clone());
        let cached = self.with_citizen(tax_code, move |c| {
            Ok(status_at(
                &c.changes,
                c.complete,
                service,
                hpan.as_ref(),
                at,
            ))
        });
        Box::pin(cached.then(move |res, _, _| {
            fut::wrap_future(async move {
                match res? {
                    Some(status) => Ok(status),
                    // An instant older than the cached changes: read the whole timeline.
                    None => {
                        let conn = pool.get().await.map_err(crate::db::DbError::from)?;
                        let all = repo::load(&conn, &tax, i64::MAX)
                            .await?
                            .ok_or(ConsentError::CitizenNotFound)?;
                        status_at(&all.changes, all.complete, service, card.as_ref(), at)
                            .ok_or_else(|| {
                                ConsentError::Unexpected(anyhow::anyhow!("incomplete timeline"))
                            })
                    }
                }
            })
        }))
    }
}

impl Handler<GetConsentHistory> for ConsentRegistry {
    type Result = ResponseActFuture<Self, Result<Vec<HistoryRow>, ConsentError>>;

    fn handle(&mut self, msg: GetConsentHistory, _: &mut Self::Context) -> Self::Result {
        let Some(ticket) = self.inflight.enter() else {
            return Box::pin(fut::ready(Err(ConsentError::Overloaded)));
        };
        let pool = self.pool.clone();
        Box::pin(
            async move {
                let _ticket = ticket;
                let conn = pool.get().await.map_err(crate::db::DbError::from)?;
                if repo::load(&conn, &msg.tax_code, 1).await?.is_none() {
                    return Err(ConsentError::CitizenNotFound);
                }
                Ok(repo::history(&conn, &msg.tax_code, msg.from, msg.to).await?)
            }
            .into_actor(self),
        )
    }
}

impl Handler<Invalidate> for ConsentRegistry {
    type Result = ();

    fn handle(&mut self, msg: Invalidate, _: &mut Self::Context) {
        self.cache.invalidate(&msg.tax_code, msg.version);
    }
}

impl Handler<FlushCache> for ConsentRegistry {
    type Result = ();

    fn handle(&mut self, _: FlushCache, _: &mut Self::Context) {
        self.cache.clear();
    }
}

impl Handler<Ping> for ConsentRegistry {
    type Result = actix::MessageResult<Ping>;

    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(ActorHealth {
            name: Self::NAME,
            mailbox_capacity: self.inflight.capacity(),
            in_flight: self.inflight.current(),
        })
    }
}
