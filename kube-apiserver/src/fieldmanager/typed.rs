//! Schema-aware walks over JSON objects, as structured-merge-diff's `typed` package does
//! them: the field set of an object, the comparison of two objects, the merge of an
//! applied configuration into a live object, and the removal of a set of fields.
//!
//! Every walk visits each value once (plus a sort per node), so its cost is linear in the
//! object's size up to logarithmic factors.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::path::{values_equal, PathElement};
use super::schema::{Atom, ListKind, Schema, Struct, TypeId, DEDUCED, UNTYPED};
use super::set::Set;

static NULL: Value = Value::Null;

/// How a value of a type is walked.
enum Shape<'s> {
    /// A single leaf: scalars, atomic lists, maps and structs, untyped values.
    Leaf,
    List(TypeId, &'s ListKind),
    /// A granular struct (`fields`) or map (`elem`).
    Map(Option<&'s Struct>, TypeId),
}

/// Where the fields of an object sit relative to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    None,
    Added,
    Removed,
    Modified,
}

/// The paths that differ between two objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub added: Set,
    pub modified: Set,
    pub removed: Set,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// Drop every path under `ignored` (upstream's `ExcludeFields`).
    pub fn exclude(&mut self, ignored: &Set) {
        if ignored.is_empty() {
            return;
        }
        self.added.recursive_subtract(ignored);
        self.modified.recursive_subtract(ignored);
        self.removed.recursive_subtract(ignored);
    }
}

/// Members and children of one node of a set under construction.
#[derive(Default)]
struct Acc {
    members: Vec<PathElement>,
    children: Vec<(PathElement, Set)>,
}

impl Acc {
    fn child(&mut self, pe: &PathElement, set: Set) {
        if !set.is_empty() {
            self.children.push((pe.clone(), set));
        }
    }

    fn finish(self) -> Set {
        Set::from_parts(self.members, self.children)
    }
}

#[derive(Default)]
struct CmpAcc {
    added: Acc,
    modified: Acc,
    removed: Acc,
}

impl CmpAcc {
    /// Record a child's comparison; `pe` is moved into the last place that needs it.
    fn add(&mut self, pe: PathElement, mark: Mark, sub: Comparison) {
        enum Slot {
            Member(Mark),
            Added(Set),
            Modified(Set),
            Removed(Set),
        }
        let mut slots: [Option<Slot>; 4] = [None, None, None, None];
        let mut n = 0;
        let mut push = |slot: Slot| {
            slots[n] = Some(slot);
            n += 1;
        };
        if mark != Mark::None {
            push(Slot::Member(mark));
        }
        if !sub.added.is_empty() {
            push(Slot::Added(sub.added));
        }
        if !sub.modified.is_empty() {
            push(Slot::Modified(sub.modified));
        }
        if !sub.removed.is_empty() {
            push(Slot::Removed(sub.removed));
        }
        let mut pe = Some(pe);
        for (i, slot) in slots.into_iter().take(n).enumerate() {
            let this = if i + 1 == n { pe.take() } else { pe.clone() };
            let (Some(slot), Some(this)) = (slot, this) else {
                continue;
            };
            match slot {
                Slot::Member(Mark::Added) => self.added.members.push(this),
                Slot::Member(Mark::Modified) => self.modified.members.push(this),
                Slot::Member(_) => self.removed.members.push(this),
                Slot::Added(set) => self.added.children.push((this, set)),
                Slot::Modified(set) => self.modified.children.push((this, set)),
                Slot::Removed(set) => self.removed.children.push((this, set)),
            }
        }
    }

    fn finish(self) -> Comparison {
        Comparison {
            added: self.added.finish(),
            modified: self.modified.finish(),
            removed: self.removed.finish(),
        }
    }
}

fn as_list(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn leaf_mark(l: Option<&Value>, r: Option<&Value>) -> Mark {
    match (l, r) {
        (None, None) => Mark::None,
        (None, Some(_)) => Mark::Added,
        (Some(_), None) => Mark::Removed,
        (Some(a), Some(b)) if values_equal(a, b) => Mark::None,
        _ => Mark::Modified,
    }
}

fn self_mark(l: Option<&Value>, r: Option<&Value>) -> Mark {
    match (l, r) {
        (None, Some(_)) => Mark::Added,
        (Some(_), None) => Mark::Removed,
        _ => Mark::None,
    }
}

/// A failure to walk an object against its schema, with the path where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub struct Typed<'s> {
    schema: &'s Schema,
    empty_map: Value,
}

impl<'s> Typed<'s> {
    pub fn new(schema: &'s Schema) -> Self {
        Typed {
            schema,
            empty_map: Value::Object(Map::new()),
        }
    }

    fn shape(&self, ty: TypeId, sample: Option<&Value>) -> Shape<'s> {
        match self.schema.atom(ty) {
            Atom::Scalar | Atom::Untyped => Shape::Leaf,
            Atom::Deduced => match sample {
                Some(Value::Object(_)) => Shape::Map(None, DEDUCED),
                _ => Shape::Leaf,
            },
            Atom::Struct(s) if s.atomic => Shape::Leaf,
            Atom::Struct(s) => Shape::Map(Some(s), UNTYPED),
            Atom::Map { atomic: true, .. } => Shape::Leaf,
            Atom::Map { elem, .. } => Shape::Map(None, *elem),
            Atom::List {
                kind: ListKind::Atomic,
                ..
            } => Shape::Leaf,
            Atom::List { elem, kind } => Shape::List(*elem, kind),
        }
    }

    /// The type of a key of a granular map or struct: (type, declared struct field,
    /// always present in Go objects).
    fn field_type(fields: Option<&Struct>, elem: TypeId, key: &str) -> (TypeId, bool, bool) {
        match fields {
            Some(s) => match s.fields.get(key) {
                Some(f) => (f.ty, true, f.always_present),
                None => (UNTYPED, false, false),
            },
            None => (elem, false, false),
        }
    }

    /// What stands for an always-present field that the JSON lacks.
    fn go_zero(&self, ty: TypeId) -> &Value {
        match self.schema.atom(ty) {
            Atom::List { .. } => &NULL,
            _ => &self.empty_map,
        }
    }

    /// The path element of a list item (upstream's `listItemToPathElement`).
    pub fn item_pe(kind: &ListKind, item: &Value) -> Result<PathElement, String> {
        match kind {
            ListKind::Atomic => Err("invalid indexing of non-associative list".into()),
            ListKind::Set => match item {
                Value::Object(_) => {
                    Err("associative list without keys has an element that's a map type".into())
                }
                Value::Array(_) => {
                    Err("not supported: associative list with lists as elements".into())
                }
                Value::Null => Err(
                    "associative list without keys has an element that's an explicit null".into(),
                ),
                v => Ok(PathElement::Value(v.clone())),
            },
            ListKind::Map(keys) => {
                let map = match item {
                    Value::Object(m) => m,
                    Value::Null => {
                        return Err("associative list with keys may not have a null element".into())
                    }
                    _ => {
                        return Err(
                            "associative list with keys may not have non-map elements".into()
                        )
                    }
                };
                let fields: Vec<(String, Value)> = keys
                    .iter()
                    .filter_map(|(k, default)| {
                        map.get(k)
                            .or(default.as_ref())
                            .map(|v| (k.clone(), v.clone()))
                    })
                    .collect();
                if !keys.is_empty() && fields.is_empty() {
                    let names: Vec<String> =
                        keys.iter().map(|(k, _)| super::path::go_quote(k)).collect();
                    return Err(format!(
                        "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                        names.join(" ")
                    ));
                }
                Ok(PathElement::Key(fields))
            }
        }
    }

    // ---- field sets ----

    /// The set of fields an object sets (upstream's `ToFieldSet`). With `strict`, fields
    /// the schema does not declare and duplicate list items are errors, as they are for an
    /// applied configuration.
    pub fn field_set(&self, ty: TypeId, v: &Value, strict: bool) -> Result<Set, Vec<WalkError>> {
        let mut w = FieldSetWalk {
            t: self,
            strict,
            path: Vec::new(),
            errors: Vec::new(),
        };
        let (set, _) = w.walk(ty, v);
        if w.errors.is_empty() {
            Ok(set)
        } else {
            Err(w.errors)
        }
    }

    // ---- comparison ----

    /// The paths added, modified and removed from `l` to `r` (upstream's `Compare`).
    /// `skip` names a field of the root's `metadata` left out of the comparison
    /// (`managedFields`).
    pub fn compare(
        &self,
        ty: TypeId,
        l: &Value,
        r: &Value,
        skip_meta: Option<&str>,
    ) -> Result<Comparison, String> {
        let (mark, cmp) = self.cmp_node(ty, Some(l), Some(r), skip_meta, true)?;
        debug_assert_eq!(mark, Mark::None);
        Ok(cmp)
    }

    fn cmp_node(
        &self,
        ty: TypeId,
        l: Option<&Value>,
        r: Option<&Value>,
        skip_meta: Option<&str>,
        root: bool,
    ) -> Result<(Mark, Comparison), String> {
        let sample = l.filter(|v| !v.is_null()).or(r);
        match self.shape(ty, sample) {
            Shape::Leaf => Ok((leaf_mark(l, r), Comparison::default())),
            Shape::List(elem, kind) => {
                let (la, ra) = (as_list(l), as_list(r));
                if la.is_none_or(Vec::is_empty) && ra.is_none_or(Vec::is_empty) {
                    return Ok((leaf_mark(l, r), Comparison::default()));
                }
                let empty = Vec::new();
                let cmp = self.cmp_list(elem, kind, la.unwrap_or(&empty), ra.unwrap_or(&empty))?;
                Ok((self_mark(l, r), cmp))
            }
            Shape::Map(fields, elem) => {
                let (lm, rm) = (as_map(l), as_map(r));
                if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                    return Ok((leaf_mark(l, r), Comparison::default()));
                }
                let mut acc = CmpAcc::default();
                // A Go object has its value-typed fields wherever it has their parent.
                let (l_has, r_has) = (lm.is_some(), rm.is_some());
                let mut visit = |key: &str, lv: Option<&Value>, rv: Option<&Value>| {
                    let (fty, _, always) = Self::field_type(fields, elem, key);
                    let (lv, rv) = if always {
                        let zero = self.go_zero(fty);
                        (lv.or(l_has.then_some(zero)), rv.or(r_has.then_some(zero)))
                    } else {
                        (lv, rv)
                    };
                    let skip = if root && key == "metadata" {
                        skip_meta
                    } else {
                        None
                    };
                    let (mark, sub) = self.cmp_node(fty, lv, rv, skip, false)?;
                    acc.add(PathElement::field(key), mark, sub);
                    Ok::<(), String>(())
                };
                for (k, lv) in lm.into_iter().flatten() {
                    if skip_meta.is_some_and(|s| s == k) && !root {
                        continue;
                    }
                    visit(k, Some(lv), rm.and_then(|m| m.get(k)))?;
                }
                for (k, rv) in rm.into_iter().flatten() {
                    if lm.is_some_and(|m| m.contains_key(k))
                        || (skip_meta.is_some_and(|s| s == k) && !root)
                    {
                        continue;
                    }
                    visit(k, None, Some(rv))?;
                }
                Ok((self_mark(l, r), acc.finish()))
            }
        }
    }

    fn cmp_list(
        &self,
        elem: TypeId,
        kind: &ListKind,
        l: &[Value],
        r: &[Value],
    ) -> Result<Comparison, String> {
        let mut order: Vec<PathElement> = Vec::with_capacity(l.len().max(r.len()));
        let mut index: BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
        for (i, item) in l.iter().enumerate() {
            let pe = Self::item_pe(kind, item).map_err(|e| format!("element {i}: {e}"))?;
            let entry = index.entry(pe.clone()).or_insert_with(|| {
                order.push(pe);
                (Vec::new(), Vec::new())
            });
            entry.0.push(item);
        }
        for (i, item) in r.iter().enumerate() {
            let pe = Self::item_pe(kind, item).map_err(|e| format!("element {i}: {e}"))?;
            let entry = index.entry(pe.clone()).or_insert_with(|| {
                order.push(pe);
                (Vec::new(), Vec::new())
            });
            entry.1.push(item);
        }
        let mut acc = CmpAcc::default();
        for pe in &order {
            let Some((ls, rs)) = index.get(pe) else {
                continue;
            };
            match (ls.len(), rs.len()) {
                (a, b) if a <= 1 && b <= 1 => {
                    let (mark, sub) =
                        self.cmp_node(elem, ls.first().copied(), rs.first().copied(), None, false)?;
                    acc.add(pe.clone(), mark, sub);
                }
                (a, b) if a >= 2 && b >= 2 => {
                    let same = ls.iter().zip(rs).all(|(x, y)| values_equal(x, y));
                    if !same || a != b {
                        acc.modified.members.push(pe.clone());
                    }
                }
                (a, _) if a >= 2 => {
                    if let Some(r0) = rs.first() {
                        let (mark, sub) = self.cmp_node(elem, None, Some(r0), None, false)?;
                        acc.add(pe.clone(), mark, sub);
                    }
                    acc.removed.members.push(pe.clone());
                }
                _ => {
                    if let Some(l0) = ls.first() {
                        let (mark, sub) = self.cmp_node(elem, Some(l0), None, None, false)?;
                        acc.add(pe.clone(), mark, sub);
                    }
                    acc.added.members.push(pe.clone());
                }
            }
        }
        Ok(acc.finish())
    }

    // ---- merge ----

    /// The live object `l` with the applied configuration `r` merged in (upstream's
    /// `Merge` with the keep-right rule). `None` when neither has anything.
    pub fn merge(
        &self,
        ty: TypeId,
        l: Option<&Value>,
        r: Option<&Value>,
    ) -> Result<Option<Value>, String> {
        let (l, r) = match (l, r) {
            (None, None) => return Ok(None),
            (Some(l), None) => return Ok(Some(l.clone())),
            (None, Some(r)) => return Ok(Some(r.clone())),
            (Some(l), Some(r)) => (l, r),
        };
        let sample = if l.is_null() { r } else { l };
        match self.shape(ty, Some(sample)) {
            Shape::Leaf => Ok(Some(r.clone())),
            Shape::List(elem, kind) => {
                let (la, ra) = (l.as_array(), r.as_array());
                if la.is_none_or(Vec::is_empty) && ra.is_none_or(Vec::is_empty) {
                    return Ok(Some(r.clone()));
                }
                let empty = Vec::new();
                let out =
                    self.merge_list(elem, kind, la.unwrap_or(&empty), ra.unwrap_or(&empty))?;
                Ok((!out.is_empty()).then_some(Value::Array(out)))
            }
            Shape::Map(fields, elem) => {
                let (lm, rm) = (l.as_object(), r.as_object());
                if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                    return Ok(Some(r.clone()));
                }
                let mut out = Map::new();
                for (k, lv) in lm.into_iter().flatten() {
                    let (fty, _, _) = Self::field_type(fields, elem, k);
                    if let Some(v) = self.merge(fty, Some(lv), rm.and_then(|m| m.get(k)))? {
                        out.insert(k.clone(), v);
                    }
                }
                for (k, rv) in rm.into_iter().flatten() {
                    if lm.is_some_and(|m| m.contains_key(k)) {
                        continue;
                    }
                    let (fty, _, _) = Self::field_type(fields, elem, k);
                    if let Some(v) = self.merge(fty, None, Some(rv))? {
                        out.insert(k.clone(), v);
                    }
                }
                Ok((!out.is_empty()).then_some(Value::Object(out)))
            }
        }
    }

    /// Merge associative lists: items of both are merged in place; the live order is kept,
    /// items only in the configuration come where the configuration puts them relative to
    /// the items both share (upstream's `visitListItems` of the merging walker).
    fn merge_list(
        &self,
        elem: TypeId,
        kind: &ListKind,
        l: &[Value],
        r: &[Value],
    ) -> Result<Vec<Value>, String> {
        let mut rhs_pes = Vec::with_capacity(r.len());
        let mut observed_rhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in r.iter().enumerate() {
            let pe = Self::item_pe(kind, item).map_err(|e| format!("element {i}: {e}"))?;
            if observed_rhs.contains_key(&pe) {
                return Err(format!("duplicate entries for key {pe}"));
            }
            observed_rhs.insert(pe.clone(), item);
            rhs_pes.push(pe);
        }
        let mut lhs_pes = Vec::with_capacity(l.len());
        // A duplicated live item merges as null: the configuration's item replaces them.
        let mut observed_lhs: BTreeMap<PathElement, &Value> = BTreeMap::new();
        for (i, item) in l.iter().enumerate() {
            let pe = Self::item_pe(kind, item).map_err(|e| format!("element {i}: {e}"))?;
            match observed_lhs.get_mut(&pe) {
                Some(v) => *v = &NULL,
                None => {
                    observed_lhs.insert(pe.clone(), item);
                }
            }
            lhs_pes.push(pe);
        }
        let mut shared = rhs_pes
            .iter()
            .filter(|pe| observed_lhs.contains_key(pe))
            .collect::<Vec<_>>()
            .into_iter();
        let mut next_shared = shared.next();
        let mut merged_rhs: BTreeMap<&PathElement, ()> = BTreeMap::new();
        let mut out = Vec::with_capacity(l.len().max(r.len()));
        let (mut li, mut ri) = (0, 0);
        // Each round consumes at least one item of either side; the bound only guards
        // against a logic error looping forever.
        let mut rounds = 0;
        while (li < lhs_pes.len() || ri < rhs_pes.len()) && rounds <= 2 * (l.len() + r.len()) {
            rounds += 1;
            if li < lhs_pes.len() && ri < rhs_pes.len() {
                let pe = &lhs_pes[li];
                if *pe == rhs_pes[ri] {
                    merged_rhs.insert(pe, ());
                    let merged = self.merge(
                        elem,
                        observed_lhs.get(pe).copied(),
                        observed_rhs.get(pe).copied(),
                    )?;
                    out.extend(merged);
                    li += 1;
                    ri += 1;
                    next_shared = shared.next();
                    continue;
                }
                if observed_rhs.contains_key(pe) && next_shared.is_some_and(|s| s != pe) {
                    li += 1;
                    continue;
                }
            }
            if li < lhs_pes.len() {
                let pe = &lhs_pes[li];
                if !observed_rhs.contains_key(pe) {
                    out.extend(self.merge(elem, Some(&l[li]), None)?);
                    li += 1;
                    continue;
                } else if merged_rhs.contains_key(pe) {
                    li += 1;
                }
            }
            if ri < rhs_pes.len() {
                let pe = &rhs_pes[ri];
                merged_rhs.insert(pe, ());
                let merged = self.merge(
                    elem,
                    observed_lhs.get(pe).copied(),
                    observed_rhs.get(pe).copied(),
                )?;
                out.extend(merged);
                ri += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.next();
                }
            }
        }
        Ok(out)
    }

    // ---- removal ----

    /// `v` without the paths of `set` (upstream's `RemoveItems`); a list or map left empty
    /// becomes null.
    pub fn remove(&self, ty: TypeId, v: &Value, set: &Set) -> Value {
        match self.shape(ty, Some(v)) {
            Shape::Leaf => match self.schema.atom(ty) {
                Atom::Scalar | Atom::Untyped | Atom::Deduced => v.clone(),
                // Upstream drops a granular walk into an atomic value.
                _ => Value::Null,
            },
            Shape::List(elem, kind) => {
                let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
                    return Value::Null;
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match Self::item_pe(kind, item) {
                        Ok(pe) if set.has_member(&pe) => {}
                        Ok(pe) => match set.child(&pe) {
                            Some(sub) => out.push(self.remove(elem, item, sub)),
                            None => out.push(item.clone()),
                        },
                        Err(_) => out.push(item.clone()),
                    }
                }
                if out.is_empty() {
                    Value::Null
                } else {
                    Value::Array(out)
                }
            }
            Shape::Map(fields, elem) => {
                let Some(map) = v.as_object().filter(|m| !m.is_empty()) else {
                    return Value::Null;
                };
                let mut out = Map::new();
                for (k, val) in map {
                    let pe = PathElement::field(k);
                    if set.has_member(&pe) {
                        continue;
                    }
                    match set.child(&pe) {
                        Some(sub) => {
                            let (fty, _, _) = Self::field_type(fields, elem, k);
                            out.insert(k.clone(), self.remove(fty, val, sub));
                        }
                        None => {
                            out.insert(k.clone(), val.clone());
                        }
                    }
                }
                if out.is_empty() {
                    Value::Null
                } else {
                    Value::Object(out)
                }
            }
        }
    }

    /// Keep the paths of `set` (changes from `old`) that `post` still has changed: a leaf
    /// goes when its value in `post` is again the one in `old`, a path with paths under it
    /// when `post` has it exactly when `old` does.
    pub fn retain_changed(
        &self,
        ty: Option<TypeId>,
        set: &mut Set,
        old: Option<&Value>,
        post: Option<&Value>,
    ) {
        fn present(v: Option<&Value>) -> bool {
            v.is_some_and(|v| !v.is_null())
        }
        fn index<'a>(
            kind: Option<&ListKind>,
            v: Option<&'a Value>,
        ) -> BTreeMap<PathElement, &'a Value> {
            let (Some(kind), Some(items)) = (kind, v.and_then(Value::as_array)) else {
                return BTreeMap::new();
            };
            items
                .iter()
                .filter_map(|item| Typed::item_pe(kind, item).ok().map(|pe| (pe, item)))
                .collect()
        }
        fn lookup<'a>(
            v: Option<&'a Value>,
            items: &BTreeMap<PathElement, &'a Value>,
            pe: &PathElement,
        ) -> Option<&'a Value> {
            match pe {
                PathElement::Field(name) => v.and_then(|v| v.get(name)),
                PathElement::Index(i) => usize::try_from(*i)
                    .ok()
                    .and_then(|i| v.and_then(|v| v.get(i))),
                _ => items.get(pe).copied(),
            }
        }
        let shape = ty.map(|t| self.shape(t, old.filter(|v| !v.is_null()).or(post)));
        // List items are found by key through an index built once per list.
        let (list_kind, elem) = match shape {
            Some(Shape::List(elem, kind)) => (Some(kind), Some(elem)),
            _ => (None, None),
        };
        let old_items = index(list_kind, old);
        let post_items = index(list_kind, post);
        let child_ty = |pe: &PathElement| -> Option<TypeId> {
            match (pe, &shape) {
                (PathElement::Field(name), Some(Shape::Map(fields, elem))) => {
                    Some(Self::field_type(*fields, *elem, name).0)
                }
                (PathElement::Key(_) | PathElement::Value(_), Some(Shape::List(..))) => elem,
                _ => None,
            }
        };
        let (members, children) = set.parts_mut();
        members.retain(|pe| {
            let (o, p) = (lookup(old, &old_items, pe), lookup(post, &post_items, pe));
            let has_children = children.binary_search_by(|(c, _)| c.cmp(pe)).is_ok();
            if has_children {
                present(o) != present(p)
            } else {
                match (o.filter(|v| !v.is_null()), p.filter(|v| !v.is_null())) {
                    (None, None) => false,
                    (Some(a), Some(b)) => !values_equal(a, b),
                    _ => true,
                }
            }
        });
        children.retain_mut(|(pe, sub)| {
            let (o, p) = (lookup(old, &old_items, pe), lookup(post, &post_items, pe));
            self.retain_changed(child_ty(pe), sub, o, p);
            !sub.is_empty()
        });
    }

    /// `set` plus, as members, every struct field under which it has paths (upstream's
    /// `EnsureNamedFieldsAreMembers`): owning a struct field's contents owns the field.
    pub fn ensure_named_fields_are_members(&self, ty: Option<TypeId>, set: &Set) -> Set {
        let atom = ty.map(|t| self.schema.atom(t));
        let mut members = set.members().to_vec();
        let mut children = Vec::with_capacity(set.children().len());
        for (pe, sub) in set.children() {
            let child_ty = match (pe, atom) {
                (PathElement::Field(name), Some(Atom::Struct(s))) => {
                    let f = s.fields.get(name);
                    if f.is_some() {
                        members.push(pe.clone());
                    }
                    f.map(|f| f.ty)
                }
                (PathElement::Field(_), Some(Atom::Map { elem, .. })) => Some(*elem),
                (PathElement::Field(_), Some(Atom::Deduced)) => Some(DEDUCED),
                (PathElement::Key(_), Some(Atom::List { elem, .. })) => Some(*elem),
                _ => None,
            };
            children.push((
                pe.clone(),
                self.ensure_named_fields_are_members(child_ty, sub),
            ));
        }
        Set::from_parts(members, children)
    }
}

struct FieldSetWalk<'t, 's> {
    t: &'t Typed<'s>,
    strict: bool,
    path: Vec<PathElement>,
    errors: Vec<WalkError>,
}

impl FieldSetWalk<'_, '_> {
    fn error(&mut self, message: String) {
        let path = super::path::Path(self.path.clone()).to_string();
        self.errors.push(WalkError { path, message });
    }

    /// The set under `v` and whether `v` is itself a leaf.
    fn walk(&mut self, ty: TypeId, v: &Value) -> (Set, bool) {
        match self.t.shape(ty, Some(v)) {
            Shape::Leaf => (Set::new(), true),
            Shape::List(elem, kind) => {
                let Value::Array(items) = v else {
                    return (Set::new(), false);
                };
                let mut pes = Vec::with_capacity(items.len());
                let mut count: BTreeMap<PathElement, usize> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    match Typed::item_pe(kind, item) {
                        Ok(pe) => {
                            *count.entry(pe.clone()).or_default() += 1;
                            pes.push(Some(pe));
                        }
                        Err(e) => {
                            if self.strict {
                                self.error(format!("element {i}: {e}"));
                            }
                            pes.push(None);
                        }
                    }
                }
                let mut acc = Acc::default();
                for (pe, item) in pes.into_iter().zip(items) {
                    let Some(pe) = pe else { continue };
                    if count.get(&pe).copied().unwrap_or(0) > 1 {
                        // Duplicates are owned as a whole, never field by field.
                        if self.strict && !acc.members.contains(&pe) {
                            self.error(format!("duplicate entries for key {pe}"));
                        }
                        acc.members.push(pe);
                        continue;
                    }
                    self.path.push(pe.clone());
                    let (sub, _) = self.walk(elem, item);
                    self.path.pop();
                    acc.child(&pe, sub);
                    acc.members.push(pe);
                }
                (acc.finish(), false)
            }
            Shape::Map(fields, elem) => {
                let Value::Object(map) = v else {
                    return (Set::new(), false);
                };
                let mut acc = Acc::default();
                for (k, val) in map {
                    let (fty, declared, _) = Typed::field_type(fields, elem, k);
                    let pe = PathElement::field(k);
                    if fields.is_some() && !declared && self.strict {
                        self.path.push(pe);
                        self.error("field not declared in schema".into());
                        self.path.pop();
                        continue;
                    }
                    self.path.push(pe.clone());
                    let (sub, leaf) = self.walk(fty, val);
                    self.path.pop();
                    let empty_map = val.as_object().is_some_and(Map::is_empty);
                    if leaf || val.is_null() || empty_map || !declared {
                        acc.members.push(pe.clone());
                    }
                    acc.child(&pe, sub);
                }
                (acc.finish(), false)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fieldmanager::path::Path;
    use serde_json::json;

    fn t() -> (Typed<'static>, &'static Schema) {
        let s = Schema::global();
        (Typed::new(s), s)
    }

    fn paths(set: &Set) -> Vec<String> {
        set.paths().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn field_set_of_a_deployment() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.apps.v1.Deployment").unwrap();
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a/b"]},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{
                    "name": "nginx", "image": "nginx",
                    "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
                    "resources": {},
                }]}},
            },
        });
        let set = t.field_set(ty, &obj, true).unwrap();
        let fv = set.to_fields_v1();
        assert_eq!(
            fv,
            json!({
                "f:apiVersion": {},
                "f:kind": {},
                "f:metadata": {
                    "f:finalizers": {"v:\"a/b\"": {}},
                    "f:labels": {"f:app": {}},
                    "f:name": {},
                },
                "f:spec": {
                    "f:selector": {},
                    "f:template": {"f:spec": {"f:containers": {
                        "k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {
                                "k:{\"containerPort\":53,\"protocol\":\"UDP\"}": {
                                    ".": {}, "f:containerPort": {}, "f:protocol": {},
                                },
                                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                    ".": {}, "f:containerPort": {},
                                },
                            },
                            "f:resources": {},
                        },
                    }}},
                },
            })
        );
    }

    #[test]
    fn strict_field_sets_reject_unknown_fields_and_duplicates() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.ConfigMap").unwrap();
        let err = t
            .field_set(ty, &json!({"data": {"a": "b"}, "dat": {}}), true)
            .unwrap_err();
        assert_eq!(err[0].to_string(), ".dat: field not declared in schema");
        let svc = s.root("io.k8s.api.core.v1.Service").unwrap();
        let err = t
            .field_set(
                svc,
                &json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}),
                true,
            )
            .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            r#".spec.ports: duplicate entries for key [port=80,protocol="TCP"]"#
        );
    }

    #[test]
    fn compare_marks_added_modified_removed() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.ConfigMap").unwrap();
        let l = json!({"metadata": {"name": "a", "managedFields": [{"x": 1}]}, "data": {"a": "1", "b": "2"}});
        let r =
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"a": "9", "c": "3"}});
        let c = t.compare(ty, &l, &r, Some("managedFields")).unwrap();
        assert_eq!(
            paths(&c.added),
            [".data.c", ".metadata.labels", ".metadata.labels.x"]
        );
        assert_eq!(paths(&c.modified), [".data.a"]);
        assert_eq!(paths(&c.removed), [".data.b"]);
    }

    #[test]
    fn compare_from_nothing_treats_go_value_structs_as_present() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.apps.v1.Deployment").unwrap();
        let obj = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}], "resources": {}}]}},
            },
        });
        let c = t.compare(ty, &json!({}), &obj, None).unwrap();
        assert!(c.modified.is_empty() && c.removed.is_empty());
        let fv = c.added.to_fields_v1();
        assert_eq!(
            fv["f:metadata"],
            json!({"f:labels": {".": {}, "f:app": {}}})
        );
        assert_eq!(
            fv["f:spec"]["f:strategy"],
            json!({"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}})
        );
        let containers = &fv["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert_eq!(
            containers,
            &json!({"k:{\"name\":\"c\"}": {
                ".": {}, "f:name": {},
                "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}},
                // A new item has none of its value-typed fields yet.
                "f:resources": {},
            }})
        );
    }

    #[test]
    fn merges_list_maps_by_key_and_keeps_live_order() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.Pod").unwrap();
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "b", "image": "b:1"},
        ]}});
        let applied = json!({"spec": {"containers": [
            {"name": "c", "image": "c:1"},
            {"name": "a", "image": "a:2", "ports": [{"containerPort": 80, "name": "http"}]},
        ]}});
        let merged = t.merge(ty, Some(&live), Some(&applied)).unwrap().unwrap();
        assert_eq!(
            merged,
            json!({"spec": {"containers": [
                {"name": "c", "image": "c:1"},
                {"name": "a", "image": "a:2", "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]},
                {"name": "b", "image": "b:1"},
            ]}})
        );
    }

    #[test]
    fn merges_sets_and_replaces_atomic_lists() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.Service").unwrap();
        let live = json!({
            "metadata": {"finalizers": ["a", "b"]},
            "spec": {"externalIPs": ["1.1.1.1", "2.2.2.2"], "selector": {"app": "x", "tier": "y"}},
        });
        let applied = json!({
            "metadata": {"finalizers": ["c", "a"]},
            "spec": {"externalIPs": ["3.3.3.3"], "selector": {"app": "z"}},
        });
        let merged = t.merge(ty, Some(&live), Some(&applied)).unwrap().unwrap();
        assert_eq!(merged["metadata"]["finalizers"], json!(["c", "a", "b"]));
        assert_eq!(merged["spec"]["externalIPs"], json!(["3.3.3.3"]));
        assert_eq!(merged["spec"]["selector"], json!({"app": "z"}));
    }

    #[test]
    fn removes_items_and_nulls_emptied_containers() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.ConfigMap").unwrap();
        let obj = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}, "data": {"k": "v"}});
        let mut set = Set::new();
        set.insert(&Path::fields(&["data", "k"]).0);
        set.insert(&[
            PathElement::field("metadata"),
            PathElement::field("finalizers"),
            PathElement::Value(json!("a")),
        ]);
        let out = t.remove(ty, &obj, &set);
        assert_eq!(
            out,
            json!({"metadata": {"name": "x", "finalizers": ["b"]}, "data": null})
        );
    }

    #[test]
    fn ensures_struct_fields_are_members() {
        let (t, s) = t();
        let ty = s.root("io.k8s.api.core.v1.ConfigMap").unwrap();
        let mut set = Set::new();
        set.insert(&Path::fields(&["metadata", "labels", "a"]).0);
        set.insert(&Path::fields(&["data", "k"]).0);
        let out = t.ensure_named_fields_are_members(Some(ty), &set);
        assert_eq!(
            paths(&out),
            [
                ".data",
                ".metadata",
                ".data.k",
                ".metadata.labels",
                ".metadata.labels.a"
            ]
        );
    }
}
