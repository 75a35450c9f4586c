//! Pod IPs of the hollow nodes: handed out from each node's pod CIDRs (the node-ipam
//! controller's `spec.podCIDRs`, or the node's fake /24), one offset for all families so
//! a dual-stack pod gets matching addresses, never two live pods on one address.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Default)]
struct NodeIps {
    used: HashSet<u128>,
    next: u128,
}

#[derive(Default)]
pub struct PodIps {
    nodes: HashMap<String, NodeIps>,
    /// uid → (node, offset, addresses).
    pods: HashMap<String, (String, u128, Vec<IpAddr>)>,
}

/// Offset `i` inside `net`.
fn at(net: &IpNet, i: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(u32::from(n.network()).wrapping_add(i as u32).into()),
        IpNet::V6(n) => IpAddr::V6(u128::from(n.network()).wrapping_add(i).into()),
    }
}

/// Offset of `ip` inside `net`.
fn offset(net: &IpNet, ip: IpAddr) -> Option<u128> {
    match (net, ip) {
        (IpNet::V4(n), IpAddr::V4(a)) if n.contains(&a) => {
            Some(u128::from(u32::from(a) - u32::from(n.network())))
        }
        (IpNet::V6(n), IpAddr::V6(a)) if n.contains(&a) => {
            Some(u128::from(a) - u128::from(n.network()))
        }
        _ => None,
    }
}

/// Usable offsets: skip the network address and .1 (the bridge's gateway on a real
/// node) and, for IPv4, the broadcast address. Huge IPv6 ranges are capped.
fn range(cidrs: &[IpNet]) -> (u128, u128) {
    let size = cidrs
        .iter()
        .map(|n| {
            let host_bits = u32::from(n.max_prefix_len() - n.prefix_len()).min(20);
            let size = 1u128 << host_bits;
            if matches!(n, IpNet::V4(_)) {
                size - 1
            } else {
                size
            }
        })
        .min()
        .unwrap_or(0);
    (2, size)
}

impl PodIps {
    /// The addresses of pod `uid` on `node`, allocating if it has none. `None` when the
    /// node's range is full.
    pub fn allocate(&mut self, uid: &str, node: &str, cidrs: &[IpNet]) -> Option<Vec<IpAddr>> {
        if let Some((_, _, ips)) = self.pods.get(uid) {
            return Some(ips.clone());
        }
        let (lo, hi) = range(cidrs);
        if hi <= lo {
            return None;
        }
        let n = self.nodes.entry(node.to_string()).or_default();
        let span = hi - lo;
        for k in 0..span {
            let off = lo + (n.next + k) % span;
            if !n.used.contains(&off) {
                n.used.insert(off);
                n.next = (off - lo + 1) % span;
                let ips: Vec<IpAddr> = cidrs.iter().map(|c| at(c, off)).collect();
                self.pods
                    .insert(uid.to_string(), (node.to_string(), off, ips.clone()));
                return Some(ips);
            }
        }
        None
    }

    /// Record addresses a pod already has (found on the pod after a restart).
    pub fn reserve(&mut self, uid: &str, node: &str, cidrs: &[IpNet], ips: &[IpAddr]) {
        if self.pods.contains_key(uid) {
            return;
        }
        let Some(off) = ips
            .first()
            .and_then(|ip| cidrs.iter().find_map(|c| offset(c, *ip)))
        else {
            // Not from this node's range (e.g. assigned before node-ipam gave the node
            // a CIDR): nothing here to protect.
            self.pods
                .insert(uid.to_string(), (node.to_string(), u128::MAX, ips.to_vec()));
            return;
        };
        self.nodes
            .entry(node.to_string())
            .or_default()
            .used
            .insert(off);
        self.pods
            .insert(uid.to_string(), (node.to_string(), off, ips.to_vec()));
    }

    pub fn release(&mut self, uid: &str) {
        if let Some((node, off, _)) = self.pods.remove(uid) {
            if let Some(n) = self.nodes.get_mut(&node) {
                n.used.remove(&off);
            }
        }
    }

    /// Release the addresses of pods for which `live` says no (deletions missed while
    /// the watch was re-listing).
    pub fn sweep(&mut self, live: impl Fn(&str) -> bool) {
        let dead: Vec<String> = self.pods.keys().filter(|u| !live(u)).cloned().collect();
        for uid in dead {
            self.release(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn allocates_distinct_addresses_and_reuses_released_ones() {
        let mut ips = PodIps::default();
        let cidr = nets(&["10.244.3.0/24"]);
        let a = ips.allocate("a", "n", &cidr).unwrap();
        assert_eq!(a, vec!["10.244.3.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(ips.allocate("a", "n", &cidr).unwrap(), a, "idempotent");
        let mut seen = HashSet::from([a[0]]);
        for i in 0..252 {
            let ip = ips.allocate(&format!("p{i}"), "n", &cidr).unwrap()[0];
            assert!(seen.insert(ip), "{ip} twice");
        }
        // .2 .. .254 are used: 253 addresses.
        assert_eq!(ips.allocate("full", "n", &cidr), None);
        ips.release("p7");
        assert!(ips.allocate("full", "n", &cidr).is_some());
        // Another node has its own range.
        assert!(ips.allocate("x", "m", &nets(&["10.244.4.0/24"])).is_some());
    }

    #[test]
    fn dual_stack_gets_matching_offsets() {
        let mut ips = PodIps::default();
        let got = ips
            .allocate("a", "n", &nets(&["10.1.0.0/24", "fd00:1::/64"]))
            .unwrap();
        assert_eq!(got[0].to_string(), "10.1.0.2");
        assert_eq!(got[1].to_string(), "fd00:1::2");
    }

    #[test]
    fn reserved_addresses_are_not_handed_out_again() {
        let mut ips = PodIps::default();
        let cidr = nets(&["10.0.0.0/24"]);
        ips.reserve("old", "n", &cidr, &["10.0.0.2".parse().unwrap()]);
        assert_eq!(
            ips.allocate("new", "n", &cidr).unwrap()[0].to_string(),
            "10.0.0.3"
        );
        ips.sweep(|uid| uid != "old");
        assert_eq!(
            ips.allocate("newer", "n", &cidr).unwrap()[0].to_string(),
            "10.0.0.4"
        );
        assert_eq!(
            ips.allocate("again", "n", &cidr).unwrap()[0].to_string(),
            "10.0.0.5"
        );
    }
}
