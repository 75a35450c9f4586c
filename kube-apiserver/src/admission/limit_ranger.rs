//! LimitRanger: the namespace's LimitRanges give containers their default requests and
//! limits (mutating phase), and bound what containers, pods and claims may ask for
//! (validating phase), as upstream's `plugin/pkg/admission/limitranger`.

use std::collections::BTreeMap;
use std::sync::Arc;

use apimachinery::quantity::{Quantity, MAX_MILLI_VALUE};
use apimachinery::StatusError;
use k8s_openapi::api::core::v1::{
    Container, LimitRange, PersistentVolumeClaim, Pod, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use serde_json::Value;

use crate::admission::resources::{self, ResourceList};
use crate::admission::{aggregate, Attributes, Operation, Plugin};
use crate::object;
use crate::registry::store::Store;

/// The annotation naming what the plugin defaulted.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub struct LimitRanger {
    limit_ranges: Arc<Store>,
}

impl LimitRanger {
    pub fn new(limit_ranges: Arc<Store>) -> Self {
        LimitRanger { limit_ranges }
    }

    /// Whether the request is one the plugin looks at: pods and claims proper, and of
    /// pods only their creation (containers cannot change afterwards).
    fn supports(&self, attrs: &Attributes) -> bool {
        if attrs.subresource.is_some() {
            return false;
        }
        if !matches!(attrs.operation, Operation::Create | Operation::Update) {
            return false;
        }
        if attrs.is("", "pods") {
            return attrs.operation == Operation::Create;
        }
        if !attrs.is("", "persistentvolumeclaims") {
            return false;
        }
        // Objects on their way out are left alone.
        attrs
            .old_object
            .as_ref()
            .is_none_or(|old| object::deletion_timestamp(old).is_none())
    }

    async fn limit_ranges(&self, attrs: &Attributes) -> Result<Vec<LimitRange>, StatusError> {
        let items = self
            .limit_ranges
            .list_cached(Some(&attrs.namespace))
            .await
            .map_err(|_| {
                attrs.forbidden(format!(
                    "unable to {} {} at this time because there was an error enforcing limit ranges",
                    attrs.operation.as_str(),
                    attrs.resource.group_resource()
                ))
            })?;
        Ok(items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }
}

/// The request's object as `T`; why not, for a 400.
fn typed<T: serde::de::DeserializeOwned>(obj: Option<&Value>) -> Result<T, String> {
    let obj = obj.ok_or("the request has no object")?;
    serde_json::from_value(obj.clone()).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl Plugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        if !self.supports(attrs) || !attrs.is("", "pods") {
            return Ok(());
        }
        let ranges = self.limit_ranges(attrs).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        let mut pod: Pod = typed(attrs.object.as_ref()).map_err(StatusError::bad_request)?;
        for range in &ranges {
            apply_defaults(range, &mut pod);
        }
        attrs.object = Some(serde_json::to_value(&pod).map_err(StatusError::internal)?);
        Ok(())
    }

    async fn validate(&self, attrs: &Attributes) -> Result<(), StatusError> {
        if !self.supports(attrs) {
            return Ok(());
        }
        let ranges = self.limit_ranges(attrs).await?;
        if ranges.is_empty() {
            return Ok(());
        }
        if attrs.is("", "pods") {
            let pod: Pod = typed(attrs.object.as_ref()).map_err(StatusError::bad_request)?;
            for range in &ranges {
                let errors = validate_pod(range, &pod);
                if !errors.is_empty() {
                    return Err(attrs.forbidden(aggregate(&errors)));
                }
            }
        } else {
            let claim: PersistentVolumeClaim =
                typed(attrs.object.as_ref()).map_err(StatusError::bad_request)?;
            for range in &ranges {
                let errors = validate_claim(range, &claim);
                if !errors.is_empty() {
                    return Err(attrs.forbidden(aggregate(&errors)));
                }
            }
        }
        Ok(())
    }
}

/// The Container-type items' `defaultRequest` and `default`, later items winning.
fn container_defaults(
    range: &LimitRange,
) -> (BTreeMap<String, ApiQuantity>, BTreeMap<String, ApiQuantity>) {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for item in range.spec.iter().flat_map(|s| &s.limits) {
        if item.type_ != "Container" {
            continue;
        }
        requests.extend(canonical(item.default_request.as_ref()));
        limits.extend(canonical(item.default.as_ref()));
    }
    (requests, limits)
}

/// Quantities as upstream would print them after decoding (`0.5` → `500m`).
fn canonical(list: Option<&BTreeMap<String, ApiQuantity>>) -> BTreeMap<String, ApiQuantity> {
    list.into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = Quantity::try_from(v)
                .map(|q| ApiQuantity::from(&q))
                .unwrap_or_else(|_| v.clone());
            (k.clone(), v)
        })
        .collect()
}

/// Give every container and init container the range's defaults for what it does not
/// set, and record what was set in the pod's annotation (upstream's
/// `PodMutateLimitFunc`).
pub fn apply_defaults(range: &LimitRange, pod: &mut Pod) {
    let (default_requests, default_limits) = container_defaults(range);
    if default_requests.is_empty() && default_limits.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    if let Some(spec) = pod.spec.as_mut() {
        for c in &mut spec.containers {
            merge_container(
                c,
                &default_requests,
                &default_limits,
                "container",
                &mut notes,
            );
        }
        for c in spec.init_containers.iter_mut().flatten() {
            merge_container(
                c,
                &default_requests,
                &default_limits,
                "init container",
                &mut notes,
            );
        }
    }
    if !notes.is_empty() {
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                ANNOTATION.to_string(),
                format!("LimitRanger plugin set: {}", notes.join("; ")),
            );
    }
}

fn merge_container(
    c: &mut Container,
    default_requests: &BTreeMap<String, ApiQuantity>,
    default_limits: &BTreeMap<String, ApiQuantity>,
    kind: &str,
    notes: &mut Vec<String>,
) {
    let resources = c
        .resources
        .get_or_insert_with(ResourceRequirements::default);
    let fill = |list: &mut Option<BTreeMap<String, ApiQuantity>>,
                defaults: &BTreeMap<String, ApiQuantity>| {
        let list = list.get_or_insert_with(BTreeMap::new);
        let mut set = Vec::new();
        for (name, value) in defaults {
            if !list.contains_key(name) {
                list.insert(name.clone(), value.clone());
                set.push(name.clone());
            }
        }
        set
    };
    let set_limits = fill(&mut resources.limits, default_limits);
    let set_requests = fill(&mut resources.requests, default_requests);
    // Upstream leaves empty (non-nil) lists behind; they serialise as `{}`.
    if !set_requests.is_empty() {
        notes.push(format!(
            "{} request for {kind} {}",
            set_requests.join(", "),
            c.name
        ));
    }
    if !set_limits.is_empty() {
        notes.push(format!(
            "{} limit for {kind} {}",
            set_limits.join(", "),
            c.name
        ));
    }
}

/// Request, limit and bound at a common precision: thousandths when all three fit,
/// whole units otherwise (upstream's `requestLimitEnforcedValues`).
fn comparable(
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
    enforced: &Quantity,
) -> (i64, i64, i64) {
    let value = |q: Option<&Quantity>| q.map_or(0, Quantity::value);
    let milli = |q: Option<&Quantity>| q.map_or(0, Quantity::milli_value);
    let (r, l, e) = (value(request), value(limit), enforced.value());
    if r <= MAX_MILLI_VALUE && l <= MAX_MILLI_VALUE && e <= MAX_MILLI_VALUE {
        (milli(request), milli(limit), enforced.milli_value())
    } else {
        (r, l, e)
    }
}

fn min_constraint(
    limit_type: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, e) = comparable(req, lim, enforced);
    let Some(req) = req else {
        return Some(format!(
            "minimum {name} usage per {limit_type} is {enforced}.  No request is specified"
        ));
    };
    if r < e {
        return Some(format!(
            "minimum {name} usage per {limit_type} is {enforced}, but request is {req}"
        ));
    }
    match lim {
        Some(lim) if l < e => Some(format!(
            "minimum {name} usage per {limit_type} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

/// The max bound for kinds that only have requests (claims).
fn max_request_constraint(
    limit_type: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let req = requests.get(name);
    let (r, _, e) = comparable(req, None, enforced);
    let Some(req) = req else {
        return Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}.  No request is specified"
        ));
    };
    (r > e).then(|| {
        format!("maximum {name} usage per {limit_type} is {enforced}, but request is {req}")
    })
}

fn max_constraint(
    limit_type: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, e) = comparable(req, lim, enforced);
    let Some(lim) = lim else {
        return Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}.  No limit is specified"
        ));
    };
    if l > e {
        return Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}, but limit is {lim}"
        ));
    }
    match req {
        Some(req) if r > e => Some(format!(
            "maximum {name} usage per {limit_type} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    limit_type: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(name), limits.get(name));
    let (r, l, _) = comparable(req, lim, enforced);
    if req.is_none() || r == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {limit_type} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || l == 0 {
        return Some(format!(
            "{name} max limit to request ratio per {limit_type} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    // limit / request > enforced, compared exactly in thousandths as upstream does.
    let too_large = if enforced.value() <= MAX_MILLI_VALUE {
        i128::from(l) * 1000 > i128::from(enforced.milli_value()) * i128::from(r)
    } else {
        i128::from(l) > i128::from(enforced.value()) * i128::from(r)
    };
    // The observed ratio is only printed, with Go's `%f`.
    too_large.then(|| {
        format!(
            "{name} max limit to request ratio per {limit_type} is {enforced}, but provided ratio is {:.6}",
            l as f64 / r as f64
        )
    })
}

/// The min, max and maxLimitRequestRatio checks of one item against one set of
/// requests and limits.
fn check_item(
    limit_type: &str,
    min: &ResourceList,
    max: &ResourceList,
    ratio: &ResourceList,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, bound) in min {
        errors.extend(min_constraint(limit_type, name, bound, requests, limits));
    }
    for (name, bound) in max {
        errors.extend(max_constraint(limit_type, name, bound, requests, limits));
    }
    for (name, bound) in ratio {
        errors.extend(ratio_constraint(limit_type, name, bound, requests, limits));
    }
}

/// Every violation of the range by the pod, its containers and init containers
/// (upstream's `PodValidateLimitFunc`).
pub fn validate_pod(range: &LimitRange, pod: &Pod) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return errors;
    };
    for item in range.spec.iter().flat_map(|s| &s.limits) {
        let min = resources::parse_list(item.min.as_ref());
        let max = resources::parse_list(item.max.as_ref());
        let ratio = resources::parse_list(item.max_limit_request_ratio.as_ref());
        match item.type_.as_str() {
            "Container" => {
                for c in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    let resources = c.resources.as_ref();
                    let requests =
                        resources::parse_list(resources.and_then(|r| r.requests.as_ref()));
                    let limits = resources::parse_list(resources.and_then(|r| r.limits.as_ref()));
                    check_item(
                        "Container",
                        &min,
                        &max,
                        &ratio,
                        &requests,
                        &limits,
                        &mut errors,
                    );
                }
            }
            "Pod" => {
                let requests = resources::pod_requests(pod, false);
                let limits = resources::pod_limits(pod, false);
                check_item("Pod", &min, &max, &ratio, &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// Every violation of the range's PersistentVolumeClaim items by the claim's storage
/// requests; claims get no defaults (upstream's `PersistentVolumeClaimValidateLimitFunc`).
pub fn validate_claim(range: &LimitRange, claim: &PersistentVolumeClaim) -> Vec<String> {
    let mut errors = Vec::new();
    let requests = resources::parse_list(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    );
    let no_limits = ResourceList::new();
    for item in range.spec.iter().flat_map(|s| &s.limits) {
        if item.type_ != "PersistentVolumeClaim" {
            continue;
        }
        for (name, bound) in resources::parse_list(item.min.as_ref()) {
            errors.extend(min_constraint(
                "PersistentVolumeClaim",
                &name,
                &bound,
                &requests,
                &no_limits,
            ));
        }
        for (name, bound) in resources::parse_list(item.max.as_ref()) {
            errors.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &name,
                &bound,
                &requests,
            ));
        }
    }
    errors
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admission::test_support::Harness;
    use crate::admission::Admission;
    use serde_json::json;

    fn range(limits: Value) -> LimitRange {
        serde_json::from_value(json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}}))
            .unwrap()
    }

    fn pod(containers: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "x"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn defaults_fill_what_containers_leave_out() {
        let lr = range(json!([{
            "type": "Container",
            "default": {"cpu": "1", "memory": "512Mi"},
            "defaultRequest": {"cpu": "0.5", "memory": "256Mi"}
        }]));
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {
                "containers": [
                    {"name": "app", "resources": {"limits": {"memory": "1Gi"}}},
                    {"name": "side"}
                ],
                "initContainers": [{"name": "init"}]
            }
        }))
        .unwrap();
        apply_defaults(&lr, &mut p);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "256Mi"}})
        );
        assert_eq!(
            v["spec"]["initContainers"][0]["resources"]["requests"]["cpu"],
            "500m"
        );
        assert_eq!(
            v["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container app; cpu limit for container app; \
             cpu, memory request for container side; cpu, memory limit for container side; \
             cpu, memory request for init container init; cpu, memory limit for init container init"
        );
    }

    #[test]
    fn container_bounds_use_upstream_messages() {
        let lr = range(json!([{
            "type": "Container",
            "min": {"cpu": "200m", "memory": "500Mi"},
            "max": {"cpu": "800m", "memory": "1Gi"}
        }]));
        let ok = pod(json!([{"name": "c", "resources": {
            "requests": {"cpu": "500m", "memory": "600Mi"},
            "limits": {"cpu": "800m", "memory": "800Mi"}
        }}]));
        assert!(validate_pod(&lr, &ok).is_empty());

        let too_big = pod(json!([{"name": "c", "resources": {
            "requests": {"cpu": "500m", "memory": "600Mi"},
            "limits": {"cpu": "1500m", "memory": "1536Mi"}
        }}]));
        assert_eq!(
            aggregate(&validate_pod(&lr, &too_big)),
            "[maximum cpu usage per Container is 800m, but limit is 1500m, \
             maximum memory usage per Container is 1Gi, but limit is 1536Mi]"
        );

        let too_small = pod(json!([{"name": "c", "resources": {
            "requests": {"cpu": "100m", "memory": "600Mi"},
            "limits": {"cpu": "800m", "memory": "800Mi"}
        }}]));
        assert_eq!(
            aggregate(&validate_pod(&lr, &too_small)),
            "minimum cpu usage per Container is 200m, but request is 100m"
        );

        let none = pod(json!([{"name": "c"}]));
        let errors = validate_pod(&lr, &none);
        assert_eq!(
            errors[0],
            "minimum cpu usage per Container is 200m.  No request is specified"
        );
        assert!(errors.contains(
            &"maximum memory usage per Container is 1Gi.  No limit is specified".to_string()
        ));
    }

    #[test]
    fn ratio_and_pod_bounds() {
        let lr = range(json!([
            {"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"memory": "1Gi"}, "min": {"cpu": "100m"}}
        ]));
        let p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "300m", "memory": "1Gi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "100m", "memory": "1Gi"}}}
        ]));
        assert_eq!(
            validate_pod(&lr, &p),
            vec![
                "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"
                    .to_string(),
                "maximum memory usage per Pod is 1Gi, but limit is 2Gi".to_string(),
            ]
        );
        let no_request =
            pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(
            validate_pod(&lr, &no_request),
            vec![
                "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0".to_string(),
                "minimum cpu usage per Pod is 100m.  No request is specified".to_string(),
            ]
        );
    }

    #[test]
    fn claims_are_bounded_by_their_requests() {
        let lr = range(json!([{
            "type": "PersistentVolumeClaim",
            "min": {"storage": "1Gi"},
            "max": {"storage": "2Gi"}
        }]));
        let claim = |size: &str| -> PersistentVolumeClaim {
            serde_json::from_value(json!({
                "metadata": {"name": "c"},
                "spec": {"resources": {"requests": {"storage": size}}}
            }))
            .unwrap()
        };
        assert!(validate_claim(&lr, &claim("1Gi")).is_empty());
        assert_eq!(
            validate_claim(&lr, &claim("5Gi")),
            vec!["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"]
        );
        assert_eq!(
            validate_claim(&lr, &claim("500Mi")),
            vec!["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }

    #[tokio::test]
    async fn pods_are_defaulted_and_rejected_end_to_end() {
        let h = Harness::new();
        h.create(
            "",
            "limitranges",
            "default",
            json!({
                "apiVersion": "v1", "kind": "LimitRange",
                "metadata": {"name": "cpu-limit-range"},
                "spec": {"limits": [{
                    "type": "Container",
                    "default": {"cpu": "1", "memory": "1Gi"},
                    "defaultRequest": {"cpu": "0.5", "memory": "1Gi"},
                    "max": {"cpu": "2", "memory": "1Gi"}
                }]}
            }),
        )
        .await
        .unwrap();
        let admission =
            Admission::new(vec![Arc::new(LimitRanger::new(h.store("", "limitranges")))]);
        let pods = h.store("", "pods");
        let created = pods
            .create(
                "default",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "default-cpu-demo"},
                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
                &Default::default(),
                &admission,
            )
            .await
            .unwrap();
        assert_eq!(
            created["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
        );
        let err = pods
            .create(
                "default",
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
                       "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {
                           "requests": {"cpu": "3", "memory": "2Gi"},
                           "limits": {"cpu": "3", "memory": "2Gi"}}}]}}),
                &Default::default(),
                &admission,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"pods "big" is forbidden: [maximum cpu usage per Container is 2, but limit is 3, maximum memory usage per Container is 1Gi, but limit is 2Gi]"#
        );
    }
}
