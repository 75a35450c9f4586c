//! rolebindings: grant a Role or ClusterRole to users, groups and service accounts within
//! a namespace. The roleRef cannot change once set.

use apimachinery::field::ErrorList;
use k8s_openapi::api::rbac::v1::RoleBinding;
use serde_json::Value;

use crate::registry::rbac::{
    binding_columns, default_binding, subject_cells, validate_role_ref, validate_role_ref_update,
    validate_subjects,
};
use crate::registry::table::{self, Column};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct RoleBindingStrategy;

const COLUMNS: &[Column] = binding_columns!("roleBinding");

impl TypedStrategy for RoleBindingStrategy {
    type Object = RoleBinding;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<RoleBinding>()
            .name_validator(apimachinery::validation::NameValidator::PathSegment)
    }

    fn default(&self, rb: &mut RoleBinding) {
        default_binding(&mut rb.role_ref, rb.subjects.as_mut());
    }

    fn validate(&self, rb: &RoleBinding) -> ErrorList {
        let mut errs = validate_role_ref(&rb.role_ref, &["Role", "ClusterRole"]);
        errs.extend(validate_subjects(rb.subjects.as_ref(), true));
        errs
    }

    fn validate_update(&self, new: &RoleBinding, old: &RoleBinding) -> ErrorList {
        let mut errs = self.validate(new);
        errs.extend(validate_role_ref_update(&new.role_ref, &old.role_ref));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, rb: &RoleBinding, raw: &Value) -> Vec<Value> {
        let mut cells = vec![
            rb.metadata.name.clone().unwrap_or_default().into(),
            format!("{}/{}", rb.role_ref.kind, rb.role_ref.name).into(),
            table::age(raw),
        ];
        cells.extend(subject_cells(rb.subjects.as_ref()));
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
            "kind": "RoleBinding",
            "metadata": {"name": "read-pods", "namespace": "default"},
            "roleRef": role_ref,
            "subjects": subjects,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn api_groups_are_defaulted_and_namespaced_service_accounts_pass() {
        let s = Typed::new(RoleBindingStrategy);
        let obj = s
            .decode(binding(
                json!({"kind": "Role", "name": "pod-reader"}),
                json!([{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}]),
            ))
            .unwrap();
        assert_eq!(
            obj["roleRef"]["apiGroup"],
            json!("rbac.authorization.k8s.io")
        );
        assert_eq!(
            obj["subjects"][0]["apiGroup"],
            json!("rbac.authorization.k8s.io")
        );
        assert_eq!(obj["subjects"][1]["apiGroup"], json!(""));
        assert!(s.validate(&obj).is_empty());
    }

    #[test]
    fn role_ref_kind_is_checked() {
        let s = Typed::new(RoleBindingStrategy);
        let obj = s
            .decode(binding(json!({"kind": "Pod", "name": ""}), json!([])))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole""#,
                "roleRef.name: Required value",
            ]
        );
    }

    #[test]
    fn role_ref_is_immutable() {
        let s = Typed::new(RoleBindingStrategy);
        let old = s
            .decode(binding(json!({"kind": "Role", "name": "a"}), json!([])))
            .unwrap();
        let new = s
            .decode(binding(json!({"kind": "Role", "name": "b"}), json!([])))
            .unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                r#"roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"b"}: cannot change roleRef"#
            ]
        );
    }

    #[test]
    fn row_prints_role_and_subjects() {
        let s = Typed::new(RoleBindingStrategy);
        let obj = s
            .decode(binding(
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([
                    {"kind": "Group", "name": "devs"},
                    {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"},
                ]),
            ))
            .unwrap();
        let row = s.row(&obj);
        assert_eq!(row.len(), s.columns().len());
        assert_eq!(row[1], json!("ClusterRole/view"));
        assert_eq!(&row[3..], &[json!(""), json!("devs"), json!("ci/bot")]);
    }
}
