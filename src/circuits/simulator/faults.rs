//! Fault injection of one circuit (`POST /sim/faults`): what is configured and the roll that picks
//! what happens to one call.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// One circuit's faults; a missing field is 0 (off).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every answer, milliseconds.
    pub latency_ms: u64,
    /// Share (0–1) of calls answered 503.
    pub error_rate: f64,
    /// Share (0–1) of calls held 60 s (then 504).
    pub timeout_rate: f64,
    /// Share (0–1) of calls answered 200 with a garbage body.
    pub malformed_rate: f64,
    /// Share (0–1) of Mastercard calls answered 200 with an error body.
    pub error_in_body_rate: f64,
    /// PAR units per wall-clock second above which calls get 429 (0 = off).
    pub contract_rate: u32,
    /// 503 for everything, this many seconds from when it was set.
    pub outage_secs: u64,
    /// Share (0–1) of calls answered 429 whatever the rate (PAR and BIN calls alike).
    pub too_many_requests_rate: f64,
    /// The `Retry-After` value of every 429, sent as given (any header text, garbage included);
    /// `1` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
}

impl Faults {
    /// Only the contract rate (the start-up configuration).
    pub fn contract(rate: u32) -> Self {
        Faults {
            contract_rate: rate,
            ..Faults::default()
        }
    }

    /// Refuses rates outside 0–1 (and NaN), and a `Retry-After` no header can carry.
    pub fn validate(&self) -> Result<(), &'static str> {
        let rates = [
            self.error_rate,
            self.timeout_rate,
            self.malformed_rate,
            self.error_in_body_rate,
            self.too_many_requests_rate,
        ];
        if !rates.iter().all(|r| (0.0..=1.0).contains(r)) {
            return Err("rates must be within 0..1");
        }
        let header = |v: &String| actix_web::http::header::HeaderValue::from_str(v).is_ok();
        if !self.retry_after.as_ref().is_none_or(header) {
            return Err("retryAfter must be a header value (visible ASCII, no line breaks)");
        }
        Ok(())
    }

    /// Whether this call is answered 429 by the `tooManyRequestsRate` roll.
    pub fn roll_too_many(&self, rng: &mut impl Rng) -> bool {
        self.too_many_requests_rate > 0.0 && rng.gen::<f64>() < self.too_many_requests_rate
    }
}

/// What the roll decided for one call that got past the outage, the checks and the contract rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Answer normally.
    Nothing,
    /// 503.
    Error,
    /// Hold the answer 60 s, then 504.
    Timeout,
    /// 200 with a garbage body.
    Malformed,
    /// 200 with the circuit's error body (Mastercard).
    ErrorInBody,
}

/// Rolls the faults of one call; `error_in_body` only counts where the circuit does that.
pub fn roll(faults: &Faults, error_in_body: bool, rng: &mut impl Rng) -> Injected {
    let mut hit = |rate: f64| rate > 0.0 && rng.gen::<f64>() < rate;
    if hit(faults.error_rate) {
        Injected::Error
    } else if hit(faults.timeout_rate) {
        Injected::Timeout
    } else if hit(faults.malformed_rate) {
        Injected::Malformed
    } else if error_in_body && hit(faults.error_in_body_rate) {
        Injected::ErrorInBody
    } else {
        Injected::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_zero_and_rates_are_checked() -> Result<(), serde_json::Error> {
        let f: Faults = serde_json::from_str(r#"{"errorRate": 0.5}"#)?;
        assert_eq!(f.error_rate, 0.5);
        assert_eq!(f.contract_rate, 0);
        assert!(f.validate().is_ok());
        let bad: Faults = serde_json::from_str(r#"{"timeoutRate": 1.5}"#)?;
        assert!(bad.validate().is_err());
        let garbage: Faults =
            serde_json::from_str(r#"{"tooManyRequestsRate": 1, "retryAfter": "-5"}"#)?;
        assert_eq!(garbage.retry_after.as_deref(), Some("-5"));
        assert!(garbage.validate().is_ok());
        assert!(garbage.roll_too_many(&mut rand::thread_rng()));
        assert!(!Faults::default().roll_too_many(&mut rand::thread_rng()));
        let bad: Faults = serde_json::from_str(r#"{"retryAfter": "1\r\nX-Evil: 1"}"#)?;
        assert!(bad.validate().is_err());
        Ok(())
    }

    #[test]
    fn certain_rates_always_fire_and_zero_never() {
        let mut rng = rand::thread_rng();
        let none = Faults::default();
        let all = Faults {
            error_in_body_rate: 1.0,
            ..Faults::default()
        };
        for _ in 0..100 {
            assert_eq!(roll(&none, true, &mut rng), Injected::Nothing);
            assert_eq!(roll(&all, true, &mut rng), Injected::ErrorInBody);
            assert_eq!(roll(&all, false, &mut rng), Injected::Nothing);
        }
        let errors = Faults {
            error_rate: 1.0,
            malformed_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(roll(&errors, true, &mut rng), Injected::Error);
    }
}
