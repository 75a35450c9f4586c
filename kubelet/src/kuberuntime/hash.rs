//! The container hash written on every container (label-like annotation
//! `io.kubernetes.container.hash`): when the spec's hash differs from the running
//! container's, the container is replaced. FNV-1a (32 bit) over the container's JSON, in
//! hex, as upstream's HashContainer.

use k8s_openapi::api::core::v1::Container;

pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub fn container_hash(container: &Container) -> String {
    let json = serde_json::to_vec(container).unwrap_or_default();
    format!("{:x}", fnv32a(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_spec() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        let a = Container {
            name: "a".into(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(container_hash(&a), container_hash(&b));
        b.image = Some("busybox:1.35".into());
        assert_ne!(container_hash(&a), container_hash(&b));
    }
}
