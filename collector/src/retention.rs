//! Retention: each run's `retention` names a policy from the config (or none: the default);
//! a background job deletes what has expired. Whole days older than every policy are dropped
//! as partitions (cheap on both stores); the expired runs of the remaining days are deleted
//! with their spans and scores, by trace ([`Deleter`]). `vigil retention --dry-run` runs the
//! same [`enforce`] without changing anything.
//!
//! A span or score whose run is gone before it (a trace whose run never arrived, or whose run
//! sat in an older dropped day) is removed when its own day is dropped.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schemas::time::{NANOS_PER_DAY, day_of, day_string, now_ns, parse_duration_ns};

use crate::sink::{Cutoffs, DeletedRows, Deleter, Doomed, SinkError};

/// A policy that never expires.
pub const FOREVER: &str = "forever";

/// `[retention]` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Run the background job.
    pub enabled: bool,
    /// How long runs without a (known) policy are kept: a duration (`90d`) or `forever`.
    pub default: String,
    /// Policy name (what a run's `retention` says) → duration or `forever`.
    pub policies: BTreeMap<String, String>,
    /// How often the job looks for expired data.
    pub check_interval: String,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            enabled: true,
            default: FOREVER.into(),
            policies: BTreeMap::new(),
            check_interval: "1h".into(),
        }
    }
}

/// How long a policy keeps data; `None`: forever.
fn keep_for(field: &str, text: &str) -> Result<Option<i64>, String> {
    if text == FOREVER {
        return Ok(None);
    }
    parse_duration_ns(text)
        .filter(|ns| *ns > 0)
        .map(Some)
        .ok_or_else(|| {
            format!("{field} = {text:?} is neither a duration (e.g. 7d, 12h) nor \"{FOREVER}\"")
        })
}

impl RetentionSettings {
    /// Checks every duration; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        keep_for("retention.default", &self.default)?;
        for (name, text) in &self.policies {
            keep_for(&format!("retention.policies.{name}"), text)?;
        }
        match parse_duration_ns(&self.check_interval) {
            Some(ns) if ns >= 1_000_000_000 => Ok(()),
            _ => Err(format!(
                "retention.check_interval = {:?} is not a duration of at least 1s",
                self.check_interval
            )),
        }
    }

    pub fn check_interval(&self) -> Duration {
        Duration::from_nanos(
            parse_duration_ns(&self.check_interval).unwrap_or(3600 * 1_000_000_000) as u64,
        )
    }

    /// The cutoffs at `now`: runs that started before them have expired.
    pub fn cutoffs(&self, now: i64) -> Cutoffs {
        let cutoff = |text: &str| {
            keep_for("", text)
                .ok()
                .flatten()
                .map(|keep| now.saturating_sub(keep))
        };
        Cutoffs {
            named: self
                .policies
                .iter()
                .map(|(name, text)| (name.clone(), cutoff(text)))
                .collect(),
            default: cutoff(&self.default),
            from_ns: None,
        }
    }

    /// Days before this one hold only expired data, whatever its policy: `None` while any
    /// policy keeps data forever.
    pub fn drop_days_before(&self, now: i64) -> Option<i64> {
        let cutoffs = self.cutoffs(now);
        let all_finite =
            cutoffs.default.is_some() && cutoffs.named.iter().all(|(_, c)| c.is_some());
        let earliest = cutoffs
            .named
            .iter()
            .filter_map(|(_, c)| *c)
            .chain(cutoffs.default)
            .min();
        // The day holding the earliest cutoff still has unexpired rows after it.
        all_finite.then(|| earliest.map(day_of)).flatten()
    }
}

/// What one pass deleted (or, dry, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// When the pass looked (RFC 3339).
    pub at: String,
    /// Whole days before this one (`YYYY-MM-DD`) were dropped.
    pub dropped_days_before: Option<String>,
    pub dropped: DeletedRows,
    /// Rows of expired runs' traces in the days kept.
    pub expired: DeletedRows,
    pub dry_run: bool,
}

impl RetentionReport {
    pub fn total(&self) -> u64 {
        self.dropped.total() + self.expired.total()
    }
}

/// One pass at `now`: whole days first, then the expired runs left.
pub async fn enforce(
    settings: &RetentionSettings,
    deleter: &dyn Deleter,
    now: i64,
    dry_run: bool,
) -> Result<RetentionReport, SinkError> {
    let before = settings.drop_days_before(now);
    let dropped = match before {
        Some(day) => deleter.drop_days_before(day, dry_run).await?,
        None => DeletedRows::default(),
    };
    let cutoffs = Cutoffs {
        from_ns: before.map(|day| day * NANOS_PER_DAY),
        ..settings.cutoffs(now)
    };
    let expired = deleter.delete(&Doomed::Expired(cutoffs), dry_run).await?;
    Ok(RetentionReport {
        at: vigil_schemas::time::rfc3339(now),
        dropped_days_before: before.map(day_string),
        dropped,
        expired,
        dry_run,
    })
}

/// Runs [`enforce`] every `check_interval` until `shutdown`; `on_report` hears of every pass
/// that deleted something (the binary writes it to the audit log).
pub fn spawn_retention(
    settings: RetentionSettings,
    deleter: Arc<dyn Deleter>,
    on_report: impl Fn(&RetentionReport) + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = settings.check_interval();
        loop {
            match enforce(&settings, deleter.as_ref(), now_ns(), false).await {
                Ok(report) if report.total() > 0 => {
                    tracing::info!(?report, "retention deleted expired data");
                    on_report(&report);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying at the next interval")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = NANOS_PER_DAY;

    fn settings(default: &str, policies: &[(&str, &str)]) -> RetentionSettings {
        RetentionSettings {
            default: default.into(),
            policies: policies
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
            ..RetentionSettings::default()
        }
    }

    #[test]
    fn whole_days_go_only_when_every_policy_has_expired_them() {
        let now = 100 * DAY + DAY / 2;
        let s = settings("30d", &[("short", "7d")]);
        assert_eq!(s.drop_days_before(now), Some(day_of(now - 30 * DAY)));
        assert_eq!(s.cutoffs(now).cutoff_of("short"), Some(now - 7 * DAY));
        assert_eq!(s.cutoffs(now).cutoff_of("other"), Some(now - 30 * DAY));
        let held = settings("30d", &[("legal_hold", FOREVER)]);
        assert_eq!(held.drop_days_before(now), None);
        assert_eq!(settings(FOREVER, &[]).drop_days_before(now), None);
    }

    #[test]
    fn bad_durations_name_the_setting() {
        assert!(settings("90d", &[("short", "7d")]).validate().is_ok());
        let err = settings("soon", &[]).validate().unwrap_err();
        assert!(err.contains("retention.default"), "{err}");
        let err = settings("90d", &[("short", "-1d")]).validate().unwrap_err();
        assert!(err.contains("retention.policies.short"), "{err}");
    }
}
