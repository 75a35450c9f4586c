//! roles: namespaced sets of permissions. Rules need verbs, and resource rules need API
//! groups and resources; non-resource URLs belong to ClusterRoles only.

use apimachinery::field::ErrorList;
use k8s_openapi::api::rbac::v1::Role;
use serde_json::Value;

use crate::registry::rbac::{created_at_row, validate_rules, CREATED_AT_COLUMNS};
use crate::registry::table::Column;
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct RoleStrategy;

impl TypedStrategy for RoleStrategy {
    type Object = Role;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Role>()
            .name_validator(apimachinery::validation::NameValidator::PathSegment)
    }

    fn validate(&self, role: &Role) -> ErrorList {
        validate_rules(role.rules.as_ref(), true)
    }

    fn columns(&self) -> &'static [Column] {
        CREATED_AT_COLUMNS
    }

    fn row(&self, _role: &Role, raw: &Value) -> Vec<Value> {
        created_at_row(raw)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn role(rules: Value) -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "rules": rules,
        })
    }

    #[test]
    fn valid_role_passes() {
        let s = Typed::new(RoleStrategy);
        let obj = s
            .decode(role(
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
            ))
            .unwrap();
        assert!(s.validate(&obj).is_empty());
    }

    #[test]
    fn invalid_rules_fail() {
        let s = Typed::new(RoleStrategy);
        let obj = s
            .decode(role(json!([{"resources": ["pods"], "verbs": []}, {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])))
            .unwrap();
        let msgs: Vec<String> = s.validate(&obj).iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                r#"rules[1].nonResourceURLs: Invalid value: ["/metrics"]: namespaced rules cannot apply to non-resource URLs"#,
            ]
        );
    }

    #[test]
    fn row_prints_created_at() {
        let s = Typed::new(RoleStrategy);
        let obj = s.decode(role(json!([]))).unwrap();
        assert_eq!(s.columns()[1].name, "Created At");
        assert_eq!(
            s.row(&obj),
            vec![json!("pod-reader"), json!("2024-05-01T10:00:00Z")]
        );
    }
}
