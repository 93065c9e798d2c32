//! The published lists' tables (`list_generation`, `list_file`, `list_link`) and the queries
//! that decide each list's membership (`files.md`, `data.md` "Enrolment"), streamed out with
//! `COPY … TO STDOUT` in byte order.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};

use super::DbError;
use crate::domain::lists::ListKind;

/// Who runs these statements (audit columns).
const BY: &str = "list-builder";

/// A live citizen link of card `c` whose citizen consents to at least one service.
const CONSENTING: &str = super::consenting_link_sql!("c");

/// The same rule for a link `l` of card `c` already joined with its citizen `cc`.
const CONSENT_OF_LINK: &str = super::consent_of_link_sql!("c");

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

/// A file of a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFile {
    /// Part number, from 0.
    pub part: i32,
    /// Name in the generation's directory.
    pub file_name: String,
    /// Lines.
    pub entries: i64,
    /// Size.
    pub bytes: i64,
    /// SHA-256 of the bytes.
    pub sha256: String,
}

/// A ready generation and its parts.
#[derive(Clone, Debug)]
pub struct Generation {
    /// Its id (`x-ms-meta-generation`).
    pub id: i64,
    /// The list.
    pub kind: ListKind,
    /// When it was built (the data's time: `generationDate`, `Last-Modified`).
    pub created_at: DateTime<Utc>,
    /// Lines in all parts.
    pub entries: i64,
    /// SHA-256 of the content (every part's lines in order, LF-terminated).
    pub content_sha256: String,
    /// Its parts, in order.
    pub parts: Vec<ListFile>,
}

/// Starts a generation (`building`); ends as `failed` any other building one of the kind — the
/// caller holds the kind's build lock, so those were cut off.
pub async fn begin(pool: &Pool, kind: ListKind) -> Result<(i64, DateTime<Utc>), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE list_generation SET state = 'failed', error = 'interrupted', updated_at = now(), \
         updated_by = $2 WHERE kind = $1 AND state = 'building'",
        &[&kind.as_str(), &BY],
    )
    .await?;
    let row = conn
        .query_one(
            "INSERT INTO list_generation (kind, state, created_by, updated_by) \
             VALUES ($1, 'building', $2, $2) RETURNING id, created_at",
            &[&kind.as_str(), &BY],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Publishes a built generation with its files (parts with `delta_since` `None`, deltas with
/// the generation they start from).
pub async fn publish(
    pool: &Pool,
    id: i64,
    entries: i64,
    content_sha256: &str,
    files: &[(Option<i64>, ListFile)],
) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO list_file (generation_id, delta_since, part, file_name, entries, bytes, \
             sha256, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .await?;
    for (since, f) in files {
        tx.execute(
            &insert,
            &[
                &id,
                since,
                &f.part,
                &f.file_name,
                &f.entries,
                &f.bytes,
                &f.sha256,
                &BY,
            ],
        )
        .await?;
    }
    tx.execute(
        "UPDATE list_generation SET state = 'ready', entries = $2, content_sha256 = $4, \
         ready_at = now(), updated_at = now(), updated_by = $3 WHERE id = $1",
        &[&id, &entries, &BY, &content_sha256],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Marks a generation failed with the reason (its files are gone or never were).
pub async fn fail(pool: &Pool, id: i64, error: &str) -> Result<(), DbError> {
    let conn = pool.get().await?;
    conn.execute(
        "UPDATE list_generation SET state = 'failed', error = $2, updated_at = now(), \
         updated_by = $3 WHERE id = $1 AND state = 'building'",
        &[&id, &error, &BY],
    )
    .await?;
    Ok(())
}

fn file(row: &tokio_postgres::Row) -> ListFile {
    ListFile {
        part: row.get(0),
        file_name: row.get(1),
        entries: row.get(2),
        bytes: row.get(3),
        sha256: row.get(4),
    }
}

/// The newest ready generation of a list, with its parts.
pub async fn latest(pool: &Pool, kind: ListKind) -> Result<Option<Generation>, DbError> {
    let conn = pool.get().await?;
    let Some(g) = conn
        .query_opt(
            "SELECT id, created_at, entries, content_sha256 FROM list_generation \
             WHERE kind = $1 AND state = 'ready' ORDER BY id DESC LIMIT 1",
            &[&kind.as_str()],
        )
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = g.get(0);
    let parts = conn
        .query(
            "SELECT part, file_name, entries, bytes, sha256 FROM list_file \
             WHERE generation_id = $1 AND delta_since IS NULL ORDER BY part",
            &[&id],
        )
        .await?
        .iter()
        .map(file)
        .collect();
    Ok(Some(Generation {
        id,
        kind,
        created_at: g.get(1),
        entries: g.get(2),
        content_sha256: g.get(3),
        parts,
    }))
}

/// The ready generations of a list other than `except`, newest first: the ones a new
/// generation writes deltas from.
pub async fn ready_ids(pool: &Pool, kind: ListKind, except: i64) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT id FROM list_generation WHERE kind = $1 AND state = 'ready' AND id <> $2 \
             ORDER BY id DESC",
            &[&kind.as_str(), &except],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The part files of a ready generation, in order (empty when it is not ready or unknown).
pub async fn part_files(pool: &Pool, generation: i64) -> Result<Vec<ListFile>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT f.part, f.file_name, f.entries, f.bytes, f.sha256 FROM list_file f \
             JOIN list_generation g ON g.id = f.generation_id AND g.state = 'ready' \
             WHERE f.generation_id = $1 AND f.delta_since IS NULL ORDER BY f.part",
            &[&generation],
        )
        .await?
        .iter()
        .map(file)
        .collect())
}

/// The delta of generation `generation` from `since`, if it was written.
pub async fn delta_file(
    pool: &Pool,
    generation: i64,
    since: i64,
) -> Result<Option<ListFile>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query_opt(
            "SELECT part, file_name, entries, bytes, sha256 FROM list_file \
             WHERE generation_id = $1 AND delta_since = $2",
            &[&generation, &since],
        )
        .await?
        .as_ref()
        .map(file))
}

/// Deletes the generations of a list past retention (never the newest ready one) and the failed
/// ones; returns their ids, whose directories the caller removes.
pub async fn expire(pool: &Pool, kind: ListKind, retention_days: u32) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    Ok(conn
        .query(
            "DELETE FROM list_generation g WHERE g.kind = $1 AND g.state <> 'building' \
             AND (g.state = 'failed' OR g.created_at < now() - make_interval(days => $2)) \
             AND g.id <> COALESCE((SELECT max(id) FROM list_generation \
                                   WHERE kind = $1 AND state = 'ready'), 0) \
             RETURNING g.id",
            &[&kind.as_str(), &days],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Every generation id still stored (any state), so that orphan directories can be removed.
pub async fn known_ids(pool: &Pool, kind: ListKind) -> Result<Vec<i64>, DbError> {
    let conn = pool.get().await?;
    Ok(conn
        .query(
            "SELECT id FROM list_generation WHERE kind = $1",
            &[&kind.as_str()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// A link to mint.
#[derive(Clone, Debug)]
pub struct NewLink {
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
    /// The generation.
    pub generation: i64,
    /// The delta's starting generation, for a delta.
    pub delta_since: Option<i64>,
    /// The part.
    pub part: i32,
    /// The minting client.
    pub client: String,
    /// Until when it works.
    pub expires_at: DateTime<Utc>,
}

/// Stores links (and drops those expired more than a day ago).
pub async fn mint(pool: &Pool, links: &[NewLink]) -> Result<(), DbError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let insert = tx
        .prepare(
            "INSERT INTO list_link (token_sha256, generation_id, delta_since, part, client, \
             expires_at, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $5, $5)",
        )
        .await?;
    for l in links {
        tx.execute(
            &insert,
            &[
                &l.token_sha256.as_slice(),
                &l.generation,
                &l.delta_since,
                &l.part,
                &l.client,
                &l.expires_at,
            ],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM list_link WHERE expires_at < now() - interval '1 day'",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a link leads to once redeemed.
#[derive(Clone, Debug)]
pub struct Redeemed {
    /// The list.
    pub kind: ListKind,
    /// The generation.
    pub generation: i64,
    /// When the generation was built.
    pub created_at: DateTime<Utc>,
    /// The file.
    pub file: ListFile,
}

/// The outcome of a download request.
#[derive(Clone, Debug)]
pub enum Redemption {
    /// Consumed now by this request.
    Granted(Redeemed),
    /// Used already, or expired (410 4002).
    Gone,
    /// Unknown, or minted by another client (404).
    Unknown,
}

/// Consumes a link atomically: of concurrent requests exactly one gets it.
pub async fn redeem(
    pool: &Pool,
    token_sha256: &[u8; 32],
    client: &str,
) -> Result<Redemption, DbError> {
    let conn = pool.get().await?;
    let row = conn
        .query_opt(
            "UPDATE list_link SET used_at = now(), updated_at = now(), updated_by = $2 \
             WHERE token_sha256 = $1 AND client = $2 AND used_at IS NULL AND expires_at > now() \
             RETURNING generation_id, delta_since, part",
            &[&token_sha256.as_slice(), &client],
        )
        .await?;
    let Some(row) = row else {
        let known = conn
            .query_opt(
                "SELECT 1 FROM list_link WHERE token_sha256 = $1 AND client = $2",
                &[&token_sha256.as_slice(), &client],
            )
            .await?;
        return Ok(if known.is_some() {
            Redemption::Gone
        } else {
            Redemption::Unknown
        });
    };
    let (generation, since, part): (i64, Option<i64>, i32) = (row.get(0), row.get(1), row.get(2));
    let found = conn
        .query_opt(
            "SELECT f.part, f.file_name, f.entries, f.bytes, f.sha256, g.kind, g.created_at \
             FROM list_file f JOIN list_generation g ON g.id = f.generation_id \
             WHERE f.generation_id = $1 AND f.delta_since IS NOT DISTINCT FROM $2 AND f.part = $3",
            &[&generation, &since, &part],
        )
        .await?;
    let Some(f) = found else {
        return Ok(Redemption::Gone);
    };
    let kind = ListKind::parse(f.get(5))
        .ok_or_else(|| DbError::Unexpected(anyhow::anyhow!("stored list kind does not parse")))?;
    Ok(Redemption::Granted(Redeemed {
        kind,
        generation,
        created_at: f.get(6),
        file: file(&f),
    }))
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
