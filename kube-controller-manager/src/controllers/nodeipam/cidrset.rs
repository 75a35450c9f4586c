//! A cluster CIDR cut into equal node CIDRs, with a bitmap of those in use (upstream's
//! `cidrset.CidrSet`): allocation goes round the set from after the last one given,
//! so a released CIDR is not handed out again at once.

use std::net::IpAddr;

use ipnet::IpNet;

/// The most node CIDRs one cluster CIDR may be cut into: 2^16 (upstream's
/// `clusterSubnetMaxDiff`).
const MAX_PREFIX_DIFF: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrSetError {
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    Full,
    #[error("node CIDR mask size /{node} must be at least the cluster CIDR's /{cluster} and at most /{max}")]
    MaskSize { cluster: u8, node: u8, max: u8 },
    #[error("the cluster CIDR {cluster} may be cut into at most 2^{MAX_PREFIX_DIFF} node CIDRs; /{node} is too long")]
    TooMany { cluster: IpNet, node: u8 },
    #[error("CIDR {cidr} is outside the cluster CIDR {cluster}")]
    Outside { cidr: IpNet, cluster: IpNet },
    #[error("CIDR {cidr} does not have the node CIDR mask size /{node}")]
    WrongSize { cidr: IpNet, node: u8 },
}

#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    node_prefix: u8,
    count: usize,
    used: Vec<u64>,
    allocated: usize,
    next: usize,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl CidrSet {
    pub fn new(cluster: IpNet, node_prefix: u8) -> Result<Self, CidrSetError> {
        let cluster = cluster.trunc();
        let max = cluster.max_prefix_len();
        if node_prefix < cluster.prefix_len() || node_prefix > max {
            return Err(CidrSetError::MaskSize {
                cluster: cluster.prefix_len(),
                node: node_prefix,
                max,
            });
        }
        if node_prefix - cluster.prefix_len() > MAX_PREFIX_DIFF {
            return Err(CidrSetError::TooMany {
                cluster,
                node: node_prefix,
            });
        }
        let count = 1usize << (node_prefix - cluster.prefix_len());
        Ok(CidrSet {
            cluster,
            node_prefix,
            count,
            used: vec![0; count.div_ceil(64)],
            allocated: 0,
            next: 0,
        })
    }

    pub fn cluster(&self) -> IpNet {
        self.cluster
    }

    pub fn node_prefix(&self) -> u8 {
        self.node_prefix
    }

    /// How many node CIDRs are in use.
    pub fn allocated(&self) -> usize {
        self.allocated
    }

    /// How many node CIDRs the set holds.
    pub fn capacity(&self) -> usize {
        self.count
    }

    fn shift(&self) -> u32 {
        u32::from(self.cluster.max_prefix_len() - self.node_prefix)
    }

    fn base(&self) -> u128 {
        to_u128(self.cluster.network())
    }

    fn is_used(&self, i: usize) -> bool {
        self.used[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        let was = self.is_used(i);
        if on && !was {
            self.used[i / 64] |= 1 << (i % 64);
            self.allocated += 1;
        } else if !on && was {
            self.used[i / 64] &= !(1 << (i % 64));
            self.allocated -= 1;
        }
    }

    fn cidr_at(&self, i: usize) -> IpNet {
        let addr = self.base() + ((i as u128) << self.shift());
        let ip = match self.cluster {
            IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(addr as u32)),
            IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(addr)),
        };
        IpNet::new_assert(ip, self.node_prefix)
    }

    /// The next free node CIDR, marked in use.
    pub fn allocate_next(&mut self) -> Result<IpNet, CidrSetError> {
        if self.allocated == self.count {
            return Err(CidrSetError::Full);
        }
        for k in 0..self.count {
            let i = (self.next + k) % self.count;
            if !self.is_used(i) {
                self.set(i, true);
                self.next = (i + 1) % self.count;
                return Ok(self.cidr_at(i));
            }
        }
        Err(CidrSetError::Full)
    }

    /// The node CIDRs a CIDR covers or touches, clipped to the cluster CIDR; `None` when
    /// it lies outside.
    fn range_of(&self, cidr: &IpNet) -> Option<(usize, usize)> {
        if cidr.addr().is_ipv4() != self.cluster.addr().is_ipv4() {
            return None;
        }
        let cidr = cidr.trunc();
        let (lo, hi) = (to_u128(cidr.network()), to_u128(cidr.broadcast()));
        let (clo, chi) = (self.base(), to_u128(self.cluster.broadcast()));
        if hi < clo || lo > chi {
            return None;
        }
        let (lo, hi) = (lo.max(clo), hi.min(chi));
        let first = ((lo - clo) >> self.shift()) as usize;
        let last = ((hi - clo) >> self.shift()) as usize;
        Some((first, last))
    }

    /// Mark every node CIDR `cidr` overlaps as used (for CIDRs found on nodes, and for
    /// ranges that must never be given out, such as the service range).
    pub fn occupy(&mut self, cidr: &IpNet) -> Result<(), CidrSetError> {
        let (first, last) = self.range_of(cidr).ok_or(CidrSetError::Outside {
            cidr: *cidr,
            cluster: self.cluster,
        })?;
        for i in first..=last {
            self.set(i, true);
        }
        Ok(())
    }

    /// Release a node CIDR.
    pub fn release(&mut self, cidr: &IpNet) -> Result<(), CidrSetError> {
        if cidr.prefix_len() != self.node_prefix {
            return Err(CidrSetError::WrongSize {
                cidr: *cidr,
                node: self.node_prefix,
            });
        }
        let (first, last) = self.range_of(cidr).ok_or(CidrSetError::Outside {
            cidr: *cidr,
            cluster: self.cluster,
        })?;
        for i in first..=last {
            self.set(i, false);
        }
        Ok(())
    }

    /// Whether `cidr` is one of this set's node CIDRs.
    pub fn contains(&self, cidr: &IpNet) -> bool {
        cidr.prefix_len() == self.node_prefix
            && self.range_of(cidr).is_some()
            && self.cluster.contains(cidr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_until_full_and_reuses_released() {
        let mut set = CidrSet::new(net("10.0.0.0/22"), 24).unwrap();
        assert_eq!(set.capacity(), 4);
        let got: Vec<IpNet> = (0..4).map(|_| set.allocate_next().unwrap()).collect();
        assert_eq!(
            got,
            vec![
                net("10.0.0.0/24"),
                net("10.0.1.0/24"),
                net("10.0.2.0/24"),
                net("10.0.3.0/24")
            ]
        );
        assert_eq!(set.allocate_next(), Err(CidrSetError::Full));
        set.release(&net("10.0.1.0/24")).unwrap();
        assert_eq!(set.allocate_next().unwrap(), net("10.0.1.0/24"));
    }

    #[test]
    fn occupied_ranges_are_skipped() {
        // A service range inside the cluster CIDR is never handed out.
        let mut set = CidrSet::new(net("10.96.0.0/22"), 24).unwrap();
        set.occupy(&net("10.96.0.0/23")).unwrap();
        assert_eq!(set.allocate_next().unwrap(), net("10.96.2.0/24"));
        // A smaller range blocks the node CIDR that holds it.
        set.occupy(&net("10.96.3.128/25")).unwrap();
        assert_eq!(set.allocate_next(), Err(CidrSetError::Full));
        // A larger range clips to the cluster.
        let mut set = CidrSet::new(net("10.96.0.0/22"), 24).unwrap();
        set.occupy(&net("10.0.0.0/8")).unwrap();
        assert_eq!(set.allocated(), 4);
        assert!(set.occupy(&net("192.168.0.0/24")).is_err());
    }

    #[test]
    fn round_robin_after_release() {
        let mut set = CidrSet::new(net("10.0.0.0/22"), 24).unwrap();
        let a = set.allocate_next().unwrap();
        set.release(&a).unwrap();
        // The next allocation moves on rather than reusing the just-released CIDR.
        assert_eq!(set.allocate_next().unwrap(), net("10.0.1.0/24"));
    }

    #[test]
    fn ipv6_and_limits() {
        let mut set = CidrSet::new(net("fd00:10::/56"), 64).unwrap();
        assert_eq!(set.allocate_next().unwrap(), net("fd00:10::/64"));
        assert_eq!(set.allocate_next().unwrap(), net("fd00:10:0:1::/64"));
        assert!(matches!(
            CidrSet::new(net("10.0.0.0/8"), 25),
            Err(CidrSetError::TooMany { .. })
        ));
        assert!(matches!(
            CidrSet::new(net("10.0.0.0/24"), 16),
            Err(CidrSetError::MaskSize { .. })
        ));
        assert!(set.contains(&net("fd00:10:0:5::/64")));
        assert!(!set.contains(&net("10.0.0.0/24")));
    }
}
