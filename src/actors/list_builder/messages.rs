//! Messages the ListBuilder answers, and its error.

use std::path::PathBuf;

use actix::Message;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::db::DbError;
use crate::domain::lists::ListKind;

/// Why a list request failed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Writing or reading a list file failed.
    #[error("list file: {0}")]
    Io(#[from] std::io::Error),
    /// No generation of the list exists yet (404 4001).
    #[error("no {0} list has been built yet")]
    NoGeneration(&'static str),
    /// The part asked for does not exist (404 4001).
    #[error("the list has no part {0}")]
    NoSuchPart(usize),
    /// No delta from that generation (unknown, or past retention: 404 4001).
    #[error("no delta from generation {0}: download the full list")]
    NoDelta(i64),
    /// The link was used or has expired (410 4002).
    #[error("the link was used or has expired")]
    LinkGone,
    /// Unknown link, or one minted by another client (404 4001).
    #[error("no such link")]
    LinkUnknown,
}

/// Request: build lists now, each as a new generation; answers the lines written in all.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, ListError>")]
pub struct BuildLists {
    /// The lists.
    pub kinds: Vec<ListKind>,
    /// The job whose progress to record.
    pub job: Option<Uuid>,
}

/// Which files of the current generation to link to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// Every part (`LinksResponse`).
    AllParts,
    /// One part (the 302 endpoints).
    Part(usize),
    /// The delta from an earlier generation.
    DeltaSince(i64),
}

/// Request: mint one-shot links to the current generation of a list.
#[derive(Debug, Message)]
#[rtype(result = "Result<LinkSet, ListError>")]
pub struct IssueLinks {
    /// The list.
    pub kind: ListKind,
    /// Which files.
    pub target: LinkTarget,
    /// The minting client (the only one that can use them).
    pub client: String,
}

/// A minted link.
#[derive(Clone, Debug)]
pub struct IssuedLink {
    /// The token for `/download/{token}` (a capability: never logged).
    pub token: String,
    /// The file's part number.
    pub part: usize,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// Links to one generation.
#[derive(Clone, Debug)]
pub struct LinkSet {
    /// The generation.
    pub generation: i64,
    /// When it was built.
    pub created_at: DateTime<Utc>,
    /// Until when the links work.
    pub expires_at: DateTime<Utc>,
    /// Parts in the generation.
    pub parts: usize,
    /// SHA-256 of the generation's content (all parts' lines, in order).
    pub content_sha256: String,
    /// The links.
    pub links: Vec<IssuedLink>,
}

/// Request: redeem a link (consumes it).
#[derive(Message)]
#[rtype(result = "Result<Download, ListError>")]
pub struct Redeem {
    /// The token from the URL.
    pub token: String,
    /// The client asking.
    pub client: String,
}

/// A file to send.
#[derive(Clone, Debug)]
pub struct Download {
    /// Where it is.
    pub path: PathBuf,
    /// Its name (`Content-Disposition`).
    pub file_name: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// The generation's time (`Last-Modified`).
    pub created_at: DateTime<Utc>,
}

/// Request: the HPAN salt (acquirers hash their PANs with it).
#[derive(Debug, Message)]
#[rtype(result = "SecretString")]
pub struct GetSalt {
    /// Who reads it (logged as an access).
    pub client: String,
}
