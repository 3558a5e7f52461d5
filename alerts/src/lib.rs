//! Alerting (docs/api.md#alerting): rules over the metric engine, a pure evaluator, silences and
//! inhibition, grouping and deduplication through a durable notification log, and webhooks
//! signed per Standard Webhooks.
//!
//! The parts, in the order an alert passes them:
//! - [`rule`]: rules as written, checked (every refusal names the field); [`template`] fills
//!   their annotations.
//! - [`batch`]: rules that share a query are answered by one metric request.
//! - [`evaluator`]: `(state, evaluation, now) → (state', transitions)`, pure.
//! - [`dispatch`]: grouping per receiver, the notification log's decisions, pure.
//! - [`silence`], [`config`] (receivers, inhibition, the rules file), [`labels`] (matchers).
//! - [`kill_switch`]: what a rule that names an agent's kill switch does to it.
//! - [`webhook`]: Alertmanager's payload, the signature, one try, the back-off.
//! - [`engine`]: the shell that runs all of it on the clock and keeps its state on disk;
//!   [`views`] are what the API shows of its rules and alerts.

pub mod batch;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod evaluator;
pub mod kill_switch;
pub mod labels;
pub mod rule;
pub mod shared;
pub mod silence;
pub mod telemetry;
pub mod template;
pub mod views;
pub mod webhook;

pub use config::AlertingSettings;
pub use engine::{
    AlertEngine, EngineError, RuleChangeError, SaveError, Sharing, SilenceChangeError,
};
