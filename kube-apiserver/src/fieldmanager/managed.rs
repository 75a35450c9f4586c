//! `metadata.managedFields` decoded into per-manager field sets and encoded back, as
//! upstream's `managedfields/internal` does: one entry per manager identity (manager,
//! operation, subresource, and for updates the API version), sorted on output.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::path::{go_quote, write_go_string};
use super::set::Set;

/// How many `Update` entries an object keeps before the oldest are merged.
pub const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who owns a set: appliers are one identity whatever API version they used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    /// Empty for appliers.
    pub api_version: String,
    pub subresource: String,
}

impl ManagerId {
    pub fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> Self {
        ManagerId {
            manager: manager.to_string(),
            operation,
            api_version: if operation == Operation::Apply {
                String::new()
            } else {
                api_version.to_string()
            },
            subresource: subresource.to_string(),
        }
    }

    /// Upstream's manager identifier: the entry's identity fields as Go marshals them.
    /// Conflicts are grouped and sorted by it.
    pub fn identifier(&self) -> String {
        let mut out = String::from("{");
        out.push_str("\"manager\":");
        write_go_string(&self.manager, &mut out);
        let _ = write!(out, ",\"operation\":\"{}\"", self.operation.as_str());
        if !self.api_version.is_empty() {
            out.push_str(",\"apiVersion\":");
            write_go_string(&self.api_version, &mut out);
        }
        if !self.subresource.is_empty() {
            out.push_str(",\"subresource\":");
            write_go_string(&self.subresource, &mut out);
        }
        out.push('}');
        out
    }

    /// How conflict messages name a manager: `"kubectl" with subresource "status" using
    /// v1` (upstream's `printManager`).
    pub fn describe(&self) -> String {
        let mut s = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            let _ = write!(s, " with subresource {}", go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            let _ = write!(s, " using {}", self.api_version);
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: ManagerId,
    /// The version the set's paths are in.
    pub api_version: String,
    pub time: Option<String>,
    pub set: Set,
}

/// The decoded managedFields of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    pub entries: Vec<Entry>,
}

impl Managed {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: &ManagerId) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == *id)
    }

    pub fn get_mut(&mut self, id: &ManagerId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == *id)
    }

    pub fn remove(&mut self, id: &ManagerId) -> Option<Entry> {
        let i = self.entries.iter().position(|e| e.id == *id)?;
        Some(self.entries.remove(i))
    }

    /// Insert or replace the entry of `entry.id`.
    pub fn put(&mut self, entry: Entry) {
        match self.get_mut(&entry.id) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    pub fn drop_empty(&mut self) {
        self.entries.retain(|e| !e.set.is_empty());
    }

    /// Decode `metadata.managedFields` (absent or null is empty). Fails as upstream's
    /// `DecodeManagedFields` does on entries it cannot trust.
    pub fn decode(v: Option<&Value>) -> Result<Managed, String> {
        let items = match v {
            None | Some(Value::Null) => return Ok(Managed::default()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("managedFields must be a list, got {other}")),
        };
        let mut managed = Managed::default();
        for (i, item) in items.iter().enumerate() {
            let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
            let operation = match s("operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err("operation must be `Apply` or `Update`".into()),
            };
            let api_version = s("apiVersion");
            if api_version.is_empty() {
                return Err("apiVersion must not be empty".into());
            }
            match s("fieldsType") {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                other => {
                    return Err(format!(
                        "invalid fieldsType {other:?} in managed fields entry {i}"
                    ))
                }
            }
            let set = match item.get("fieldsV1") {
                None | Some(Value::Null) => Set::new(),
                Some(v) => Set::from_fields_v1(v)?,
            };
            let id = ManagerId::new(s("manager"), operation, api_version, s("subresource"));
            managed.put(Entry {
                id,
                api_version: api_version.to_string(),
                time: item.get("time").and_then(Value::as_str).map(str::to_string),
                set,
            });
        }
        Ok(managed)
    }

    /// The managedFields list, sorted as upstream sorts it: appliers first, then by time,
    /// manager, API version and subresource. `None` when there is nothing to record.
    pub fn encode(&self) -> Option<Value> {
        if self.entries.is_empty() {
            return None;
        }
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by(|p, q| {
            p.id.operation
                .cmp(&q.id.operation)
                .then_with(|| seconds(p.time.as_deref()).cmp(&seconds(q.time.as_deref())))
                .then_with(|| p.id.manager.cmp(&q.id.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.id.subresource.cmp(&q.id.subresource))
        });
        let list = entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), json!(e.id.manager));
                m.insert("operation".into(), json!(e.id.operation.as_str()));
                m.insert("apiVersion".into(), json!(e.api_version));
                if let Some(t) = &e.time {
                    m.insert("time".into(), json!(t));
                }
                m.insert("fieldsType".into(), json!("FieldsV1"));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !e.id.subresource.is_empty() {
                    m.insert("subresource".into(), json!(e.id.subresource));
                }
                Value::Object(m)
            })
            .collect();
        Some(Value::Array(list))
    }

    /// Merge the oldest `Update` entries into per-version `ancient-changes` entries until
    /// at most [`MAX_UPDATE_MANAGERS`] remain (upstream's `capManagersManager`).
    pub fn cap_update_managers(&mut self) {
        let mut updaters: Vec<usize> = (0..self.entries.len())
            .filter(|i| self.entries[*i].id.operation == Operation::Update)
            .collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        updaters.sort_by(|a, b| {
            let (p, q) = (&self.entries[*a], &self.entries[*b]);
            seconds(p.time.as_deref())
                .cmp(&seconds(q.time.as_deref()))
                .then_with(|| p.id.identifier().cmp(&q.id.identifier()))
        });
        let oldest: Vec<ManagerId> = updaters
            .iter()
            .map(|i| self.entries[*i].id.clone())
            .collect();
        let mut length = oldest.len();
        let mut first_of_version: Vec<(String, ManagerId)> = Vec::new();
        for id in oldest {
            if length <= MAX_UPDATE_MANAGERS {
                break;
            }
            let Some(entry) = self.get(&id).cloned() else {
                continue;
            };
            let version = entry.api_version.clone();
            let bucket = ManagerId::new(ANCIENT_CHANGES, Operation::Update, &version, "");
            let Some((_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
                first_of_version.push((version, id));
                continue;
            };
            if self.get(&bucket).is_none() {
                if let Some(mut moved) = self.remove(&first.clone()) {
                    moved.id = bucket.clone();
                    self.entries.push(moved);
                }
            }
            self.remove(&id);
            if let Some(b) = self.get_mut(&bucket) {
                b.set = entry.set.union(&b.set);
                b.time = entry.time.clone();
            }
            length -= 1;
        }
    }
}

fn seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0)
}

/// Whether a request's managedFields ask to clear the field: an empty list, or a list of
/// one empty entry (upstream's `isResetManagedFields`).
pub fn is_reset(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) if items.is_empty() => true,
        Some(Value::Array(items)) if items.len() == 1 => items[0].as_object().is_some_and(|m| {
            m.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fieldmanager::path::Path;

    fn entry(manager: &str, op: Operation, time: &str) -> Entry {
        let mut set = Set::new();
        set.insert(&Path::fields(&["data", manager]).0);
        Entry {
            id: ManagerId::new(manager, op, "v1", ""),
            api_version: "v1".into(),
            time: Some(time.into()),
            set,
        }
    }

    #[test]
    fn round_trips_and_sorts() {
        let v = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:b": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}, "subresource": "status"},
            {"manager": "z", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:z": {}}}},
        ]);
        let m = Managed::decode(Some(&v)).unwrap();
        let out = m.encode().unwrap();
        let managers: Vec<&str> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["z", "a", "b"]);
        assert_eq!(out[1]["subresource"], "status");
        assert_eq!(Managed::decode(Some(&out)).unwrap().encode().unwrap(), out);
    }

    #[test]
    fn rejects_untrustworthy_entries() {
        let bad = [
            json!([{"manager": "a", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
            json!([{"manager": "a", "operation": "Update", "fieldsType": "FieldsV1"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
            json!([{"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": 1}}]),
        ];
        for b in bad {
            assert!(Managed::decode(Some(&b)).is_err(), "{b}");
        }
    }

    #[test]
    fn identities() {
        let apply = ManagerId::new("kubectl", Operation::Apply, "v1", "");
        assert_eq!(
            apply.identifier(),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
        assert_eq!(apply.describe(), r#""kubectl""#);
        let upd = ManagerId::new(
            "kube-controller-manager",
            Operation::Update,
            "apps/v1",
            "status",
        );
        assert_eq!(
            upd.identifier(),
            r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#
        );
        assert_eq!(
            upd.describe(),
            r#""kube-controller-manager" with subresource "status" using apps/v1"#
        );
    }

    #[test]
    fn reset_forms() {
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(None));
        assert!(!is_reset(Some(&Value::Null)));
        assert!(!is_reset(Some(&json!([{"manager": "a"}]))));
    }

    #[test]
    fn caps_update_managers() {
        let mut m = Managed::default();
        for i in 0..12 {
            m.entries.push(entry(
                &format!("m{i:02}"),
                Operation::Update,
                &format!("2024-01-01T00:00:{i:02}Z"),
            ));
        }
        m.entries
            .push(entry("applier", Operation::Apply, "2024-01-01T00:00:00Z"));
        m.cap_update_managers();
        let updates: Vec<&Entry> = m
            .entries
            .iter()
            .filter(|e| e.id.operation == Operation::Update)
            .collect();
        assert_eq!(updates.len(), MAX_UPDATE_MANAGERS);
        let ancient = m
            .get(&ManagerId::new(
                ANCIENT_CHANGES,
                Operation::Update,
                "v1",
                "",
            ))
            .unwrap();
        assert_eq!(ancient.set.paths().len(), 3);
        assert_eq!(ancient.time.as_deref(), Some("2024-01-01T00:00:02Z"));
        assert!(m
            .get(&ManagerId::new("applier", Operation::Apply, "", ""))
            .is_some());
    }
}
