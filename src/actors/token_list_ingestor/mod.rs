//! TokenListIngestor: the acquirers' token lists (`files.md` Token list, TK9). Today it hands out
//! the public key acquirers encrypt their lists to; intake and processing come with issue 13.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, Supervised};

/// Request: tkm's armored public key for acquirers' files.
#[derive(Debug, Message)]
#[rtype(result = "Arc<str>")]
pub struct GetPublicKey;

/// The actor.
pub struct TokenListIngestor {
    public_key: Arc<str>,
}

impl TokenListIngestor {
    /// The name in status reports.
    pub const NAME: &'static str = "token-list-ingestor";

    /// An ingestor handing out `public_key` (armored, checked at start-up to be the public
    /// half of tkm's secret key).
    pub fn new(public_key: Arc<str>) -> Self {
        TokenListIngestor { public_key }
    }
}

impl Actor for TokenListIngestor {
    type Context = Context<Self>;
}

impl Supervised for TokenListIngestor {}

impl Handler<GetPublicKey> for TokenListIngestor {
    type Result = actix::MessageResult<GetPublicKey>;

    fn handle(&mut self, _: GetPublicKey, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(self.public_key.clone())
    }
}

impl Handler<crate::actors::Ping> for TokenListIngestor {
    type Result = actix::MessageResult<crate::actors::Ping>;

    fn handle(&mut self, _: crate::actors::Ping, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(crate::actors::ActorHealth {
            name: Self::NAME,
            mailbox_capacity: 16,
            in_flight: 0,
        })
    }
}
