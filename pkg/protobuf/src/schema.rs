//! The schema table's types and lookups. The data itself is generated into
//! `schema_table.rs` by `hack/gen-protobuf-schema.py`.

use crate::schema_table::{GROUP_VERSIONS, MESSAGES};

/// How a field's value travels on the wire and turns into JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`: a JSON string.
    Str,
    /// `bytes`: a base64 JSON string, as Go's `encoding/json` writes `[]byte`.
    Bytes,
    Bool,
    I32,
    I64,
    U32,
    U64,
    /// `double`.
    F64,
    /// `float`.
    F32,
    /// An embedded message, named by [`FieldDef::message`].
    Msg,
}

/// Cardinality of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// proto2 `optional`: present on the wire or not.
    Opt,
    /// `repeated`: a JSON array (omitted when nothing is on the wire).
    Rep,
    /// `map<string, V>` where V is the field's [`Kind`]: a JSON object.
    Map,
}

/// The JSON form of a message. Most are objects of their fields; the rest follow upstream's
/// custom `MarshalJSON` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    /// `meta.v1.Time`: RFC 3339 in seconds, or `null` for Go's zero time.
    Time,
    /// `meta.v1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `meta.v1.Duration`: Go's `time.Duration.String()`.
    Duration,
    /// `meta.v1.FieldsV1`: the embedded JSON document.
    FieldsV1,
    /// `runtime.RawExtension`: the embedded object (JSON, or a nested protobuf envelope).
    RawExtension,
    /// `api.resource.Quantity`: its string.
    Quantity,
    /// `util.intstr.IntOrString`: a JSON number or string.
    IntOrString,
    /// `apiextensions.v1.JSON`: the embedded JSON value.
    Json,
    /// A Go slice type wrapped in a message (`ExtraValue`, `Verbs`): a JSON array of field 1.
    List,
    /// `JSONSchemaPropsOrArray`: the array if any, else the schema.
    PropsOrArray,
    /// `JSONSchemaPropsOrBool`: the schema if any, else the bool.
    PropsOrBool,
    /// `JSONSchemaPropsOrStringArray`: the strings if any, else the schema.
    PropsOrStringArray,
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub tag: u32,
    /// Upstream's JSON name; empty for an embedded struct Go inlines (`json:",inline"`),
    /// whose fields land in the parent object.
    pub json: &'static str,
    pub kind: Kind,
    pub label: Label,
    /// Full proto name of the message type, for [`Kind::Msg`]; empty otherwise.
    pub message: &'static str,
    /// Go writes every non-pointer scalar to protobuf, zero or not, while its JSON omits
    /// the zero values of `omitempty` fields; set for exactly those fields.
    pub omit_zero: bool,
}

impl FieldDef {
    /// The field's segment in error paths: its JSON name, or nothing for an inlined struct,
    /// whose fields sit in the parent's JSON object.
    pub fn path_segment(&self) -> &'static str {
        self.json
    }
}

/// One message of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageDef {
    /// Full proto name, e.g. `k8s.io.api.core.v1.ConfigMap`.
    pub name: &'static str,
    pub shape: Shape,
    /// In Go struct order, which is the order upstream's JSON has.
    pub fields: &'static [FieldDef],
}

impl MessageDef {
    pub fn field(&self, tag: u32) -> Option<(usize, &'static FieldDef)> {
        self.fields.iter().enumerate().find(|(_, f)| f.tag == tag)
    }
}

/// A field; the generated table calls this for most rows.
pub(crate) const fn f(
    tag: u32,
    json: &'static str,
    kind: Kind,
    label: Label,
    message: &'static str,
) -> FieldDef {
    FieldDef {
        tag,
        json,
        kind,
        label,
        message,
        omit_zero: false,
    }
}

/// A scalar field whose zero value upstream's JSON omits (see [`FieldDef::omit_zero`]).
pub(crate) const fn z(tag: u32, json: &'static str, kind: Kind) -> FieldDef {
    FieldDef {
        tag,
        json,
        kind,
        label: Label::Opt,
        message: "",
        omit_zero: true,
    }
}

/// The message with this full proto name.
pub fn message(name: &str) -> Option<&'static MessageDef> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .and_then(|i| MESSAGES.get(i))
}

/// Every message of the table, sorted by name.
pub fn messages() -> &'static [MessageDef] {
    MESSAGES
}

/// The proto package of a group-version (`apiVersion`), e.g. `apps/v1` ->
/// `k8s.io.api.apps.v1`.
pub fn package_for(api_version: &str) -> Option<&'static str> {
    GROUP_VERSIONS
        .binary_search_by(|(gv, _)| (*gv).cmp(api_version))
        .ok()
        .and_then(|i| GROUP_VERSIONS.get(i))
        .map(|(_, pkg)| *pkg)
}

/// The message a `(apiVersion, kind)` pair is encoded as. Kinds of `meta/v1` such as
/// `DeleteOptions` travel under every group-version, so they are found there too.
pub fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static MessageDef> {
    let package = package_for(api_version)?;
    message(&format!("{package}.{kind}")).or_else(|| {
        let meta = package_for("meta.k8s.io/v1")?;
        message(&format!("{meta}.{kind}"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        assert!(GROUP_VERSIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_message_reference_resolves() {
        for m in MESSAGES {
            let mut tags: Vec<u32> = m.fields.iter().map(|f| f.tag).collect();
            tags.sort_unstable();
            tags.dedup();
            assert_eq!(tags.len(), m.fields.len(), "duplicate tag in {}", m.name);
            for f in m.fields {
                assert!(f.tag > 0, "{}: tag 0", m.name);
                if f.kind == Kind::Msg {
                    assert!(
                        message(f.message).is_some(),
                        "{}.{}: {}",
                        m.name,
                        f.json,
                        f.message
                    );
                } else {
                    assert!(f.message.is_empty(), "{}.{}", m.name, f.json);
                }
                if f.json.is_empty() {
                    assert_eq!((f.kind, f.label), (Kind::Msg, Label::Opt), "{}", m.name);
                }
                if f.omit_zero {
                    assert!(f.kind != Kind::Msg && f.label == Label::Opt, "{}", m.name);
                }
            }
        }
    }

    #[test]
    fn group_versions_and_kinds() {
        assert_eq!(package_for("v1"), Some("k8s.io.api.core.v1"));
        assert_eq!(package_for("apps/v1"), Some("k8s.io.api.apps.v1"));
        assert_eq!(package_for("apps/v1beta1"), None);
        let pick = |gv, kind| message_for_kind(gv, kind).map(|m| m.name);
        assert_eq!(
            pick("v1", "ConfigMap"),
            Some("k8s.io.api.core.v1.ConfigMap")
        );
        assert_eq!(
            pick("policy/v1", "Eviction"),
            Some("k8s.io.api.policy.v1.Eviction")
        );
        assert_eq!(
            pick("apps/v1", "DeleteOptions"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(
            pick("meta.k8s.io/v1", "DeleteOptions"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        // Upstream's casing survives prost's renaming (AWSElastic..., CSIDriver).
        assert!(message("k8s.io.api.core.v1.AWSElasticBlockStoreVolumeSource").is_some());
        assert_eq!(
            pick("storage.k8s.io/v1", "CSIDriver"),
            Some("k8s.io.api.storage.v1.CSIDriver")
        );
        assert_eq!(pick("v1", "NoSuchKind"), None);
    }

    #[test]
    fn json_names_follow_upstream() {
        let status = message("k8s.io.api.core.v1.PodStatus").unwrap();
        let names: Vec<&str> = status.fields.iter().map(|f| f.json).collect();
        for want in [
            "podIP",
            "podIPs",
            "hostIP",
            "hostIPs",
            "qosClass",
            "startTime",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let spec = message("k8s.io.api.core.v1.PodSpec").unwrap();
        assert!(spec.fields.iter().any(|f| f.json == "hostIPC"));
        let props =
            message("k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps")
                .unwrap();
        assert!(props.fields.iter().any(|f| f.json == "$ref"));
        assert!(props
            .fields
            .iter()
            .any(|f| f.json == "x-kubernetes-preserve-unknown-fields"));
    }
}
