//! The `rbac.authorization.k8s.io` API group, version v1: storage and validation of
//! roles and bindings as upstream's `pkg/apis/rbac/validation`. Authorization itself, and
//! the escalation checks on writes of roles and bindings, are not here.

pub mod clusterrole;
pub mod clusterrolebinding;
pub mod role;
pub mod rolebinding;

use std::sync::Arc;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef, Subject};
use serde_json::Value;

use crate::object;
use crate::registry::table::{Column, NAME};
use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub const GROUP: &str = "rbac.authorization.k8s.io";

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(
            clusterrolebinding::ClusterRoleBindingStrategy,
        ))),
        Resource::new(Arc::new(Typed::new(clusterrole::ClusterRoleStrategy))),
        Resource::new(Arc::new(Typed::new(rolebinding::RoleBindingStrategy))),
        Resource::new(Arc::new(Typed::new(role::RoleStrategy))),
    ]
}

/// Upstream's `minimalNameRequirements` for role names in a roleRef.
fn path_segment_errors(name: &str) -> Vec<String> {
    validation::is_valid_path_segment_name(name)
}

/// Upstream's `validatePolicyRule`.
pub(crate) fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if rule.verbs.is_empty() {
        errs.push(FieldError::required(
            &path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    if !urls.is_empty() {
        let shown = serde_json::to_value(urls).unwrap_or(Value::Null);
        if namespaced {
            errs.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                shown.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            errs.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                shown,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return errs;
    }
    if groups.is_empty() {
        errs.push(FieldError::required(
            &path.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if resources.is_empty() {
        errs.push(FieldError::required(
            &path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    if !names.is_empty() && resources.len() > 1 {
        errs.push(FieldError::required(
            &path.child("resourceNames"),
            "resource names cannot apply to multiple resources",
        ));
    }
    errs
}

pub(crate) fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> ErrorList {
    rules
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| validate_rule(r, namespaced, &Path::new("rules").index(i)))
        .collect()
}

/// The roleRef of a binding: `kinds` are the role kinds it may name.
pub(crate) fn validate_role_ref(role_ref: &RoleRef, kinds: &[&str]) -> ErrorList {
    let path = Path::new("roleRef");
    let mut errs = Vec::new();
    if role_ref.api_group != GROUP {
        errs.push(FieldError::not_supported(
            &path.child("apiGroup"),
            role_ref.api_group.as_str(),
            &[GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            &path.child("kind"),
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    } else {
        for msg in path_segment_errors(&role_ref.name) {
            errs.push(FieldError::invalid(
                &path.child("name"),
                role_ref.name.as_str(),
                msg,
            ));
        }
    }
    errs
}

/// A binding's roleRef cannot change: a new role means a new binding.
pub(crate) fn validate_role_ref_update(new: &RoleRef, old: &RoleRef) -> ErrorList {
    if new == old {
        return Vec::new();
    }
    vec![FieldError::invalid(
        &Path::new("roleRef"),
        serde_json::to_value(new).unwrap_or(Value::Null),
        "cannot change roleRef",
    )]
}

/// Upstream's `validateRoleBindingSubject`.
pub(crate) fn validate_subject(subject: &Subject, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if subject.name.is_empty() {
        errs.push(FieldError::required(&path.child("name"), ""));
    }
    let api_group = subject.api_group.as_deref().unwrap_or("");
    match subject.kind.as_str() {
        "ServiceAccount" => {
            if !subject.name.is_empty() {
                for msg in validation::validate_service_account_name(&subject.name, false) {
                    errs.push(FieldError::invalid(
                        &path.child("name"),
                        subject.name.as_str(),
                        msg,
                    ));
                }
            }
            if !api_group.is_empty() {
                errs.push(FieldError::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[""],
                ));
            }
            if !namespaced && subject.namespace.as_deref().is_none_or(str::is_empty) {
                errs.push(FieldError::required(&path.child("namespace"), ""));
            }
        }
        kind @ ("User" | "Group") => {
            if subject.name.is_empty() {
                let what = if kind == "User" { "user" } else { "group" };
                errs.push(FieldError::invalid(
                    &path.child("name"),
                    "",
                    format!("{what} name cannot be empty"),
                ));
            }
            if api_group != GROUP {
                errs.push(FieldError::not_supported(
                    &path.child("apiGroup"),
                    api_group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errs
}

pub(crate) fn validate_subjects(subjects: Option<&Vec<Subject>>, namespaced: bool) -> ErrorList {
    subjects
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, s)| validate_subject(s, namespaced, &Path::new("subjects").index(i)))
        .collect()
}

/// Upstream's `SetDefaults_RoleBinding`/`SetDefaults_Subject`: the API groups that go
/// without saying.
pub(crate) fn default_binding(role_ref: &mut RoleRef, subjects: Option<&mut Vec<Subject>>) {
    if role_ref.api_group.is_empty() {
        role_ref.api_group = GROUP.to_string();
    }
    for subject in subjects.into_iter().flatten() {
        if subject.api_group.as_deref().is_none_or(str::is_empty) {
            match subject.kind.as_str() {
                "ServiceAccount" => subject.api_group = Some(String::new()),
                "User" | "Group" => subject.api_group = Some(GROUP.to_string()),
                _ => {}
            }
        }
    }
}

/// The Users, Groups and ServiceAccounts cells of a binding (upstream's
/// `SubjectsStrings`, joined with ", ").
pub(crate) fn subject_cells(subjects: Option<&Vec<Subject>>) -> [Value; 3] {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in subjects.into_iter().flatten() {
        match s.kind.as_str() {
            "ServiceAccount" => sas.push(format!(
                "{}/{}",
                s.namespace.as_deref().unwrap_or(""),
                s.name
            )),
            "User" => users.push(s.name.clone()),
            "Group" => groups.push(s.name.clone()),
            _ => {}
        }
    }
    [
        users.join(", ").into(),
        groups.join(", ").into(),
        sas.join(", ").into(),
    ]
}

/// Roles and ClusterRoles have no printer upstream: they get the default table
/// convertor's Name and "Created At" (an RFC 3339 timestamp, not an age).
pub(crate) const CREATED_AT_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    ),
];

pub(crate) fn created_at_row(raw: &Value) -> Vec<Value> {
    let created = object::meta_str(raw, "creationTimestamp")
        .and_then(object::parse_time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        // Go's zero time, as upstream prints an unset timestamp.
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![Value::String(object::name(raw).to_string()), created.into()]
}

/// The columns of RoleBindings and ClusterRoleBindings; `what` names the kind in the
/// descriptions of the `-o wide` columns.
macro_rules! binding_columns {
    ($what:literal) => {
        &[
            crate::registry::table::NAME,
            crate::registry::table::Column::new(
                "Role",
                "string",
                "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
            ),
            crate::registry::table::AGE,
            crate::registry::table::Column::new("Users", "string", concat!("Users in the ", $what))
                .wide(),
            crate::registry::table::Column::new("Groups", "string", concat!("Groups in the ", $what))
                .wide(),
            crate::registry::table::Column::new(
                "ServiceAccounts",
                "string",
                concat!("ServiceAccounts in the ", $what),
            )
            .wide(),
        ]
    };
}
pub(crate) use binding_columns;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let rule = PolicyRule::default();
        assert_eq!(
            messages(&validate_rule(&rule, true, &Path::new("rules").index(0))),
            vec![
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ]
        );
    }

    #[test]
    fn non_resource_urls_only_in_cluster_roles() {
        let rule = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: Some(vec!["/healthz".into()]),
            ..Default::default()
        };
        assert!(validate_rule(&rule, false, &Path::new("rules").index(0)).is_empty());
        assert_eq!(
            messages(&validate_rule(&rule, true, &Path::new("rules").index(0))),
            vec![
                r#"rules[0].nonResourceURLs: Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs"#
            ]
        );
    }

    #[test]
    fn subjects_are_checked() {
        let sa = Subject {
            kind: "ServiceAccount".into(),
            name: "default".into(),
            api_group: Some(GROUP.into()),
            namespace: None,
        };
        assert_eq!(
            messages(&validate_subject(
                &sa,
                false,
                &Path::new("subjects").index(0)
            )),
            vec![
                r#"subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: """#,
                "subjects[0].namespace: Required value",
            ]
        );
        let user = Subject {
            kind: "User".into(),
            name: "alice".into(),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_subject(
                &user,
                true,
                &Path::new("subjects").index(0)
            )),
            vec![
                r#"subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io""#
            ]
        );
        let robot = Subject {
            kind: "Robot".into(),
            name: "r2".into(),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_subject(
                &robot,
                true,
                &Path::new("subjects").index(0)
            )),
            vec![
                r#"subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#
            ]
        );
    }

    #[test]
    fn subject_cells_split_by_kind() {
        let subjects = vec![
            Subject {
                kind: "User".into(),
                name: "alice".into(),
                ..Default::default()
            },
            Subject {
                kind: "ServiceAccount".into(),
                name: "default".into(),
                namespace: Some("kube-system".into()),
                ..Default::default()
            },
            Subject {
                kind: "User".into(),
                name: "bob".into(),
                ..Default::default()
            },
        ];
        assert_eq!(
            subject_cells(Some(&subjects)),
            [
                Value::from("alice, bob"),
                Value::from(""),
                Value::from("kube-system/default")
            ]
        );
    }
}
