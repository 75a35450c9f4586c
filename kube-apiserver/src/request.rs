//! What a request is about, parsed from its method, path and query as upstream's
//! `RequestInfoFactory` does, and who sent it.

use std::collections::HashMap;

/// The authenticated user (upstream `user.Info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: HashMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// A request for a resource, or for a non-resource path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection, or the
    /// lower-cased method for non-resource requests.
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub parts: Vec<String>,
}

/// Parse a request. `query` is the decoded query map.
pub fn parse(method: &http::Method, path: &str, query: &HashMap<String, String>) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_lowercase(),
        ..Default::default()
    };
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut rest: &[&str] = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => {
            info.api_prefix = "api".into();
            info.api_version = (*version).into();
            rest
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            info.api_prefix = "apis".into();
            info.api_group = (*group).into();
            info.api_version = (*version).into();
            rest
        }
        _ => return info,
    };
    info.is_resource_request = true;
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest = &rest[1..];
    }
    // /namespaces/{ns}/{resource}... names a namespaced resource, except
    // /namespaces/{name}[/status|finalize] which is the namespace itself.
    if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !matches!(rest[2], "status" | "finalize")
    {
        info.namespace = rest[1].into();
        rest = &rest[2..];
    }
    info.parts = rest.iter().map(|s| s.to_string()).collect();
    if let Some(r) = rest.first() {
        info.resource = (*r).into();
    }
    if let Some(n) = rest.get(1) {
        info.name = (*n).into();
    }
    if let Some(s) = rest.get(2) {
        info.subresource = (*s).into();
    }
    if info.resource == "namespaces" && info.namespace.is_empty() && !info.name.is_empty() {
        // The namespace of a namespace is itself, for authorization.
        info.namespace = info.name.clone();
    }
    let is_watch =
        watch_path || matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    info.verb = match *method {
        http::Method::GET | http::Method::HEAD => {
            if is_watch {
                "watch"
            } else if info.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => {
            if info.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        _ => info.verb.as_str(),
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: http::Method, path: &str, watch: bool) -> RequestInfo {
        let mut q = HashMap::new();
        if watch {
            q.insert("watch".to_string(), "true".to_string());
        }
        parse(&method, path, &q)
    }

    #[test]
    fn namespaced_resources() {
        let i = p(
            http::Method::GET,
            "/api/v1/namespaces/default/pods/web/log",
            false,
        );
        assert!(i.is_resource_request);
        assert_eq!(
            (i.namespace.as_str(), i.resource.as_str(), i.name.as_str()),
            ("default", "pods", "web")
        );
        assert_eq!(i.subresource, "log");
        assert_eq!(i.verb, "get");
        let i = p(
            http::Method::GET,
            "/apis/apps/v1/namespaces/ns1/deployments",
            true,
        );
        assert_eq!((i.api_group.as_str(), i.verb.as_str()), ("apps", "watch"));
        let i = p(
            http::Method::DELETE,
            "/api/v1/namespaces/default/configmaps",
            false,
        );
        assert_eq!(i.verb, "deletecollection");
    }

    #[test]
    fn namespaces_themselves() {
        let i = p(http::Method::GET, "/api/v1/namespaces/kube-system", false);
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
        let i = p(http::Method::PUT, "/api/v1/namespaces/x/finalize", false);
        assert_eq!(
            (i.resource.as_str(), i.subresource.as_str(), i.verb.as_str()),
            ("namespaces", "finalize", "update")
        );
        let i = p(http::Method::GET, "/api/v1/namespaces", false);
        assert_eq!(
            (i.resource.as_str(), i.verb.as_str()),
            ("namespaces", "list")
        );
    }

    #[test]
    fn non_resource_paths() {
        assert!(!p(http::Method::GET, "/api/v1", false).is_resource_request);
        assert!(!p(http::Method::GET, "/apis/apps", false).is_resource_request);
        assert!(!p(http::Method::GET, "/healthz", false).is_resource_request);
    }
}
