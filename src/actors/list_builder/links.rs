//! One-shot links: a random 256-bit token per file of one generation, stored by its SHA-256
//! with its expiry and the minting client; redeemed once, atomically, by that client only.

use std::path::Path;

use base64::Engine as _;
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use super::build::generation_dir;
use super::messages::{Download, IssueLinks, IssuedLink, LinkSet, LinkTarget, ListError, Redeem};
use crate::config::ListsSettings;
use crate::db::lists::{self as store, ListFile, NewLink, Redemption};

/// A fresh token and its digest.
fn token() -> Result<(String, [u8; 32]), ListError> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw)
        .map_err(|e| ListError::Io(std::io::Error::other(e.to_string())))?;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    Ok((text.clone(), digest(&text)))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Mints links to the newest generation of the list.
pub async fn issue(
    pool: &Pool,
    settings: &ListsSettings,
    msg: IssueLinks,
) -> Result<LinkSet, ListError> {
    let generation = store::latest(pool, msg.kind)
        .await?
        .ok_or(ListError::NoGeneration(msg.kind.as_str()))?;
    let files: Vec<(Option<i64>, ListFile)> = match msg.target {
        LinkTarget::AllParts => generation.parts.iter().map(|p| (None, p.clone())).collect(),
        LinkTarget::Part(n) => {
            let part = generation
                .parts
                .iter()
                .find(|p| usize::try_from(p.part).ok() == Some(n))
                .ok_or(ListError::NoSuchPart(n))?;
            vec![(None, part.clone())]
        }
        LinkTarget::DeltaSince(since) => {
            let delta = store::delta_file(pool, generation.id, since)
                .await?
                .ok_or(ListError::NoDelta(since))?;
            vec![(Some(since), delta)]
        }
    };
    let expires_at = chrono::Utc::now() + settings.link_lifetime(generation.parts.len());
    let mut rows = Vec::with_capacity(files.len());
    let mut links = Vec::with_capacity(files.len());
    for (since, file) in files {
        let (text, sha) = token()?;
        rows.push(NewLink {
            token_sha256: sha,
            generation: generation.id,
            delta_since: since,
            part: file.part,
            client: msg.client.clone(),
            expires_at,
        });
        links.push(IssuedLink {
            token: text,
            part: usize::try_from(file.part).unwrap_or(0),
            sha256: file.sha256,
        });
    }
    store::mint(pool, &rows).await?;
    Ok(LinkSet {
        generation: generation.id,
        created_at: generation.created_at,
        expires_at,
        parts: generation.parts.len(),
        content_sha256: generation.content_sha256,
        links,
    })
}

/// Consumes a link and says which file to send.
pub async fn redeem(pool: &Pool, root: &Path, msg: Redeem) -> Result<Download, ListError> {
    // A token of another shape cannot exist: no database round trip for it.
    let shaped = msg.token.len() == 43
        && msg
            .token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return Err(ListError::LinkUnknown);
    }
    let granted = match store::redeem(pool, &digest(&msg.token), &msg.client).await? {
        Redemption::Granted(r) => r,
        Redemption::Gone => return Err(ListError::LinkGone),
        Redemption::Unknown => return Err(ListError::LinkUnknown),
    };
    let path = generation_dir(root, granted.kind, granted.generation).join(&granted.file.file_name);
    Ok(Download {
        path,
        file_name: granted.file.file_name,
        bytes: u64::try_from(granted.file.bytes).unwrap_or(0),
        sha256: granted.file.sha256,
        created_at: granted.created_at,
    })
}
