//! leases: the heartbeats of nodes (kube-node-lease) and the locks of leader election.
//! Every node renews its lease every 10 s, so this strategy does no more than upstream's
//! `ValidateLease` asks: a few integer checks and nothing that allocates per field.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct LeaseStrategy;

/// The strategies of coordinated leader election that need no domain prefix.
const LEASE_STRATEGIES: &[&str] = &["OldestEmulationVersion"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

/// Whether a spec uses the fields of coordinated leader election, an alpha feature that
/// upstream drops from requests unless its gate is on (it is off by default).
fn uses_coordinated_election(spec: Option<&LeaseSpec>) -> bool {
    spec.is_some_and(|s| s.strategy.is_some() || s.preferred_holder.is_some())
}

fn drop_coordinated_election(lease: &mut Lease) {
    if let Some(spec) = lease.spec.as_mut() {
        spec.strategy = None;
        spec.preferred_holder = None;
    }
}

fn validate_strategy(strategy: &str, path: &Path) -> ErrorList {
    if !strategy.contains('/') {
        if LEASE_STRATEGIES.contains(&strategy) {
            return Vec::new();
        }
        return vec![FieldError::not_supported(
            &path.child("strategy"),
            strategy,
            LEASE_STRATEGIES,
        )];
    }
    validation::is_qualified_name(strategy)
        .into_iter()
        .map(|msg| FieldError::invalid(&path.child("strategy"), strategy, msg))
        .collect()
}

fn validate_spec(spec: &LeaseSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            &path.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        errs.push(FieldError::invalid(
            &path.child("leaseTransitions"),
            t,
            validation::IS_NEGATIVE_ERROR_MSG,
        ));
    }
    if let Some(strategy) = spec.strategy.as_deref() {
        errs.extend(validate_strategy(strategy, &path.child("strategy")));
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && spec.strategy.as_deref().is_none_or(str::is_empty)
    {
        errs.push(FieldError::forbidden(
            &path.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

impl TypedStrategy for LeaseStrategy {
    type Object = Lease;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Lease>()
    }

    fn prepare_for_create(&self, lease: &mut Lease) {
        drop_coordinated_election(lease);
    }

    fn prepare_for_update(&self, new: &mut Lease, old: &Lease) {
        if !uses_coordinated_election(old.spec.as_ref()) {
            drop_coordinated_election(new);
        }
    }

    fn validate(&self, lease: &Lease) -> ErrorList {
        match lease.spec.as_ref() {
            Some(spec) => validate_spec(spec, &Path::new("spec")),
            None => Vec::new(),
        }
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, lease: &Lease, raw: &Value) -> Vec<Value> {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        vec![
            lease.metadata.name.clone().unwrap_or_default().into(),
            holder.into(),
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

    fn strategy() -> Typed<LeaseStrategy> {
        Typed::new(LeaseStrategy)
    }

    fn lease(spec: Value) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": spec,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_lease_passes() {
        let s = strategy();
        let obj = s
            .decode(lease(json!({
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2024-01-01T00:00:00.000000Z",
            })))
            .unwrap();
        assert!(s.validate(&obj).is_empty());
    }

    #[test]
    fn durations_and_transitions_are_checked() {
        let s = strategy();
        let obj = s
            .decode(lease(
                json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}),
            ))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn coordinated_election_fields_are_dropped_while_the_feature_is_off() {
        let s = strategy();
        let mut obj = s
            .decode(lease(
                json!({"holderIdentity": "a", "preferredHolder": "b", "strategy": "Bogus"}),
            ))
            .unwrap();
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["spec"], json!({"holderIdentity": "a"}));
        assert!(s.validate(&obj).is_empty());
    }

    #[test]
    fn strategy_is_validated_when_present() {
        let errs = validate_spec(
            &LeaseSpec {
                strategy: Some("Bogus".into()),
                ..Default::default()
            },
            &Path::new("spec"),
        );
        assert_eq!(
            messages(&errs),
            vec![
                r#"spec.strategy.strategy: Unsupported value: "Bogus": supported values: "OldestEmulationVersion""#
            ]
        );
        let errs = validate_spec(
            &LeaseSpec {
                preferred_holder: Some("x".into()),
                ..Default::default()
            },
            &Path::new("spec"),
        );
        assert_eq!(
            messages(&errs),
            vec!["spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"]
        );
    }

    #[test]
    fn row_prints_the_holder() {
        let s = strategy();
        let obj = s
            .decode(lease(json!({"holderIdentity": "node-1"})))
            .unwrap();
        let row = s.row(&obj);
        assert_eq!(row[0], json!("node-1"));
        assert_eq!(row[1], json!("node-1"));
        assert_eq!(row.len(), s.columns().len());
        let empty = s.decode(lease(json!({}))).unwrap();
        assert_eq!(s.row(&empty)[1], json!(""));
    }
}
