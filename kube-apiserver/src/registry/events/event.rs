//! events.k8s.io/v1 events: the same objects as core v1 Events, in the same storage
//! (`<prefix>/events/<namespace>/<name>`), converted field by field as upstream's
//! `Convert_core_Event_To_v1_Event` and its inverse do. Upstream validates the internal
//! (core) form, so error paths name the core fields (`message`, `involvedObject`, ...),
//! and applies the strict rules of new-style events to requests of this API version.

use std::borrow::Cow;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::events::v1::Event;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::object;
use crate::registry::table::{self, Column};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField};

pub struct EventStrategy;

const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

/// Fields whose names differ between core v1 (first) and events.k8s.io/v1 (second); the
/// other fields (metadata, eventTime, series, related, action, reason, type,
/// reportingInstance) keep their names.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("reportingComponent", "reportingController"),
];

/// The stored (core v1) form of an events.k8s.io/v1 Event.
pub fn to_core(obj: Value) -> Value {
    let Value::Object(mut map) = obj else {
        return obj;
    };
    for (core, events) in RENAMED {
        move_key(&mut map, events, core);
    }
    // A core Event always has an involvedObject; readers of core events rely on it.
    map.entry("involvedObject")
        .or_insert_with(|| Value::Object(Map::new()));
    map.insert("apiVersion".into(), Value::String("v1".into()));
    map.insert("kind".into(), Value::String("Event".into()));
    Value::Object(map)
}

/// A stored core v1 Event as events.k8s.io/v1 serves it.
pub fn from_core(obj: Value) -> Value {
    let Value::Object(mut map) = obj else {
        return obj;
    };
    for (core, events) in RENAMED {
        move_key(&mut map, core, events);
    }
    map.insert(
        "apiVersion".into(),
        Value::String("events.k8s.io/v1".into()),
    );
    map.insert("kind".into(), Value::String("Event".into()));
    Value::Object(map)
}

fn move_key(map: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        map.insert(to.to_string(), v);
    }
}

const FIELDS: &[SelectableField] = &[
    SelectableField::new("regarding.kind"),
    SelectableField::new("regarding.namespace"),
    SelectableField::new("regarding.name"),
    SelectableField::new("regarding.uid"),
    SelectableField::new("regarding.apiVersion"),
    SelectableField::new("regarding.resourceVersion"),
    SelectableField::new("regarding.fieldPath"),
    SelectableField::new("reason"),
    SelectableField::new("reportingController"),
    SelectableField::new("type"),
];

/// Upstream prints events.k8s.io Events with the core Event printer (the internal type is
/// the core one), so these are the columns of `kubectl get events`.
const COLUMNS: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Column::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column::new("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    Column::new("Object", "string", "The object that this event is about."),
    Column::new("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
    Column::new("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
    Column::new("Message", "string", "A human-readable description of the status of this operation."),
    Column::new(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    )
    .wide(),
    Column::new("Count", "string", "The number of times this event has occurred.").wide(),
    Column::new("Name", "string", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
        .wide()
        .format("name"),
];

fn len_of(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, str::len)
}

fn at_most(path: &str, max: usize) -> FieldError {
    FieldError::invalid(
        &Path::new(path),
        "",
        format!("can have at most {max} characters"),
    )
}

/// Upstream's `legacyValidateEvent`, which every event passes whatever its API version.
fn legacy_validate(ev: &Event) -> ErrorList {
    let mut errs = Vec::new();
    let namespace = ev.metadata.namespace.as_deref().unwrap_or("");
    let regarding_ns = ev
        .regarding
        .as_ref()
        .and_then(|r| r.namespace.as_deref())
        .unwrap_or("");
    let ns_mismatch = || {
        FieldError::invalid(
            &Path::new("involvedObject").child("namespace"),
            regarding_ns,
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        let matches = if regarding_ns.is_empty() {
            namespace.is_empty() || namespace == "default"
        } else {
            namespace == regarding_ns
        };
        if !matches {
            errs.push(ns_mismatch());
        }
    } else {
        if regarding_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(ns_mismatch());
        }
        let controller = ev.reporting_controller.as_deref().unwrap_or("");
        if controller.is_empty() {
            errs.push(FieldError::required(&Path::new("reportingController"), ""));
        }
        for msg in validation::is_qualified_name(controller) {
            errs.push(FieldError::invalid(
                &Path::new("reportingController"),
                controller,
                msg,
            ));
        }
        if len_of(&ev.reporting_instance) == 0 {
            errs.push(FieldError::required(&Path::new("reportingInstance"), ""));
        }
        if len_of(&ev.reporting_instance) > REPORTING_INSTANCE_MAX {
            errs.push(at_most("reportingInstance", REPORTING_INSTANCE_MAX));
        }
        if len_of(&ev.action) == 0 {
            errs.push(FieldError::required(&Path::new("action"), ""));
        }
        if len_of(&ev.action) > ACTION_MAX {
            errs.push(at_most("action", ACTION_MAX));
        }
        if len_of(&ev.reason) == 0 {
            errs.push(FieldError::required(&Path::new("reason"), ""));
        }
        if len_of(&ev.reason) > REASON_MAX {
            errs.push(at_most("reason", REASON_MAX));
        }
        if len_of(&ev.note) > NOTE_MAX {
            errs.push(at_most("message", NOTE_MAX));
        }
    }
    for msg in validation::is_dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid(&Path::new("namespace"), namespace, msg));
    }
    errs
}

/// Upstream's `validateV1EventSeries`.
fn validate_series(ev: &Event) -> ErrorList {
    match &ev.series {
        Some(series) if series.count < 2 => vec![FieldError::invalid(
            &Path::new("series.count"),
            "",
            "should be at least 2",
        )],
        _ => Vec::new(),
    }
}

fn immutable<T: PartialEq + Serialize>(new: &T, old: &T, path: &str) -> ErrorList {
    let shown = serde_json::to_value(new).unwrap_or(Value::Null);
    validation::validate_immutable_field(new, old, shown, &Path::new(path))
}

fn source_is_set(ev: &Event) -> bool {
    ev.deprecated_source.as_ref().is_some_and(|s| {
        s.component.as_deref().is_some_and(|c| !c.is_empty())
            || s.host.as_deref().is_some_and(|h| !h.is_empty())
    })
}

/// `component, instance` as upstream's `formatEventSource`, falling back to the
/// reporting controller and instance of new-style events.
fn format_source(ev: &Event) -> String {
    let first = |a: Option<&str>, b: Option<&str>| {
        a.filter(|s| !s.is_empty())
            .or(b.filter(|s| !s.is_empty()))
            .unwrap_or("")
            .to_string()
    };
    let source = ev.deprecated_source.as_ref();
    let component = first(
        source.and_then(|s| s.component.as_deref()),
        ev.reporting_controller.as_deref(),
    );
    let instance = first(
        source.and_then(|s| s.host.as_deref()),
        ev.reporting_instance.as_deref(),
    );
    if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    }
}

impl TypedStrategy for EventStrategy {
    type Object = Event;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Event>()
            .short_names(&["ev"])
            .storage_path("events")
            .ttl(crate::registry::core::event::EVENT_TTL)
    }

    fn decode_storage_version(&self, obj: Value) -> Value {
        from_core(obj)
    }

    fn encode_storage_version<'a>(&self, obj: Cow<'a, Value>) -> Cow<'a, Value> {
        Cow::Owned(to_core(obj.into_owned()))
    }

    fn validate(&self, ev: &Event) -> ErrorList {
        let mut errs = legacy_validate(ev);
        errs.extend(validate_series(ev));
        if ev.event_time.is_none() {
            errs.push(FieldError::required(&Path::new("eventTime"), ""));
        }
        let ty = ev.type_.as_deref().unwrap_or("");
        if ty != "Normal" && ty != "Warning" {
            errs.push(FieldError::invalid(
                &Path::new("type"),
                "",
                format!("has invalid value: {ty}"),
            ));
        }
        for (set, path) in [
            (ev.deprecated_first_timestamp.is_some(), "firstTimestamp"),
            (ev.deprecated_last_timestamp.is_some(), "lastTimestamp"),
            (ev.deprecated_count.unwrap_or(0) != 0, "count"),
            (source_is_set(ev), "source"),
        ] {
            if set {
                errs.push(FieldError::invalid(
                    &Path::new(path),
                    "",
                    "needs to be unset",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Event, old: &Event) -> ErrorList {
        let mut errs = legacy_validate(new);
        if new.series != old.series {
            errs.extend(validate_series(new));
        }
        let source = |e: &Event| e.deprecated_source.clone().unwrap_or_default();
        errs.extend(immutable(&new.regarding, &old.regarding, "involvedObject"));
        errs.extend(immutable(&new.reason, &old.reason, "reason"));
        errs.extend(immutable(&new.note, &old.note, "message"));
        errs.extend(immutable(&source(new), &source(old), "source"));
        errs.extend(immutable(
            &new.deprecated_first_timestamp,
            &old.deprecated_first_timestamp,
            "firstTimestamp",
        ));
        errs.extend(immutable(
            &new.deprecated_last_timestamp,
            &old.deprecated_last_timestamp,
            "lastTimestamp",
        ));
        errs.extend(immutable(
            &new.deprecated_count.unwrap_or(0),
            &old.deprecated_count.unwrap_or(0),
            "count",
        ));
        errs.extend(immutable(&new.type_, &old.type_, "type"));
        errs.extend(immutable(&new.event_time, &old.event_time, "eventTime"));
        errs.extend(immutable(&new.action, &old.action, "action"));
        errs.extend(immutable(&new.related, &old.related, "related"));
        errs.extend(immutable(
            &new.reporting_controller,
            &old.reporting_controller,
            "reportingController",
        ));
        errs.extend(immutable(
            &new.reporting_instance,
            &old.reporting_instance,
            "reportingInstance",
        ));
        errs
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, ev: &Event, raw: &Value) -> Vec<Value> {
        let first_seen = match object::path_str(raw, "deprecatedFirstTimestamp") {
            Some(t) => table::since(Some(t)),
            None => table::since(object::path_str(raw, "eventTime")),
        };
        let mut last_seen = match object::path_str(raw, "deprecatedLastTimestamp") {
            Some(t) => table::since(Some(t)),
            None => first_seen.clone(),
        };
        let mut count = ev.deprecated_count.unwrap_or(0);
        if let Some(series) = &ev.series {
            last_seen = table::since(object::path_str(raw, "series.lastObservedTime"));
            count = series.count;
        } else if count == 0 {
            // Singleton events of the new API carry no count.
            count = 1;
        }
        let regarding = ev.regarding.clone().unwrap_or_default();
        let kind = regarding.kind.unwrap_or_default().to_lowercase();
        let target = match regarding.name.filter(|n| !n.is_empty()) {
            Some(name) => format!("{kind}/{name}"),
            None => kind,
        };
        vec![
            last_seen.into(),
            ev.type_.clone().unwrap_or_default().into(),
            ev.reason.clone().unwrap_or_default().into(),
            target.into(),
            regarding.field_path.unwrap_or_default().into(),
            format_source(ev).into(),
            ev.note.as_deref().unwrap_or("").trim().into(),
            first_seen.into(),
            Value::from(count),
            ev.metadata.name.clone().unwrap_or_default().into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn strategy() -> Typed<EventStrategy> {
        Typed::new(EventStrategy)
    }

    fn new_style() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "eventTime": "2024-05-01T10:00:00.000000Z",
            "reportingController": "example.com/controller",
            "reportingInstance": "controller-1",
            "action": "Scheduling",
            "reason": "Scheduled",
            "type": "Normal",
            "note": "assigned default/web to node-1",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "apiVersion": "v1"},
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn conversion_round_trips_through_the_core_form() {
        let core = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "message": "Pulling image",
            "reason": "Pulling",
            "source": {"component": "kubelet", "host": "node-1"},
            "count": 3,
            "firstTimestamp": "2024-05-01T10:00:00Z",
            "lastTimestamp": "2024-05-01T10:05:00Z",
            "reportingComponent": "kubelet",
            "reportingInstance": "node-1",
            "type": "Normal",
        });
        let events = from_core(core.clone());
        assert_eq!(events["apiVersion"], json!("events.k8s.io/v1"));
        assert_eq!(events["regarding"]["name"], json!("web"));
        assert_eq!(events["note"], json!("Pulling image"));
        assert_eq!(events["deprecatedSource"]["host"], json!("node-1"));
        assert_eq!(events["deprecatedCount"], json!(3));
        assert_eq!(
            events["deprecatedFirstTimestamp"],
            json!("2024-05-01T10:00:00Z")
        );
        assert_eq!(
            events["deprecatedLastTimestamp"],
            json!("2024-05-01T10:05:00Z")
        );
        assert_eq!(events["reportingController"], json!("kubelet"));
        assert!(events.get("involvedObject").is_none() && events.get("message").is_none());
        // The typed decoder accepts the converted form, and the inverse gives back the core one.
        let s = strategy();
        let decoded = s.decode(events.clone()).unwrap();
        assert_eq!(to_core(decoded), core);
    }

    #[test]
    fn stored_form_is_core() {
        let s = strategy();
        let obj = s.decode(new_style()).unwrap();
        let stored = s.encode_storage_version(Cow::Owned(obj)).into_owned();
        assert_eq!(stored["apiVersion"], json!("v1"));
        assert_eq!(stored["involvedObject"]["name"], json!("web"));
        assert_eq!(stored["message"], json!("assigned default/web to node-1"));
        assert_eq!(
            stored["reportingComponent"],
            json!("example.com/controller")
        );
        assert!(stored.get("regarding").is_none());
        let back = s.decode_storage_version(stored);
        assert_eq!(back, s.decode(new_style()).unwrap());
    }

    #[test]
    fn new_style_event_passes() {
        let s = strategy();
        let obj = s.decode(new_style()).unwrap();
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
    }

    #[test]
    fn new_style_fields_are_required() {
        let s = strategy();
        let mut ev = new_style();
        for k in [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
        ] {
            ev.as_object_mut().unwrap().remove(k);
        }
        ev["type"] = json!("Bad");
        let obj = s.decode(ev).unwrap();
        let msgs = messages(&s.validate(&obj));
        assert_eq!(msgs[0], "reportingController: Required value");
        assert!(msgs.contains(&"reportingInstance: Required value".to_string()));
        assert!(msgs.contains(&"action: Required value".to_string()));
        assert!(msgs.contains(&"reason: Required value".to_string()));
        assert!(msgs.contains(&r#"type: Invalid value: "": has invalid value: Bad"#.to_string()));
    }

    #[test]
    fn deprecated_fields_must_be_unset_and_event_time_set() {
        let s = strategy();
        let mut ev = new_style();
        ev.as_object_mut().unwrap().remove("eventTime");
        ev["deprecatedCount"] = json!(2);
        ev["deprecatedSource"] = json!({"component": "kubelet"});
        ev["series"] = json!({"count": 1, "lastObservedTime": "2024-05-01T10:00:00.000000Z"});
        let obj = s.decode(ev).unwrap();
        let msgs = messages(&s.validate(&obj));
        assert!(
            msgs.contains(&r#"series.count: Invalid value: "": should be at least 2"#.to_string())
        );
        assert!(msgs.contains(&"eventTime: Required value".to_string()));
        assert!(msgs.contains(&r#"count: Invalid value: "": needs to be unset"#.to_string()));
        assert!(msgs.contains(&r#"source: Invalid value: "": needs to be unset"#.to_string()));
    }

    #[test]
    fn namespace_must_match_the_regarded_object() {
        let s = strategy();
        // New-style events about cluster-scoped objects live in default or kube-system.
        let mut ev = new_style();
        ev["metadata"]["namespace"] = json!("other");
        ev["regarding"] = json!({"kind": "Node", "name": "node-1"});
        let obj = s.decode(ev).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![r#"involvedObject.namespace: Invalid value: "": does not match event.namespace"#]
        );
        // Old-style events (no eventTime) must be in their object's namespace.
        let old_style = s
            .decode(from_core(json!({
                "metadata": {"name": "x", "namespace": "other"},
                "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            })))
            .unwrap();
        assert_eq!(
            messages(&legacy_validate(
                &serde_json::from_value::<Event>(old_style).unwrap()
            )),
            vec![
                r#"involvedObject.namespace: Invalid value: "default": does not match event.namespace"#
            ]
        );
    }

    #[test]
    fn updates_may_only_move_the_series() {
        let s = strategy();
        let old = s.decode(new_style()).unwrap();
        let mut new = new_style();
        new["series"] = json!({"count": 2, "lastObservedTime": "2024-05-01T10:01:00.000000Z"});
        let new_ok = s.decode(new.clone()).unwrap();
        assert!(s.validate_update(&new_ok, &old).is_empty());
        new["note"] = json!("changed");
        let new_bad = s.decode(new).unwrap();
        assert_eq!(
            messages(&s.validate_update(&new_bad, &old)),
            vec![r#"message: Invalid value: "changed": field is immutable"#]
        );
    }

    #[test]
    fn field_selectors_use_events_names() {
        let s = strategy();
        let obj = s.decode(new_style()).unwrap();
        let value = |name: &str| {
            s.selectable_fields()
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.value(&obj))
        };
        assert_eq!(value("regarding.name").as_deref(), Some("web"));
        assert_eq!(
            value("reportingController").as_deref(),
            Some("example.com/controller")
        );
        assert_eq!(value("involvedObject.name"), None);
    }

    #[test]
    fn row_prints_like_core_events() {
        let s = strategy();
        let obj = s.decode(new_style()).unwrap();
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(row[1], json!("Normal"));
        assert_eq!(row[2], json!("Scheduled"));
        assert_eq!(row[3], json!("pod/web"));
        assert_eq!(row[5], json!("example.com/controller, controller-1"));
        assert_eq!(row[6], json!("assigned default/web to node-1"));
        assert_eq!(row[8], json!(1));
        assert_eq!(row[9], json!("web.17a"));
        assert_eq!(row[0], row[7]);
        let old_style = s
            .decode(from_core(json!({
                "metadata": {"name": "x", "namespace": "default"},
                "involvedObject": {"kind": "Node"},
                "source": {"component": "kubelet"},
                "count": 4,
                "message": " hi \n",
            })))
            .unwrap();
        let row = s.row(&old_style);
        assert_eq!(row[0], json!("<unknown>"));
        assert_eq!(row[3], json!("node"));
        assert_eq!(row[5], json!("kubelet"));
        assert_eq!(row[6], json!("hi"));
        assert_eq!(row[8], json!(4));
    }
}
