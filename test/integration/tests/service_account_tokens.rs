//! Service account tokens end to end: `kubectl create token` through the TokenRequest API,
//! the token authenticating as the service account (`kubectl auth whoami`), pod-bound
//! tokens dying with their pod, audiences and expiration limits.

use std::process::Command;

use integration::ControlPlane;
use k8s_openapi::api::authentication::v1::{
    BoundObjectReference, TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// kubectl with only the server's CA and a bearer token (no client certificate, which
/// would win over the token).
fn kubectl_with_token(cp: &ControlPlane, token: &str, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server=https://127.0.0.1:{}", cp.port))
        .arg(format!(
            "--certificate-authority={}",
            cp.pki_dir().join("ca.crt").display()
        ))
        .arg(format!("--token={token}"))
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap()
}

fn whoami(cp: &ControlPlane, token: &str) -> Result<String, String> {
    let out = kubectl_with_token(cp, token, &["auth", "whoami", "-o", "json"]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn kubectl_create_token_authenticates_as_the_service_account() {
    let cp = ControlPlane::start().unwrap();
    cp.kubectl_ok(&["create", "serviceaccount", "bot"]).unwrap();
    let token = cp
        .kubectl_ok(&["create", "token", "bot", "--duration=20m"])
        .unwrap()
        .trim()
        .to_string();
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:default:bot");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(c["aud"][0], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1200
    );
    let sa_uid = cp
        .jsonpath(&["get", "sa", "bot"], "{.metadata.uid}")
        .unwrap();
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], sa_uid.as_str());

    let me: serde_json::Value = serde_json::from_str(&whoami(&cp, &token).unwrap()).unwrap();
    let info = &me["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:bot");
    assert_eq!(info["uid"], sa_uid.as_str());
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    // The token reads the API.
    let out = kubectl_with_token(&cp, &token, &["get", "sa", "bot", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another audience does not open the API server.
    let vault = cp
        .kubectl_ok(&["create", "token", "bot", "--audience=vault"])
        .unwrap();
    assert_eq!(claims(vault.trim())["aud"][0], "vault");
    let err = whoami(&cp, vault.trim()).unwrap_err();
    assert!(err.contains("Unauthorized"), "{err}");
    // Neither does a tampered token.
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(whoami(&cp, &forged).is_err());

    // Too short.
    let out = cp
        .kubectl(&["create", "token", "bot", "--duration=1m"])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    // No such service account.
    let out = cp.kubectl(&["create", "token", "nobody"]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serviceaccounts \"nobody\" not found"),
        "{err}"
    );

    // TokenReview, as a webhook authenticator (a kubelet) asks.
    let client = cp.client().await.unwrap();
    let reviews: Api<TokenReview> = Api::all(client);
    let review = |token: &str, audiences: Vec<String>| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: Some(audiences),
        },
        ..Default::default()
    };
    let status = reviews
        .create(&PostParams::default(), &review(&token, vec![]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:default:bot")
    );
    let status = reviews
        .create(
            &PostParams::default(),
            &review(vault.trim(), vec!["vault".into()]),
        )
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(status.audiences, Some(vec!["vault".to_string()]));
    let status = reviews
        .create(&PostParams::default(), &review(&forged, vec![]))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(status.authenticated, Some(true));
    assert!(status.error.is_some());

    // Deleting the service account invalidates its tokens.
    cp.kubectl_ok(&["delete", "sa", "bot"]).unwrap();
    assert!(whoami(&cp, &token).is_err());
}

#[tokio::test]
async fn pod_bound_tokens_die_with_the_pod() {
    let cp = ControlPlane::start().unwrap();
    cp.apply(
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: runner}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  serviceAccountName: runner
  containers: [{name: c, image: busybox}]
",
    )
    .unwrap();
    let pod_uid = cp
        .jsonpath(&["get", "pod", "p"], "{.metadata.uid}")
        .unwrap();

    // kubectl binds with --bound-object-kind/--bound-object-name.
    let token = cp
        .kubectl_ok(&[
            "create",
            "token",
            "runner",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .unwrap()
        .trim()
        .to_string();
    let c = claims(&token);
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "p");
    assert_eq!(c["kubernetes.io"]["pod"]["uid"], pod_uid.as_str());
    let me: serde_json::Value = serde_json::from_str(&whoami(&cp, &token).unwrap()).unwrap();
    assert_eq!(
        me["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"][0],
        "p"
    );

    // The kubelet's request: 3607 s for the API server is extended to a year.
    let client = cp.client().await.unwrap();
    let sas: Api<ServiceAccount> = Api::default_namespaced(client.clone());
    let request = |uid: &str, seconds: i64| TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some("p".into()),
                uid: Some(uid.into()),
            }),
        },
        ..Default::default()
    };
    let answer = sas
        .create_token_request("runner", &PostParams::default(), &request(&pod_uid, 3607))
        .await
        .unwrap();
    assert_eq!(
        answer.spec.audiences,
        vec!["https://kubernetes.default.svc.cluster.local"]
    );
    let status = answer.status.unwrap();
    let c = claims(&status.token);
    assert_eq!(
        c["kubernetes.io"]["warnafter"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3607
    );
    assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() > 3600 * 24 * 364);
    // A stale uid is a conflict, as upstream.
    let err = sas
        .create_token_request("runner", &PostParams::default(), &request("other", 3600))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409, "{s:?}");
            assert!(
                s.message.contains("does not match the UID in record"),
                "{}",
                s.message
            );
        }
        other => panic!("{other}"),
    }
    // Another service account cannot bind to this pod.
    cp.kubectl_ok(&["create", "sa", "other"]).unwrap();
    let out = cp
        .kubectl(&[
            "create",
            "token",
            "other",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("to pod running with different serviceaccount name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    cp.kubectl_ok(&["delete", "pod", "p", "--grace-period=0", "--force"])
        .unwrap();
    let err = whoami(&cp, &token).unwrap_err();
    assert!(err.contains("Unauthorized"), "{err}");
    assert!(whoami(&cp, &status.token).is_err());
}
