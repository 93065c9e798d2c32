//! What a transaction teaches the card registry (`matching.md` case 2, `files.md` TK10 part 2):
//! a hash unknown to tkm whose record's PAR is known is saved as an HTOKEN of that PAR (source
//! `transaction`, provisional); a record that matched nothing but carries a clear token PAN in a
//! token BIN range and a PAR feeds that pair to the token intake like a token-list row.

use crate::domain::matching::{Decision, MatchKind, Outcome, Reason, Snapshot};
use crate::domain::token_list::TokenRanges;
use crate::domain::transactions::Record;
use crate::domain::{
    CardCommand, CardEvent, Circuit, Htoken, Par, Source, Sourced, TokenPan, TokenRef,
};

/// Who learns, for audit columns.
pub const BY: &str = "transaction-matcher";

fn par_tokens(
    par: Par,
    circuit: Circuit,
    htoken: Htoken,
    token: Option<TokenPan>,
    source: Source,
) -> Sourced {
    Sourced {
        command: CardCommand::Event(CardEvent::ParTokens {
            par,
            circuit,
            tokens: vec![TokenRef {
                htoken,
                token,
                deleted: false,
            }],
        }),
        source,
        by: BY.to_owned(),
        origin: None,
    }
}

/// The card command a valid payment's decision teaches, if any.
pub fn lesson(
    snapshot: &Snapshot,
    ranges: &TokenRanges,
    record: &Record,
    clear: Option<&TokenPan>,
    decision: &Decision,
) -> Option<Sourced> {
    let circuit = Circuit::from_file_code(&format!("{:02}", record.circuit)).ok()?;
    let htoken = Htoken::parse(&record.hash.to_hex()).ok()?;
    // Case 2: the PAR is known, the hash is not.
    if let Some(par) = decision.learn.and_then(|p| snapshot.par(p)) {
        return Some(par_tokens(
            par.clone(),
            circuit,
            htoken,
            None,
            Source::Transaction,
        ));
    }
    // TK10 part 2: nothing matched, a clear token and a PAR came with the record.
    let unmatched = decision.outcome == Outcome::Discarded(Reason::NotEnrolled)
        && decision.kind == MatchKind::None;
    let (Some(par), Some(token)) = (&record.par, clear) else {
        return None;
    };
    let in_range = circuit == Circuit::Mastercard || ranges.holds(circuit, token.expose());
    (unmatched && in_range).then(|| {
        par_tokens(
            par.clone(),
            circuit,
            htoken,
            Some(token.clone()),
            Source::TokenList,
        )
    })
}
