//! Webhook delivery: Alertmanager's `version: "4"` JSON, signed per Standard Webhooks
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`), one timeout per request, retried with exponential back-off and jitter
//! on 5xx, 408, 429, timeouts and connection failures, with the same `webhook-id` on every try.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use vigil_schemas::time::rfc3339;

use crate::{config::Receiver, dispatch::Notification};

/// Alertmanager's "not resolved" end time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The header that carries the alerting lease token a notification was sent under, when
/// alerting runs on many nodes: a receiver that remembers the highest it saw can refuse a
/// notification from a former holder that was paused past the end of its lease.
pub const LEASE_TOKEN_HEADER: &str = "vigil-lease-token";
/// The longest back-off between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The JSON body of a notification.
pub fn payload(notification: &Notification, receiver: &Receiver, external_url: &str) -> Value {
    let total = notification.alerts.len();
    let kept = if receiver.max_alerts == 0 {
        total
    } else {
        total.min(receiver.max_alerts)
    };
    let alerts: Vec<&crate::dispatch::Alert> = notification.alerts[..kept].iter().collect();
    let common = |pick: fn(&crate::dispatch::Alert) -> &crate::labels::Labels| {
        let mut common = alerts.first().map(|a| pick(a).clone()).unwrap_or_default();
        for alert in &alerts[1..] {
            common.retain(|k, v| pick(alert).get(k) == Some(v));
        }
        common
    };
    let external_url = external_url.trim_end_matches('/');
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": total - kept,
        "status": if notification.is_firing() { "firing" } else { "resolved" },
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": external_url,
        "alerts": alerts.iter().map(|a| json!({
            "status": if a.is_firing() { "firing" } else { "resolved" },
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at_ns),
            "endsAt": a.ends_at_ns.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
            "generatorURL": format!("{external_url}/api/v1/alert-rules/{}", a.rule),
            "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered(u16),
    /// Worth another try: 5xx, 408, 429, a timeout, a connection failure.
    Retryable(String),
    /// Not worth another try: any other 4xx or 3xx.
    Rejected(u16),
}

impl Attempt {
    /// The `/metrics` label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            Attempt::Delivered(_) => "delivered",
            Attempt::Retryable(_) => "retryable_error",
            Attempt::Rejected(_) => "rejected",
        }
    }
}

/// One POST of `body`, signed now (with the lease token it is sent under, if any).
pub async fn attempt(
    client: &reqwest::Client,
    receiver: &Receiver,
    id: &str,
    lease_token: Option<i64>,
    body: &[u8],
) -> Attempt {
    let timestamp = vigil_schemas::time::now_ns() / 1_000_000_000;
    let mut request = client.post(receiver.url.clone());
    if let Some(token) = lease_token {
        request = request.header(LEASE_TOKEN_HEADER, token.to_string());
    }
    let response = request
        .timeout(receiver.timeout)
        .header("content-type", "application/json")
        .header("user-agent", concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            signature(&receiver.key, id, timestamp, body),
        )
        .body(body.to_vec())
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Attempt::Delivered(r.status().as_u16()),
        Ok(r) if r.status().is_server_error() || matches!(r.status().as_u16(), 408 | 429) => {
            Attempt::Retryable(format!("HTTP {}", r.status().as_u16()))
        }
        Ok(r) => Attempt::Rejected(r.status().as_u16()),
        Err(e) if e.is_timeout() => {
            Attempt::Retryable(format!("timed out after {:?}", receiver.timeout))
        }
        Err(e) => Attempt::Retryable(e.to_string()),
    }
}

/// The wait before try `n + 1` (n ≥ 1): `initial × 2^(n-1)`, at most a minute, times a random
/// factor in [0.5, 1.5) so that receivers recovering from an outage are not hit in step.
pub fn backoff(initial: Duration, tries: u32, jitter: f64) -> Duration {
    let exponential = initial.saturating_mul(1u32 << (tries.saturating_sub(1)).min(16));
    exponential
        .min(MAX_BACKOFF)
        .mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Alert, LogEntry};

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (and of its reference libraries).
        let key = crate::config::signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn back_off_doubles_up_to_a_minute_with_jitter() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(s, 3, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(s, 30, 0.5), MAX_BACKOFF);
        assert_eq!(backoff(s, 2, 0.0), Duration::from_secs(1));
        assert!(backoff(s, 2, 0.999) < Duration::from_secs(3));
    }

    #[test]
    fn the_payload_is_alertmanagers_version_4_truncated_to_max_alerts() {
        let file: crate::config::RulesFile = toml::from_str(
            "[[receivers]]\nname = \"oncall\"\nurl = \"http://127.0.0.1:9/\"\nsecret = \"0123456789abcdef0123\"\nmax_alerts = 1",
        )
        .unwrap();
        let receiver = crate::config::check_file(file, 1, &|_| None)
            .unwrap()
            .receivers
            .remove(0);
        let alert = |agent: &str, ends: Option<i64>| Alert {
            project: "default".into(),
            rule: "Errors".into(),
            fingerprint: format!("fp-{agent}"),
            labels: [
                ("alertname".to_string(), "Errors".to_string()),
                ("agent".to_string(), agent.to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), "many".to_string())].into(),
            starts_at_ns: 0,
            ends_at_ns: ends,
            receivers: vec![],
        };
        let n = Notification {
            receiver: "oncall".into(),
            group_key: "oncall/default:{alertname=\"Errors\"}".into(),
            group_labels: [("alertname".to_string(), "Errors".to_string())].into(),
            alerts: vec![alert("a", None), alert("b", Some(1_000_000_000))],
            entry: LogEntry::default(),
            id: "msg_1".into(),
        };
        let body = payload(&n, &receiver, "http://vigil:4318/");
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["truncatedAlerts"], 1);
        assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(body["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(
            body["alerts"][0]["generatorURL"],
            "http://vigil:4318/api/v1/alert-rules/Errors"
        );
        assert_eq!(body["commonLabels"]["agent"], "a");
        assert_eq!(body["externalURL"], "http://vigil:4318");
    }
}
