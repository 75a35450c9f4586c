//! Field selectors as upstream's `k8s.io/apimachinery/pkg/fields` parses, prints and
//! matches them: `metadata.name=web,status.phase!=Running`, terms joined by commas,
//! `=`/`==` for equality and `!=` for inequality, and `\,` `\=` `\\` escapes in values.
//!
//! Field names are not checked here: each resource supports its own set, and the API
//! server rejects the others with [`FieldSelectorError::UnsupportedField`] (upstream's
//! `field label not supported: <name>`), e.g. through [`Selector::check_supported`] or
//! [`Selector::transform`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::validation::go_quote;

/// Anything field values can be looked up in: a map, or a function computing a field
/// of an object. A missing field reads as `""`, as upstream's `fields.Set` does.
pub trait Fields {
    fn field(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl Fields for BTreeMap<String, String> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<S: std::hash::BuildHasher> Fields for HashMap<String, String, S> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl<F: Fn(&str) -> Option<String>> Fields for F {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self(name).map(Cow::Owned)
    }
}

/// Why a field selector is invalid. The texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term without `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Syntax { selector: String, term: String },
    /// A backslash not followed by `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// An unescaped `,` or `=` in a value; upstream prints the character as its code
    /// point number.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedRune(char),
    /// A field the resource does not support selecting on.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A field other than metadata.name/metadata.namespace, for resources that support
    /// only those (upstream's `DefaultMetaV1FieldSelectorConversion`).
    #[error("{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"", go_quote(.0))]
    UnknownMetaField(String),
}

/// Upstream's message for a field a resource does not support: `field label not
/// supported: <name>` (the text of [`FieldSelectorError::UnsupportedField`]).
pub fn field_label_not_supported(name: &str) -> String {
    FieldSelectorError::UnsupportedField(name.to_string()).to_string()
}

/// Upstream's `DefaultMetaV1FieldSelectorConversion`: the conversion for resources
/// that only support `metadata.name` and `metadata.namespace`.
pub fn default_meta_field_conversion(
    field: &str,
    value: &str,
) -> Result<(String, String), FieldSelectorError> {
    match field {
        "metadata.name" | "metadata.namespace" => Ok((field.to_string(), value.to_string())),
        _ => Err(FieldSelectorError::UnknownMetaField(field.to_string())),
    }
}

/// The comparison of a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One term: a field, an operator and an (unescaped) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub field: String,
    pub operator: Operator,
    pub value: String,
}

impl Requirement {
    fn matches(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or_default();
        match self.operator {
            Operator::Equals => actual == self.value,
            Operator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A field selector: the AND of its terms, or the selector that matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Requirement>,
    nothing: bool,
}

impl Selector {
    /// Matches everything; prints as the empty string.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Matches nothing; prints as the empty string.
    pub fn nothing() -> Self {
        Selector {
            terms: Vec::new(),
            nothing: true,
        }
    }

    /// Parse the string syntax (upstream's `fields.ParseSelector`). Terms are kept in
    /// the sorted order of their source text, as upstream sorts them before parsing.
    pub fn parse(selector: &str) -> Result<Self, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(FieldSelectorError::Syntax {
                    selector: selector.to_string(),
                    term: part.to_string(),
                });
            };
            let value = unescape_value(rhs)?;
            let operator = if op == "!=" {
                Operator::NotEquals
            } else {
                Operator::Equals
            };
            terms.push(Requirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(Selector {
            terms,
            nothing: false,
        })
    }

    /// Parse, then rewrite each term with `f` (upstream's `ParseAndTransformSelector`,
    /// which the API server uses to map and reject field labels per resource).
    pub fn parse_and_transform<E>(
        selector: &str,
        f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<Self, E>
    where
        E: From<FieldSelectorError>,
    {
        Selector::parse(selector)?.transform(f)
    }

    /// A selector requiring `field=value` for every entry of the set.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        let terms = set
            .iter()
            .map(|(k, v)| Requirement {
                field: k.clone(),
                operator: Operator::Equals,
                value: v.clone(),
            })
            .collect();
        Selector {
            terms,
            nothing: false,
        }
    }

    /// `field=value`.
    pub fn one_term_equal(field: &str, value: &str) -> Self {
        Selector {
            terms: vec![Requirement {
                field: field.to_string(),
                operator: Operator::Equals,
                value: value.to_string(),
            }],
            nothing: false,
        }
    }

    /// `field!=value`.
    pub fn one_term_not_equal(field: &str, value: &str) -> Self {
        Selector {
            terms: vec![Requirement {
                field: field.to_string(),
                operator: Operator::NotEquals,
                value: value.to_string(),
            }],
            nothing: false,
        }
    }

    /// This selector AND `other`.
    pub fn and(self, other: Selector) -> Self {
        Selector::and_all([self, other])
    }

    /// The AND of several selectors (upstream's `AndSelectors`).
    pub fn and_all(selectors: impl IntoIterator<Item = Selector>) -> Self {
        let mut all = Selector::everything();
        for s in selectors {
            if s.nothing {
                return Selector::nothing();
            }
            all.terms.extend(s.terms);
        }
        all
    }

    /// Rewrite each term's field and value with `f`; a term rewritten to an empty field
    /// and an empty value is dropped. The first error is returned.
    pub fn transform<E>(
        &self,
        mut f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<Self, E> {
        if self.nothing {
            return Ok(self.clone());
        }
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let (field, value) = f(&t.field, &t.value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            terms.push(Requirement {
                field,
                operator: t.operator,
                value,
            });
        }
        Ok(Selector {
            terms,
            nothing: false,
        })
    }

    /// Whether every term holds for `fields`: a map, or a closure
    /// `|field: &str| -> Option<String>` that reads the field from an object.
    pub fn matches<F: Fields + ?Sized>(&self, fields: &F) -> bool {
        !self.nothing
            && self
                .terms
                .iter()
                .all(|t| t.matches(fields.field(&t.field).as_deref()))
    }

    /// True when the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.terms.is_empty()
    }

    /// True for [`Selector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The terms, in order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.terms
    }

    /// The distinct field names used, in order of first use.
    pub fn fields(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for t in &self.terms {
            if !names.contains(&t.field.as_str()) {
                names.push(&t.field);
            }
        }
        names
    }

    /// [`FieldSelectorError::UnsupportedField`] for the first field not in `supported`.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), FieldSelectorError> {
        match self
            .terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(FieldSelectorError::UnsupportedField(t.field.clone())),
            None => Ok(()),
        }
    }

    /// The value the first `field=value` term on `field` demands, which lets a caller
    /// use an index (e.g. `spec.nodeName`) instead of a scan.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == Operator::Equals)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Escape `\`, `,` and `=` so that a value survives a round trip through the syntax.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Undo [`escape_value`]; unknown escapes and unescaped `,` or `=` are errors.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscapeSequence(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune(c)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscapeSequence("\\".to_string()));
    }
    Ok(out)
}

/// Split on commas that are not escaped; `\` escapes whatever character follows it.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// The first operator in the term, trying `!=`, then `==`, then `=` at each position.
fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn split_terms_honours_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue", &["a=avalue"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            (
                "a=avalue,b==bvalue,c!=cvalue",
                &["a=avalue", "b==bvalue", "c!=cvalue"],
            ),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (input, want) in cases {
            assert_eq!(split_terms(input), *want, "{input:?}");
        }
    }

    #[test]
    fn split_term_finds_first_operator() {
        assert_eq!(split_term("a=value"), Some(("a", "=", "value")));
        assert_eq!(split_term("b==value"), Some(("b", "==", "value")));
        assert_eq!(split_term("c!=value"), Some(("c", "!=", "value")));
        assert_eq!(split_term(""), None);
        assert_eq!(split_term("a"), None);
        assert_eq!(split_term(r"k=\,"), Some(("k", "=", r"\,")));
        assert_eq!(split_term(r"k=\="), Some(("k", "=", r"\=")));
        assert_eq!(
            split_term(r"k=\\\a\b\=\,\"),
            Some(("k", "=", r"\\\a\b\=\,\"))
        );
        assert_eq!(split_term("함=수"), Some(("함", "=", "수")));
    }

    #[test]
    fn escaping_round_trips() {
        for (raw, escaped) in [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            ("\\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
        ] {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped).as_deref(), Ok(raw));
        }
        for bad in [r"\", r"\\\", r"\a"] {
            assert!(
                matches!(
                    unescape_value(bad),
                    Err(FieldSelectorError::InvalidEscapeSequence(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            unescape_value(r"\a").map_err(|e| e.to_string()),
            Err(r"invalid field selector: invalid escape sequence: \a".to_string())
        );
        assert_eq!(
            unescape_value(r"x\").map_err(|e| e.to_string()),
            Err(r"invalid field selector: invalid escape sequence: \".to_string())
        );
    }

    #[test]
    fn good_strings_round_trip() {
        for s in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert_eq!(parse(s).to_string(), s);
        }
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("b==c,a=x,").to_string(), "a=x,b=c");
        assert_eq!(parse("spec.nodeName=").to_string(), "spec.nodeName=");
    }

    #[test]
    fn bad_strings_fail_with_upstream_messages() {
        let err = |s: &str| Selector::parse(s).expect_err(s).to_string();
        assert_eq!(
            err("x=a||y=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("x==a==b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("x=a,b"),
            "invalid selector: 'x=a,b'; can't understand 'b'"
        );
        assert_eq!(
            err("x in (a)"),
            "invalid selector: 'x in (a)'; can't understand 'x in (a)'"
        );
        assert_eq!(
            err("x in (a,b,c)"),
            "invalid selector: 'x in (a,b,c)'; can't understand 'b'"
        );
        assert_eq!(err("x"), "invalid selector: 'x'; can't understand 'x'");
        assert_eq!(
            err(r"x=a\b"),
            r"invalid field selector: invalid escape sequence: \b"
        );
    }

    #[test]
    fn matching() {
        let m = |s: &str, f: &[(&str, &str)]| parse(s).matches(&set(f));
        assert!(m("", &[("x", "y")]));
        assert!(m("x=y", &[("x", "y")]));
        assert!(m("x==y", &[("x", "y")]));
        assert!(m("x=y,z=w", &[("x", "y"), ("z", "w")]));
        assert!(m("x!=y,z!=w", &[("x", "z"), ("z", "a")]));
        assert!(m("notin=in", &[("notin", "in")]));
        assert!(!m("x=y", &[("x", "z")]));
        assert!(!m("x=y,z=w", &[("x", "w"), ("z", "w")]));
        assert!(!m("x!=y,z!=w", &[("x", "z"), ("z", "w")]));
        // A missing field reads as the empty string.
        assert!(m("x=", &[]));
        assert!(m("x!=y", &[]));
        assert!(!m("x=y", &[]));
        let fieldset = [("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")];
        assert!(m("foo=bar,baz=blah", &fieldset));
        assert!(m(r"foo=bar,baz=blah,complex=\=value\\\,\\", &fieldset));
        assert!(!m("foo=blah", &fieldset));
        assert!(!m("foo=bar,foobar=bar,baz=blah", &fieldset));

        let s = parse("spec.nodeName=n1,status.phase!=Failed");
        assert!(s.matches(&|f: &str| match f {
            "spec.nodeName" => Some("n1".to_string()),
            _ => None,
        }));
        assert!(!s.matches(&|f: &str| Some(
            if f == "status.phase" { "Failed" } else { "n1" }.to_string()
        )));
    }

    #[test]
    fn everything_nothing_and_sets() {
        assert!(Selector::everything().matches(&set(&[("x", "y")])));
        assert!(Selector::everything().is_empty());
        assert!(!Selector::nothing().matches(&set(&[])));
        assert!(!Selector::nothing().is_empty());
        assert!(Selector::from_set(&BTreeMap::new()).is_empty());
        let labels = set(&[("foo", "bar"), ("baz", "blah")]);
        assert!(Selector::from_set(&set(&[("foo", "bar"), ("baz", "blah")])).matches(&labels));
        assert!(!Selector::from_set(&set(&[("foo", "=blah")])).matches(&labels));
        assert!(Selector::one_term_equal("x", "y").matches(&set(&[("x", "y")])));
        assert!(!Selector::one_term_equal("x", "y").matches(&set(&[("x", "z")])));
        assert!(Selector::one_term_not_equal("x", "y").matches(&set(&[("x", "z")])));
        let both = Selector::and_all([
            Selector::one_term_equal("a", "b"),
            Selector::one_term_not_equal("c", "d"),
        ]);
        assert_eq!(both.to_string(), "a=b,c!=d");
        assert!(
            Selector::and_all([Selector::one_term_equal("a", "b"), Selector::nothing()])
                .matches_nothing()
        );
        assert!(Selector::and_all([]).is_empty());
        let by_name = Selector::parse("spec.nodeName=n1")
            .expect("valid")
            .and(Selector::one_term_equal("metadata.name", "web"));
        assert_eq!(by_name.to_string(), "spec.nodeName=n1,metadata.name=web");
        assert_eq!(by_name.requires_exact_match("metadata.name"), Some("web"));
    }

    #[test]
    fn exact_match() {
        assert_eq!(Selector::everything().requires_exact_match("test"), None);
        assert_eq!(
            Selector::one_term_equal("a", "b").requires_exact_match("test"),
            None
        );
        assert_eq!(
            Selector::one_term_equal("test", "b").requires_exact_match("test"),
            Some("b")
        );
        assert_eq!(
            Selector::one_term_equal("test", "").requires_exact_match("test"),
            Some("")
        );
        assert_eq!(
            Selector::one_term_not_equal("test", "b").requires_exact_match("test"),
            None
        );
        assert_eq!(
            parse("test!=a,test=b").requires_exact_match("test"),
            Some("b")
        );
        assert_eq!(
            parse("metadata.name=web,metadata.namespace=ns")
                .requires_exact_match("metadata.namespace"),
            Some("ns")
        );
    }

    #[test]
    fn transform() {
        let identity =
            |f: &str, v: &str| Ok::<_, FieldSelectorError>((f.to_string(), v.to_string()));
        let s = Selector::parse_and_transform("", identity).expect("empty");
        assert!(s.is_empty());
        assert_eq!(
            Selector::parse_and_transform("a=b,c=d", identity)
                .expect("no-op")
                .to_string(),
            "a=b,c=d"
        );
        let one = |f: &str, v: &str| {
            Ok::<_, FieldSelectorError>(if f == "a" {
                ("e".into(), "f".into())
            } else {
                (f.into(), v.into())
            })
        };
        assert_eq!(
            Selector::parse_and_transform("a=b,c=d", one)
                .expect("one")
                .to_string(),
            "e=f,c=d"
        );
        let drop_all =
            |_: &str, _: &str| Ok::<_, FieldSelectorError>((String::new(), String::new()));
        let s = Selector::parse_and_transform("a=b", drop_all).expect("drop");
        assert!(s.is_empty());
        assert_eq!(s.to_string(), "");
        let drop_c = |f: &str, v: &str| {
            Ok::<_, FieldSelectorError>(if f == "c" {
                (String::new(), String::new())
            } else {
                (f.into(), v.into())
            })
        };
        assert_eq!(
            Selector::parse_and_transform("a=b,c=d,e=f", drop_c)
                .expect("drop c")
                .to_string(),
            "a=b,e=f"
        );
        let err = Selector::parse_and_transform("spec.foo=x", default_meta_field_conversion)
            .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            r#""spec.foo" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        let err = Selector::parse_and_transform("a=b,", default_meta_field_conversion)
            .expect_err("unknown");
        assert_eq!(err, FieldSelectorError::UnknownMetaField("a".to_string()));
        let err =
            Selector::parse_and_transform("x", default_meta_field_conversion).expect_err("syntax");
        assert_eq!(
            err.to_string(),
            "invalid selector: 'x'; can't understand 'x'"
        );
    }

    #[test]
    fn field_names_and_support() {
        let s = parse("spec.nodeName=a,metadata.name=b,spec.nodeName!=c");
        assert_eq!(s.fields(), ["metadata.name", "spec.nodeName"]);
        assert_eq!(
            s.check_supported(&["metadata.name", "spec.nodeName"]),
            Ok(())
        );
        let err = s
            .check_supported(&["metadata.name"])
            .expect_err("unsupported");
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
        assert_eq!(
            field_label_not_supported("x"),
            "field label not supported: x"
        );
    }
}
