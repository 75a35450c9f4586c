//! `/healthz`, `/livez` and `/readyz`, with upstream's named checks and text output
//! (`[+]etcd ok`), `?verbose`, `?exclude=<check>` and `/<endpoint>/<check>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::StatusError;
use http::StatusCode;

use crate::apiserver::ApiServer;
use crate::handlers::Reply;

const ENDPOINTS: &[&str] = &["/healthz", "/livez", "/readyz"];

pub fn is_health_path(path: &str) -> bool {
    ENDPOINTS.iter().any(|e| {
        path == *e
            || path
                .strip_prefix(e)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// How long the etcd check may take before it counts as failed.
const ETCD_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn run_check(server: &ApiServer, endpoint: &str, check: &str) -> Result<(), String> {
    match check {
        "ping" | "log" => Ok(()),
        "etcd" | "etcd-readiness" => {
            match tokio::time::timeout(ETCD_CHECK_TIMEOUT, server.storage.check_health()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("etcd did not answer in time".into()),
            }
        }
        "shutdown" if endpoint == "/readyz" => {
            if server.is_shutting_down() {
                Err("process is shutting down".into())
            } else {
                Ok(())
            }
        }
        "poststarthook/bootstrap-namespaces" => {
            if server.bootstrap_done() {
                Ok(())
            } else {
                Err("not finished".into())
            }
        }
        _ => Err("no such check".into()),
    }
}

fn checks(endpoint: &str) -> Vec<&'static str> {
    let mut checks = vec!["ping", "log", "etcd"];
    if endpoint == "/readyz" {
        checks.push("etcd-readiness");
        checks.push("shutdown");
    }
    checks.push("poststarthook/bootstrap-namespaces");
    checks
}

pub async fn handle(
    server: &Arc<ApiServer>,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Reply, StatusError> {
    let endpoint = ENDPOINTS
        .iter()
        .find(|e| path.starts_with(**e))
        .copied()
        .unwrap_or("/healthz");
    let single = path
        .strip_prefix(endpoint)
        .and_then(|r| r.strip_prefix('/'));
    if let Some(check) = single {
        if !checks(endpoint).contains(&check) {
            return Err(StatusError::new(
                404,
                apimachinery::StatusReason::NotFound,
                "the server could not find the requested resource",
            ));
        }
        return Ok(match run_check(server, endpoint, check).await {
            Ok(()) => Reply::full(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
            Err(_) => Reply::full(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("internal server error: {check} check failed\n"),
            ),
        });
    }
    let excluded: Vec<&str> = query
        .get("exclude")
        .map(|e| e.split(',').collect())
        .unwrap_or_default();
    let verbose = query.contains_key("verbose");
    let mut out = String::new();
    let mut failed = false;
    // Checks run together so that one slow dependency costs its timeout once.
    let checks: Vec<&str> = checks(endpoint)
        .into_iter()
        .filter(|c| !excluded.contains(c))
        .collect();
    let results =
        futures::future::join_all(checks.iter().map(|c| run_check(server, endpoint, c))).await;
    for excluded_check in excluded
        .iter()
        .filter(|c| self::checks(endpoint).contains(c))
    {
        out.push_str(&format!("[+]{excluded_check} excluded: ok\n"));
    }
    for (check, result) in checks.iter().zip(results) {
        match result {
            Ok(()) => out.push_str(&format!("[+]{check} ok\n")),
            Err(reason) => {
                failed = true;
                tracing::warn!(check, endpoint, %reason, "health check failed");
                out.push_str(&format!("[-]{check} failed: reason withheld\n"));
            }
        }
    }
    let name = endpoint.trim_start_matches('/');
    if failed {
        out.push_str(&format!("{name} check failed\n"));
        return Ok(Reply::full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            out,
        ));
    }
    if verbose {
        out.push_str(&format!("{name} check passed\n"));
        Ok(Reply::full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            out,
        ))
    } else {
        Ok(Reply::full(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "ok",
        ))
    }
}
