//! The compare-and-swap retry loop behind every read-modify-write (upstream's
//! `GuaranteedUpdate`).

use std::time::Duration;

use bytes::Bytes;

use crate::{KeyValue, Storage, StorageError};

/// What the update function wants done with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateAction {
    /// Store this value (creating the key if it does not exist); the key becomes permanent.
    Put(Bytes),
    /// Store this value; the key expires after the duration.
    PutWithTtl(Bytes, Duration),
    /// Delete the key.
    Delete,
    /// Leave the key as it is.
    NoChange,
}

/// What [`guaranteed_update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The key was created or updated and now holds this.
    Put(KeyValue),
    /// The key was deleted; its last value, with `mod_revision` set to the deletion.
    Deleted(KeyValue),
    /// Nothing was written; this is what the key holds (`None`: it does not exist).
    Unchanged(Option<KeyValue>),
}

/// Applies `update` to the current value of `key` until a compare-and-swap succeeds.
///
/// `cached` is the caller's idea of the current value (for example from the watch cache);
/// `None` makes the loop read the key first. On a conflict the store reports the value it
/// holds, so a retry needs no extra read. A cached value is never trusted for a no-op: if
/// `update` wants no change (or the same bytes) based on it, the key is read again and
/// `update` runs once more on the fresh value, as upstream does, so that a stale cache can
/// not hide a needed write. `update` may run several times and must not have side effects
/// that cannot be repeated. Errors of `update` end the loop and are returned as they are.
pub async fn guaranteed_update<S, F, E>(
    storage: &S,
    key: &str,
    cached: Option<KeyValue>,
    mut update: F,
) -> Result<UpdateOutcome, E>
where
    S: Storage + ?Sized,
    F: FnMut(Option<&KeyValue>) -> Result<UpdateAction, E>,
    E: From<StorageError>,
{
    // Whether `current` came from the store (a read or a failed compare-and-swap) rather
    // than from the caller's cache.
    let (mut current, mut verified) = match cached {
        Some(kv) => (Some(kv), false),
        None => (storage.get(key).await?, true),
    };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let action = update(current.as_ref())?;
        let (value, ttl) = match action {
            UpdateAction::Put(value) => (value, None),
            UpdateAction::PutWithTtl(value, ttl) => (value, Some(ttl)),
            UpdateAction::NoChange => {
                if verified {
                    return Ok(UpdateOutcome::Unchanged(current));
                }
                current = storage.get(key).await?;
                verified = true;
                continue;
            }
            UpdateAction::Delete => {
                let result = match &current {
                    Some(kv) => storage.delete(key, Some(kv.mod_revision)).await,
                    None if verified => {
                        return Err(StorageError::NotFound {
                            key: key.to_string(),
                        }
                        .into())
                    }
                    None => {
                        current = storage.get(key).await?;
                        verified = true;
                        continue;
                    }
                };
                match result {
                    Ok(deleted) => return Ok(UpdateOutcome::Deleted(deleted)),
                    Err(e) => {
                        (current, verified) = retry_state(storage, key, e, attempt).await?;
                        continue;
                    }
                }
            }
        };
        let result = match &current {
            // Writing the same bytes again would only bump the revision.
            Some(kv) if ttl.is_none() && kv.value == value => {
                if verified {
                    return Ok(UpdateOutcome::Unchanged(current));
                }
                current = storage.get(key).await?;
                verified = true;
                continue;
            }
            Some(kv) => storage.update(key, value, kv.mod_revision, ttl).await,
            None => storage.create(key, value, ttl).await,
        };
        match result {
            Ok(kv) => return Ok(UpdateOutcome::Put(kv)),
            Err(e) => (current, verified) = retry_state(storage, key, e, attempt).await?,
        }
    }
}

/// The state to retry from after a failed write, or the error to give up with.
async fn retry_state<S, E>(
    storage: &S,
    key: &str,
    error: StorageError,
    attempt: u32,
) -> Result<(Option<KeyValue>, bool), E>
where
    S: Storage + ?Sized,
    E: From<StorageError>,
{
    tracing::debug!(key, attempt, %error, "retrying update");
    match error {
        StorageError::Conflict { current, .. } => Ok((current, true)),
        // Deleted between our read and our write.
        StorageError::NotFound { .. } => Ok((None, true)),
        // Created between our read and our write; the error carries no value.
        StorageError::AlreadyExists { .. } => Ok((storage.get(key).await?, true)),
        other => Err(other.into()),
    }
}
