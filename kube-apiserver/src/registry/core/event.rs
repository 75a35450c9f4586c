//! core/v1 events: written (and re-written, `AllowCreateOnUpdate`) by every component,
//! expiring after the event TTL (the store's concern), selectable by the object they are
//! about, and printed as `kubectl get events` prints them.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;

use crate::registry::table::{self, Column};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField};

/// Events expire an hour after their last write (upstream's `--event-ttl` default).
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct EventStrategy;

const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

const COLUMNS: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    Column::new("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    Column::new(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    Column::new("Object", "string", "The object that this event is about."),
    Column::new(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
    )
    .wide(),
    Column::new(
        "Source",
        "string",
        "The component reporting this event. Should be a short machine understandable string.",
    )
    .wide(),
    Column::new("Message", "string", "A human-readable description of the status of this operation."),
    Column::new(
        "First Seen",
        "string",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
    )
    .wide(),
    Column::new("Count", "string", "The number of times this event has occurred.").wide(),
    table::NAME.wide(),
];

const FIELDS: &[SelectableField] = &[
    SelectableField::new("involvedObject.kind"),
    SelectableField::new("involvedObject.namespace"),
    SelectableField::new("involvedObject.name"),
    SelectableField::new("involvedObject.uid"),
    SelectableField::new("involvedObject.apiVersion"),
    SelectableField::new("involvedObject.resourceVersion"),
    SelectableField::new("involvedObject.fieldPath"),
    SelectableField::new("reason"),
    SelectableField::new("reportingComponent"),
    SelectableField::new("source").at("source.component"),
    SelectableField::new("type"),
];

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Upstream's `legacyValidateEvent` for requests to core/v1: old-style events (no
/// `eventTime`) need only a matching namespace, new-style ones the reporting fields.
pub fn validate_event(e: &Event) -> ErrorList {
    let mut errs = Vec::new();
    let namespace = s(&e.metadata.namespace);
    let involved_ns = s(&e.involved_object.namespace);
    let ns_path = Path::new("involvedObject").child("namespace");
    let mismatch = || FieldError::invalid(&ns_path, involved_ns, "does not match event.namespace");
    if e.event_time.is_none() {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errs.push(mismatch());
            }
        } else if namespace != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller = s(&e.reporting_component);
        let controller_path = Path::new("reportingComponent");
        if controller.is_empty() {
            errs.push(FieldError::required(&controller_path, ""));
        }
        for m in validation::is_qualified_name(controller) {
            errs.push(FieldError::invalid(&controller_path, controller, m));
        }
        let too_long = |field: &str, limit: usize| {
            FieldError::invalid(
                &Path::new(field),
                "",
                format!("can have at most {limit} characters"),
            )
        };
        for (field, value, limit) in [
            (
                "reportingInstance",
                &e.reporting_instance,
                REPORTING_INSTANCE_MAX,
            ),
            ("action", &e.action, ACTION_MAX),
            ("reason", &e.reason, REASON_MAX),
        ] {
            if s(value).is_empty() {
                errs.push(FieldError::required(&Path::new(field), ""));
            }
            if s(value).len() > limit {
                errs.push(too_long(field, limit));
            }
        }
        if s(&e.message).len() > NOTE_MAX {
            errs.push(too_long("message", NOTE_MAX));
        }
    }
    for m in validation::is_dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid(&Path::new("namespace"), namespace, m));
    }
    errs
}

fn since(t: Option<jiff::Timestamp>) -> String {
    match t {
        Some(t) => apimachinery::duration::human_duration_seconds(
            jiff::Timestamp::now().as_second() - t.as_second(),
        ),
        None => "<unknown>".into(),
    }
}

/// The SOURCE cell: `component, host`, falling back to the reporting fields.
fn format_source(e: &Event) -> String {
    let source = e.source.clone().unwrap_or_default();
    let first = |a: &Option<String>, b: &Option<String>| {
        [a, b]
            .into_iter()
            .find_map(|v| v.clone().filter(|v| !v.is_empty()))
            .unwrap_or_default()
    };
    let component = first(&source.component, &e.reporting_component);
    let instance = first(&source.host, &e.reporting_instance);
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
            .ttl(EVENT_TTL)
    }

    fn validate(&self, e: &Event) -> ErrorList {
        validate_event(e)
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

    fn row(&self, e: &Event, _raw: &Value) -> Vec<Value> {
        let first_seen = match &e.first_timestamp {
            Some(t) => since(Some(t.0)),
            None => since(e.event_time.as_ref().map(|t| t.0)),
        };
        let mut last_seen = match &e.last_timestamp {
            Some(t) => since(Some(t.0)),
            None => first_seen.clone(),
        };
        let mut count = e.count.unwrap_or(0);
        if let Some(series) = &e.series {
            last_seen = since(series.last_observed_time.as_ref().map(|t| t.0));
            count = series.count.unwrap_or(0);
        } else if count == 0 {
            // Singleton events of the events.k8s.io API carry no count.
            count = 1;
        }
        let kind = s(&e.involved_object.kind).to_lowercase();
        let target = match s(&e.involved_object.name) {
            "" => kind,
            name => format!("{kind}/{name}"),
        };
        vec![
            last_seen.into(),
            s(&e.type_).into(),
            s(&e.reason).into(),
            target.into(),
            s(&e.involved_object.field_path).into(),
            format_source(e).into(),
            s(&e.message).trim().into(),
            first_seen.into(),
            Value::from(count),
            e.metadata.name.clone().unwrap_or_default().into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn st() -> Typed<EventStrategy> {
        Typed::new(EventStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn legacy_events_need_a_matching_namespace() {
        let ok = json!({"metadata": {"name": "e1", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns"}, "reason": "Started"});
        assert!(st().validate(&ok).is_empty());
        let bad = json!({"metadata": {"name": "e1", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "other"}});
        assert_eq!(
            messages(&st().validate(&bad)),
            vec!["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
        );
        let new_style = json!({"metadata": {"name": "e1", "namespace": "ns"}, "eventTime": "2024-01-01T00:00:00.000000Z",
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns"}});
        let errs = messages(&st().validate(&new_style));
        assert!(
            errs.contains(&"reportingComponent: Required value".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"action: Required value".to_string()),
            "{errs:?}"
        );
        assert!(st().allow_create_on_update());
    }

    #[test]
    fn rows_and_fields() {
        let five_min_ago = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(300))
            .unwrap()
            .to_string();
        let e = json!({"metadata": {"name": "web.1", "namespace": "ns"}, "type": "Warning", "reason": "BackOff",
            "message": "Back-off restarting failed container \n", "count": 4,
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns", "fieldPath": "spec.containers{app}"},
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": five_min_ago, "lastTimestamp": five_min_ago});
        let r = st().row(&e);
        assert_eq!(
            r,
            vec![
                json!("5m"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("kubelet, node-1"),
                json!("Back-off restarting failed container"),
                json!("5m"),
                json!(4),
                json!("web.1")
            ]
        );
        assert_eq!(
            st().columns()
                .iter()
                .filter(|c| c.priority == 0)
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            vec!["Last Seen", "Type", "Reason", "Object", "Message"]
        );
        let f = st()
            .selectable_fields()
            .iter()
            .find(|f| f.name == "source")
            .unwrap();
        assert_eq!(f.value(&e), "kubelet");
        let singleton = json!({"metadata": {"name": "x"}, "involvedObject": {"kind": "Node"},
            "eventTime": five_min_ago, "reportingComponent": "default-scheduler"});
        let r = st().row(&singleton);
        assert_eq!(
            (r[0].clone(), r[3].clone(), r[5].clone(), r[8].clone()),
            (
                json!("5m"),
                json!("node"),
                json!("default-scheduler"),
                json!(1)
            )
        );
    }
}
