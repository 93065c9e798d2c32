//! Tokens from acquirers' lists: known already, capped per PAR, refused by a trusted PAR.

use super::*;

#[test]
fn listed_tokens_report_already_known_and_the_cap_per_row() {
    let mut snap = Snapshot::default();
    let row = |t: TokenRef, p: Par| {
        cmd(
            CardEvent::ParTokens {
                par: p,
                circuit: Circuit::Visa,
                tokens: vec![t],
            },
            Source::TokenList,
        )
    };
    let (outcomes, _) = batch(
        &mut snap,
        &[
            row(token(20), par()),
            row(token(20), par()),
            row(token(21), par()),
            row(token(22), par()),
            row(token(20), other_par()),
        ],
    );
    assert_eq!(
        outcomes,
        vec![
            Outcome::Applied,
            Outcome::AlreadyKnown,
            Outcome::Applied,
            Outcome::TokenLimit,
            Outcome::ParConflict,
        ]
    );
    // A row with the clear token for a token known only by its hash is news, not known.
    let hashed_only = TokenRef {
        token: None,
        ..token(23)
    };
    let issuer = cmd(
        CardEvent::ParTokens {
            par: other_par(),
            circuit: Circuit::Visa,
            tokens: vec![hashed_only],
        },
        Source::Issuer,
    );
    let (outcomes, _) = batch(&mut snap, &[issuer, row(token(23), other_par())]);
    assert_eq!(outcomes, vec![Outcome::Applied, Outcome::Applied]);
    assert!(snap.tokens[&token(23).htoken].has_clear);
}
