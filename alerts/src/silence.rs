//! Silences, with Alertmanager's semantics: a silence mutes every alert of its project whose
//! labels match all its matchers while `starts_at <= now < ends_at`. A silence is never deleted
//! by the API, only expired (its end set to now), so what was muted stays on the record; expired
//! silences are dropped `EXPIRED_RETENTION` after their end. Kept in one JSON file, replaced
//! atomically on every change.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_access::files::write_private_file;
use vigil_schemas::time::{parse_duration_ns, parse_rfc3339, rfc3339};

use crate::labels::{Labels, Matcher, MatcherSpec, all_match, matchers};

/// How long an expired silence stays listed.
pub const EXPIRED_RETENTION_NS: i64 = 5 * 86_400 * 1_000_000_000;
/// The most matchers one silence may have.
pub const MAX_MATCHERS: usize = 32;
/// The longest comment.
pub const MAX_COMMENT_CHARS: usize = 4096;

/// A silence as sent to `POST /api/v1/silences`. Give `ends_at` or `duration`, not both.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SilenceInput)]
pub struct SilenceSpec {
    #[schema(min_items = 1, max_items = 32)]
    pub matchers: Vec<MatcherSpec>,
    /// RFC 3339; now when absent.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// RFC 3339. Give this or `duration`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// How long from `starts_at`, e.g. `30m` or `2h` (units ns, us, ms, s, m, h, d, w), as
    /// `amtool silence add --duration` takes it.
    #[serde(default)]
    #[schema(pattern = "^[0-9]+(ns|us|ms|s|m|h|d|w)$")]
    pub duration: Option<String>,
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub comment: String,
    /// Who asked for it (free text; the key id is recorded beside it).
    #[serde(default)]
    pub created_by: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

/// A silence as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Silence)]
pub struct SilenceView {
    pub id: String,
    pub matchers: Vec<MatcherSpec>,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    pub comment: String,
    pub created_by: String,
    /// The API key that created it.
    pub key_id: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub state: SilenceState,
}

/// A stored silence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub project: String,
    pub matchers: Vec<MatcherSpec>,
    pub starts_at_ns: i64,
    pub ends_at_ns: i64,
    pub comment: String,
    pub created_by: String,
    /// The API key that created it.
    pub key_id: String,
    pub updated_at_ns: i64,
}

impl Silence {
    pub fn state(&self, now_ns: i64) -> SilenceState {
        if now_ns < self.starts_at_ns {
            SilenceState::Pending
        } else if now_ns < self.ends_at_ns {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// The API's view: times in RFC 3339, and the state now.
    pub fn view(&self, now_ns: i64) -> SilenceView {
        SilenceView {
            id: self.id.clone(),
            matchers: self.matchers.clone(),
            starts_at: rfc3339(self.starts_at_ns),
            ends_at: rfc3339(self.ends_at_ns),
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
            key_id: self.key_id.clone(),
            updated_at: rfc3339(self.updated_at_ns),
            state: self.state(now_ns),
        }
    }
}

/// A silence refused: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SilenceError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> SilenceError {
    SilenceError {
        field,
        message: message.into(),
    }
}

/// Checks a silence as sent; the silence it makes starts at `now` unless told otherwise.
pub fn check(
    spec: SilenceSpec,
    project: &str,
    key_id: &str,
    now_ns: i64,
) -> Result<Silence, SilenceError> {
    if spec.matchers.is_empty() {
        return Err(invalid(
            "matchers",
            "a silence needs at least one matcher (it would mute everything)",
        ));
    }
    if spec.matchers.len() > MAX_MATCHERS {
        return Err(invalid("matchers", format!("at most {MAX_MATCHERS}")));
    }
    let compiled = matchers(&spec.matchers).map_err(|m| invalid("matchers", m))?;
    if compiled.iter().all(|m| m.matches(&Labels::new())) {
        return Err(invalid(
            "matchers",
            "every matcher matches an empty label set, so the silence would mute every alert",
        ));
    }
    let time = |field: &'static str, text: &str| {
        parse_rfc3339(text).ok_or_else(|| invalid(field, format!("{text:?} is not RFC 3339")))
    };
    let starts_at_ns = match &spec.starts_at {
        Some(text) => time("starts_at", text)?,
        None => now_ns,
    };
    let ends_at_ns = match (&spec.ends_at, &spec.duration) {
        (Some(text), None) => time("ends_at", text)?,
        (None, Some(text)) => {
            let length = parse_duration_ns(text)
                .filter(|&ns| ns > 0)
                .ok_or_else(|| {
                    invalid(
                        "duration",
                        format!("{text:?} is not a positive duration such as 30m or 2h"),
                    )
                })?;
            starts_at_ns.saturating_add(length)
        }
        (Some(_), Some(_)) => {
            return Err(invalid("duration", "give ends_at or duration, not both"));
        }
        (None, None) => return Err(invalid("ends_at", "give ends_at or duration")),
    };
    if ends_at_ns <= starts_at_ns {
        return Err(invalid("ends_at", "must be after starts_at"));
    }
    if ends_at_ns <= now_ns {
        return Err(invalid("ends_at", "is in the past"));
    }
    if spec.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(invalid(
            "comment",
            format!("at most {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(Silence {
        id: new_id(),
        project: project.to_string(),
        matchers: spec.matchers,
        starts_at_ns,
        ends_at_ns,
        comment: spec.comment,
        created_by: spec.created_by,
        key_id: key_id.to_string(),
        updated_at_ns: now_ns,
    })
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Every silence, with the matchers compiled, backed by one file (or, when the control state
/// is shared, by nothing: the engine keeps them in the control table).
pub struct Silences {
    path: Option<PathBuf>,
    silences: Vec<(Silence, Vec<Matcher>)>,
}

impl Silences {
    /// Silences kept by their caller.
    pub fn in_memory() -> Silences {
        Silences {
            path: None,
            silences: Vec::new(),
        }
    }

    /// Replaces every silence with `stored` (long-expired ones dropped).
    pub fn replace_all(&mut self, stored: Vec<Silence>, now_ns: i64) {
        self.silences = compiled(stored);
        self.silences
            .retain(|(s, _)| now_ns - s.ends_at_ns < EXPIRED_RETENTION_NS);
    }

    /// Loads the file, if there is one.
    pub fn open(path: PathBuf) -> std::io::Result<Silences> {
        let stored: Vec<Silence> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Silences {
            path: Some(path),
            silences: compiled(stored),
        })
    }

    /// Adds a silence, or replaces the one with its id (a shared silence read back from the
    /// control table before it was added here).
    pub fn add(&mut self, silence: Silence) -> std::io::Result<()> {
        let compiled = matchers(&silence.matchers).map_err(std::io::Error::other)?;
        self.silences.retain(|(s, _)| s.id != silence.id);
        self.silences.push((silence, compiled));
        self.save()
    }

    /// Expires a silence of `project` now; false when there is no such silence.
    pub fn expire(&mut self, project: &str, id: &str, now_ns: i64) -> std::io::Result<bool> {
        let Some((silence, _)) = self
            .silences
            .iter_mut()
            .find(|(s, _)| s.id == id && s.project == project)
        else {
            return Ok(false);
        };
        if silence.state(now_ns) != SilenceState::Expired {
            silence.ends_at_ns = now_ns;
            silence.starts_at_ns = silence.starts_at_ns.min(now_ns);
            silence.updated_at_ns = now_ns;
            self.save()?;
        }
        Ok(true)
    }

    pub fn get(&self, project: &str, id: &str) -> Option<&Silence> {
        self.silences
            .iter()
            .map(|(s, _)| s)
            .find(|s| s.id == id && s.project == project)
    }

    /// The project's silences, newest first, long-expired ones dropped.
    pub fn list(&self, project: &str) -> Vec<&Silence> {
        let mut list: Vec<&Silence> = self
            .silences
            .iter()
            .map(|(s, _)| s)
            .filter(|s| s.project == project)
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.updated_at_ns));
        list
    }

    /// The ids of the active silences that mute an alert with these labels.
    pub fn muting(&self, project: &str, labels: &Labels, now_ns: i64) -> Vec<String> {
        self.active_on(project, labels, now_ns)
            .map(|s| s.id.clone())
            .collect()
    }

    /// Whether an active silence mutes an alert with these labels.
    pub fn mutes(&self, project: &str, labels: &Labels, now_ns: i64) -> bool {
        self.active_on(project, labels, now_ns).next().is_some()
    }

    fn active_on<'a>(
        &'a self,
        project: &'a str,
        labels: &'a Labels,
        now_ns: i64,
    ) -> impl Iterator<Item = &'a Silence> + 'a {
        self.silences
            .iter()
            .filter(move |(s, m)| {
                s.project == project
                    && s.state(now_ns) == SilenceState::Active
                    && all_match(m, labels)
            })
            .map(|(s, _)| s)
    }

    /// Drops silences expired longer than the retention ago.
    pub fn collect_garbage(&mut self, now_ns: i64) -> std::io::Result<()> {
        let before = self.silences.len();
        self.silences
            .retain(|(s, _)| now_ns - s.ends_at_ns < EXPIRED_RETENTION_NS);
        if self.silences.len() != before {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let stored: Vec<&Silence> = self.silences.iter().map(|(s, _)| s).collect();
        let bytes = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
        write_private_file(path, &bytes)
    }
}

/// Silences with their matchers compiled; one whose matchers no longer compile is left out.
fn compiled(stored: Vec<Silence>) -> Vec<(Silence, Vec<Matcher>)> {
    stored
        .into_iter()
        .filter_map(|s| matchers(&s.matchers).ok().map(|m| (s, m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::MatchOp;

    const S: i64 = 1_000_000_000;

    fn spec(matchers: Vec<MatcherSpec>, ends_at: &str) -> SilenceSpec {
        SilenceSpec {
            matchers,
            starts_at: None,
            ends_at: Some(ends_at.into()),
            duration: None,
            comment: "deploy".into(),
            created_by: "oncall".into(),
        }
    }

    fn m(name: &str, op: MatchOp, value: &str) -> MatcherSpec {
        MatcherSpec {
            name: name.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn a_silence_mutes_matching_alerts_of_its_project_while_active() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silences.json");
        let mut silences = Silences::open(path.clone()).unwrap();
        let now = parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        let s = check(
            spec(
                vec![
                    m("alertname", MatchOp::Equal, "HighErrors"),
                    m("agent", MatchOp::Regex, "support-.*"),
                ],
                "2026-11-24T11:00:00Z",
            ),
            "default",
            "key1",
            now,
        )
        .unwrap();
        let id = s.id.clone();
        silences.add(s.clone()).unwrap();
        // Added again (read back from the shared table first): still one silence.
        silences.add(s).unwrap();
        assert_eq!(silences.list("default").len(), 1);
        let labels: Labels = [
            ("alertname".to_string(), "HighErrors".to_string()),
            ("agent".to_string(), "support-bot".to_string()),
        ]
        .into();
        assert_eq!(silences.muting("default", &labels, now), vec![id.clone()]);
        assert!(silences.muting("other", &labels, now).is_empty());
        assert!(
            silences
                .muting("default", &labels, now + 3600 * S)
                .is_empty()
        );
        let mut other = labels.clone();
        other.insert("agent".into(), "billing".into());
        assert!(silences.muting("default", &other, now).is_empty());

        // Survives a reopen; expiring ends it now and keeps it listed.
        let mut silences = Silences::open(path).unwrap();
        assert!(silences.expire("default", &id, now + S).unwrap());
        assert!(silences.muting("default", &labels, now + S).is_empty());
        assert_eq!(
            silences.get("default", &id).unwrap().state(now + S),
            SilenceState::Expired
        );
        assert!(!silences.expire("other", &id, now).unwrap());
        silences
            .collect_garbage(now + EXPIRED_RETENTION_NS + 2 * S)
            .unwrap();
        assert!(silences.list("default").is_empty());
    }

    #[test]
    fn bad_silences_are_refused_with_the_field() {
        let now = parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        let refuse = |spec: SilenceSpec| check(spec, "p", "k", now).unwrap_err().field;
        assert_eq!(refuse(spec(vec![], "2026-11-24T11:00:00Z")), "matchers");
        assert_eq!(
            refuse(spec(
                vec![m("a", MatchOp::Regex, ".*")],
                "2026-11-24T11:00:00Z"
            )),
            "matchers"
        );
        assert_eq!(
            refuse(spec(
                vec![m("a", MatchOp::Regex, "(")],
                "2026-11-24T11:00:00Z"
            )),
            "matchers"
        );
        assert_eq!(
            refuse(spec(vec![m("a", MatchOp::Equal, "x")], "tomorrow")),
            "ends_at"
        );
        assert_eq!(
            refuse(spec(
                vec![m("a", MatchOp::Equal, "x")],
                "2026-11-24T09:00:00Z"
            )),
            "ends_at"
        );
        let lasting = |ends_at: Option<&str>, duration: Option<&str>| SilenceSpec {
            ends_at: ends_at.map(Into::into),
            duration: duration.map(Into::into),
            ..spec(vec![m("a", MatchOp::Equal, "x")], "")
        };
        assert_eq!(refuse(lasting(None, None)), "ends_at");
        assert_eq!(refuse(lasting(None, Some("soon"))), "duration");
        assert_eq!(refuse(lasting(None, Some("0s"))), "duration");
        assert_eq!(
            refuse(lasting(Some("2026-11-24T11:00:00Z"), Some("1h"))),
            "duration"
        );
    }

    /// `duration` is counted from `starts_at` (now when absent), as amtool's `--duration`.
    #[test]
    fn a_duration_ends_the_silence_that_long_after_its_start() {
        let now = parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        let mut spec = spec(vec![m("a", MatchOp::Equal, "x")], "");
        spec.ends_at = None;
        spec.duration = Some("2h".into());
        let silence = check(spec.clone(), "p", "k", now).unwrap();
        assert_eq!(silence.starts_at_ns, now);
        assert_eq!(silence.ends_at_ns, now + 2 * 3600 * S);
        spec.starts_at = Some("2026-11-25T00:00:00Z".into());
        let later = check(spec, "p", "k", now).unwrap();
        assert_eq!(
            later.ends_at_ns,
            parse_rfc3339("2026-11-25T02:00:00Z").unwrap()
        );
    }
}
