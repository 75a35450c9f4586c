//! Protobuf message -> JSON, driven by the schema table.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Malformed, ProtobufError};
use crate::format::{go_duration, normalize, rfc3339, GO_ZERO_TIME_SECONDS};
use crate::schema::{self, FieldDef, Kind, Label, MessageDef, Shape};
use crate::wire::{Reader, WireValue};

/// Protobuf implementations stop at 100 nested messages; so does this, which also bounds
/// the recursion on hostile input.
pub(crate) const MAX_DEPTH: usize = 100;

/// Decodes `bytes` as message `msg` into upstream's JSON form of it.
pub(crate) fn message(
    msg: &MessageDef,
    bytes: &[u8],
    depth: usize,
) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(Malformed::TooDeep.into());
    }
    match msg.shape {
        Shape::Object => object(msg, bytes, depth),
        Shape::Time => time(bytes, false),
        Shape::MicroTime => time(bytes, true),
        Shape::Duration => {
            let nanos = last_values(bytes)?[0].map(varint).transpose()?.unwrap_or(0);
            // Two's complement reinterpretation, as Go decodes an int64 varint.
            Ok(Value::String(go_duration(nanos as i64)))
        }
        Shape::Quantity => {
            let s = last_values(bytes)?[0].map(string).transpose()?;
            // An empty Quantity is zero, which upstream writes as "0".
            Ok(Value::String(
                s.map_or_else(|| "0".to_string(), Cow::into_owned),
            ))
        }
        Shape::IntOrString => int_or_string(bytes),
        Shape::RawExtension => raw_extension(bytes, depth),
        Shape::FieldsV1 | Shape::Json => match last_values(bytes)?[0].map(len).transpose()? {
            None | Some([]) => Ok(Value::Null),
            Some(raw) => serde_json::from_slice(raw)
                .map_err(|e| Malformed::EmbeddedJson(e.to_string()).into()),
        },
        Shape::List => {
            let mut slots = collect(msg, bytes, depth)?;
            let items = slots.iter_mut().zip(msg.fields).find(|(_, f)| f.tag == 1);
            match items {
                Some((slot, field)) => {
                    Ok(take(slot, field, depth)?.unwrap_or(Value::Array(Vec::new())))
                }
                None => Ok(Value::Array(Vec::new())),
            }
        }
        Shape::PropsOrArray | Shape::PropsOrBool | Shape::PropsOrStringArray => {
            props_or(msg, bytes, depth)
        }
    }
}

/// What has been seen of one field so far.
enum Slot<'a> {
    Empty,
    /// Last one wins, as protobuf merges scalars.
    Scalar(Value),
    /// Every occurrence of a singular message; protobuf merges them, which decoding their
    /// concatenation does.
    Message(Vec<&'a [u8]>),
    Repeated(Vec<Value>),
    /// Sorted, as Go's `encoding/json` writes maps.
    Map(BTreeMap<String, Value>),
}

/// Reads every field of the message into its slot; unknown fields are skipped.
fn collect<'a>(
    msg: &MessageDef,
    bytes: &'a [u8],
    depth: usize,
) -> Result<Vec<Slot<'a>>, ProtobufError> {
    let mut slots: Vec<Slot<'a>> = msg.fields.iter().map(|_| Slot::Empty).collect();
    let mut reader = Reader::new(bytes);
    while let Some((tag, value)) = reader.next_field()? {
        let Some((index, field)) = msg.field(tag) else {
            continue;
        };
        let Some(slot) = slots.get_mut(index) else {
            continue;
        };
        add(slot, field, value, depth).map_err(|e| e.within(field.path_segment()))?;
    }
    Ok(slots)
}

fn add<'a>(
    slot: &mut Slot<'a>,
    field: &FieldDef,
    value: WireValue<'a>,
    depth: usize,
) -> Result<(), ProtobufError> {
    match (field.label, field.kind) {
        (Label::Opt, Kind::Msg) => {
            let bytes = len(value)?;
            match slot {
                Slot::Message(parts) => parts.push(bytes),
                _ => *slot = Slot::Message(vec![bytes]),
            }
        }
        (Label::Opt, kind) => *slot = Slot::Scalar(scalar(kind, value)?),
        (Label::Rep, kind) => {
            if !matches!(slot, Slot::Repeated(_)) {
                *slot = Slot::Repeated(Vec::new());
            }
            let Slot::Repeated(items) = slot else {
                return Ok(());
            };
            let index = items.len();
            match (kind, value) {
                (Kind::Msg, value) => {
                    let nested = nested(field)?;
                    let item = message(nested, len(value)?, depth + 1)
                        .map_err(|e| e.within(&format!("[{index}]")))?;
                    items.push(item);
                }
                // Numbers may come packed (proto3 style) even though Kubernetes' proto2
                // encoders never pack; parsers must accept both.
                (kind, WireValue::Len(packed)) if packable(kind) => {
                    let mut reader = Reader::new(packed);
                    while !reader.is_empty() {
                        let value = match kind {
                            Kind::F64 => WireValue::Fixed64(reader.fixed64()?),
                            Kind::F32 => WireValue::Fixed32(reader.fixed32()?),
                            _ => WireValue::Varint(reader.varint()?),
                        };
                        items.push(scalar(kind, value)?);
                    }
                }
                (kind, value) => items.push(scalar(kind, value)?),
            }
        }
        (Label::Map, kind) => {
            if !matches!(slot, Slot::Map(_)) {
                *slot = Slot::Map(BTreeMap::new());
            }
            let Slot::Map(entries) = slot else {
                return Ok(());
            };
            let (key, value) = map_entry(field, kind, len(value)?, depth)?;
            entries.insert(key, value);
        }
    }
    Ok(())
}

/// A map entry is a message {key = 1, value = 2}; either may be missing and then is zero.
fn map_entry(
    field: &FieldDef,
    kind: Kind,
    bytes: &[u8],
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut raw_value = None;
    let mut reader = Reader::new(bytes);
    while let Some((tag, value)) = reader.next_field()? {
        match tag {
            1 => key = string(value)?.into_owned(),
            2 => raw_value = Some(value),
            _ => {}
        }
    }
    let value = match (kind, raw_value) {
        (Kind::Msg, raw) => {
            let bytes = raw.map(len).transpose()?.unwrap_or(&[]);
            message(nested(field)?, bytes, depth + 1)
        }
        (kind, Some(raw)) => scalar(kind, raw).map_err(ProtobufError::from),
        (kind, None) => Ok(zero(kind)),
    }
    .map_err(|e| e.within(&format!("[{key}]")))?;
    Ok((key, value))
}

fn nested(field: &FieldDef) -> Result<&'static MessageDef, ProtobufError> {
    schema::message(field.message)
        .ok_or_else(|| ProtobufError::UnknownMessage(field.message.to_string()))
}

fn packable(kind: Kind) -> bool {
    !matches!(kind, Kind::Str | Kind::Bytes | Kind::Msg)
}

/// Turns a slot into its JSON value; `None` when the field is to be left out.
fn take(
    slot: &mut Slot<'_>,
    field: &FieldDef,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    Ok(match std::mem::replace(slot, Slot::Empty) {
        Slot::Empty => None,
        Slot::Scalar(value) if field.omit_zero && is_zero(&value) => None,
        Slot::Scalar(value) => Some(value),
        Slot::Message(parts) => {
            let nested = nested(field)?;
            let value = if let [only] = parts.as_slice() {
                message(nested, only, depth + 1)
            } else {
                message(nested, &parts.concat(), depth + 1)
            };
            Some(value.map_err(|e| e.within(field.path_segment()))?)
        }
        Slot::Repeated(items) => Some(Value::Array(items)),
        Slot::Map(entries) => Some(Value::Object(entries.into_iter().collect())),
    })
}

fn object(msg: &MessageDef, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let mut slots = collect(msg, bytes, depth)?;
    let mut out = Map::new();
    for (slot, field) in slots.iter_mut().zip(msg.fields) {
        let Some(value) = take(slot, field, depth)? else {
            continue;
        };
        if field.json.is_empty() {
            // Go's `json:",inline"`: the embedded struct's fields belong to this object.
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
        } else {
            out.insert(field.json.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

fn scalar(kind: Kind, value: WireValue<'_>) -> Result<Value, Malformed> {
    // `as` conversions below are protobuf's own: an int32 is the low 32 bits of its
    // (sign-extended) varint, and int64 is the varint's two's complement.
    Ok(match kind {
        Kind::Str => Value::String(string(value)?.into_owned()),
        Kind::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(len(value)?)),
        Kind::Bool => Value::Bool(varint(value)? != 0),
        Kind::I32 => Value::from(varint(value)? as i32),
        Kind::I64 => Value::from(varint(value)? as i64),
        Kind::U32 => Value::from(varint(value)? as u32),
        Kind::U64 => Value::from(varint(value)?),
        Kind::F64 => match value {
            WireValue::Fixed64(bits) => number(f64::from_bits(bits))?,
            other => return Err(wrong("fixed64", other)),
        },
        Kind::F32 => match value {
            WireValue::Fixed32(bits) => number(f64::from(f32::from_bits(bits)))?,
            other => return Err(wrong("fixed32", other)),
        },
        // Messages never reach here; `add` routes them.
        Kind::Msg => return Err(wrong("a message", value)),
    })
}

/// A JSON number as Go writes a float64: integral values without a fraction.
fn number(x: f64) -> Result<Value, Malformed> {
    if !x.is_finite() {
        return Err(Malformed::NotFinite);
    }
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: integers up to here are exact
    if x.fract() == 0.0 && x.abs() < EXACT {
        return Ok(Value::from(x as i64));
    }
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .ok_or(Malformed::NotFinite)
}

fn zero(kind: Kind) -> Value {
    match kind {
        Kind::Str | Kind::Bytes => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        _ => Value::from(0),
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn wrong(expected: &'static str, found: WireValue<'_>) -> Malformed {
    Malformed::WrongWireType {
        expected,
        found: found.wire_type(),
    }
}

fn varint(value: WireValue<'_>) -> Result<u64, Malformed> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(wrong("varint", other)),
    }
}

fn len(value: WireValue<'_>) -> Result<&[u8], Malformed> {
    match value {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(wrong("length-delimited", other)),
    }
}

/// Go strings hold any bytes and `encoding/json` writes invalid UTF-8 as U+FFFD; do the
/// same rather than reject a body upstream accepts.
fn string(value: WireValue<'_>) -> Result<Cow<'_, str>, Malformed> {
    len(value).map(String::from_utf8_lossy)
}

/// The last value of fields 1..=3, for the small special messages.
fn last_values(bytes: &[u8]) -> Result<[Option<WireValue<'_>>; 3], Malformed> {
    let mut out = [None; 3];
    let mut reader = Reader::new(bytes);
    while let Some((tag, value)) = reader.next_field()? {
        if let Some(slot) = usize::try_from(tag)
            .ok()
            .and_then(|t| out.get_mut(t.wrapping_sub(1)))
        {
            *slot = Some(value);
        }
    }
    Ok(out)
}

/// `Time`/`MicroTime` {seconds = 1, nanos = 2}.
fn time(bytes: &[u8], micro: bool) -> Result<Value, ProtobufError> {
    // Upstream marshals Go's zero time as an empty message and reads one back as zero.
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let [seconds, nanos, _] = last_values(bytes)?;
    let seconds = seconds.map(varint).transpose()?.unwrap_or(0) as i64;
    // Time drops the nanos when decoding protobuf (its JSON has whole seconds anyway).
    let nanos = if micro {
        i64::from(nanos.map(varint).transpose()?.unwrap_or(0) as i32)
    } else {
        0
    };
    let (seconds, nanos) = normalize(seconds, nanos)?;
    if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let text = rfc3339(seconds, micro.then_some(nanos / 1000))?;
    Ok(Value::String(text))
}

/// `IntOrString` {type = 1, intVal = 2, strVal = 3}.
fn int_or_string(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let [kind, int_val, str_val] = last_values(bytes)?;
    match kind.map(varint).transpose()?.unwrap_or(0) as i64 {
        0 => Ok(Value::from(
            int_val.map(varint).transpose()?.unwrap_or(0) as i32
        )),
        1 => Ok(Value::String(
            str_val
                .map(string)
                .transpose()?
                .map(Cow::into_owned)
                .unwrap_or_default(),
        )),
        other => Err(Malformed::IntOrStringType(other).into()),
    }
}

/// `RawExtension` {raw = 1}: JSON as upstream's clients write it; a nested protobuf
/// envelope is decoded in turn; anything else stays opaque as base64.
fn raw_extension(bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let raw = match last_values(bytes)?[0].map(len).transpose()? {
        None | Some([]) => return Ok(Value::Null),
        Some(raw) => raw,
    };
    if raw.starts_with(&crate::MAGIC) {
        return crate::envelope(raw, depth + 1).map(|(_, value)| value);
    }
    Ok(serde_json::from_slice(raw)
        .unwrap_or_else(|_| Value::String(base64::engine::general_purpose::STANDARD.encode(raw))))
}

/// The `JSONSchemaPropsOr*` unions: one of their two fields, as upstream's MarshalJSON picks.
fn props_or(msg: &MessageDef, bytes: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let mut slots = collect(msg, bytes, depth)?;
    let mut by_tag = [None, None];
    for (slot, field) in slots.iter_mut().zip(msg.fields) {
        if let Some(out) = usize::try_from(field.tag)
            .ok()
            .and_then(|t| by_tag.get_mut(t.wrapping_sub(1)))
        {
            *out = take(slot, field, depth)?;
        }
    }
    let [first, second] = by_tag;
    let non_empty = |v: &Option<Value>| matches!(v, Some(Value::Array(a)) if !a.is_empty());
    Ok(match msg.shape {
        // {schema = 1, jSONSchemas = 2}
        Shape::PropsOrArray if non_empty(&second) => second.unwrap_or(Value::Null),
        Shape::PropsOrArray => first.unwrap_or(Value::Null),
        // {allows = 1, schema = 2}
        Shape::PropsOrBool => second.or(first).unwrap_or(Value::Bool(false)),
        // {schema = 1, property = 2}
        Shape::PropsOrStringArray if non_empty(&second) => second.unwrap_or(Value::Null),
        _ => first.unwrap_or(Value::Null),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::{FIXED32, FIXED64, LEN, VARINT};
    use serde_json::json;

    /// A tiny protobuf writer for hand-made inputs.
    #[derive(Default)]
    struct W(Vec<u8>);
    impl W {
        fn varint(mut self, mut v: u64) -> Self {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
            self
        }
        fn key(self, tag: u32, wire: u8) -> Self {
            self.varint(u64::from(tag) << 3 | u64::from(wire))
        }
        fn int(self, tag: u32, v: i64) -> Self {
            self.key(tag, VARINT).varint(v as u64)
        }
        fn bytes(mut self, tag: u32, b: &[u8]) -> Self {
            self = self.key(tag, LEN).varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        fn str(self, tag: u32, s: &str) -> Self {
            self.bytes(tag, s.as_bytes())
        }
        fn msg(self, tag: u32, m: W) -> Self {
            self.bytes(tag, &m.0)
        }
        fn double(mut self, tag: u32, x: f64) -> Self {
            self = self.key(tag, FIXED64);
            self.0.extend_from_slice(&x.to_le_bytes());
            self
        }
    }

    fn decode(name: &str, w: W) -> Result<Value, ProtobufError> {
        message(schema::message(name).unwrap(), &w.0, 0)
    }

    const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

    #[test]
    fn go_encoder_zero_values_are_dropped_like_json_omitempty() {
        // What Go writes for ObjectMeta{Name: "x"}: every non-pointer scalar, zero or not.
        let meta = W::default()
            .str(1, "x")
            .str(2, "")
            .str(3, "")
            .str(4, "")
            .str(5, "")
            .str(6, "")
            .int(7, 0)
            .msg(8, W::default());
        let got = decode(&format!("{META}.ObjectMeta"), meta).unwrap();
        assert_eq!(got, json!({"name": "x", "creationTimestamp": null}));
    }

    #[test]
    fn pointer_zero_values_are_kept() {
        // DeleteOptions.gracePeriodSeconds is *int64: zero means "now", not "unset".
        let opts = W::default().int(1, 0).int(3, 0).str(4, "Foreground");
        let got = decode(&format!("{META}.DeleteOptions"), opts).unwrap();
        assert_eq!(
            got,
            json!({"gracePeriodSeconds": 0, "orphanDependents": false, "propagationPolicy": "Foreground"})
        );
    }

    #[test]
    fn scalars_merge_last_wins_and_messages_merge() {
        let meta = W::default()
            .str(1, "first")
            .str(1, "second")
            .msg(11, W::default().str(1, "a").str(2, "1"))
            .msg(11, W::default().str(1, "a").str(2, "2"))
            .msg(11, W::default().str(1, "b"));
        let got = decode(&format!("{META}.ObjectMeta"), meta).unwrap();
        assert_eq!(
            got,
            json!({"name": "second", "labels": {"a": "2", "b": ""}})
        );

        // Two occurrences of a singular message merge field by field.
        let selector = |m: W| W::default().msg(2, m);
        let mut spec = selector(W::default().msg(1, W::default().str(1, "app").str(2, "web")));
        spec.0
            .extend(selector(W::default().msg(2, W::default().str(1, "tier").str(2, "In"))).0);
        let got = decode("k8s.io.api.apps.v1.DeploymentSpec", spec).unwrap();
        assert_eq!(
            got,
            json!({"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In"}]}})
        );
    }

    #[test]
    fn unknown_fields_are_skipped_by_wire_type() {
        let mut w = W::default()
            .str(1, "x")
            .int(900, 5)
            .str(901, "junk")
            .double(902, 1.5);
        w = w
            .key(903, crate::wire::START_GROUP)
            .int(1, 1)
            .key(903, crate::wire::END_GROUP);
        w = w.key(904, FIXED32);
        w.0.extend_from_slice(&[0, 0, 0, 0]);
        let got = decode(&format!("{META}.ObjectMeta"), w).unwrap();
        assert_eq!(got, json!({"name": "x"}));
    }

    #[test]
    fn wrong_wire_type_names_the_field() {
        let w = W::default().msg(1, W::default().int(1, 7));
        let err = decode("k8s.io.api.core.v1.Pod", w).unwrap_err();
        assert_eq!(
            err,
            ProtobufError::Malformed {
                path: "metadata.name".into(),
                reason: Malformed::WrongWireType {
                    expected: "length-delimited",
                    found: 0
                }
            }
        );
    }

    #[test]
    fn error_paths_skip_inlined_structs() {
        // Pod.spec.volumes[1] = Volume{name, VolumeSource(inline){configMap{defaultMode: "x"}}}
        let bad_cm = W::default().str(3, "x");
        let volume = |cm: W| W::default().str(1, "v").msg(2, W::default().msg(19, cm));
        let spec = W::default()
            .msg(1, volume(W::default().int(3, 420)))
            .msg(1, volume(bad_cm));
        let err = decode("k8s.io.api.core.v1.Pod", W::default().msg(2, spec)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed protobuf at spec.volumes[1].configMap.defaultMode: \
             wire type 2 where the schema expects varint"
        );
    }

    #[test]
    fn negative_int32_and_packed_repeated() {
        // int32 -1 is a ten-byte sign-extended varint.
        let w = W::default().int(3, -1);
        let got = decode("k8s.io.api.core.v1.ContainerPort", w).unwrap();
        assert_eq!(got, json!({"containerPort": -1}));

        // ContainerRestartRuleOnExitCodes.values (repeated int32), unpacked then packed.
        let packed = W::default().varint(1).varint(2).varint(300);
        let w = W::default().int(2, 7).bytes(2, &packed.0);
        let got = decode("k8s.io.api.core.v1.ContainerRestartRuleOnExitCodes", w).unwrap();
        assert_eq!(got, json!({"values": [7, 1, 2, 300]}));
    }

    #[test]
    fn special_messages() {
        let t = |w: W| decode(&format!("{META}.Time"), w).unwrap();
        assert_eq!(t(W::default()), Value::Null);
        assert_eq!(
            t(W::default().int(1, 1_704_164_645).int(2, 999)),
            json!("2024-01-02T03:04:05Z")
        );
        assert_eq!(t(W::default().int(1, GO_ZERO_TIME_SECONDS)), Value::Null);
        assert_eq!(t(W::default().int(2, 5)), json!("1970-01-01T00:00:00Z"));

        let mt = decode(
            &format!("{META}.MicroTime"),
            W::default().int(1, 1_704_164_645).int(2, 123_456_789),
        );
        assert_eq!(mt.unwrap(), json!("2024-01-02T03:04:05.123456Z"));

        let d = decode(
            &format!("{META}.Duration"),
            W::default().int(1, 3_600_000_000_000),
        );
        assert_eq!(d.unwrap(), json!("1h0m0s"));
        assert_eq!(
            decode(&format!("{META}.Duration"), W::default()).unwrap(),
            json!("0s")
        );

        let q = "k8s.io.apimachinery.pkg.api.resource.Quantity";
        assert_eq!(
            decode(q, W::default().str(1, "500m")).unwrap(),
            json!("500m")
        );
        assert_eq!(decode(q, W::default()).unwrap(), json!("0"));

        let ios = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
        assert_eq!(
            decode(ios, W::default().int(1, 0).int(2, 8080).str(3, "")).unwrap(),
            json!(8080)
        );
        assert_eq!(
            decode(ios, W::default().int(1, 1).int(2, 0).str(3, "http")).unwrap(),
            json!("http")
        );
        assert_eq!(decode(ios, W::default()).unwrap(), json!(0));
        assert_eq!(
            decode(ios, W::default().int(1, 2)).unwrap_err(),
            ProtobufError::malformed(Malformed::IntOrStringType(2))
        );

        let raw = "k8s.io.apimachinery.pkg.runtime.RawExtension";
        assert_eq!(
            decode(raw, W::default().str(1, r#"{"a":[1]}"#)).unwrap(),
            json!({"a": [1]})
        );
        assert_eq!(
            decode(raw, W::default().bytes(1, &[0xff, 0x00])).unwrap(),
            json!("/wA=")
        );
        assert_eq!(decode(raw, W::default()).unwrap(), Value::Null);

        let fields = format!("{META}.FieldsV1");
        assert_eq!(
            decode(&fields, W::default().str(1, r#"{"f:data":{}}"#)).unwrap(),
            json!({"f:data": {}})
        );
        assert!(matches!(
            decode(&fields, W::default().str(1, "{")).unwrap_err(),
            ProtobufError::Malformed {
                reason: Malformed::EmbeddedJson(_),
                ..
            }
        ));

        let verbs = format!("{META}.Verbs");
        assert_eq!(
            decode(&verbs, W::default().str(1, "get").str(1, "list")).unwrap(),
            json!(["get", "list"])
        );
        assert_eq!(decode(&verbs, W::default()).unwrap(), json!([]));
    }

    #[test]
    fn map_of_wrapped_slices_and_bytes() {
        // SubjectAccessReviewSpec.extra: map<string, ExtraValue>.
        let entry = W::default()
            .str(1, "scopes")
            .msg(2, W::default().str(1, "a").str(1, "b"));
        let w = W::default().msg(5, entry).str(3, "alice");
        let got = decode("k8s.io.api.authorization.v1.SubjectAccessReviewSpec", w).unwrap();
        assert_eq!(
            got,
            json!({"extra": {"scopes": ["a", "b"]}, "user": "alice"})
        );

        let w = W::default()
            .msg(2, W::default().str(1, "k").bytes(2, b"\x00\x01"))
            .msg(2, W::default().str(1, "e"));
        let got = decode("k8s.io.api.core.v1.Secret", w).unwrap();
        assert_eq!(got, json!({"data": {"e": "", "k": "AAE="}}));
    }

    #[test]
    fn doubles_are_written_like_go() {
        let name = schema::messages().iter().find_map(|m| {
            m.fields
                .iter()
                .find(|f| f.kind == Kind::F64 && f.label == Label::Opt)
                .map(|f| (m, f))
        });
        let (msg, field) = name.unwrap();
        let got = message(msg, &W::default().double(field.tag, 2.0).0, 0).unwrap();
        assert_eq!(got[field.json], json!(2));
        let got = message(msg, &W::default().double(field.tag, 0.25).0, 0).unwrap();
        assert_eq!(got[field.json], json!(0.25));
        let err = message(msg, &W::default().double(field.tag, f64::NAN).0, 0).unwrap_err();
        assert!(matches!(
            err,
            ProtobufError::Malformed {
                reason: Malformed::NotFinite,
                ..
            }
        ));
    }

    #[test]
    fn json_schema_props_unions() {
        let apiext = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1";
        let string_schema = || W::default().str(5, "string");
        let props = schema::message(&format!("{apiext}.JSONSchemaProps")).unwrap();
        let tag = |json: &str| props.fields.iter().find(|f| f.json == json).unwrap().tag;

        // additionalProperties: bool or schema.
        let w = W::default().msg(tag("additionalProperties"), W::default().int(1, 1));
        assert_eq!(
            decode(&format!("{apiext}.JSONSchemaProps"), w).unwrap(),
            json!({"additionalProperties": true})
        );
        let w = W::default().msg(
            tag("additionalProperties"),
            W::default().int(1, 1).msg(2, string_schema()),
        );
        assert_eq!(
            decode(&format!("{apiext}.JSONSchemaProps"), w).unwrap(),
            json!({"additionalProperties": {"type": "string"}})
        );
        // items: schema or array of schemas.
        let w = W::default().msg(tag("items"), W::default().msg(1, string_schema()));
        assert_eq!(
            decode(&format!("{apiext}.JSONSchemaProps"), w).unwrap(),
            json!({"items": {"type": "string"}})
        );
        let w = W::default().msg(
            tag("items"),
            W::default().msg(2, string_schema()).msg(2, string_schema()),
        );
        assert_eq!(
            decode(&format!("{apiext}.JSONSchemaProps"), w).unwrap(),
            json!({"items": [{"type": "string"}, {"type": "string"}]})
        );
        // dependencies: map of schema-or-strings; default: embedded JSON.
        let dep = W::default()
            .str(1, "a")
            .msg(2, W::default().str(2, "b").str(2, "c"));
        let w = W::default()
            .msg(tag("dependencies"), dep)
            .msg(tag("default"), W::default().str(1, "[1,2]"));
        assert_eq!(
            decode(&format!("{apiext}.JSONSchemaProps"), w).unwrap(),
            json!({"default": [1, 2], "dependencies": {"a": ["b", "c"]}})
        );
    }

    #[test]
    fn depth_is_bounded() {
        // JSONSchemaProps.not nests without end.
        let apiext = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
        let props = schema::message(apiext).unwrap();
        let not = props.fields.iter().find(|f| f.json == "not").unwrap().tag;
        let mut w = W::default();
        for _ in 0..(MAX_DEPTH + 5) {
            w = W::default().msg(not, w);
        }
        let err = decode(apiext, w).unwrap_err();
        assert!(
            matches!(
                err,
                ProtobufError::Malformed {
                    reason: Malformed::TooDeep,
                    ..
                }
            ),
            "{err}"
        );
    }
}
