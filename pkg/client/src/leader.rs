//! Leader election on a coordination.k8s.io Lease (`--leader-elect`), so that of several
//! replicas of a component only one acts at a time. Upstream's defaults: lease duration
//! 15 s, renew deadline 10 s, retry period 2 s. Losing the lease ends the process, as
//! upstream components exit, so a restarted replica starts from a clean state.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Lease name (`kube-controller-manager`, `kube-scheduler`).
    pub name: String,
    /// Lease namespace (`kube-system`).
    pub namespace: String,
    /// This replica's identity (upstream: `<hostname>_<uuid>`).
    pub identity: String,
    pub lease_duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the lease {0}")]
    Lost(String),
}

impl LeaderElection {
    pub fn new(name: &str, identity: String) -> Self {
        LeaderElection {
            name: name.to_string(),
            namespace: "kube-system".to_string(),
            identity,
            lease_duration: Duration::from_secs(15),
        }
    }

    /// Wait until this replica holds the lease, run `work` while it does, and return
    /// an error as soon as the lease is lost.
    pub async fn run<F>(self, client: Client, work: F) -> Result<(), LeaderError>
    where
        F: std::future::Future<Output = ()>,
    {
        let duration = self.lease_duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client, &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(duration)
            .with_grace(duration / 3)
            // The lease manager takes the lease with server-side apply and counts on
            // field-ownership conflicts between candidates: each needs its own manager
            // name, or a racing candidate silently overwrites the holder.
            .with_field_manager(format!("{}/{}", self.name, self.identity))
            .build()
            .await?;
        let (mut leading, task) = manager.watch().await;
        tracing::info!(lease = %self.name, identity = %self.identity, "waiting to acquire the lease");
        while !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return Err(LeaderError::Lost(self.name));
            }
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
        tokio::pin!(work);
        let lost = async {
            loop {
                if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = &mut work => {
                drop(leading);
                // Give the lease up at once so a standby replica need not wait it out.
                if let Ok(Ok(manager)) = task.await {
                    let _ = manager.release().await;
                }
                Ok(())
            }
            _ = lost => Err(LeaderError::Lost(self.name)),
        }
    }
}
