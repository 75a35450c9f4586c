//! subPath and subPathExpr of a volumeMount, as upstream's kubelet `makeMounts`: the
//! expression is expanded with the container's environment, the result must be relative
//! and free of `..`, the sub directory is created when missing (with the volume's mode),
//! and it must resolve inside the volume (no symlink escapes).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

/// Upstream's `expansion.Expand`: `$(NAME)` is replaced by its value, `$$` is a literal
/// `$`, an unknown `$(NAME)` stays as written. Returns the names without a (non-empty)
/// value, which subPathExpr treats as an error.
pub fn expand(input: &str, env: &HashMap<String, String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match env.get(name).filter(|v| !v.is_empty()) {
                            Some(value) => out.push_str(value),
                            None => {
                                if !missing.iter().any(|m| m == name) {
                                    missing.push(name.to_string());
                                }
                                out.push_str(&input[i..i + 3 + end]);
                            }
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        // Copy one whole UTF-8 character.
        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    missing.sort();
    (out, missing)
}

/// The container's environment as subPathExpr sees it: literal values (themselves
/// expanded with the earlier ones) and the downward API fields known before the
/// container starts.
pub fn container_env(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            Some(expand(value, &env).0)
        } else {
            var.value_from
                .as_ref()
                .and_then(|from| from.field_ref.as_ref())
                .and_then(|f| field_value(pod, &f.field_path))
        };
        if let Some(value) = value {
            env.insert(var.name.clone(), value);
        }
    }
    env
}

/// The value of a downward API field path of an environment variable.
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    if let Some(key) = subscript(path, "metadata.labels") {
        return meta.labels.as_ref()?.get(key).cloned();
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return meta.annotations.as_ref()?.get(key).cloned();
    }
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec?.node_name.clone(),
        "spec.serviceAccountName" => spec?.service_account_name.clone(),
        "status.hostIP" => status?.host_ip.clone(),
        "status.podIP" => status?.pod_ip.clone(),
        _ => None,
    }
}

/// `metadata.labels['key']` → `key`.
pub fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// The sub path of a mount (subPath, or subPathExpr expanded), validated; `None` when the
/// mount has neither.
pub fn sub_path(
    pod: &Pod,
    container: &Container,
    sub_path: Option<&str>,
    sub_path_expr: Option<&str>,
) -> Result<Option<String>, String> {
    let path = match (
        sub_path.filter(|s| !s.is_empty()),
        sub_path_expr.filter(|s| !s.is_empty()),
    ) {
        (Some(p), _) => p.to_string(),
        (None, Some(expr)) => {
            let (expanded, missing) = expand(expr, &container_env(pod, container));
            if !missing.is_empty() {
                return Err(format!("missing value for {}", missing.join(", ")));
            }
            expanded
        }
        (None, None) => return Ok(None),
    };
    validate(&path)?;
    Ok(Some(path))
}

/// Upstream's checks: not absolute, no `..` component.
pub fn validate(sub_path: &str) -> Result<(), String> {
    if Path::new(sub_path).is_absolute() {
        return Err(format!(
            "error SubPath `{sub_path}` must not be an absolute path"
        ));
    }
    if sub_path.split('/').any(|c| c == "..") {
        return Err(format!(
            "unable to provision SubPath `{sub_path}`: must not contain '..'"
        ));
    }
    Ok(())
}

/// Creates `volume/sub_path` when missing (directories with the volume's permission bits,
/// as upstream's `SafeMakeDir`) and returns it, refusing a path that resolves outside the
/// volume through a symlink.
pub fn prepare(volume: &Path, sub_path: &str, what: &str) -> Result<PathBuf, String> {
    let target = volume.join(sub_path);
    let volume_real =
        std::fs::canonicalize(volume).map_err(|e| format!("{}: {e}", volume.display()))?;
    if std::fs::symlink_metadata(&target).is_err() {
        let mode = std::fs::metadata(&volume_real)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        // Create one component at a time so that every directory is checked to be inside.
        let mut current = volume_real.clone();
        for component in Path::new(sub_path).components() {
            current.push(component);
            match std::fs::symlink_metadata(&current) {
                Ok(_) => {
                    current = std::fs::canonicalize(&current).map_err(|e| e.to_string())?;
                    if !current.starts_with(&volume_real) {
                        return Err(outside(sub_path, volume));
                    }
                }
                Err(_) => {
                    std::fs::create_dir(&current)
                        .and_then(|()| {
                            std::fs::set_permissions(&current, std::fs::Permissions::from_mode(mode))
                        })
                        .map_err(|e| {
                            tracing::warn!(path = %current.display(), error = %e, "creating subPath");
                            format!("failed to create subPath directory for {what}")
                        })?;
                }
            }
        }
    }
    let real = std::fs::canonicalize(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    if !real.starts_with(&volume_real) {
        return Err(outside(sub_path, volume));
    }
    Ok(real)
}

fn outside(sub_path: &str, volume: &Path) -> String {
    format!(
        "subpath {sub_path:?} not within volume path {:?}",
        volume.display().to_string()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

    #[test]
    fn expands_like_upstream() {
        let env: HashMap<String, String> = [
            ("A".to_string(), "x".to_string()),
            ("E".to_string(), String::new()),
        ]
        .into();
        assert_eq!(expand("$(A)/y", &env), ("x/y".into(), vec![]));
        assert_eq!(expand("$$(A)", &env), ("$(A)".into(), vec![]));
        assert_eq!(
            expand("$(B)-$(E)", &env),
            ("$(B)-$(E)".into(), vec!["B".into(), "E".into()])
        );
        assert_eq!(expand("a$b$(A", &env), ("a$b$(A".into(), vec![]));
        assert_eq!(expand("é$(A)", &env), ("éx".into(), vec![]));
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [], "nodeName": "n1"}
        }))
        .unwrap()
    }

    fn container(env: Vec<(&str, Option<&str>, Option<&str>)>) -> Container {
        Container {
            name: "c".into(),
            env: Some(
                env.into_iter()
                    .map(|(name, value, field)| EnvVar {
                        name: name.into(),
                        value: value.map(String::from),
                        value_from: field.map(|f| EnvVarSource {
                            field_ref: Some(ObjectFieldSelector {
                                field_path: f.into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn sub_path_expr_uses_the_container_environment() {
        let c = container(vec![
            ("POD", None, Some("metadata.name")),
            ("APP", None, Some("metadata.labels['app']")),
            ("DIR", Some("logs/$(POD)"), None),
        ]);
        let p = pod();
        assert_eq!(
            sub_path(&p, &c, None, Some("$(DIR)/$(APP)")).unwrap(),
            Some("logs/web-0/web".into())
        );
        assert_eq!(
            sub_path(&p, &c, None, Some("$(NOPE)")).unwrap_err(),
            "missing value for NOPE"
        );
        assert_eq!(sub_path(&p, &c, None, None).unwrap(), None);
        assert_eq!(
            sub_path(&p, &c, Some("/etc"), None).unwrap_err(),
            "error SubPath `/etc` must not be an absolute path"
        );
        assert_eq!(
            sub_path(&p, &c, Some("a/../../x"), None).unwrap_err(),
            "unable to provision SubPath `a/../../x`: must not contain '..'"
        );
        assert!(sub_path(&p, &c, None, Some("../$(POD)")).is_err());
        sub_path(&p, &c, Some("a..b/c"), None).unwrap();
    }

    #[test]
    fn prepare_creates_and_confines() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = prepare(&vol, "a/b", "volumeMount \"v\"").unwrap();
        assert!(p.is_dir());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o777
        );
        // An existing file is fine (a file subPath).
        std::fs::write(vol.join("f"), "x").unwrap();
        assert!(prepare(&vol, "f", "m").unwrap().is_file());
        // A symlink out of the volume is refused.
        std::os::unix::fs::symlink("/etc", vol.join("out")).unwrap();
        let err = prepare(&vol, "out", "m").unwrap_err();
        assert!(err.contains("not within volume path"), "{err}");
        let err = prepare(&vol, "out/new", "m").unwrap_err();
        assert!(err.contains("not within volume path"), "{err}");
        assert!(!Path::new("/etc/new").exists());
    }
}
