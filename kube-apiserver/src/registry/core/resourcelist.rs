//! Resource lists (`cpu: 500m`, `memory: 1Gi`) as upstream's `core/v1` defaulting and
//! validation see them: quantities rounded to milli precision and printed canonically,
//! resource names checked against the standard, extended and quota name sets
//! (upstream `pkg/apis/core/helper`).

use std::collections::BTreeMap;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::quantity::Quantity;
use apimachinery::validation;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

pub type ResourceList = BTreeMap<String, ApiQuantity>;

const IS_NEGATIVE: &str = "must be greater than or equal to 0";

/// Upstream's `SetDefaults_ResourceList`: every value rounded up to milli precision, and
/// (as upstream's decoder does) printed in canonical form, so `0.5` is stored as `500m`.
/// Unparsable values are left for validation to report.
pub fn normalize(list: &mut Option<ResourceList>) {
    for value in list.iter_mut().flat_map(|l| l.values_mut()) {
        normalize_quantity(value);
    }
}

/// One quantity in upstream's canonical form (without milli rounding).
pub fn canonicalize(value: &mut ApiQuantity) {
    if let Ok(q) = Quantity::try_from(&*value) {
        value.0 = q.to_string();
    }
}

fn normalize_quantity(value: &mut ApiQuantity) {
    if let Ok(mut q) = Quantity::try_from(&*value) {
        q.round_up(-3);
        value.0 = q.to_string();
    }
}

/// The parsed quantity, or zero when absent or malformed (validation reports the latter).
pub fn quantity(list: Option<&ResourceList>, name: &str) -> Quantity {
    list.and_then(|l| l.get(name))
        .and_then(|q| Quantity::try_from(q).ok())
        .unwrap_or_default()
}

/// A quantity that must parse, with upstream's decoding error otherwise.
#[allow(clippy::result_large_err)]
pub fn parse(value: &ApiQuantity, path: &Path) -> Result<Quantity, FieldError> {
    Quantity::try_from(value)
        .map_err(|e| FieldError::invalid(path, value.0.as_str(), e.to_string()))
}

/// Upstream's `ValidateResourceQuantityValue`: not negative, and whole for integer resources.
pub fn validate_quantity_value(name: &str, value: &ApiQuantity, path: &Path) -> ErrorList {
    let q = match parse(value, path) {
        Ok(q) => q,
        Err(e) => return vec![e],
    };
    validate_parsed_quantity_value(name, &q, path)
}

pub fn validate_parsed_quantity_value(name: &str, q: &Quantity, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if q.sign() < 0 {
        errs.push(FieldError::invalid(path, q.to_string(), IS_NEGATIVE));
    }
    if is_integer_resource_name(name) && q.milli_value() % 1000 != 0 {
        errs.push(FieldError::invalid(
            path,
            q.to_string(),
            "must be an integer",
        ));
    }
    errs
}

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

const STANDARD_QUOTA_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

/// Quota resources a pod-scoped quota scope may constrain.
pub const POD_OBJECT_COUNT_RESOURCES: &[&str] = &["pods"];
pub const POD_COMPUTE_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

pub fn is_hugepage_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_quota_hugepage_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// Unprefixed names and `kubernetes.io/` names belong to Kubernetes.
pub fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// A vendor resource such as `nvidia.com/gpu`.
pub fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with("requests.") {
        return false;
    }
    validation::is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// Resources whose requests may be below their limits (not hugepages nor extended ones).
pub fn is_overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepage_resource_name(name)
}

pub fn is_integer_resource_name(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended_resource_name(name)
}

pub fn is_standard_quota_resource_name(name: &str) -> bool {
    STANDARD_QUOTA_RESOURCES.contains(&name) || is_quota_hugepage_resource_name(name)
}

fn is_standard_resource_name(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name) || is_quota_hugepage_resource_name(name)
}

/// Upstream's `validateResourceName`.
pub fn validate_resource_name(name: &str, path: &Path) -> ErrorList {
    let errs: ErrorList = validation::is_qualified_name(name)
        .into_iter()
        .map(|m| FieldError::invalid(path, name, m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') && !is_standard_resource_name(name) {
        return vec![FieldError::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        )];
    }
    errs
}

/// Upstream's `validateContainerResourceName`.
pub fn validate_container_resource_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !is_hugepage_resource_name(name) {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource_name(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Upstream's `ValidateResourceQuotaResourceName`.
pub fn validate_quota_resource_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/') && !is_standard_quota_resource_name(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be a standard resource for quota",
        ));
    }
    errs
}

/// Container (or pod overhead) requests and limits: names, values, requests <= limits
/// (upstream's `validateResourceRequirements`).
pub fn validate_requirements(
    limits: Option<&ResourceList>,
    requests: Option<&ResourceList>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let (mut lim_cpu_mem, mut req_cpu_mem, mut hugepages) = (false, false, false);
    let empty = ResourceList::new();
    let limits = limits.unwrap_or(&empty);
    for (name, value) in limits {
        let p = lim_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_quantity_value(name, value, &p));
        hugepages |= is_hugepage_resource_name(name);
        lim_cpu_mem |= name == "cpu" || name == "memory";
    }
    for (name, value) in requests.unwrap_or(&empty) {
        let p = req_path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        errs.extend(validate_quantity_value(name, value, &p));
        let Ok(request) = Quantity::try_from(value) else {
            continue;
        };
        match limits.get(name).and_then(|l| Quantity::try_from(l).ok()) {
            Some(limit) if request != limit && !is_overcommit_allowed(name) => {
                errs.push(FieldError::invalid(
                    &req_path,
                    request.to_string(),
                    format!("must be equal to {name} limit of {limit}"),
                ));
            }
            Some(limit) if request > limit => errs.push(FieldError::invalid(
                &req_path,
                request.to_string(),
                format!("must be less than or equal to {name} limit of {limit}"),
            )),
            Some(_) => {}
            None if !is_overcommit_allowed(name) => errs.push(FieldError::required(
                &lim_path,
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
        hugepages |= is_hugepage_resource_name(name);
        req_cpu_mem |= name == "cpu" || name == "memory";
    }
    if hugepages && !lim_cpu_mem && !req_cpu_mem {
        errs.push(FieldError::forbidden(
            path,
            "HugePages require cpu or memory",
        ));
    }
    errs
}

/// `a=1,b=2`, or `<none>` (upstream's `labels.FormatLabels`).
pub fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ApiQuantity(v.to_string())))
            .collect()
    }

    #[test]
    fn quantities_are_rounded_and_canonical() {
        let mut l = Some(list(&[("cpu", "0.5"), ("memory", "1Gi"), ("x", "0.0001")]));
        normalize(&mut l);
        let l = l.unwrap();
        assert_eq!(l["cpu"].0, "500m");
        assert_eq!(l["memory"].0, "1Gi");
        assert_eq!(l["x"].0, "1m");
    }

    #[test]
    fn requests_above_limits_are_invalid() {
        let limits = list(&[("cpu", "1")]);
        let requests = list(&[("cpu", "2")]);
        let errs = validate_requirements(
            Some(&limits),
            Some(&requests),
            &Path::new("spec")
                .child("containers")
                .index(0)
                .child("resources"),
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.containers[0].resources.requests");
        assert_eq!(
            errs[0].body(),
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
    }

    #[test]
    fn resource_names() {
        let p = Path::new("r");
        assert!(validate_container_resource_name("cpu", &p).is_empty());
        assert!(validate_container_resource_name("example.com/gpu", &p).is_empty());
        assert_eq!(
            validate_container_resource_name("pods", &p)[0].detail,
            "must be a standard resource for containers"
        );
        assert_eq!(
            validate_container_resource_name("foo", &p)[0].detail,
            "must be a standard resource type or fully qualified"
        );
        assert!(is_integer_resource_name("example.com/gpu"));
        assert!(!is_overcommit_allowed("example.com/gpu"));
        let gpu = list(&[("example.com/gpu", "1")]);
        let errs = validate_requirements(None, Some(&gpu), &p);
        assert_eq!(errs[0].field, "r.limits");
    }

    #[test]
    fn labels_format() {
        assert_eq!(format_labels(None), "<none>");
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), "2".to_string());
        m.insert("a".to_string(), "1".to_string());
        assert_eq!(format_labels(Some(&m)), "a=1,b=2");
    }
}
