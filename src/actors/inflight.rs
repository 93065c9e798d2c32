//! The work an actor has in flight, bounded. Handlers that answer with a future let the mailbox
//! drain at once, so the mailbox bound alone bounds nothing: each such handler takes a ticket
//! first, and without one (the bound is reached) answers "overloaded" at once — the API turns it
//! into 503 9503, the queue consumers pause. `tkm_actor_mailbox{actor}` shows the tickets out.

use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An actor's bound on work in flight.
#[derive(Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
    capacity: usize,
    gauge: IntGauge,
}

/// One unit of work in flight; dropping it ends it.
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl InFlight {
    /// At most `capacity` units in flight, shown in `gauge`.
    pub fn new(capacity: usize, gauge: IntGauge) -> Self {
        let capacity = capacity.max(1);
        gauge.set(0);
        InFlight {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            gauge,
        }
    }

    /// A ticket, or `None` when the bound is reached (the caller answers "overloaded").
    pub fn enter(&self) -> Option<Ticket> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        self.gauge.inc();
        Some(Ticket {
            _permit: permit,
            gauge: self.gauge.clone(),
        })
    }

    /// Units in flight now.
    pub fn current(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_bounded_counted_and_given_back() {
        let gauge = IntGauge::new("t", "t").unwrap();
        let bound = InFlight::new(2, gauge.clone());
        let a = bound.enter().unwrap();
        let b = bound.enter().unwrap();
        assert!(bound.enter().is_none(), "the third is refused");
        assert_eq!((bound.current(), gauge.get()), (2, 2));
        drop(a);
        assert_eq!((bound.current(), gauge.get()), (1, 1));
        assert!(bound.enter().is_some());
        drop(b);
        assert_eq!(gauge.get(), 0);
    }
}
