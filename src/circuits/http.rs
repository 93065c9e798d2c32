//! The HTTP side every circuit client shares: one awc client (pool, keep-alive, TLS, client
//! certificate), timeouts, status → [`CallError`] mapping, and the per-call metrics.

use std::time::{Duration, Instant, SystemTime};

use awc::http::header::HeaderMap;
use awc::http::StatusCode;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

use super::retry_after;
use super::spec::{ClientSpec, TlsMaterial};
use super::CallError;
use crate::domain::Circuit;
use crate::metrics::Metrics;

/// Largest answer body read from a circuit (BIN pages are the big ones).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What a call is for (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// PAR lookup.
    Par,
    /// BIN ranges.
    Bins,
}

impl CallKind {
    fn label(self) -> &'static str {
        match self {
            CallKind::Par => "par",
            CallKind::Bins => "bins",
        }
    }
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: actix_web::web::Bytes,
}

/// One circuit's HTTP client.
pub struct Transport {
    circuit: Circuit,
    client: awc::Client,
    metrics: Metrics,
    max_retry_after: Duration,
}

impl Transport {
    /// Builds the client of `spec` (must run on the thread that will use it: awc is `!Send`).
    pub fn new(spec: &ClientSpec, metrics: Metrics, pool: usize) -> Result<Self, CallError> {
        let tls = |_| CallError::Transport("TLS set-up".into());
        // Live specs carry their material parsed at start-up; the simulator's spec only paths.
        let material = match &spec.tls_material {
            Some(material) => material.clone(),
            None => TlsMaterial::load(&spec.tls, &|k| k.to_owned()).map_err(|e| {
                tracing::warn!(circuit = %spec.circuit, error = %e, "cannot read the circuit's TLS files");
                CallError::Transport("TLS set-up".into())
            })?,
        };
        let mut builder = SslConnector::builder(SslMethod::tls()).map_err(tls)?;
        for root in material.roots {
            builder.cert_store_mut().add_cert(root).map_err(tls)?;
        }
        builder.set_verify(SslVerifyMode::PEER);
        if let Some((leaf, chain, key)) = material.identity {
            builder.set_certificate(&leaf).map_err(tls)?;
            for cert in chain {
                builder.add_extra_chain_cert(cert).map_err(tls)?;
            }
            builder.set_private_key(&key).map_err(tls)?;
            builder.check_private_key().map_err(tls)?;
        }
        let connector = awc::Connector::new()
            .openssl(builder.build())
            .timeout(spec.connect_timeout)
            .limit(pool.max(1));
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(spec.timeout)
            .disable_redirects()
            .finish();
        Ok(Transport {
            circuit: spec.circuit,
            client,
            metrics,
            max_retry_after: spec.max_retry_after,
        })
    }

    /// The underlying client, for GETs of BIN files.
    pub fn client(&self) -> &awc::Client {
        &self.client
    }

    /// POSTs `body` with `headers`; maps the answer's status; counts and times the call.
    pub async fn post(
        &self,
        kind: CallKind,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, CallError> {
        let mut request = self
            .client
            .post(url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", "application/json"));
        for (name, value) in headers {
            request = request.insert_header((*name, value.as_str()));
        }
        let started = Instant::now();
        let result = async {
            let mut response = request.send_body(body).await.map_err(send_error)?;
            let status = response.status();
            let retry_after = self.retry_after(response.headers());
            let body = response
                .body()
                .limit(MAX_BODY)
                .await
                .map_err(|_| CallError::Transport("reading the answer".into()))?;
            classify(status, retry_after, body)
        }
        .await;
        self.observe(kind, started, &result);
        result
    }

    /// The answer's `Retry-After`, at most `circuits.max_retry_after_secs` (`None`: absent or
    /// unusable, the caller backs off normally).
    pub fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get("retry-after")?.to_str().ok()?;
        retry_after::parse(value, SystemTime::now(), self.max_retry_after)
    }

    /// Records one call's outcome and latency.
    pub fn observe<T>(&self, kind: CallKind, started: Instant, result: &Result<T, CallError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(CallError::Timeout) => "timeout",
            Err(CallError::Transport(_)) => "transport",
            Err(CallError::Server(_)) => "server_error",
            Err(CallError::RateLimited { .. }) => "rate_limited",
            Err(CallError::Refused(_)) => "refused",
            Err(CallError::Malformed(_)) => "malformed",
        };
        let labels = [self.circuit.as_str(), kind.label()];
        self.metrics
            .circuit_calls
            .with_label_values(&[labels[0], labels[1], outcome])
            .inc();
        self.metrics
            .circuit_call_seconds
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            tracing::warn!(circuit = %self.circuit, kind = kind.label(), error = %e, "circuit call failed");
        }
    }
}

fn send_error(e: awc::error::SendRequestError) -> CallError {
    use awc::error::SendRequestError as E;
    match e {
        E::Timeout => CallError::Timeout,
        E::Connect(awc::error::ConnectError::Timeout) => CallError::Timeout,
        // Display texts of awc errors name hosts and I/O causes, never request bodies.
        other => CallError::Transport(other.to_string()),
    }
}

/// Maps a status to success or the error class the resolver acts on.
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: actix_web::web::Bytes,
) -> Result<Reply, CallError> {
    match status.as_u16() {
        200..=299 => Ok(Reply { status, body }),
        429 => Err(CallError::RateLimited { retry_after }),
        408 | 504 => Err(CallError::Timeout),
        500..=599 => Err(CallError::Server(status.as_u16())),
        code => Err(CallError::Refused(format!("HTTP {code}"))),
    }
}

/// Parses a JSON answer; the error names what was expected, never the content.
pub fn json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|_| CallError::Malformed(format!("{what} is not the expected JSON")))
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A random nonce (hex).
pub fn nonce() -> Result<String, CallError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).map_err(|_| CallError::Transport("random".into()))?;
    Ok(hex::encode(bytes))
}
