//! `tkm keys rotate`: re-encrypts every PAN, token PAN and dead letter sealed under another vault
//! key than `vault.active_key`, a page at a time, with a progress bar. Online (rows a running
//! server rewrites meanwhile are left as it wrote them, under the active key) and resumable (a
//! new run takes what is left). Afterwards the old key can leave `vault.keys`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Settings;
use crate::crypto::KeyRing;
use crate::db::{cards, dead_letters};

/// What a rotation re-encrypted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Card PANs.
    pub cards: u64,
    /// Token PANs.
    pub tokens: u64,
    /// Dead letters' sealed originals.
    pub dead_letters: u64,
}

/// Runs the rotation to its end on a runtime of its own; `show` draws the progress bar.
pub fn run(settings: &Settings, show: bool) -> anyhow::Result<Rotated> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(rotate(settings, show))
}

/// The rotation (see [`run`]).
pub async fn rotate(settings: &Settings, show: bool) -> anyhow::Result<Rotated> {
    let ring = KeyRing::from_settings(settings)?;
    crate::db::run_migrations(&settings.database).await?;
    let pool = crate::db::build_pool(&settings.database)?;
    let (cards_left, tokens_left) = cards::rotation::left(&pool, &ring).await?;
    let letters_left = dead_letters::left_to_rotate(&pool, &ring).await?;
    let total = [cards_left, tokens_left, letters_left]
        .iter()
        .map(|n| u64::try_from(*n).unwrap_or(0))
        .sum::<u64>();
    let bar = if show {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} values under key {msg}  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(ring.active_id().to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut done = Rotated::default();
    for tokens in [false, true] {
        loop {
            let n = cards::rotation::rotate_page(&pool, &ring, tokens).await?;
            if n == 0 {
                break;
            }
            let slot = if tokens {
                &mut done.tokens
            } else {
                &mut done.cards
            };
            *slot = slot.saturating_add(n);
            bar.inc(n);
        }
    }
    loop {
        let n = dead_letters::rotate_page(&pool, &ring, crate::bridge::dead_letter::seal_context)
            .await?;
        if n == 0 {
            break;
        }
        done.dead_letters = done.dead_letters.saturating_add(n);
        bar.inc(n);
    }
    bar.finish_and_clear();
    Ok(done)
}
