//! controllerrevisions: immutable snapshots of a workload's template, written by the
//! DaemonSet and StatefulSet controllers (`ValidateControllerRevision`).

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::apps::v1::ControllerRevision;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct ControllerRevisionStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Controller", "string", "Controller of the object"),
    Column::new(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

impl TypedStrategy for ControllerRevisionStrategy {
    type Object = ControllerRevision;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ControllerRevision>()
    }

    fn validate(&self, cr: &ControllerRevision) -> ErrorList {
        let mut errs = Vec::new();
        if cr.data.is_none() {
            errs.push(FieldError::required(
                &Path::new("data"),
                "data is mandatory",
            ));
        }
        errs.extend(validation::validate_nonnegative_field(
            cr.revision,
            &Path::new("revision"),
        ));
        errs
    }

    fn validate_update(&self, new: &ControllerRevision, old: &ControllerRevision) -> ErrorList {
        let mut errs = self.validate(new);
        let data = |cr: &ControllerRevision| cr.data.as_ref().map(|d| d.0.clone());
        errs.extend(validation::validate_immutable_field(
            &data(new),
            &data(old),
            data(new).unwrap_or(Value::Null),
            &Path::new("data"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, cr: &ControllerRevision, raw: &Value) -> Vec<Value> {
        let controller = cr
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| {
                // Upstream's formatResourceName with kind: `kind.group/name`, lower case.
                let group = r.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let kind = if group.is_empty() {
                    r.kind.clone()
                } else {
                    format!("{}.{group}", r.kind)
                };
                format!("{}/{}", kind.to_lowercase(), r.name)
            })
            .unwrap_or_else(|| "<none>".to_string());
        vec![
            Value::String(cr.metadata.name.clone().unwrap_or_default()),
            Value::String(controller),
            Value::from(cr.revision),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    #[test]
    fn validation_and_row() {
        let s = Typed::new(ControllerRevisionStrategy);
        let cr = s
            .decode(json!({
                "metadata": {"name": "web-5d8f", "namespace": "default", "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                    "uid": "u1", "controller": true
                }]},
                "data": {"spec": {"template": {}}},
                "revision": 2
            }))
            .unwrap();
        assert!(s.validate(&cr).is_empty());
        assert_eq!(
            s.row(&cr)[..3],
            [json!("web-5d8f"), json!("statefulset.apps/web"), json!(2)]
        );

        let no_data = s
            .decode(json!({"metadata": {"name": "x"}, "revision": -1}))
            .unwrap();
        let errs = s.validate(&no_data);
        assert_eq!(errs[0].field, "data");
        assert_eq!(errs[0].body(), "Required value: data is mandatory");
        assert_eq!(errs[1].field, "revision");

        let mut changed = cr.clone();
        changed["data"] = json!({"spec": {}});
        let errs = s.validate_update(&changed, &cr);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].body().ends_with("field is immutable"));
        assert_eq!(s.row(&no_data)[1], "<none>");
    }
}
