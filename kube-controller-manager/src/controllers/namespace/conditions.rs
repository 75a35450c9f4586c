//! The namespace's deletion conditions, as upstream's `namespaceConditionUpdater`
//! writes them: every condition type is always present, `False` with an "ok" reason
//! and message unless this pass found the problem, and a condition keeps its
//! `lastTransitionTime` while its status, reason and message stay the same.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GV_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// In upstream's order.
const TYPES: [&str; 5] = [
    DISCOVERY_FAILURE,
    GV_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

fn ok(type_: &str) -> (&'static str, &'static str) {
    match type_ {
        DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        GV_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        CONTENT_REMAINING => ("ContentRemoved", "All content successfully removed"),
        _ => (
            "ContentHasNoFinalizers",
            "All content-preserving finalizers have been removed",
        ),
    }
}

/// Objects left after one pass.
#[derive(Debug, Default)]
pub struct ContentTotals {
    /// (resource, group) → objects remaining.
    pub remaining: BTreeMap<(String, String), usize>,
    /// finalizer → objects carrying it.
    pub finalizers: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct Updater {
    /// type → (reason, message) of the failures found.
    found: BTreeMap<&'static str, (&'static str, String)>,
    content_errors: Vec<String>,
}

impl Updater {
    pub fn discovery_failed(&mut self, message: String) {
        self.found
            .insert(DISCOVERY_FAILURE, ("DiscoveryFailed", message));
    }

    pub fn content_failed(&mut self, error: String) {
        self.content_errors.push(error);
    }

    pub fn content_totals(&mut self, totals: &ContentTotals) {
        let remaining: Vec<String> = totals
            .remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((resource, group), n)| format!("{resource}.{group} has {n} resource instances"))
            .collect();
        if !remaining.is_empty() {
            self.found.insert(
                CONTENT_REMAINING,
                (
                    "SomeResourcesRemain",
                    format!("Some resources are remaining: {}", sorted(remaining)),
                ),
            );
        }
        let finalizers: Vec<String> = totals
            .finalizers
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        if !finalizers.is_empty() {
            self.found.insert(
                FINALIZERS_REMAINING,
                (
                    "SomeFinalizersRemain",
                    format!(
                        "Some content in the namespace has finalizers remaining: {}",
                        sorted(finalizers)
                    ),
                ),
            );
        }
    }

    /// The namespace's new conditions (other condition types kept after these), and
    /// whether they differ from `old`.
    pub fn update(mut self, old: &[NamespaceCondition]) -> (Vec<NamespaceCondition>, bool) {
        if !self.content_errors.is_empty() {
            let aggregate = if self.content_errors.len() == 1 {
                self.content_errors[0].clone()
            } else {
                format!("[{}]", self.content_errors.join(", "))
            };
            self.found.insert(
                CONTENT_FAILURE,
                (
                    "ContentDeletionFailed",
                    format!(
                        "Failed to delete all resource types, {} remaining: {aggregate}",
                        self.content_errors.len()
                    ),
                ),
            );
        }
        let now = Time(jiff::Timestamp::now());
        let mut out = Vec::new();
        for type_ in TYPES {
            let (status, reason, message) = match self.found.remove(type_) {
                Some((reason, message)) => ("True", reason.to_string(), message),
                None => {
                    let (reason, message) = ok(type_);
                    ("False", reason.to_string(), message.to_string())
                }
            };
            let previous = old.iter().find(|c| c.type_ == type_);
            let unchanged = previous.is_some_and(|p| {
                p.status == status
                    && p.reason.as_deref() == Some(reason.as_str())
                    && p.message.as_deref() == Some(message.as_str())
            });
            match previous {
                Some(p) if unchanged => out.push(p.clone()),
                _ => out.push(NamespaceCondition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: Some(reason),
                    message: Some(message),
                    last_transition_time: Some(now.clone()),
                }),
            }
        }
        out.extend(
            old.iter()
                .filter(|c| !TYPES.contains(&c.type_.as_str()))
                .cloned(),
        );
        let changed = out.as_slice() != old;
        (out, changed)
    }
}

fn sorted(mut v: Vec<String>) -> String {
    v.sort();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_clear_conditions_are_false_with_upstream_reasons_and_stable() {
        let (conditions, changed) = Updater::default().update(&[]);
        assert!(changed);
        let summary: Vec<(&str, &str, &str)> = conditions
            .iter()
            .map(|c| {
                (
                    c.type_.as_str(),
                    c.status.as_str(),
                    c.reason.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (DISCOVERY_FAILURE, "False", "ResourcesDiscovered"),
                (GV_PARSING_FAILURE, "False", "ParsedGroupVersions"),
                (CONTENT_FAILURE, "False", "ContentDeleted"),
                (CONTENT_REMAINING, "False", "ContentRemoved"),
                (FINALIZERS_REMAINING, "False", "ContentHasNoFinalizers"),
            ]
        );
        // The same outcome again changes nothing.
        let (again, changed) = Updater::default().update(&conditions);
        assert!(!changed);
        assert_eq!(again, conditions);
    }

    #[test]
    fn remaining_content_and_failures_are_reported() {
        let mut u = Updater::default();
        let mut totals = ContentTotals::default();
        totals.remaining.insert(("pods".into(), String::new()), 2);
        totals
            .remaining
            .insert(("configmaps".into(), String::new()), 1);
        totals.finalizers.insert("example.com/hold".into(), 1);
        u.content_totals(&totals);
        u.content_failed("boom".into());
        let (c, _) = u.update(&[]);
        let find = |t: &str| c.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(
            find(CONTENT_REMAINING).message.as_deref(),
            Some("Some resources are remaining: configmaps. has 1 resource instances, pods. has 2 resource instances")
        );
        assert_eq!(
            find(FINALIZERS_REMAINING).message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances")
        );
        let failure = find(CONTENT_FAILURE);
        assert_eq!(
            (
                failure.status.as_str(),
                failure.reason.as_deref(),
                failure.message.as_deref()
            ),
            (
                "True",
                Some("ContentDeletionFailed"),
                Some("Failed to delete all resource types, 1 remaining: boom")
            )
        );
    }
}
