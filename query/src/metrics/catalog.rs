//! What can be asked: every metric of docs/design.md#metric-definitions, every field metrics are
//! grouped and filtered by, and which combinations mean something.
//!
//! Each metric counts one kind of thing, its *subject*: runs, model calls or tool calls. A
//! grouping field belongs to a subject too:
//!
//! | field | is a property of | a run metric grouped by it means | a model-call metric | a tool-call metric |
//! |---|---|---|---|---|
//! | agent, agent_version, task_type, environment, release, outcome, session_id, user_hash | the run | the runs with that value | the calls of runs with that value | the calls of runs with that value |
//! | classification | the run (a list) | the runs carrying that tag (a run with two tags is in both groups) | likewise | likewise |
//! | model, provider, prompt_id, prompt_version | a model call | counts, rates and latencies: the runs that made at least one such call (a run calling two models is in both groups, so groups can add up to more than the total); sums over model calls (cost, tokens, unpriced calls): only the calls with that value, so `cost_usd` by model is what each model cost and the groups add up to the total | the calls themselves | refused: a tool call is not made by a model call |
//! | tool | a tool call | counts, rates and latencies: the runs that called the tool at least once; sums over tool calls (`tool_calls_per_run`'s calls, `repeated_tool_calls`): only that tool's calls | refused: a model call is not a tool call | the calls themselves |
//!
//! Grouping by a model-call field and `tool` together is refused for every metric: a run's
//! model calls and tool calls are not paired, so the groups would be a cross product.
//! A run without any model call (or tool call) falls in the group `""` of a model-call field
//! (or of `tool`), so that the groups still cover every run.
//!
//! Filters read the same way: a run metric filtered on a call field counts the runs that made at
//! least one call passing every such filter, and its sums count only those calls. A filter on
//! `classification` keeps the runs carrying any of the tags; grouped by `classification` too, only
//! the filter's tags make groups. A call metric grouped or filtered on a run field takes the
//! run's newest version among the runs that started from the day before the range on (runs
//! last minutes, not days).
//!
//! ## Definitions
//!
//! Every row is counted once, in its newest version (docs/design.md#keys-and-versions). A run
//! belongs to the range and to a time bucket by its start; a call by its own start. "Model calls"
//! are spans of kind `model`, "tool calls" spans of kind `tool`; a call failed when its status is
//! `error`.
//!
//! | metric | definition |
//! |---|---|
//! | `runs` | runs |
//! | `completed_runs` | runs with outcome `success` |
//! | `failed_runs` | runs with outcome `failure` or `timeout` (`partial` and `cancelled` are neither) |
//! | `completion_rate` | `completed_runs ÷ runs` (every stored run has finished) |
//! | `silent_partial_failures` | runs with outcome `success` that contain a failed model or tool call |
//! | `silent_partial_failure_rate` | `silent_partial_failures ÷ completed_runs` |
//! | `run_latency_p50/p90/p99_ms` | exact percentile (docs/design.md#percentiles, [`super::percentile`]) of end − start, in ms |
//! | `cost_usd` | sum of the runs' model calls' `cost_nanos` ÷ 10⁹ (priced at ingest, per call, at the price in force at the call's start; a cost the SDK reported wins); unpriced calls add nothing and are counted apart: an answer with a cost always carries `unpriced_model_calls`, and a group whose model calls are all unpriced has a null cost, never 0 |
//! | `cost_per_run_usd` | `cost_usd ÷ runs` |
//! | `unpriced_model_calls` | the runs' model calls without a cost |
//! | `input_tokens`, `output_tokens`, `cached_input_tokens`, `reasoning_tokens` | sums over the runs' model calls |
//! | `tool_calls_per_run` | the runs' tool calls ÷ runs |
//! | `repeated_tool_calls` | the runs' tool calls with the same tool and a non-empty argument hash equal to the tool call just before them in the run (by start time, then span id): the loop signal |
//! | `feedback_positive_rate` | share of `true` among the runs' boolean scores |
//! | `sessions`, `users` | distinct non-empty session ids, user hashes of the runs |
//! | `model_calls`, `tool_calls` | calls |
//! | `model_error_rate`, `tool_error_rate` | failed calls ÷ calls |
//! | `tool_errors` | failed tool calls |
//! | `model_latency_*`, `tool_latency_*` | exact percentile of the calls' end − start, in ms |
//!
//! A ratio over nothing (no runs, no calls) is null, not zero; so is a percentile. Counts and
//! sums are exact integers, computed in the store; ratios, milliseconds and USD are computed
//! from them once, the same way for both stores ([`super::answer`]), so both answer to the last
//! digit. Time buckets (`step`) are aligned to the Unix epoch; a bucket is named by its start.

use std::fmt;

/// What a metric counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Run,
    ModelCall,
    ToolCall,
}

impl Subject {
    pub fn describe(self) -> &'static str {
        match self {
            Subject::Run => "runs",
            Subject::ModelCall => "model calls",
            Subject::ToolCall => "tool calls",
        }
    }
}

macro_rules! names {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($variant,)+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.name() == text)
            }

            /// Every name, comma-separated, for error messages.
            pub fn names() -> String {
                $name::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

names! {
    /// A metric of `POST /api/v1/metrics/query` (definitions in docs/design.md#metric-definitions).
    pub enum Metric {
        Runs => "runs",
        CompletedRuns => "completed_runs",
        FailedRuns => "failed_runs",
        CompletionRate => "completion_rate",
        SilentPartialFailures => "silent_partial_failures",
        SilentPartialFailureRate => "silent_partial_failure_rate",
        RunLatencyP50Ms => "run_latency_p50_ms",
        RunLatencyP90Ms => "run_latency_p90_ms",
        RunLatencyP99Ms => "run_latency_p99_ms",
        CostUsd => "cost_usd",
        CostPerRunUsd => "cost_per_run_usd",
        UnpricedModelCalls => "unpriced_model_calls",
        InputTokens => "input_tokens",
        OutputTokens => "output_tokens",
        CachedInputTokens => "cached_input_tokens",
        ReasoningTokens => "reasoning_tokens",
        ToolCallsPerRun => "tool_calls_per_run",
        RepeatedToolCalls => "repeated_tool_calls",
        FeedbackPositiveRate => "feedback_positive_rate",
        Sessions => "sessions",
        Users => "users",
        ModelCalls => "model_calls",
        ModelErrorRate => "model_error_rate",
        ModelLatencyP50Ms => "model_latency_p50_ms",
        ModelLatencyP90Ms => "model_latency_p90_ms",
        ModelLatencyP99Ms => "model_latency_p99_ms",
        ToolCalls => "tool_calls",
        ToolErrors => "tool_errors",
        ToolErrorRate => "tool_error_rate",
        ToolLatencyP50Ms => "tool_latency_p50_ms",
        ToolLatencyP90Ms => "tool_latency_p90_ms",
        ToolLatencyP99Ms => "tool_latency_p99_ms",
    }
}

impl Metric {
    /// What the metric counts.
    pub fn subject(self) -> Subject {
        use Metric::*;
        match self {
            ModelCalls | ModelErrorRate | ModelLatencyP50Ms | ModelLatencyP90Ms
            | ModelLatencyP99Ms => Subject::ModelCall,
            ToolCalls | ToolErrors | ToolErrorRate | ToolLatencyP50Ms | ToolLatencyP90Ms
            | ToolLatencyP99Ms => Subject::ToolCall,
            _ => Subject::Run,
        }
    }

    /// The percentile (in percent) of a latency metric.
    pub fn percentile(self) -> Option<u32> {
        use Metric::*;
        match self {
            RunLatencyP50Ms | ModelLatencyP50Ms | ToolLatencyP50Ms => Some(50),
            RunLatencyP90Ms | ModelLatencyP90Ms | ToolLatencyP90Ms => Some(90),
            RunLatencyP99Ms | ModelLatencyP99Ms | ToolLatencyP99Ms => Some(99),
            _ => None,
        }
    }
}

names! {
    /// A field metrics are grouped and filtered by.
    pub enum Field {
        Agent => "agent",
        AgentVersion => "agent_version",
        TaskType => "task_type",
        Environment => "environment",
        Release => "release",
        Outcome => "outcome",
        SessionId => "session_id",
        UserHash => "user_hash",
        Model => "model",
        ModelVersion => "model_version",
        Provider => "provider",
        PromptId => "prompt_id",
        PromptVersion => "prompt_version",
        Tool => "tool",
        ToolVersion => "tool_version",
        Classification => "classification",
    }
}

impl Field {
    /// The subject the field is a property of.
    pub fn subject(self) -> Subject {
        match self {
            Field::Model
            | Field::ModelVersion
            | Field::Provider
            | Field::PromptId
            | Field::PromptVersion => Subject::ModelCall,
            Field::Tool | Field::ToolVersion => Subject::ToolCall,
            _ => Subject::Run,
        }
    }

    /// Why `metric` cannot be grouped by this field, if it cannot.
    pub fn refuses(self, metric: Metric) -> Option<String> {
        match (metric.subject(), self.subject()) {
            (Subject::ToolCall, Subject::ModelCall) => Some(format!(
                "{metric} cannot be grouped by {self}: a tool call is not made by a model call"
            )),
            (Subject::ModelCall, Subject::ToolCall) => Some(format!(
                "{metric} cannot be grouped by {self}: a model call is not a tool call"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_of_api_md_parses_and_round_trips() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.name()), Some(*metric));
        }
        for field in Field::ALL {
            assert_eq!(Field::parse(field.name()), Some(*field));
        }
        assert_eq!(Metric::ALL.len(), 32);
        assert_eq!(Field::ALL.len(), 16);
        assert_eq!(Metric::parse("p99"), None);
    }

    #[test]
    fn groupings_across_call_kinds_are_refused_with_a_reason() {
        let why = Field::Model.refuses(Metric::ToolErrorRate).unwrap();
        assert!(
            why.contains("tool_error_rate cannot be grouped by model"),
            "{why}"
        );
        assert!(Field::Tool.refuses(Metric::ModelLatencyP99Ms).is_some());
        assert!(Field::Model.refuses(Metric::CostUsd).is_none());
        assert!(Field::Tool.refuses(Metric::Runs).is_none());
        assert!(Field::Agent.refuses(Metric::ToolCalls).is_none());
        assert_eq!(Metric::ToolLatencyP90Ms.percentile(), Some(90));
        assert_eq!(Metric::CostUsd.subject(), Subject::Run);
    }
}
