//! The opaque cursor of `list_runs`: the position (start time, trace id) of the last run of the
//! previous page. The session list uses it too, for (last seen, session id). Runs are listed by (start_time_ns desc, trace_id desc), a total order over
//! runs, so "strictly after the cursor" never skips nor repeats a run, even when many runs
//! share a start time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use vigil_schemas::RunRow;

use crate::error::QueryError;

const VERSION: &str = "r1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub start_time_ns: i64,
    pub trace_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{VERSION}:{}:{}",
            self.start_time_ns, self.trace_id
        ))
    }

    pub fn decode(text: &str) -> Result<Cursor, QueryError> {
        let bad = || QueryError::invalid("cursor", "not a cursor this server issued");
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ':');
        if parts.next() != Some(VERSION) {
            return Err(bad());
        }
        let start_time_ns = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let trace_id = parts.next().ok_or_else(bad)?.to_string();
        Ok(Cursor {
            start_time_ns,
            trace_id,
        })
    }

    /// The position of a run that started at `start_time_ns`.
    pub fn at(start_time_ns: i64, trace_id: &str) -> Cursor {
        Cursor {
            start_time_ns,
            trace_id: trace_id.to_string(),
        }
    }

    /// Whether a run comes after this position in listing order (or is at it, when
    /// `inclusive`).
    pub fn admits(&self, run: &RunRow, inclusive: bool) -> bool {
        let run = (run.start_time_ns, run.trace_id.as_str());
        let here = (self.start_time_ns, self.trace_id.as_str());
        run < here || (inclusive && run == here)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            start_time_ns: -5,
            trace_id: "ab:cd".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for garbage in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("r0:1:a"),
            &URL_SAFE_NO_PAD.encode("r1:x:a"),
        ] {
            let err = Cursor::decode(garbage).unwrap_err();
            assert_eq!(err.field(), Some("cursor"));
        }
    }
}
