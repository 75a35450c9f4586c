//! Strategic merge patch with upstream's semantics (`k8s.io/apimachinery/pkg/util/strategicpatch`).
//!
//! A strategic merge patch is a JSON merge patch (RFC 7386) whose lists are not always
//! replaced: the schema says, per field, whether a list is merged (`patchStrategy: merge`),
//! by which key its maps are matched (`patchMergeKey`), and whether a map drops the keys
//! the patch does not name (`retainKeys`). Patches can also carry directives:
//!
//! - `"$patch": "replace"` in a map replaces the map; in a list element, the whole list.
//! - `"$patch": "delete"` in a map deletes it; in a list element, the element with that key.
//! - `"$retainKeys": [...]` keeps only the named keys of the original map.
//! - `"$deleteFromPrimitiveList/<field>": [...]` removes values from a merged scalar list.
//! - `"$setElementOrder/<field>": [...]` fixes the order of a merged list.
//! - `null` deletes a key.
//!
//! The schema comes in through [`LookupPatchMeta`]. Where it knows nothing (an unknown
//! field, or [`NoPatchMeta`]), lists are replaced atomically and maps are merged as JSON
//! merge patch merges them; upstream errors out there instead, but the API server's
//! stored objects only hold known fields, so being lenient only matters to callers that
//! patch free-form JSON, and for them JSON merge patch behaviour is the useful one.
//!
//! The diff side ([`create_two_way_merge_patch`], [`create_three_way_merge_patch`]) builds
//! the patches `kubectl apply` sends, directive lists included.

use std::cmp::Ordering;

use serde_json::{Map, Value};

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Failures of patch application and creation, worded as upstream's `mergepatch` errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategicPatchError {
    #[error("invalid JSON document")]
    BadJsonDoc,
    #[error("lists of lists are not supported")]
    NoListOfLists,
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    #[error("cannot merge lists without merge key for {0}")]
    MissingMergeKey(String),
    #[error("list element types are not identical: {0}")]
    MixedListElementTypes(String),
    #[error("no elements in any of the given slices")]
    EmptyLists,
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch { patch: String, order: String },
    #[error("unexpected patch strategy: {0}")]
    BadPatchStrategy(String),
    #[error("invalid value for special key: $patch")]
    BadDirectiveValue,
    #[error(
        "{0} and {1} are not deep equal: this may happen when calculating the 3-way diff patch"
    )]
    RetainKeysMismatch(String, String),
    #[error("patch:\n{patch}\nconflicts with changes made from original to current:\n{changed}\n")]
    Conflict { patch: String, changed: String },
}

type Result<T> = std::result::Result<T, StrategicPatchError>;

/// How a field's value is combined with the original's (the upstream `patchStrategy` tag,
/// minus `retainKeys`, which [`PatchMeta::retain_keys`] carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    Merge,
    Replace,
}

/// The patch metadata of one field: `x-kubernetes-patch-strategy` and
/// `x-kubernetes-patch-merge-key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchMeta {
    pub strategy: Option<PatchStrategy>,
    pub retain_keys: bool,
    pub merge_key: Option<String>,
}

impl PatchMeta {
    /// Parses the extension values as upstream writes them (`"merge"`, `"merge,retainKeys"`,
    /// `"retainKeys"`, `"replace"`).
    pub fn parse(strategy: Option<&str>, merge_key: Option<&str>) -> Result<PatchMeta> {
        let mut meta = PatchMeta {
            merge_key: merge_key.filter(|k| !k.is_empty()).map(str::to_owned),
            ..PatchMeta::default()
        };
        let Some(strategy) = strategy.filter(|s| !s.is_empty()) else {
            return Ok(meta);
        };
        let parts: Vec<&str> = strategy.split(',').collect();
        if parts.len() > 2 {
            return Err(StrategicPatchError::BadPatchStrategy(strategy.to_owned()));
        }
        for part in parts {
            match part {
                RETAIN_KEYS_STRATEGY if !meta.retain_keys => meta.retain_keys = true,
                MERGE_DIRECTIVE if meta.strategy.is_none() => {
                    meta.strategy = Some(PatchStrategy::Merge)
                }
                REPLACE_DIRECTIVE if meta.strategy.is_none() => {
                    meta.strategy = Some(PatchStrategy::Replace)
                }
                _ => return Err(StrategicPatchError::BadPatchStrategy(strategy.to_owned())),
            }
        }
        Ok(meta)
    }

    fn merge_key(&self) -> &str {
        self.merge_key.as_deref().unwrap_or("")
    }
}

/// A cursor into a schema: the engine walks it alongside the documents.
pub trait LookupPatchMeta: Sized {
    /// The schema of the value of field `key` of the object this schema describes (for a
    /// map type, of any key), with that field's patch metadata; `None` if unknown.
    fn lookup_field(&self, key: &str) -> Option<(Self, PatchMeta)>;

    /// The schema of the elements, when this schema describes a list.
    fn lookup_items(&self) -> Option<Self>;

    /// A name for error messages.
    fn name(&self) -> String {
        "Struct".to_owned()
    }
}

/// A schema that knows nothing: strategic merge patch degrades to JSON merge patch plus
/// directives.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPatchMeta;

impl LookupPatchMeta for NoPatchMeta {
    fn lookup_field(&self, _key: &str) -> Option<(Self, PatchMeta)> {
        None
    }
    fn lookup_items(&self) -> Option<Self> {
        None
    }
}

fn lookup_struct<S: LookupPatchMeta>(schema: Option<&S>, key: &str) -> (Option<S>, PatchMeta) {
    match schema.and_then(|s| s.lookup_field(key)) {
        Some((sub, meta)) => (Some(sub), meta),
        None => (None, PatchMeta::default()),
    }
}

fn lookup_slice<S: LookupPatchMeta>(schema: Option<&S>, key: &str) -> (Option<S>, PatchMeta) {
    let (sub, meta) = lookup_struct(schema, key);
    (sub.and_then(|s| s.lookup_items()), meta)
}

fn schema_name<S: LookupPatchMeta>(schema: Option<&S>) -> String {
    schema
        .map(|s| s.name())
        .unwrap_or_else(|| "Struct".to_owned())
}

// ---------------------------------------------------------------------------------------
// Applying a patch.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct MergeOptions {
    /// Apply `$deleteFromPrimitiveList` lists (server side) instead of carrying them along
    /// (when merging two patches into one, as the three-way diff does).
    merge_parallel_list: bool,
    /// Drop nulls that have nothing to delete instead of keeping them in the result.
    ignore_unmatched_nulls: bool,
}

/// Applies a strategic merge patch to `original` (server side: directives are executed,
/// unmatched nulls dropped). Both documents must be JSON objects (`null` counts as `{}`).
pub fn strategic_merge_patch<S: LookupPatchMeta>(
    original: Value,
    patch: Value,
    schema: &S,
) -> Result<Value> {
    let original = into_object(original)?;
    let patch = into_object(patch)?;
    let options = MergeOptions {
        merge_parallel_list: true,
        ignore_unmatched_nulls: true,
    };
    merge_map(original, patch, Some(schema), options).map(Value::Object)
}

/// Like [`strategic_merge_patch`], on serialized JSON.
pub fn strategic_merge_patch_bytes<S: LookupPatchMeta>(
    original: &[u8],
    patch: &[u8],
    schema: &S,
) -> Result<Vec<u8>> {
    let original = parse_doc(original)?;
    let patch = parse_doc(patch)?;
    let merged = strategic_merge_patch(original, patch, schema)?;
    serde_json::to_vec(&merged).map_err(|_| StrategicPatchError::BadJsonDoc)
}

fn parse_doc(raw: &[u8]) -> Result<Value> {
    if raw.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(raw).map_err(|_| StrategicPatchError::BadJsonDoc)
}

fn into_object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(StrategicPatchError::BadJsonDoc),
    }
}

fn merge_map<S: LookupPatchMeta>(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Option<&S>,
    options: MergeOptions,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                patch.shift_remove(DIRECTIVE_MARKER);
                Ok(patch)
            }
            Some(DELETE_DIRECTIVE) => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }

    apply_retain_keys_directive(&mut original, &mut patch, options)?;
    merge_set_element_order_lists(&mut original, &mut patch, schema, options)?;

    for (key, patch_value) in patch {
        let mut key = key;
        let mut is_delete_list = false;
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            if !options.merge_parallel_list {
                // Merging two patches: the deletion list is carried along for the server.
                original.insert(key, patch_value);
                continue;
            }
            key = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?.to_owned();
            is_delete_list = true;
        }

        if patch_value.is_null() {
            original.shift_remove(&key);
            if options.ignore_unmatched_nulls {
                continue;
            }
        }

        let Some(original_value) = original.get_mut(&key) else {
            if !is_delete_list {
                let mut value = patch_value;
                if options.ignore_unmatched_nulls {
                    discard_null_values(&mut value);
                }
                if let Some(value) = remove_directives(value) {
                    original.insert(key, value);
                }
            }
            continue;
        };

        if kind_of(original_value) != kind_of(&patch_value) {
            if !is_delete_list {
                let mut value = patch_value;
                if options.ignore_unmatched_nulls {
                    discard_null_values(&mut value);
                }
                match remove_directives(value) {
                    Some(value) => *original_value = value,
                    None => {
                        original.shift_remove(&key);
                    }
                }
            }
            continue;
        }

        match (original_value.take(), patch_value) {
            (Value::Object(original_map), Value::Object(patch_map)) => {
                let (sub, meta) = lookup_struct(schema, &key);
                *original_value = if meta.strategy == Some(PatchStrategy::Replace) {
                    Value::Object(patch_map)
                } else {
                    Value::Object(merge_map(original_map, patch_map, sub.as_ref(), options)?)
                };
            }
            (Value::Array(original_list), Value::Array(patch_list)) => {
                let (items, meta) = lookup_slice(schema, &key);
                *original_value = Value::Array(merge_slice_handler(
                    original_list,
                    patch_list,
                    items.as_ref(),
                    &meta,
                    is_delete_list,
                    options,
                )?);
            }
            (_, scalar) => match remove_directives(scalar) {
                Some(value) => *original_value = value,
                None => {
                    original.shift_remove(&key);
                }
            },
        }
    }
    Ok(original)
}

fn merge_slice_handler<S: LookupPatchMeta>(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<&S>,
    meta: &PatchMeta,
    is_delete_list: bool,
    options: MergeOptions,
) -> Result<Vec<Value>> {
    // Deletion lists work the same whatever the field's strategy says.
    if meta.strategy == Some(PatchStrategy::Merge) || is_delete_list {
        merge_slice(
            original,
            patch,
            items,
            meta.merge_key(),
            options,
            is_delete_list,
        )
    } else {
        Ok(patch)
    }
}

fn merge_slice<S: LookupPatchMeta>(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Option<&S>,
    merge_key: &str,
    options: MergeOptions,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_kind(&[&original, &patch])?;

    let (merged, patch, server_order) = if kind != Kind::Object {
        if options.merge_parallel_list && is_delete_list {
            return Ok(delete_from_slice(original, &patch));
        }
        let server_order = original.clone();
        let mut both = original;
        both.extend(patch.iter().cloned());
        (deduplicate_scalars(both), patch, server_order)
    } else {
        if merge_key.is_empty() {
            return Err(StrategicPatchError::MissingMergeKey(schema_name(items)));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
        let server_order = original.clone();
        let merged =
            merge_slice_without_special_elements(original, &patch, merge_key, items, options)?;
        (merged, patch, server_order)
    };

    let (patch_items, server_only) = if merge_key.is_empty() {
        partition_primitives(merged, &patch)
    } else {
        partition_maps(merged, &patch, merge_key)?
    };
    normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        merge_key,
        kind,
    )
}

/// Executes the `$patch` elements of a merging list of maps: deletions edit `original`,
/// a replace makes the rest of the patch the new list.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(bad_arg_type("map", &item));
        };
        let Some(directive) = map.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(value) = map.get(merge_key) else {
                    return Err(no_merge_key(map, merge_key));
                };
                for element in &original {
                    if !element.is_object() {
                        return Err(bad_arg_type("map", element));
                    }
                }
                original.retain(|element| {
                    element
                        .get(merge_key)
                        .is_none_or(|candidate| !json_eq(candidate, value))
                });
            }
            // Keep going so that the other directives are pruned from the list.
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => return Err(StrategicPatchError::MergeDirectiveInList),
            _ => return Err(bad_patch_type(directive, map)),
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

fn merge_slice_without_special_elements<S: LookupPatchMeta>(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    items: Option<&S>,
    options: MergeOptions,
) -> Result<Vec<Value>> {
    for item in patch {
        let Value::Object(patch_map) = item else {
            return Err(bad_arg_type("map", item));
        };
        let Some(value) = patch_map.get(merge_key) else {
            return Err(no_merge_key(patch_map, merge_key));
        };
        match find_map_by_key(&original, merge_key, value)? {
            Some(index) => {
                let Value::Object(original_map) = original[index].take() else {
                    return Err(StrategicPatchError::BadArgType {
                        expected: "map",
                        actual: "null",
                    });
                };
                original[index] =
                    Value::Object(merge_map(original_map, patch_map.clone(), items, options)?);
            }
            None => original.push(item.clone()),
        }
    }
    Ok(original)
}

fn find_map_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>> {
    for (index, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(bad_arg_type("map", item));
        };
        if map.get(key).is_some_and(|v| json_eq(v, value)) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    current
        .into_iter()
        .filter(|v| !to_delete.iter().any(|d| json_eq(d, v)))
        .collect()
}

/// `$retainKeys`: drop the original's keys the list does not name. When merging two
/// patches (no `merge_parallel_list`) the directive is carried over instead.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    options: MergeOptions,
) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    if !options.merge_parallel_list {
        match original.get(RETAIN_KEYS_DIRECTIVE) {
            Some(existing) if !json_eq(existing, &retain) => {
                return Err(StrategicPatchError::RetainKeysMismatch(
                    existing.to_string(),
                    retain.to_string(),
                ));
            }
            Some(_) => {}
            None => {
                original.insert(RETAIN_KEYS_DIRECTIVE.to_owned(), retain);
            }
        }
        return Ok(());
    }
    let Value::Array(retain) = retain else {
        return Err(StrategicPatchError::BadPatchFormatForRetainKeys);
    };
    let retained = |key: &str| retain.iter().any(|v| v.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(key) {
            return Err(StrategicPatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// Processes the `$setElementOrder/<field>` lists: merges each with its field (taking the
/// field out of `patch`) and orders the result. The precedence is the directive's order,
/// then the patch's, then the live list's.
fn merge_set_element_order_lists<S: LookupPatchMeta>(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Option<&S>,
    options: MergeOptions,
) -> Result<()> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let Some(order) = patch.shift_remove(&directive_key) else {
            continue;
        };
        if !options.merge_parallel_list {
            match original.get(&directive_key) {
                Some(existing) if !json_eq(existing, &order) => {
                    return Err(StrategicPatchError::BadPatchFormatForSetElementOrderList);
                }
                Some(_) => {}
                None => {
                    original.insert(directive_key.clone(), order.clone());
                }
            }
        }
        let Value::Array(order) = order else {
            return Err(bad_arg_type("slice", &order));
        };
        let field = extract_key(&directive_key, SET_ELEMENT_ORDER_PREFIX)?.to_owned();

        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("slice", other)),
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type("slice", other)),
        };
        let (items, meta) = lookup_slice(schema, &field);
        let merge_key = meta.merge_key();
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or(&[]),
            &order,
            merge_key,
        )?;

        let merged = match (&original_list, &patch_list) {
            (Some(original_list), None) => original_list.clone(),
            (None, Some(patch_list)) => match remove_directives(Value::Array(patch_list.clone())) {
                Some(Value::Array(list)) => list,
                _ => continue,
            },
            (Some(original_list), Some(patch_list)) => merge_slice_handler(
                original_list.clone(),
                patch_list.clone(),
                items.as_ref(),
                &meta,
                false,
                options,
            )?,
            (None, None) => continue,
        };

        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives(merged, &order)
        } else {
            partition_maps(merged, &order, merge_key)?
        };
        let server_order = original_list.unwrap_or_default();
        let kind = slice_element_kind(&[&server_order, patch_list.as_deref().unwrap_or(&[])])?;
        let ordered = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &server_order,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(ordered));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// The items of the patch list (deletions aside) must appear in the directive's order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::with_capacity(patch_list.len());
        for item in patch_list {
            let Value::Object(map) = item else {
                return Err(bad_arg_type("map", item));
            };
            if map.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE_DIRECTIVE) {
                kept.push(item);
            }
        }
        kept
    };
    let (mut p, mut s) = (0, 0);
    while p < non_delete.len() && s < order.len() {
        if non_delete[p].get(DIRECTIVE_MARKER).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[p], &order[s], merge_key)? {
            p += 1;
        }
        s += 1;
    }
    if p < non_delete.len() && s >= order.len() {
        return Err(StrategicPatchError::SetElementOrderMismatch {
            patch: Value::Array(patch_list.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(json_eq(left, right));
    }
    let Value::Object(left) = left else {
        return Err(bad_arg_type("map", left));
    };
    let Value::Object(right) = right else {
        return Err(bad_arg_type("map", right));
    };
    let l = left
        .get(merge_key)
        .ok_or_else(|| no_merge_key(left, merge_key))?;
    let r = right
        .get(merge_key)
        .ok_or_else(|| no_merge_key(right, merge_key))?;
    Ok(json_eq(l, r))
}

/// Splits `list` into the items present in `by` and the rest, keeping their order.
fn partition_primitives(list: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    list.into_iter()
        .partition(|v| by.iter().any(|b| json_eq(b, v)))
}

fn partition_maps(
    list: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::with_capacity(list.len());
    let mut absent = Vec::with_capacity(list.len());
    for item in list {
        let Value::Object(map) = &item else {
            return Err(bad_arg_type("map", &item));
        };
        let Some(value) = map.get(merge_key) else {
            return Err(no_merge_key(map, merge_key));
        };
        if find_map_by_key(by, merge_key, value)?.is_some() {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders the patch's items by `patch_order` and the server-only items by `server_order`,
/// then interleaves them so that both relative orders hold.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch_items,
        server_order,
        merge_key,
        kind,
    ))
}

/// The identity of a list item for ordering: its merge key value, or itself.
fn order_key<'a>(item: &'a Value, merge_key: &str, kind: Kind) -> Option<&'a Value> {
    if kind == Kind::Object {
        item.get(merge_key)
    } else {
        Some(item)
    }
}

fn position_in(order: &[Value], item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    let key = order_key(item, merge_key, kind);
    order.iter().position(
        |candidate| match (order_key(candidate, merge_key, kind), key) {
            (Some(a), Some(b)) => json_eq(a, b),
            (None, None) => true,
            _ => false,
        },
    )
}

/// Sorts `to_sort` by where its items stand in `order`; deletion directives go last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let mut deletions = Vec::new();
    let mut items = Vec::with_capacity(to_sort.len());
    if kind == Kind::Object {
        for item in to_sort.iter().chain(order) {
            let Value::Object(map) = item else {
                return Err(bad_arg_type("map", item));
            };
            if !map.contains_key(merge_key) {
                return Err(no_merge_key(map, merge_key));
            }
        }
        for item in to_sort {
            if item.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
                deletions.push(item);
            } else {
                items.push(item);
            }
        }
    } else {
        items = to_sort;
    }
    // Items missing from `order` keep their relative order after the others; upstream
    // leaves their place unspecified.
    let mut keyed: Vec<(Option<usize>, Value)> = items
        .into_iter()
        .map(|item| (position_in(order, &item, merge_key, kind), item))
        .collect();
    keyed.sort_by_key(|(position, _)| (position.is_none(), position.unwrap_or(0)));
    let mut sorted: Vec<Value> = keyed.into_iter().map(|(_, item)| item).collect();
    sorted.extend(deletions);
    Ok(sorted)
}

/// Inserts the server-only items (`left`) among the patch items (`right`): a server-only
/// item goes before a patch item only when both are in the live list and it comes first
/// there.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut result = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position_in(server_order, l, merge_key, kind),
                    position_in(server_order, r, merge_key, kind),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(item) = next {
            result.push(item);
        }
    }
    result
}

/// Removes directive maps (and the keys holding them) from a value taken from a patch as is.
/// `None` means the value itself was a directive and must not be kept.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(
                map.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(list) => Some(Value::Array(
            list.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

fn discard_null_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_null_values);
        }
        Value::Array(list) => list.iter_mut().for_each(discard_null_values),
        _ => {}
    }
}

fn extract_key<'a>(key: &'a str, prefix: &str) -> Result<&'a str> {
    match key.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX => {
            Err(StrategicPatchError::BadPatchFormatForPrimitiveList)
        }
        _ => Err(StrategicPatchError::BadPatchFormatForSetElementOrderList),
    }
}

// ---------------------------------------------------------------------------------------
// Creating a patch.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct DiffOptions {
    set_element_order: bool,
    ignore_changes_and_additions: bool,
    ignore_deletions: bool,
    build_retain_keys_directive: bool,
}

/// The patch that turns `original` into `modified` (`kubectl`'s two-way patch, with
/// `$setElementOrder` lists). Both must be JSON objects (`null` counts as `{}`).
pub fn create_two_way_merge_patch<S: LookupPatchMeta>(
    original: &Value,
    modified: &Value,
    schema: &S,
) -> Result<Value> {
    let original = as_object(original)?;
    let modified = as_object(modified)?;
    let options = DiffOptions {
        set_element_order: true,
        ..DiffOptions::default()
    };
    diff_maps(&original, &modified, Some(schema), options).map(Value::Object)
}

/// The patch `kubectl apply` sends: the changes from `current` (the live object) to
/// `modified` (the new configuration), without deleting what `current` has and `original`
/// (the last applied configuration) did not, plus the deletions from `original` to
/// `modified`. Unless `overwrite`, fails with [`StrategicPatchError::Conflict`] when the
/// patch changes something that also changed between `original` and `current`.
pub fn create_three_way_merge_patch<S: LookupPatchMeta>(
    original: &Value,
    modified: &Value,
    current: &Value,
    schema: &S,
    overwrite: bool,
) -> Result<Value> {
    let original = as_object(original)?;
    let modified = as_object(modified)?;
    let current = as_object(current)?;

    let delta = diff_maps(
        &current,
        &modified,
        Some(schema),
        DiffOptions {
            ignore_deletions: true,
            set_element_order: true,
            ..DiffOptions::default()
        },
    )?;
    let deletions = diff_maps(
        &original,
        &modified,
        Some(schema),
        DiffOptions {
            set_element_order: true,
            ignore_changes_and_additions: true,
            ..DiffOptions::default()
        },
    )?;
    let patch = merge_map(deletions, delta, Some(schema), MergeOptions::default())?;

    if !overwrite {
        let changed = diff_maps(&original, &current, Some(schema), DiffOptions::default())?;
        if merging_maps_have_conflicts(&patch, &changed, schema)? {
            return Err(StrategicPatchError::Conflict {
                patch: Value::Object(patch).to_string(),
                changed: Value::Object(changed).to_string(),
            });
        }
    }
    Ok(Value::Object(patch))
}

/// Precondition helper for patch creation: true when the patch leaves `key` alone (as
/// kubectl requires of `apiVersion` and `kind`).
pub fn patch_keeps_key(patch: &Value, key: &str) -> bool {
    patch.get(key).is_none()
}

/// Precondition helper: true when the patch leaves `metadata.<key>` alone (kubectl requires
/// it of `metadata.name`).
pub fn patch_keeps_metadata_key(patch: &Value, key: &str) -> bool {
    match patch.get("metadata") {
        Some(Value::Object(metadata)) => !metadata.contains_key(key),
        _ => true,
    }
}

fn as_object(value: &Value) -> Result<std::borrow::Cow<'_, Map<String, Value>>> {
    match value {
        Value::Object(map) => Ok(std::borrow::Cow::Borrowed(map)),
        Value::Null => Ok(std::borrow::Cow::Owned(Map::new())),
        _ => Err(StrategicPatchError::BadJsonDoc),
    }
}

fn diff_maps<S: LookupPatchMeta>(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    schema: Option<&S>,
    options: DiffOptions,
) -> Result<Map<String, Value>> {
    let mut patch = Map::new();
    let mut retain_keys = Vec::new();

    for (key, modified_value) in modified {
        if options.build_retain_keys_directive && !modified_value.is_null() {
            retain_keys.push(Value::String(key.clone()));
        }
        let Some(original_value) = original.get(key) else {
            if !options.ignore_changes_and_additions {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        };
        if key == DIRECTIVE_MARKER {
            let (Some(o), Some(m)) = (original_value.as_str(), modified_value.as_str()) else {
                return Err(StrategicPatchError::BadDirectiveValue);
            };
            if o != m {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        }
        if kind_of(original_value) != kind_of(modified_value) {
            if !options.ignore_changes_and_additions {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        }
        match (original_value, modified_value) {
            (Value::Object(o), Value::Object(m)) => {
                let (sub, meta) = lookup_struct(schema, key);
                let options = DiffOptions {
                    build_retain_keys_directive: meta.retain_keys,
                    ..options
                };
                if meta.strategy == Some(PatchStrategy::Replace) {
                    if !options.ignore_changes_and_additions {
                        patch.insert(key.clone(), modified_value.clone());
                    }
                } else {
                    let value = diff_maps(o, m, sub.as_ref(), options)?;
                    if !value.is_empty() {
                        patch.insert(key.clone(), Value::Object(value));
                    }
                }
            }
            (Value::Array(o), Value::Array(m)) => {
                let (items, meta) = lookup_slice(schema, key);
                if meta.strategy == Some(PatchStrategy::Merge) {
                    let options = DiffOptions {
                        build_retain_keys_directive: meta.retain_keys,
                        ..options
                    };
                    let (additions, deletions, order) =
                        diff_lists(o, m, items.as_ref(), meta.merge_key(), options)?;
                    if !additions.is_empty() {
                        patch.insert(key.clone(), Value::Array(additions));
                    }
                    if !deletions.is_empty() {
                        patch.insert(
                            format!("{DELETE_FROM_PRIMITIVE_LIST_PREFIX}/{key}"),
                            Value::Array(deletions),
                        );
                    }
                    if !order.is_empty() {
                        patch.insert(
                            format!("{SET_ELEMENT_ORDER_PREFIX}/{key}"),
                            Value::Array(order),
                        );
                    }
                } else {
                    replace_if_not_equal(&mut patch, key, original_value, modified_value, options);
                }
            }
            _ => replace_if_not_equal(&mut patch, key, original_value, modified_value, options),
        }
    }

    if !options.ignore_deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }

    if !retain_keys.is_empty()
        && (!patch.is_empty() || has_additional_new_field(original, modified))
    {
        sort_scalars(&mut retain_keys);
        patch.insert(RETAIN_KEYS_DIRECTIVE.to_owned(), Value::Array(retain_keys));
    }
    Ok(patch)
}

fn replace_if_not_equal(
    patch: &mut Map<String, Value>,
    key: &str,
    original: &Value,
    modified: &Value,
    options: DiffOptions,
) {
    if !options.ignore_changes_and_additions && !json_eq(original, modified) {
        patch.insert(key.to_owned(), modified.clone());
    }
}

fn has_additional_new_field(original: &Map<String, Value>, modified: &Map<String, Value>) -> bool {
    original
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k))
}

type ListDiff = (Vec<Value>, Vec<Value>, Vec<Value>);

/// Diffs two merging lists: the patch list, the `$deleteFromPrimitiveList` list and the
/// `$setElementOrder` list.
fn diff_lists<S: LookupPatchMeta>(
    original: &[Value],
    modified: &[Value],
    items: Option<&S>,
    merge_key: &str,
    options: DiffOptions,
) -> Result<ListDiff> {
    if original.is_empty() {
        if modified.is_empty() || options.ignore_changes_and_additions {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        return Ok((modified.to_vec(), Vec::new(), Vec::new()));
    }
    let kind = slice_element_kind(&[original, modified])?;
    match kind {
        Kind::Object => {
            let (patch_list, deletions) =
                diff_lists_of_maps(original, modified, items, merge_key, options)?;
            let mut patch_list = normalize_slice_order(patch_list, modified, merge_key, kind)?;
            let order_same = is_order_same(original, modified, merge_key)?;
            patch_list.extend(deletions);
            let mut order = Vec::new();
            if options.set_element_order
                && ((!options.ignore_changes_and_additions
                    && (!patch_list.is_empty() || !order_same))
                    || (!options.ignore_deletions && !patch_list.is_empty()))
            {
                order = modified
                    .iter()
                    .map(|item| {
                        let mut only_key = Map::new();
                        only_key.insert(
                            merge_key.to_owned(),
                            item.get(merge_key).cloned().unwrap_or(Value::Null),
                        );
                        Value::Object(only_key)
                    })
                    .collect();
            }
            Ok((patch_list, Vec::new(), order))
        }
        Kind::Array => Err(StrategicPatchError::NoListOfLists),
        _ => {
            let (additions, deletions) = diff_lists_of_scalars(original, modified, options);
            let additions = normalize_slice_order(additions, modified, merge_key, kind)?;
            let mut order = Vec::new();
            if options.set_element_order
                && ((!options.ignore_deletions && !deletions.is_empty())
                    || (!options.ignore_changes_and_additions
                        && !json_eq_slices(original, modified)))
            {
                order = modified.to_vec();
            }
            Ok((additions, deletions, order))
        }
    }
}

fn is_order_same(original: &[Value], modified: &[Value], merge_key: &str) -> Result<bool> {
    if original.len() != modified.len() {
        return Ok(false);
    }
    for (o, m) in original.iter().zip(modified) {
        if !merge_key_value_equal(o, m, merge_key)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Walks both lists sorted by their printed values, as upstream does, so that the
/// additions and deletions come out in the same order as upstream's.
fn diff_lists_of_scalars(
    original: &[Value],
    modified: &[Value],
    options: DiffOptions,
) -> (Vec<Value>, Vec<Value>) {
    let mut original = original.to_vec();
    let mut modified = modified.to_vec();
    sort_scalars(&mut original);
    sort_scalars(&mut modified);
    let mut additions = Vec::new();
    let mut deletions = Vec::new();
    let (mut o, mut m) = (0, 0);
    while o < original.len() || m < modified.len() {
        let ordering = match (original.get(o), modified.get(m)) {
            (Some(a), Some(b)) => scalar_string(a).cmp(&scalar_string(b)),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ordering {
            Ordering::Equal => {
                o += 1;
                m += 1;
            }
            Ordering::Less => {
                if !options.ignore_deletions {
                    deletions.push(original[o].clone());
                }
                o += 1;
            }
            Ordering::Greater => {
                if !options.ignore_changes_and_additions {
                    additions.push(modified[m].clone());
                }
                m += 1;
            }
        }
    }
    (additions, deduplicate_scalars(deletions))
}

fn diff_lists_of_maps<S: LookupPatchMeta>(
    original: &[Value],
    modified: &[Value],
    items: Option<&S>,
    merge_key: &str,
    options: DiffOptions,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let original = sorted_by_merge_key(original, merge_key)?;
    let modified = sorted_by_merge_key(modified, merge_key)?;
    let mut patch = Vec::with_capacity(modified.len());
    let mut deletions = Vec::new();
    let (mut o, mut m) = (0, 0);
    while o < original.len() || m < modified.len() {
        let ordering = match (original.get(o), modified.get(m)) {
            (Some(a), Some(b)) => a.1.cmp(&b.1),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ordering {
            Ordering::Equal => {
                let (original_map, _, _) = original[o];
                let (modified_map, _, key_value) = modified[m];
                let diff = diff_maps(original_map, modified_map, items, options)?;
                if !diff.is_empty() {
                    let mut element = Map::with_capacity(diff.len() + 1);
                    element.insert(merge_key.to_owned(), key_value.clone());
                    element.extend(diff);
                    patch.push(Value::Object(element));
                }
                o += 1;
                m += 1;
            }
            Ordering::Greater => {
                if !options.ignore_changes_and_additions {
                    patch.push(Value::Object(modified[m].0.clone()));
                }
                m += 1;
            }
            Ordering::Less => {
                if !options.ignore_deletions {
                    deletions.push(delete_directive(merge_key, original[o].2));
                }
                o += 1;
            }
        }
    }
    Ok((patch, deletions))
}

type KeyedMap<'a> = (&'a Map<String, Value>, String, &'a Value);

fn sorted_by_merge_key<'a>(list: &'a [Value], merge_key: &str) -> Result<Vec<KeyedMap<'a>>> {
    let mut keyed = Vec::with_capacity(list.len());
    for item in list {
        let Value::Object(map) = item else {
            return Err(bad_arg_type("map", item));
        };
        let value = map
            .get(merge_key)
            .ok_or_else(|| no_merge_key(map, merge_key))?;
        keyed.push((map, scalar_string(value), value));
    }
    keyed.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(keyed)
}

fn delete_directive(merge_key: &str, value: &Value) -> Value {
    let mut map = Map::new();
    map.insert(merge_key.to_owned(), value.clone());
    map.insert(
        DIRECTIVE_MARKER.to_owned(),
        Value::String(DELETE_DIRECTIVE.to_owned()),
    );
    Value::Object(map)
}

/// Whether two patches touch the same field differently (strategic merge semantics:
/// merging lists of scalars never conflict, lists of maps are compared per merge key).
pub fn merging_maps_have_conflicts<S: LookupPatchMeta>(
    left: &Map<String, Value>,
    right: &Map<String, Value>,
    schema: &S,
) -> Result<bool> {
    maps_have_conflicts(left, right, Some(schema))
}

fn field_values_conflict<S: LookupPatchMeta>(
    left: &Value,
    right: &Value,
    schema: Option<&S>,
    meta: &PatchMeta,
) -> Result<bool> {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            let lm = l.get(DIRECTIVE_MARKER);
            let rm = r.get(DIRECTIVE_MARKER);
            if lm.is_some() || rm.is_some() {
                // A directive acts on the whole map: any difference in directives is a
                // conflict with whatever the other side does to single keys.
                if lm.is_some() != rm.is_some() {
                    return Ok(true);
                }
                if lm != rm {
                    return Ok(true);
                }
            }
            if meta.strategy == Some(PatchStrategy::Replace) {
                return Ok(false);
            }
            maps_have_conflicts(l, r, schema)
        }
        (Value::Object(_), _) => Ok(true),
        (Value::Array(l), Value::Array(r)) => slices_have_conflicts(l, r, schema, meta),
        (Value::Array(_), _) => Ok(true),
        _ => Ok(!json_eq(left, right)),
    }
}

fn maps_have_conflicts<S: LookupPatchMeta>(
    left: &Map<String, Value>,
    right: &Map<String, Value>,
    schema: Option<&S>,
) -> Result<bool> {
    for (key, left_value) in left {
        if key == DIRECTIVE_MARKER || key == RETAIN_KEYS_DIRECTIVE {
            continue;
        }
        let Some(right_value) = right.get(key) else {
            continue;
        };
        let (sub, meta) = match left_value {
            Value::Array(_) => lookup_slice(schema, key),
            Value::Object(_) => lookup_struct(schema, key),
            _ => (None, PatchMeta::default()),
        };
        if field_values_conflict(left_value, right_value, sub.as_ref(), &meta)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn slices_have_conflicts<S: LookupPatchMeta>(
    left: &[Value],
    right: &[Value],
    schema: Option<&S>,
    meta: &PatchMeta,
) -> Result<bool> {
    let kind = slice_element_kind(&[left, right])?;
    if meta.strategy == Some(PatchStrategy::Merge) {
        if kind != Kind::Object {
            return Ok(false);
        }
        let merge_key = meta.merge_key();
        let keyed_left = sorted_by_merge_key(left, merge_key)?;
        let keyed_right = sorted_by_merge_key(right, merge_key)?;
        for (l, l_key, _) in &keyed_left {
            for (r, r_key, _) in &keyed_right {
                if l_key == r_key && maps_have_conflicts(l, r, schema)? {
                    return Ok(true);
                }
            }
        }
        return Ok(false);
    }
    if left.len() != right.len() {
        return Ok(true);
    }
    let (mut left, mut right) = (left.to_vec(), right.to_vec());
    if kind != Kind::Object {
        left = deduplicate_scalars(left);
        sort_scalars(&mut left);
        right = deduplicate_scalars(right);
        sort_scalars(&mut right);
    }
    for (l, r) in left.iter().zip(&right) {
        if field_values_conflict(l, r, schema, &PatchMeta::default())? {
            return Ok(true);
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------
// Value helpers.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn slice_element_kind(slices: &[&[Value]]) -> Result<Kind> {
    let mut kind = None;
    for value in slices.iter().flat_map(|s| s.iter()) {
        let current = kind_of(value);
        match kind {
            None if current == Kind::Array => return Err(StrategicPatchError::NoListOfLists),
            None => kind = Some(current),
            Some(k) if k != current => {
                let printed: Vec<String> = slices
                    .iter()
                    .map(|s| Value::Array(s.to_vec()).to_string())
                    .collect();
                return Err(StrategicPatchError::MixedListElementTypes(
                    printed.join(" "),
                ));
            }
            Some(_) => {}
        }
    }
    kind.ok_or(StrategicPatchError::EmptyLists)
}

/// JSON equality where `1` and `1.0` are the same number, as they are once Go has decoded
/// both into float64.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => json_eq_slices(x, y),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn json_eq_slices(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| json_eq(x, y))
}

/// A scalar printed the way upstream's `fmt.Sprintf("%v")` sorts it.
fn scalar_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

fn sort_scalars(list: &mut [Value]) {
    list.sort_by_cached_key(scalar_string);
}

/// Removes repeated values, keeping the first of each.
fn deduplicate_scalars(list: Vec<Value>) -> Vec<Value> {
    let mut unique: Vec<Value> = Vec::with_capacity(list.len());
    for value in list {
        if !unique.iter().any(|u| json_eq(u, &value)) {
            unique.push(value);
        }
    }
    unique
}

fn bad_arg_type(expected: &'static str, actual: &Value) -> StrategicPatchError {
    StrategicPatchError::BadArgType {
        expected,
        actual: kind_name(actual),
    }
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> StrategicPatchError {
    StrategicPatchError::NoMergeKey {
        map: Value::Object(map.clone()).to_string(),
        key: key.to_owned(),
    }
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> StrategicPatchError {
    StrategicPatchError::BadPatchType {
        directive: scalar_string(directive),
        map: Value::Object(map.clone()).to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small schema in the spirit of upstream's test type: items with a merging list
    /// (keyed by `name`), a replaced list, merging and replaced scalar lists, a free map and
    /// a `retainKeys` map.
    #[derive(Debug, Clone, Copy)]
    enum Ts {
        Item,
        RetainItem,
        ItemList,
        ScalarList,
        FreeMap,
        Scalar,
    }

    fn meta(strategy: &str, key: &str) -> PatchMeta {
        PatchMeta::parse(Some(strategy), Some(key)).unwrap()
    }

    impl LookupPatchMeta for Ts {
        fn lookup_field(&self, key: &str) -> Option<(Self, PatchMeta)> {
            let none = PatchMeta::default();
            match (self, key) {
                (Ts::Item | Ts::RetainItem, "name" | "value" | "other") => Some((Ts::Scalar, none)),
                (Ts::Item | Ts::RetainItem, "mergingList") => {
                    Some((Ts::ItemList, meta("merge", "name")))
                }
                (Ts::Item | Ts::RetainItem, "nonMergingList") => Some((Ts::ItemList, none)),
                (Ts::Item | Ts::RetainItem, "mergingIntList") => {
                    Some((Ts::ScalarList, meta("merge", "")))
                }
                (Ts::Item | Ts::RetainItem, "nonMergingIntList") => Some((Ts::ScalarList, none)),
                (Ts::Item | Ts::RetainItem, "simpleMap") => Some((Ts::FreeMap, none)),
                (Ts::Item, "retainKeysMap") => Some((Ts::RetainItem, meta("retainKeys", ""))),
                (Ts::Item, "retainKeysMergingList") => {
                    Some((Ts::ItemList, meta("merge,retainKeys", "name")))
                }
                (Ts::Item, "replacingItem") => Some((Ts::FreeMap, meta("replace", ""))),
                (Ts::FreeMap, _) => Some((Ts::Scalar, none)),
                _ => None,
            }
        }

        fn lookup_items(&self) -> Option<Self> {
            match self {
                Ts::ItemList => Some(Ts::Item),
                Ts::ScalarList => Some(Ts::Scalar),
                _ => None,
            }
        }
    }

    fn apply(original: Value, patch: Value) -> Value {
        strategic_merge_patch(original, patch, &Ts::Item).unwrap()
    }

    #[test]
    fn parses_strategies() {
        assert_eq!(
            PatchMeta::parse(Some("merge,retainKeys"), Some("name")).unwrap(),
            PatchMeta {
                strategy: Some(PatchStrategy::Merge),
                retain_keys: true,
                merge_key: Some("name".into())
            }
        );
        assert!(
            PatchMeta::parse(Some("retainKeys"), None)
                .unwrap()
                .retain_keys
        );
        assert!(PatchMeta::parse(Some("merge,replace"), None).is_err());
        assert!(PatchMeta::parse(Some("bogus"), None).is_err());
        assert_eq!(PatchMeta::parse(None, None).unwrap(), PatchMeta::default());
    }

    #[test]
    fn merging_list_matches_by_key_and_puts_new_items_first() {
        let original = json!({"mergingList": [
            {"name": "web", "value": "1"},
            {"name": "db", "value": "2"}
        ]});
        let patch = json!({"mergingList": [
            {"name": "db", "value": "3"},
            {"name": "cache", "value": "4"}
        ]});
        // Upstream interleaves: patch items keep the patch's order and go before server-only
        // items unless the live list says otherwise.
        assert_eq!(
            apply(original, patch),
            json!({"mergingList": [
                {"name": "web", "value": "1"},
                {"name": "db", "value": "3"},
                {"name": "cache", "value": "4"}
            ]})
        );

        let added = apply(
            json!({"mergingList": [{"name": "a"}, {"name": "b"}]}),
            json!({"mergingList": [{"name": "c"}]}),
        );
        assert_eq!(
            added,
            json!({"mergingList": [{"name": "c"}, {"name": "a"}, {"name": "b"}]})
        );
    }

    #[test]
    fn nested_fields_merge_inside_list_items() {
        let original = json!({"mergingList": [
            {"name": "c1", "simpleMap": {"k1": "v1"}, "mergingIntList": [1, 2]}
        ]});
        let patch = json!({"mergingList": [
            {"name": "c1", "simpleMap": {"k2": "v2", "k1": null}, "mergingIntList": [2, 3]}
        ]});
        assert_eq!(
            apply(original, patch),
            json!({"mergingList": [
                {"name": "c1", "simpleMap": {"k2": "v2"}, "mergingIntList": [1, 2, 3]}
            ]})
        );
    }

    #[test]
    fn delete_and_replace_directives_in_lists() {
        let original = json!({"mergingList": [{"name": "a"}, {"name": "b"}, {"name": "a"}]});
        assert_eq!(
            apply(
                original.clone(),
                json!({"mergingList": [{"name": "a", "$patch": "delete"}]})
            ),
            json!({"mergingList": [{"name": "b"}]})
        );
        assert_eq!(
            apply(
                original.clone(),
                json!({"mergingList": [{"name": "z"}, {"$patch": "replace"}]})
            ),
            json!({"mergingList": [{"name": "z"}]})
        );
        let err = strategic_merge_patch(
            original.clone(),
            json!({"mergingList": [{"$patch": "merge"}]}),
            &Ts::Item,
        )
        .unwrap_err();
        assert_eq!(err, StrategicPatchError::MergeDirectiveInList);
        let err = strategic_merge_patch(
            original,
            json!({"mergingList": [{"value": "no key"}]}),
            &Ts::Item,
        )
        .unwrap_err();
        assert!(
            matches!(err, StrategicPatchError::NoMergeKey { .. }),
            "{err}"
        );
    }

    #[test]
    fn delete_and_replace_directives_in_maps() {
        let original = json!({"simpleMap": {"a": "1", "b": "2"}, "value": "x"});
        assert_eq!(
            apply(
                original.clone(),
                json!({"simpleMap": {"$patch": "replace", "c": "3"}})
            ),
            json!({"simpleMap": {"c": "3"}, "value": "x"})
        );
        assert_eq!(
            apply(original.clone(), json!({"simpleMap": {"$patch": "delete"}})),
            json!({"simpleMap": {}, "value": "x"})
        );
        // The whole document replaced.
        assert_eq!(
            apply(original.clone(), json!({"$patch": "replace", "other": "y"})),
            json!({"other": "y"})
        );
        let err =
            strategic_merge_patch(original, json!({"$patch": "bogus"}), &Ts::Item).unwrap_err();
        assert!(matches!(err, StrategicPatchError::BadPatchType { .. }));
    }

    #[test]
    fn nulls_delete_and_unmatched_nulls_vanish() {
        assert_eq!(
            apply(
                json!({"name": "n", "value": "v"}),
                json!({"value": null, "other": null, "simpleMap": {"a": null, "b": "1"}})
            ),
            json!({"name": "n", "simpleMap": {"b": "1"}})
        );
    }

    #[test]
    fn directives_in_added_values_are_dropped() {
        assert_eq!(
            apply(
                json!({}),
                json!({"mergingList": [{"name": "a"}, {"name": "b", "$patch": "delete"}]})
            ),
            json!({"mergingList": [{"name": "a"}]})
        );
        assert_eq!(
            apply(json!({}), json!({"simpleMap": {"$patch": "delete"}})),
            json!({})
        );
    }

    #[test]
    fn merging_scalar_lists_union_and_delete() {
        assert_eq!(
            apply(
                json!({"mergingIntList": [1, 2, 3], "nonMergingIntList": [1, 2]}),
                json!({"mergingIntList": [3, 4], "nonMergingIntList": [5]})
            ),
            json!({"mergingIntList": [1, 2, 3, 4], "nonMergingIntList": [5]})
        );
        assert_eq!(
            apply(
                json!({"mergingIntList": [1, 2, 3, 2]}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [2, 7]})
            ),
            json!({"mergingIntList": [1, 3]})
        );
        // A deletion list never creates the field.
        assert_eq!(
            apply(
                json!({}),
                json!({"$deleteFromPrimitiveList/mergingIntList": [1]})
            ),
            json!({})
        );
        // Deletion lists work on replaced lists too.
        assert_eq!(
            apply(
                json!({"nonMergingIntList": ["a", "b"]}),
                json!({"$deleteFromPrimitiveList/nonMergingIntList": ["a"]})
            ),
            json!({"nonMergingIntList": ["b"]})
        );
    }

    #[test]
    fn set_element_order_orders_merged_lists() {
        let original = json!({"mergingList": [
            {"name": "1"},
            {"name": "3", "value": "3"},
            {"name": "4", "value": "4"},
            {"name": "2", "value": "2"},
            {"name": "9"}
        ]});
        let patch = json!({"$setElementOrder/mergingList": [
            {"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}
        ]});
        assert_eq!(
            apply(original, patch),
            json!({"mergingList": [
                {"name": "4", "value": "4"},
                {"name": "2", "value": "2"},
                {"name": "3", "value": "3"},
                {"name": "1"},
                {"name": "9"}
            ]})
        );

        let ints = apply(
            json!({"mergingIntList": [1, 2, 3]}),
            json!({"$setElementOrder/mergingIntList": [4, 3, 1], "mergingIntList": [4]}),
        );
        // 2 is server-only: it stays before 3, which follows it in the live list.
        assert_eq!(ints, json!({"mergingIntList": [4, 2, 3, 1]}));

        let err = strategic_merge_patch(
            json!({"mergingList": [{"name": "1"}]}),
            json!({
                "$setElementOrder/mergingList": [{"name": "1"}],
                "mergingList": [{"name": "2"}]
            }),
            &Ts::Item,
        )
        .unwrap_err();
        assert!(
            matches!(err, StrategicPatchError::SetElementOrderMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn retain_keys_clears_unnamed_fields() {
        let original = json!({"retainKeysMap": {"name": "n", "value": "v", "other": "o"}});
        let patch = json!({"retainKeysMap": {"$retainKeys": ["name", "other"], "other": "p"}});
        assert_eq!(
            apply(original.clone(), patch),
            json!({"retainKeysMap": {"name": "n", "other": "p"}})
        );
        let bad = json!({"retainKeysMap": {"$retainKeys": ["name"], "other": "p"}});
        assert_eq!(
            strategic_merge_patch(original, bad, &Ts::Item).unwrap_err(),
            StrategicPatchError::BadPatchFormatForRetainKeys
        );
    }

    #[test]
    fn replace_strategy_and_unknown_fields() {
        assert_eq!(
            apply(
                json!({"replacingItem": {"a": "1"}, "unknown": {"x": 1, "y": [1, 2]}}),
                json!({"replacingItem": {"b": "2"}, "unknown": {"y": [3], "z": true}})
            ),
            json!({"replacingItem": {"b": "2"}, "unknown": {"x": 1, "y": [3], "z": true}})
        );
    }

    #[test]
    fn without_metadata_it_is_json_merge_patch() {
        let original = json!({"spec": {"containers": [{"name": "a"}], "replicas": 1}});
        let patch = json!({"spec": {"containers": [{"name": "b"}], "replicas": null}});
        assert_eq!(
            strategic_merge_patch(original, patch, &NoPatchMeta).unwrap(),
            json!({"spec": {"containers": [{"name": "b"}]}})
        );
        assert_eq!(
            strategic_merge_patch(json!({}), json!([1]), &NoPatchMeta).unwrap_err(),
            StrategicPatchError::BadJsonDoc
        );
        assert_eq!(
            strategic_merge_patch_bytes(b"{\"a\":1}", b"{\"b\":2}", &NoPatchMeta).unwrap(),
            br#"{"a":1,"b":2}"#.to_vec()
        );
    }

    #[test]
    fn two_way_patch_for_merging_lists() {
        let original = json!({
            "name": "x",
            "mergingList": [
                {"name": "a", "value": "1"},
                {"name": "b", "value": "2"},
                {"name": "c"}
            ],
            "mergingIntList": [1, 2, 3],
            "nonMergingList": [{"name": "a"}]
        });
        let modified = json!({
            "mergingList": [
                {"name": "d"},
                {"name": "a", "value": "1"},
                {"name": "b", "value": "3"}
            ],
            "mergingIntList": [3, 1, 4],
            "nonMergingList": [{"name": "b"}]
        });
        let patch = create_two_way_merge_patch(&original, &modified, &Ts::Item).unwrap();
        assert_eq!(
            patch,
            json!({
                "mergingList": [
                    {"name": "d"},
                    {"name": "b", "value": "3"},
                    {"name": "c", "$patch": "delete"}
                ],
                "$setElementOrder/mergingList": [{"name": "d"}, {"name": "a"}, {"name": "b"}],
                "mergingIntList": [4],
                "$deleteFromPrimitiveList/mergingIntList": [2],
                "$setElementOrder/mergingIntList": [3, 1, 4],
                "nonMergingList": [{"name": "b"}],
                "name": null
            })
        );
        assert_eq!(apply(original, patch), modified);
    }

    #[test]
    fn two_way_patch_is_empty_for_equal_documents() {
        let doc = json!({"mergingList": [{"name": "a"}], "simpleMap": {"k": "v"}});
        assert_eq!(
            create_two_way_merge_patch(&doc, &doc, &Ts::Item).unwrap(),
            json!({})
        );
    }

    #[test]
    fn two_way_patch_builds_retain_keys() {
        let original = json!({"retainKeysMap": {"name": "n", "value": "v"}});
        let modified = json!({"retainKeysMap": {"name": "n", "other": "o"}});
        let patch = create_two_way_merge_patch(&original, &modified, &Ts::Item).unwrap();
        assert_eq!(
            patch,
            json!({"retainKeysMap": {"other": "o", "value": null, "$retainKeys": ["name", "other"]}})
        );
        assert_eq!(apply(original, patch), modified);
    }

    #[test]
    fn two_way_patches_round_trip() {
        let cases = [
            (json!({}), json!({"mergingList": [{"name": "a"}]})),
            (
                json!({"mergingList": [{"name": "a"}, {"name": "b"}]}),
                json!({"mergingList": [{"name": "b"}, {"name": "a"}]}),
            ),
            (
                json!({"mergingList": [{"name": "a", "mergingList": [{"name": "x"}]}]}),
                json!({"mergingList": [{"name": "a", "mergingList": [{"name": "y", "value": "1"}]}]}),
            ),
            (
                json!({"mergingIntList": ["b", "a"], "simpleMap": {"k": "v"}}),
                json!({"mergingIntList": ["a", "c"], "simpleMap": {"k": "w", "j": "x"}}),
            ),
            (json!({"value": 1}), json!({"value": {"nested": true}})),
        ];
        for (original, modified) in cases {
            let patch = create_two_way_merge_patch(&original, &modified, &Ts::Item).unwrap();
            assert_eq!(apply(original.clone(), patch.clone()), modified, "{patch}");
        }
    }

    #[test]
    fn three_way_patch_keeps_server_side_changes() {
        // Last applied: two items; the user drops b and adds c; the server added `other`.
        let original = json!({"mergingList": [{"name": "a"}, {"name": "b"}], "value": "1"});
        let modified = json!({"mergingList": [{"name": "a"}, {"name": "c"}], "value": "2"});
        let current = json!({
            "mergingList": [{"name": "a", "other": "server"}, {"name": "b"}],
            "value": "1",
            "other": "defaulted"
        });
        let patch =
            create_three_way_merge_patch(&original, &modified, &current, &Ts::Item, true).unwrap();
        assert_eq!(
            patch,
            json!({
                "$setElementOrder/mergingList": [{"name": "a"}, {"name": "c"}],
                "mergingList": [{"name": "c"}, {"name": "b", "$patch": "delete"}],
                "value": "2"
            })
        );
        assert_eq!(
            apply(current, patch),
            json!({
                "mergingList": [{"name": "a", "other": "server"}, {"name": "c"}],
                "value": "2",
                "other": "defaulted"
            })
        );
    }

    #[test]
    fn three_way_patch_reports_conflicts_unless_overwriting() {
        let original = json!({"value": "1"});
        let modified = json!({"value": "2"});
        let current = json!({"value": "3"});
        let err = create_three_way_merge_patch(&original, &modified, &current, &Ts::Item, false)
            .unwrap_err();
        assert!(matches!(err, StrategicPatchError::Conflict { .. }), "{err}");
        assert_eq!(
            create_three_way_merge_patch(&original, &modified, &current, &Ts::Item, true).unwrap(),
            json!({"value": "2"})
        );
        // A change the server made elsewhere is no conflict.
        let current = json!({"value": "1", "other": "x"});
        assert_eq!(
            create_three_way_merge_patch(&original, &modified, &current, &Ts::Item, false).unwrap(),
            json!({"value": "2"})
        );
    }

    #[test]
    fn conflict_detection_follows_strategies() {
        let left = json!({"mergingIntList": [1], "mergingList": [{"name": "a", "value": "1"}]});
        let right = json!({"mergingIntList": [2], "mergingList": [{"name": "b", "value": "2"}]});
        let (Value::Object(l), Value::Object(r)) = (left, right) else {
            unreachable!()
        };
        assert!(!merging_maps_have_conflicts(&l, &r, &Ts::Item).unwrap());
        let right = json!({"mergingList": [{"name": "a", "value": "2"}]});
        let Value::Object(r) = right else {
            unreachable!()
        };
        assert!(merging_maps_have_conflicts(&l, &r, &Ts::Item).unwrap());
        let right = json!({"nonMergingIntList": [1]});
        let left = json!({"nonMergingIntList": [1, 2]});
        let (Value::Object(l), Value::Object(r)) = (left, right) else {
            unreachable!()
        };
        assert!(merging_maps_have_conflicts(&l, &r, &Ts::Item).unwrap());
    }

    #[test]
    fn precondition_helpers() {
        let patch = json!({"metadata": {"labels": {"a": "b"}}, "spec": {}});
        assert!(patch_keeps_key(&patch, "kind"));
        assert!(!patch_keeps_key(&patch, "spec"));
        assert!(patch_keeps_metadata_key(&patch, "name"));
        assert!(!patch_keeps_metadata_key(&patch, "labels"));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(
            apply(
                json!({"mergingIntList": [1, 2.0]}),
                json!({"mergingIntList": [1.0, 2]})
            ),
            json!({"mergingIntList": [1, 2.0]})
        );
    }
}
