//! clusterrolebindings: grant a ClusterRole cluster-wide. Service account subjects must
//! name their namespace; the roleRef cannot change once set.

use apimachinery::field::ErrorList;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use serde_json::Value;

use crate::registry::rbac::{
    binding_columns, default_binding, subject_cells, validate_role_ref, validate_role_ref_update,
    validate_subjects,
};
use crate::registry::table::{self, Column};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct ClusterRoleBindingStrategy;

const COLUMNS: &[Column] = binding_columns!("clusterRoleBinding");

impl TypedStrategy for ClusterRoleBindingStrategy {
    type Object = ClusterRoleBinding;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ClusterRoleBinding>()
            .name_validator(apimachinery::validation::NameValidator::PathSegment)
    }

    fn default(&self, crb: &mut ClusterRoleBinding) {
        default_binding(&mut crb.role_ref, crb.subjects.as_mut());
    }

    fn validate(&self, crb: &ClusterRoleBinding) -> ErrorList {
        let mut errs = validate_role_ref(&crb.role_ref, &["ClusterRole"]);
        errs.extend(validate_subjects(crb.subjects.as_ref(), false));
        errs
    }

    fn validate_update(&self, new: &ClusterRoleBinding, old: &ClusterRoleBinding) -> ErrorList {
        let mut errs = self.validate(new);
        errs.extend(validate_role_ref_update(&new.role_ref, &old.role_ref));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, crb: &ClusterRoleBinding, raw: &Value) -> Vec<Value> {
        let mut cells = vec![
            crb.metadata.name.clone().unwrap_or_default().into(),
            format!("{}/{}", crb.role_ref.kind, crb.role_ref.name).into(),
            table::age(raw),
        ];
        cells.extend(subject_cells(crb.subjects.as_ref()));
        cells
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn binding(role_ref: Value, subjects: Value) -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": role_ref,
            "subjects": subjects,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn only_cluster_roles_and_namespaced_service_accounts() {
        let s = Typed::new(ClusterRoleBindingStrategy);
        let obj = s
            .decode(binding(
                json!({"kind": "Role", "name": "x"}),
                json!([{"kind": "ServiceAccount", "name": "default"}]),
            ))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                "subjects[0].namespace: Required value",
            ]
        );
    }

    #[test]
    fn valid_binding_and_row() {
        let s = Typed::new(ClusterRoleBindingStrategy);
        let obj = s
            .decode(binding(
                json!({"kind": "ClusterRole", "name": "cluster-admin"}),
                json!([{"kind": "Group", "name": "system:masters"}]),
            ))
            .unwrap();
        assert!(s.validate(&obj).is_empty());
        assert!(!s.info().namespaced);
        let row = s.row(&obj);
        assert_eq!(row[1], json!("ClusterRole/cluster-admin"));
        assert_eq!(row[4], json!("system:masters"));
    }
}
