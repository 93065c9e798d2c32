//! `tkm publish-card-event`: reads card event JSON lines from stdin, encrypts each to tkm's PGP
//! public key and publishes it to the card events queue with a publisher confirm — for trying
//! tkm locally and for operators re-injecting an issuer's event. The PAN never touches the
//! command line, a file or a log: it comes in on stdin and leaves encrypted.

use std::io::BufRead;

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::crypto::pgp::PgpPublicKey;

/// Publishes every non-empty stdin line; returns how many.
pub fn run(settings: &Settings) -> anyhow::Result<usize> {
    let public = std::fs::read(&settings.pgp.public_key_file).with_context(|| {
        format!(
            "cannot read pgp.public_key_file {}",
            settings.pgp.public_key_file.display()
        )
    })?;
    let key = PgpPublicKey::from_armored(&public)
        .context("pgp.public_key_file is not a PGP public key")?;
    let mut bodies = Vec::new();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        // Only checked to be JSON: tkm itself validates the event (and dead-letters bad ones).
        serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|_| anyhow::anyhow!("line {}: not JSON", n + 1))?;
        bodies.push(key.encrypt(line.as_bytes(), true)?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let conn = Connection::connect(
            settings.rabbitmq.url.expose_secret(),
            ConnectionProperties::default(),
        )
        .await
        .context("cannot connect to RabbitMQ (rabbitmq.url)")?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions { nowait: false })
            .await?;
        for body in &bodies {
            let props = BasicProperties::default()
                .with_message_id(uuid::Uuid::new_v4().to_string().into())
                .with_delivery_mode(2);
            let confirm = ch
                .basic_publish(
                    "".into(),
                    settings.rabbitmq.card_events_queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    body,
                    props,
                )
                .await?
                .await?;
            anyhow::ensure!(
                confirm.is_ack() && confirm.take_message().is_none(),
                "the broker did not accept the event (is tkm's queue {} declared? start tkm first)",
                settings.rabbitmq.card_events_queue
            );
        }
        anyhow::Ok(())
    })?;
    Ok(bodies.len())
}
