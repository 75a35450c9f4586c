//! Watch fan-out: many watches of one namespace's ConfigMaps, then a series of updates of
//! one ConfigMap, and for every watcher the time from each update to its event arriving.
//!
//! Watchers are spread evenly over a few HTTP/2 connections (the server allows 200 streams
//! per connection, as upstream's does), as informers in a handful of client processes
//! would be. An event's arrival time is taken when the HTTP/2 data frame holding the end
//! of its line is read, before it is parsed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::watch;

use crate::client::Conn;
use crate::stats::Samples;

pub struct Settings {
    pub watchers: usize,
    pub connections: usize,
    pub updates: usize,
    pub interval: Duration,
}

pub struct Outcome {
    /// From the update's response to the event's arrival (zero when the event came first).
    pub from_completion: Samples,
    /// From sending the update to the event's arrival.
    pub from_send: Samples,
    /// From sending to the response, per update.
    pub write: Samples,
    pub expected: usize,
    pub watchers_connected: usize,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    metadata: Meta,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "resourceVersion", default)]
    resource_version: String,
}

struct Watcher {
    /// The highest resourceVersion seen.
    seen: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<Result<Vec<(u64, Instant)>>>,
}

/// Runs the fan-out measurement on `name` in `namespace`, which must exist; `object` is its
/// current state (as returned by the create).
pub async fn run(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    namespace: &str,
    object: serde_json::Value,
    settings: &Settings,
) -> Result<Outcome> {
    let name = object["metadata"]["name"]
        .as_str()
        .context("object without a name")?
        .to_string();
    let start_rv = object["metadata"]["resourceVersion"]
        .as_str()
        .context("object without a resourceVersion")?
        .to_string();
    let mut conns = Vec::new();
    for _ in 0..settings.connections.max(1) {
        conns.push(Conn::connect(addr, Arc::clone(&tls)).await?);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let connected = Arc::new(AtomicUsize::new(0));
    let path = format!(
        "/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={start_rv}&timeoutSeconds=600"
    );
    let mut watchers = Vec::with_capacity(settings.watchers);
    for i in 0..settings.watchers {
        let conn = conns[i % conns.len()].clone();
        let seen = Arc::new(AtomicU64::new(0));
        let handle = tokio::spawn(watch_one(
            conn,
            path.clone(),
            Arc::clone(&seen),
            Arc::clone(&connected),
            stop_rx.clone(),
        ));
        watchers.push(Watcher { seen, handle });
    }

    // Every watch must be registered before measuring: update until all have seen one.
    let writer = conns[0].clone();
    let mut current = object;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut warmups = 0u64;
    loop {
        let (updated, _, _) = update(&writer, namespace, &name, current, warmups).await?;
        current = updated;
        warmups += 1;
        let rv = resource_version(&current)?;
        let all_seen = wait_seen(&watchers, rv, Duration::from_millis(500)).await;
        if all_seen {
            break;
        }
        if Instant::now() > deadline {
            let behind = watchers
                .iter()
                .filter(|w| w.seen.load(Ordering::Acquire) < rv)
                .count();
            let _ = stop_tx.send(true);
            bail!(
                "{behind} of {} watchers saw no event within 60s ({} connected)",
                settings.watchers,
                connected.load(Ordering::Acquire)
            );
        }
    }

    let mut writes: HashMap<u64, (Instant, Instant)> = HashMap::new();
    let mut write = Samples::default();
    let mut last_rv = 0;
    for i in 0..settings.updates {
        let tick = Instant::now();
        let (updated, sent, done) =
            update(&writer, namespace, &name, current, warmups + i as u64).await?;
        current = updated;
        last_rv = resource_version(&current)?;
        writes.insert(last_rv, (sent, done));
        write.push(done - sent);
        tokio::time::sleep(settings.interval.saturating_sub(tick.elapsed())).await;
    }
    wait_seen(&watchers, last_rv, Duration::from_secs(15)).await;
    let _ = stop_tx.send(true);

    let mut from_completion = Samples::default();
    let mut from_send = Samples::default();
    for watcher in watchers {
        let events = match watcher.handle.await {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                eprintln!("  a watcher failed: {e:#}");
                continue;
            }
            Err(e) => {
                eprintln!("  a watcher task failed: {e}");
                continue;
            }
        };
        for (rv, arrived) in events {
            if let Some((sent, done)) = writes.get(&rv) {
                from_completion.push(arrived.saturating_duration_since(*done));
                from_send.push(arrived.saturating_duration_since(*sent));
            }
        }
    }
    Ok(Outcome {
        from_completion,
        from_send,
        write,
        expected: settings.watchers * settings.updates,
        watchers_connected: connected.load(Ordering::Acquire),
    })
}

/// Waits until every watcher has seen `rv`, up to `timeout`.
async fn wait_seen(watchers: &[Watcher], rv: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if watchers
            .iter()
            .all(|w| w.seen.load(Ordering::Acquire) >= rv)
        {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn resource_version(obj: &serde_json::Value) -> Result<u64> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("object without a numeric resourceVersion")
}

/// Replaces the object with a changed payload; returns the new state, when the request
/// was sent and when its response had arrived.
async fn update(
    conn: &Conn,
    namespace: &str,
    name: &str,
    mut obj: serde_json::Value,
    seq: u64,
) -> Result<(serde_json::Value, Instant, Instant)> {
    obj["data"]["seq"] = serde_json::Value::String(seq.to_string());
    let body = Bytes::from(serde_json::to_vec(&obj)?);
    let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
    let sent = Instant::now();
    let reply = conn.put(&path, body).await?;
    let done = Instant::now();
    Ok((serde_json::from_slice(&reply)?, sent, done))
}

async fn watch_one(
    conn: Conn,
    path: String,
    seen: Arc<AtomicU64>,
    connected: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(u64, Instant)>> {
    let response = conn.send(Method::GET, &path, None).await?;
    let status = response.status();
    if status != StatusCode::OK {
        let body = response.into_body().collect().await?.to_bytes();
        bail!("watch answered {status}: {}", response_excerpt(&body));
    }
    connected.fetch_add(1, Ordering::AcqRel);
    let mut body = response.into_body();
    let mut buffer: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            frame = body.frame() => frame,
        };
        let Some(frame) = frame else { break };
        let arrived = Instant::now();
        let Ok(data) = frame.context("watch stream")?.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: WatchEvent = serde_json::from_slice(&line)
                .with_context(|| format!("bad watch event: {}", response_excerpt(&line)))?;
            if event.kind != "MODIFIED" && event.kind != "ADDED" {
                continue;
            }
            let rv: u64 = event.object.metadata.resource_version.parse().unwrap_or(0);
            events.push((rv, arrived));
            seen.fetch_max(rv, Ordering::AcqRel);
        }
    }
    Ok(events)
}

fn response_excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}
