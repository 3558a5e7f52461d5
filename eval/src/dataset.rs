//! A dataset: named per project, a set of items (tasks), and its history of versions. Every
//! change (items added, changed or deleted) makes a new version; a version never changes, so an
//! experiment that pins one always reads the same items. Version 0 is the empty dataset as
//! created.
//!
//! Everything here is pure: [`crate::store`] makes it durable.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use vigil_schemas::limits::check_hex_id;

/// Longest dataset name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest item id, in bytes.
pub const MAX_ITEM_ID_BYTES: usize = 128;
/// Largest item (its JSON), in bytes.
pub const MAX_ITEM_BYTES: usize = 256 * 1024;
/// Most items added or changed by one change.
pub const MAX_ITEMS_PER_CHANGE: usize = 1000;
/// Most items one version of a dataset holds.
pub const MAX_ITEMS: usize = 100_000;

/// Why an evaluation change or read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The request is wrong; `field` names what (e.g. `items[3].input`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// What was not found, e.g. `no dataset named "x" in this project`.
    #[error("{0}")]
    NotFound(String),
    #[error("a dataset named {0:?} already exists in this project")]
    Exists(String),
}

impl EvalError {
    /// No dataset of this name in the project.
    pub fn no_dataset(name: &DatasetName) -> EvalError {
        EvalError::NotFound(format!(
            "no dataset named {:?} in this project",
            name.as_str()
        ))
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> EvalError {
        EvalError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A dataset's name: 1–64 letters, digits, `.`, `_` or `-`, starting with a letter or digit
/// (it appears in URLs and file names as it is).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

impl DatasetName {
    /// Checks `text` as the value of `field`.
    pub fn parse(field: &str, text: &str) -> Result<DatasetName, EvalError> {
        if !is_identifier(text, MAX_NAME_BYTES) {
            return Err(EvalError::invalid(
                field,
                format!(
                    "must be 1-{MAX_NAME_BYTES} letters, digits, '.', '_' or '-', starting with \
                     a letter or digit; got {:?}",
                    shorten(text)
                ),
            ));
        }
        Ok(DatasetName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = EvalError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        DatasetName::parse("name", &text)
    }
}

impl From<DatasetName> for String {
    fn from(name: DatasetName) -> String {
        name.0
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Letters, digits, `.`, `_`, `-`; a letter or digit first; 1..=max bytes.
fn is_identifier(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Checks a description's length.
pub fn check_description(description: &str) -> Result<(), EvalError> {
    if description.len() > MAX_DESCRIPTION_BYTES {
        return Err(EvalError::invalid(
            "description",
            format!(
                "{} bytes, the limit is {MAX_DESCRIPTION_BYTES}",
                description.len()
            ),
        ));
    }
    Ok(())
}

/// An item as sent: a task. `input` may be left out only with `source_trace_id`: the server then
/// takes the input (and, unless given, the expected output) from that production run.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// The item's id: 1-128 letters, digits, `.`, `_` or `-`. Sending an id again changes that
    /// item. When absent, derived from the input and expected output, so that importing the same
    /// items twice changes nothing.
    #[serde(default)]
    pub id: Option<String>,
    /// What the system under test is given: any JSON value but null.
    #[serde(default)]
    pub input: Option<Value>,
    /// What a good answer is, for evaluators to compare with; any JSON value.
    #[serde(default)]
    pub expected_output: Option<Value>,
    /// Free key-value metadata (e.g. the task's category, why it was added).
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// The production run the item came from.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{32}$")]
    pub source_trace_id: Option<String>,
    /// The span of that run the item came from.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{16}$")]
    pub source_span_id: Option<String>,
    /// Data classification labels, as on runs: the input and expected output of an item
    /// labelled `pii`, `phi`, `financial` or `confidential` are shown only to `audit` keys. An
    /// item taken from a run gets the run's labels.
    #[serde(default)]
    pub classification: Option<Vec<String>>,
}

/// Most classification labels of an item.
pub const MAX_LABELS: usize = 16;
/// Longest classification label, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// An item of a dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: String,
    pub input: Value,
    /// `null` when the item has none.
    pub expected_output: Value,
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classification: Vec<String>,
}

impl ItemInput {
    /// The item this input makes, checked as `field` (e.g. `items[3]`). `input` must be there by
    /// now (the server fills it from the source run first).
    pub fn into_item(self, field: &str) -> Result<Item, EvalError> {
        let input = match self.input {
            None | Some(Value::Null) => {
                return Err(EvalError::invalid(
                    format!("{field}.input"),
                    "required (any JSON value but null), unless source_trace_id names the run \
                     to take it from",
                ));
            }
            Some(input) => input,
        };
        let source_trace_id = self
            .source_trace_id
            .map(|id| hex_id(&format!("{field}.source_trace_id"), id, 32))
            .transpose()?;
        let source_span_id = self
            .source_span_id
            .map(|id| hex_id(&format!("{field}.source_span_id"), id, 16))
            .transpose()?;
        if source_span_id.is_some() && source_trace_id.is_none() {
            return Err(EvalError::invalid(
                format!("{field}.source_span_id"),
                "needs source_trace_id: a span is named within its run",
            ));
        }
        let classification = self.classification.unwrap_or_default();
        if classification.len() > MAX_LABELS {
            return Err(EvalError::invalid(
                format!("{field}.classification"),
                format!("{} labels, the limit is {MAX_LABELS}", classification.len()),
            ));
        }
        if let Some(i) = classification
            .iter()
            .position(|label| label.is_empty() || label.len() > MAX_LABEL_BYTES)
        {
            return Err(EvalError::invalid(
                format!("{field}.classification[{i}]"),
                format!("a label is 1-{MAX_LABEL_BYTES} bytes"),
            ));
        }
        let expected_output = self.expected_output.unwrap_or(Value::Null);
        let id = match self.id {
            Some(id) => {
                if !is_identifier(&id, MAX_ITEM_ID_BYTES) {
                    return Err(EvalError::invalid(
                        format!("{field}.id"),
                        format!(
                            "must be 1-{MAX_ITEM_ID_BYTES} letters, digits, '.', '_' or '-', \
                             starting with a letter or digit; got {:?}",
                            shorten(&id)
                        ),
                    ));
                }
                id
            }
            None => content_id(&input, &expected_output),
        };
        let item = Item {
            id,
            input,
            expected_output,
            metadata: self.metadata.unwrap_or_default(),
            source_trace_id,
            source_span_id,
            classification,
        };
        let bytes = serde_json::to_vec(&item).map_or(usize::MAX, |json| json.len());
        if bytes > MAX_ITEM_BYTES {
            return Err(EvalError::invalid(
                field,
                format!("{bytes} bytes of JSON, the limit is {MAX_ITEM_BYTES}"),
            ));
        }
        Ok(item)
    }
}

/// A lowercase hex id of `len` characters.
fn hex_id(field: &str, id: String, len: usize) -> Result<String, EvalError> {
    check_hex_id(field, &id, len).map_err(|e| EvalError::invalid(e.field, e.reason))?;
    Ok(id.to_ascii_lowercase())
}

/// The id of an item sent without one: from its content, so that the same item sent again is
/// the same item (32 hex characters of SHA-256 over the input and expected output as JSON).
fn content_id(input: &Value, expected_output: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(input.to_string().as_bytes());
    hash.update([0]);
    hash.update(expected_output.to_string().as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// One version of a dataset, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// 1, 2, …: each change makes the next.
    pub version: u32,
    /// When it was made (ns since the Unix epoch).
    pub created_at_ns: i64,
    /// The id of the key that made it.
    pub created_by: String,
    /// Items the version holds.
    pub items: usize,
    /// Items new in it.
    pub added: usize,
    /// Items it changed.
    pub updated: usize,
    /// Items it deleted.
    pub deleted: usize,
}

/// What one version changed: the items written (new or changed) and the ids deleted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VersionChange {
    pub upserts: Vec<Item>,
    pub deletes: Vec<String>,
}

/// A dataset as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DatasetSummary {
    #[schema(value_type = String)]
    pub name: DatasetName,
    pub description: String,
    pub created_at_ns: i64,
    pub created_by: String,
    /// The newest version; 0 until items are added.
    pub latest_version: u32,
    /// Items in the newest version.
    pub items: usize,
}

/// A dataset with its history.
#[derive(Debug, Clone)]
pub struct Dataset {
    summary: DatasetSummary,
    versions: Vec<(Version, VersionChange)>,
    /// The newest version's items, by id.
    current: BTreeMap<String, Item>,
}

impl Dataset {
    /// A new, empty dataset (version 0).
    pub fn new(name: DatasetName, description: String, at_ns: i64, by: String) -> Dataset {
        Dataset {
            summary: DatasetSummary {
                name,
                description,
                created_at_ns: at_ns,
                created_by: by,
                latest_version: 0,
                items: 0,
            },
            versions: Vec::new(),
            current: BTreeMap::new(),
        }
    }

    pub fn summary(&self) -> &DatasetSummary {
        &self.summary
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> impl Iterator<Item = &Version> {
        self.versions.iter().map(|(version, _)| version)
    }

    /// The next version, if `upserts` (checked as `items[i]`) and `deletes` change anything:
    /// an upsert equal to the item it replaces changes nothing; deleting an unknown id, or
    /// naming one id twice, is refused.
    pub fn next_version(
        &self,
        upserts: Vec<Item>,
        deletes: Vec<String>,
        at_ns: i64,
        by: &str,
    ) -> Result<Option<(Version, VersionChange)>, EvalError> {
        if upserts.len() > MAX_ITEMS_PER_CHANGE {
            return Err(EvalError::invalid(
                "items",
                format!(
                    "{} items, the limit per request is {MAX_ITEMS_PER_CHANGE}",
                    upserts.len()
                ),
            ));
        }
        let mut named = BTreeSet::new();
        let (mut added, mut updated) = (0, 0);
        let mut change = VersionChange::default();
        for (i, item) in upserts.into_iter().enumerate() {
            if !named.insert(item.id.clone()) {
                return Err(EvalError::invalid(
                    format!("items[{i}].id"),
                    format!("{:?} is named twice in this request", item.id),
                ));
            }
            match self.current.get(&item.id) {
                Some(old) if *old == item => continue,
                Some(_) => updated += 1,
                None => added += 1,
            }
            change.upserts.push(item);
        }
        for (i, id) in deletes.into_iter().enumerate() {
            if !self.current.contains_key(&id) {
                return Err(EvalError::invalid(
                    format!("deletes[{i}]"),
                    format!("no item {id:?} in the newest version"),
                ));
            }
            if !named.insert(id.clone()) {
                return Err(EvalError::invalid(
                    format!("deletes[{i}]"),
                    format!("{id:?} is named twice in this request"),
                ));
            }
            change.deletes.push(id);
        }
        if change.upserts.is_empty() && change.deletes.is_empty() {
            return Ok(None);
        }
        let items = self.current.len() + added - change.deletes.len();
        if items > MAX_ITEMS {
            return Err(EvalError::invalid(
                "items",
                format!("the dataset would hold {items} items, the limit is {MAX_ITEMS}"),
            ));
        }
        let version = Version {
            version: self.summary.latest_version + 1,
            created_at_ns: at_ns,
            created_by: by.to_string(),
            items,
            added,
            updated,
            deleted: change.deletes.len(),
        };
        Ok(Some((version, change)))
    }

    /// Makes `version` (from [`Dataset::next_version`], or read back from the log) the newest.
    pub fn apply(&mut self, version: Version, change: VersionChange) {
        for id in &change.deletes {
            self.current.remove(id);
        }
        for item in &change.upserts {
            self.current.insert(item.id.clone(), item.clone());
        }
        self.summary.latest_version = version.version;
        self.summary.items = self.current.len();
        self.versions.push((version, change));
    }

    /// The items of `version` (the newest when `None`), ordered by id.
    pub fn items(&self, version: Option<u32>) -> Result<(u32, Vec<Item>), EvalError> {
        let latest = self.summary.latest_version;
        let version = version.unwrap_or(latest);
        if version == latest {
            return Ok((version, self.current.values().cloned().collect()));
        }
        if version > latest {
            return Err(EvalError::invalid(
                "version",
                format!(
                    "dataset {} has versions 0 to {latest}, not {version}",
                    self.summary.name
                ),
            ));
        }
        let mut items: BTreeMap<&str, &Item> = BTreeMap::new();
        for (v, change) in &self.versions {
            if v.version > version {
                break;
            }
            for id in &change.deletes {
                items.remove(id.as_str());
            }
            for item in &change.upserts {
                items.insert(&item.id, item);
            }
        }
        Ok((version, items.into_values().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(id: &str, input: Value) -> Item {
        ItemInput {
            id: Some(id.into()),
            input: Some(input),
            ..Default::default()
        }
        .into_item("items[0]")
        .expect("valid item")
    }

    fn dataset() -> Dataset {
        Dataset::new(
            DatasetName::parse("name", "golden").expect("name"),
            String::new(),
            1,
            "k1".into(),
        )
    }

    fn change(d: &mut Dataset, upserts: Vec<Item>, deletes: &[&str]) -> Option<Version> {
        let deletes = deletes.iter().map(|s| s.to_string()).collect();
        let (version, change) = d.next_version(upserts, deletes, 2, "k1").expect("change")?;
        d.apply(version.clone(), change);
        Some(version)
    }

    #[test]
    fn every_change_makes_a_version_and_old_versions_keep_their_items() {
        let mut d = dataset();
        let v1 = change(&mut d, vec![item("a", json!(1)), item("b", json!(2))], &[]);
        assert_eq!(v1.map(|v| (v.version, v.items, v.added)), Some((1, 2, 2)));
        let v2 = change(
            &mut d,
            vec![item("a", json!(10)), item("c", json!(3))],
            &["b"],
        );
        assert_eq!(
            v2.map(|v| (v.version, v.items, v.added, v.updated, v.deleted)),
            Some((2, 2, 1, 1, 1))
        );
        let ids = |version| {
            let (_, items) = d.items(Some(version)).expect("version");
            items
                .into_iter()
                .map(|i| (i.id, i.input))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0), vec![]);
        assert_eq!(ids(1), vec![("a".into(), json!(1)), ("b".into(), json!(2))]);
        assert_eq!(
            ids(2),
            vec![("a".into(), json!(10)), ("c".into(), json!(3))]
        );
        assert_eq!(d.items(None).expect("newest").0, 2);
        assert!(matches!(
            d.items(Some(3)),
            Err(EvalError::Invalid { field, .. }) if field == "version"
        ));
    }

    #[test]
    fn sending_the_same_items_again_changes_nothing() {
        let mut d = dataset();
        let without_id = |input: Value| {
            ItemInput {
                input: Some(input),
                expected_output: Some(json!("ok")),
                ..Default::default()
            }
            .into_item("items[0]")
            .expect("item")
        };
        assert!(change(&mut d, vec![without_id(json!({"q": 1}))], &[]).is_some());
        assert_eq!(change(&mut d, vec![without_id(json!({"q": 1}))], &[]), None);
        assert_eq!(d.summary().latest_version, 1);
        // A different expected output is a different item.
        let other = ItemInput {
            input: Some(json!({"q": 1})),
            expected_output: Some(json!("other")),
            ..Default::default()
        }
        .into_item("items[0]")
        .expect("item");
        assert_ne!(other.id, without_id(json!({"q": 1})).id);
    }

    #[test]
    fn refusals_name_the_field() {
        let field_of = |r: Result<Item, EvalError>| match r {
            Err(EvalError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let input = |i: ItemInput| i.into_item("items[4]");
        assert_eq!(field_of(input(ItemInput::default())), "items[4].input");
        assert_eq!(
            field_of(input(ItemInput {
                input: Some(Value::Null),
                ..Default::default()
            })),
            "items[4].input"
        );
        assert_eq!(
            field_of(input(ItemInput {
                id: Some("../etc".into()),
                input: Some(json!(1)),
                ..Default::default()
            })),
            "items[4].id"
        );
        assert_eq!(
            field_of(input(ItemInput {
                input: Some(json!(1)),
                source_trace_id: Some("xyz".into()),
                ..Default::default()
            })),
            "items[4].source_trace_id"
        );
        assert_eq!(
            field_of(input(ItemInput {
                input: Some(json!(1)),
                source_span_id: Some("00f067aa0ba902b7".into()),
                ..Default::default()
            })),
            "items[4].source_span_id"
        );
        assert_eq!(
            field_of(input(ItemInput {
                input: Some(json!("x".repeat(MAX_ITEM_BYTES))),
                ..Default::default()
            })),
            "items[4]"
        );
        for bad in ["", "-x", "a b", "a/b", &"n".repeat(MAX_NAME_BYTES + 1)] {
            assert!(DatasetName::parse("name", bad).is_err(), "{bad:?}");
        }
        assert!(DatasetName::parse("name", "golden-set_v2.1").is_ok());

        let mut d = dataset();
        change(&mut d, vec![item("a", json!(1))], &[]);
        let refused = |upserts, deletes: &[&str]| match d.next_version(
            upserts,
            deletes.iter().map(|s| s.to_string()).collect(),
            3,
            "k",
        ) {
            Err(EvalError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(refused(vec![], &["zzz"]), "deletes[0]");
        assert_eq!(
            refused(vec![item("b", json!(1)), item("b", json!(2))], &[]),
            "items[1].id"
        );
        assert_eq!(refused(vec![item("a", json!(2))], &["a"]), "deletes[0]");
        let too_many = (0..=MAX_ITEMS_PER_CHANGE)
            .map(|i| item(&format!("i{i}"), json!(i)))
            .collect();
        assert_eq!(refused(too_many, &[]), "items");
    }
}
