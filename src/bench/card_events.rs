//! P3 (`quality.md`): card events end to end. Seeds consenting citizens, encrypts N card events to
//! tkm's public key, publishes them to the card events queue, and waits until a card update for
//! every card has reached the card updates queue. Also measures, in the same run, the limit: the
//! raw decrypt rate of the same key.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

use crate::crypto::pgp::{PgpKey, PgpPublicKey};

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Number of events (one new card each).
    pub events: usize,
    /// Cards per citizen.
    pub cards_per_citizen: usize,
    /// AMQP URL.
    pub amqp: String,
    /// PostgreSQL URL of the tkm under test (to seed consent).
    pub database: String,
    /// Queue tkm consumes card events from.
    pub events_queue: String,
    /// Queue tkm's card updates reach.
    pub updates_queue: String,
    /// tkm's public key (armored).
    pub public_key: Vec<u8>,
    /// tkm's secret key (armored) and passphrase, for the decrypt-rate limit.
    pub secret_key: Option<(Vec<u8>, Option<secrecy::SecretString>)>,
    /// Publish only (the drill kills tkm meanwhile and checks the outcome itself).
    pub publish_only: bool,
    /// Card number prefix, so runs never collide.
    pub pan_prefix: u64,
    /// What the events carry.
    pub shape: Shape,
    /// Seed the citizens' consent first (else the caller gives it later).
    pub seed_consent: bool,
}

/// The events' shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// VISA cards with their PAR (P3: every event a card update).
    WithPar,
    /// VISA cards with their PAR and one clear token each (P3 as measured in issue 16).
    WithParAndToken,
    /// Cards of the three circuits in turn, without PAR (P6: every card a PAR lookup).
    CircuitsWithoutPar,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Events published.
    pub events: usize,
    /// Seconds from the first publish to the last card update (end to end).
    pub seconds: f64,
    /// Events per second end to end.
    pub rate: f64,
    /// Seconds spent publishing.
    pub publish_seconds: f64,
    /// Single-core raw decrypt rate of the same key (messages/s), when measured.
    pub decrypt_rate_one_core: Option<f64>,
}

/// A valid fiscal code for citizen `n` (check character computed).
pub fn tax_code(n: u64) -> String {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let mut letters = String::new();
    let mut x = n;
    for _ in 0..6 {
        letters.push(char::from(b'A' + u8::try_from(x % 26).unwrap_or(0)));
        x /= 26;
    }
    let body = format!("{letters}85T10A562");
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let v = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A'
            };
            if i % 2 == 0 {
                ODD[usize::from(v)]
            } else {
                u32::from(v)
            }
        })
        .sum();
    format!(
        "{body}{}",
        char::from(b'A' + u8::try_from(sum % 26).unwrap_or(0))
    )
}

/// The PAN of card `n` of this run.
pub fn pan(prefix: u64, n: usize) -> String {
    format!("{:06}{:010}", prefix % 1_000_000, n)
}

/// The token PAN of card `n` of this run (another range than the cards').
pub fn token(prefix: u64, n: usize) -> String {
    format!("9{:05}{:010}", prefix % 100_000, n)
}

/// Card `n` of a circuit mix: VISA, MASTERCARD and AMEX in turn, numbers their simulator knows.
pub fn circuit_pan(prefix: u64, n: usize) -> (&'static str, String) {
    let p = prefix % 100_000;
    match n % 3 {
        0 => ("VISA", format!("4{p:05}{n:010}")),
        1 => ("MASTERCARD", format!("5{p:05}{n:010}")),
        _ => ("AMEX", format!("37{:03}{n:010}", p % 1000)),
    }
}

/// Runs the benchmark (or, with `publish_only`, just publishes).
pub async fn run(plan: Plan, progress: impl Fn(&str)) -> anyhow::Result<Report> {
    let citizens = plan.events.div_ceil(plan.cards_per_citizen.max(1));
    if plan.seed_consent {
        progress(&format!("seeding {citizens} consenting citizens"));
        seed_consent(&plan.database, citizens, plan.pan_prefix).await?;
    }

    progress(&format!("encrypting {} card events", plan.events));
    let bodies = encrypt_all(&plan)?;

    let conn = Connection::connect(&plan.amqp, ConnectionProperties::default())
        .await
        .context("cannot connect to RabbitMQ")?;
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions { nowait: false })
        .await?;
    let counter = if plan.publish_only {
        None
    } else {
        let ch = conn.create_channel().await?;
        ch.queue_purge(
            plan.updates_queue.as_str().into(),
            QueuePurgeOptions { nowait: false },
        )
        .await?;
        Some(tokio::spawn(count_updates(
            ch,
            plan.updates_queue.clone(),
            plan.events,
        )))
    };

    progress("publishing");
    let started = Instant::now();
    for chunk in bodies.chunks(1000) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (i, body) in chunk {
            let props = BasicProperties::default()
                .with_message_id(format!("bench-{}-{i}", plan.pan_prefix).into())
                .with_delivery_mode(2);
            confirms.push(
                publisher
                    .basic_publish(
                        "".into(),
                        plan.events_queue.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        body,
                        props,
                    )
                    .await?,
            );
        }
        for c in confirms {
            let c = c.await?;
            anyhow::ensure!(
                c.is_ack() && c.take_message().is_none(),
                "publish not confirmed"
            );
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    progress(&format!(
        "published in {publish_seconds:.1} s; waiting for card updates"
    ));
    let seconds = match counter {
        None => publish_seconds,
        Some(task) => {
            task.await.context("update counter failed")??;
            started.elapsed().as_secs_f64()
        }
    };
    let decrypt_rate_one_core = match &plan.secret_key {
        Some((sk, pass)) => Some(decrypt_rate(sk, pass.as_ref(), &bodies)?),
        None => None,
    };
    Ok(Report {
        events: plan.events,
        seconds,
        rate: plan.events as f64 / seconds,
        publish_seconds,
        decrypt_rate_one_core,
    })
}

/// Inserts consenting citizens directly (benchmark seeding; the API path is measured by P2).
async fn seed_consent(database: &str, citizens: usize, prefix: u64) -> anyhow::Result<()> {
    let (client, conn) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the database")?;
    tokio::spawn(conn);
    let codes: Vec<String> = (0..citizens as u64)
        .map(|n| tax_code(prefix * 10_000_000 + n))
        .collect();
    let state = json!({"services": {"BPD": "Allow", "FA": "Allow"}, "cards": {}});
    for chunk in codes.chunks(10_000) {
        client
            .execute(
                "WITH c AS (INSERT INTO consent_citizen (tax_code, version, state, created_by, updated_by) \
                 SELECT t, 1, $2, 'bench', 'bench' FROM unnest($1::text[]) t ON CONFLICT DO NOTHING RETURNING tax_code) \
                 INSERT INTO consent_history (tax_code, version, at, request, after, created_by, updated_by) \
                 SELECT tax_code, 1, now(), '{\"consent\": \"Allow\"}', $2, 'bench', 'bench' FROM c",
                &[&chunk, &state],
            )
            .await?;
    }
    Ok(())
}

fn encrypt_all(plan: &Plan) -> anyhow::Result<Vec<(usize, Vec<u8>)>> {
    let key = Arc::new(PgpPublicKey::from_armored(&plan.public_key)?);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = plan.events.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (key, plan) = (key.clone(), plan.clone());
            std::thread::spawn(move || -> anyhow::Result<Vec<(usize, Vec<u8>)>> {
                let range = (t * per)..((t + 1) * per).min(plan.events);
                range
                    .map(|i| {
                        let citizen = (i / plan.cards_per_citizen.max(1)) as u64;
                        let tc = tax_code(plan.pan_prefix * 10_000_000 + citizen);
                        let event = match plan.shape {
                            Shape::WithPar => json!({
                                "taxCode": tc,
                                "pan": pan(plan.pan_prefix, i),
                                "circuit": "VISA",
                                "par": format!("V001{:06}{:019}", plan.pan_prefix % 1_000_000, i),
                                "timestamp": "2026-11-23 10:00:00:0000",
                            }),
                            Shape::WithParAndToken => json!({
                                "taxCode": tc,
                                "pan": pan(plan.pan_prefix, i),
                                "circuit": "VISA",
                                "par": format!("V001{:06}{:019}", plan.pan_prefix % 1_000_000, i),
                                "timestamp": "2026-11-23 10:00:00:0000",
                                "tokens": [{"token": token(plan.pan_prefix, i)}],
                            }),
                            Shape::CircuitsWithoutPar => {
                                let (circuit, pan) = circuit_pan(plan.pan_prefix, i);
                                json!({
                                    "taxCode": tc,
                                    "pan": pan,
                                    "circuit": circuit,
                                    "timestamp": "2026-11-23 10:00:00:0000",
                                })
                            }
                        };
                        let body = serde_json::to_vec(&event)?;
                        Ok((i, key.encrypt(&body, false)?))
                    })
                    .collect()
            })
        })
        .collect();
    let mut all = Vec::with_capacity(plan.events);
    for h in handles {
        all.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("encrypting thread failed"))??,
        );
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all)
}

async fn count_updates(ch: lapin::Channel, queue: String, expected: usize) -> anyhow::Result<()> {
    ch.basic_qos(1000, BasicQosOptions { global: false })
        .await?;
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "tkm-bench-counter".into(),
            BasicConsumeOptions {
                no_local: false,
                no_ack: false,
                exclusive: false,
                nowait: false,
            },
            FieldTable::default(),
        )
        .await?;
    let mut seen: HashSet<String> = HashSet::with_capacity(expected);
    while seen.len() < expected {
        let d = tokio::time::timeout(Duration::from_secs(120), consumer.next())
            .await
            .context("no card update for 120 s")?
            .context("consumer ended")??;
        let v: serde_json::Value = serde_json::from_slice(&d.data)?;
        for c in v["cards"].as_array().into_iter().flatten() {
            if let Some(h) = c["hpan"].as_str() {
                seen.insert(h.to_owned());
            }
        }
        d.ack(BasicAckOptions { multiple: false }).await?;
    }
    Ok(())
}

/// Single-core decrypt rate of `key` over (a sample of) the benchmark's own messages.
fn decrypt_rate(
    secret: &[u8],
    pass: Option<&secrecy::SecretString>,
    bodies: &[(usize, Vec<u8>)],
) -> anyhow::Result<f64> {
    let key = PgpKey::from_armored(secret, pass)?;
    let sample = &bodies[..bodies.len().min(3000)];
    let started = Instant::now();
    for (_, b) in sample {
        key.decrypt(b, 65536)?;
    }
    Ok(sample.len() as f64 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tax_codes_are_valid_and_distinct() {
        let a = tax_code(1);
        assert!(crate::domain::TaxCode::parse(&a).is_ok(), "{a}");
        assert_ne!(a, tax_code(2));
        assert!(crate::domain::TaxCode::parse(&tax_code(123_456_789)).is_ok());
    }

    #[test]
    fn pans_are_16_digits_and_distinct() {
        assert_eq!(pan(42, 7), "0000420000000007");
        assert!(crate::domain::Pan::parse(&pan(999_999, 9_999_999_999)).is_ok());
    }
}
