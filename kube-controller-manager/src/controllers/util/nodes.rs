//! Whether a pod fits a node by the rules a controller checks before the scheduler does:
//! `spec.nodeName`, `spec.nodeSelector`, required node affinity and taints against
//! tolerations (upstream's `component-helpers/scheduling/corev1` helpers, as the
//! DaemonSet controller uses them; single tolerations are matched by [`super::taints`]).

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

use super::taints::tolerates;

/// The first taint, among those `filter` selects, that no toleration tolerates
/// (`FindMatchingUntoleratedTaint`).
pub fn untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|taint| !tolerations.iter().any(|tol| tolerates(tol, taint)))
}

fn requirement_matches_labels(req: &NodeSelectorRequirement, node: &Node) -> bool {
    let value = node.metadata.labels.as_ref().and_then(|l| l.get(&req.key));
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            // Exactly one integer value, compared with the label read as an integer.
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(bound)) => {
                    if req.operator == "Gt" {
                        v > bound
                    } else {
                        v < bound
                    }
                }
                _ => false,
            }
        }
        _ => false,
    }
}

fn requirement_matches_fields(req: &NodeSelectorRequirement, node: &Node) -> bool {
    // `metadata.name` is the only field a node selector may name.
    if req.key != "metadata.name" {
        return false;
    }
    let name = node.metadata.name.as_deref().unwrap_or("");
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" => values.iter().any(|v| v == name),
        "NotIn" => !values.iter().any(|v| v == name),
        _ => false,
    }
}

/// Whether `node` matches one term: every label expression and every field expression.
/// A term with neither matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches_labels(r, node))
        && fields.iter().all(|r| requirement_matches_fields(r, node))
}

/// Whether the pod's `nodeSelector` and required node affinity both admit `node`
/// (`GetRequiredNodeAffinity(pod).Match(node)`).
pub fn matches_required_affinity(spec: &PodSpec, node: &Node) -> bool {
    if let Some(selector) = &spec.node_selector {
        let labels = node.metadata.labels.as_ref();
        if !selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
    }
}

/// The node a pod is bound to, or, before binding, the single node its required node
/// affinity names by `metadata.name` (upstream's `GetTargetNodeName`, which is how
/// DaemonSet pods carry their node until the scheduler binds them).
pub fn target_node(spec: &PodSpec) -> Option<&str> {
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name);
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|term| {
        term.match_fields
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find_map(|req| {
                let values = req.values.as_deref().unwrap_or_default();
                (req.key == "metadata.name" && req.operator == "In" && values.len() == 1)
                    .then(|| values[0].as_str())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_terms(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn untolerated_taints() {
        let everything = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let taints = vec![
            taint("a", "", "NoSchedule"),
            taint("b", "", "PreferNoSchedule"),
        ];
        assert_eq!(
            untolerated_taint(&taints, &[], |t| t.effect != "PreferNoSchedule")
                .map(|t| t.key.as_str()),
            Some("a")
        );
        assert!(untolerated_taint(&taints, &[everything], |_| true).is_none());
    }

    #[test]
    fn affinity_and_selector() {
        let n = node("n1", &[("disk", "ssd"), ("cores", "8")]);
        let mut spec = PodSpec {
            node_selector: Some([("disk".to_string(), "ssd".to_string())].into()),
            ..Default::default()
        };
        assert!(matches_required_affinity(&spec, &n));
        spec.node_selector = Some([("disk".to_string(), "hdd".to_string())].into());
        assert!(!matches_required_affinity(&spec, &n));

        let spec = with_terms(vec![NodeSelectorTerm {
            match_expressions: Some(vec![req("cores", "Gt", &["4"])]),
            match_fields: None,
        }]);
        assert!(matches_required_affinity(&spec, &n));
        let spec = with_terms(vec![
            NodeSelectorTerm {
                match_expressions: Some(vec![req("disk", "NotIn", &["ssd"])]),
                match_fields: None,
            },
            NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
            },
        ]);
        assert!(matches_required_affinity(&spec, &n), "terms are ORed");
        assert!(!matches_required_affinity(
            &spec,
            &node("n2", &[("disk", "ssd")])
        ));
        assert_eq!(target_node(&spec), Some("n1"));
        let empty = with_terms(vec![NodeSelectorTerm::default()]);
        assert!(
            !matches_required_affinity(&empty, &n),
            "an empty term matches nothing"
        );
    }
}
