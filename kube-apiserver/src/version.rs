//! `/version`: the Kubernetes version this server implements.

use serde_json::{json, Value};

/// The API level served (k8s-openapi's v1_33 types).
pub const GIT_VERSION: &str = "v1.33.0-rs";

pub fn info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "none (rust)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}
