//! Label selectors as upstream's `k8s.io/apimachinery/pkg/labels` parses, prints and
//! matches them (`app=web,tier in (fe,be),!canary,version>3`).
//!
//! The grammar, whitespace handling, canonical string form (requirements sorted by key,
//! set values sorted) and the error messages follow upstream, because clients send the
//! strings and people read the errors.
//!
//! One deliberate difference from Kubernetes 1.33: a value list with an empty element
//! before the closing parenthesis (`x in (a,,)`) parses, as it does since upstream fixed
//! the parser's double consumption of `,,`; 1.33 rejects it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::validation::{go_quote, go_string_slice, is_qualified_name, is_valid_label_value};

/// Anything labels can be looked up in.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// Upstream's `selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    DoesNotExist,
    Equals,
    DoubleEquals,
    In,
    NotEquals,
    NotIn,
    Exists,
    GreaterThan,
    LessThan,
}

impl Operator {
    /// The operator's name as upstream spells it (`in`, `!=`, `gt`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::DoesNotExist => "!",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::In => "in",
            Operator::NotEquals => "!=",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operators that take values, in the order upstream lists them in errors.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// Why a selector could not be built. The texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The string is not a selector (`found ',', expected: ...`, `unable to parse
    /// requirement: ...`).
    #[error("{0}")]
    Parse(String),
    /// A requirement is invalid: upstream's aggregated field errors.
    #[error("{0}")]
    InvalidRequirement(String),
    /// A `matchExpressions` operator that is not In, NotIn, Exists or DoesNotExist.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    UnknownOperator(String),
}

/// One condition of a selector: a key, an operator and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

/// Upstream prints a nil slice and an empty one differently in errors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ValuesOrigin {
    Nil,
    NonNil,
}

fn go_values(values: &[String], origin: ValuesOrigin) -> String {
    if values.is_empty() && origin == ValuesOrigin::Nil {
        "[]string(nil)".to_string()
    } else {
        go_string_slice(values)
    }
}

/// Upstream's `ErrorList.ToAggregate().Error()`: duplicates dropped, one error bare,
/// several in brackets.
fn aggregate(errors: Vec<String>) -> Option<String> {
    let mut seen = BTreeSet::new();
    let unique: Vec<String> = errors
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect();
    match unique.len() {
        0 => None,
        1 => unique.into_iter().next(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

/// The field error upstream's `validateLabelKey` returns, printed.
fn label_key_error(key: &str, path: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| {
        format!(
            "{path}: Invalid value: {}: {}",
            go_quote(key),
            errs.join("; ")
        )
    })
}

impl Requirement {
    /// A validated requirement (upstream's `NewRequirement`): In/NotIn need values,
    /// `=`/`==`/`!=` exactly one, Exists/DoesNotExist none, Gt/Lt one integer; the key
    /// must be a qualified name and every value a label value.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Self, SelectorError> {
        Self::validated(key.into(), operator, values, ValuesOrigin::NonNil)
            .map_err(SelectorError::InvalidRequirement)
    }

    fn validated(
        key: String,
        operator: Operator,
        values: Vec<String>,
        origin: ValuesOrigin,
    ) -> Result<Self, String> {
        let mut errs = Vec::new();
        if let Some(e) = label_key_error(&key, "key") {
            errs.push(e);
        }
        let invalid_values = |detail: &str| {
            format!(
                "values: Invalid value: {}: {detail}",
                go_values(&values, origin)
            )
        };
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_values(
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_values(
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_values(
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_values(
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    msgs.join("; ")
                ));
            }
        }
        match aggregate(errs) {
            Some(e) => Err(e),
            None => Ok(Requirement {
                key,
                operator,
                values,
            }),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values in the order given (sorted when parsed from a string).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    /// Whether `labels` satisfy this requirement. A missing key satisfies only NotIn,
    /// `!=` and DoesNotExist; Gt/Lt compare as 64-bit integers and fail on non-integers.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let value = labels.label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(actual), [wanted]) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.as_slice(),
                ) else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        if let [only] = self.values.as_slice() {
            f.write_str(only)?;
        } else {
            // Sorted on output only, so the in-memory order given by the caller is kept.
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A label selector: the AND of its requirements, or the selector that matches nothing
/// (what a nil `metav1.LabelSelector` means).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

fn sort_by_key(requirements: &mut [Requirement]) {
    // Stable, so requirements on one key keep the order they were written in.
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
}

impl Selector {
    /// Matches everything; prints as the empty string.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Matches nothing; prints as the empty string.
    pub fn nothing() -> Self {
        Selector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parse the string syntax (upstream's `labels.Parse`).
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(selector)
            .parse()
            .map_err(SelectorError::Parse)?;
        sort_by_key(&mut requirements);
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// A selector requiring every `key=value` of the set, without validating them
    /// (upstream's `SelectorFromSet`); an empty set selects everything.
    pub fn from_set(set: &BTreeMap<String, String>) -> Self {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![v.clone()],
            })
            .collect();
        Selector {
            requirements,
            nothing: false,
        }
    }

    /// Like [`Selector::from_set`], validating keys and values first.
    pub fn validated_from_set(set: &BTreeMap<String, String>) -> Result<Self, SelectorError> {
        let requirements = set
            .iter()
            .map(|(k, v)| Requirement::new(k.clone(), Operator::Equals, vec![v.clone()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector {
            requirements,
            nothing: false,
        })
    }

    /// Upstream's `metav1.LabelSelectorAsSelector` of a present selector: an empty
    /// one selects everything; matchLabels become `=` and matchExpressions In, NotIn,
    /// Exists or DoesNotExist requirements, each validated. See
    /// [`label_selector_as_selector`] for an optional one.
    pub fn from_label_selector(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let match_labels = selector.match_labels.as_ref();
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        if match_labels.is_none_or(BTreeMap::is_empty) && expressions.is_empty() {
            return Ok(Selector::everything());
        }
        let mut requirements = Vec::new();
        for (k, v) in match_labels.into_iter().flatten() {
            requirements.push(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
            )?);
        }
        for expr in expressions {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(SelectorError::UnknownOperator(other.to_string())),
            };
            let values = expr.values.clone().unwrap_or_default();
            // Upstream copies the values with append([]string(nil), ...), so no values
            // print as a nil slice in its errors.
            requirements.push(
                Requirement::validated(expr.key.clone(), operator, values, ValuesOrigin::Nil)
                    .map_err(SelectorError::InvalidRequirement)?,
            );
        }
        Ok(Selector::everything().add(requirements))
    }

    /// A copy with more requirements, re-sorted by key.
    pub fn add(&self, requirements: impl IntoIterator<Item = Requirement>) -> Self {
        if self.nothing {
            return self.clone();
        }
        let mut all = self.requirements.clone();
        all.extend(requirements);
        sort_by_key(&mut all);
        Selector {
            requirements: all,
            nothing: false,
        }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector does not restrict anything (selects everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for [`Selector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The single value the first requirement on `key` demands (`key=v`, `key==v` or
    /// `key in (v)`), which lets a caller use an index instead of a scan.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [only]) => Some(only),
            _ => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = SelectorError;

    fn try_from(selector: &LabelSelector) -> Result<Self, Self::Error> {
        Selector::from_label_selector(selector)
    }
}

/// Upstream's `metav1.LabelSelectorAsSelector`: an absent selector (`nil`) selects
/// nothing, unlike an empty one, which selects everything.
pub fn label_selector_as_selector(
    selector: Option<&LabelSelector>,
) -> Result<Selector, SelectorError> {
    match selector {
        Some(s) => Selector::from_label_selector(s),
        None => Ok(Selector::nothing()),
    }
}

/// Upstream's `labels.Set.String()`: `k=v` pairs sorted by key, joined by commas.
pub fn format_set(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream's `labels.FormatLabels`, as kubectl's LABELS column shows them: `<none>`
/// when there are none.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        "<none>".to_string()
    } else {
        format_set(labels)
    }
}

// ---------------------------------------------------------------------------------------
// Lexer and parser, a port of upstream's so that the same inputs fail in the same way.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// The next byte, or 0 at the end; upstream treats a NUL byte as the end too.
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Token, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special_symbol(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
        }
        let literal = String::from_utf8_lossy(&buffer).into_owned();
        (keyword(&buffer).unwrap_or(Token::Identifier), literal)
    }

    /// The longest operator made of special symbols (`!=` rather than `!`).
    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        let mut last: Option<(Token, usize)> = None;
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special_symbol(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
            if let Some(token) = keyword(&buffer) {
                last = Some((token, buffer.len()));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        // Every special symbol is a token on its own, so `last` is always set.
        let (token, len) = last.unwrap_or((Token::Identifier, buffer.len()));
        (token, String::from_utf8_lossy(&buffer[..len]).into_owned())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, index: usize, context: Context) -> (Token, String) {
        // The last item is always EndOfString, which the grammar never consumes past.
        let (token, literal) = self
            .items
            .get(index)
            .or(self.items.last())
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        let token = match (context, token) {
            // `in` and `notin` are ordinary words where values are expected.
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => token,
        };
        (token, literal)
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        self.item(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        self.position += 1;
        self.item(self.position - 1, context)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::validated(key, op, Vec::new(), ValuesOrigin::NonNil);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::validated(
            key,
            operator,
            values.into_iter().collect(),
            ValuesOrigin::NonNil,
        )
    }

    /// The key, and Exists/DoesNotExist when nothing but `,` or the end follows it.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        // Upstream validates the key here with a nil field path.
        if let Some(e) = label_key_error(&literal, "<nil>") {
            return Err(e);
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `( values )`; an empty list means the single empty value.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    // Upstream reports the token that opened the list, not the bad one.
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    /// Comma-separated, possibly empty, values up to (not including) `)`.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        values.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; nothing means the empty value.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (next, _) = self.lookahead(Context::Values);
        if next == Token::EndOfString || next == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> String {
        match Selector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed as {sel}"),
            Err(e) => e.to_string(),
        }
    }

    const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    #[test]
    fn good_strings_round_trip_without_spaces() {
        for s in [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "!x",
            "x>1",
            "x>1,z<5",
        ] {
            assert_eq!(parse(s).to_string(), s.replace(' ', ""), "{s:?}");
        }
    }

    #[test]
    fn deterministic_and_sorted() {
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
        assert_eq!(
            parse("z in (c,a,b),y notin (b,a),x").to_string(),
            "x,y notin (a,b),z in (a,b,c)"
        );
    }

    #[test]
    fn set_based_syntax() {
        let cases: &[(&str, &str)] = &[
            ("\rx", "x"),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                "this-is-a-dns.domain.com/key-with-dash",
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
            ),
            ("foo  in\t (abc)", "foo in (abc)"),
            ("x notin\n (abc)", "x notin (abc)"),
            ("x  notin\t\t\t(abc,def)", "x notin (abc,def)"),
            ("x in (abc,def)", "x in (abc,def)"),
            ("x in (abc,)", "x in (,abc)"),
            ("x in ()", "x in ()"),
            (
                "x notin (abc,,def),bar,z in (),w",
                "bar,w,x notin (,abc,def),z in ()",
            ),
            ("x,y in (a)", "x,y in (a)"),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x>1", "x>1"),
            ("x<7", "x<7"),
            ("x=a,y!=b,z in (h,i,j)", "x=a,y!=b,z in (h,i,j)"),
            ("x notin ( )", "x notin ()"),
            ("x notin (, a)", "x notin (,a)"),
            ("a ", "a"),
            ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
            ("notin=in", "notin=in"),
            ("x in (a,,)", "x in (,a)"),
        ];
        for (input, canonical) in cases {
            assert_eq!(parse(input).to_string(), *canonical, "{input:?}");
        }
        let s = parse("x notin (abc,,def)");
        let r = &s.requirements()[0];
        assert_eq!(r.values(), ["", "abc", "def"]);
        assert_eq!(r.operator(), Operator::NotIn);
    }

    #[test]
    fn bad_strings_fail_with_upstream_messages() {
        let cases: &[(&str, String)] = &[
            ("x=a||y=b", format!(r#"unable to parse requirement: values[0][x]: Invalid value: "a||y": {LABEL_VALUE_MSG}"#)),
            ("x==a==b", "found '==', expected: ',' or 'end of string'".to_string()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".to_string()),
            (
                "x<a",
                r#"unable to parse requirement: values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer"#
                    .to_string(),
            ),
            ("x,,y", "found ',', expected: identifier after ','".to_string()),
            (",x,y", "found ',', expected: !, identifier, or 'end of string'".to_string()),
            (
                "x nott in (y)",
                "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt".to_string(),
            ),
            ("a in (xyz),", "found '', expected: identifier after ','".to_string()),
            ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'".to_string()),
            ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'".to_string()),
            ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier".to_string()),
            ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt".to_string()),
            ("(", "found '(', expected: !, identifier, or 'end of string'".to_string()),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".to_string()),
            ("x in (a b", "unable to parse requirement: found 'b', expected: ',' or ')'".to_string()),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".to_string()),
            ("x in (a=)", "unable to parse requirement: found '=', expected: ',' or ')'".to_string()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".to_string()),
            ("x in (,=)", "unable to parse requirement: found '=', expected: ',', or identifier".to_string()),
            ("x=(", "unable to parse requirement: found '(', expected: identifier".to_string()),
            ("!", "unable to parse requirement: found '', expected: identifier".to_string()),
            ("!!x", "unable to parse requirement: found '!', expected: identifier".to_string()),
            ("-x=a", format!(r#"unable to parse requirement: <nil>: Invalid value: "-x": {NAME_PART_MSG}"#)),
            (
                "a/b/c",
                r#"unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#.to_string(),
            ),
            ("x=a b", "found 'b', expected: ',' or 'end of string'".to_string()),
        ];
        for (input, message) in cases {
            assert_eq!(parse_err(input), *message, "{input:?}");
        }
        let long = "a".repeat(64);
        assert_eq!(
            parse_err(&format!("x={long}")),
            format!(
                r#"unable to parse requirement: values[0][x]: Invalid value: "{long}": must be no more than 63 characters"#
            )
        );
    }

    #[test]
    fn matching() {
        let m = |s: &str, l: &[(&str, &str)]| parse(s).matches(&set(l));
        assert!(m("", &[("x", "y")]));
        assert!(m("x=y", &[("x", "y")]));
        assert!(m("x=y,z=w", &[("x", "y"), ("z", "w")]));
        assert!(m("x!=y,z!=w", &[("x", "z"), ("z", "a")]));
        assert!(m("notin=in", &[("notin", "in")]));
        assert!(m("x", &[("x", "z")]));
        assert!(m("!x", &[("y", "z")]));
        assert!(m("x>1", &[("x", "2")]));
        assert!(m("x<1", &[("x", "0")]));
        assert!(m("x<1", &[("x", "-5")]));
        assert!(!m("x=z", &[]));
        assert!(!m("x=y", &[("x", "z")]));
        assert!(!m("x=y,z=w", &[("x", "w"), ("z", "w")]));
        assert!(!m("x!=y,z!=w", &[("x", "z"), ("z", "w")]));
        assert!(!m("x", &[("y", "z")]));
        assert!(!m("!x", &[("x", "z")]));
        assert!(!m("x>1", &[("x", "0")]));
        assert!(!m("x<1", &[("x", "2")]));
        assert!(!m("x>1", &[("x", "v2")]));
        assert!(!m("x>1", &[]));
        assert!(m("x notin (a)", &[]));
        assert!(m("x in (a,b)", &[("x", "b")]));
        assert!(!m("x in ()", &[("y", "baz")]));
        assert!(m("x in ()", &[("x", "")]));
        assert!(m("x notin (),y", &[("y", "")]));
        assert!(!m("x notin (),!y", &[("y", "")]));
        let labels = set(&[("foo", "bar"), ("baz", "blah")]);
        assert!(parse("foo=bar,baz=blah").matches(&labels));
        assert!(!parse("foo=bar,foobar=bar,baz=blah").matches(&labels));
        let hashed: HashMap<String, String> = labels.clone().into_iter().collect();
        assert!(parse("foo in (bar)").matches(&hashed));
    }

    #[test]
    fn everything_and_nothing() {
        assert!(Selector::everything().matches(&set(&[("x", "y")])));
        assert!(Selector::everything().is_empty());
        assert_eq!(Selector::everything().to_string(), "");
        assert!(!Selector::nothing().matches(&set(&[])));
        assert!(!Selector::nothing().is_empty());
        assert!(Selector::nothing().matches_nothing());
        assert!(parse("").is_empty());
        assert!(!parse("a").is_empty());
        assert!(Selector::from_set(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn exact_match() {
        let s = parse("a=1,b==2,c in (3),d in (4,5),e!=6,a=7");
        assert_eq!(s.requires_exact_match("a"), Some("1"));
        assert_eq!(s.requires_exact_match("b"), Some("2"));
        assert_eq!(s.requires_exact_match("c"), Some("3"));
        assert_eq!(s.requires_exact_match("d"), None);
        assert_eq!(s.requires_exact_match("e"), None);
        assert_eq!(s.requires_exact_match("f"), None);
        assert_eq!(Selector::nothing().requires_exact_match("a"), None);
    }

    #[test]
    fn requirement_constructor() {
        let err = |k: &str, op, vals: &[&str]| {
            Requirement::new(k, op, vals.iter().map(|v| v.to_string()).collect())
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err("x1", Operator::In, &[]).as_deref(),
            Some("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty")
        );
        assert_eq!(err("x3", Operator::In, &["foo"]), None);
        assert_eq!(
            err("x5", Operator::Equals, &["bar", "foo"]).as_deref(),
            Some(
                r#"values: Invalid value: []string{"bar", "foo"}: exact-match compatibility requires one single value"#
            )
        );
        assert_eq!(err("x6", Operator::Exists, &[]), None);
        assert_eq!(
            err("x8", Operator::Exists, &["foo"]).as_deref(),
            Some(
                r#"values: Invalid value: []string{"foo"}: values set must be empty for exists and does not exist"#
            )
        );
        assert_eq!(err("x11", Operator::GreaterThan, &["1"]), None);
        assert_eq!(
            err("x13", Operator::GreaterThan, &[]).as_deref(),
            Some("values: Invalid value: []string{}: for 'Gt', 'Lt' operators, exactly one value is required")
        );
        assert_eq!(
            err("x14", Operator::GreaterThan, &["bar"]).as_deref(),
            Some(
                r#"values[0]: Invalid value: "bar": for 'Gt', 'Lt' operators, the value must be an integer"#
            )
        );
        let long_key = "a".repeat(254);
        assert_eq!(
            err(&long_key, Operator::Exists, &[]).as_deref(),
            Some(format!(r#"key: Invalid value: "{long_key}": name part must be no more than 63 characters"#).as_str())
        );
        assert_eq!(
            err("x17", Operator::Equals, &["a b"]).as_deref(),
            Some(format!(r#"values[0][x17]: Invalid value: "a b": {LABEL_VALUE_MSG}"#).as_str())
        );
        assert_eq!(
            err("-k", Operator::In, &[]).as_deref(),
            Some(
                format!(
                    r#"[key: Invalid value: "-k": {NAME_PART_MSG}, values: Invalid value: []string{{}}: for 'in', 'notin' operators, values set can't be empty]"#
                )
                .as_str()
            )
        );
    }

    #[test]
    fn to_string_of_built_selectors() {
        let r = |k: &str, op, vals: &[&str]| {
            Requirement::new(k, op, vals.iter().map(|v| v.to_string()).collect())
                .expect("valid requirement")
        };
        let s = Selector::everything().add([
            r("z", Operator::Exists, &[]),
            r("y", Operator::NotIn, &["jkl"]),
            r("x", Operator::In, &["def", "abc"]),
        ]);
        assert_eq!(s.to_string(), "x in (abc,def),y notin (jkl),z");
        assert_eq!(s.requirements()[0].values(), ["def", "abc"]);
        let s = Selector::everything().add([
            r("x", Operator::NotIn, &["abc", "def"]),
            r("y", Operator::NotEquals, &["jkl"]),
            r("z", Operator::DoesNotExist, &[]),
        ]);
        assert_eq!(s.to_string(), "x notin (abc,def),y!=jkl,!z");
        let s = Selector::everything().add([
            r("x", Operator::Equals, &["abc"]),
            r("y", Operator::DoubleEquals, &["jkl"]),
            r("z", Operator::NotEquals, &["a"]),
            r("z", Operator::Exists, &[]),
        ]);
        assert_eq!(s.to_string(), "x=abc,y==jkl,z!=a,z");
        assert_eq!(
            Selector::nothing().add([r("a", Operator::Exists, &[])]),
            Selector::nothing()
        );
    }

    #[test]
    fn from_sets() {
        let s = Selector::from_set(&set(&[("b", "2"), ("a", "1")]));
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(&set(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(Selector::validated_from_set(&set(&[("a", "b c")])).is_err());
        assert_eq!(format_set(&set(&[("b", "2"), ("a", "1")])), "a=1,b=2");
        assert_eq!(format_labels(&BTreeMap::new()), "<none>");
    }

    fn expr(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_string(),
            operator: op.to_string(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn from_label_selector() {
        assert!(label_selector_as_selector(None)
            .expect("nil")
            .matches_nothing());
        assert!(label_selector_as_selector(Some(&LabelSelector::default()))
            .expect("empty")
            .is_empty());
        let ls = LabelSelector {
            match_labels: Some(set(&[("app", "web"), ("tier", "fe")])),
            match_expressions: Some(vec![
                expr("env", "In", Some(&["prod", "dev"])),
                expr("canary", "DoesNotExist", None),
                expr("zone", "NotIn", Some(&["a"])),
                expr("owner", "Exists", Some(&[])),
            ]),
        };
        let s = Selector::try_from(&ls).expect("valid");
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (dev,prod),owner,tier=fe,zone notin (a)"
        );
        assert!(s.matches(&set(&[
            ("app", "web"),
            ("tier", "fe"),
            ("env", "prod"),
            ("owner", "me")
        ])));
        assert!(!s.matches(&set(&[("app", "web"), ("tier", "fe"), ("env", "prod")])));

        let bad = |e: LabelSelectorRequirement| {
            Selector::try_from(&LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![e]),
            })
            .expect_err("invalid")
            .to_string()
        };
        assert_eq!(
            bad(expr("a", "In", None)),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad(expr("a", "NotIn", Some(&[]))),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            bad(expr("a", "Exists", Some(&["x"]))),
            r#"values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist"#
        );
        assert_eq!(
            bad(expr("a", "Gt", Some(&["1"]))),
            r#""Gt" is not a valid label selector operator"#
        );
        let e = Selector::try_from(&LabelSelector {
            match_labels: Some(set(&[("-a", "b")])),
            match_expressions: None,
        })
        .expect_err("bad key");
        assert_eq!(
            e.to_string(),
            format!(r#"key: Invalid value: "-a": {NAME_PART_MSG}"#)
        );
    }
}
