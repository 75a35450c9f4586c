//! The scheduling framework's data: the per-pod and per-node views the plugins read
//! ([`types`]), the result of a plugin ([`Status`]) and matching helpers ([`helpers`]).
//! Plugins are in-tree only, so the extension points are plain functions in
//! [`crate::plugins`] and the per-cycle state is a plain struct there.

pub mod helpers;
pub mod types;

use std::borrow::Cow;

pub use types::{NodeInfo, PodInfo, Resource};

/// The highest score a Score plugin gives after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Success,
    /// An internal error: the pod goes to the backoff queue, not the unschedulable pool.
    Error,
    /// The pod does not fit now; preemption may help.
    Unschedulable,
    /// The pod does not fit and preempting pods on the node would not change that.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter / PreScore).
    Skip,
}

/// A plugin's answer: a code, the reasons shown to users (one per failed check) and the
/// plugin that failed, so that the queue knows which plugin's events may help the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
    pub plugin: &'static str,
}

impl Status {
    pub const fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub const fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::Error, reason)
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined as upstream's `Status.Message()` does.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// A node's score from one plugin (or the weighted total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeScore {
    pub index: usize,
    pub score: i64,
}
