//! Sets of field paths (structured-merge-diff's `fieldpath.Set`) and their FieldsV1
//! encoding.
//!
//! A set is a tree: at each node, `members` are the elements whose path is in the set,
//! `children` the elements under which deeper paths are. Both are kept sorted by the
//! elements' order, and no child set is empty, so equal sets have equal representations.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::path::{Path, PathElement};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: Vec<PathElement>,
    children: Vec<(PathElement, Set)>,
}

impl Set {
    pub fn new() -> Self {
        Set::default()
    }

    /// Build from unsorted parts: sorts, drops duplicate members, merges duplicate children
    /// and drops empty ones.
    pub fn from_parts(mut members: Vec<PathElement>, mut children: Vec<(PathElement, Set)>) -> Set {
        members.sort();
        members.dedup();
        children.retain(|(_, s)| !s.is_empty());
        children.sort_by(|a, b| a.0.cmp(&b.0));
        if children.windows(2).any(|w| w[0].0 == w[1].0) {
            let mut merged: Vec<(PathElement, Set)> = Vec::with_capacity(children.len());
            for (pe, set) in children {
                match merged.last_mut() {
                    Some((last, existing)) if *last == pe => *existing = existing.union(&set),
                    _ => merged.push((pe, set)),
                }
            }
            children = merged;
        }
        Set { members, children }
    }

    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Set {
        let mut set = Set::new();
        for p in paths {
            set.insert(&p.0);
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    pub fn children(&self) -> &[(PathElement, Set)] {
        &self.children
    }

    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children
            .binary_search_by(|(p, _)| p.cmp(pe))
            .ok()
            .map(|i| &self.children[i].1)
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            if let Err(i) = self.members.binary_search(first) {
                self.members.insert(i, first.clone());
            }
            return;
        }
        let i = match self.children.binary_search_by(|(p, _)| p.cmp(first)) {
            Ok(i) => i,
            Err(i) => {
                self.children.insert(i, (first.clone(), Set::new()));
                i
            }
        };
        self.children[i].1.insert(rest);
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        match path.split_first() {
            None => false,
            Some((first, [])) => self.has_member(first),
            Some((first, rest)) => self.child(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        let members = merge_sorted(&self.members, &other.members, |a, b| a.cmp(b));
        let mut children = Vec::with_capacity(self.children.len().max(other.children.len()));
        let (mut i, mut j) = (0, 0);
        while i < self.children.len() && j < other.children.len() {
            let (a, b) = (&self.children[i], &other.children[j]);
            match a.0.cmp(&b.0) {
                Ordering::Less => {
                    children.push(a.clone());
                    i += 1;
                }
                Ordering::Greater => {
                    children.push(b.clone());
                    j += 1;
                }
                Ordering::Equal => {
                    children.push((a.0.clone(), a.1.union(&b.1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        children.extend_from_slice(&self.children[i..]);
        children.extend_from_slice(&other.children[j..]);
        Set { members, children }
    }

    /// [`Set::union`] consuming both sets, moving their elements instead of copying them.
    pub fn union_owned(self, other: Set) -> Set {
        if other.is_empty() {
            return self;
        }
        if self.is_empty() {
            return other;
        }
        let mut members = Vec::with_capacity(self.members.len() + other.members.len());
        let mut a = self.members.into_iter().peekable();
        let mut b = other.members.into_iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => members.extend(a.next()),
                Ordering::Greater => members.extend(b.next()),
                Ordering::Equal => {
                    members.extend(a.next());
                    b.next();
                }
            }
        }
        let mut children = Vec::with_capacity(self.children.len() + other.children.len());
        let mut a = self.children.into_iter().peekable();
        let mut b = other.children.into_iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => children.extend(a.next()),
                Ordering::Greater => children.extend(b.next()),
                Ordering::Equal => {
                    if let (Some((pe, x)), Some((_, y))) = (a.next(), b.next()) {
                        children.push((pe, x.union_owned(y)));
                    }
                }
            }
        }
        Set { members, children }
    }

    /// [`Set::difference`] in place.
    pub fn subtract(&mut self, other: &Set) {
        if other.is_empty() {
            return;
        }
        self.members.retain(|m| !other.has_member(m));
        self.children.retain_mut(|(pe, set)| {
            if let Some(o) = other.child(pe) {
                set.subtract(o);
            }
            !set.is_empty()
        });
    }

    /// [`Set::recursive_difference`] in place.
    pub fn recursive_subtract(&mut self, other: &Set) {
        if other.is_empty() {
            return;
        }
        self.members.retain(|m| !other.has_member(m));
        self.children.retain_mut(|(pe, set)| {
            if other.has_member(pe) {
                return false;
            }
            if let Some(o) = other.child(pe) {
                set.recursive_subtract(o);
            }
            !set.is_empty()
        });
    }

    /// Mutable access for in-place filters; callers keep the parts sorted and drop empty
    /// children.
    pub(crate) fn parts_mut(&mut self) -> (&mut Vec<PathElement>, &mut Vec<(PathElement, Set)>) {
        (&mut self.members, &mut self.children)
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                let both = set.intersection(other.child(pe)?);
                (!both.is_empty()).then(|| (pe.clone(), both))
            })
            .collect();
        Set { members, children }
    }

    /// The paths of `self` not in `other`, path by path: removing a member does not
    /// remove the paths under it.
    pub fn difference(&self, other: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| match other.child(pe) {
                None => Some((pe.clone(), set.clone())),
                Some(o) => {
                    let diff = set.difference(o);
                    (!diff.is_empty()).then(|| (pe.clone(), diff))
                }
            })
            .collect();
        Set { members, children }
    }

    /// Like [`Set::difference`], but a member of `other` also removes every path under it.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self
            .members
            .iter()
            .filter(|m| !other.has_member(m))
            .cloned()
            .collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                if other.has_member(pe) {
                    return None;
                }
                match other.child(pe) {
                    None => Some((pe.clone(), set.clone())),
                    Some(o) => {
                        let diff = set.recursive_difference(o);
                        (!diff.is_empty()).then(|| (pe.clone(), diff))
                    }
                }
            })
            .collect();
        Set { members, children }
    }

    /// Every path, members of a node before the paths under its children, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(Path(p));
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 form: one key per element in order, `{}` for a member, the child's
    /// contents (with `".": {}` when it is also a member) for a child.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_contents(false))
    }

    fn fields_v1_contents(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        let (mut i, mut j) = (0, 0);
        while i < self.members.len() || j < self.children.len() {
            let order = match (self.members.get(i), self.children.get(j)) {
                (Some(m), Some((c, _))) => m.cmp(c),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    out.insert(self.members[i].serialize(), Value::Object(Map::new()));
                    i += 1;
                }
                Ordering::Greater => {
                    let (pe, set) = &self.children[j];
                    out.insert(pe.serialize(), Value::Object(set.fields_v1_contents(false)));
                    j += 1;
                }
                Ordering::Equal => {
                    let (pe, set) = &self.children[j];
                    out.insert(pe.serialize(), Value::Object(set.fields_v1_contents(true)));
                    i += 1;
                    j += 1;
                }
            }
        }
        out
    }

    /// Parse the FieldsV1 form; keys of unknown kinds are dropped, as upstream does.
    pub fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(map) = v else {
            return Err(format!("FieldsV1 must be an object, got {v}"));
        };
        Ok(read_node(map)?.0.unwrap_or_default())
    }
}

/// The children of one FieldsV1 object, and whether the object marks its own path as a
/// member (`"."`, or no children at all).
fn read_node(map: &Map<String, Value>) -> Result<(Option<Set>, bool), String> {
    let mut is_member = false;
    let mut members = Vec::new();
    let mut children = Vec::new();
    for (key, value) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::deserialize(key)? else {
            continue;
        };
        let Value::Object(inner) = value else {
            return Err(format!("FieldsV1 value of {key:?} must be an object"));
        };
        let (grandchildren, child_is_member) = read_node(inner)?;
        if child_is_member {
            members.push(pe.clone());
        }
        if let Some(g) = grandchildren {
            children.push((pe, g));
        }
    }
    if members.is_empty() && children.is_empty() {
        return Ok((None, true));
    }
    Ok((Some(Set::from_parts(members, children)), is_member))
}

fn merge_sorted<T: Clone>(a: &[T], b: &[T], cmp: impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match cmp(&a[i], &b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(paths: &[&[&str]]) -> Set {
        let paths: Vec<Path> = paths.iter().map(|p| Path::fields(p)).collect();
        Set::from_paths(&paths)
    }

    #[test]
    fn round_trips_fields_v1() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {
                "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}},
            }},
        });
        let s = Set::from_fields_v1(&v).unwrap();
        assert!(s.has(&Path::fields(&["metadata", "labels"]).0));
        assert!(s.has(&Path::fields(&["metadata", "labels", "app"]).0));
        assert!(!s.has(&Path::fields(&["metadata"]).0));
        assert_eq!(s.to_fields_v1(), v);
        assert_eq!(
            serde_json::to_string(&s.to_fields_v1()).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn orders_members_and_children_together() {
        let mut s = Set::new();
        s.insert(&[PathElement::field("b")]);
        s.insert(&[PathElement::field("a"), PathElement::field("x")]);
        s.insert(&[PathElement::field("c"), PathElement::field("y")]);
        s.insert(&[PathElement::field("c")]);
        let keys: Vec<String> = s
            .to_fields_v1()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["f:a", "f:b", "f:c"]);
        assert_eq!(s.to_fields_v1()["f:c"], json!({".": {}, "f:y": {}}));
    }

    #[test]
    fn rejects_malformed_fields_v1() {
        assert!(Set::from_fields_v1(&json!([])).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:{": {}})).is_err());
        // Unknown kinds are dropped.
        let s = Set::from_fields_v1(&json!({"x:y": {}, "f:a": {}})).unwrap();
        assert_eq!(s, set(&[&["a"]]));
    }

    fn b_member_of(_: &Set) -> Set {
        set(&[&["b"]])
    }

    #[test]
    fn set_operations() {
        let a = set(&[&["a"], &["b", "c"], &["b", "d"]]);
        let b = set(&[&["b", "c"], &["e"]]);
        assert_eq!(
            a.union(&b),
            set(&[&["a"], &["b", "c"], &["b", "d"], &["e"]])
        );
        assert_eq!(a.intersection(&b), set(&[&["b", "c"]]));
        assert_eq!(a.clone().union_owned(b.clone()), a.union(&b));
        assert_eq!(b.clone().union_owned(a.clone()), a.union(&b));
        let mut sub = a.clone();
        sub.subtract(&b);
        assert_eq!(sub, a.difference(&b));
        let mut rsub = a.clone();
        rsub.recursive_subtract(&b_member_of(&a));
        assert_eq!(rsub, a.recursive_difference(&b_member_of(&a)));
        assert_eq!(a.difference(&b), set(&[&["a"], &["b", "d"]]));
        assert!(a.difference(&a).is_empty());
        // A member removes its subtree only in the recursive difference.
        let b_member = set(&[&["b"]]);
        assert_eq!(a.difference(&b_member), a);
        assert_eq!(a.recursive_difference(&b_member), set(&[&["a"]]));
    }

    #[test]
    fn iterates_members_before_children() {
        let s = set(&[&["z"], &["a", "b"], &["m"]]);
        let paths: Vec<String> = s.paths().iter().map(ToString::to_string).collect();
        assert_eq!(paths, [".m", ".z", ".a.b"]);
    }

    #[test]
    fn from_parts_normalizes() {
        let s = Set::from_parts(
            vec![
                PathElement::field("b"),
                PathElement::field("a"),
                PathElement::field("b"),
            ],
            vec![
                (PathElement::field("c"), set(&[&["x"]])),
                (PathElement::field("c"), set(&[&["y"]])),
                (PathElement::field("d"), Set::new()),
            ],
        );
        assert_eq!(s, set(&[&["a"], &["b"], &["c", "x"], &["c", "y"]]));
    }
}
