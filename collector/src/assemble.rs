//! Builds runs out of OTLP spans, which arrive over many requests and in any order.
//!
//! The rules (also in the collector README):
//! * A span without a parent is the run's root. When it arrives, the run is written from it,
//!   with the run-level fields (session, user, task type, agent, …) of the root first and, for
//!   fields the root left empty, those carried by the trace's children seen so far.
//! * A child that arrives after its root and carries a run-level field the run still lacks makes
//!   the collector write the run again, completed; the newer version replaces the older in every
//!   read (rows are keyed, the newest wins). Children never override what the root said.
//! * A trace whose root has not come `orphan_after` after its last span gets a *synthesized* run
//!   (`synthesized = true`): it spans its children, takes their run-level fields, and its outcome
//!   is the one a span declared, else `failure` if any span failed, else `success`. If the root
//!   comes later after all, the real run replaces the synthesized one.
//! * Trace state is kept `forget_after` past the last span, and for at most `max_traces` traces
//!   (the oldest go first, synthesized if still rootless). The state is in memory only: after a
//!   restart, a trace still waiting for its root keeps its spans (stored and readable) but gets no
//!   synthesized run.

use std::collections::{BTreeMap, HashMap};

use vigil_schemas::{Outcome, RunRow, SpanRow, SpanStatus};

use crate::draft::{DraftSpan, RunContext};

#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    pub orphan_after_ns: i64,
    pub forget_after_ns: i64,
    pub max_traces: usize,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            orphan_after_ns: 5 * 60 * 1_000_000_000,
            forget_after_ns: 60 * 60 * 1_000_000_000,
            max_traces: 1_000_000,
        }
    }
}

#[derive(Debug)]
struct TraceState {
    /// The run as last written, once the root came (or a synthesized one was written).
    run: Option<RunRow>,
    root_seen: bool,
    /// Run-level fields gathered from children.
    context: RunContext,
    first_start_ns: i64,
    last_end_ns: i64,
    any_error: bool,
    first_error: String,
    /// Wall-clock time of the last span seen, for expiry.
    touched_ns: i64,
}

/// The assembler's state; owned by one lock in the pipeline.
#[derive(Debug, Default)]
pub struct RunAssembler {
    config: AssemblerConfig,
    traces: HashMap<(String, String), TraceState>,
    /// touched time → keys, for expiry in time order.
    by_touch: BTreeMap<(i64, String, String), ()>,
}

impl RunAssembler {
    pub fn new(config: AssemblerConfig) -> RunAssembler {
        RunAssembler {
            config,
            ..Default::default()
        }
    }

    pub fn tracked_traces(&self) -> usize {
        self.traces.len()
    }

    /// Takes a request's spans (users already hashed) and returns their rows plus the runs to
    /// write now.
    pub fn accept(&mut self, spans: Vec<DraftSpan>, now_ns: i64) -> (Vec<SpanRow>, Vec<RunRow>) {
        let mut runs = Vec::new();
        let mut rows = Vec::with_capacity(spans.len());
        for DraftSpan { row, run: context } in spans {
            let key = (row.project_id.clone(), row.trace_id.clone());
            let state = self.touch(&key, now_ns, &row);
            if row.is_root() {
                let mut merged = context;
                merged.fill_from(&state.context);
                let run = run_from_root(&row, &merged, now_ns);
                state.root_seen = true;
                state.context = merged;
                state.run = Some(run.clone());
                runs.push(run);
            } else {
                state.context.fill_from(&context);
                if let Some(existing) = state.run.as_mut()
                    && state.root_seen
                {
                    let mut completed = existing.clone();
                    apply_context(&mut completed, &state.context, false);
                    if completed != *existing {
                        completed.ingested_at_ns = now_ns;
                        *existing = completed.clone();
                        runs.push(completed);
                    }
                }
            }
            rows.push(row);
        }
        runs.extend(self.evict_over_capacity(now_ns));
        (rows, runs)
    }

    /// Synthesizes runs for traces whose root is overdue and forgets old traces.
    pub fn expire(&mut self, now_ns: i64) -> Vec<RunRow> {
        let mut runs = Vec::new();
        let orphan_before = now_ns - self.config.orphan_after_ns;
        let forget_before = now_ns - self.config.forget_after_ns;
        let due: Vec<(i64, String, String)> = self
            .by_touch
            .range(..(orphan_before, String::new(), String::new()))
            .map(|(k, _)| k.clone())
            .collect();
        for (touched, project, trace) in due {
            let key = (project, trace);
            let Some(state) = self.traces.get_mut(&key) else {
                continue;
            };
            if !state.root_seen && state.run.is_none() {
                let run = synthesize(&key, state, now_ns);
                state.run = Some(run.clone());
                runs.push(run);
            }
            if touched < forget_before {
                self.traces.remove(&key);
                self.by_touch.remove(&(touched, key.0, key.1));
            }
        }
        runs
    }

    fn touch(&mut self, key: &(String, String), now_ns: i64, row: &SpanRow) -> &mut TraceState {
        let state = self
            .traces
            .entry(key.clone())
            .or_insert_with(|| TraceState {
                run: None,
                root_seen: false,
                context: RunContext::default(),
                first_start_ns: row.start_time_ns,
                last_end_ns: row.end_time_ns,
                any_error: false,
                first_error: String::new(),
                touched_ns: now_ns,
            });
        self.by_touch
            .remove(&(state.touched_ns, key.0.clone(), key.1.clone()));
        state.touched_ns = now_ns;
        self.by_touch
            .insert((now_ns, key.0.clone(), key.1.clone()), ());
        state.first_start_ns = state.first_start_ns.min(row.start_time_ns);
        state.last_end_ns = state.last_end_ns.max(row.end_time_ns);
        if row.status == SpanStatus::Error {
            if !state.any_error {
                state.first_error = if row.status_message.is_empty() {
                    format!("span {:?} failed", row.name)
                } else {
                    row.status_message.clone()
                };
            }
            state.any_error = true;
        }
        state
    }

    fn evict_over_capacity(&mut self, now_ns: i64) -> Vec<RunRow> {
        let mut runs = Vec::new();
        while self.traces.len() > self.config.max_traces {
            let Some(((touched, project, trace), ())) = self.by_touch.pop_first() else {
                break;
            };
            let key = (project, trace);
            if let Some(state) = self.traces.remove(&key)
                && !state.root_seen
                && state.run.is_none()
            {
                runs.push(synthesize(&key, &state, now_ns));
            }
            let _ = touched;
        }
        runs
    }
}

fn run_from_root(root: &SpanRow, context: &RunContext, now_ns: i64) -> RunRow {
    let outcome = context
        .outcome
        .unwrap_or(if root.status == SpanStatus::Error {
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
        error_message: if root.status == SpanStatus::Error {
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
    apply_context(&mut run, context, true);
    run
}

fn synthesize(key: &(String, String), state: &TraceState, now_ns: i64) -> RunRow {
    let outcome = state.context.outcome.unwrap_or(if state.any_error {
        Outcome::Failure
    } else {
        Outcome::Success
    });
    let mut run = RunRow {
        project_id: key.0.clone(),
        trace_id: key.1.clone(),
        start_time_ns: state.first_start_ns,
        end_time_ns: state.last_end_ns,
        outcome,
        error_message: if outcome == Outcome::Failure {
            state.first_error.clone()
        } else {
            String::new()
        },
        synthesized: true,
        ingested_at_ns: now_ns,
        ..Default::default()
    };
    apply_context(&mut run, &state.context, true);
    run
}

/// Copies run-level fields into a run: all of them (`overwrite`), or only into empty fields.
fn apply_context(run: &mut RunRow, c: &RunContext, overwrite: bool) {
    fn set(target: &mut String, source: &str, overwrite: bool) {
        if (overwrite || target.is_empty()) && !source.is_empty() {
            source.clone_into(target);
        }
    }
    set(&mut run.session_id, &c.session_id, overwrite);
    set(&mut run.user_hash, &c.user_hash, overwrite);
    set(&mut run.task_type, &c.task_type, overwrite);
    set(&mut run.agent_name, &c.agent_name, overwrite);
    set(&mut run.agent_version, &c.agent_version, overwrite);
    set(&mut run.environment, &c.environment, overwrite);
    set(&mut run.release, &c.release, overwrite);
    set(&mut run.retention, &c.retention, overwrite);
    set(&mut run.audit_ref, &c.audit_ref, overwrite);
    if (overwrite || run.classification.is_empty()) && !c.classification.is_empty() {
        run.classification.clone_from(&c.classification);
    }
    if (overwrite || run.tags.is_empty()) && !c.tags.is_empty() {
        run.tags.clone_from(&c.tags);
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
    fn a_late_child_completes_the_run_once() {
        let mut a = RunAssembler::new(AssemblerConfig::default());
        a.accept(vec![span("t1", "r", "", 10, 50)], 1);
        let mut late = span("t1", "c", "r", 20, 30);
        late.run.task_type = "triage".into();
        let (_, runs) = a.accept(vec![late.clone()], 2);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].task_type, "triage");
        assert_eq!(runs[0].ingested_at_ns, 2);
        let (_, again) = a.accept(vec![late], 3);
        assert!(again.is_empty(), "nothing new, nothing rewritten");
    }

    #[test]
    fn rootless_traces_are_synthesized_after_the_timeout() {
        let config = AssemblerConfig {
            orphan_after_ns: 10 * SEC,
            forget_after_ns: 100 * SEC,
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
        // The real root still replaces it.
        let (_, runs) = a.accept(vec![span("t1", "gone", "", 1, 50)], 13 * SEC);
        assert!(!runs[0].synthesized);
        a.expire(200 * SEC);
        assert_eq!(a.tracked_traces(), 0);
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
        assert_eq!(a.tracked_traces(), 2);
    }

    proptest! {
        /// In whatever order a trace's spans arrive, the last run written for it is the same.
        #[test]
        fn arrival_order_does_not_change_the_final_run(order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle()) {
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
