//! Which rows make up each list (`files.md`, `data.md` "Enrolment"), as `COPY … TO STDOUT`
//! statements sorted byte-wise, and the streaming of one of them.

use super::DbError;
use crate::domain::lists::ListKind;

/// A live citizen link of card `c` whose citizen consents to at least one service.
const CONSENTING: &str = crate::db::consenting_link_sql!("c");

/// The same rule for a link `l` of card `c` already joined with its citizen `cc`.
const CONSENT_OF_LINK: &str = crate::db::consent_of_link_sql!("c");

/// One query of a list's rows (one value per row, column `v`).
struct Member {
    query: String,
    /// Streams in the order of a unique index (hashes in the "C" collation): sorting is
    /// switched off for it, so rows leave as the index is read instead of after a sort.
    index_order: bool,
}

/// The live tokens of the PAR (or, while it is unknown, of the card itself) of an enrolled
/// card with consent, as joins: PostgreSQL hashes and merges whole tables instead of probing
/// three indexes per token (17 µs a token at 10 M cards, 3.5 µs as a join).
fn consenting_tokens(by: &str) -> String {
    format!(
        "SELECT t.htoken AS v FROM token t JOIN card c ON {by} AND c.active \
         JOIN card_link l ON l.card_id = c.id AND l.live \
         JOIN consent_citizen cc ON cc.tax_code = l.tax_code \
         WHERE NOT t.deleted AND {CONSENT_OF_LINK}"
    )
}

/// The queries whose rows make up a list.
fn members(kind: ListKind) -> Vec<Member> {
    let hashes = |query: &str| Member {
        query: query.to_owned(),
        index_order: true,
    };
    let planned = |query: String| Member {
        query,
        index_order: false,
    };
    match kind {
        // Enrolled cards' HPANs, and the live tokens of the PAR of every enrolled card with
        // consent (a token waiting on a card whose PAR is unknown counts for that card).
        ListKind::Hpans => vec![
            hashes("SELECT c.hpan AS v FROM card c WHERE c.active"),
            planned(format!(
                "{} UNION {}",
                consenting_tokens("c.par_key = t.par_key"),
                consenting_tokens("c.id = t.card_id")
            )),
        ],
        ListKind::Pars => vec![planned(format!(
            "SELECT DISTINCT c.par AS v FROM card c \
             WHERE c.active AND c.par IS NOT NULL AND {CONSENTING}"
        ))],
        ListKind::BinRanges => vec![planned(
            "SELECT DISTINCT b.min_bound || ';' || b.max_bound AS v \
             FROM bin_range b WHERE b.token"
                .to_owned(),
        )],
        // Live cards, and live tokens except those that went with their card (`data.md`: an
        // inactive card's PAR tokens leave every list unless another live card shares the PAR).
        ListKind::KnownHashes => vec![
            hashes("SELECT c.hpan AS v FROM card c WHERE c.active"),
            planned(
                "SELECT t.htoken AS v FROM token t WHERE NOT t.deleted AND CASE \
                   WHEN t.card_id IS NOT NULL THEN EXISTS (SELECT 1 FROM card c \
                     WHERE c.id = t.card_id AND c.active) \
                   WHEN t.par_key IS NOT NULL THEN EXISTS (SELECT 1 FROM card c \
                     WHERE c.par_key = t.par_key AND c.active) \
                     OR NOT EXISTS (SELECT 1 FROM card c WHERE c.par_key = t.par_key) \
                   ELSE true END"
                    .to_owned(),
            ),
        ],
    }
}

fn sorted_copy(query: &str) -> String {
    format!("COPY (SELECT v FROM ({query}) AS list ORDER BY v COLLATE \"C\") TO STDOUT")
}

/// The `COPY` statement that writes a whole list, sorted byte-wise (`COLLATE "C"`, whatever the
/// database's collation), one value per line: the list's definition in one statement.
pub fn copy_statement(kind: ListKind) -> String {
    let parts: Vec<String> = members(kind)
        .iter()
        .map(|m| format!("({})", m.query))
        .collect();
    sorted_copy(&parts.join(" UNION ALL "))
}

/// One sorted stream of a list.
#[derive(Clone, Debug)]
pub struct CopyStream {
    /// The `COPY … TO STDOUT` statement.
    pub statement: String,
    /// Read in index order with sorting off (see [`stream_sorted`]).
    pub index_order: bool,
}

/// The list as sorted streams, one per table (hashes stream from their unique indexes, which
/// are in byte order); merged, they give [`copy_statement`]'s lines without a sort of the whole.
pub fn copy_streams(kind: ListKind) -> Vec<CopyStream> {
    members(kind)
        .iter()
        .map(|m| CopyStream {
            statement: sorted_copy(&m.query),
            index_order: m.index_order,
        })
        .collect()
}

/// Runs one of [`copy_streams`] on `client` and hands its chunks to `out` as they come; stops
/// early (without error) when `out` is closed. For an index-ordered stream sorting is off: the
/// rows come in index order, so the first ones leave at once instead of after a sort of the
/// whole table. JIT is off: compiling the plan costs more than it saves here.
pub async fn stream_sorted(
    client: &deadpool_postgres::Object,
    stream: &CopyStream,
    out: tokio::sync::mpsc::Sender<bytes::Bytes>,
) -> Result<(), DbError> {
    use futures_util::StreamExt as _;
    let setup = if stream.index_order {
        "BEGIN READ ONLY; SET LOCAL enable_sort = off; SET LOCAL jit = off"
    } else {
        "BEGIN READ ONLY; SET LOCAL jit = off"
    };
    client.batch_execute(setup).await?;
    let streamed = async {
        let stream = client.copy_out(stream.statement.as_str()).await?;
        futures_util::pin_mut!(stream);
        // A COPY message is one row: hand over 64 KiB at a time, not a wake-up per row.
        const BATCH: usize = 64 * 1024;
        let mut batch = bytes::BytesMut::with_capacity(BATCH + 256);
        while let Some(row) = stream.next().await {
            batch.extend_from_slice(&row?);
            if batch.len() >= BATCH && out.send(batch.split().freeze()).await.is_err() {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            let _ = out.send(batch.freeze()).await;
        }
        Ok::<_, tokio_postgres::Error>(())
    }
    .await;
    match streamed {
        Ok(()) => client.batch_execute("COMMIT").await?,
        Err(e) => {
            // Best effort: a broken connection is dropped by the pool anyway.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
    }
    Ok(())
}

/// How many lines the token BIN range list will have (to spread it over at most 10 parts).
pub async fn bin_range_lines(client: &deadpool_postgres::Object) -> Result<u64, DbError> {
    let n: i64 = client
        .query_one(
            "SELECT count(DISTINCT (min_bound, max_bound)) FROM bin_range WHERE token",
            &[],
        )
        .await?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_is_sorted_byte_wise() {
        for kind in ListKind::ALL {
            let s = copy_statement(kind);
            assert!(s.starts_with("COPY (") && s.ends_with("ORDER BY v COLLATE \"C\") TO STDOUT"));
            for stream in copy_streams(kind) {
                assert!(stream
                    .statement
                    .ends_with("ORDER BY v COLLATE \"C\") TO STDOUT"));
            }
        }
        assert_eq!(copy_streams(ListKind::Hpans).len(), 2);
        assert!(copy_statement(ListKind::Hpans).contains("cc.bpd_allowed"));
    }
}
