//! What the host is: CPUs, memory, root-dir filesystem size, identity files (cadvisor's
//! MachineInfo, reduced to what node status reports).

use std::collections::BTreeMap;
use std::path::Path;

use apimachinery::quantity::Quantity as Q;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::config::KubeletConfiguration;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpus: u64,
    pub memory_bytes: i64,
    pub ephemeral_storage_bytes: i64,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    pub kernel_version: String,
    pub os_image: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `MemTotal` from /proc/meminfo, in bytes.
pub fn mem_total(meminfo: &str) -> Option<i64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let kib: i64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    })
}

/// `PRETTY_NAME` from os-release.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

impl Machine {
    pub fn probe(root_dir: &Path) -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| mem_total(&m))
            .unwrap_or(0);
        let ephemeral_storage_bytes = nix::sys::statvfs::statvfs(root_dir)
            .map(|s| (s.blocks() as i64).saturating_mul(s.fragment_size() as i64))
            .unwrap_or(0);
        Machine {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes,
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
        }
    }

    pub fn capacity(&self, max_pods: u32) -> BTreeMap<String, Quantity> {
        super::resource_list([
            ("cpu", self.cpus.to_string()),
            ("memory", format!("{}Ki", self.memory_bytes / 1024)),
            ("pods", max_pods.to_string()),
            (
                "ephemeral-storage",
                format!("{}Ki", self.ephemeral_storage_bytes / 1024),
            ),
            ("hugepages-1Gi", "0".into()),
            ("hugepages-2Mi", "0".into()),
        ])
    }
}

/// A reservation or threshold: an absolute quantity, or a percentage of `capacity`.
fn amount(value: &str, capacity: &Q) -> Option<Q> {
    if let Some(p) = value.strip_suffix('%') {
        let pct: f64 = p.parse().ok()?;
        let bytes = (capacity.as_approximate_f64() * pct / 100.0) as i64;
        return Some(Q::new(bytes, capacity.format()));
    }
    Q::parse(value).ok()
}

/// capacity − kubeReserved − systemReserved − hard eviction thresholds (memory.available
/// for memory, nodefs.available for ephemeral-storage), never below zero, as upstream's
/// GetNodeAllocatableAbsolute.
pub fn allocatable(
    capacity: &BTreeMap<String, Quantity>,
    config: &KubeletConfiguration,
) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, cap) in capacity {
        let Ok(cap_q) = Q::parse(&cap.0) else {
            out.insert(name.clone(), cap.clone());
            continue;
        };
        let mut value = cap_q.clone();
        for reserved in [&config.kube_reserved, &config.system_reserved] {
            if let Some(r) = reserved.get(name).and_then(|v| amount(v, &cap_q)) {
                value.sub(&r);
            }
        }
        let signal = match name.as_str() {
            "memory" => Some("memory.available"),
            "ephemeral-storage" => Some("nodefs.available"),
            _ => None,
        };
        if let Some(t) = signal
            .and_then(|s| config.eviction_hard.get(s))
            .and_then(|v| amount(v, &cap_q))
        {
            value.sub(&t);
        }
        if value.sign() < 0 {
            value = Q::new(0, cap_q.format());
        }
        out.insert(name.clone(), Quantity(value.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_files() {
        assert_eq!(
            mem_total("MemTotal:       16393476 kB\nMemFree: 1 kB\n"),
            Some(16_393_476 * 1024)
        );
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        let m = Machine::probe(Path::new("/"));
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > 0);
        assert!(m.ephemeral_storage_bytes > 0);
    }

    #[test]
    fn allocatable_subtracts_reservations_and_eviction() {
        let m = Machine {
            cpus: 4,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
            ..Default::default()
        };
        let cap = m.capacity(110);
        assert_eq!(cap["memory"].0, "8388608Ki");
        let mut config = KubeletConfiguration::default();
        config.kube_reserved.insert("cpu".into(), "500m".into());
        config.system_reserved.insert("memory".into(), "1Gi".into());
        let a = allocatable(&cap, &config);
        assert_eq!(a["cpu"].0, "3500m");
        // 8Gi − 1Gi − 100Mi
        assert_eq!(
            Q::parse(&a["memory"].0).unwrap().value(),
            (7 << 30) - (100 << 20)
        );
        // 100Gi − 10%
        let storage = Q::parse(&a["ephemeral-storage"].0).unwrap().value();
        assert!((storage - (90i64 << 30)).abs() < 1024, "{storage}");
        assert_eq!(a["pods"].0, "110");
    }
}
