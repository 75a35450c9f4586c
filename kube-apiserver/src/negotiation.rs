//! Content negotiation: which media types a request body may use and which response form
//! (`Accept`) a client asked for: JSON, YAML, server-side Tables (`kubectl get`),
//! metadata-only objects, and aggregated discovery.

use apimachinery::StatusError;
use serde_json::Value;

/// A response form the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// `application/json;as=Table;v=v1;g=meta.k8s.io` (or v1beta1).
    Table,
    /// `as=PartialObjectMetadata` / `as=PartialObjectMetadataList`.
    PartialMetadata,
    /// `as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2` (or v2beta1).
    AggregatedDiscovery {
        v2beta1: bool,
    },
}

impl Output {
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Yaml => "application/yaml",
            Output::Json | Output::PartialMetadata | Output::Table => "application/json",
            Output::AggregatedDiscovery { v2beta1: false } => {
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            }
            Output::AggregatedDiscovery { v2beta1: true } => {
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
            }
        }
    }
}

struct MediaType<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> MediaType<'a> {
    fn parse(s: &'a str) -> Self {
        let mut parts = s.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("");
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        MediaType { essence, params }
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// What the request asked for. `allowed` says whether this endpoint offers a special form
/// (tables and metadata for resources, aggregated discovery for `/api` and `/apis`).
pub fn negotiate(
    accept: Option<&str>,
    resource_endpoint: bool,
    discovery_endpoint: bool,
) -> Result<Output, StatusError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    let mut offered = Vec::new();
    for candidate in accept.split(',') {
        let mt = MediaType::parse(candidate);
        offered.push(mt.essence.to_string());
        let json_like = matches!(mt.essence, "application/json" | "application/*" | "*/*");
        match mt.param("as") {
            Some("Table")
                if json_like && resource_endpoint && mt.param("g") == Some("meta.k8s.io") =>
            {
                if matches!(mt.param("v"), Some("v1" | "v1beta1")) {
                    return Ok(Output::Table);
                }
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if json_like && resource_endpoint && mt.param("g") == Some("meta.k8s.io") =>
            {
                if matches!(mt.param("v"), Some("v1" | "v1beta1")) {
                    return Ok(Output::PartialMetadata);
                }
            }
            Some("APIGroupDiscoveryList")
                if json_like
                    && discovery_endpoint
                    && mt.param("g") == Some("apidiscovery.k8s.io") =>
            {
                match mt.param("v") {
                    Some("v2") => return Ok(Output::AggregatedDiscovery { v2beta1: false }),
                    Some("v2beta1") => return Ok(Output::AggregatedDiscovery { v2beta1: true }),
                    _ => {}
                }
            }
            Some(_) => {}
            None => match mt.essence {
                "application/json" | "application/*" | "*/*" | "*" => return Ok(Output::Json),
                "application/yaml" | "application/x-yaml" | "text/yaml" => return Ok(Output::Yaml),
                _ => {}
            },
        }
    }
    Err(StatusError::not_acceptable(&[
        "application/json",
        "application/yaml",
    ]))
}

/// The kind of body a write request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    Yaml,
    JsonPatch,
    MergePatch,
    StrategicMergePatch,
    ApplyPatch,
    /// `application/vnd.kubernetes.protobuf`, which kubectl's typed clients send.
    Protobuf,
}

pub fn body_type(content_type: Option<&str>) -> Result<BodyType, StatusError> {
    let essence = content_type
        .map(|c| MediaType::parse(c).essence.to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "" | "application/json" => Ok(BodyType::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyType::Yaml),
        "application/json-patch+json" => Ok(BodyType::JsonPatch),
        "application/merge-patch+json" => Ok(BodyType::MergePatch),
        "application/strategic-merge-patch+json" => Ok(BodyType::StrategicMergePatch),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(BodyType::ApplyPatch),
        "application/vnd.kubernetes.protobuf" => Ok(BodyType::Protobuf),
        other => Err(StatusError::unsupported_media_type(other)),
    }
}

/// Decode a JSON or YAML body into a JSON value.
pub fn decode(body: &[u8], yaml: bool) -> Result<Value, StatusError> {
    if yaml {
        let text = std::str::from_utf8(body).map_err(|e| {
            StatusError::bad_request(format!("the body of the request is not valid UTF-8: {e}"))
        })?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| StatusError::bad_request(format!("error converting YAML to JSON: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| StatusError::bad_request(format!("error decoding request body: {e}")))
}

/// Decode a request body carrying a whole object (create, update, subresource bodies,
/// DeleteOptions) from JSON, YAML or Kubernetes protobuf into JSON.
pub fn decode_object_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, StatusError> {
    let value = match body_type(content_type)? {
        BodyType::Json => decode(body, false)?,
        BodyType::Yaml => decode(body, true)?,
        BodyType::Protobuf => {
            use k8s_protobuf::ProtobufError;
            match k8s_protobuf::decode_envelope(body) {
                Ok((_, value)) => value,
                Err(e @ ProtobufError::UnknownKind { .. }) => {
                    return Err(StatusError::new(
                        415,
                        apimachinery::StatusReason::UnsupportedMediaType,
                        e.to_string(),
                    ))
                }
                Err(e) => {
                    return Err(StatusError::bad_request(format!(
                        "error decoding protobuf body: {e}"
                    )))
                }
            }
        }
        other => {
            return Err(StatusError::unsupported_media_type(match other {
                BodyType::JsonPatch => "application/json-patch+json",
                BodyType::MergePatch => "application/merge-patch+json",
                BodyType::StrategicMergePatch => "application/strategic-merge-patch+json",
                _ => "application/apply-patch+yaml",
            }))
        }
    };
    if !value.is_object() {
        return Err(StatusError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(value)
}

/// Encode a response body in the negotiated form.
pub fn encode(value: &Value, output: Output) -> Vec<u8> {
    match output {
        Output::Yaml => serde_saphyr::to_string(value)
            .map(String::into_bytes)
            .unwrap_or_default(),
        _ => serde_json::to_vec(value).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_gets_tables() {
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(accept), true, false).unwrap(), Output::Table);
        assert_eq!(negotiate(Some(accept), false, false).unwrap(), Output::Json);
    }

    #[test]
    fn discovery_forms() {
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(accept), false, true).unwrap(),
            Output::AggregatedDiscovery { v2beta1: false }
        );
        assert_eq!(
            negotiate(Some("application/json"), false, true).unwrap(),
            Output::Json
        );
    }

    #[test]
    fn protobuf_only_is_not_acceptable() {
        let e = negotiate(Some("application/vnd.kubernetes.protobuf"), true, false).unwrap_err();
        assert_eq!(e.code, 406);
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, */*"),
                true,
                false
            )
            .unwrap(),
            Output::Json
        );
    }

    #[test]
    fn bodies() {
        assert_eq!(
            body_type(Some("application/merge-patch+json")).unwrap(),
            BodyType::MergePatch
        );
        assert_eq!(
            body_type(Some("application/vnd.kubernetes.protobuf")).unwrap(),
            BodyType::Protobuf
        );
        assert_eq!(body_type(Some("text/plain")).unwrap_err().code, 415);
        let e = decode_object_body(Some("application/vnd.kubernetes.protobuf"), b"not protobuf")
            .unwrap_err();
        assert_eq!(e.code, 400);
        let v = decode(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  a: '1'\n", true).unwrap();
        assert_eq!(v["data"]["a"], "1");
        assert_eq!(decode(b"{not json", false).unwrap_err().code, 400);
    }
}
