//! Builds runs out of OTLP spans, which arrive over many requests and in any order.
//!
//! The rules (also in the collector README):
//! * A span without a parent is the run's root. When it arrives, the run is written from it,
//!   with the run-level fields (session, user, task type, agent, …) of the root first and, for
//!   fields the root left empty, those carried by the trace's children that came before it.
//!   (Children end before their root, so SDKs export them first; within one request, children
//!   are taken before roots whatever their order.)
//! * Once the root came, the trace is done here: a child arriving after its root is stored as a
//!   span, but its run-level fields do not change the run.
//! * A trace whose root has not come `orphan_after` after its last span gets a *synthesized* run
//!   (`synthesized = true`): it spans the children seen, takes their run-level fields, and its
//!   outcome is the one a span declared, else `failure` if any span failed, else `success`.
//!   Synthesized runs are written with a version below any real run's
//!   ([`SYNTHESIZED_VERSION_OFFSET`]), so a root arriving later — or already stored — always wins.
//! * At most `max_traces` traces wait for their root; past that the oldest is synthesized early.
//!   Waiting traces are held in memory only: after a restart, a trace still waiting for its root
//!   keeps its spans (stored and readable) but gets no synthesized run.

use std::collections::{HashMap, VecDeque};

use vigil_schemas::{Outcome, RunRow, SpanRow, SpanStatus};

use crate::draft::{DraftSpan, RunContext};

/// Synthesized runs are versioned `now − this` (a negative number), so that in every read a real
/// run (versioned by its ingest time, positive) supersedes them, while later synthesized versions
/// still supersede earlier ones.
pub const SYNTHESIZED_VERSION_OFFSET: i64 = 1 << 62;

#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    pub orphan_after_ns: i64,
    pub max_traces: usize,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            orphan_after_ns: 5 * 60 * 1_000_000_000,
            max_traces: 100_000,
        }
    }
}

/// A trace's identity without allocating: the project's hash and the 128-bit trace id.
type TraceKey = (u64, u128);

fn trace_key(project_id: &str, trace_id: &str) -> TraceKey {
    use std::hash::BuildHasher;
    let project = foldhash::fast::FixedState::with_seed(0x5EED).hash_one(project_id);
    // Validated ids are 32 hex digits; anything else still gets a stable key.
    let trace = u128::from_str_radix(trace_id, 16).unwrap_or_else(|_| {
        u128::from(foldhash::fast::FixedState::with_seed(0x7ACE).hash_one(trace_id))
    });
    (project, trace)
}

/// A trace whose root has not arrived yet.
#[derive(Debug)]
struct WaitingTrace {
    project_id: String,
    trace_id: String,
    /// Run-level fields gathered from children.
    context: RunContext,
    first_start_ns: i64,
    last_end_ns: i64,
    first_error: Option<String>,
    /// Wall-clock time of the last span seen, for expiry.
    touched_ns: i64,
}

/// The assembler's state; owned by one lock in the pipeline.
#[derive(Debug, Default)]
pub struct RunAssembler {
    config: AssemblerConfig,
    waiting: HashMap<TraceKey, WaitingTrace, foldhash::fast::RandomState>,
    /// (touched time, key) in arrival order; an entry is stale when the trace was touched later.
    by_touch: VecDeque<(i64, TraceKey)>,
}

impl RunAssembler {
    pub fn new(config: AssemblerConfig) -> RunAssembler {
        RunAssembler {
            config,
            ..Default::default()
        }
    }

    /// Traces waiting for their root span.
    pub fn waiting_traces(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a request's spans (users already hashed) and returns their rows plus the runs to
    /// write now.
    pub fn accept(&mut self, spans: Vec<DraftSpan>, now_ns: i64) -> (Vec<SpanRow>, Vec<RunRow>) {
        let mut runs = Vec::new();
        let mut rows = Vec::with_capacity(spans.len());
        // Children first: a root in the same request then finds what they carried, and no
        // child of an already-finished run is left waiting.
        let (children, roots): (Vec<DraftSpan>, Vec<DraftSpan>) =
            spans.into_iter().partition(|s| !s.row.is_root());
        for DraftSpan { row, run: context } in children.into_iter().chain(roots) {
            let key = trace_key(&row.project_id, &row.trace_id);
            if row.is_root() {
                let mut merged = context;
                if let Some(waiting) = self.waiting.remove(&key) {
                    merged.fill_from(&waiting.context);
                }
                runs.push(run_from_root(&row, &merged, now_ns));
            } else {
                self.wait(key, &row, &context, now_ns);
            }
            rows.push(row);
        }
        while self.waiting.len() > self.config.max_traces {
            match self.pop_oldest() {
                Some((_, trace)) => runs.push(synthesize(trace, now_ns)),
                None => break,
            }
        }
        (rows, runs)
    }

    /// Synthesizes runs for traces whose root is overdue, and forgets them.
    pub fn expire(&mut self, now_ns: i64) -> Vec<RunRow> {
        let due_before = now_ns - self.config.orphan_after_ns;
        let mut runs = Vec::new();
        while self.by_touch.front().is_some_and(|(t, _)| *t < due_before) {
            if let Some((key, trace)) = self.pop_oldest() {
                if trace.touched_ns >= due_before {
                    // Touched again since: not due yet; put it back in line.
                    self.by_touch.push_back((trace.touched_ns, key));
                    self.waiting.insert(key, trace);
                    continue;
                }
                runs.push(synthesize(trace, now_ns));
            }
        }
        runs
    }

    fn wait(&mut self, key: TraceKey, row: &SpanRow, context: &RunContext, now_ns: i64) {
        let error = (row.status == SpanStatus::Error).then(|| {
            if row.status_message.is_empty() {
                format!("span {:?} failed", row.name)
            } else {
                row.status_message.clone()
            }
        });
        match self.waiting.get_mut(&key) {
            Some(trace) => {
                trace.context.fill_from(context);
                trace.first_start_ns = trace.first_start_ns.min(row.start_time_ns);
                trace.last_end_ns = trace.last_end_ns.max(row.end_time_ns);
                if trace.first_error.is_none() {
                    trace.first_error = error;
                }
                trace.touched_ns = trace.touched_ns.max(now_ns);
            }
            None => {
                self.by_touch.push_back((now_ns, key));
                self.waiting.insert(
                    key,
                    WaitingTrace {
                        project_id: row.project_id.clone(),
                        trace_id: row.trace_id.clone(),
                        context: context.clone(),
                        first_start_ns: row.start_time_ns,
                        last_end_ns: row.end_time_ns,
                        first_error: error,
                        touched_ns: now_ns,
                    },
                );
            }
        }
    }

    /// Removes the trace at the head of the line, skipping entries of traces already gone.
    fn pop_oldest(&mut self) -> Option<(TraceKey, WaitingTrace)> {
        while let Some((_, key)) = self.by_touch.pop_front() {
            if let Some(trace) = self.waiting.remove(&key) {
                return Some((key, trace));
            }
        }
        None
    }
}

fn run_from_root(root: &SpanRow, context: &RunContext, now_ns: i64) -> RunRow {
    let failed = root.status == SpanStatus::Error;
    let outcome = context.outcome.unwrap_or(if failed {
        Outcome::Failure
    } else {
        Outcome::Success
    });
    let mut run = RunRow {
        project_id: root.project_id.clone(),
        trace_id: root.trace_id.clone(),
        start_time_ns: root.start_time_ns,
        end_time_ns: root.end_time_ns,
        outcome,
        error_message: if failed {
            root.status_message.clone()
        } else {
            String::new()
        },
        input: root.input.clone(),
        output: root.output.clone(),
        synthesized: false,
        ingested_at_ns: now_ns,
        ..Default::default()
    };
    apply_context(&mut run, context);
    run
}

fn synthesize(trace: WaitingTrace, now_ns: i64) -> RunRow {
    let outcome = trace
        .context
        .outcome
        .unwrap_or(if trace.first_error.is_some() {
            Outcome::Failure
        } else {
            Outcome::Success
        });
    let mut run = RunRow {
        project_id: trace.project_id,
        trace_id: trace.trace_id,
        start_time_ns: trace.first_start_ns,
        end_time_ns: trace.last_end_ns,
        outcome,
        error_message: match outcome {
            Outcome::Failure => trace.first_error.unwrap_or_default(),
            _ => String::new(),
        },
        synthesized: true,
        ingested_at_ns: now_ns - SYNTHESIZED_VERSION_OFFSET,
        ..Default::default()
    };
    apply_context(&mut run, &trace.context);
    run
}

/// Copies the run-level fields of a context into a run.
fn apply_context(run: &mut RunRow, c: &RunContext) {
    c.session_id.clone_into(&mut run.session_id);
    c.user_hash.clone_into(&mut run.user_hash);
    c.task_type.clone_into(&mut run.task_type);
    c.agent_name.clone_into(&mut run.agent_name);
    c.agent_version.clone_into(&mut run.agent_version);
    c.environment.clone_into(&mut run.environment);
    c.release.clone_into(&mut run.release);
    c.retention.clone_into(&mut run.retention);
    c.audit_ref.clone_into(&mut run.audit_ref);
    run.classification.clone_from(&c.classification);
    run.tags.clone_from(&c.tags);
    if c.shadow {
        run.mark_shadow();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn span(trace: &str, id: &str, parent: &str, start: i64, end: i64) -> DraftSpan {
        DraftSpan {
            row: SpanRow {
                project_id: "p".into(),
                trace_id: trace.into(),
                span_id: id.into(),
                parent_span_id: parent.into(),
                start_time_ns: start,
                end_time_ns: end,
                ..Default::default()
            },
            run: RunContext::default(),
        }
    }

    #[test]
    fn a_root_and_its_children_in_one_request_leave_nothing_waiting() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        let root = span("t1", "r", "", 10, 50);
        let mut child = span("t1", "c", "r", 20, 30);
        child.run.session_id = "from-child".into();
        let (rows, runs) = a.accept(vec![root, child], 1);
        assert_eq!(rows.len(), 2);
        assert_eq!(runs[0].session_id, "from-child");
        assert_eq!(a.waiting_traces(), 0);
    }

    #[test]
    fn a_shadow_mark_on_any_span_marks_the_run() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        let mut root = span("t1", "r", "", 10, 50);
        root.run.tags = vec!["beta".into()];
        let mut child = span("t1", "c", "r", 20, 30);
        child.run.shadow = true;
        let (_, runs) = a.accept(vec![root, child], 1);
        assert_eq!(runs[0].tags, ["beta", vigil_schemas::SHADOW_TAG]);
        let (_, runs) = a.accept(vec![span("t2", "r", "", 10, 50)], 2);
        assert!(!runs[0].is_shadow());
    }

    #[test]
    fn root_first_gives_the_run_at_once() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        let mut root = span("t1", "r", "", 10, 50);
        root.run.session_id = "s1".into();
        root.run.agent_name = "bot".into();
        let (rows, runs) = a.accept(vec![root, span("t1", "c", "r", 20, 30)], 100);
        assert_eq!(rows.len(), 2);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].session_id, "s1");
        assert_eq!((runs[0].start_time_ns, runs[0].end_time_ns), (10, 50));
        assert!(!runs[0].synthesized);
    }

    #[test]
    fn children_first_lend_their_fields_to_the_root() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        let mut child = span("t1", "c", "r", 20, 30);
        child.run.session_id = "from-child".into();
        child.run.user_hash = "u".into();
        let (_, runs) = a.accept(vec![child], 1);
        assert!(runs.is_empty());
        let mut root = span("t1", "r", "", 10, 50);
        root.run.user_hash = "root-user".into();
        let (_, runs) = a.accept(vec![root], 2);
        assert_eq!(runs[0].session_id, "from-child");
        assert_eq!(runs[0].user_hash, "root-user", "the root wins");
    }

    #[test]
    fn the_root_ends_the_wait_and_late_children_only_add_spans() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        a.accept(vec![span("t1", "c0", "r", 12, 14)], 1);
        assert_eq!(a.waiting_traces(), 1);
        let (_, runs) = a.accept(vec![span("t1", "r", "", 10, 50)], 2);
        assert_eq!(runs.len(), 1);
        assert_eq!(a.waiting_traces(), 0, "nothing is held once the root came");
        let mut late = span("t1", "c", "r", 20, 30);
        late.run.task_type = "triage".into();
        let (rows, runs) = a.accept(vec![late], 3);
        assert_eq!(rows.len(), 1, "the late span is stored");
        assert!(runs.is_empty(), "the run is not rewritten");
    }

    #[test]
    fn a_trace_touched_again_is_not_due_yet() {
        let config = AssemblerConfig {
            orphan_after_ns: 10 * SEC,
            max_traces: 10,
        };
        let mut a = RunAssembler::new(config);
        a.accept(vec![span("t1", "c1", "r", 1, 2)], 0);
        a.accept(vec![span("t1", "c2", "r", 1, 2)], 8 * SEC);
        assert!(a.expire(11 * SEC).is_empty());
        assert_eq!(a.expire(19 * SEC).len(), 1);
    }

    #[test]
    fn rootless_traces_are_synthesized_after_the_timeout() {
        let config = AssemblerConfig {
            orphan_after_ns: 10 * SEC,
            max_traces: 10,
        };
        let mut a = RunAssembler::new(config);
        let mut failing = span("t1", "c1", "gone", 20, 30);
        failing.row.status = SpanStatus::Error;
        failing.row.status_message = "timeout calling tool".into();
        a.accept(vec![failing, span("t1", "c2", "gone", 5, 40)], 0);
        assert!(a.expire(5 * SEC).is_empty());
        let runs = a.expire(11 * SEC);
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert!(run.synthesized);
        assert_eq!((run.start_time_ns, run.end_time_ns), (5, 40));
        assert_eq!(run.outcome, Outcome::Failure);
        assert_eq!(run.error_message, "timeout calling tool");
        assert!(a.expire(12 * SEC).is_empty(), "synthesized once");
        assert_eq!(a.waiting_traces(), 0);
        // The real root, arriving later, outranks it in every read: a higher version.
        let (_, runs) = a.accept(vec![span("t1", "gone", "", 1, 50)], 13 * SEC);
        assert!(!runs[0].synthesized);
        assert!(runs[0].ingested_at_ns > run.ingested_at_ns);
        // And so does a real run stored long before the synthesized one.
        assert!(1 > run.ingested_at_ns);
    }

    #[test]
    fn capacity_evicts_the_oldest_and_synthesizes_it() {
        let config = AssemblerConfig {
            max_traces: 2,
            ..Default::default()
        };
        let mut a = RunAssembler::new(config);
        a.accept(vec![span("t1", "c", "x", 1, 2)], 1);
        a.accept(vec![span("t2", "c", "x", 1, 2)], 2);
        let (_, runs) = a.accept(vec![span("t3", "c", "x", 1, 2)], 3);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].trace_id, "t1");
        assert_eq!(a.waiting_traces(), 2);
    }

    proptest! {
        /// In whatever order the children arrive before their root, the run is the same.
        #[test]
        fn arrival_order_does_not_change_the_run(children in Just((1..6usize).collect::<Vec<_>>()).prop_shuffle()) {
            let order: Vec<usize> = children.into_iter().chain([0]).collect();
            let mut spans: Vec<DraftSpan> = (0..6).map(|i| {
                let parent = if i == 0 { String::new() } else { format!("s{}", (i - 1) / 2) };
                let mut s = span("t", &format!("s{i}"), &parent, 10 + i as i64, 100 - i as i64);
                match i {
                    2 => s.run.session_id = "sess".into(),
                    3 => s.run.task_type = "qa".into(),
                    4 => s.run.agent_name = "child-agent".into(),
                    _ => {}
                }
                s
            }).collect();
            spans[0].run.agent_name = "root-agent".into();
            let mut a = RunAssembler::new(AssemblerConfig::default());
            let mut last = None;
            for (t, &i) in order.iter().enumerate() {
                let (_, runs) = a.accept(vec![spans[i].clone()], t as i64);
                if let Some(r) = runs.into_iter().last() { last = Some(r); }
            }
            let run = last.expect("the root produced a run");
            prop_assert_eq!(run.session_id.as_str(), "sess");
            prop_assert_eq!(run.task_type.as_str(), "qa");
            prop_assert_eq!(run.agent_name.as_str(), "root-agent");
            prop_assert_eq!((run.start_time_ns, run.end_time_ns), (10, 100));
        }
    }
}
