//! ingressclasses: cluster-scoped; which controller implements a class of Ingresses, with
//! an optional reference to its parameters. Validation as upstream's
//! `ValidateIngressClass`; `spec.controller` is immutable.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::networking::v1::{IngressClass, IngressClassParametersReference};
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct IngressClassStrategy;

const MAX_CONTROLLER_LEN: usize = 250;
const SCOPES: &[&str] = &["Cluster", "Namespace"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    Column::new(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

fn invalid_each(path: &Path, value: &str, msgs: Vec<String>) -> ErrorList {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn validate_parameters(params: &IngressClassParametersReference, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(group) = &params.api_group {
        errs.extend(invalid_each(
            &path.child("apiGroup"),
            group,
            validation::is_dns1123_subdomain(group),
        ));
    }
    for (field, value) in [("kind", &params.kind), ("name", &params.name)] {
        if value.is_empty() {
            errs.push(FieldError::required(&path.child(field), ""));
        } else {
            errs.extend(invalid_each(
                &path.child(field),
                value,
                validation::is_valid_path_segment_name(value),
            ));
        }
    }
    let Some(scope) = params.scope.as_deref() else {
        errs.push(FieldError::required(&path.child("scope"), ""));
        return errs;
    };
    match scope {
        "Namespace" => match params.namespace.as_deref() {
            None => errs.push(FieldError::required(
                &path.child("namespace"),
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => errs.extend(invalid_each(
                &path.child("namespace"),
                ns,
                validation::validate_namespace_name(ns, false),
            )),
        },
        "Cluster" => {
            if params.namespace.is_some() {
                errs.push(FieldError::forbidden(
                    &path.child("namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("scope"),
            other,
            SCOPES,
        )),
    }
    errs
}

impl TypedStrategy for IngressClassStrategy {
    type Object = IngressClass;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<IngressClass>().tracks_generation()
    }

    fn default(&self, class: &mut IngressClass) {
        if let Some(params) = class.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
            if params.scope.is_none() {
                params.scope = Some("Cluster".into());
            }
        }
    }

    fn validate(&self, class: &IngressClass) -> ErrorList {
        let spec = class.spec.clone().unwrap_or_default();
        let path = Path::new("spec");
        let mut errs = Vec::new();
        let controller = spec.controller.as_deref().unwrap_or("");
        if controller.is_empty() {
            errs.push(FieldError::required(&path.child("controller"), ""));
        } else {
            if controller.len() > MAX_CONTROLLER_LEN {
                errs.push(FieldError::too_long(
                    &path.child("controller"),
                    MAX_CONTROLLER_LEN,
                ));
            }
            errs.extend(validation::is_domain_prefixed_path(
                &path.child("controller"),
                controller,
            ));
        }
        if let Some(params) = &spec.parameters {
            errs.extend(validate_parameters(params, &path.child("parameters")));
        }
        errs
    }

    fn validate_update(&self, new: &IngressClass, old: &IngressClass) -> ErrorList {
        let controller = |c: &IngressClass| c.spec.as_ref().and_then(|s| s.controller.clone());
        let mut errs = validation::validate_immutable_field(
            &controller(new),
            &controller(old),
            controller(new).unwrap_or_default(),
            &Path::new("spec").child("controller"),
        );
        errs.extend(self.validate(new));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, class: &IngressClass, raw: &Value) -> Vec<Value> {
        let spec = class.spec.clone().unwrap_or_default();
        let parameters = match &spec.parameters {
            None => "<none>".to_string(),
            Some(p) => {
                let kind = match &p.api_group {
                    Some(group) => format!("{}.{group}", p.kind),
                    None => p.kind.clone(),
                };
                format!("{kind}/{}", p.name)
            }
        };
        vec![
            class.metadata.name.clone().unwrap_or_default().into(),
            spec.controller.unwrap_or_default().into(),
            parameters.into(),
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

    fn strategy() -> Typed<IngressClassStrategy> {
        Typed::new(IngressClassStrategy)
    }

    fn class(spec: Value) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "nginx"},
            "spec": spec,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn is_cluster_scoped_and_tracks_generation() {
        let info = strategy().info().clone();
        assert!(!info.namespaced);
        assert!(info.tracks_generation);
    }

    #[test]
    fn parameters_scope_defaults_to_cluster() {
        let s = strategy();
        let obj = s
            .decode(class(json!({
                "controller": "k8s.io/ingress-nginx",
                "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"},
            })))
            .unwrap();
        assert_eq!(obj["spec"]["parameters"]["scope"], json!("Cluster"));
        assert!(s.validate(&obj).is_empty());
        assert_eq!(
            s.row(&obj)[2],
            json!("IngressParameters.k8s.example.com/external-lb")
        );
    }

    #[test]
    fn controller_is_required_and_domain_prefixed() {
        let s = strategy();
        let obj = s.decode(class(json!({}))).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["spec.controller: Required value"]
        );
        let obj = s.decode(class(json!({"controller": "nginx"}))).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")"#
            ]
        );
    }

    #[test]
    fn namespace_scoped_parameters_need_a_namespace() {
        let s = strategy();
        let obj = s
            .decode(class(json!({
                "controller": "k8s.io/ingress-nginx",
                "parameters": {"kind": "P", "name": "p", "scope": "Namespace"},
            })))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]
        );
    }

    #[test]
    fn controller_is_immutable() {
        let s = strategy();
        let old = s
            .decode(class(json!({"controller": "k8s.io/ingress-nginx"})))
            .unwrap();
        let new = s
            .decode(class(json!({"controller": "k8s.io/other"})))
            .unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![r#"spec.controller: Invalid value: "k8s.io/other": field is immutable"#]
        );
    }

    #[test]
    fn row_without_parameters() {
        let s = strategy();
        let obj = s
            .decode(class(json!({"controller": "k8s.io/ingress-nginx"})))
            .unwrap();
        let row = s.row(&obj);
        assert_eq!(row[0], json!("nginx"));
        assert_eq!(row[1], json!("k8s.io/ingress-nginx"));
        assert_eq!(row[2], json!("<none>"));
    }
}
