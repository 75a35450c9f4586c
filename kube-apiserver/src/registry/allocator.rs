//! Allocators of service cluster IPs and node ports, persisted in storage as upstream
//! persists them (`/registry/ranges/serviceips`, `/registry/ranges/servicenodeports`):
//! a range and a bitmap of what is taken, updated by compare-and-swap so that several API
//! servers never hand out the same value.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use storage::{Storage, StorageError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocationError {
    #[error("provided IP is already allocated")]
    Allocated,
    #[error("provided IP is not in the valid range. The range of valid IPs is {0}")]
    OutOfRange(String),
    #[error("range is full")]
    Full,
    #[error("{0}")]
    Storage(String),
}

impl From<StorageError> for AllocationError {
    fn from(e: StorageError) -> Self {
        AllocationError::Storage(e.to_string())
    }
}

/// The stored form: the range and the bitmap of taken offsets (base64).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct RangeAllocation {
    range: String,
    data: String,
}

/// A bitmap allocator over `size` offsets, persisted at `key`.
pub struct BitmapAllocator {
    storage: Arc<dyn Storage>,
    key: String,
    range: String,
    size: u64,
}

fn get_bit(bits: &[u8], i: u64) -> bool {
    bits.get((i / 8) as usize)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

fn set_bit(bits: &mut Vec<u8>, i: u64, on: bool) {
    let idx = (i / 8) as usize;
    if bits.len() <= idx {
        bits.resize(idx + 1, 0);
    }
    if on {
        bits[idx] |= 1 << (i % 8);
    } else {
        bits[idx] &= !(1 << (i % 8));
    }
}

/// How many times a contended allocation is retried.
const MAX_RETRIES: usize = 32;

impl BitmapAllocator {
    pub fn new(storage: Arc<dyn Storage>, key: String, range: String, size: u64) -> Self {
        BitmapAllocator {
            storage,
            key,
            range,
            size,
        }
    }

    /// Apply `f` to the bitmap with compare-and-swap; `f` returns the chosen offset.
    async fn modify(
        &self,
        mut f: impl FnMut(&mut Vec<u8>) -> Result<u64, AllocationError>,
    ) -> Result<u64, AllocationError> {
        for _ in 0..MAX_RETRIES {
            let current = self.storage.get(&self.key).await?;
            let (mut bits, rev) = match &current {
                Some(kv) => {
                    let stored: RangeAllocation =
                        serde_json::from_slice(&kv.value).unwrap_or_default();
                    let bits = base64::engine::general_purpose::STANDARD
                        .decode(stored.data)
                        .unwrap_or_default();
                    (bits, Some(kv.mod_revision))
                }
                None => (Vec::new(), None),
            };
            let chosen = f(&mut bits)?;
            let value = serde_json::to_vec(&RangeAllocation {
                range: self.range.clone(),
                data: base64::engine::general_purpose::STANDARD.encode(&bits),
            })
            .map_err(|e| AllocationError::Storage(e.to_string()))?;
            let result = match rev {
                Some(rev) => {
                    self.storage
                        .update(&self.key, Bytes::from(value), rev, None)
                        .await
                }
                None => {
                    self.storage
                        .create(&self.key, Bytes::from(value), None)
                        .await
                }
            };
            match result {
                Ok(_) => return Ok(chosen),
                Err(StorageError::Conflict { .. } | StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AllocationError::Storage(
            "too much contention on the allocator".into(),
        ))
    }

    /// Take a specific offset.
    pub async fn allocate(&self, offset: u64) -> Result<(), AllocationError> {
        if offset >= self.size {
            return Err(AllocationError::OutOfRange(self.range.clone()));
        }
        self.modify(|bits| {
            if get_bit(bits, offset) {
                return Err(AllocationError::Allocated);
            }
            set_bit(bits, offset, true);
            Ok(offset)
        })
        .await
        .map(|_| ())
    }

    /// Take any free offset, starting the search at a random point (as upstream does) so
    /// that concurrent allocators rarely collide.
    pub async fn allocate_next(&self, skip: &[u64]) -> Result<u64, AllocationError> {
        let start = rand::random::<u64>() % self.size.max(1);
        self.modify(|bits| {
            for i in 0..self.size {
                let candidate = (start + i) % self.size;
                if !get_bit(bits, candidate) && !skip.contains(&candidate) {
                    set_bit(bits, candidate, true);
                    return Ok(candidate);
                }
            }
            Err(AllocationError::Full)
        })
        .await
    }

    pub async fn release(&self, offset: u64) -> Result<(), AllocationError> {
        if offset >= self.size {
            return Ok(());
        }
        self.modify(|bits| {
            set_bit(bits, offset, false);
            Ok(offset)
        })
        .await
        .map(|_| ())
    }

    pub async fn is_allocated(&self, offset: u64) -> Result<bool, AllocationError> {
        let Some(kv) = self.storage.get(&self.key).await? else {
            return Ok(false);
        };
        let stored: RangeAllocation = serde_json::from_slice(&kv.value).unwrap_or_default();
        let bits = base64::engine::general_purpose::STANDARD
            .decode(stored.data)
            .unwrap_or_default();
        Ok(get_bit(&bits, offset))
    }
}

/// Service cluster IPs from `--service-cluster-ip-range`. Offset 0 is the network address
/// and is never handed out; offset 1 is reserved for the `kubernetes` service by asking
/// for it explicitly.
pub struct IpAllocator {
    bitmap: BitmapAllocator,
    net: ipnet::IpNet,
}

impl IpAllocator {
    pub fn new(storage: Arc<dyn Storage>, prefix: &str, net: ipnet::IpNet) -> Self {
        let host_bits = u32::from(net.max_prefix_len() - net.prefix_len()).min(20);
        let size = 1u64 << host_bits;
        let key = format!("{}/ranges/serviceips", prefix.trim_end_matches('/'));
        IpAllocator {
            bitmap: BitmapAllocator::new(storage, key, net.to_string(), size),
            net,
        }
    }

    pub fn range(&self) -> ipnet::IpNet {
        self.net
    }

    fn offset(&self, ip: IpAddr) -> Option<u64> {
        if !self.net.contains(&ip) {
            return None;
        }
        match (ip, self.net.network()) {
            (IpAddr::V4(ip), IpAddr::V4(base)) => Some(u64::from(u32::from(ip) - u32::from(base))),
            (IpAddr::V6(ip), IpAddr::V6(base)) => {
                u64::try_from(u128::from(ip) - u128::from(base)).ok()
            }
            _ => None,
        }
    }

    fn ip_at(&self, offset: u64) -> IpAddr {
        match self.net.network() {
            IpAddr::V4(base) => IpAddr::V4((u32::from(base) + offset as u32).into()),
            IpAddr::V6(base) => IpAddr::V6((u128::from(base) + u128::from(offset)).into()),
        }
    }

    pub async fn allocate(&self, ip: IpAddr) -> Result<(), AllocationError> {
        match self.offset(ip) {
            // The network and broadcast addresses are not usable.
            Some(o) if o > 0 && o < self.bitmap.size - 1 => self.bitmap.allocate(o).await,
            _ => Err(AllocationError::OutOfRange(self.net.to_string())),
        }
    }

    pub async fn allocate_next(&self) -> Result<IpAddr, AllocationError> {
        // Never the network address, the broadcast address, or the first address, which
        // belongs to the `kubernetes` service.
        let last = self.bitmap.size - 1;
        self.bitmap
            .allocate_next(&[0, 1, last])
            .await
            .map(|o| self.ip_at(o))
    }

    pub async fn release(&self, ip: IpAddr) -> Result<(), AllocationError> {
        match self.offset(ip) {
            Some(o) => self.bitmap.release(o).await,
            None => Ok(()),
        }
    }
}

/// Node ports from `--service-node-port-range`.
pub struct PortAllocator {
    bitmap: BitmapAllocator,
    first: u16,
    last: u16,
}

impl PortAllocator {
    pub fn new(storage: Arc<dyn Storage>, prefix: &str, first: u16, last: u16) -> Self {
        let key = format!("{}/ranges/servicenodeports", prefix.trim_end_matches('/'));
        let size = u64::from(last - first) + 1;
        PortAllocator {
            bitmap: BitmapAllocator::new(storage, key, format!("{first}-{last}"), size),
            first,
            last,
        }
    }

    pub fn range(&self) -> String {
        format!("{}-{}", self.first, self.last)
    }

    pub fn contains(&self, port: i32) -> bool {
        port >= i32::from(self.first) && port <= i32::from(self.last)
    }

    pub async fn allocate(&self, port: i32) -> Result<(), AllocationError> {
        if !self.contains(port) {
            return Err(AllocationError::OutOfRange(self.range()));
        }
        self.bitmap
            .allocate((port - i32::from(self.first)) as u64)
            .await
    }

    pub async fn allocate_next(&self) -> Result<i32, AllocationError> {
        self.bitmap
            .allocate_next(&[])
            .await
            .map(|o| i32::from(self.first) + o as i32)
    }

    pub async fn release(&self, port: i32) -> Result<(), AllocationError> {
        if !self.contains(port) {
            return Ok(());
        }
        self.bitmap
            .release((port - i32::from(self.first)) as u64)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Arc<dyn Storage> {
        Arc::new(storage::memory::MemoryStorage::new())
    }

    #[tokio::test]
    async fn ips_are_unique_and_released() {
        let a = IpAllocator::new(memory(), "/registry", "10.96.0.0/29".parse().unwrap());
        a.allocate("10.96.0.1".parse().unwrap()).await.unwrap();
        assert_eq!(
            a.allocate("10.96.0.1".parse().unwrap()).await,
            Err(AllocationError::Allocated)
        );
        assert!(matches!(
            a.allocate("10.97.0.1".parse().unwrap()).await,
            Err(AllocationError::OutOfRange(_))
        ));
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(a.allocate_next().await.unwrap());
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 5);
        assert!(!got.contains(&"10.96.0.1".parse().unwrap()));
        assert_eq!(a.allocate_next().await, Err(AllocationError::Full));
        a.release(got[0]).await.unwrap();
        assert_eq!(a.allocate_next().await.unwrap(), got[0]);
    }

    #[tokio::test]
    async fn ports() {
        let p = PortAllocator::new(memory(), "/registry", 30000, 30002);
        p.allocate(30001).await.unwrap();
        assert_eq!(p.allocate(30001).await, Err(AllocationError::Allocated));
        let mut a = vec![
            p.allocate_next().await.unwrap(),
            p.allocate_next().await.unwrap(),
        ];
        a.sort();
        assert_eq!(a, vec![30000, 30002]);
        assert_eq!(p.allocate_next().await, Err(AllocationError::Full));
    }
}
