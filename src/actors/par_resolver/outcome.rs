//! What a PAR found by a circuit becomes: a card command for the CardRegistry with source
//! `circuit`, so the registry's trust rules decide (a different PAR is a conflict, never an
//! overwrite) and the card update is published.

use crate::db::par_lookups::{Lease, SealedAccount, Subject};
use crate::domain::{CardCommand, CardEvent, CardRef, Par, Source, Sourced, TokenRef};

/// Who the registry records as the author of resolver changes.
pub const BY: &str = "par-resolver";

/// The command that records `par` for the lease's card or token.
pub fn command_for(lease: &Lease, par: Par) -> Sourced {
    let event = match (&lease.subject, &lease.account) {
        // A card asked by its PAN.
        (Subject::Card(hpan), SealedAccount::Pan(..)) => CardEvent::CardPar {
            card: CardRef {
                hpan: hpan.clone(),
                pan: None,
            },
            par,
            circuit: lease.circuit,
            tokens: Vec::new(),
        },
        // A card known by its HPAN only, asked through one of its tokens: the token's PAR is the
        // card's, and the token joins it.
        (Subject::Card(hpan), SealedAccount::Token(_, htoken)) => CardEvent::CardPar {
            card: CardRef {
                hpan: hpan.clone(),
                pan: None,
            },
            par,
            circuit: lease.circuit,
            tokens: vec![token(htoken)],
        },
        (Subject::Token(htoken), _) => CardEvent::ParTokens {
            par,
            circuit: lease.circuit,
            tokens: vec![token(htoken)],
        },
    };
    Sourced {
        command: CardCommand::Event(event),
        source: Source::Circuit,
        by: BY.to_owned(),
        origin: None,
    }
}

fn token(htoken: &crate::domain::Htoken) -> TokenRef {
    TokenRef {
        htoken: htoken.clone(),
        token: None,
        deleted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Sealed;
    use crate::domain::{Circuit, Hpan, Htoken};

    fn sealed() -> Sealed {
        Sealed {
            key_id: "k".to_owned(),
            blob: vec![1],
        }
    }

    fn lease(subject: Subject, account: SealedAccount) -> Lease {
        Lease {
            key: ("card".to_owned(), 1),
            circuit: Circuit::Visa,
            subject,
            account,
            reasks: 0,
            attempts: 0,
        }
    }

    fn hash<T>(parsed: Result<T, crate::domain::ParseError>) -> T {
        parsed.unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_card_par_comes_from_the_circuit_with_the_token_it_was_asked_through() {
        let hpan = hash(Hpan::parse(&"a".repeat(64)));
        let htoken = hash(Htoken::parse(&"b".repeat(64)));
        let par = hash(Par::parse_from_circuit("V0010013822021234567890123456"));
        let by_pan = command_for(
            &lease(
                Subject::Card(hpan.clone()),
                SealedAccount::Pan(sealed(), hpan.clone()),
            ),
            par.clone(),
        );
        assert_eq!(by_pan.source, Source::Circuit);
        assert!(matches!(
            &by_pan.command,
            CardCommand::Event(CardEvent::CardPar { tokens, .. }) if tokens.is_empty()
        ));
        let by_token = command_for(
            &lease(
                Subject::Card(hpan),
                SealedAccount::Token(sealed(), htoken.clone()),
            ),
            par.clone(),
        );
        assert!(matches!(
            &by_token.command,
            CardCommand::Event(CardEvent::CardPar { tokens, .. }) if tokens[0].htoken == htoken
        ));
        let token_only = command_for(
            &lease(
                Subject::Token(htoken.clone()),
                SealedAccount::Token(sealed(), htoken),
            ),
            par,
        );
        assert!(matches!(
            &token_only.command,
            CardCommand::Event(CardEvent::ParTokens {
                circuit: Circuit::Visa,
                ..
            })
        ));
    }
}
