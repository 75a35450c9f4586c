//! Bad input gets a 4xx Status with upstream's reason and a clear message, and nothing
//! already stored changes.

use http::{Method, Request, StatusCode};
use integration::ControlPlane;
use serde_json::{json, Value};

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn assert_status(got: &(StatusCode, Value), code: u16, reason: &str, message_part: &str) {
    let (status, body) = got;
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(message_part),
        "message {message:?} lacks {message_part:?}"
    );
}

const CM_PATH: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"k": "v"}});
    let (status, created) = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        good.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let stored_rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let item = format!("{CM_PATH}/keep");

    // Malformed JSON and YAML.
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        b"{\"apiVersion\": \"v1\",".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "");
    let r = send(
        &client,
        Method::PUT,
        &item,
        "application/yaml",
        b"metadata: [unclosed".to_vec(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "");
    // Wrong apiVersion / kind.
    let wrong = json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        wrong.to_string().into_bytes(),
    )
    .await;
    assert_status(
        &r,
        400,
        "BadRequest",
        "does not match the expected API version (v1)",
    );
    let wrong = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        wrong.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "Secret");
    // Name in the body differs from the URL.
    let renamed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "resourceVersion": stored_rv}, "data": {"k": "changed"}});
    let r = send(
        &client,
        Method::PUT,
        &item,
        "application/json",
        renamed.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "does not match the name on the URL");
    // Namespace in the body differs from the URL.
    let elsewhere = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y", "namespace": "kube-system"}});
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        elsewhere.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "does not match the namespace");
    // An invalid name.
    let invalid =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}});
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        invalid.to_string().into_bytes(),
    )
    .await;
    assert_status(
        &r,
        422,
        "Invalid",
        r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#,
    );
    assert_eq!(r.1["details"]["causes"][0]["field"], "metadata.name");
    // Unknown and duplicate fields under Strict validation.
    let strict = format!("{CM_PATH}?fieldValidation=Strict");
    let unknown =
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"},"spec":{"a":1}}"#
            .to_vec();
    let r = send(&client, Method::POST, &strict, "application/json", unknown).await;
    assert_status(
        &r,
        400,
        "BadRequest",
        r#"strict decoding error: unknown field "spec""#,
    );
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"z"},"data":{"a":"1"},"data":{"b":"2"}}"#.to_vec();
    let r = send(&client, Method::POST, &strict, "application/json", dup).await;
    assert_status(&r, 400, "BadRequest", r#"duplicate field "data""#);
    // A body over 3 MiB.
    let huge = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}});
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "application/json",
        huge.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 413, "RequestEntityTooLarge", "Request entity too large");
    // A stale resourceVersion.
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "resourceVersion": "1"}, "data": {"k": "stale"}});
    let r = send(
        &client,
        Method::PUT,
        &item,
        "application/json",
        stale.to_string().into_bytes(),
    )
    .await;
    assert_status(
        &r,
        409,
        "Conflict",
        r#"Operation cannot be fulfilled on configmaps "keep": the object has been modified"#,
    );
    // An unsupported media type and an unknown resource.
    let r = send(
        &client,
        Method::POST,
        CM_PATH,
        "text/plain",
        b"hello".to_vec(),
    )
    .await;
    assert_status(&r, 415, "UnsupportedMediaType", "");
    let r = send(
        &client,
        Method::GET,
        "/api/v1/namespaces/default/widgets",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(
        &r,
        404,
        "NotFound",
        "the server could not find the requested resource",
    );
    let r = send(
        &client,
        Method::GET,
        &format!("{CM_PATH}/missing"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 404, "NotFound", r#"configmaps "missing" not found"#);
    // Creating in a namespace that does not exist.
    let r = send(
        &client,
        Method::POST,
        "/api/v1/namespaces/nowhere/configmaps",
        "application/json",
        good.to_string().into_bytes(),
    )
    .await;
    assert_status(&r, 404, "NotFound", r#"namespaces "nowhere" not found"#);
    // The system namespaces cannot be deleted.
    let r = send(
        &client,
        Method::DELETE,
        "/api/v1/namespaces/kube-system",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 403, "Forbidden", "this namespace may not be deleted");

    // Nothing stored changed.
    let (status, now) = send(&client, Method::GET, &item, "application/json", Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(now["metadata"]["resourceVersion"], Value::String(stored_rv));
    assert_eq!(now["data"], json!({"k": "v"}));
    let (_, list) = send(
        &client,
        Method::GET,
        CM_PATH,
        "application/json",
        Vec::new(),
    )
    .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["keep"]);
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    for i in 0..7 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "labels": {"even": (i % 2 == 0).to_string()}}});
        let (s, _) = send(
            &client,
            Method::POST,
            CM_PATH,
            "application/json",
            cm.to_string().into_bytes(),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut next = format!("{CM_PATH}?limit=3");
    let mut pages = 0;
    loop {
        let (s, page) = send(&client, Method::GET, &next, "application/json", Vec::new()).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        pages += 1;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                assert!(page["metadata"]["remainingItemCount"].as_i64().unwrap() > 0);
                next = format!("{CM_PATH}?limit=3&continue={token}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    // Label selectors with paging fill pages with matching items only.
    let (_, page) = send(
        &client,
        Method::GET,
        &format!("{CM_PATH}?limit=2&labelSelector=even%3Dtrue"),
        "application/json",
        Vec::new(),
    )
    .await;
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["cm-0", "cm-2"]);
    // A garbage continue token is a 400.
    let r = send(
        &client,
        Method::GET,
        &format!("{CM_PATH}?continue=garbage"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_status(&r, 400, "BadRequest", "continue");
}
