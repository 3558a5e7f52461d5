//! `POST /api/v1/audit/affected` bodies and their validation into an [`AffectedPlan`]; every
//! refusal names the request field and says why.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::{
    error::QueryError,
    metrics::{
        Field,
        request::{check_filters, time as request_time},
    },
    store::page_size,
};

/// The longest range one investigation may cover: ten years.
pub const MAX_AUDIT_RANGE_DAYS: i64 = 3660;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// An affected-session investigation as sent (docs/api.md#compliance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AffectedQuery {
    /// Runs that *started* in [`from`, `to`) are investigated.
    #[schema(format = DateTime)]
    pub from: String,
    /// After `from`; at most 3660 days later.
    #[schema(format = DateTime)]
    pub to: String,
    /// Field → accepted values (any of them); the metric filter fields, `model_version` and
    /// `tool_version` among them. A run is affected when its run fields match, it made a model
    /// call matching every model-call filter (model, model_version, provider, prompt_id,
    /// prompt_version) and a tool call matching every tool-call filter (tool, tool_version).
    #[serde(default)]
    #[schema(schema_with = crate::metrics::openapi::filters_schema)]
    pub filters: BTreeMap<String, Vec<String>>,
    /// Sessions per page; more than 1000 is served as 1000.
    #[serde(default)]
    #[schema(minimum = 1, default = 100)]
    pub limit: Option<usize>,
    /// A previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Which runs are affected, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedPlan {
    /// Runs that started in [`from_ns`, `to_ns`); `None` on both sides: any time.
    pub range: Option<(i64, i64)>,
    /// By field; each value list sorted and without repeats.
    pub filters: BTreeMap<Field, Vec<String>>,
}

/// One page of sessions: how many, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPageRequest {
    pub limit: usize,
    pub after: Option<SessionCursor>,
}

/// The position of the last session of a page: sessions are listed by first run, then session
/// id, then user hash (a total order over the items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub first_seen_ns: i64,
    pub session_id: String,
    pub user_hash: String,
}

impl AffectedQuery {
    /// Validates the request.
    pub fn plan(&self) -> Result<(AffectedPlan, SessionPageRequest), QueryError> {
        let from_ns = request_time("from", &self.from)?;
        let to_ns = request_time("to", &self.to)?;
        if to_ns <= from_ns {
            return Err(QueryError::invalid("to", "must be after from"));
        }
        // Both ends may be centuries apart: their distance need not fit in i64.
        if to_ns.abs_diff(from_ns) > (MAX_AUDIT_RANGE_DAYS * NANOS_PER_DAY).unsigned_abs() {
            return Err(QueryError::invalid(
                "to",
                format!("the range from..to may cover at most {MAX_AUDIT_RANGE_DAYS} days"),
            ));
        }
        let plan = AffectedPlan {
            range: Some((from_ns, to_ns)),
            filters: check_filters(&self.filters)?,
        };
        Ok((
            plan,
            SessionPageRequest::new(self.limit, self.cursor.as_deref())?,
        ))
    }
}

impl AffectedPlan {
    /// Every run of one (hashed) user, at any time.
    pub fn of_user(user_hash: &str) -> AffectedPlan {
        AffectedPlan {
            range: None,
            filters: BTreeMap::from([(Field::UserHash, vec![user_hash.to_string()])]),
        }
    }

    /// The same runs, started in [`from_ns`, `to_ns`) only.
    pub fn within(&self, from_ns: i64, to_ns: i64) -> AffectedPlan {
        let range = match self.range {
            Some((from, to)) => (from.max(from_ns), to.min(to_ns)),
            None => (from_ns, to_ns),
        };
        AffectedPlan {
            range: Some(range),
            filters: self.filters.clone(),
        }
    }
}

impl SessionPageRequest {
    /// A page of `limit` sessions (see [`page_size`]) after `cursor` (a `next_cursor`).
    pub fn new(limit: Option<usize>, cursor: Option<&str>) -> Result<Self, QueryError> {
        Ok(SessionPageRequest {
            limit: page_size(limit)?,
            after: cursor.map(SessionCursor::decode).transpose()?,
        })
    }
}

const CURSOR_VERSION: &str = "s1";

impl SessionCursor {
    pub fn encode(&self) -> String {
        let text = serde_json::json!([
            CURSOR_VERSION,
            self.first_seen_ns,
            self.session_id,
            self.user_hash
        ]);
        URL_SAFE_NO_PAD.encode(text.to_string())
    }

    pub fn decode(text: &str) -> Result<SessionCursor, QueryError> {
        let bad = || QueryError::invalid("cursor", "not a cursor this server issued");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let (version, first_seen_ns, session_id, user_hash): (String, i64, String, String) =
            serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if version != CURSOR_VERSION {
            return Err(bad());
        }
        Ok(SessionCursor {
            first_seen_ns,
            session_id,
            user_hash,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refusal(json: serde_json::Value) -> (Option<&'static str>, String) {
        let query: AffectedQuery = serde_json::from_value(json).unwrap();
        let err = query.plan().unwrap_err();
        (err.field(), err.to_string())
    }

    /// Found by the audit-query fuzz target: ends centuries apart overflowed the range check.
    #[test]
    fn a_range_wider_than_i64_nanoseconds_is_refused() {
        let (field, _) = refusal(
            serde_json::json!({"from": "1893-11-01T00:00:00Z", "to": "2226-11-24T00:00:00Z"}),
        );
        assert_eq!(field, Some("to"));
    }

    #[test]
    fn plans_and_refusals_name_the_field() {
        let query: AffectedQuery = serde_json::from_value(serde_json::json!({
            "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z",
            "filters": {"prompt_version": ["v7", "v7"], "tool_version": ["2"]},
            "limit": 5000,
        }))
        .unwrap();
        let (plan, page) = query.plan().unwrap();
        assert_eq!(plan.filters[&Field::PromptVersion], vec!["v7".to_string()]);
        assert_eq!(plan.filters[&Field::ToolVersion], vec!["2".to_string()]);
        assert_eq!(page.limit, crate::store::MAX_LIMIT);

        let base = |filters: serde_json::Value| serde_json::json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "filters": filters});
        assert_eq!(
            refusal(base(serde_json::json!({"colour": ["x"]}))).0,
            Some("filters")
        );
        assert_eq!(
            refusal(base(serde_json::json!({"model": []}))).0,
            Some("filters")
        );
        let (field, message) = refusal(base(serde_json::json!({"model": ["x".repeat(2000)]})));
        assert_eq!(field, Some("filters"));
        assert!(message.contains("1024"), "{message}");
        let (field, _) =
            refusal(serde_json::json!({"from": "yesterday", "to": "2026-11-02T00:00:00Z"}));
        assert_eq!(field, Some("from"));
        let (field, _) = refusal(
            serde_json::json!({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
        );
        assert_eq!(field, Some("to"));
        let (field, _) = refusal(
            serde_json::json!({"from": "2000-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
        );
        assert_eq!(field, Some("to"));
        let (field, _) = refusal(
            serde_json::json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z", "cursor": "nope"}),
        );
        assert_eq!(field, Some("cursor"));
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = SessionCursor {
            first_seen_ns: -3,
            session_id: "a\"b".into(),
            user_hash: "".into(),
        };
        assert_eq!(SessionCursor::decode(&cursor.encode()).unwrap(), cursor);
    }
}
