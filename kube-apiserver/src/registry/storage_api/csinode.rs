//! csinodes: cluster-scoped, one per node (same name), listing the CSI drivers the
//! kubelet registered there with their node IDs and topology keys.

use std::collections::BTreeSet;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver};
use serde_json::Value;

use crate::registry::storage_api::{validate_csi_driver_name, validate_qualified_name};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct CsiNodeStrategy;

/// Upstream accepts node IDs up to 256 characters (`AllowLongNodeID`).
const MAX_NODE_ID: usize = 256;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

fn validate_driver(driver: &CSINodeDriver, seen: &mut BTreeSet<String>, path: &Path) -> ErrorList {
    let mut errs = validate_csi_driver_name(&driver.name, &path.child("name"));
    let node_id = path.child("nodeID");
    if driver.node_id.is_empty() {
        errs.push(FieldError::required(&node_id, ""));
    }
    if driver.node_id.len() > MAX_NODE_ID {
        errs.push(FieldError::invalid(
            &node_id,
            driver.node_id.as_str(),
            format!("must be {MAX_NODE_ID} characters or less"),
        ));
    }
    if let Some(count) = driver.allocatable.as_ref().and_then(|a| a.count) {
        errs.extend(validation::validate_nonnegative_field(
            i64::from(count),
            &path.child("allocatable").child("count"),
        ));
    }
    if !seen.insert(driver.name.clone()) {
        errs.push(FieldError::duplicate(
            &path.child("name"),
            driver.name.as_str(),
        ));
    }
    let mut keys = BTreeSet::new();
    for key in driver.topology_keys.iter().flatten() {
        if key.is_empty() {
            errs.push(FieldError::required(path, ""));
        }
        if !keys.insert(key.as_str()) {
            errs.push(FieldError::duplicate(path, key.as_str()));
        }
        errs.extend(validate_qualified_name(key, path));
    }
    errs
}

impl TypedStrategy for CsiNodeStrategy {
    type Object = CSINode;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<CSINode>()
    }

    fn validate(&self, node: &CSINode) -> ErrorList {
        let path = Path::new("spec").child("drivers");
        let mut seen = BTreeSet::new();
        node.spec
            .drivers
            .iter()
            .enumerate()
            .flat_map(|(i, d)| validate_driver(d, &mut seen, &path.index(i)))
            .collect()
    }

    fn validate_update(&self, new: &CSINode, old: &CSINode) -> ErrorList {
        let mut errs = self.validate(new);
        // A registered driver's entry only goes away or stays as it is.
        for old_driver in &old.spec.drivers {
            for new_driver in new
                .spec
                .drivers
                .iter()
                .filter(|d| d.name == old_driver.name)
            {
                if new_driver != old_driver {
                    errs.push(FieldError::invalid(
                        &Path::new("CSINodeDriver"),
                        serde_json::to_value(new_driver).unwrap_or(Value::Null),
                        validation::FIELD_IMMUTABLE_ERROR_MSG,
                    ));
                }
            }
        }
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, node: &CSINode, raw: &Value) -> Vec<Value> {
        vec![
            node.metadata.name.clone().unwrap_or_default().into(),
            Value::from(node.spec.drivers.len()),
            table::age(raw),
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

    fn node(drivers: Value) -> Value {
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSINode",
            "metadata": {"name": "node-1"},
            "spec": {"drivers": drivers},
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn drivers_are_checked() {
        let s = Typed::new(CsiNodeStrategy);
        let ok = s
            .decode(node(json!([{"name": "hostpath.csi.k8s.io", "nodeID": "node-1", "topologyKeys": ["topology.hostpath.csi/node"]}])))
            .unwrap();
        assert!(s.validate(&ok).is_empty());
        assert_eq!(s.row(&ok)[1], json!(1));
        let bad = s
            .decode(node(json!([
                {"name": "a.csi", "nodeID": ""},
                {"name": "a.csi", "nodeID": "n", "allocatable": {"count": -1}},
            ])))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&bad)),
            vec![
                "spec.drivers[0].nodeID: Required value",
                "spec.drivers[1].allocatable.count: Invalid value: -1: must be greater than or equal to 0",
                r#"spec.drivers[1].name: Duplicate value: "a.csi""#,
            ]
        );
    }

    #[test]
    fn registered_drivers_are_immutable() {
        let s = Typed::new(CsiNodeStrategy);
        let old = s
            .decode(node(json!([{"name": "a.csi", "nodeID": "n1"}])))
            .unwrap();
        let new = s
            .decode(node(json!([{"name": "a.csi", "nodeID": "n2"}])))
            .unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                r#"CSINodeDriver: Invalid value: {"name":"a.csi","nodeID":"n2"}: field is immutable"#
            ]
        );
        let removed = s.decode(node(json!([]))).unwrap();
        assert!(s.validate_update(&removed, &old).is_empty());
    }
}
