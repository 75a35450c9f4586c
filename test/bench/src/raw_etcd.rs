//! The baseline: the transaction the API server's etcd3 backend sends for a create
//! (`if create_revision(key) == 0 then put(key, value, prev_kv) else get(key)`), sent
//! straight through `etcd-client`.
//!
//! All workers share one `etcd_client::Client`, i.e. one gRPC (HTTP/2) connection, exactly
//! as the API server's storage layer does; a worker is a concurrent caller, as a request
//! handler is inside the API server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use crate::load::run_workers;
use crate::stats::Phase;

pub async fn create_throughput(
    client: &Client,
    prefix: &str,
    value: Arc<Vec<u8>>,
    workers: usize,
    duration: Duration,
    max_ops: u64,
) -> Phase {
    let client = client.clone();
    let prefix = prefix.to_string();
    run_workers(workers, duration, max_ops, move |_, index| {
        let mut kv = client.kv_client();
        let key = format!("{prefix}{index}");
        let value = Arc::clone(&value);
        async move {
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.as_str(),
                    value.as_slice(),
                    Some(PutOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = kv.txn(txn).await?;
            if !response.succeeded() {
                bail!("{key} already exists");
            }
            Ok(())
        }
    })
    .await
}

/// Like [`create_throughput`], but each create is preceded by the two linearizable reads
/// the API server's admission does today (NamespaceLifecycle: get the namespace;
/// ResourceQuota: list the namespace's quotas), one after the other. A diagnostic for
/// where the API server's create time goes.
pub async fn create_with_reads_throughput(
    client: &Client,
    prefix: &str,
    value: Arc<Vec<u8>>,
    workers: usize,
    duration: Duration,
    max_ops: u64,
) -> Phase {
    let client = client.clone();
    let prefix = prefix.to_string();
    let namespace_key = format!("{prefix}namespace");
    client
        .kv_client()
        .put(namespace_key.as_str(), value.as_slice(), None)
        .await
        .ok();
    run_workers(workers, duration, max_ops, move |_, index| {
        let mut kv = client.kv_client();
        let key = format!("{prefix}{index}");
        let namespace_key = namespace_key.clone();
        let quotas = format!("{prefix}quotas/");
        let value = Arc::clone(&value);
        async move {
            kv.get(namespace_key.as_str(), None).await?;
            let end = prefix_end(quotas.as_bytes());
            kv.get(quotas.as_str(), Some(GetOptions::new().with_range(end)))
                .await?;
            let txn = Txn::new()
                .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.as_str(),
                    value.as_slice(),
                    Some(PutOptions::new().with_prev_key()),
                )])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = kv.txn(txn).await?;
            if !response.succeeded() {
                bail!("{key} already exists");
            }
            Ok(())
        }
    })
    .await
}

/// The key just after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether etcd answers at all, and which version it is.
pub async fn version(client: &Client) -> Result<String> {
    let status = client.maintenance_client().status().await?;
    Ok(status.version().to_string())
}
