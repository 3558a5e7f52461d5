//! A synthetic, deterministic workload of LLM-agent traffic, for `vigil demo`, `vigil bench
//! ingest` and tests.
//!
//! [`generate`] turns a [`WorkloadConfig`] into plain Rust values ([`GeneratedRun`]s with their
//! spans and feedback), so that a test can compute every expected metric from the list on its
//! own; [`to_native`] and [`to_otlp`] turn the list into what an SDK would send.
//!
//! What the traffic looks like:
//! * four agents (`support-bot`, `research-agent`, `code-reviewer`, `sql-analyst`), each with its
//!   task types, models, tools and two or three versions of its prompt; one version per agent is
//!   bad (more failures and loops) and is rolled out halfway through the time window;
//! * models from OpenAI, Anthropic, Google, Mistral and a self-hosted Llama served by vLLM (which
//!   the price catalog leaves unpriced), with prompt-cache reads and writes and reasoning tokens;
//! * tools (`web_search`, `sql_query`, `vector_search`, `send_email`, `code_exec`) with log-normal
//!   latencies, per-tool failure rates and retries; `sql_query` is upgraded to a flakier version
//!   late in the window;
//! * runs that loop (the same tool with the same arguments, again and again), runs that succeed
//!   although a tool failed (silent partial failures), partial, failed, timed-out and cancelled
//!   runs;
//! * sessions of one to six runs per user, users with a favourite agent, thumbs-up/down feedback.
//!
//! Determinism: the generator uses its own SplitMix64 and only IEEE basic arithmetic (its `exp` is
//! a polynomial, not the platform's libm), so a seed gives the same runs on every platform and with
//! every crate version. Each session draws from its own stream, so a larger `runs` extends a
//! workload without changing the sessions it already had (only the last one may grow).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;
use vigil_proto::otlp::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{
        ResourceSpans, ScopeSpans, Span, Status, span::SpanKind as OtlpSpanKind, status::StatusCode,
    },
};
use vigil_proto::v1;
use vigil_schemas::{Outcome, SpanStatus};

/// Name of the score that carries end-user feedback (thumbs up = `true`).
pub const FEEDBACK_SCORE_NAME: &str = "user_feedback";
/// `source` of the feedback scores.
pub const FEEDBACK_SOURCE: &str = "user";

const NANOS_PER_MS: f64 = 1_000_000.0;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadConfig {
    /// The same seed gives the same workload.
    pub seed: u64,
    /// Number of runs (traces).
    pub runs: usize,
    /// Earliest run start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Sessions start within `[start_ns, start_ns + spread_ns)`; when the spread is longer than a
    /// session (minutes), every run also ends inside that window. Zero puts every session at
    /// `start_ns`.
    pub spread_ns: i64,
    /// Distinct end users; 0 means one user per ten runs (at least one).
    pub users: usize,
}

impl WorkloadConfig {
    pub fn new(seed: u64, runs: usize, start_ns: i64, spread_ns: i64) -> WorkloadConfig {
        WorkloadConfig {
            seed,
            runs,
            start_ns,
            spread_ns,
            users: 0,
        }
    }

    fn user_count(&self) -> usize {
        if self.users > 0 {
            self.users
        } else {
            (self.runs / 10).max(1)
        }
    }
}

/// One run (one trace) and everything in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedRun {
    /// 32 lowercase hex characters.
    pub trace_id: String,
    /// Span id (16 hex) of the run's root span, the parent of every span in `spans`.
    pub root_span_id: String,
    pub session_id: String,
    /// The raw end-user id, as an SDK sends it (the collector hashes it).
    pub user_id: String,
    pub agent_name: String,
    pub agent_version: String,
    pub task_type: String,
    pub environment: String,
    pub release: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub outcome: Outcome,
    /// Set exactly when the outcome is `failure`, `timeout` or `partial`.
    pub error_message: String,
    pub input: String,
    pub output: String,
    pub tags: Vec<String>,
    pub classification: Vec<String>,
    pub retention: String,
    pub audit_ref: String,
    /// The prompt every model call of the run used.
    pub prompt_id: String,
    pub prompt_version: String,
    /// Whether `prompt_version` is the agent's bad version (ground truth for tests).
    pub bad_prompt: bool,
    /// Whether the run looped: the same tool with the same arguments, three or more times in a
    /// row (ground truth for tests).
    pub looped: bool,
    pub feedback: Option<Feedback>,
    /// The root's children, in start order.
    pub spans: Vec<GeneratedSpan>,
}

/// End-user feedback on a run: thumbs up (`positive`) or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Feedback {
    pub positive: bool,
    pub time_ns: i64,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneratedSpan {
    /// 16 lowercase hex characters, unique within the run.
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// `Ok` or `Error`.
    pub status: SpanStatus,
    pub error_type: String,
    pub status_message: String,
    /// Model calls: the input messages (JSON); tools: the arguments; retrievals: the query.
    pub input: String,
    /// Model calls: the output messages (JSON); tools: the result; retrievals: the document ids.
    pub output: String,
    pub call: SpanCall,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanCall {
    Model(ModelCall),
    Tool(ToolCall),
    Retrieval(Retrieval),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCall {
    pub provider: String,
    pub model: String,
    /// The snapshot served, when the vendor names one; empty otherwise.
    pub model_version: String,
    pub prompt_id: String,
    pub prompt_version: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    pub name: String,
    pub version: String,
    pub call_id: String,
    /// JSON arguments; identical arguments of consecutive calls of one tool happen only in loops.
    pub arguments: String,
    pub retry_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retrieval {
    pub data_source: String,
    pub document_ids: Vec<String>,
}

impl GeneratedRun {
    /// Spans as sent: the root plus its children.
    pub fn span_count(&self) -> usize {
        1 + self.spans.len()
    }

    pub fn tool_calls(&self) -> impl Iterator<Item = (&GeneratedSpan, &ToolCall)> {
        self.spans.iter().filter_map(|s| match &s.call {
            SpanCall::Tool(t) => Some((s, t)),
            _ => None,
        })
    }

    /// The silent partial failure of docs/design.md#metric-definitions: outcome `success` with a
    /// failed tool or model span.
    pub fn is_silent_partial_failure(&self) -> bool {
        self.outcome == Outcome::Success
            && self.spans.iter().any(|s| {
                s.status == SpanStatus::Error
                    && matches!(s.call, SpanCall::Model(_) | SpanCall::Tool(_))
            })
    }

    /// Tool calls with the same tool and arguments as the tool call just before them.
    pub fn repeated_tool_calls(&self) -> usize {
        let calls: Vec<&ToolCall> = self.tool_calls().map(|(_, t)| t).collect();
        calls
            .windows(2)
            .filter(|w| w[0].name == w[1].name && w[0].arguments == w[1].arguments)
            .count()
    }

    fn shift(&mut self, offset_ns: i64) {
        self.start_ns = self.start_ns.saturating_add(offset_ns);
        self.end_ns = self.end_ns.saturating_add(offset_ns);
        if let Some(f) = &mut self.feedback {
            f.time_ns = f.time_ns.saturating_add(offset_ns);
        }
        for span in &mut self.spans {
            span.start_ns = span.start_ns.saturating_add(offset_ns);
            span.end_ns = span.end_ns.saturating_add(offset_ns);
        }
    }
}

/// Spans of `runs` as sent by [`to_native`] and [`to_otlp`] (roots included).
pub fn span_count(runs: &[GeneratedRun]) -> usize {
    runs.iter().map(GeneratedRun::span_count).sum()
}

/// The `(prompt_id, version)` pairs that are bad: more failures, loops and thumbs-down.
pub fn bad_prompt_versions() -> Vec<(&'static str, &'static str)> {
    AGENTS
        .iter()
        .flat_map(|a| {
            a.prompts
                .iter()
                .filter(|p| p.bad)
                .map(|p| (a.prompt_id, p.version))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The random source: SplitMix64 and distributions built from IEEE basic operations only.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// An independent stream for `index` of a seed's `purpose`.
    fn stream(seed: u64, purpose: u64, index: u64) -> SplitMix64 {
        let mut base = SplitMix64::new(seed ^ mix64(purpose));
        let key = base.next_u64();
        SplitMix64::new(key ^ mix64(index.wrapping_add(0x632B_E59B_D9B4_E019)))
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in [0, 1), 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Approximately standard normal: the Irwin–Hall sum of twelve uniforms, minus six.
    fn normal(&mut self) -> f64 {
        let mut sum = 0.0;
        for _ in 0..12 {
            sum += self.unit();
        }
        sum - 6.0
    }

    /// Log-normal with the given median and log-space standard deviation.
    fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * exp(sigma * self.normal())
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        debug_assert!(!items.is_empty());
        &items[self.below(items.len() as u64) as usize]
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, f64)]) -> &'a T {
        debug_assert!(!items.is_empty());
        let total: f64 = items.iter().map(|(_, w)| *w).sum();
        let mut x = self.unit() * total;
        for (item, weight) in items {
            if x < *weight {
                return item;
            }
            x -= weight;
        }
        &items[items.len() - 1].0
    }

    /// `bytes` random bytes as lowercase hex, never all zero.
    fn hex(&mut self, bytes: usize) -> String {
        loop {
            let mut out = String::with_capacity(bytes.div_ceil(8) * 16);
            for _ in 0..bytes.div_ceil(8) {
                out.push_str(&format!("{:016x}", self.next_u64()));
            }
            out.truncate(bytes * 2);
            if out.bytes().any(|b| b != b'0') {
                return out;
            }
        }
    }
}

/// SplitMix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// e^x from basic arithmetic only (range reduction by ln 2, then a Taylor series), so that it
/// gives the same bits everywhere; relative error below 1e-15 on the range used here.
fn exp(x: f64) -> f64 {
    let x = x.clamp(-700.0, 700.0);
    let k = (x / std::f64::consts::LN_2 + 0.5).floor();
    let r = x - k * std::f64::consts::LN_2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=22 {
        term = term * r / f64::from(n);
        sum += term;
    }
    // 2^k by its bit pattern; k is within [-1010, 1010] after the clamp.
    let biased = (k as i64 + 1023).clamp(1, 2046) as u64;
    sum * f64::from_bits(biased << 52)
}

fn ms_to_ns(ms: f64) -> i64 {
    (ms * NANOS_PER_MS).round() as i64
}

// ---------------------------------------------------------------------------------------------
// The world: models, tools, agents, tasks.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptCache {
    /// No cache usage reported (self-hosted).
    None,
    /// The provider caches long prefixes by itself and reports cache reads (OpenAI, Google).
    Automatic,
    /// The client marks cache breakpoints; first use writes, later uses read (Anthropic).
    Explicit,
}

#[derive(Debug)]
struct ModelProfile {
    model: &'static str,
    provider: &'static str,
    version: &'static str,
    ttft_ms: f64,
    tokens_per_second: f64,
    /// Share of calls that spend reasoning ("thinking") tokens.
    reasoning_share: f64,
    cache: PromptCache,
}

const GPT_4O: ModelProfile = ModelProfile {
    model: "gpt-4o",
    provider: "openai",
    version: "gpt-4o-2024-08-06",
    ttft_ms: 450.0,
    tokens_per_second: 90.0,
    reasoning_share: 0.0,
    cache: PromptCache::Automatic,
};
const GPT_4O_MINI: ModelProfile = ModelProfile {
    model: "gpt-4o-mini",
    provider: "openai",
    version: "gpt-4o-mini-2024-07-18",
    ttft_ms: 300.0,
    tokens_per_second: 140.0,
    reasoning_share: 0.0,
    cache: PromptCache::Automatic,
};
const CLAUDE_SONNET: ModelProfile = ModelProfile {
    model: "claude-sonnet-4-5",
    provider: "anthropic",
    version: "claude-sonnet-4-5-20250929",
    ttft_ms: 700.0,
    tokens_per_second: 75.0,
    reasoning_share: 0.25,
    cache: PromptCache::Explicit,
};
const GEMINI_FLASH: ModelProfile = ModelProfile {
    model: "gemini-2.5-flash",
    provider: "google",
    version: "",
    ttft_ms: 350.0,
    tokens_per_second: 180.0,
    reasoning_share: 0.6,
    cache: PromptCache::Automatic,
};
const MISTRAL_LARGE: ModelProfile = ModelProfile {
    model: "mistral-large",
    provider: "mistral",
    version: "mistral-large-2411",
    ttft_ms: 500.0,
    tokens_per_second: 60.0,
    reasoning_share: 0.0,
    cache: PromptCache::None,
};
const LLAMA_VLLM: ModelProfile = ModelProfile {
    model: "meta-llama/Llama-3.3-70B-Instruct",
    provider: "vllm",
    version: "",
    ttft_ms: 250.0,
    tokens_per_second: 45.0,
    reasoning_share: 0.0,
    cache: PromptCache::None,
};

/// Share of model calls that fail (rate limit, timeout, 5xx) and are then retried once.
const MODEL_ERROR_RATE: f64 = 0.008;
const MODEL_ERRORS: &[(&str, &str)] = &[
    ("RateLimitError", "429 rate limit exceeded; retry after 2s"),
    ("APITimeoutError", "request timed out after 60s"),
    (
        "InternalServerError",
        "500 the server had an error while processing the request",
    ),
];

#[derive(Debug)]
struct ToolError {
    kind: &'static str,
    message: &'static str,
    /// Retried (twice) before giving up.
    transient: bool,
}

#[derive(Debug)]
struct ToolUpgrade {
    version: &'static str,
    /// Sessions whose position in the window is at least this use the new version.
    from_position: f64,
    failure_factor: f64,
}

#[derive(Debug)]
struct ToolProfile {
    name: &'static str,
    version: &'static str,
    median_ms: f64,
    sigma: f64,
    /// Share of calls whose final attempt fails (retries included).
    failure_rate: f64,
    errors: &'static [ToolError],
    upgrade: Option<ToolUpgrade>,
}

const WEB_SEARCH: ToolProfile = ToolProfile {
    name: "web_search",
    version: "2.3.0",
    median_ms: 800.0,
    sigma: 0.6,
    failure_rate: 0.04,
    errors: &[
        ToolError {
            kind: "TimeoutError",
            message: "search provider timed out after 10s",
            transient: true,
        },
        ToolError {
            kind: "HTTPError",
            message: "search provider returned 503 Service Unavailable",
            transient: true,
        },
    ],
    upgrade: None,
};
const SQL_QUERY: ToolProfile = ToolProfile {
    name: "sql_query",
    version: "1.8.2",
    median_ms: 250.0,
    sigma: 0.9,
    failure_rate: 0.06,
    errors: &[
        ToolError {
            kind: "ProgrammingError",
            message: "column \"created\" does not exist",
            transient: false,
        },
        ToolError {
            kind: "OperationalError",
            message: "canceling statement due to statement timeout (30s)",
            transient: true,
        },
    ],
    upgrade: Some(ToolUpgrade {
        version: "1.9.0",
        from_position: 0.7,
        failure_factor: 2.0,
    }),
};
const VECTOR_SEARCH: ToolProfile = ToolProfile {
    name: "vector_search",
    version: "0.9.4",
    median_ms: 60.0,
    sigma: 0.5,
    failure_rate: 0.01,
    errors: &[ToolError {
        kind: "ConnectionError",
        message: "vector store unreachable: connection refused",
        transient: true,
    }],
    upgrade: None,
};
const SEND_EMAIL: ToolProfile = ToolProfile {
    name: "send_email",
    version: "1.2.0",
    median_ms: 400.0,
    sigma: 0.4,
    failure_rate: 0.03,
    errors: &[
        ToolError {
            kind: "SMTPRecipientsRefused",
            message: "550 5.1.1 mailbox unavailable",
            transient: false,
        },
        ToolError {
            kind: "RateLimitError",
            message: "email provider rate limit reached",
            transient: true,
        },
    ],
    upgrade: None,
};
const CODE_EXEC: ToolProfile = ToolProfile {
    name: "code_exec",
    version: "3.1.0",
    median_ms: 1500.0,
    sigma: 0.8,
    failure_rate: 0.10,
    errors: &[
        ToolError {
            kind: "SandboxError",
            message: "sandbox exceeded its 512 MiB memory limit",
            transient: false,
        },
        ToolError {
            kind: "TimeoutError",
            message: "execution exceeded 60s",
            transient: true,
        },
        ToolError {
            kind: "RuntimeError",
            message: "NameError: name 'df' is not defined",
            transient: false,
        },
    ],
    upgrade: None,
};

#[derive(Debug)]
struct PromptProfile {
    version: &'static str,
    /// Weight in sessions in the first half of the window.
    early_weight: f64,
    /// Weight in sessions in the second half (the bad version is rolled out then).
    late_weight: f64,
    bad: bool,
}

#[derive(Debug)]
struct TaskProfile {
    name: &'static str,
    weight: f64,
    tools: &'static [(&'static ToolProfile, f64)],
    min_steps: u64,
    max_steps: u64,
    /// Share of runs that start with a retrieval.
    retrieval_share: f64,
    questions: &'static [&'static str],
    answer: &'static str,
    classification: &'static [&'static str],
    audit_ref: &'static str,
}

#[derive(Debug)]
struct AgentProfile {
    name: &'static str,
    weight: f64,
    /// Agent version per environment, in the order of [`ENVIRONMENTS`].
    versions: [&'static str; 3],
    prompt_id: &'static str,
    prompts: &'static [PromptProfile],
    primary: &'static [(&'static ModelProfile, f64)],
    /// The cheaper model some planning calls are routed to.
    secondary: &'static ModelProfile,
    tasks: &'static [TaskProfile],
    /// Share of runs without any failed step that still fail (bad answers, guardrails).
    base_failure: f64,
    system_tokens: f64,
    data_source: &'static str,
    retention: &'static str,
}

/// (name, weight, release).
const ENVIRONMENTS: [(&str, f64, &str); 3] = [
    ("production", 0.85, "2026.11.18"),
    ("staging", 0.12, "2026.11.21-rc.1"),
    ("development", 0.03, "2026.11.22-dev"),
];

const CHANNELS: &[(&str, f64)] = &[("web", 0.55), ("slack", 0.25), ("api", 0.2)];

/// Share of runs (with a good prompt) that loop; a bad prompt multiplies it by four.
const LOOP_RATE: f64 = 0.03;
const BAD_PROMPT_LOOP_FACTOR: f64 = 4.0;
const BAD_PROMPT_FAILURE_FACTOR: f64 = 3.0;
const CANCEL_RATE: f64 = 0.01;
const FEEDBACK_RATE: f64 = 0.25;

const FAILURE_REASONS: &[&str] = &[
    "model output failed schema validation after 2 attempts",
    "guardrail blocked the response: possible data leak",
    "agent gave up: not enough information to answer",
];

static AGENTS: &[AgentProfile] = &[
    AgentProfile {
        name: "support-bot",
        weight: 0.4,
        versions: ["4.2.0", "4.3.0-rc.1", "4.3.0-dev"],
        prompt_id: "support-answer",
        prompts: &[
            PromptProfile {
                version: "v7",
                early_weight: 0.7,
                late_weight: 0.15,
                bad: false,
            },
            PromptProfile {
                version: "v8",
                early_weight: 0.3,
                late_weight: 0.45,
                bad: false,
            },
            PromptProfile {
                version: "v9",
                early_weight: 0.0,
                late_weight: 0.4,
                bad: true,
            },
        ],
        primary: &[(&GPT_4O, 0.8), (&CLAUDE_SONNET, 0.2)],
        secondary: &GPT_4O_MINI,
        tasks: &[
            TaskProfile {
                name: "order_status",
                weight: 0.35,
                tools: &[(&SQL_QUERY, 1.0)],
                min_steps: 1,
                max_steps: 2,
                retrieval_share: 0.0,
                questions: &[
                    "Where is my order {n}? It was supposed to arrive yesterday.",
                    "Can you check the status of order {n}?",
                    "My package {n} says delivered but I have nothing.",
                ],
                answer: "Order {n} left our warehouse on Monday and should arrive within two business days.",
                classification: &["pii"],
                audit_ref: "",
            },
            TaskProfile {
                name: "refund_request",
                weight: 0.25,
                tools: &[(&SQL_QUERY, 0.6), (&SEND_EMAIL, 0.4)],
                min_steps: 2,
                max_steps: 3,
                retrieval_share: 0.3,
                questions: &[
                    "I want a refund for order {n}, the item arrived broken.",
                    "Please refund order {n}, I was charged twice.",
                ],
                answer: "I have issued a refund for order {n}; you will receive a confirmation email shortly.",
                classification: &["pii", "financial"],
                audit_ref: "",
            },
            TaskProfile {
                name: "product_question",
                weight: 0.3,
                tools: &[(&VECTOR_SEARCH, 1.0)],
                min_steps: 1,
                max_steps: 2,
                retrieval_share: 0.8,
                questions: &[
                    "Does model X{n} work with a 220V outlet?",
                    "What is the warranty on product {n}?",
                    "Is item {n} dishwasher safe?",
                ],
                answer: "Product {n} is covered by a two-year warranty and works on 100-240V.",
                classification: &[],
                audit_ref: "",
            },
            TaskProfile {
                name: "account_update",
                weight: 0.1,
                tools: &[(&SQL_QUERY, 0.7), (&SEND_EMAIL, 0.3)],
                min_steps: 1,
                max_steps: 3,
                retrieval_share: 0.0,
                questions: &[
                    "Please change the shipping address on account {n}.",
                    "How do I update the email on my account {n}?",
                ],
                answer: "The address on account {n} is updated; a confirmation email is on its way.",
                classification: &["pii"],
                audit_ref: "",
            },
        ],
        base_failure: 0.04,
        system_tokens: 1800.0,
        data_source: "support-kb",
        retention: "90d",
    },
    AgentProfile {
        name: "research-agent",
        weight: 0.2,
        versions: ["1.7.3", "1.8.0-rc.2", "1.8.0-dev"],
        prompt_id: "research-plan",
        prompts: &[
            PromptProfile {
                version: "v12",
                early_weight: 1.0,
                late_weight: 0.5,
                bad: false,
            },
            PromptProfile {
                version: "v13",
                early_weight: 0.0,
                late_weight: 0.5,
                bad: true,
            },
        ],
        primary: &[(&CLAUDE_SONNET, 0.7), (&GPT_4O, 0.3)],
        secondary: &GEMINI_FLASH,
        tasks: &[
            TaskProfile {
                name: "market_research",
                weight: 0.4,
                tools: &[(&WEB_SEARCH, 0.7), (&CODE_EXEC, 0.3)],
                min_steps: 3,
                max_steps: 6,
                retrieval_share: 0.3,
                questions: &[
                    "Estimate the market size for industrial heat pumps in region {n}.",
                    "Summarise pricing trends for mid-size EV batteries (report {n}).",
                ],
                answer: "Summary for report {n}: the market grows about 14% a year, led by three vendors.",
                classification: &[],
                audit_ref: "",
            },
            TaskProfile {
                name: "literature_review",
                weight: 0.35,
                tools: &[(&WEB_SEARCH, 0.5), (&VECTOR_SEARCH, 0.5)],
                min_steps: 2,
                max_steps: 5,
                retrieval_share: 0.6,
                questions: &[
                    "Find recent papers on retrieval-augmented generation evaluation (topic {n}).",
                    "What does the literature say about sparse attention, survey {n}?",
                ],
                answer: "Survey {n}: twelve relevant papers, grouped into three approaches.",
                classification: &[],
                audit_ref: "",
            },
            TaskProfile {
                name: "competitor_analysis",
                weight: 0.25,
                tools: &[(&WEB_SEARCH, 1.0)],
                min_steps: 2,
                max_steps: 4,
                retrieval_share: 0.0,
                questions: &[
                    "Compare our pricing page with competitor {n}.",
                    "What did competitor {n} announce this quarter?",
                ],
                answer: "Competitor {n} cut prices by 10% and launched a free tier.",
                classification: &["confidential"],
                audit_ref: "",
            },
        ],
        base_failure: 0.07,
        system_tokens: 2600.0,
        data_source: "research-corpus",
        retention: "",
    },
    AgentProfile {
        name: "code-reviewer",
        weight: 0.2,
        versions: ["0.12.1", "0.13.0-rc.1", "0.13.0-dev"],
        prompt_id: "review-diff",
        prompts: &[
            PromptProfile {
                version: "v3",
                early_weight: 0.5,
                late_weight: 0.2,
                bad: false,
            },
            PromptProfile {
                version: "v4",
                early_weight: 0.5,
                late_weight: 0.5,
                bad: false,
            },
            PromptProfile {
                version: "v5",
                early_weight: 0.0,
                late_weight: 0.3,
                bad: true,
            },
        ],
        primary: &[(&CLAUDE_SONNET, 0.6), (&MISTRAL_LARGE, 0.4)],
        secondary: &GPT_4O_MINI,
        tasks: &[
            TaskProfile {
                name: "pr_review",
                weight: 0.7,
                tools: &[(&VECTOR_SEARCH, 0.4), (&CODE_EXEC, 0.6)],
                min_steps: 1,
                max_steps: 4,
                retrieval_share: 0.5,
                questions: &[
                    "Review pull request #{n}: refactor of the billing module.",
                    "Review pull request #{n}: add retries to the HTTP client.",
                ],
                answer: "PR #{n}: two issues found (an unchecked error and a missing test); otherwise fine.",
                classification: &["confidential"],
                audit_ref: "",
            },
            TaskProfile {
                name: "security_audit",
                weight: 0.3,
                tools: &[(&CODE_EXEC, 0.7), (&WEB_SEARCH, 0.3)],
                min_steps: 2,
                max_steps: 5,
                retrieval_share: 0.3,
                questions: &[
                    "Audit commit range {n} for injection vulnerabilities.",
                    "Check dependency lockfile {n} for known CVEs.",
                ],
                answer: "Audit {n}: one medium-severity finding (unsanitised SQL in a report query).",
                classification: &["confidential"],
                audit_ref: "",
            },
        ],
        base_failure: 0.05,
        system_tokens: 3200.0,
        data_source: "repo-index",
        retention: "",
    },
    AgentProfile {
        name: "sql-analyst",
        weight: 0.2,
        versions: ["2.0.4", "2.1.0-rc.1", "2.1.0-dev"],
        prompt_id: "sql-generate",
        prompts: &[
            PromptProfile {
                version: "v1",
                early_weight: 1.0,
                late_weight: 0.6,
                bad: false,
            },
            PromptProfile {
                version: "v2",
                early_weight: 0.0,
                late_weight: 0.4,
                bad: true,
            },
        ],
        primary: &[(&LLAMA_VLLM, 0.6), (&GPT_4O, 0.4)],
        secondary: &GEMINI_FLASH,
        tasks: &[
            TaskProfile {
                name: "revenue_report",
                weight: 0.35,
                tools: &[(&SQL_QUERY, 0.6), (&CODE_EXEC, 0.3), (&SEND_EMAIL, 0.1)],
                min_steps: 2,
                max_steps: 5,
                retrieval_share: 0.2,
                questions: &[
                    "Revenue by region for week {n}, compared with the week before.",
                    "Monthly recurring revenue report {n} for the board.",
                ],
                answer: "Report {n}: revenue up 6.2% week over week, EMEA leading.",
                classification: &["financial", "confidential"],
                audit_ref: "SOX-2026-Q4",
            },
            TaskProfile {
                name: "adhoc_query",
                weight: 0.45,
                tools: &[(&SQL_QUERY, 1.0)],
                min_steps: 1,
                max_steps: 3,
                retrieval_share: 0.4,
                questions: &[
                    "How many customers signed up through campaign {n}?",
                    "Top ten products by refunds for store {n}.",
                ],
                answer: "Campaign {n}: 1,284 sign-ups, 31% of them converted.",
                classification: &["financial"],
                audit_ref: "SOX-2026-Q4",
            },
            TaskProfile {
                name: "anomaly_investigation",
                weight: 0.2,
                tools: &[(&SQL_QUERY, 0.6), (&CODE_EXEC, 0.4)],
                min_steps: 2,
                max_steps: 5,
                retrieval_share: 0.2,
                questions: &[
                    "Why did orders drop on day {n}?",
                    "Explain the spike in refunds in batch {n}.",
                ],
                answer: "The drop on day {n} follows a payment-provider outage between 14:00 and 15:10 UTC.",
                classification: &["financial"],
                audit_ref: "SOX-2026-Q4",
            },
        ],
        base_failure: 0.06,
        system_tokens: 2200.0,
        data_source: "warehouse-schema",
        retention: "",
    },
];

// ---------------------------------------------------------------------------------------------
// Generation.
// ---------------------------------------------------------------------------------------------

// Purposes of the random streams.
const STREAM_SESSION: u64 = 1;
const STREAM_USER: u64 = 2;

/// Generates `config.runs` runs, sorted by start time (then trace id).
pub fn generate(config: &WorkloadConfig) -> Vec<GeneratedRun> {
    let users = config.user_count();
    let mut runs: Vec<GeneratedRun> = Vec::with_capacity(config.runs);
    let mut trace_ids: HashSet<String> = HashSet::with_capacity(config.runs);
    let mut session_index = 0u64;
    while runs.len() < config.runs {
        let mut rng = SplitMix64::stream(config.seed, STREAM_SESSION, session_index);
        session_index += 1;
        let session = plan_session(&mut rng, config.seed, users);
        let count = session.runs.min(config.runs - runs.len());
        let mut session_runs: Vec<GeneratedRun> = Vec::with_capacity(count);
        let mut cursor = 0i64;
        for _ in 0..count {
            let run = generate_run(&mut rng, &session, cursor, &mut trace_ids);
            // Thinking time before the user's next request.
            cursor = run.end_ns + ms_to_ns(rng.log_normal(45_000.0, 0.8).clamp(3_000.0, 900_000.0));
            session_runs.push(run);
        }
        let duration = session_runs.iter().map(|r| r.end_ns).max().unwrap_or(0);
        let slack = config.spread_ns.saturating_sub(duration).max(0);
        let offset = config
            .start_ns
            .saturating_add((session.position * slack as f64) as i64);
        for mut run in session_runs {
            run.shift(offset);
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| {
        a.start_ns
            .cmp(&b.start_ns)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    runs
}

/// What the runs of one session share.
struct SessionPlan {
    session_id: String,
    user_id: String,
    agent: &'static AgentProfile,
    environment: usize,
    prompt: &'static PromptProfile,
    channel: &'static str,
    /// Where in the time window the session starts, in [0, 1).
    position: f64,
    runs: usize,
}

fn plan_session(rng: &mut SplitMix64, seed: u64, users: usize) -> SessionPlan {
    // A few heavy users, a long tail of occasional ones.
    let u = rng.unit();
    let user = ((users as f64) * u * u) as u64;
    let user = user.min(users as u64 - 1);
    let mut user_rng = SplitMix64::stream(seed, STREAM_USER, user);
    let agents: Vec<(&'static AgentProfile, f64)> = AGENTS.iter().map(|a| (a, a.weight)).collect();
    let favourite = *user_rng.weighted(&agents);
    let agent = if rng.chance(0.8) {
        favourite
    } else {
        *rng.weighted(&agents)
    };
    let environments: Vec<(usize, f64)> = ENVIRONMENTS
        .iter()
        .enumerate()
        .map(|(i, (_, w, _))| (i, *w))
        .collect();
    let environment = *rng.weighted(&environments);
    let position = rng.unit();
    let prompts: Vec<(&'static PromptProfile, f64)> = agent
        .prompts
        .iter()
        .map(|p| {
            (
                p,
                if position < 0.5 {
                    p.early_weight
                } else {
                    p.late_weight
                },
            )
        })
        .collect();
    let prompt = *rng.weighted(&prompts);
    let channel = *rng.weighted(CHANNELS);
    let runs = *rng.weighted(&[
        (1usize, 30.0),
        (2, 25.0),
        (3, 18.0),
        (4, 12.0),
        (5, 8.0),
        (6, 7.0),
    ]);
    let domain = ["example.com", "example.org", "example.net"][(user % 3) as usize];
    SessionPlan {
        session_id: format!("sess_{}", rng.hex(8)),
        user_id: format!("user-{user:05}@{domain}"),
        agent,
        environment,
        prompt,
        channel,
        position,
        runs,
    }
}

/// Appends spans at a moving cursor (nanoseconds relative to the session start).
struct RunBuilder<'a> {
    rng: &'a mut SplitMix64,
    root_span_id: String,
    spans: Vec<GeneratedSpan>,
    cursor: i64,
    prompt_id: &'static str,
    prompt_version: &'static str,
    system_tokens: f64,
    question: String,
}

impl RunBuilder<'_> {
    fn span_id(&mut self) -> String {
        loop {
            let id = self.rng.hex(8);
            if id != self.root_span_id && self.spans.iter().all(|s| s.span_id != id) {
                return id;
            }
        }
    }

    /// A short framework pause between steps.
    fn pause(&mut self) {
        self.cursor += ms_to_ns(self.rng.log_normal(8.0, 0.5));
    }

    fn push(&mut self, mut span: GeneratedSpan, duration_ns: i64) {
        span.start_ns = self.cursor;
        span.end_ns = self.cursor + duration_ns.max(1);
        self.cursor = span.end_ns;
        self.spans.push(span);
        self.pause();
    }

    fn blank_span(&mut self, name: String, call: SpanCall) -> GeneratedSpan {
        GeneratedSpan {
            span_id: self.span_id(),
            parent_span_id: self.root_span_id.clone(),
            name,
            start_ns: 0,
            end_ns: 0,
            status: SpanStatus::Ok,
            error_type: String::new(),
            status_message: String::new(),
            input: String::new(),
            output: String::new(),
            call,
        }
    }

    fn retrieval(&mut self, data_source: &str) {
        let top_k = self.rng.between(3, 6) as usize;
        let mut document_ids: Vec<String> = Vec::with_capacity(top_k);
        while document_ids.len() < top_k {
            let id = format!("{data_source}-doc-{:04}", self.rng.below(500));
            if !document_ids.contains(&id) {
                document_ids.push(id);
            }
        }
        let mut span = self.blank_span(
            format!("retrieval {data_source}"),
            SpanCall::Retrieval(Retrieval {
                data_source: data_source.to_string(),
                document_ids: document_ids.clone(),
            }),
        );
        span.input = self.question.clone();
        span.output = document_ids.join(",");
        let duration = ms_to_ns(self.rng.log_normal(45.0, 0.5));
        self.push(span, duration);
    }

    /// A model call (preceded, now and then, by a failed attempt that the agent retried).
    fn model_call(&mut self, model: &ModelProfile, step: u64, output: String, final_answer: bool) {
        let input = json!([
            {"role": "system", "parts": [{"type": "text", "content": format!("{} {}", self.prompt_id, self.prompt_version)}]},
            {"role": "user", "parts": [{"type": "text", "content": self.question}]},
        ])
        .to_string();
        if self.rng.chance(MODEL_ERROR_RATE) {
            let (kind, message) = *self.rng.pick(MODEL_ERRORS);
            let mut span = self.blank_span(
                format!("chat {}", model.model),
                SpanCall::Model(self.model_usage(model, 0, 0)),
            );
            span.status = SpanStatus::Error;
            span.error_type = kind.to_string();
            span.status_message = message.to_string();
            span.input.clone_from(&input);
            let duration = ms_to_ns(self.rng.log_normal(250.0, 0.6));
            self.push(span, duration);
            // Client back-off before the retry.
            self.cursor += ms_to_ns(self.rng.log_normal(1500.0, 0.3));
        }
        let context = self.system_tokens
            + 60.0
            + step as f64 * self.rng.log_normal(350.0, 0.5)
            + self.rng.log_normal(90.0, 0.6);
        let input_tokens = (context * self.rng.log_normal(1.0, 0.1)).round().max(1.0) as u64;
        let output_tokens = if final_answer {
            self.rng.log_normal(420.0, 0.6).clamp(20.0, 4000.0)
        } else {
            self.rng.log_normal(120.0, 0.5).clamp(8.0, 2000.0)
        }
        .round() as u64;
        let mut usage = self.model_usage(model, input_tokens, output_tokens);
        match model.cache {
            PromptCache::None => {}
            PromptCache::Automatic => {
                // Cached in blocks of 128 tokens once the prompt passes 1024.
                if input_tokens >= 1024 && self.rng.chance(0.75) {
                    let share = 0.4 + 0.45 * self.rng.unit();
                    usage.cached_input_tokens = ((input_tokens as f64 * share) as u64 / 128) * 128;
                }
            }
            PromptCache::Explicit => {
                let system = self.system_tokens as u64;
                if step == 0 && self.rng.chance(0.35) {
                    usage.cache_write_tokens = system.min(input_tokens);
                } else if self.rng.chance(0.8) {
                    usage.cached_input_tokens = system.min(input_tokens);
                }
            }
        }
        if self.rng.chance(model.reasoning_share) {
            usage.reasoning_tokens = self
                .rng
                .log_normal(600.0, 0.7)
                .clamp(32.0, 16_000.0)
                .round() as u64;
        }
        let generated = (usage.output_tokens + usage.reasoning_tokens) as f64;
        let latency_ms = model.ttft_ms * self.rng.log_normal(1.0, 0.35)
            + generated / model.tokens_per_second * 1000.0 * self.rng.log_normal(1.0, 0.2);
        let mut span = self.blank_span(format!("chat {}", model.model), SpanCall::Model(usage));
        span.input = input;
        span.output = output;
        self.push(span, ms_to_ns(latency_ms));
    }

    fn model_usage(
        &self,
        model: &ModelProfile,
        input_tokens: u64,
        output_tokens: u64,
    ) -> ModelCall {
        ModelCall {
            provider: model.provider.to_string(),
            model: model.model.to_string(),
            model_version: model.version.to_string(),
            prompt_id: self.prompt_id.to_string(),
            prompt_version: self.prompt_version.to_string(),
            input_tokens,
            output_tokens,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
        }
    }

    /// A tool call; returns the failure (type, message) when its last attempt failed.
    fn tool_call(
        &mut self,
        tool: &ToolProfile,
        version: &str,
        failure_rate: f64,
        arguments: String,
        result: String,
    ) -> Option<(String, String)> {
        let attempt = |rng: &mut SplitMix64| {
            ms_to_ns(
                rng.log_normal(tool.median_ms, tool.sigma)
                    .clamp(1.0, 120_000.0),
            )
        };
        let backoff = |rng: &mut SplitMix64, retry: u32| {
            ms_to_ns(500.0 * f64::from(1u32 << retry) * (0.8 + 0.4 * rng.unit()))
        };
        let failure = self
            .rng
            .chance(failure_rate)
            .then(|| self.rng.pick(tool.errors));
        let retry_count = match failure {
            Some(error) if error.transient => 2,
            Some(_) => 0,
            None => *self.rng.weighted(&[(0u32, 92.5), (1, 6.0), (2, 1.5)]),
        };
        let mut duration = attempt(self.rng);
        for retry in 0..retry_count {
            duration += backoff(self.rng, retry) + attempt(self.rng);
        }
        let call_id = format!("call_{}", self.rng.hex(12));
        let mut span = self.blank_span(
            format!("execute_tool {}", tool.name),
            SpanCall::Tool(ToolCall {
                name: tool.name.to_string(),
                version: version.to_string(),
                call_id,
                arguments: arguments.clone(),
                retry_count,
            }),
        );
        span.input = arguments;
        match failure {
            Some(error) => {
                span.status = SpanStatus::Error;
                span.error_type = error.kind.to_string();
                span.status_message = error.message.to_string();
            }
            None => span.output = result,
        }
        self.push(span, duration);
        failure.map(|e| (e.kind.to_string(), e.message.to_string()))
    }
}

/// Arguments and result of a call of `tool` at `step` of a run; the step is part of the
/// arguments, so consecutive calls differ unless the agent loops.
fn tool_io(
    rng: &mut SplitMix64,
    tool: &ToolProfile,
    agent: &AgentProfile,
    question: &str,
    step: u64,
) -> (String, String) {
    let n = rng.between(1000, 99_999);
    match tool.name {
        "web_search" => (
            json!({"query": format!("{} {}", question_topic(question), n % 97), "page": step + 1}).to_string(),
            json!({"results": rng.between(0, 10)}).to_string(),
        ),
        "sql_query" => {
            let table = *rng.pick(&["orders", "customers", "payments", "refunds", "sessions"]);
            (
                json!({"sql": format!("SELECT * FROM {table} WHERE id = {n} LIMIT {}", 50 * (step + 1))})
                    .to_string(),
                json!({"rows": rng.between(0, 200)}).to_string(),
            )
        }
        "vector_search" => (
            json!({"index": agent.data_source, "query": question_topic(question), "top_k": 5, "offset": step * 5})
                .to_string(),
            json!({"matches": rng.between(0, 5)}).to_string(),
        ),
        "send_email" => {
            let template = *rng.pick(&["refund_confirmation", "address_change", "weekly_report"]);
            (
                json!({"template": template, "ticket": format!("T-{n}"), "step": step}).to_string(),
                json!({"status": "queued", "message_id": rng.hex(8)}).to_string(),
            )
        }
        _ => (
            json!({"language": "python", "code": format!("# cell {step}\nresult = analyse(dataset_{n})")})
                .to_string(),
            json!({"exit_code": 0, "stdout_bytes": rng.between(10, 4000)}).to_string(),
        ),
    }
}

/// The first words of a question, as a search query.
fn question_topic(question: &str) -> String {
    question
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
}

fn generate_run(
    rng: &mut SplitMix64,
    session: &SessionPlan,
    start_ns: i64,
    trace_ids: &mut HashSet<String>,
) -> GeneratedRun {
    let agent = session.agent;
    let tasks: Vec<(&'static TaskProfile, f64)> =
        agent.tasks.iter().map(|t| (t, t.weight)).collect();
    let task = *rng.weighted(&tasks);
    let n = rng.between(1000, 99_999).to_string();
    let question = rng.pick(task.questions).replace("{n}", &n);
    let answer = task.answer.replace("{n}", &n);
    let trace_id = loop {
        let id = rng.hex(16);
        if trace_ids.insert(id.clone()) {
            break id;
        }
    };
    let root_span_id = rng.hex(8);
    let primary = *rng.weighted(agent.primary);
    let bad = session.prompt.bad;
    let looped = rng.chance(LOOP_RATE * if bad { BAD_PROMPT_LOOP_FACTOR } else { 1.0 });
    let steps = rng.between(task.min_steps, task.max_steps);
    let cancel_after = rng.chance(CANCEL_RATE).then(|| rng.below(steps));

    let mut b = RunBuilder {
        rng,
        root_span_id: root_span_id.clone(),
        spans: Vec::new(),
        cursor: start_ns,
        prompt_id: agent.prompt_id,
        prompt_version: session.prompt.version,
        system_tokens: agent.system_tokens,
        question: question.clone(),
    };
    b.cursor += ms_to_ns(b.rng.log_normal(15.0, 0.5));
    if b.rng.chance(task.retrieval_share) {
        b.retrieval(agent.data_source);
    }

    let tool_version = |tool: &ToolProfile| match &tool.upgrade {
        Some(up) if session.position >= up.from_position => {
            (up.version, tool.failure_rate * up.failure_factor)
        }
        _ => (tool.version, tool.failure_rate),
    };
    let tool_call_message = |tool: &ToolProfile, arguments: &str| {
        json!([{"role": "assistant", "parts": [{"type": "tool_call", "name": tool.name, "arguments": arguments}], "finish_reason": "tool_call"}])
            .to_string()
    };

    let mut first_failure: Option<(String, String, String)> = None;
    let mut cancelled = false;
    for step in 0..steps {
        let tool = *b.rng.weighted(task.tools);
        let (arguments, result) = tool_io(b.rng, tool, agent, &question, step);
        let model = if b.rng.chance(0.25) {
            agent.secondary
        } else {
            primary
        };
        b.model_call(model, step, tool_call_message(tool, &arguments), false);
        let (version, failure_rate) = tool_version(tool);
        if let Some((kind, message)) = b.tool_call(tool, version, failure_rate, arguments, result)
            && first_failure.is_none()
        {
            first_failure = Some((tool.name.to_string(), kind, message));
        }
        if cancel_after == Some(step) {
            cancelled = true;
            break;
        }
    }

    let mut loop_iterations = 0;
    if looped && !cancelled {
        // The agent keeps asking for the same thing and never gets further.
        let tool = *b.rng.weighted(task.tools);
        let (arguments, _) = tool_io(b.rng, tool, agent, &question, steps);
        let result = json!({"results": 0, "note": "no new information"}).to_string();
        let (version, _) = tool_version(tool);
        loop_iterations = b.rng.between(3, 8);
        for i in 0..loop_iterations {
            b.model_call(
                primary,
                steps + i,
                tool_call_message(tool, &arguments),
                false,
            );
            b.tool_call(tool, version, 0.0, arguments.clone(), result.clone());
        }
    }

    let mut error_message = String::new();
    let outcome = if cancelled {
        Outcome::Cancelled
    } else if looped {
        let x = b.rng.unit();
        if x < 0.45 {
            error_message = "run exceeded its 120s deadline".to_string();
            Outcome::Timeout
        } else if x < 0.8 {
            error_message = format!(
                "stopped after {} iterations: max_iterations reached",
                steps + loop_iterations
            );
            Outcome::Failure
        } else {
            Outcome::Success
        }
    } else if let Some((tool, kind, message)) = &first_failure {
        // The agent improvises (a silent partial failure), admits a partial answer, or fails.
        let x = b.rng.unit();
        if x < 0.35 {
            Outcome::Success
        } else if x < 0.7 {
            error_message = format!("answered without {tool} results: {kind}: {message}");
            Outcome::Partial
        } else {
            error_message = format!("tool {tool} failed: {kind}: {message}");
            Outcome::Failure
        }
    } else if b
        .rng
        .chance(agent.base_failure * if bad { BAD_PROMPT_FAILURE_FACTOR } else { 1.0 })
    {
        error_message = (*b.rng.pick(FAILURE_REASONS)).to_string();
        Outcome::Failure
    } else {
        Outcome::Success
    };

    let answers = matches!(
        outcome,
        Outcome::Success | Outcome::Partial | Outcome::Failure
    ) && !(looped && outcome == Outcome::Failure);
    let mut output = String::new();
    if answers {
        let text = match outcome {
            Outcome::Success => answer.clone(),
            Outcome::Partial => format!("{answer} (some sources could not be checked)"),
            _ => "I could not complete this request.".to_string(),
        };
        let message = json!([{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": "stop"}])
            .to_string();
        b.model_call(primary, steps + loop_iterations, message, true);
        if outcome != Outcome::Failure {
            output = text;
        }
    }
    let end_ns = b.cursor + ms_to_ns(b.rng.log_normal(10.0, 0.5));
    let spans = std::mem::take(&mut b.spans);
    let rng = b.rng;

    let (environment, _, release) = ENVIRONMENTS[session.environment];
    let mut run = GeneratedRun {
        trace_id,
        root_span_id,
        session_id: session.session_id.clone(),
        user_id: session.user_id.clone(),
        agent_name: agent.name.to_string(),
        agent_version: agent.versions[session.environment].to_string(),
        task_type: task.name.to_string(),
        environment: environment.to_string(),
        release: release.to_string(),
        start_ns,
        end_ns,
        outcome,
        error_message,
        input: question,
        output,
        tags: vec![format!("channel:{}", session.channel)],
        classification: task.classification.iter().map(|c| c.to_string()).collect(),
        retention: agent.retention.to_string(),
        audit_ref: task.audit_ref.to_string(),
        prompt_id: agent.prompt_id.to_string(),
        prompt_version: session.prompt.version.to_string(),
        bad_prompt: bad,
        looped: looped && !cancelled,
        feedback: None,
        spans,
    };
    debug_assert_eq!(run.repeated_tool_calls() > 0, run.looped);

    let positive_rate = match run.outcome {
        Outcome::Success if run.is_silent_partial_failure() => 0.45,
        Outcome::Success if bad => 0.6,
        Outcome::Success => 0.85,
        Outcome::Partial => 0.35,
        Outcome::Cancelled => 0.3,
        Outcome::Failure | Outcome::Timeout => 0.15,
    };
    if rng.chance(FEEDBACK_RATE) {
        run.feedback = Some(Feedback {
            positive: rng.chance(positive_rate),
            time_ns: end_ns + ms_to_ns(rng.log_normal(30_000.0, 1.0).clamp(1_000.0, 600_000.0)),
        });
    }
    run
}

// ---------------------------------------------------------------------------------------------
// Wire formats.
// ---------------------------------------------------------------------------------------------

const ROOT_OPERATION: &str = "invoke_agent";

fn operation_name(call: &SpanCall) -> &'static str {
    match call {
        SpanCall::Model(_) => "chat",
        SpanCall::Tool(_) => "execute_tool",
        SpanCall::Retrieval(_) => "retrieval",
    }
}

/// The attributes of a span that no Vigil column takes (kept as attributes on both paths), in
/// the order the OTLP path keeps them: the span's own, then the resource's `service.name`.
fn kept_attributes(
    run: &GeneratedRun,
    span: Option<&GeneratedSpan>,
) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "gen_ai.operation.name",
        span.map_or(ROOT_OPERATION, |s| operation_name(&s.call))
            .to_string(),
    )];
    if let Some(GeneratedSpan {
        call: SpanCall::Retrieval(r),
        ..
    }) = span
    {
        out.push(("gen_ai.data_source.id", r.data_source.clone()));
        out.push(("vigil.retrieval.document_ids", r.document_ids.join(",")));
    }
    out.push(("service.name", run.agent_name.clone()));
    out
}

fn root_status(run: &GeneratedRun) -> SpanStatus {
    match run.outcome {
        _ if !run.error_message.is_empty() => SpanStatus::Error,
        Outcome::Success => SpanStatus::Ok,
        _ => SpanStatus::Unset,
    }
}

fn native_outcome(outcome: Outcome) -> v1::Outcome {
    match outcome {
        Outcome::Success => v1::Outcome::Success,
        Outcome::Failure => v1::Outcome::Failure,
        Outcome::Partial => v1::Outcome::Partial,
        Outcome::Timeout => v1::Outcome::Timeout,
        Outcome::Cancelled => v1::Outcome::Cancelled,
    }
}

fn native_status(status: SpanStatus) -> v1::SpanStatus {
    match status {
        SpanStatus::Unset => v1::SpanStatus::Unset,
        SpanStatus::Ok => v1::SpanStatus::Ok,
        SpanStatus::Error => v1::SpanStatus::Error,
    }
}

fn native_attributes(pairs: Vec<(&'static str, String)>) -> Vec<v1::Attribute> {
    pairs
        .into_iter()
        .map(|(key, value)| v1::Attribute {
            key: key.to_string(),
            value,
        })
        .collect()
}

/// The runs as one native request: every run, its root span (kind agent) and children, and the
/// feedback scores.
pub fn to_native(runs: &[GeneratedRun]) -> v1::ExportRequest {
    let mut request = v1::ExportRequest {
        runs: Vec::with_capacity(runs.len()),
        spans: Vec::with_capacity(span_count(runs)),
        scores: feedback_scores(runs),
    };
    for run in runs {
        request.runs.push(v1::Run {
            trace_id: run.trace_id.clone(),
            session_id: run.session_id.clone(),
            user_id: run.user_id.clone(),
            user_hash: String::new(),
            task_type: run.task_type.clone(),
            agent_name: run.agent_name.clone(),
            agent_version: run.agent_version.clone(),
            environment: run.environment.clone(),
            release: run.release.clone(),
            start_time_unix_nano: run.start_ns,
            end_time_unix_nano: run.end_ns,
            outcome: native_outcome(run.outcome) as i32,
            error_message: run.error_message.clone(),
            input: run.input.clone(),
            output: run.output.clone(),
            tags: run.tags.clone(),
            classification: run.classification.clone(),
            retention: run.retention.clone(),
            audit_ref: run.audit_ref.clone(),
            shadow: false,
        });
        request.spans.push(v1::Span {
            trace_id: run.trace_id.clone(),
            span_id: run.root_span_id.clone(),
            parent_span_id: String::new(),
            kind: v1::SpanKind::Agent as i32,
            name: format!("{ROOT_OPERATION} {}", run.agent_name),
            start_time_unix_nano: run.start_ns,
            end_time_unix_nano: run.end_ns,
            status: native_status(root_status(run)) as i32,
            error_type: String::new(),
            status_message: run.error_message.clone(),
            input: run.input.clone(),
            output: run.output.clone(),
            attributes: native_attributes(kept_attributes(run, None)),
            model: None,
            tool: None,
        });
        for span in &run.spans {
            let (kind, model, tool) = match &span.call {
                SpanCall::Model(m) => (
                    v1::SpanKind::Model,
                    Some(v1::ModelCall {
                        provider: m.provider.clone(),
                        model: m.model.clone(),
                        model_version: m.model_version.clone(),
                        prompt_id: m.prompt_id.clone(),
                        prompt_version: m.prompt_version.clone(),
                        input_tokens: m.input_tokens,
                        output_tokens: m.output_tokens,
                        cached_input_tokens: m.cached_input_tokens,
                        cache_write_tokens: m.cache_write_tokens,
                        reasoning_tokens: m.reasoning_tokens,
                        cost_usd: None,
                    }),
                    None,
                ),
                SpanCall::Tool(t) => (
                    v1::SpanKind::Tool,
                    None,
                    Some(v1::ToolCall {
                        name: t.name.clone(),
                        version: t.version.clone(),
                        call_id: t.call_id.clone(),
                        arguments: t.arguments.clone(),
                        retry_count: t.retry_count,
                    }),
                ),
                SpanCall::Retrieval(_) => (v1::SpanKind::Retrieval, None, None),
            };
            request.spans.push(v1::Span {
                trace_id: run.trace_id.clone(),
                span_id: span.span_id.clone(),
                parent_span_id: span.parent_span_id.clone(),
                kind: kind as i32,
                name: span.name.clone(),
                start_time_unix_nano: span.start_ns,
                end_time_unix_nano: span.end_ns,
                status: native_status(span.status) as i32,
                error_type: span.error_type.clone(),
                status_message: span.status_message.clone(),
                input: span.input.clone(),
                output: span.output.clone(),
                attributes: native_attributes(kept_attributes(run, Some(span))),
                model,
                tool,
            });
        }
    }
    request
}

/// The feedback of `runs` as native scores (OTLP has no place for them: the demo sends them
/// through the native API after the traces).
pub fn feedback_scores(runs: &[GeneratedRun]) -> Vec<v1::Score> {
    runs.iter()
        .filter_map(|run| {
            run.feedback.map(|f| v1::Score {
                score_id: String::new(),
                trace_id: run.trace_id.clone(),
                span_id: String::new(),
                name: FEEDBACK_SCORE_NAME.to_string(),
                value: Some(v1::score::Value::Boolean(f.positive)),
                source: FEEDBACK_SOURCE.to_string(),
                comment: String::new(),
                time_unix_nano: f.time_ns,
            })
        })
        .collect()
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    any_kv(key, Value::StringValue(value.to_string()))
}

fn int_kv(key: &str, value: u64) -> KeyValue {
    any_kv(
        key,
        Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

fn array_kv(key: &str, values: &[String]) -> KeyValue {
    any_kv(
        key,
        Value::ArrayValue(ArrayValue {
            values: values
                .iter()
                .map(|v| AnyValue {
                    value: Some(Value::StringValue(v.clone())),
                })
                .collect(),
        }),
    )
}

fn any_kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn otlp_time(ns: i64) -> u64 {
    u64::try_from(ns).unwrap_or(0)
}

fn otlp_status(status: SpanStatus, message: &str) -> Option<Status> {
    let code = match status {
        SpanStatus::Unset => return None,
        SpanStatus::Ok => StatusCode::Ok,
        SpanStatus::Error => StatusCode::Error,
    };
    Some(Status {
        message: if status == SpanStatus::Error {
            message.to_string()
        } else {
            String::new()
        },
        code: code as i32,
    })
}

/// The runs as one OTLP export, the way an OpenTelemetry SDK instrumented with the GenAI
/// semantic conventions sends them: one resource per (agent, environment, release) with
/// `service.name`, `service.version` and `deployment.environment.name`; the run is the root span
/// (`invoke_agent`) carrying the run-level attributes; model, tool and retrieval spans are its
/// children. Feedback is not included (see [`feedback_scores`]).
pub fn to_otlp(runs: &[GeneratedRun]) -> ExportTraceServiceRequest {
    // (agent, environment, release) → the spans of that resource.
    type ResourceKey<'a> = (&'a str, &'a str, &'a str);
    let mut groups: Vec<(ResourceKey<'_>, Vec<Span>)> = Vec::new();
    for run in runs {
        let key = (
            run.agent_name.as_str(),
            run.environment.as_str(),
            run.release.as_str(),
        );
        let position = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, Vec::new()));
                groups.len() - 1
            }
        };
        let spans = &mut groups[position].1;
        spans.push(otlp_root(run));
        spans.extend(run.spans.iter().map(|s| otlp_child(run, s)));
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|((agent, environment, release), spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", agent),
                        string_kv("service.version", release),
                        string_kv("deployment.environment.name", environment),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "vigil-workload".to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn otlp_span(run: &GeneratedRun, span_id: &str, parent_span_id: &str, name: String) -> Span {
    Span {
        trace_id: hex::decode(&run.trace_id).unwrap_or_default(),
        span_id: hex::decode(span_id).unwrap_or_default(),
        parent_span_id: hex::decode(parent_span_id).unwrap_or_default(),
        name,
        ..Default::default()
    }
}

fn otlp_root(run: &GeneratedRun) -> Span {
    let mut span = otlp_span(
        run,
        &run.root_span_id,
        "",
        format!("{ROOT_OPERATION} {}", run.agent_name),
    );
    span.kind = OtlpSpanKind::Internal as i32;
    span.start_time_unix_nano = otlp_time(run.start_ns);
    span.end_time_unix_nano = otlp_time(run.end_ns);
    span.status = otlp_status(root_status(run), &run.error_message);
    let a = &mut span.attributes;
    a.push(string_kv("gen_ai.operation.name", ROOT_OPERATION));
    a.push(string_kv("gen_ai.agent.name", &run.agent_name));
    a.push(string_kv("gen_ai.agent.version", &run.agent_version));
    a.push(string_kv("session.id", &run.session_id));
    a.push(string_kv("user.id", &run.user_id));
    a.push(string_kv("vigil.task.type", &run.task_type));
    a.push(string_kv("vigil.run.outcome", run.outcome.as_str()));
    if !run.classification.is_empty() {
        a.push(array_kv("vigil.data.classification", &run.classification));
    }
    if !run.tags.is_empty() {
        a.push(array_kv("vigil.run.tags", &run.tags));
    }
    for (key, value) in [
        ("vigil.retention", &run.retention),
        ("vigil.audit.ref", &run.audit_ref),
        ("input.value", &run.input),
        ("output.value", &run.output),
    ] {
        if !value.is_empty() {
            a.push(string_kv(key, value));
        }
    }
    span
}

fn otlp_child(run: &GeneratedRun, s: &GeneratedSpan) -> Span {
    let mut span = otlp_span(run, &s.span_id, &s.parent_span_id, s.name.clone());
    span.start_time_unix_nano = otlp_time(s.start_ns);
    span.end_time_unix_nano = otlp_time(s.end_ns);
    span.status = otlp_status(s.status, &s.status_message);
    let a = &mut span.attributes;
    a.push(string_kv("gen_ai.operation.name", operation_name(&s.call)));
    match &s.call {
        SpanCall::Model(m) => {
            span.kind = OtlpSpanKind::Client as i32;
            a.push(string_kv("gen_ai.provider.name", &m.provider));
            a.push(string_kv("gen_ai.request.model", &m.model));
            if !m.model_version.is_empty() {
                a.push(string_kv("vigil.model.version", &m.model_version));
            }
            a.push(string_kv("vigil.prompt.id", &m.prompt_id));
            a.push(string_kv("vigil.prompt.version", &m.prompt_version));
            a.push(int_kv("gen_ai.usage.input_tokens", m.input_tokens));
            a.push(int_kv("gen_ai.usage.output_tokens", m.output_tokens));
            for (key, value) in [
                (
                    "gen_ai.usage.cache_read.input_tokens",
                    m.cached_input_tokens,
                ),
                (
                    "gen_ai.usage.cache_creation.input_tokens",
                    m.cache_write_tokens,
                ),
                ("gen_ai.usage.reasoning.output_tokens", m.reasoning_tokens),
            ] {
                if value > 0 {
                    a.push(int_kv(key, value));
                }
            }
            if !s.input.is_empty() {
                a.push(string_kv("gen_ai.input.messages", &s.input));
            }
            if !s.output.is_empty() {
                a.push(string_kv("gen_ai.output.messages", &s.output));
            }
        }
        SpanCall::Tool(t) => {
            span.kind = OtlpSpanKind::Internal as i32;
            a.push(string_kv("gen_ai.tool.name", &t.name));
            a.push(string_kv("gen_ai.tool.call.id", &t.call_id));
            a.push(string_kv("vigil.tool.version", &t.version));
            a.push(string_kv("gen_ai.tool.call.arguments", &t.arguments));
            if !s.output.is_empty() {
                a.push(string_kv("gen_ai.tool.call.result", &s.output));
            }
            if t.retry_count > 0 {
                a.push(int_kv("vigil.tool.retry_count", u64::from(t.retry_count)));
            }
        }
        SpanCall::Retrieval(r) => {
            span.kind = OtlpSpanKind::Client as i32;
            a.push(string_kv("gen_ai.data_source.id", &r.data_source));
            a.push(string_kv(
                "vigil.retrieval.document_ids",
                &r.document_ids.join(","),
            ));
            if !s.input.is_empty() {
                a.push(string_kv("input.value", &s.input));
            }
            if !s.output.is_empty() {
                a.push(string_kv("output.value", &s.output));
            }
        }
    }
    if !s.error_type.is_empty() {
        a.push(string_kv("error.type", &s.error_type));
    }
    span
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use vigil_collector::{native::decode_native, otlp::decode_otlp};
    use vigil_schemas::limits::Limits;

    use super::*;

    const START: i64 = 1_800_000_000 * 1_000_000_000;
    const DAY: i64 = 86_400 * 1_000_000_000;

    fn config(seed: u64, runs: usize) -> WorkloadConfig {
        WorkloadConfig::new(seed, runs, START, 7 * DAY)
    }

    fn is_hex(s: &str, len: usize) -> bool {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    }

    fn ratio(part: usize, whole: usize) -> f64 {
        part as f64 / whole.max(1) as f64
    }

    // ---- the random source ----

    #[test]
    fn splitmix_matches_the_reference_output() {
        // Vigna's reference implementation (splitmix64.c) from these seeds.
        let mut a = SplitMix64::new(0);
        assert_eq!(a.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(a.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut b = SplitMix64::new(1_234_567);
        assert_eq!(
            [b.next_u64(), b.next_u64(), b.next_u64()],
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn portable_exp_agrees_with_libm() {
        let mut x = -12.0;
        while x < 12.0 {
            let (ours, std) = (exp(x), x.exp());
            assert!(
                ((ours - std) / std).abs() < 1e-14,
                "exp({x}) = {ours}, libm says {std}"
            );
            x += 0.173;
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn distributions_have_the_intended_shape() {
        let mut rng = SplitMix64::new(99);
        let n = 100_000;
        let samples: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
        let mut logs: Vec<f64> = (0..n).map(|_| rng.log_normal(250.0, 0.9)).collect();
        logs.sort_by(f64::total_cmp);
        let median = logs[n / 2];
        assert!((median / 250.0 - 1.0).abs() < 0.03, "median {median}");
        let units: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let below: Vec<u64> = (0..n).map(|_| rng.below(7)).collect();
        assert!(below.iter().all(|&b| b < 7));
        for v in 0..7 {
            let share = ratio(below.iter().filter(|&&b| b == v).count(), n);
            assert!((share - 1.0 / 7.0).abs() < 0.01, "{v}: {share}");
        }
    }

    // ---- the workload ----

    #[test]
    fn the_same_seed_gives_the_same_runs_and_another_seed_others() {
        let a = generate(&config(7, 400));
        let b = generate(&config(7, 400));
        assert_eq!(a.len(), 400);
        assert_eq!(a, b);
        let c = generate(&config(8, 400));
        assert_eq!(c.len(), 400);
        assert_ne!(a, c);
        let ids_a: HashSet<&str> = a.iter().map(|r| r.trace_id.as_str()).collect();
        assert!(c.iter().all(|r| !ids_a.contains(r.trace_id.as_str())));
        assert!(generate(&config(7, 0)).is_empty());
    }

    #[test]
    fn ids_parents_and_times_are_consistent() {
        let cfg = config(11, 3_000);
        let runs = generate(&cfg);
        let mut trace_ids = HashSet::new();
        for pair in runs.windows(2) {
            assert!(
                pair[0].start_ns <= pair[1].start_ns,
                "runs are sorted by start"
            );
        }
        for run in &runs {
            assert!(is_hex(&run.trace_id, 32), "{}", run.trace_id);
            assert!(trace_ids.insert(run.trace_id.clone()), "trace id repeated");
            assert!(is_hex(&run.root_span_id, 16));
            // The window is a week, far longer than a session: everything is inside it.
            assert!(run.start_ns >= cfg.start_ns && run.end_ns <= cfg.start_ns + cfg.spread_ns);
            assert!(run.end_ns > run.start_ns);
            assert!(!run.spans.is_empty() || run.outcome == Outcome::Cancelled);
            let mut span_ids = HashSet::from([run.root_span_id.clone()]);
            let mut previous_end = run.start_ns;
            for span in &run.spans {
                assert!(is_hex(&span.span_id, 16));
                assert!(
                    span_ids.insert(span.span_id.clone()),
                    "span id repeated in a run"
                );
                assert_eq!(span.parent_span_id, run.root_span_id);
                assert!(
                    span.start_ns >= previous_end,
                    "steps run one after the other"
                );
                assert!(span.end_ns > span.start_ns);
                assert!(span.end_ns <= run.end_ns);
                previous_end = span.end_ns;
                match span.status {
                    SpanStatus::Error => {
                        assert!(!span.error_type.is_empty() && !span.status_message.is_empty())
                    }
                    _ => assert!(span.error_type.is_empty() && span.status_message.is_empty()),
                }
                match &span.call {
                    SpanCall::Model(m) => {
                        assert!(m.cached_input_tokens + m.cache_write_tokens <= m.input_tokens);
                        assert_eq!(m.prompt_version, run.prompt_version);
                        assert!(span.name.ends_with(&m.model));
                    }
                    SpanCall::Tool(t) => {
                        assert!(t.retry_count <= 2);
                        assert!(t.call_id.starts_with("call_"));
                        assert_eq!(span.input, t.arguments);
                        assert!(serde_json::from_str::<serde_json::Value>(&t.arguments).is_ok());
                    }
                    SpanCall::Retrieval(r) => {
                        assert!((3..=6).contains(&r.document_ids.len()));
                        assert_eq!(span.output, r.document_ids.join(","));
                    }
                }
            }
            let errs = matches!(
                run.outcome,
                Outcome::Failure | Outcome::Timeout | Outcome::Partial
            );
            assert_eq!(!run.error_message.is_empty(), errs, "{:?}", run.outcome);
            if let Some(f) = run.feedback {
                assert!(f.time_ns > run.end_ns);
            }
        }

        // No spread: every session starts at the start.
        let runs = generate(&WorkloadConfig::new(3, 200, START, 0));
        assert!(runs.iter().all(|r| r.start_ns >= START));
        assert!(
            runs.iter()
                .filter(|r| r.start_ns < START + 1_000_000_000)
                .count()
                > 20
        );
    }

    #[test]
    fn proportions_are_realistic() {
        let cfg = config(2026, 8_000);
        let runs = generate(&cfg);
        let n = runs.len();

        // Agents in proportion to their weights; every model, provider and tool in use.
        for agent in AGENTS {
            let share = ratio(
                runs.iter().filter(|r| r.agent_name == agent.name).count(),
                n,
            );
            assert!(
                (share - agent.weight).abs() < 0.06,
                "{}: {share}",
                agent.name
            );
        }
        let models: HashSet<&str> = runs
            .iter()
            .flat_map(|r| &r.spans)
            .filter_map(|s| match &s.call {
                SpanCall::Model(m) => Some(m.model.as_str()),
                _ => None,
            })
            .collect();
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "gemini-2.5-flash",
            "mistral-large",
            "meta-llama/Llama-3.3-70B-Instruct",
        ] {
            assert!(models.contains(model), "{model} never called");
        }
        let production = ratio(
            runs.iter()
                .filter(|r| r.environment == "production")
                .count(),
            n,
        );
        assert!(
            (production - 0.85).abs() < 0.05,
            "production share {production}"
        );

        // Tool failure rates match each tool's profile (loops excluded: they never fail).
        let mut calls: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
        for run in runs.iter().filter(|r| !r.looped) {
            for (span, tool) in run.tool_calls() {
                let entry = calls
                    .entry((tool.name.clone(), tool.version.clone()))
                    .or_default();
                entry.0 += 1;
                entry.1 += usize::from(span.status == SpanStatus::Error);
            }
        }
        for tool in [
            &WEB_SEARCH,
            &SQL_QUERY,
            &VECTOR_SEARCH,
            &SEND_EMAIL,
            &CODE_EXEC,
        ] {
            let mut expected = vec![(tool.version, tool.failure_rate)];
            if let Some(up) = &tool.upgrade {
                expected.push((up.version, tool.failure_rate * up.failure_factor));
            }
            for (version, rate) in expected {
                let (total, failed) = calls
                    .get(&(tool.name.to_string(), version.to_string()))
                    .copied()
                    .unwrap_or_default();
                assert!(total > 150, "{} {version}: only {total} calls", tool.name);
                let observed = ratio(failed, total);
                let tolerance = (4.0 * (rate * (1.0 - rate) / total as f64).sqrt()).max(0.01);
                assert!(
                    (observed - rate).abs() < tolerance,
                    "{} {version}: {observed:.4} failed, expected {rate}",
                    tool.name
                );
            }
        }

        // Outcomes: a completion rate a team would recognise, every outcome present.
        let count = |o: Outcome| runs.iter().filter(|r| r.outcome == o).count();
        let completion = ratio(count(Outcome::Success), n);
        assert!(
            (0.75..0.95).contains(&completion),
            "completion rate {completion}"
        );
        for o in Outcome::ALL {
            assert!(count(o) > 10, "{o:?}: {}", count(o));
        }

        // The bad prompt versions fail more, loop more, and only appear in the second half.
        let bad: Vec<&GeneratedRun> = runs.iter().filter(|r| r.bad_prompt).collect();
        let good: Vec<&GeneratedRun> = runs.iter().filter(|r| !r.bad_prompt).collect();
        assert!(bad.len() > n / 20, "{} bad-prompt runs", bad.len());
        let success = |rs: &[&GeneratedRun]| {
            ratio(
                rs.iter().filter(|r| r.outcome == Outcome::Success).count(),
                rs.len(),
            )
        };
        assert!(
            success(&bad) + 0.05 < success(&good),
            "bad {} good {}",
            success(&bad),
            success(&good)
        );
        let looped = |rs: &[&GeneratedRun]| ratio(rs.iter().filter(|r| r.looped).count(), rs.len());
        assert!(looped(&bad) > 2.0 * looped(&good));
        let halfway = cfg.start_ns + cfg.spread_ns / 2 - DAY / 24;
        assert!(bad.iter().all(|r| r.start_ns >= halfway));
        let bad_versions = bad_prompt_versions();
        for run in &runs {
            let listed =
                bad_versions.contains(&(run.prompt_id.as_str(), run.prompt_version.as_str()));
            assert_eq!(listed, run.bad_prompt);
        }

        // Loops: the same tool with the same arguments, three or more times in a row.
        let loops = runs.iter().filter(|r| r.looped).count();
        assert!((0.02..0.10).contains(&ratio(loops, n)), "{loops} loops");
        for run in &runs {
            let repeated = run.repeated_tool_calls();
            if run.looped {
                assert!(repeated >= 2, "a looped run with {repeated} repeated calls");
            } else {
                assert_eq!(repeated, 0, "repeated calls in a run that did not loop");
            }
        }

        // Silent partial failures: success, with a failed tool or model span.
        let silent = runs
            .iter()
            .filter(|r| r.is_silent_partial_failure())
            .count();
        assert!(
            (0.02..0.10).contains(&ratio(silent, n)),
            "{silent} silent partial failures"
        );
        assert!(runs.iter().any(|r| r.is_silent_partial_failure()
            && r.tool_calls().any(|(s, _)| s.status == SpanStatus::Error)));

        // Feedback on about a quarter of the runs, mostly positive when the run went well.
        let with_feedback: Vec<(&GeneratedRun, bool)> = runs
            .iter()
            .filter_map(|r| r.feedback.map(|f| (r, f.positive)))
            .collect();
        assert!((0.2..0.3).contains(&ratio(with_feedback.len(), n)));
        let positive = |pred: &dyn Fn(&GeneratedRun) -> bool| {
            let rs: Vec<bool> = with_feedback
                .iter()
                .filter(|(r, _)| pred(r))
                .map(|(_, p)| *p)
                .collect();
            ratio(rs.iter().filter(|p| **p).count(), rs.len())
        };
        let clean = positive(&|r| r.outcome == Outcome::Success && !r.is_silent_partial_failure());
        let failed = positive(&|r| matches!(r.outcome, Outcome::Failure | Outcome::Timeout));
        assert!(
            clean > failed + 0.4,
            "thumbs up: {clean} on success, {failed} on failure"
        );

        // Sessions: several runs of one user, one agent, one environment; fewer users than sessions.
        let mut sessions: HashMap<&str, Vec<&GeneratedRun>> = HashMap::new();
        for run in &runs {
            sessions.entry(&run.session_id).or_default().push(run);
        }
        let per_session = n as f64 / sessions.len() as f64;
        assert!(
            (1.8..3.5).contains(&per_session),
            "{per_session} runs per session"
        );
        for rs in sessions.values() {
            let first = rs[0];
            assert!(rs.iter().all(|r| r.user_id == first.user_id
                && r.agent_name == first.agent_name
                && r.environment == first.environment
                && r.prompt_version == first.prompt_version));
        }
        let users: HashSet<&str> = runs.iter().map(|r| r.user_id.as_str()).collect();
        assert!(users.len() <= n / 10 && users.len() < sessions.len());
        assert!(users.len() > n / 40, "{} users", users.len());

        // Token usage: cache reads, cache writes and reasoning all occur; vLLM reports no cache.
        let model_calls: Vec<&ModelCall> = runs
            .iter()
            .flat_map(|r| &r.spans)
            .filter_map(|s| match &s.call {
                SpanCall::Model(m) => Some(m),
                _ => None,
            })
            .collect();
        assert!(model_calls.iter().any(|m| m.cached_input_tokens > 0));
        assert!(model_calls.iter().any(|m| m.cache_write_tokens > 0));
        assert!(model_calls.iter().any(|m| m.reasoning_tokens > 0));
        assert!(
            model_calls
                .iter()
                .filter(|m| m.provider == "vllm")
                .all(|m| m.cached_input_tokens == 0 && m.reasoning_tokens == 0)
        );
    }

    // ---- the wire formats ----

    fn attrs(list: &[v1::Attribute]) -> Vec<(&str, &str)> {
        list.iter()
            .map(|a| (a.key.as_str(), a.value.as_str()))
            .collect()
    }

    #[test]
    fn native_conversion_preserves_everything() {
        let runs = generate(&config(5, 500));
        let request = to_native(&runs);
        assert_eq!(request.runs.len(), runs.len());
        assert_eq!(request.spans.len(), span_count(&runs));
        assert_eq!(
            request.scores.len(),
            runs.iter().filter(|r| r.feedback.is_some()).count()
        );

        let spans: HashMap<(&str, &str), &v1::Span> = request
            .spans
            .iter()
            .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
            .collect();
        assert_eq!(spans.len(), request.spans.len());
        for (run, sent) in runs.iter().zip(&request.runs) {
            assert_eq!(sent.trace_id, run.trace_id);
            assert_eq!(
                (
                    sent.session_id.as_str(),
                    sent.user_id.as_str(),
                    sent.task_type.as_str()
                ),
                (
                    run.session_id.as_str(),
                    run.user_id.as_str(),
                    run.task_type.as_str()
                )
            );
            assert_eq!(
                (sent.agent_name.as_str(), sent.agent_version.as_str()),
                (run.agent_name.as_str(), run.agent_version.as_str())
            );
            assert_eq!(
                (sent.environment.as_str(), sent.release.as_str()),
                (run.environment.as_str(), run.release.as_str())
            );
            assert_eq!(
                (sent.start_time_unix_nano, sent.end_time_unix_nano),
                (run.start_ns, run.end_ns)
            );
            let outcome = v1::Outcome::try_from(sent.outcome).map(|o| o.as_str_name());
            assert_eq!(
                outcome,
                Ok(format!("OUTCOME_{}", run.outcome.as_str().to_uppercase()).as_str())
            );
            assert_eq!(sent.error_message, run.error_message);
            assert_eq!(
                (&sent.tags, &sent.classification),
                (&run.tags, &run.classification)
            );
            assert_eq!(
                (&sent.retention, &sent.audit_ref),
                (&run.retention, &run.audit_ref)
            );

            let root = spans[&(run.trace_id.as_str(), run.root_span_id.as_str())];
            assert_eq!(root.kind, v1::SpanKind::Agent as i32);
            assert!(root.parent_span_id.is_empty());
            assert_eq!(
                (root.start_time_unix_nano, root.end_time_unix_nano),
                (run.start_ns, run.end_ns)
            );
            assert_eq!(
                attrs(&root.attributes),
                [
                    ("gen_ai.operation.name", "invoke_agent"),
                    ("service.name", run.agent_name.as_str())
                ]
            );

            for span in &run.spans {
                let s = spans[&(run.trace_id.as_str(), span.span_id.as_str())];
                assert_eq!(s.parent_span_id, span.parent_span_id);
                assert_eq!(
                    (s.start_time_unix_nano, s.end_time_unix_nano),
                    (span.start_ns, span.end_ns)
                );
                assert_eq!(s.name, span.name);
                assert_eq!(
                    (s.input.as_str(), s.output.as_str()),
                    (span.input.as_str(), span.output.as_str())
                );
                assert_eq!(
                    (s.error_type.as_str(), s.status_message.as_str()),
                    (span.error_type.as_str(), span.status_message.as_str())
                );
                let expected_status = if span.status == SpanStatus::Error {
                    v1::SpanStatus::Error
                } else {
                    v1::SpanStatus::Ok
                };
                assert_eq!(s.status, expected_status as i32);
                match &span.call {
                    SpanCall::Model(m) => {
                        assert_eq!(s.kind, v1::SpanKind::Model as i32);
                        let model = s.model.as_ref().map(|x| {
                            (
                                x.provider.as_str(),
                                x.model.as_str(),
                                x.model_version.as_str(),
                                x.prompt_id.as_str(),
                                x.prompt_version.as_str(),
                                [
                                    x.input_tokens,
                                    x.output_tokens,
                                    x.cached_input_tokens,
                                    x.cache_write_tokens,
                                    x.reasoning_tokens,
                                ],
                                x.cost_usd,
                            )
                        });
                        assert_eq!(
                            model,
                            Some((
                                m.provider.as_str(),
                                m.model.as_str(),
                                m.model_version.as_str(),
                                m.prompt_id.as_str(),
                                m.prompt_version.as_str(),
                                [
                                    m.input_tokens,
                                    m.output_tokens,
                                    m.cached_input_tokens,
                                    m.cache_write_tokens,
                                    m.reasoning_tokens
                                ],
                                None
                            ))
                        );
                        assert!(s.tool.is_none());
                    }
                    SpanCall::Tool(t) => {
                        assert_eq!(s.kind, v1::SpanKind::Tool as i32);
                        let tool = s.tool.as_ref().map(|x| {
                            (
                                x.name.as_str(),
                                x.version.as_str(),
                                x.call_id.as_str(),
                                x.arguments.as_str(),
                                x.retry_count,
                            )
                        });
                        assert_eq!(
                            tool,
                            Some((
                                t.name.as_str(),
                                t.version.as_str(),
                                t.call_id.as_str(),
                                t.arguments.as_str(),
                                t.retry_count
                            ))
                        );
                        assert!(s.model.is_none());
                    }
                    SpanCall::Retrieval(r) => {
                        assert_eq!(s.kind, v1::SpanKind::Retrieval as i32);
                        let docs = r.document_ids.join(",");
                        assert_eq!(
                            attrs(&s.attributes),
                            [
                                ("gen_ai.operation.name", "retrieval"),
                                ("gen_ai.data_source.id", r.data_source.as_str()),
                                ("vigil.retrieval.document_ids", docs.as_str()),
                                ("service.name", run.agent_name.as_str()),
                            ]
                        );
                    }
                }
            }
        }
        for score in &request.scores {
            let run = runs.iter().find(|r| r.trace_id == score.trace_id);
            let feedback = run.and_then(|r| r.feedback);
            assert_eq!(
                score.value,
                feedback.map(|f| v1::score::Value::Boolean(f.positive))
            );
            assert_eq!(Some(score.time_unix_nano), feedback.map(|f| f.time_ns));
            assert_eq!(
                (score.name.as_str(), score.source.as_str()),
                (FEEDBACK_SCORE_NAME, FEEDBACK_SOURCE)
            );
        }
    }

    /// An OTLP attribute value as the test reads it back.
    #[derive(Debug, Clone, PartialEq)]
    enum Read {
        Text(String),
        Int(i64),
        List(Vec<String>),
    }

    fn read_attributes(list: &[KeyValue]) -> HashMap<String, Read> {
        let mut out = HashMap::new();
        for kv in list {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Read::Text(s.clone()),
                Some(Value::IntValue(i)) => Read::Int(*i),
                Some(Value::ArrayValue(a)) => Read::List(
                    a.values
                        .iter()
                        .map(|v| match &v.value {
                            Some(Value::StringValue(s)) => s.clone(),
                            other => panic!("non-string array element {other:?}"),
                        })
                        .collect(),
                ),
                other => panic!("{}: unexpected value {other:?}", kv.key),
            };
            assert!(
                out.insert(kv.key.clone(), value).is_none(),
                "{} twice",
                kv.key
            );
        }
        out
    }

    fn text(s: &str) -> Option<Read> {
        Some(Read::Text(s.to_string()))
    }

    fn int(v: u64) -> Option<Read> {
        Some(Read::Int(v as i64))
    }

    #[test]
    fn otlp_conversion_preserves_everything() {
        let runs = generate(&config(6, 500));
        let by_trace: HashMap<Vec<u8>, &GeneratedRun> = runs
            .iter()
            .map(|r| (hex::decode(&r.trace_id).expect("hex"), r))
            .collect();
        let request = to_otlp(&runs);
        let mut seen = 0;
        let mut roots = HashSet::new();
        for rs in &request.resource_spans {
            let resource = read_attributes(&rs.resource.as_ref().expect("a resource").attributes);
            assert_eq!(rs.scope_spans.len(), 1);
            for span in &rs.scope_spans[0].spans {
                seen += 1;
                let run = by_trace[&span.trace_id];
                assert_eq!(resource.get("service.name").cloned(), text(&run.agent_name));
                assert_eq!(resource.get("service.version").cloned(), text(&run.release));
                assert_eq!(
                    resource.get("deployment.environment.name").cloned(),
                    text(&run.environment)
                );
                let a = read_attributes(&span.attributes);
                let get = |k: &str| a.get(k).cloned();
                let code = span.status.as_ref().map(|s| s.code);
                if span.parent_span_id.is_empty() {
                    assert!(roots.insert(run.trace_id.clone()), "two roots");
                    assert_eq!(hex::encode(&span.span_id), run.root_span_id);
                    assert_eq!(
                        (span.start_time_unix_nano, span.end_time_unix_nano),
                        (run.start_ns as u64, run.end_ns as u64)
                    );
                    assert_eq!(get("gen_ai.operation.name"), text("invoke_agent"));
                    assert_eq!(get("gen_ai.agent.name"), text(&run.agent_name));
                    assert_eq!(get("gen_ai.agent.version"), text(&run.agent_version));
                    assert_eq!(get("session.id"), text(&run.session_id));
                    assert_eq!(get("user.id"), text(&run.user_id));
                    assert_eq!(get("vigil.task.type"), text(&run.task_type));
                    assert_eq!(get("vigil.run.outcome"), text(run.outcome.as_str()));
                    assert_eq!(get("input.value"), text(&run.input));
                    assert_eq!(
                        get("output.value").unwrap_or(Read::Text(String::new())),
                        Read::Text(run.output.clone())
                    );
                    assert_eq!(get("vigil.run.tags"), Some(Read::List(run.tags.clone())));
                    assert_eq!(
                        get("vigil.data.classification"),
                        (!run.classification.is_empty())
                            .then(|| Read::List(run.classification.clone()))
                    );
                    assert_eq!(
                        get("vigil.retention"),
                        (!run.retention.is_empty()).then(|| Read::Text(run.retention.clone()))
                    );
                    assert_eq!(
                        get("vigil.audit.ref"),
                        (!run.audit_ref.is_empty()).then(|| Read::Text(run.audit_ref.clone()))
                    );
                    let expected = match run.outcome {
                        _ if !run.error_message.is_empty() => Some(StatusCode::Error as i32),
                        Outcome::Success => Some(StatusCode::Ok as i32),
                        _ => None,
                    };
                    assert_eq!(code, expected);
                    if !run.error_message.is_empty() {
                        assert_eq!(
                            span.status.as_ref().map(|s| s.message.as_str()),
                            Some(run.error_message.as_str())
                        );
                    }
                    continue;
                }
                assert_eq!(hex::encode(&span.parent_span_id), run.root_span_id);
                let id = hex::encode(&span.span_id);
                let g = run
                    .spans
                    .iter()
                    .find(|s| s.span_id == id)
                    .expect("a generated span");
                assert_eq!(span.name, g.name);
                assert_eq!(
                    (span.start_time_unix_nano, span.end_time_unix_nano),
                    (g.start_ns as u64, g.end_ns as u64)
                );
                let failed = g.status == SpanStatus::Error;
                assert_eq!(
                    code,
                    Some(if failed {
                        StatusCode::Error
                    } else {
                        StatusCode::Ok
                    } as i32)
                );
                assert_eq!(
                    get("error.type"),
                    failed.then(|| Read::Text(g.error_type.clone()))
                );
                for key in [
                    "session.id",
                    "user.id",
                    "vigil.run.outcome",
                    "gen_ai.agent.name",
                ] {
                    assert!(!a.contains_key(key), "{key} on a child span");
                }
                match &g.call {
                    SpanCall::Model(m) => {
                        assert_eq!(get("gen_ai.operation.name"), text("chat"));
                        assert_eq!(get("gen_ai.provider.name"), text(&m.provider));
                        assert_eq!(get("gen_ai.request.model"), text(&m.model));
                        assert_eq!(
                            get("vigil.model.version"),
                            (!m.model_version.is_empty())
                                .then(|| Read::Text(m.model_version.clone()))
                        );
                        assert_eq!(get("vigil.prompt.id"), text(&m.prompt_id));
                        assert_eq!(get("vigil.prompt.version"), text(&m.prompt_version));
                        assert_eq!(get("gen_ai.usage.input_tokens"), int(m.input_tokens));
                        assert_eq!(get("gen_ai.usage.output_tokens"), int(m.output_tokens));
                        let optional = |v: u64| (v > 0).then_some(Read::Int(v as i64));
                        assert_eq!(
                            get("gen_ai.usage.cache_read.input_tokens"),
                            optional(m.cached_input_tokens)
                        );
                        assert_eq!(
                            get("gen_ai.usage.cache_creation.input_tokens"),
                            optional(m.cache_write_tokens)
                        );
                        assert_eq!(
                            get("gen_ai.usage.reasoning.output_tokens"),
                            optional(m.reasoning_tokens)
                        );
                        assert_eq!(get("gen_ai.input.messages"), text(&g.input));
                        assert_eq!(span.kind, OtlpSpanKind::Client as i32);
                    }
                    SpanCall::Tool(t) => {
                        assert_eq!(get("gen_ai.operation.name"), text("execute_tool"));
                        assert_eq!(get("gen_ai.tool.name"), text(&t.name));
                        assert_eq!(get("gen_ai.tool.call.id"), text(&t.call_id));
                        assert_eq!(get("vigil.tool.version"), text(&t.version));
                        assert_eq!(get("gen_ai.tool.call.arguments"), text(&t.arguments));
                        assert_eq!(
                            get("gen_ai.tool.call.result"),
                            (!g.output.is_empty()).then(|| Read::Text(g.output.clone()))
                        );
                        assert_eq!(
                            get("vigil.tool.retry_count"),
                            (t.retry_count > 0).then(|| Read::Int(i64::from(t.retry_count)))
                        );
                    }
                    SpanCall::Retrieval(r) => {
                        assert_eq!(get("gen_ai.operation.name"), text("retrieval"));
                        assert_eq!(get("gen_ai.data_source.id"), text(&r.data_source));
                        assert_eq!(
                            get("vigil.retrieval.document_ids"),
                            text(&r.document_ids.join(","))
                        );
                        assert_eq!(get("input.value"), text(&g.input));
                    }
                }
            }
        }
        assert_eq!(seen, span_count(&runs));
        assert_eq!(roots.len(), runs.len());
        // One resource per (agent, environment, release).
        let keys: HashSet<(&str, &str, &str)> = runs
            .iter()
            .map(|r| {
                (
                    r.agent_name.as_str(),
                    r.environment.as_str(),
                    r.release.as_str(),
                )
            })
            .collect();
        assert_eq!(request.resource_spans.len(), keys.len());
    }

    /// The collector's own decoders read both wire formats into the same rows: the OTLP traffic
    /// uses the attribute names Vigil maps (docs/api.md#otlp-attribute-mapping), and the native
    /// traffic says the same thing.
    #[test]
    fn the_collector_reads_both_formats_alike() {
        let runs = generate(&config(9, 400));
        let now = runs.iter().map(|r| r.end_ns).max().unwrap_or(START) + 3_600 * 1_000_000_000;
        let limits = Limits::default();
        let native = decode_native(to_native(&runs), &limits, now);
        let otlp = decode_otlp(to_otlp(&runs), &limits, now);
        assert!(native.rejected.is_empty(), "{:?}", native.rejected.first());
        assert!(otlp.rejected.is_empty(), "{:?}", otlp.rejected.first());
        assert_eq!(native.runs.len(), runs.len());
        assert_eq!(native.spans.len(), span_count(&runs));
        assert_eq!(
            native.scores.len(),
            runs.iter().filter(|r| r.feedback.is_some()).count()
        );
        assert_eq!(otlp.spans.len(), span_count(&runs));

        let from_native: HashMap<(String, String), _> = native
            .spans
            .iter()
            .map(|s| ((s.trace_id.clone(), s.span_id.clone()), s))
            .collect();
        for draft in &otlp.spans {
            let key = (draft.row.trace_id.clone(), draft.row.span_id.clone());
            assert_eq!(Some(&&draft.row), from_native.get(&key), "span {key:?}");
        }
        let tool_rows = native
            .spans
            .iter()
            .filter(|s| !s.tool_name.is_empty())
            .count();
        assert_eq!(
            tool_rows,
            runs.iter().map(|r| r.tool_calls().count()).sum::<usize>()
        );

        let roots: HashMap<&str, _> = otlp
            .spans
            .iter()
            .filter(|d| d.row.parent_span_id.is_empty())
            .map(|d| (d.row.trace_id.as_str(), d))
            .collect();
        for (run, draft) in runs.iter().zip(&native.runs) {
            let row = &draft.row;
            assert_eq!(
                draft.raw_user_id.as_ref().map(|u| u.0.as_str()),
                Some(run.user_id.as_str())
            );
            let root = roots[run.trace_id.as_str()];
            let ctx = &root.run;
            assert_eq!(
                ctx.raw_user_id.as_ref().map(|u| u.0.as_str()),
                Some(run.user_id.as_str())
            );
            assert_eq!(ctx.outcome, Some(row.outcome));
            assert_eq!(row.outcome, run.outcome);
            assert_eq!(root.row.status_message, row.error_message);
            assert_eq!(
                (
                    &ctx.session_id,
                    &ctx.task_type,
                    &ctx.agent_name,
                    &ctx.agent_version,
                    &ctx.environment,
                    &ctx.release
                ),
                (
                    &row.session_id,
                    &row.task_type,
                    &row.agent_name,
                    &row.agent_version,
                    &row.environment,
                    &row.release
                )
            );
            assert_eq!(
                (&ctx.classification, &ctx.tags),
                (&row.classification, &row.tags)
            );
            assert_eq!(
                (&ctx.retention, &ctx.audit_ref),
                (&row.retention, &row.audit_ref)
            );
            assert_eq!(
                (&root.row.input, &root.row.output),
                (&row.input, &row.output)
            );
        }
    }
}
