//! Card events and deletions, validated: what the card registry applies (TK4, TK5, TK9).

use chrono::{DateTime, Utc};

use super::{Circuit, Hpan, Htoken, Pan, Par, Source, TaxCode, TokenPan};

/// A card by its hash, with the clear PAN when the event carried it (to be stored encrypted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardRef {
    /// The HPAN (recomputed from the PAN when both were given).
    pub hpan: Hpan,
    /// The PAN, when given.
    pub pan: Option<Pan>,
}

/// A token by its hash, with the clear token PAN when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRef {
    /// The HTOKEN.
    pub htoken: Htoken,
    /// The token PAN, when given.
    pub token: Option<TokenPan>,
    /// An explicit deletion (`"deleted": true`).
    pub deleted: bool,
}

/// A card event, by shape (`data.md`, card registry rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardEvent {
    /// Tax code + card (+ PAR, + tokens): enrolment or update of a citizen's card.
    Enrolment {
        /// The citizen.
        tax_code: TaxCode,
        /// The card.
        card: CardRef,
        /// Its PAR, when known.
        par: Option<Par>,
        /// Its circuit.
        circuit: Circuit,
        /// Tokens added (or explicitly deleted).
        tokens: Vec<TokenRef>,
        /// When the change happened (orders changes to one citizen↔card link).
        timestamp: Option<DateTime<Utc>>,
    },
    /// PAR + card, no tax code: the PAR of a card was found.
    CardPar {
        /// The card.
        card: CardRef,
        /// Its PAR.
        par: Par,
        /// Its circuit.
        circuit: Circuit,
        /// Tokens of the PAR.
        tokens: Vec<TokenRef>,
    },
    /// PAR + tokens, no card: tokens of a PAR.
    ParTokens {
        /// The PAR.
        par: Par,
        /// The circuit.
        circuit: Circuit,
        /// Its tokens (at least one).
        tokens: Vec<TokenRef>,
    },
    /// Tokens whose PAR is not known yet.
    Tokens {
        /// The circuit.
        circuit: Circuit,
        /// The tokens (at least one).
        tokens: Vec<TokenRef>,
    },
}

/// The deletion of a payment instrument by a citizen (TK5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardDeletion {
    /// The citizen.
    pub tax_code: TaxCode,
    /// The card.
    pub hpan: Hpan,
    /// When it was deleted (`None`: now).
    pub timestamp: Option<DateTime<Utc>>,
}

/// What the card registry applies: an event or a deletion, with its source and author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardCommand {
    /// A card event.
    Event(CardEvent),
    /// A deletion.
    Delete(CardDeletion),
}

/// A command with where it comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    /// The command.
    pub command: CardCommand,
    /// Its trust rank.
    pub source: Source,
    /// Who (client identity or component), for audit columns.
    pub by: String,
    /// The queue message it came from, when it did: a redelivery of an applied message (same
    /// queue and `message_id`) is recognised and never applied again.
    pub origin: Option<MessageOrigin>,
}

/// An inbound queue message, by queue and `message_id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageOrigin {
    /// The queue it was consumed from.
    pub queue: String,
    /// Its `message_id` property.
    pub message_id: String,
}

impl CardCommand {
    /// The command with `at` as its timestamp when it carries none (a card event's or a
    /// deletion's): the message's own timestamp property orders it then, so a redelivery can
    /// never undo a later change.
    pub fn with_default_timestamp(self, at: DateTime<Utc>) -> Self {
        match self {
            CardCommand::Event(CardEvent::Enrolment {
                tax_code,
                card,
                par,
                circuit,
                tokens,
                timestamp: None,
            }) => CardCommand::Event(CardEvent::Enrolment {
                tax_code,
                card,
                par,
                circuit,
                tokens,
                timestamp: Some(at),
            }),
            CardCommand::Delete(CardDeletion {
                tax_code,
                hpan,
                timestamp: None,
            }) => CardCommand::Delete(CardDeletion {
                tax_code,
                hpan,
                timestamp: Some(at),
            }),
            other => other,
        }
    }
}

impl CardEvent {
    /// The tokens the event carries.
    pub fn tokens(&self) -> &[TokenRef] {
        match self {
            CardEvent::Enrolment { tokens, .. }
            | CardEvent::CardPar { tokens, .. }
            | CardEvent::ParTokens { tokens, .. }
            | CardEvent::Tokens { tokens, .. } => tokens,
        }
    }

    /// The card the event names.
    pub fn card(&self) -> Option<&CardRef> {
        match self {
            CardEvent::Enrolment { card, .. } | CardEvent::CardPar { card, .. } => Some(card),
            _ => None,
        }
    }

    /// The PAR the event names.
    pub fn par(&self) -> Option<&Par> {
        match self {
            CardEvent::Enrolment { par, .. } => par.as_ref(),
            CardEvent::CardPar { par, .. } | CardEvent::ParTokens { par, .. } => Some(par),
            CardEvent::Tokens { .. } => None,
        }
    }

    /// The circuit.
    pub fn circuit(&self) -> Circuit {
        match self {
            CardEvent::Enrolment { circuit, .. }
            | CardEvent::CardPar { circuit, .. }
            | CardEvent::ParTokens { circuit, .. }
            | CardEvent::Tokens { circuit, .. } => *circuit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deletion(timestamp: Option<DateTime<Utc>>) -> CardCommand {
        CardCommand::Delete(CardDeletion {
            tax_code: TaxCode::parse("RSSMRA85T10A562S").unwrap(),
            hpan: Hpan::parse(&"a".repeat(64)).unwrap(),
            timestamp,
        })
    }

    #[test]
    fn a_default_timestamp_fills_only_a_missing_one() {
        let stamped = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let own = DateTime::from_timestamp(1_600_000_000, 0).unwrap();
        assert_eq!(
            deletion(None).with_default_timestamp(stamped),
            deletion(Some(stamped))
        );
        assert_eq!(
            deletion(Some(own)).with_default_timestamp(stamped),
            deletion(Some(own))
        );
    }
}
