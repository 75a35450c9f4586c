//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1) as read from `--config`,
//! and the profiles built from it: which plugins filter and score, with which weights.
//!
//! Plugins are in-tree only. The default set and weights are upstream's
//! (`pkg/scheduler/apis/config/v1/default_plugins.go`); `multiPoint` and the per
//! extension point `enabled` / `disabled` lists (`*` disables every default) apply on
//! top of it as upstream merges them.

use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("decoding KubeSchedulerConfiguration: {0}")]
    Decode(String),
    #[error("{0}")]
    Invalid(String),
}

/// The plugins this scheduler has, with upstream's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Plugin {
    PrioritySort,
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    VolumeBinding,
    PodTopologySpread,
    InterPodAffinity,
    DefaultPreemption,
    NodeResourcesBalancedAllocation,
    ImageLocality,
    DefaultBinder,
}

impl Plugin {
    /// Upstream's default plugins, in their order (filters run in this order).
    pub const DEFAULTS: [Plugin; 14] = [
        Plugin::PrioritySort,
        Plugin::NodeUnschedulable,
        Plugin::NodeName,
        Plugin::TaintToleration,
        Plugin::NodeAffinity,
        Plugin::NodePorts,
        Plugin::NodeResourcesFit,
        Plugin::VolumeBinding,
        Plugin::PodTopologySpread,
        Plugin::InterPodAffinity,
        Plugin::DefaultPreemption,
        Plugin::NodeResourcesBalancedAllocation,
        Plugin::ImageLocality,
        Plugin::DefaultBinder,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Plugin::PrioritySort => "PrioritySort",
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::VolumeBinding => "VolumeBinding",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
            Plugin::DefaultPreemption => "DefaultPreemption",
            Plugin::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            Plugin::ImageLocality => "ImageLocality",
            Plugin::DefaultBinder => "DefaultBinder",
        }
    }

    pub fn from_name(name: &str) -> Option<Plugin> {
        Plugin::DEFAULTS.into_iter().find(|p| p.name() == name)
    }

    pub fn is_filter(self) -> bool {
        matches!(
            self,
            Plugin::NodeUnschedulable
                | Plugin::NodeName
                | Plugin::TaintToleration
                | Plugin::NodeAffinity
                | Plugin::NodePorts
                | Plugin::NodeResourcesFit
                | Plugin::VolumeBinding
                | Plugin::PodTopologySpread
                | Plugin::InterPodAffinity
        )
    }

    /// Upstream's default score weight, for plugins that score.
    pub fn default_weight(self) -> Option<i64> {
        match self {
            Plugin::TaintToleration => Some(3),
            Plugin::NodeAffinity | Plugin::PodTopologySpread | Plugin::InterPodAffinity => Some(2),
            Plugin::NodeResourcesFit
            | Plugin::NodeResourcesBalancedAllocation
            | Plugin::ImageLocality => Some(1),
            _ => None,
        }
    }

    /// A bit for sets of plugins (which plugins rejected a pod).
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PluginRef {
    name: String,
    #[serde(default)]
    weight: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PluginSet {
    #[serde(default)]
    enabled: Vec<PluginRef>,
    #[serde(default)]
    disabled: Vec<PluginRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Plugins {
    #[serde(default)]
    multi_point: PluginSet,
    #[serde(default)]
    filter: PluginSet,
    #[serde(default)]
    score: PluginSet,
    #[serde(default)]
    post_filter: PluginSet,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileConfig {
    #[serde(default)]
    scheduler_name: Option<String>,
    #[serde(default)]
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    plugins: Option<Plugins>,
}

/// The `leaderElection` section (`LeaderElectionConfiguration`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeaderElectionConfig {
    pub leader_elect: bool,
    pub lease_duration: String,
    pub resource_name: String,
    pub resource_namespace: String,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            leader_elect: true,
            lease_duration: "15s".into(),
            resource_name: "kube-scheduler".into(),
            resource_namespace: "kube-system".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientConnection {
    #[serde(default)]
    kubeconfig: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfiguration {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    client_connection: Option<ClientConnection>,
    #[serde(default)]
    leader_election: Option<LeaderElectionConfig>,
    #[serde(default)]
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pod_initial_backoff_seconds: Option<u64>,
    #[serde(default)]
    pod_max_backoff_seconds: Option<u64>,
    #[serde(default)]
    profiles: Vec<ProfileConfig>,
}

/// A profile: the pods whose `spec.schedulerName` is `scheduler_name` are scheduled with
/// these plugins.
#[derive(Debug, Clone)]
pub struct Profile {
    pub scheduler_name: String,
    /// Filter plugins in upstream's order.
    pub filters: Vec<Plugin>,
    /// Score plugins and their weights.
    pub scores: Vec<(Plugin, i64)>,
    pub preemption: bool,
    /// The profile's own `percentageOfNodesToScore`, else the global one.
    pub percentage_of_nodes_to_score: Option<i32>,
}

impl Profile {
    pub fn default_profile(name: &str) -> Profile {
        Profile {
            scheduler_name: name.to_string(),
            filters: Plugin::DEFAULTS
                .into_iter()
                .filter(|p| p.is_filter())
                .collect(),
            scores: Plugin::DEFAULTS
                .into_iter()
                .filter_map(|p| Some((p, p.default_weight()?)))
                .collect(),
            preemption: true,
            percentage_of_nodes_to_score: None,
        }
    }

    pub fn filters(&self, plugin: Plugin) -> bool {
        self.filters.contains(&plugin)
    }

    pub fn weight(&self, plugin: Plugin) -> i64 {
        self.scores
            .iter()
            .find(|(p, _)| *p == plugin)
            .map_or(0, |(_, w)| *w)
    }
}

/// The configuration the scheduler runs with.
#[derive(Debug, Clone)]
pub struct Configuration {
    pub profiles: Vec<Profile>,
    pub percentage_of_nodes_to_score: i32,
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    pub leader_election: LeaderElectionConfig,
    pub kubeconfig: Option<String>,
}

impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            profiles: vec![Profile::default_profile(DEFAULT_SCHEDULER_NAME)],
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            leader_election: LeaderElectionConfig::default(),
            kubeconfig: None,
        }
    }
}

fn lookup(name: &str) -> Result<Plugin, ConfigError> {
    Plugin::from_name(name)
        .ok_or_else(|| ConfigError::Invalid(format!("plugin {name:?} does not exist")))
}

fn apply_set(
    set: &PluginSet,
    current: &mut Vec<Plugin>,
    mut accept: impl FnMut(Plugin) -> bool,
) -> Result<(), ConfigError> {
    for d in &set.disabled {
        if d.name == "*" {
            current.clear();
        } else {
            let p = lookup(&d.name)?;
            current.retain(|x| *x != p);
        }
    }
    for e in &set.enabled {
        let p = lookup(&e.name)?;
        if accept(p) && !current.contains(&p) {
            current.push(p);
        }
    }
    Ok(())
}

fn build_profile(raw: &ProfileConfig) -> Result<Profile, ConfigError> {
    let name = raw
        .scheduler_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string());
    let mut profile = Profile::default_profile(&name);
    profile.percentage_of_nodes_to_score = raw.percentage_of_nodes_to_score;
    let Some(plugins) = raw.plugins.as_ref() else {
        return Ok(profile);
    };
    let mut weights: Vec<(Plugin, i64)> = Vec::new();
    for e in plugins
        .multi_point
        .enabled
        .iter()
        .chain(plugins.score.enabled.iter())
    {
        if let Some(w) = e.weight.filter(|w| *w != 0) {
            weights.push((lookup(&e.name)?, w));
        }
    }
    // multiPoint applies to every extension point the plugin implements.
    let mut all: Vec<Plugin> = Plugin::DEFAULTS.to_vec();
    apply_set(&plugins.multi_point, &mut all, |_| true)?;
    let mut filters: Vec<Plugin> = all.iter().copied().filter(|p| p.is_filter()).collect();
    apply_set(&plugins.filter, &mut filters, Plugin::is_filter)?;
    // Keep upstream's order so the first failing filter is the one upstream reports.
    filters.sort();
    let mut scores: Vec<Plugin> = all
        .iter()
        .copied()
        .filter(|p| p.default_weight().is_some())
        .collect();
    apply_set(&plugins.score, &mut scores, |p| {
        p.default_weight().is_some()
    })?;
    let mut post: Vec<Plugin> = all
        .iter()
        .copied()
        .filter(|p| *p == Plugin::DefaultPreemption)
        .collect();
    apply_set(&plugins.post_filter, &mut post, |p| {
        p == Plugin::DefaultPreemption
    })?;
    profile.filters = filters;
    profile.scores = scores
        .into_iter()
        .map(|p| {
            let w = weights
                .iter()
                .rev()
                .find(|(x, _)| *x == p)
                .map(|(_, w)| *w)
                .or(p.default_weight())
                .unwrap_or(1);
            (p, w)
        })
        .collect();
    profile.preemption = !post.is_empty();
    Ok(profile)
}

impl Configuration {
    pub fn load(path: &std::path::Path) -> Result<Configuration, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Configuration, ConfigError> {
        let raw: RawConfiguration =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode(e.to_string()))?;
        if let Some(kind) = raw.kind.as_deref() {
            if kind != "KubeSchedulerConfiguration" {
                return Err(ConfigError::Invalid(format!(
                    "unexpected kind {kind:?}, want KubeSchedulerConfiguration"
                )));
            }
        }
        if let Some(v) = raw.api_version.as_deref() {
            if v != "kubescheduler.config.k8s.io/v1" {
                return Err(ConfigError::Invalid(format!(
                    "no kind \"KubeSchedulerConfiguration\" is registered for version {v:?}"
                )));
            }
        }
        let mut config = Configuration::default();
        if let Some(le) = raw.leader_election {
            config.leader_election = le;
        }
        config.kubeconfig = raw
            .client_connection
            .and_then(|c| c.kubeconfig)
            .filter(|k| !k.is_empty());
        if let Some(p) = raw.percentage_of_nodes_to_score {
            if !(0..=100).contains(&p) {
                return Err(ConfigError::Invalid(format!(
                    "percentageOfNodesToScore: Invalid value: {p}: not in valid range [0-100]"
                )));
            }
            config.percentage_of_nodes_to_score = p;
        }
        if let Some(s) = raw.pod_initial_backoff_seconds {
            config.pod_initial_backoff = Duration::from_secs(s);
        }
        if let Some(s) = raw.pod_max_backoff_seconds {
            config.pod_max_backoff = Duration::from_secs(s);
        }
        if !raw.profiles.is_empty() {
            config.profiles = raw
                .profiles
                .iter()
                .map(build_profile)
                .collect::<Result<_, _>>()?;
        }
        let mut names: Vec<&str> = config
            .profiles
            .iter()
            .map(|p| p.scheduler_name.as_str())
            .collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(ConfigError::Invalid(
                "profiles: Duplicate value: duplicate schedulerName".into(),
            ));
        }
        Ok(config)
    }

    pub fn profile(&self, scheduler_name: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.scheduler_name == scheduler_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_upstream() {
        let c = Configuration::default();
        let p = &c.profiles[0];
        assert_eq!(p.scheduler_name, "default-scheduler");
        assert_eq!(p.weight(Plugin::TaintToleration), 3);
        assert_eq!(p.weight(Plugin::NodeAffinity), 2);
        assert_eq!(p.weight(Plugin::NodeResourcesFit), 1);
        assert!(p.filters(Plugin::InterPodAffinity));
        assert!(p.preemption);
    }

    #[test]
    fn profiles_plugins_and_weights() {
        let c = Configuration::parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
leaderElection:
  leaderElect: false
profiles:
- schedulerName: default-scheduler
- schedulerName: no-taints
  plugins:
    filter:
      disabled:
      - name: TaintToleration
    score:
      enabled:
      - name: NodeResourcesBalancedAllocation
        weight: 5
    postFilter:
      disabled:
      - name: "*"
"#,
        )
        .unwrap();
        assert_eq!(c.percentage_of_nodes_to_score, 30);
        assert!(!c.leader_election.leader_elect);
        assert_eq!(c.profiles.len(), 2);
        let p = c.profile("no-taints").unwrap();
        assert!(!p.filters(Plugin::TaintToleration));
        assert!(p.filters(Plugin::NodeResourcesFit));
        assert_eq!(p.weight(Plugin::NodeResourcesBalancedAllocation), 5);
        assert!(!p.preemption);
        assert!(c.profile("default-scheduler").unwrap().preemption);
    }

    #[test]
    fn rejects_unknown_plugins_and_duplicates() {
        assert!(Configuration::parse(
            "profiles:\n- schedulerName: a\n  plugins:\n    filter:\n      enabled:\n      - name: Nope\n"
        )
        .is_err());
        assert!(
            Configuration::parse("profiles:\n- schedulerName: a\n- schedulerName: a\n").is_err()
        );
    }
}
