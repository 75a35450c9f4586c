//! clusterroles: cluster-wide sets of permissions, which may also grant non-resource URLs
//! and may be aggregated from other ClusterRoles by label selectors (the aggregation
//! controller fills in their rules).

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole};
use serde_json::Value;

use crate::registry::rbac::{created_at_row, validate_rules, CREATED_AT_COLUMNS};
use crate::registry::table::Column;
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct ClusterRoleStrategy;

fn validate_aggregation(rule: &AggregationRule, opts: LabelSelectorValidationOptions) -> ErrorList {
    let path = Path::new("aggregationRule").child("clusterRoleSelectors");
    let selectors = rule.cluster_role_selectors.as_deref().unwrap_or_default();
    let mut errs = Vec::new();
    if selectors.is_empty() {
        errs.push(FieldError::required(
            &path,
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        ));
    }
    for (i, selector) in selectors.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validation::validate_label_selector(
            Some(selector),
            opts,
            &p,
        ));
        if Selector::from_label_selector(selector).is_err() {
            errs.push(FieldError::invalid(
                &p,
                serde_json::to_value(selector).unwrap_or(Value::Null),
                "invalid label selector.",
            ));
        }
    }
    errs
}

fn validate(role: &ClusterRole, opts: LabelSelectorValidationOptions) -> ErrorList {
    let mut errs = validate_rules(role.rules.as_ref(), false);
    if let Some(rule) = &role.aggregation_rule {
        errs.extend(validate_aggregation(rule, opts));
    }
    errs
}

impl TypedStrategy for ClusterRoleStrategy {
    type Object = ClusterRole;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ClusterRole>()
            .name_validator(apimachinery::validation::NameValidator::PathSegment)
    }

    fn validate(&self, role: &ClusterRole) -> ErrorList {
        validate(role, LabelSelectorValidationOptions::default())
    }

    fn validate_update(&self, new: &ClusterRole, old: &ClusterRole) -> ErrorList {
        // Selectors stored before label values were checked stay acceptable.
        let old_invalid = old
            .aggregation_rule
            .as_ref()
            .is_some_and(|r| !validate_aggregation(r, Default::default()).is_empty());
        validate(
            new,
            LabelSelectorValidationOptions {
                allow_invalid_label_value_in_selector: old_invalid,
                ..Default::default()
            },
        )
    }

    fn columns(&self) -> &'static [Column] {
        CREATED_AT_COLUMNS
    }

    fn row(&self, _role: &ClusterRole, raw: &Value) -> Vec<Value> {
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

    fn role(extra: Value) -> Value {
        let mut obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:monitoring"},
        });
        for (k, v) in extra.as_object().unwrap() {
            obj[k] = v.clone();
        }
        obj
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn non_resource_urls_are_allowed() {
        let s = Typed::new(ClusterRoleStrategy);
        let obj = s
            .decode(role(
                json!({"rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
            ))
            .unwrap();
        assert!(s.validate(&obj).is_empty());
        assert!(!s.info().namespaced);
    }

    #[test]
    fn aggregation_needs_selectors() {
        let s = Typed::new(ClusterRoleStrategy);
        let obj = s.decode(role(json!({"aggregationRule": {}}))).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"]
        );
        let obj = s
            .decode(role(json!({"aggregationRule": {"clusterRoleSelectors": [
                {"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}},
                {"matchExpressions": [{"key": "a", "operator": "In"}]},
            ]}})))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                "aggregationRule.clusterRoleSelectors[1].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                r#"aggregationRule.clusterRoleSelectors[1]: Invalid value: {"matchExpressions":[{"key":"a","operator":"In"}]}: invalid label selector."#,
            ]
        );
    }

    #[test]
    fn rules_of_cluster_roles_need_resources() {
        let s = Typed::new(ClusterRoleStrategy);
        let obj = s
            .decode(role(
                json!({"rules": [{"apiGroups": ["apps"], "verbs": ["get"]}]}),
            ))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["rules[0].resources: Required value: resource rules must supply at least one resource"]
        );
    }
}
