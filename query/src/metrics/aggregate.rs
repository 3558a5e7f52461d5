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

impl Percentile {
    /// Every percentile, in the order one aggregate answers them all: DataFusion's
    /// `exact_percentiles` and ClickHouse's `quantilesExact` at [`Self::CLICKHOUSE_LEVELS`].
    pub(crate) const ALL: [Percentile; 3] = [Percentile::P50, Percentile::P90, Percentile::P99];

    /// The levels of [`Self::ALL`], as ClickHouse's `quantilesExact` takes them.
    pub(crate) const CLICKHOUSE_LEVELS: &str = "0.5, 0.9, 0.99";

    pub(crate) const fn percent(self) -> u32 {
        match self {
            Percentile::P50 => 50,
            Percentile::P90 => 90,
            Percentile::P99 => 99,
        }
    }

    /// Its element in the answer of all of them: its 1-based position in [`Self::ALL`], as SQL.
    pub(crate) const fn element(self) -> &'static str {
        match self {
            Percentile::P50 => "1",
            Percentile::P90 => "2",
            Percentile::P99 => "3",
        }
    }
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

/// An enum of aggregates and its [`Aggregate`] impl from one list (variant, column, the metrics
/// that need it), so that an aggregate cannot be left out of `ALL` or answered in another column.
macro_rules! aggregates {
    ($(#[$doc:meta])* $name:ident {
        $($variant:ident => $column:literal, needed by [$($metric:ident),*],)+
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($variant,)+
        }

        impl Aggregate for $name {
            const ALL: &'static [$name] = &[$($name::$variant,)+];

            fn column(self) -> &'static str {
                match self {
                    $($name::$variant => $column,)+
                }
            }

            fn needed_by(self) -> &'static [Metric] {
                match self {
                    $($name::$variant => &[$(Metric::$metric),*],)+
                }
            }

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

aggregates! {
    /// An aggregate of the run statement. Whether a group has runs at all is whether the statement
    /// answers a row for it, so `runs` is counted only where a metric reads it.
    RunAggregate {
        Runs => "runs",
            needed by [Runs, CompletionRate, RunLatencyP50Ms, RunLatencyP90Ms, RunLatencyP99Ms,
                CostPerRunUsd, ToolCallsPerRun],
        Completed => "completed",
            needed by [CompletedRuns, CompletionRate, SilentPartialFailureRate],
        Failed => "failed", needed by [FailedRuns],
        Silent => "silent", needed by [SilentPartialFailures, SilentPartialFailureRate],
        LatencyP50 => "latency_p50", needed by [RunLatencyP50Ms],
        LatencyP90 => "latency_p90", needed by [RunLatencyP90Ms],
        LatencyP99 => "latency_p99", needed by [RunLatencyP99Ms],
        Sessions => "sessions", needed by [Sessions],
        Users => "users", needed by [Users],
        CostNanos => "cost_nanos", needed by [CostUsd, CostPerRunUsd],
        PricedCalls => "priced_calls", needed by [CostUsd, CostPerRunUsd],
        UnpricedCalls => "unpriced_calls", needed by [UnpricedModelCalls],
        InputTokens => "input_tokens", needed by [InputTokens],
        OutputTokens => "output_tokens", needed by [OutputTokens],
        CachedInputTokens => "cached_input_tokens", needed by [CachedInputTokens],
        ReasoningTokens => "reasoning_tokens", needed by [ReasoningTokens],
        ToolCalls => "tool_calls", needed by [ToolCallsPerRun],
        RepeatedToolCalls => "repeated_tool_calls", needed by [RepeatedToolCalls],
        FeedbackPositive => "feedback_positive", needed by [FeedbackPositiveRate],
        FeedbackTotal => "feedback_total", needed by [FeedbackPositiveRate],
    }
}

aggregates! {
    /// An aggregate of a call statement (model calls or tool calls).
    CallAggregate {
        Calls => "calls", needed by [],
        Errors => "errors", needed by [ModelErrorRate, ToolErrors, ToolErrorRate],
        LatencyP50 => "latency_p50", needed by [ModelLatencyP50Ms, ToolLatencyP50Ms],
        LatencyP90 => "latency_p90", needed by [ModelLatencyP90Ms, ToolLatencyP90Ms],
        LatencyP99 => "latency_p99", needed by [ModelLatencyP99Ms, ToolLatencyP99Ms],
    }
}

/// The columns a statement of that kind answers, in order.
pub(crate) fn columns<A: Aggregate>() -> Vec<&'static str> {
    A::ALL.iter().map(|a| a.column()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL of one percentile reads its own element of the answer of all of them, on both
    /// stores: the order of [`Percentile::ALL`], its elements and ClickHouse's levels agree.
    #[test]
    fn each_percentile_reads_its_own_element() {
        let levels: Vec<&str> = Percentile::CLICKHOUSE_LEVELS.split(", ").collect();
        assert_eq!(levels.len(), Percentile::ALL.len());
        for (i, p) in Percentile::ALL.into_iter().enumerate() {
            assert_eq!(p.element(), (i + 1).to_string());
            assert_eq!(levels[i], (f64::from(p.percent()) / 100.0).to_string());
        }
    }

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
