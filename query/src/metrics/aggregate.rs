//! The integer aggregates the metric statements answer, one enum per statement kind: the
//! compiler writes each one's SQL with an exhaustive `match`, the answer reads each one by the
//! same value, and the column a store answers it in is its [`Aggregate::column`]. A metric
//! that needs an aggregate says so in [`Aggregate::needed_by`]; aggregates nobody asked for are
//! answered as a constant 0.

use super::catalog::Metric;

/// An exact percentile of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Percentile {
    P50,
    P90,
    P99,
}

/// What both kinds of aggregate offer.
pub(crate) trait Aggregate: Copy + Eq + 'static {
    /// Every aggregate, in the order the statement answers them.
    const ALL: &'static [Self];
    /// The column the statement answers it in.
    fn column(self) -> &'static str;
    /// The metrics that need it; empty: every statement of its kind computes it.
    fn needed_by(self) -> &'static [Metric];
    /// Its position in [`Self::ALL`] and in a statement's answer.
    fn index(self) -> usize;
}

/// An enum of aggregates, its [`Aggregate::ALL`] in declaration order and its columns, from one
/// list, so that an aggregate cannot be left out of `ALL` or answered in another column.
macro_rules! aggregates {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $column:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant,)+
        }

        impl $name {
            const VARIANTS: &'static [$name] = &[$($name::$variant,)+];

            fn column_name(self) -> &'static str {
                match self {
                    $($name::$variant => $column,)+
                }
            }
        }
    };
}

aggregates! {
    /// An aggregate of the run statement.
    RunAggregate {
        Runs => "runs",
        Completed => "completed",
        Failed => "failed",
        Silent => "silent",
        LatencyP50 => "latency_p50",
        LatencyP90 => "latency_p90",
        LatencyP99 => "latency_p99",
        Sessions => "sessions",
        Users => "users",
        CostNanos => "cost_nanos",
        PricedCalls => "priced_calls",
        UnpricedCalls => "unpriced_calls",
        InputTokens => "input_tokens",
        OutputTokens => "output_tokens",
        CachedInputTokens => "cached_input_tokens",
        ReasoningTokens => "reasoning_tokens",
        ToolCalls => "tool_calls",
        RepeatedToolCalls => "repeated_tool_calls",
        FeedbackPositive => "feedback_positive",
        FeedbackTotal => "feedback_total",
    }
}

aggregates! {
    /// An aggregate of a call statement (model calls or tool calls).
    CallAggregate {
        Calls => "calls",
        Errors => "errors",
        LatencyP50 => "latency_p50",
        LatencyP90 => "latency_p90",
        LatencyP99 => "latency_p99",
    }
}

impl Aggregate for RunAggregate {
    const ALL: &'static [RunAggregate] = RunAggregate::VARIANTS;

    fn column(self) -> &'static str {
        self.column_name()
    }

    fn needed_by(self) -> &'static [Metric] {
        use Metric::*;
        match self {
            RunAggregate::Runs => &[],
            RunAggregate::Completed => &[CompletedRuns, CompletionRate, SilentPartialFailureRate],
            RunAggregate::Failed => &[FailedRuns],
            RunAggregate::Silent => &[SilentPartialFailures, SilentPartialFailureRate],
            RunAggregate::LatencyP50 => &[RunLatencyP50Ms],
            RunAggregate::LatencyP90 => &[RunLatencyP90Ms],
            RunAggregate::LatencyP99 => &[RunLatencyP99Ms],
            RunAggregate::Sessions => &[Sessions],
            RunAggregate::Users => &[Users],
            RunAggregate::CostNanos | RunAggregate::PricedCalls => &[CostUsd, CostPerRunUsd],
            RunAggregate::UnpricedCalls => &[UnpricedModelCalls],
            RunAggregate::InputTokens => &[InputTokens],
            RunAggregate::OutputTokens => &[OutputTokens],
            RunAggregate::CachedInputTokens => &[CachedInputTokens],
            RunAggregate::ReasoningTokens => &[ReasoningTokens],
            RunAggregate::ToolCalls => &[ToolCallsPerRun],
            RunAggregate::RepeatedToolCalls => &[RepeatedToolCalls],
            RunAggregate::FeedbackPositive | RunAggregate::FeedbackTotal => &[FeedbackPositiveRate],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl Aggregate for CallAggregate {
    const ALL: &'static [CallAggregate] = CallAggregate::VARIANTS;

    fn column(self) -> &'static str {
        self.column_name()
    }

    fn needed_by(self) -> &'static [Metric] {
        use Metric::*;
        match self {
            CallAggregate::Calls => &[],
            CallAggregate::Errors => &[ModelErrorRate, ToolErrors, ToolErrorRate],
            CallAggregate::LatencyP50 => &[ModelLatencyP50Ms, ToolLatencyP50Ms],
            CallAggregate::LatencyP90 => &[ModelLatencyP90Ms, ToolLatencyP90Ms],
            CallAggregate::LatencyP99 => &[ModelLatencyP99Ms, ToolLatencyP99Ms],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The columns a statement of that kind answers, in order.
pub(crate) fn columns<A: Aggregate>() -> Vec<&'static str> {
    A::ALL.iter().map(|a| a.column()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_order<A: Aggregate + std::fmt::Debug>() {
        for (i, aggregate) in A::ALL.iter().enumerate() {
            assert_eq!(
                aggregate.index(),
                i,
                "{aggregate:?} is out of its place in ALL"
            );
        }
        let mut columns = columns::<A>();
        columns.sort_unstable();
        columns.dedup();
        assert_eq!(columns.len(), A::ALL.len(), "two aggregates share a column");
    }

    #[test]
    fn every_aggregate_is_listed_once_in_its_own_position() {
        in_order::<RunAggregate>();
        in_order::<CallAggregate>();
    }
}
