//! Card events in over RabbitMQ (GnuPG-encrypted), card updates out, dead letters, deletions,
//! consent-driven updates, and `/cards` — all against the real broker and database.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::broker::{
    channel, drain, encrypt, gpg_encrypt, header, next, publish, wait_for_topology,
};
use crate::helpers::{consent, sha, spawn_app, tax_code};

const PAN: &str = "5255000012340001";
const TOKEN: &str = "5255990000000017";
const PAR: &str = "5001a1b2c3d4e5f6a7b8c9d0e1f2a";

fn enrolment(tc: &str, pan: &str, token: Option<&str>, ts: &str) -> Vec<u8> {
    let tokens = token.map_or(json!([]), |t| json!([{"token": t}]));
    serde_json::to_vec(
        &json!({"taxCode": tc, "pan": pan, "circuit": "MASTERCARD", "par": PAR,
        "timestamp": ts, "tokens": tokens}),
    )
    .unwrap()
}

fn body(m: &lapin::message::BasicGetMessage) -> Value {
    serde_json::from_slice(&m.delivery.data).unwrap()
}

mod dead_letters;
mod events;
mod lifecycle;
mod outbox;
mod plans;
mod read_only;
