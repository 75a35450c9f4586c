//! Errors. Every failure on a request body is one of these; nothing panics on input.

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\x00\"")]
    MissingMagic,
    #[error("protobuf envelope has no kind in its typeMeta")]
    MissingKind,
    #[error("protobuf envelope has unsupported contentEncoding {0:?}")]
    UnsupportedContentEncoding(String),
    #[error("protobuf envelope has unsupported contentType {0:?}")]
    UnsupportedContentType(String),
    #[error("no protobuf schema for kind {kind:?} of apiVersion {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("no protobuf schema for message {0}")]
    UnknownMessage(String),
    #[error("malformed protobuf{}: {reason}", at(path))]
    Malformed { path: String, reason: Malformed },
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

/// What is wrong with the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("unexpected end of data")]
    Truncated,
    #[error("varint longer than 64 bits")]
    VarintOverflow,
    #[error("invalid field number {0}")]
    InvalidFieldNumber(u64),
    #[error("invalid wire type {0}")]
    InvalidWireType(u8),
    #[error("unbalanced group")]
    UnbalancedGroup,
    #[error("wire type {found} where the schema expects {expected}")]
    WrongWireType { expected: &'static str, found: u8 },
    #[error("messages nested too deeply")]
    TooDeep,
    #[error("NaN or infinite number, which has no JSON form")]
    NotFinite,
    #[error("time {seconds}s since the epoch is outside years 0-9999")]
    TimeOutOfRange { seconds: i64 },
    #[error("IntOrString type {0} is neither 0 (int) nor 1 (string)")]
    IntOrStringType(i64),
    #[error("embedded JSON is invalid: {0}")]
    EmbeddedJson(String),
}

impl ProtobufError {
    pub(crate) fn malformed(reason: Malformed) -> Self {
        ProtobufError::Malformed {
            path: String::new(),
            reason,
        }
    }

    /// Puts `segment` (a field name or `[index]`) in front of the error's path, as the
    /// error travels out of a nested message.
    pub(crate) fn within(self, segment: &str) -> Self {
        if segment.is_empty() {
            return self;
        }
        match self {
            ProtobufError::Malformed { path, reason } => {
                let path = if path.is_empty() {
                    segment.to_string()
                } else if path.starts_with('[') {
                    format!("{segment}{path}")
                } else {
                    format!("{segment}.{path}")
                };
                ProtobufError::Malformed { path, reason }
            }
            other => other,
        }
    }
}

impl From<Malformed> for ProtobufError {
    fn from(reason: Malformed) -> Self {
        ProtobufError::malformed(reason)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_json_paths() {
        let e = ProtobufError::malformed(Malformed::Truncated)
            .within("image")
            .within("[0]")
            .within("containers")
            .within("spec");
        assert_eq!(
            e.to_string(),
            "malformed protobuf at spec.containers[0].image: unexpected end of data"
        );
        assert_eq!(
            ProtobufError::malformed(Malformed::TooDeep).to_string(),
            "malformed protobuf: messages nested too deeply"
        );
    }
}
