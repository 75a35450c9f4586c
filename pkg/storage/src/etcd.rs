//! The etcd v3 backend: every trait method is one etcd request or transaction, and a
//! revision here is etcd's revision (Kubernetes' resourceVersion).
//!
//! Writes are transactions that compare a revision and, when the comparison fails, read
//! the key in the same round trip, so that a failed compare-and-swap reports the current
//! value (`Conflict { current }`) without another request. Keys with a TTL are attached to
//! leases that are shared by keys with the same TTL granted close together (as upstream's
//! lease manager does), instead of one lease per key.
//!
//! Watches use one gRPC watch stream each, with `prev_kv` so that deletions carry the last
//! value (except [`Storage::watch_changes`], whose consumer knows the previous values and
//! spares etcd the extra read per event). When a stream has been idle for the progress interval it asks etcd for a
//! progress notification and turns the answer into a `Progress` item. Before etcd 3.4.31
//! and 3.5.13 such an answer can overtake events still queued for the watcher (etcd issue
//! 15220); with those versions the answer is only trusted after a short delay
//! ([`EtcdOptions::progress_confirm_delay`]) that lets queued events arrive first. The
//! periodic notifications etcd sends on its own (`--experimental-watch-progress-notify-interval`)
//! are ordered with the events and are always trusted.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions, WatchRequestSender, WatchResponse,
    WatchResponseStream,
};
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

use crate::{
    into_stream, prefix_end, Event, EventKind, KeyValue, ListOptions, ListResult,
    ProgressRequester, Result, Revision, Storage, StorageError, WatchItem, WatchState, WatchStream,
};

/// How to reach etcd and how patient to be with it.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Limit for establishing the connection (and the first request) in
    /// [`EtcdStorage::connect`].
    pub connect_timeout: Duration,
    /// Limit for every request; a request that takes longer fails with `Unavailable`.
    pub request_timeout: Duration,
    /// Limit for the read done by `check_health`.
    pub health_timeout: Duration,
    /// HTTP/2 keep-alive ping interval and timeout, so that a dead connection is noticed
    /// even by an idle watch.
    pub keep_alive: Option<(Duration, Duration)>,
    /// A watch stream idle for this long asks etcd for progress and yields `Progress`.
    pub progress_interval: Duration,
    /// See the [module docs](self): how long to hold back a progress answer from an etcd
    /// whose answers may overtake events. Must exceed etcd's 100 ms catch-up loop for new
    /// watchers.
    pub progress_confirm_delay: Duration,
    /// Upper bound of the extra lifetime a shared lease may give a key (upstream's
    /// `--lease-reuse-duration-seconds`).
    pub lease_reuse_max: Duration,
    /// How many keys may share one lease.
    pub max_keys_per_lease: u32,
    /// The key `check_health` reads.
    pub health_key: String,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            health_timeout: Duration::from_secs(2),
            keep_alive: Some((Duration::from_secs(30), Duration::from_secs(10))),
            progress_interval: Duration::from_secs(5),
            progress_confirm_delay: Duration::from_millis(250),
            lease_reuse_max: Duration::from_secs(60),
            max_keys_per_lease: 1000,
            health_key: "health".to_string(),
        }
    }
}

/// See the [module docs](self).
pub struct EtcdStorage {
    client: Client,
    options: EtcdOptions,
    /// Shared leases by TTL in whole seconds.
    leases: Mutex<HashMap<i64, SharedLease>>,
    /// The highest compacted revision this client has caused or seen; etcd's "compacted"
    /// errors on reads do not say which revision it is.
    compacted: Arc<AtomicI64>,
    /// Whether etcd answers progress requests in order with the events.
    ordered_progress: bool,
    server_version: String,
}

struct SharedLease {
    id: i64,
    /// A lower bound of when etcd expires the lease (measured before the grant).
    expires: Instant,
    attached: u32,
}

/// The first page size tried when an unlimited range read is too large for one message.
const UNLIMITED_FALLBACK_PAGE: i64 = 1000;

/// Why an etcd request failed, before the caller adds the revision context.
enum Failure {
    Compacted,
    FutureRevision,
    /// The response exceeded the client's message size limit (4 MiB in etcd-client).
    TooLarge,
    Other(StorageError),
}

impl Failure {
    /// For requests that name no revision, where these cannot happen.
    fn into_error(self) -> StorageError {
        match self {
            Failure::Compacted => {
                StorageError::Internal("etcd: required revision has been compacted".into())
            }
            Failure::FutureRevision => {
                StorageError::Internal("etcd: required revision is a future revision".into())
            }
            Failure::TooLarge => {
                StorageError::Internal("etcd: response larger than the message size limit".into())
            }
            Failure::Other(e) => e,
        }
    }
}

fn classify(error: etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                return Failure::Compacted;
            }
            if message.contains("required revision is a future revision") {
                return Failure::FutureRevision;
            }
            if status.code() == tonic::Code::OutOfRange
                && message.contains("message length too large")
            {
                return Failure::TooLarge;
            }
            use tonic::Code;
            match status.code() {
                // Transport trouble, a lost leader, an overloaded or stopping server: all
                // worth retrying elsewhere or later.
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Unknown => {
                    Failure::Other(StorageError::Unavailable(format!("etcd: {message}")))
                }
                code => {
                    Failure::Other(StorageError::Internal(format!("etcd: {code:?}: {message}")))
                }
            }
        }
        E::TransportError(e) => {
            Failure::Other(StorageError::Unavailable(format!("etcd transport: {e}")))
        }
        E::IoError(e) => Failure::Other(StorageError::Unavailable(format!("etcd connection: {e}"))),
        E::WatchError(e) => Failure::Other(StorageError::Unavailable(format!("etcd watch: {e}"))),
        other => Failure::Other(StorageError::Internal(format!("etcd client: {other}"))),
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key()).map_err(|_| {
        StorageError::Internal(format!(
            "etcd returned a key that is not UTF-8: {:?}",
            kv.key()
        ))
    })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// etcd rejects an empty key; "\0" is the first key there is.
fn range_start(key: &str) -> Vec<u8> {
    if key.is_empty() {
        vec![0]
    } else {
        key.as_bytes().to_vec()
    }
}

/// Whether etcd answers progress requests only once the watcher has seen everything up to
/// the revision it reports: from 3.4.31 and 3.5.13 on.
fn has_ordered_progress(version: &str) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m > 5,
        (m, _) => m > 3,
    }
}

impl EtcdStorage {
    /// One range read; fewer keys than asked (with `more`) when the response would not
    /// fit in one gRPC message.
    async fn list_page(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        // A start key before the prefix would read keys outside it.
        let start = match &opts.start_key {
            Some(s) if s.as_str() > prefix => s.as_str(),
            _ => prefix,
        };
        let at = opts.revision.filter(|r| *r > 0);
        // A page too large for one gRPC message is read as smaller pages: the caller
        // sees `more` and continues from the last key.
        let mut limit = opts.limit.filter(|l| *l > 0);
        let mut response = loop {
            let mut options = GetOptions::new().with_range(prefix_end(prefix));
            if let Some(limit) = limit {
                options = options.with_limit(limit);
            }
            if let Some(revision) = at {
                options = options.with_revision(revision);
            }
            let result = self
                .request(
                    self.client
                        .kv_client()
                        .get(range_start(start), Some(options)),
                )
                .await;
            match result {
                Ok(response) => break response,
                Err(Failure::TooLarge) if limit != Some(1) => {
                    limit = Some(limit.map_or(UNLIMITED_FALLBACK_PAGE, |l| (l / 2).max(1)));
                }
                Err(Failure::Compacted) => {
                    let requested = at.unwrap_or_default();
                    let compacted = self.compacted_revision().await.max(requested + 1);
                    return Err(StorageError::Compacted {
                        requested,
                        compacted,
                    });
                }
                Err(Failure::FutureRevision) => {
                    let current = self.current_revision().await?;
                    return Err(StorageError::FutureRevision {
                        requested: at.unwrap_or_default(),
                        current,
                    });
                }
                Err(failure) => return Err(failure.into_error()),
            }
        };
        let header = response.header().map(|h| h.revision()).unwrap_or_default();
        let count = response.count();
        let more = response.more();
        let items = response
            .take_kvs()
            .iter()
            .map(key_value)
            .collect::<Result<Vec<_>>>()?;
        let returned = i64::try_from(items.len()).unwrap_or(i64::MAX);
        Ok(ListResult {
            items,
            revision: at.unwrap_or(header),
            more,
            remaining: (count - returned).max(0),
        })
    }

    /// Connects to etcd at `endpoints` (`http://host:port` or `host:port`) and checks that it
    /// answers within the connect timeout.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Self> {
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            // Watches on a member cut off from the leader would silently stop seeing
            // changes; with this etcd cancels them and we re-establish elsewhere.
            .with_require_leader(true);
        if let Some((interval, timeout)) = options.keep_alive {
            connect = connect
                .with_keep_alive(interval, timeout)
                .with_keep_alive_while_idle(true);
        }
        let connecting = async {
            let client = Client::connect(endpoints, Some(connect))
                .await
                .map_err(|e| classify(e).into_error())?;
            let status = client
                .maintenance_client()
                .status()
                .await
                .map_err(|e| classify(e).into_error())?;
            Ok::<_, StorageError>((client, status.version().to_string()))
        };
        let (client, server_version) = tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| {
                StorageError::Unavailable(format!(
                    "etcd at {endpoints:?} did not answer within {:?}",
                    options.connect_timeout
                ))
            })??;
        let ordered_progress = has_ordered_progress(&server_version);
        tracing::info!(?endpoints, %server_version, ordered_progress, "connected to etcd");
        Ok(Self {
            client,
            options,
            leases: Mutex::new(HashMap::new()),
            compacted: Arc::new(AtomicI64::new(0)),
            ordered_progress,
            server_version,
        })
    }

    /// The version etcd reported when we connected.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// The underlying client, for what the trait does not cover (maintenance, metrics).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn request<T>(
        &self,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.options.request_timeout, call).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(Failure::Other(StorageError::Unavailable(format!(
                "etcd request timed out after {:?}",
                self.options.request_timeout
            )))),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.request(self.client.kv_client().txn(txn))
            .await
            .map_err(Failure::into_error)
    }

    /// The compacted revision: only a watch tells it, so this starts one at revision 1 and
    /// reads the compaction it is refused with. For error paths only.
    async fn compacted_revision(&self) -> Revision {
        let known = self.compacted.load(Ordering::Acquire);
        let probe = async {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = self
                .client
                .watch_client()
                .watch(vec![0], Some(options))
                .await
                .ok()?;
            while let Ok(Some(response)) = stream.message().await {
                if response.compact_revision() != 0 {
                    return Some(response.compact_revision());
                }
                if response.canceled() {
                    return None;
                }
            }
            None
        };
        // etcd notices a compacted start in its catch-up loop, which runs every 100 ms.
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(Some(revision)) => {
                self.compacted.fetch_max(revision, Ordering::AcqRel);
                revision.max(known)
            }
            _ => known,
        }
    }

    /// A lease living at least `ttl`, shared with other keys of the same TTL when one was
    /// granted recently enough.
    async fn lease_for(&self, ttl: Duration) -> Result<i64> {
        let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
        let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
        // Upstream reuses a lease for 5% of the TTL, at most a minute: keys then live up
        // to that much longer than asked.
        let max_reuse =
            i64::try_from(self.options.lease_reuse_max.as_secs()).unwrap_or(i64::MAX / 4);
        let reuse = (secs / 20).min(max_reuse);
        let now = Instant::now();
        {
            let mut leases = self.leases.lock();
            leases.retain(|_, lease| lease.expires > now);
            if let Some(lease) = leases.get_mut(&secs) {
                let lifetime_left = lease.expires.saturating_duration_since(now);
                if lifetime_left >= Duration::from_secs(secs.unsigned_abs())
                    && lease.attached < self.options.max_keys_per_lease
                {
                    lease.attached += 1;
                    return Ok(lease.id);
                }
            }
        }
        let granted = self
            .request(self.client.lease_client().grant(secs + reuse, None))
            .await
            .map_err(Failure::into_error)?;
        let lease = SharedLease {
            id: granted.id(),
            expires: now + Duration::from_secs(granted.ttl().max(0).unsigned_abs()),
            attached: 1,
        };
        tracing::debug!(lease = lease.id, ttl = secs + reuse, "granted lease");
        self.leases.lock().insert(secs, lease);
        Ok(granted.id())
    }

    fn put_options(lease: Option<i64>) -> PutOptions {
        let options = PutOptions::new().with_prev_key();
        match lease {
            Some(id) => options.with_lease(id),
            None => options,
        }
    }

    /// The value read by the `else` branch of a failed transaction.
    fn failed_read(response: &TxnResponse) -> Result<Option<KeyValue>> {
        for op in response.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(key_value).transpose();
            }
        }
        Ok(None)
    }

    fn header_revision(response: &TxnResponse) -> Result<Revision> {
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without a header".into()))
    }

    async fn watch_from(
        &self,
        prefix: &str,
        after: Revision,
        progress: Option<ProgressRequester>,
        prev_values: bool,
    ) -> Result<WatchStream> {
        let after = after.max(0);
        let start = after + 1;
        // etcd reports a compacted start only on the stream, after its catch-up loop ran.
        // A serializable read at the start revision fails exactly when the watch would
        // (both compare with the compacted revision) and needs no consensus round, so that
        // `watch` itself can fail as the trait promises.
        let check = GetOptions::new()
            .with_revision(start)
            .with_count_only()
            .with_serializable();
        match self
            .request(self.client.kv_client().get(vec![0], Some(check)))
            .await
        {
            Ok(_) | Err(Failure::FutureRevision) => {}
            Err(Failure::Compacted) => {
                let compacted = self.compacted_revision().await.max(start);
                return Err(StorageError::Compacted {
                    requested: after,
                    compacted,
                });
            }
            Err(failure @ (Failure::Other(_) | Failure::TooLarge)) => {
                return Err(failure.into_error())
            }
        }
        let mut options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(start)
            .with_progress_notify();
        if prev_values {
            options = options.with_prev_key();
        }
        let stream = self
            .request(
                self.client
                    .watch_client()
                    .watch(range_start(prefix), Some(options)),
            )
            .await
            .map_err(Failure::into_error)?;
        let (sender, responses) = stream.split();
        let interval = self.options.progress_interval;
        let watch = EtcdWatch {
            sender,
            responses,
            watch_id: None,
            pending: VecDeque::new(),
            through: after,
            progress,
            idle: Box::pin(tokio::time::sleep(interval)),
            interval,
            ordered_progress: self.ordered_progress,
            confirm_delay: self.options.progress_confirm_delay,
            unconfirmed: None,
            confirm: Box::pin(tokio::time::sleep(Duration::ZERO)),
            compacted: self.compacted.clone(),
            failed: None,
            done: false,
        };
        Ok(into_stream(watch))
    }
}

#[async_trait::async_trait]
impl Storage for EtcdStorage {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self
            .request(self.client.kv_client().get(key, None))
            .await
            .map_err(Failure::into_error)?;
        response.kvs().first().map(key_value).transpose()
    }

    async fn list(&self, prefix: &str, opts: &ListOptions) -> Result<ListResult> {
        let mut result = self.list_page(prefix, opts).await?;
        if opts.limit.is_some_and(|l| l > 0) {
            return Ok(result);
        }
        // An unlimited read that had to be split into pages: read the rest at the same
        // revision, so the caller still gets one consistent snapshot.
        while result.more {
            let Some(last) = result.items.last() else {
                break;
            };
            let next = ListOptions {
                revision: Some(result.revision),
                limit: None,
                start_key: Some(format!("{}\u{0}", last.key)),
            };
            let page = self.list_page(prefix, &next).await?;
            result.items.extend(page.items);
            result.more = page.more;
            result.remaining = page.remaining;
        }
        Ok(result)
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let response = self
            .request(
                self.client
                    .kv_client()
                    .get(range_start(prefix), Some(options)),
            )
            .await
            .map_err(Failure::into_error)?;
        Ok(response.count())
    }

    async fn create(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<KeyValue> {
        let lease = match ttl {
            Some(ttl) => Some(self.lease_for(ttl).await?),
            None => None,
        };
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value.to_vec(),
                Some(Self::put_options(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_string(),
            });
        }
        let revision = Self::header_revision(&response)?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    ) -> Result<KeyValue> {
        let lease = match ttl {
            Some(ttl) => Some(self.lease_for(ttl).await?),
            None => None,
        };
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key, CompareOp::Equal, expected),
                // Without this an `expected` of 0 would match a missing key and create it.
                Compare::version(key, CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(
                key,
                value.to_vec(),
                Some(Self::put_options(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return match Self::failed_read(&response)? {
                Some(current) => Err(StorageError::Conflict {
                    key: key.to_string(),
                    current: Some(current),
                }),
                None => Err(StorageError::NotFound {
                    key: key.to_string(),
                }),
            };
        }
        let revision = Self::header_revision(&response)?;
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|p| p.create_revision()),
                _ => None,
            })
            .ok_or_else(|| {
                StorageError::Internal("etcd put response without the previous value".into())
            })?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue> {
        let delete = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let txn = match expected {
            Some(expected) => Txn::new()
                .when([
                    Compare::mod_revision(key, CompareOp::Equal, expected),
                    Compare::version(key, CompareOp::Greater, 0),
                ])
                .and_then([delete])
                .or_else([TxnOp::get(key, None)]),
            // A transaction rather than a plain delete keeps one code path for the result.
            None => Txn::new().and_then([delete]),
        };
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return match Self::failed_read(&response)? {
                Some(current) => Err(StorageError::Conflict {
                    key: key.to_string(),
                    current: Some(current),
                }),
                None => Err(StorageError::NotFound {
                    key: key.to_string(),
                }),
            };
        }
        let revision = Self::header_revision(&response)?;
        let deleted = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(key_value),
            _ => None,
        });
        match deleted {
            Some(kv) => Ok(KeyValue {
                mod_revision: revision,
                ..kv?
            }),
            None => Err(StorageError::NotFound {
                key: key.to_string(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.watch_from(prefix, after, None, true).await
    }

    async fn watch_with_progress(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        self.watch_from(prefix, after, Some(progress), true).await
    }

    /// Without `prev_kv`: etcd would read every event's previous value for it.
    async fn watch_changes(
        &self,
        prefix: &str,
        after: Revision,
        progress: ProgressRequester,
    ) -> Result<WatchStream> {
        self.watch_from(prefix, after, Some(progress), false).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        let response = self
            .request(self.client.kv_client().get(vec![0], Some(options)))
            .await
            .map_err(Failure::into_error)?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without a header".into()))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self
            .request(self.client.kv_client().compact(revision, None))
            .await
        {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::AcqRel);
                tracing::debug!(revision, "compacted etcd");
                Ok(())
            }
            Err(Failure::Compacted) => {
                let compacted = self.compacted_revision().await.max(revision);
                Err(StorageError::Compacted {
                    requested: revision,
                    compacted,
                })
            }
            Err(Failure::FutureRevision) => {
                let current = self.current_revision().await?;
                Err(StorageError::FutureRevision {
                    requested: revision,
                    current,
                })
            }
            Err(failure @ (Failure::Other(_) | Failure::TooLarge)) => Err(failure.into_error()),
        }
    }

    async fn check_health(&self) -> Result<()> {
        let mut kv = self.client.kv_client();
        let read = kv.get(
            self.options.health_key.as_str(),
            Some(GetOptions::new().with_count_only()),
        );
        match tokio::time::timeout(self.options.health_timeout, read).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(match classify(e) {
                Failure::Other(StorageError::Internal(m)) => StorageError::Unavailable(m),
                other => other.into_error(),
            }),
            Err(_) => Err(StorageError::Unavailable(format!(
                "etcd did not answer a health check within {:?}",
                self.options.health_timeout
            ))),
        }
    }
}

struct EtcdWatch {
    sender: WatchRequestSender,
    responses: WatchResponseStream,
    watch_id: Option<i64>,
    pending: VecDeque<WatchItem>,
    /// Every event up to this revision is in `pending` or already delivered.
    through: Revision,
    progress: Option<ProgressRequester>,
    idle: Pin<Box<Sleep>>,
    interval: Duration,
    ordered_progress: bool,
    confirm_delay: Duration,
    /// A progress answer held back until `confirm` fires (see the module docs).
    unconfirmed: Option<Revision>,
    confirm: Pin<Box<Sleep>>,
    compacted: Arc<AtomicI64>,
    failed: Option<StorageError>,
    done: bool,
}

enum Step {
    Response(Result<Option<WatchResponse>, etcd_client::Error>),
    RequestProgress,
    Confirm,
}

impl EtcdWatch {
    fn fail(&mut self, error: StorageError) {
        self.done = true;
        self.failed = Some(error);
    }

    fn progress(&mut self, revision: Revision) {
        self.through = self.through.max(revision);
        self.pending.push_back(WatchItem::Progress(self.through));
    }

    fn handle(&mut self, response: WatchResponse) {
        if response.created() {
            self.watch_id = Some(response.watch_id());
            if !response.canceled() {
                return;
            }
        }
        if response.compact_revision() != 0 {
            let compacted = response.compact_revision();
            self.compacted.fetch_max(compacted, Ordering::AcqRel);
            self.fail(StorageError::Compacted {
                requested: self.through,
                compacted,
            });
            return;
        }
        if response.canceled() {
            let reason = response.cancel_reason().to_string();
            self.fail(StorageError::Unavailable(format!(
                "etcd canceled the watch: {reason}"
            )));
            return;
        }
        let revision = response.header().map(|h| h.revision()).unwrap_or_default();
        if !response.events().is_empty() {
            for event in response.events() {
                match convert_event(event) {
                    Ok(event) => {
                        self.through = self.through.max(event.revision());
                        self.pending.push_back(WatchItem::Event(event));
                    }
                    // Skipping beats ending the stream: a watcher restarted from here would
                    // trip over the same event forever.
                    Err(e) => tracing::warn!(error = %e, "skipping an etcd event"),
                }
            }
            return;
        }
        // An empty response is a progress notification: either etcd's own periodic one
        // (carrying our watch id, ordered with the events) or the answer to a request
        // (watch id -1).
        let periodic = self
            .watch_id
            .is_some_and(|id| id == response.watch_id() && id >= 0);
        if periodic || self.ordered_progress || revision <= self.through {
            self.progress(revision);
        } else if let Some(held) = self.unconfirmed.as_mut() {
            *held = (*held).max(revision);
        } else {
            self.unconfirmed = Some(revision);
            self.confirm
                .as_mut()
                .reset(Instant::now() + self.confirm_delay);
        }
    }
}

impl WatchState for EtcdWatch {
    async fn next_item(&mut self) -> Option<Result<WatchItem>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                self.idle.as_mut().reset(Instant::now() + self.interval);
                return Some(Ok(item));
            }
            if self.done {
                return self.failed.take().map(Err);
            }
            let step = {
                let progress = &self.progress;
                let requested = async {
                    match progress {
                        Some(p) => p.requested().await,
                        None => std::future::pending().await,
                    }
                };
                let holding = self.unconfirmed.is_some();
                tokio::select! {
                    biased;
                    response = self.responses.message() => Step::Response(response),
                    () = self.confirm.as_mut(), if holding => Step::Confirm,
                    () = requested => Step::RequestProgress,
                    () = self.idle.as_mut() => Step::RequestProgress,
                }
            };
            match step {
                Step::Response(Ok(Some(response))) => self.handle(response),
                Step::Response(Ok(None)) => self.fail(StorageError::Unavailable(
                    "etcd ended the watch stream".into(),
                )),
                Step::Response(Err(e)) => self.fail(classify(e).into_error()),
                Step::Confirm => {
                    if let Some(revision) = self.unconfirmed.take() {
                        self.progress(revision);
                    }
                }
                Step::RequestProgress => {
                    // Until the answer comes, do not ask again every poll.
                    self.idle.as_mut().reset(Instant::now() + self.interval);
                    if let Err(e) = self.sender.request_progress().await {
                        self.fail(classify(e).into_error());
                    }
                }
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| StorageError::Internal("etcd event without a key".into()))?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    match event.event_type() {
        EventType::Put => {
            let kv = key_value(kv)?;
            if kv.create_revision == kv.mod_revision {
                Ok(Event {
                    kind: EventKind::Created,
                    kv,
                    prev: None,
                })
            } else {
                Ok(Event {
                    kind: EventKind::Updated,
                    kv,
                    prev,
                })
            }
        }
        EventType::Delete => {
            // etcd's delete event has only the key and the deletion revision; the value
            // comes from prev_kv (absent only if that was compacted meanwhile).
            let key = std::str::from_utf8(kv.key())
                .map_err(|_| {
                    StorageError::Internal(format!(
                        "etcd returned a key that is not UTF-8: {:?}",
                        kv.key()
                    ))
                })?
                .to_string();
            let (value, create_revision) = prev
                .as_ref()
                .map(|p| (p.value.clone(), p.create_revision))
                .unwrap_or_default();
            let kv = KeyValue {
                key,
                value,
                create_revision,
                mod_revision: kv.mod_revision(),
            };
            Ok(Event {
                kind: EventKind::Deleted,
                kv,
                prev,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has_ordered_progress;

    #[test]
    fn progress_ordering_by_version() {
        assert!(!has_ordered_progress("3.4.23"));
        assert!(has_ordered_progress("3.4.31"));
        assert!(!has_ordered_progress("3.5.12"));
        assert!(has_ordered_progress("3.5.13"));
        assert!(has_ordered_progress("3.6.0"));
        assert!(has_ordered_progress("4.0.0"));
        assert!(!has_ordered_progress("garbage"));
    }
}
