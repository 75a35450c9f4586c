//! Name, label, annotation and object-metadata validation as upstream's
//! `k8s.io/apimachinery/pkg/util/validation`, `pkg/api/validation` (ObjectMeta),
//! `pkg/api/validation/path` and `pkg/apis/meta/v1/validation` do it.
//!
//! The message texts are part of the API: clients and people read them in `Invalid`
//! errors, so they are reproduced byte for byte, including upstream's oddities (the
//! double space in `RegexError`'s example list, `maskTrailingDash` dropping two
//! characters).
//!
//! Deliberate deviations, because `field::FieldError` carries its bad value as JSON:
//! a bad value that upstream prints with Go's `%#v` (a slice or a struct) is printed as
//! JSON here, and timestamps are printed in Go's `time.Time.String()` layout but quoted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use rand::Rng;
use regex::Regex;
use serde_json::{Map, Value};

use crate::field::{ErrorList, FieldError, Path};

// ---------------------------------------------------------------------------------------
// Message builders (upstream's MaxLenError, RegexError, EmptyError, InclusiveRangeError).
// ---------------------------------------------------------------------------------------

/// `must be no more than N characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `RegexError`, including its `'a',  or 'b', ` example spacing.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push('\'');
        s.push_str(example);
        s.push_str("', ");
    }
    s.push_str("regex used for validation is '");
    s.push_str(fmt);
    s.push_str("')");
    s
}

/// `must be non-empty`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Go's `strconv.Quote`: how upstream renders strings in messages with `%q`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string`, used where upstream formats a slice into a detail string.
pub fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// An approximation of Go's `unicode.IsPrint`: letters, marks, numbers, punctuation,
/// symbols and the ASCII space. Rust has no general-category table in std, so the
/// non-printing format characters are listed.
fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{61c}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fffe}'
        | '\u{ffff}')
}

fn anchored(fmt: &str) -> Regex {
    // The formats are compile-time constants; a failure here is a programming error
    // caught by every test in this module.
    Regex::new(&format!("^(?:{fmt})$")).expect("validation regex must compile")
}

// ---------------------------------------------------------------------------------------
// Qualified names and label values.
// ---------------------------------------------------------------------------------------

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Longest allowed name part of a qualified name.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));

/// A "qualified name" (label keys, annotation keys, finalizers): an optional DNS-1123
/// subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
/// Longest allowed label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));

/// A label value: empty, or a qualified-name-like word of at most 63 characters.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------
// DNS names.
// ---------------------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
/// Longest allowed DNS-1123 label.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));

const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
/// Longest allowed DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));

const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
/// Longest allowed DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));

const WILDCARD_DNS1123_SUBDOMAIN_FMT: &str =
    "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const WILDCARD_DNS1123_SUBDOMAIN_ERR_MSG: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character";
static WILDCARD_DNS1123_SUBDOMAIN_RE: LazyLock<Regex> =
    LazyLock::new(|| anchored(WILDCARD_DNS1123_SUBDOMAIN_FMT));

/// An RFC 1123 label (namespace names, many object names): at most 63 characters.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(value) {
        if DNS1123_SUBDOMAIN_RE.is_match(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// An RFC 1123 subdomain (most object names): at most 253 characters.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// An RFC 1035 label (Service names): starts with a letter, at most 63 characters.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// A wildcard DNS subdomain such as `*.example.com`.
pub fn is_wildcard_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !WILDCARD_DNS1123_SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            WILDCARD_DNS1123_SUBDOMAIN_ERR_MSG,
            WILDCARD_DNS1123_SUBDOMAIN_FMT,
            &["*.example.com"],
        ));
    }
    errs
}

/// A DNS subdomain of at least three labels (e.g. CRD group names).
pub fn is_fully_qualified_name(path: &Path, name: &str) -> ErrorList {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, name, errs.join(","))];
    }
    if name.split('.').count() < 3 {
        return vec![FieldError::invalid(
            path,
            name,
            "should be a domain with at least three segments separated by dots",
        )];
    }
    Vec::new()
}

/// A domain name of at least two labels; a trailing dot is allowed.
pub fn is_fully_qualified_domain_name(path: &Path, name: &str) -> ErrorList {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, name, errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let errs = is_dns1123_label(label);
        if !errs.is_empty() {
            return vec![FieldError::invalid(path, label, errs.join(","))];
        }
    }
    Vec::new()
}

const HTTP_PATH_FMT: &str = r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+";
static HTTP_PATH_RE: LazyLock<Regex> = LazyLock::new(|| anchored(HTTP_PATH_FMT));

/// A domain-prefixed path such as `acme.io/foo`.
pub fn is_domain_prefixed_path(path: &Path, dp_path: &str) -> ErrorList {
    if dp_path.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let Some((host, rest)) = dp_path
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        return vec![FieldError::invalid(
            path,
            dp_path,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )];
    };
    let mut errs: ErrorList = is_dns1123_subdomain(host)
        .into_iter()
        .map(|m| FieldError::invalid(path, host, m))
        .collect();
    if !HTTP_PATH_RE.is_match(rest) {
        errs.push(FieldError::invalid(
            path,
            rest,
            regex_error("Invalid path", HTTP_PATH_FMT, &[]),
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Identifiers, ports, keys.
// ---------------------------------------------------------------------------------------

const C_IDENTIFIER_FMT: &str = "[A-Za-z_][A-Za-z0-9_]*";
const C_IDENTIFIER_ERR_MSG: &str =
    "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'";
static C_IDENTIFIER_RE: LazyLock<Regex> = LazyLock::new(|| anchored(C_IDENTIFIER_FMT));

/// A C identifier; the length is not checked.
pub fn is_c_identifier(value: &str) -> Vec<String> {
    if C_IDENTIFIER_RE.is_match(value) {
        Vec::new()
    } else {
        vec![regex_error(
            C_IDENTIFIER_ERR_MSG,
            C_IDENTIFIER_FMT,
            &["my_name", "MY_NAME", "MyName"],
        )]
    }
}

/// A non-zero TCP/UDP port number.
pub fn is_valid_port_num(port: impl Into<i64>) -> Vec<String> {
    let port: i64 = port.into();
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// `value` within `[min, max]`.
pub fn is_in_range(value: i64, min: i64, max: i64) -> Vec<String> {
    if (min..=max).contains(&value) {
        Vec::new()
    } else {
        vec![inclusive_range_error(min, max)]
    }
}

/// A Linux group ID (0 to 2^31-1).
pub fn is_valid_group_id(gid: i64) -> Vec<String> {
    is_in_range(gid, 0, i64::from(i32::MAX))
}

/// A Linux user ID (0 to 2^31-1).
pub fn is_valid_user_id(uid: i64) -> Vec<String> {
    is_in_range(uid, 0, i64::from(i32::MAX))
}

/// An IANA_SVC_NAME: at most 15 characters, `[-a-z0-9]`, at least one letter, no `--`,
/// no leading or trailing hyphen.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

const PERCENT_FMT: &str = "[0-9]+%";
const PERCENT_ERR_MSG: &str =
    "a valid percent string must be a numeric string followed by an ending '%'";
static PERCENT_RE: LazyLock<Regex> = LazyLock::new(|| anchored(PERCENT_FMT));

/// A percentage such as `25%`.
pub fn is_valid_percent(percent: &str) -> Vec<String> {
    if PERCENT_RE.is_match(percent) {
        Vec::new()
    } else {
        vec![regex_error(PERCENT_ERR_MSG, PERCENT_FMT, &["1%", "93%"])]
    }
}

const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_NAME_ERR_MSG: &str =
    "a valid HTTP header must consist of alphanumeric characters or '-'";
static HTTP_HEADER_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(HTTP_HEADER_NAME_FMT));

/// An HTTP header name.
pub fn is_http_header_name(value: &str) -> Vec<String> {
    if HTTP_HEADER_NAME_RE.is_match(value) {
        Vec::new()
    } else {
        vec![regex_error(
            HTTP_HEADER_NAME_ERR_MSG,
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        )]
    }
}

const ENV_VAR_NAME_FMT: &str = "[-._a-zA-Z][-._a-zA-Z0-9]*";
const ENV_VAR_NAME_ERR_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit";
const RELAXED_ENV_VAR_NAME_ERR_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
static ENV_VAR_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(ENV_VAR_NAME_FMT));

/// An environment variable name (container `env[].name`).
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if !ENV_VAR_NAME_RE.is_match(value) {
        errs.push(regex_error(
            ENV_VAR_NAME_ERR_MSG,
            ENV_VAR_NAME_FMT,
            &["my.env-name", "MY_ENV.NAME", "MyEnvName1"],
        ));
    }
    errs.extend(has_ch_dir_prefix(value));
    errs
}

/// An environment variable name under the RelaxedEnvironmentVariableValidation gate.
pub fn is_relaxed_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push(format!("environment variable name {}", empty_error()));
    }
    if value.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
        errs.push(RELAXED_ENV_VAR_NAME_ERR_MSG.to_string());
    }
    errs
}

const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
static CONFIG_MAP_KEY_RE: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));

/// A key of a ConfigMap or Secret: it becomes a file name, hence the `.`/`..` rules.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !CONFIG_MAP_KEY_RE.is_match(value) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    errs.extend(has_ch_dir_prefix(value));
    errs
}

fn has_ch_dir_prefix(value: &str) -> Vec<String> {
    if value == "." {
        vec!["must not be '.'".to_string()]
    } else if value == ".." {
        vec!["must not be '..'".to_string()]
    } else if value.starts_with("..") {
        vec!["must not start with '..'".to_string()]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------
// IP addresses and CIDRs (upstream's ip.go, parsing like k8s.io/utils/net's forked
// pre-Go-1.17 parser, which accepts leading zeros, then checking strictly like net/netip).
// ---------------------------------------------------------------------------------------

/// An IP address as Go's `net.IP` holds it: IPv4 addresses are IPv4-mapped IPv6.
type GoIp = [u8; 16];

const BIG: u32 = 0xFF_FFFF;

/// Decimal digits at the start of `s`: (value, consumed) or None on none/overflow.
fn dtoi(s: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        n = n * 10 + u32::from(s[i] - b'0');
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

fn xtoi(s: &[u8]) -> Option<(u32, usize)> {
    let mut n: u32 = 0;
    let mut i = 0;
    while i < s.len() {
        let d = match s[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => break,
        };
        n = n * 16 + u32::from(d);
        if n >= BIG {
            return None;
        }
        i += 1;
    }
    (i > 0).then_some((n, i))
}

fn v4_in_v6(p: [u8; 4]) -> GoIp {
    let mut ip = [0u8; 16];
    ip[10] = 0xff;
    ip[11] = 0xff;
    ip[12..].copy_from_slice(&p);
    ip
}

fn parse_ipv4_sloppy(mut s: &[u8]) -> Option<GoIp> {
    let mut p = [0u8; 4];
    for (i, octet) in p.iter_mut().enumerate() {
        if s.is_empty() {
            return None;
        }
        if i > 0 {
            if s[0] != b'.' {
                return None;
            }
            s = &s[1..];
        }
        let (n, c) = dtoi(s)?;
        *octet = u8::try_from(n).ok()?;
        s = &s[c..];
    }
    s.is_empty().then(|| v4_in_v6(p))
}

fn parse_ipv6_sloppy(mut s: &[u8]) -> Option<GoIp> {
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.len() >= 2 && s[0] == b':' && s[1] == b':' {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Some(ip);
        }
    }
    let mut i = 0;
    while i < 16 {
        let (n, c) = xtoi(s)?;
        if n > 0xFFFF {
            return None;
        }
        if c < s.len() && s[c] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return None;
            }
            if i + 4 > 16 {
                return None;
            }
            let ip4 = parse_ipv4_sloppy(s)?;
            ip[i..i + 4].copy_from_slice(&ip4[12..]);
            s = &[];
            i += 4;
            break;
        }
        ip[i] = (n >> 8) as u8;
        ip[i + 1] = n as u8;
        i += 2;
        s = &s[c..];
        if s.is_empty() {
            break;
        }
        if s[0] != b':' || s.len() == 1 {
            return None;
        }
        s = &s[1..];
        if s[0] == b':' {
            if ellipsis.is_some() {
                return None;
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return None;
    }
    if i < 16 {
        let e = ellipsis?;
        let n = 16 - i;
        for j in (e..i).rev() {
            ip[j + n] = ip[j];
        }
        for b in ip.iter_mut().skip(e).take(n) {
            *b = 0;
        }
    } else if ellipsis.is_some() {
        return None;
    }
    Some(ip)
}

fn parse_ip_sloppy(s: &str) -> Option<GoIp> {
    for b in s.bytes() {
        match b {
            b'.' => return parse_ipv4_sloppy(s.as_bytes()),
            b':' => return parse_ipv6_sloppy(s.as_bytes()),
            _ => {}
        }
    }
    None
}

fn is_v4_mapped(ip: &GoIp) -> bool {
    ip[..10].iter().all(|&b| b == 0) && ip[10] == 0xff && ip[11] == 0xff
}

/// Go's `net.IP.String()`.
fn go_ip_string(ip: &GoIp) -> String {
    if is_v4_mapped(ip) {
        return format!("{}.{}.{}.{}", ip[12], ip[13], ip[14], ip[15]);
    }
    std::net::Ipv6Addr::from(*ip).to_string()
}

/// Whether an address that the sloppy parser accepted is also accepted by Go's strict
/// `netip.ParseAddr`: no leading zeros in IPv4 octets and at most four hex digits per
/// IPv6 group.
fn strict_addr_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i] != b'.' && bytes[i] != b':' {
            i += 1;
        }
        let field = &bytes[start..i];
        let next = bytes.get(i).copied();
        let prev = start.checked_sub(1).map(|p| bytes[p]);
        let dotted = next == Some(b'.') || prev == Some(b'.');
        if dotted {
            if field.len() > 1 && field[0] == b'0' {
                return false;
            }
        } else if field.len() > 4 {
            return false;
        }
        i += 1;
    }
    true
}

fn parse_ip_field(path: &Path, value: &str, strict: bool) -> (Option<GoIp>, ErrorList) {
    let Some(ip) = parse_ip_sloppy(value) else {
        return (
            None,
            vec![FieldError::invalid(
                path,
                value,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )],
        );
    };
    let mut errs = Vec::new();
    if strict {
        if !strict_addr_ok(value) {
            errs.push(FieldError::invalid(path, value, "must not have leading 0s"));
        } else if value.contains(':') && is_v4_mapped(&ip) {
            errs.push(FieldError::invalid(
                path,
                value,
                "must not be an IPv4-mapped IPv6 address",
            ));
        }
    }
    (Some(ip), errs)
}

/// An IP address in a field that has always been validated strictly: no leading zeros,
/// no IPv4-mapped IPv6, canonical form.
pub fn is_valid_ip(path: &Path, value: &str) -> ErrorList {
    let (ip, mut errs) = parse_ip_field(path, value, true);
    if !errs.is_empty() {
        return errs;
    }
    if let Some(ip) = ip {
        let canonical = go_ip_string(&ip);
        if value != canonical {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("must be in canonical form ({})", go_quote(&canonical)),
            ));
        }
    }
    errs
}

/// An IP address in a field that historically accepted leading zeros; `strict` is the
/// StrictIPCIDRValidation gate, and values already stored in the old object stay valid.
pub fn is_valid_ip_for_legacy_field(
    path: &Path,
    value: &str,
    strict: bool,
    valid_old_ips: &[String],
) -> ErrorList {
    if valid_old_ips.iter().any(|v| v == value) {
        return Vec::new();
    }
    parse_ip_field(path, value, strict).1
}

struct GoIpNet {
    /// The masked address; IPv4 networks hold it IPv4-mapped, and so print dotted, as Go.
    ip: GoIp,
    ones: u32,
}

impl GoIpNet {
    /// Go's `net.IPNet.String()` for the canonical masks `ParseCIDR` produces.
    fn go_string(&self) -> String {
        format!("{}/{}", go_ip_string(&self.ip), self.ones)
    }
}

fn parse_cidr_sloppy(s: &str) -> Option<GoIpNet> {
    let (addr, mask) = s.split_once('/')?;
    let (mut ip, len) = match parse_ipv4_sloppy(addr.as_bytes()) {
        Some(ip) => (ip, 4),
        None => (parse_ipv6_sloppy(addr.as_bytes())?, 16),
    };
    let (n, consumed) = dtoi(mask.as_bytes())?;
    if consumed != mask.len() || n as usize > 8 * len {
        return None;
    }
    // Apply the mask to the address bits that the prefix length covers.
    let offset = if len == 4 { 12 } else { 0 };
    for (bit_index, byte) in ip[offset..].iter_mut().enumerate() {
        let covered = n.saturating_sub((bit_index * 8) as u32).min(8);
        let keep: u8 = if covered == 0 {
            0
        } else {
            0xffu8 << (8 - covered)
        };
        *byte &= keep;
    }
    Some(GoIpNet { ip, ones: n })
}

fn parse_cidr_field(path: &Path, value: &str, strict: bool) -> (Option<GoIpNet>, ErrorList) {
    let Some(net) = parse_cidr_sloppy(value) else {
        return (
            None,
            vec![FieldError::invalid(
                path,
                value,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            )],
        );
    };
    let mut errs = Vec::new();
    if strict {
        let (addr, bits) = value.rsplit_once('/').unwrap_or((value, ""));
        let bits_ok = bits.len() <= 1 || (b'1'..=b'9').contains(&bits.as_bytes()[0]);
        let addr_ip = parse_ip_sloppy(addr);
        if !bits_ok || !strict_addr_ok(addr) || addr_ip.is_none() {
            errs.push(FieldError::invalid(
                path,
                value,
                "must not have leading 0s in IP or prefix length",
            ));
        } else if addr.contains(':') && addr_ip.as_ref().is_some_and(is_v4_mapped) {
            errs.push(FieldError::invalid(
                path,
                value,
                "must not have an IPv4-mapped IPv6 address",
            ));
        } else if addr_ip.is_some_and(|ip| ip != net.ip) {
            errs.push(FieldError::invalid(
                path,
                value,
                "must not have bits set beyond the prefix length",
            ));
        }
    }
    (Some(net), errs)
}

/// A CIDR in a field that has always been validated strictly.
pub fn is_valid_cidr(path: &Path, value: &str) -> ErrorList {
    let (net, mut errs) = parse_cidr_field(path, value, true);
    if !errs.is_empty() {
        return errs;
    }
    if let Some(net) = net {
        let canonical = net.go_string();
        if value != canonical {
            errs.push(FieldError::invalid(
                path,
                value,
                format!("must be in canonical form ({})", go_quote(&canonical)),
            ));
        }
    }
    errs
}

/// A CIDR in a field that historically accepted leading zeros and host bits.
pub fn is_valid_cidr_for_legacy_field(
    path: &Path,
    value: &str,
    strict: bool,
    valid_old_cidrs: &[String],
) -> ErrorList {
    if valid_old_cidrs.iter().any(|v| v == value) {
        return Vec::new();
    }
    parse_cidr_field(path, value, strict).1
}

// ---------------------------------------------------------------------------------------
// Path segment names (upstream pkg/api/validation/path).
// ---------------------------------------------------------------------------------------

/// Names that can never be a path segment.
pub const NAME_MAY_NOT_BE: [&str; 2] = [".", ".."];
/// Substrings that can never be in a path segment.
pub const NAME_MAY_NOT_CONTAIN: [&str; 2] = ["/", "%"];

/// A name that is safe as one segment of a URL path.
pub fn is_valid_path_segment_name(name: &str) -> Vec<String> {
    if let Some(bad) = NAME_MAY_NOT_BE.iter().find(|bad| **bad == name) {
        return vec![format!("may not be '{bad}'")];
    }
    is_valid_path_segment_prefix(name)
}

/// A generateName prefix that is safe in a path segment.
pub fn is_valid_path_segment_prefix(name: &str) -> Vec<String> {
    NAME_MAY_NOT_CONTAIN
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// The rule of [`NameValidator::PathSegment`].
pub fn validate_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_valid_path_segment_prefix(name)
    } else {
        is_valid_path_segment_name(name)
    }
}

// ---------------------------------------------------------------------------------------
// Name validators (upstream pkg/api/validation/generic.go).
// ---------------------------------------------------------------------------------------

/// How a resource's names, and generateName prefixes, are validated: upstream's
/// per-resource `ValidateNameFunc`.
#[derive(Debug, Clone, Copy)]
pub enum NameValidator {
    /// DNS-1123 subdomains: the default of most resources.
    Dns1123Subdomain,
    /// DNS-1123 labels (Namespaces).
    Dns1123Label,
    /// DNS-1035 labels (Services).
    Dns1035Label,
    /// Anything usable as a URL path segment (RBAC objects, Nodes).
    PathSegment,
    /// Any other rule: (name, is generateName prefix) to messages.
    Custom(fn(&str, bool) -> Vec<String>),
}

impl NameValidator {
    /// The messages for `name`, or for a generateName prefix when `prefix` is true.
    pub fn validate(&self, name: &str, prefix: bool) -> Vec<String> {
        match self {
            NameValidator::Dns1123Subdomain => name_is_dns_subdomain(name, prefix),
            NameValidator::Dns1123Label => name_is_dns_label(name, prefix),
            NameValidator::Dns1035Label => name_is_dns1035_label(name, prefix),
            NameValidator::PathSegment => validate_path_segment_name(name, prefix),
            NameValidator::Custom(f) => f(name, prefix),
        }
    }
}

/// A generateName may end in `-`, which the name rules forbid; upstream replaces the
/// last two characters by `a` before validating (it slices off two, not one).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let mut cut = name.len() - 2;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}a", &name[..cut])
    } else {
        name.to_string()
    }
}

/// The default: names are DNS-1123 subdomains.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// Names that are DNS-1123 labels (namespaces, ...).
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// Names that are DNS-1035 labels (Services).
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// Namespace names are DNS-1123 labels.
pub fn validate_namespace_name(name: &str, prefix: bool) -> Vec<String> {
    name_is_dns_label(name, prefix)
}

/// ServiceAccount names are DNS-1123 subdomains.
pub fn validate_service_account_name(name: &str, prefix: bool) -> Vec<String> {
    name_is_dns_subdomain(name, prefix)
}

// ---------------------------------------------------------------------------------------
// Object metadata (upstream pkg/api/validation/objectmeta.go).
// ---------------------------------------------------------------------------------------

/// The detail of an error on an immutable field.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
/// The detail of an error on a negative number that must not be.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
/// Total size of all annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_B: usize = 256 * (1 << 10);
/// Longest fieldManager.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// Longest managedFields subresource.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;
/// The finalizer that orphans dependents.
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
/// The finalizer of foreground deletion.
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// A label key.
pub fn validate_label_name(label_name: &str, path: &Path) -> ErrorList {
    is_qualified_name(label_name)
        .into_iter()
        .map(|m| FieldError::invalid(path, label_name, m))
        .collect()
}

/// Label keys and values.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (k, v) in labels {
        errs.extend(validate_label_name(k, path));
        errs.extend(
            is_valid_label_value(v)
                .into_iter()
                .map(|m| FieldError::invalid(path, v.as_str(), m)),
        );
    }
    errs
}

/// Annotation keys (qualified names, compared in lower case) and their total size.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for k in annotations.keys() {
        errs.extend(
            is_qualified_name(&k.to_lowercase())
                .into_iter()
                .map(|m| FieldError::invalid(path, k.as_str(), m)),
        );
    }
    if validate_annotations_size(annotations).is_err() {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_B));
    }
    errs
}

/// The total size of annotations, or upstream's error text when over the limit.
pub fn validate_annotations_size(annotations: &BTreeMap<String, String>) -> Result<(), String> {
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B {
        return Err(format!(
            "annotations size {total} is larger than limit {TOTAL_ANNOTATION_SIZE_LIMIT_B}"
        ));
    }
    Ok(())
}

/// Upstream's `schema.FromAPIVersionAndKind`: (group, version, kind).
fn gvk_from_api_version_and_kind(api_version: &str, kind: &str) -> (String, String, String) {
    if api_version.is_empty() || api_version == "/" {
        return (String::new(), String::new(), kind.to_string());
    }
    match api_version.matches('/').count() {
        0 => (String::new(), api_version.to_string(), kind.to_string()),
        1 => {
            let (g, v) = api_version.split_once('/').unwrap_or_default();
            (g.to_string(), v.to_string(), kind.to_string())
        }
        _ => (String::new(), String::new(), kind.to_string()),
    }
}

fn owner_reference_value(r: &OwnerReference) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn validate_owner_reference(r: &OwnerReference, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let (group, version, kind) = gvk_from_api_version_and_kind(&r.api_version, &r.kind);
    if version.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("apiVersion"),
            r.api_version.as_str(),
            "version must not be empty",
        ));
    }
    if kind.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("kind"),
            r.kind.as_str(),
            "kind must not be empty",
        ));
    }
    if r.name.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("name"),
            r.name.as_str(),
            "name must not be empty",
        ));
    }
    if r.uid.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("uid"),
            r.uid.as_str(),
            "uid must not be empty",
        ));
    }
    // Events may not own anything: upstream's BannedOwners.
    if group.is_empty() && version == "v1" && kind == "Event" {
        errs.push(FieldError::invalid(
            path,
            owner_reference_value(r),
            format!("{group}/{version}, Kind={kind} is disallowed from being an owner"),
        ));
    }
    errs
}

/// Owner references: each complete, and at most one controller.
pub fn validate_owner_references(refs: &[OwnerReference], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        errs.extend(validate_owner_reference(r, path));
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    Value::Array(refs.iter().map(owner_reference_value).collect()),
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// A finalizer name is a qualified name.
pub fn validate_finalizer_name(name: &str, path: &Path) -> ErrorList {
    is_qualified_name(name)
        .into_iter()
        .map(|m| FieldError::invalid(path, name, m))
        .collect()
}

/// Finalizer names, and not both `orphan` and `foregroundDeletion`.
pub fn validate_finalizers(finalizers: &[String], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for f in finalizers {
        errs.extend(validate_finalizer_name(f, path));
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN_DEPENDENTS) && has(FINALIZER_DELETE_DEPENDENTS) {
        errs.push(FieldError::invalid(
            path,
            Value::from(finalizers.to_vec()),
            format!("finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"),
        ));
    }
    errs
}

/// Once an object is being deleted, finalizers may only be removed.
pub fn validate_no_new_finalizers(new: &[String], old: &[String], path: &Path) -> ErrorList {
    let old: BTreeSet<&String> = old.iter().collect();
    let extra: Vec<String> = new
        .iter()
        .filter(|f| !old.contains(f))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if extra.is_empty() {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        path,
        format!(
            "no new finalizers can be added if the object is being deleted, found new finalizers {}",
            go_string_slice(&extra)
        ),
    )]
}

/// `field is immutable` when the values differ; `new_value` is what the message shows.
pub fn validate_immutable_field<T: PartialEq>(
    new: &T,
    old: &T,
    new_value: impl Into<Value>,
    path: &Path,
) -> ErrorList {
    if new == old {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            path,
            new_value,
            FIELD_IMMUTABLE_ERROR_MSG,
        )]
    }
}

/// `must be greater than or equal to 0`.
pub fn validate_nonnegative_field(value: i64, path: &Path) -> ErrorList {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE_ERROR_MSG)]
    } else {
        Vec::new()
    }
}

/// A field manager: at most 128 bytes, printable characters only.
pub fn validate_field_manager(field_manager: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if field_manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(path, FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in field_manager.char_indices() {
        if !go_is_print(c) {
            errs.push(FieldError::invalid(
                path,
                field_manager,
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// managedFields entries: operation, fieldsType, manager and subresource.
pub fn validate_managed_fields(entries: &[ManagedFieldsEntry], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let p = path.index(i);
        let operation = entry.operation.as_deref().unwrap_or_default();
        if operation != "Apply" && operation != "Update" {
            errs.push(FieldError::invalid(
                &p.child("operation"),
                operation,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = entry.fields_type.as_deref().unwrap_or_default();
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(
                &p.child("fieldsType"),
                fields_type,
                "must be `FieldsV1`",
            ));
        }
        errs.extend(validate_field_manager(
            entry.manager.as_deref().unwrap_or_default(),
            &p.child("manager"),
        ));
        if entry.subresource.as_deref().unwrap_or_default().len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(FieldError::too_long(
                &p.child("subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH,
            ));
        }
    }
    errs
}

/// Upstream's `ValidateObjectMeta`: name (or generateName), namespace presence, labels,
/// annotations, owner references, finalizers and managedFields.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    requires_namespace: bool,
    name_fn: NameValidator,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        for msg in name_fn.validate(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_fn.validate(name, false) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if requires_namespace {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in validate_namespace_name(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    errs.extend(validate_nonnegative_field(
        meta.generation.unwrap_or_default(),
        &path.child("generation"),
    ));
    errs.extend(validate_common_meta(meta, path));
    errs.extend(validate_finalizers(
        meta.finalizers.as_deref().unwrap_or_default(),
        &path.child("finalizers"),
    ));
    errs.extend(validate_managed_fields(
        meta.managed_fields.as_deref().unwrap_or_default(),
        &path.child("managedFields"),
    ));
    errs
}

fn validate_common_meta(meta: &ObjectMeta, path: &Path) -> ErrorList {
    let empty = BTreeMap::new();
    let mut errs = validate_labels(
        meta.labels.as_ref().unwrap_or(&empty),
        &path.child("labels"),
    );
    errs.extend(validate_annotations(
        meta.annotations.as_ref().unwrap_or(&empty),
        &path.child("annotations"),
    ));
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    errs
}

/// Go's `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn go_time_string(t: Option<&Time>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".to_string();
    };
    let mut s = t.0.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.0.subsec_nanosecond();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push_str(" +0000 UTC");
    s
}

/// Upstream's `ValidateObjectMetaUpdate`: identity fields are immutable, the
/// resourceVersion is required, generation never decreases, and a terminating object
/// gains no finalizers.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if old.deletion_timestamp.is_some() {
        errs.extend(validate_no_new_finalizers(
            new.finalizers.as_deref().unwrap_or_default(),
            old.finalizers.as_deref().unwrap_or_default(),
            &path.child("finalizers"),
        ));
    }
    let resource_version = new.resource_version.as_deref().unwrap_or_default();
    if resource_version.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("resourceVersion"),
            resource_version,
            "must be specified for an update",
        ));
    }
    let (new_gen, old_gen) = (
        new.generation.unwrap_or_default(),
        old.generation.unwrap_or_default(),
    );
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            new_gen,
            "must not be decremented",
        ));
    }
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    errs.extend(validate_immutable_field(
        &s(&new.name),
        &s(&old.name),
        s(&new.name),
        &path.child("name"),
    ));
    errs.extend(validate_immutable_field(
        &s(&new.namespace),
        &s(&old.namespace),
        s(&new.namespace),
        &path.child("namespace"),
    ));
    errs.extend(validate_immutable_field(
        &s(&new.uid),
        &s(&old.uid),
        s(&new.uid),
        &path.child("uid"),
    ));
    errs.extend(validate_immutable_field(
        &new.creation_timestamp,
        &old.creation_timestamp,
        go_time_string(new.creation_timestamp.as_ref()),
        &path.child("creationTimestamp"),
    ));
    let deletion_value = match &new.deletion_timestamp {
        Some(t) => Value::from(go_time_string(Some(t))),
        None => Value::Null,
    };
    errs.extend(validate_immutable_field(
        &new.deletion_timestamp,
        &old.deletion_timestamp,
        deletion_value,
        &path.child("deletionTimestamp"),
    ));
    errs.extend(validate_immutable_field(
        &new.deletion_grace_period_seconds,
        &old.deletion_grace_period_seconds,
        new.deletion_grace_period_seconds
            .map_or(Value::Null, Value::from),
        &path.child("deletionGracePeriodSeconds"),
    ));
    errs.extend(validate_common_meta(new, path));
    errs.extend(validate_managed_fields(
        new.managed_fields.as_deref().unwrap_or_default(),
        &path.child("managedFields"),
    ));
    errs
}

/// [`validate_object_meta_update`] of metadata held as JSON maps (absent means empty).
pub fn validate_object_meta_update_json(
    new: Option<&Map<String, Value>>,
    old: Option<&Map<String, Value>>,
    path: &Path,
) -> ErrorList {
    let decode = |m: Option<&Map<String, Value>>| match m {
        Some(m) => serde_json::from_value::<ObjectMeta>(Value::Object(m.clone())),
        None => Ok(ObjectMeta::default()),
    };
    match (decode(new), decode(old)) {
        (Ok(new), Ok(old)) => validate_object_meta_update(&new, &old, path),
        (Err(e), _) | (_, Err(e)) => vec![FieldError::invalid(path, Value::Null, e.to_string())],
    }
}

// ---------------------------------------------------------------------------------------
// Label selectors (upstream pkg/apis/meta/v1/validation).
// ---------------------------------------------------------------------------------------

/// Options of [`validate_label_selector`], as upstream's `LabelSelectorValidationOptions`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LabelSelectorValidationOptions {
    /// Tolerate label values that are not valid label values (for old stored objects).
    pub allow_invalid_label_value_in_selector: bool,
    /// Tolerate operators this version does not know.
    pub allow_unknown_operator_in_requirement: bool,
}

/// A `metav1.LabelSelector` in an object (e.g. a Deployment's `spec.selector`).
pub fn validate_label_selector(
    selector: Option<&LabelSelector>,
    opts: LabelSelectorValidationOptions,
    path: &Path,
) -> ErrorList {
    let Some(selector) = selector else {
        return Vec::new();
    };
    let mut errs = validate_labels(
        selector.match_labels.as_ref().unwrap_or(&BTreeMap::new()),
        &path.child("matchLabels"),
    );
    for (i, expr) in selector
        .match_expressions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        errs.extend(validate_label_selector_requirement(
            expr,
            opts,
            &path.child("matchExpressions").index(i),
        ));
    }
    errs
}

/// One matchExpressions entry.
pub fn validate_label_selector_requirement(
    req: &LabelSelectorRequirement,
    opts: LabelSelectorValidationOptions,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let values = req.values.as_deref().unwrap_or_default();
    match req.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        op => {
            if !opts.allow_unknown_operator_in_requirement {
                errs.push(FieldError::invalid(
                    &path.child("operator"),
                    op,
                    "not a valid selector operator",
                ));
            }
        }
    }
    errs.extend(validate_label_name(&req.key, &path.child("key")));
    if !opts.allow_invalid_label_value_in_selector {
        for (i, v) in values.iter().enumerate() {
            for msg in is_valid_label_value(v) {
                errs.push(FieldError::invalid(
                    &path.child("values").index(i),
                    v.as_str(),
                    msg,
                ));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Names generated from generateName (upstream apiserver pkg/storage/names).
// ---------------------------------------------------------------------------------------

/// Length of the random suffix appended to a generateName.
pub const GENERATED_NAME_RANDOM_LENGTH: usize = 5;
/// Longest base kept from a generateName, so that base + suffix fit in 63 characters.
pub const MAX_GENERATED_NAME_LENGTH: usize = 63 - GENERATED_NAME_RANDOM_LENGTH;
/// Upstream's `utilrand` alphabet: no vowels (no words), no confusable characters.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `base` (cut to 58 bytes) followed by five random characters, as upstream's
/// `SimpleNameGenerator` makes names from `metadata.generateName`.
pub fn simple_name_generator(base: &str) -> String {
    let mut cut = base.len().min(MAX_GENERATED_NAME_LENGTH);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rng = rand::rng();
    let mut name = String::with_capacity(cut + GENERATED_NAME_RANDOM_LENGTH);
    name.push_str(&base[..cut]);
    for _ in 0..GENERATED_NAME_RANDOM_LENGTH {
        name.push(char::from(
            NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())],
        ));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    #[test]
    fn dns1123_label() {
        for good in [
            "a",
            "ab",
            "abc",
            "a1",
            "a-1",
            "a--1--2--b",
            "0",
            "01",
            "012",
            "1a",
            "1-a",
            "1--a--b--2",
            &"a".repeat(63),
        ] {
            assert!(is_dns1123_label(good).is_empty(), "{good}");
        }
        for bad in [
            "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_",
            "_a", "a_b", "1_", "_1", "1_2", ".",
        ] {
            assert_eq!(is_dns1123_label(bad), vec![LABEL_MSG.to_string()], "{bad}");
        }
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn dns1123_subdomain() {
        for good in [
            "a",
            "a.b.c.d.e",
            "aa.bb.cc",
            "a1.a2",
            "11.22",
            "0.1",
            "a-1.b-2",
            &"a".repeat(253),
        ] {
            assert!(is_dns1123_subdomain(good).is_empty(), "{good}");
        }
        for bad in [
            "", "A", "aBc", "a.B", "-", "a-", "-a", "a..b", ".a", "a.", "a_b", "a@b", "a,b", "a b",
        ] {
            assert_eq!(
                is_dns1123_subdomain(bad),
                vec![SUBDOMAIN_MSG.to_string()],
                "{bad}"
            );
        }
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
    }

    #[test]
    fn dns1035_label() {
        assert!(is_dns1035_label("my-name").is_empty());
        assert_eq!(
            is_dns1035_label("1abc"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        );
    }

    #[test]
    fn qualified_names() {
        for good in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "now-with-dashes/simple",
            "now-with-dashes/now-with-dashes",
            "now.with.dots/simple",
            "now-with.dashes-and.dots/simple",
            "1-num.2-num/3-num",
            "1234/5678",
            "1.2.3.4/5678",
            "Uppercase_Is_OK_123",
            "example.com/Uppercase_Is_OK_123",
            "requests.storage-foo",
            &"a".repeat(63),
            &format!("{}/{}", "a".repeat(253), "b".repeat(63)),
        ] {
            assert!(is_qualified_name(good).is_empty(), "{good}");
        }
        assert_eq!(is_qualified_name("nospecialchars%^=@"), vec![NAME_PART_MSG]);
        assert_eq!(is_qualified_name("-"), vec![NAME_PART_MSG]);
        assert_eq!(
            is_qualified_name(""),
            vec![
                "name part must be non-empty".to_string(),
                NAME_PART_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("/simple"),
            vec!["prefix part must be non-empty"]
        );
        assert_eq!(
            is_qualified_name("example.com/"),
            vec![
                "name part must be non-empty".to_string(),
                NAME_PART_MSG.to_string()
            ]
        );
        assert_eq!(
            is_qualified_name("Example.com/simple"),
            vec![format!("prefix part {SUBDOMAIN_MSG}")]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
        );
    }

    #[test]
    fn label_values() {
        for good in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "end-with-num-1",
            "1234",
            "",
            "Uppercase_Is_OK_123",
            &"a".repeat(63),
        ] {
            assert!(is_valid_label_value(good).is_empty(), "{good}");
        }
        let regex_msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        for bad in [
            "nospecialchars%^=@",
            "Tama-nui-te-rā",
            "\u{2603}",
            "-",
            "a b",
            "a/b",
        ] {
            assert_eq!(is_valid_label_value(bad), vec![regex_msg], "{bad}");
        }
        assert_eq!(
            is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn c_identifiers_and_env_vars() {
        assert!(is_c_identifier("_my_name1").is_empty());
        assert_eq!(
            is_c_identifier("1abc"),
            vec!["a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')"]
        );
        for good in [
            "A", "ABC", "AbC_123", "_123", "a.b", "a-b", "-abc", "..a", "KEY.1",
        ] {
            if good == "..a" {
                assert_eq!(is_env_var_name(good), vec!["must not start with '..'"]);
                continue;
            }
            assert!(is_env_var_name(good).is_empty(), "{good}");
        }
        assert_eq!(
            is_env_var_name("1ABC"),
            vec!["a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"]
        );
        assert_eq!(is_env_var_name(".").len(), 1);
        assert!(is_relaxed_env_var_name("1 a!").is_empty());
        assert_eq!(
            is_relaxed_env_var_name("a=b"),
            vec!["a valid environment variable name must consist only of printable ASCII characters other than '='"]
        );
        assert_eq!(
            is_relaxed_env_var_name(""),
            vec!["environment variable name must be non-empty"]
        );
    }

    #[test]
    fn config_map_keys_and_percent() {
        assert!(is_config_map_key("key.name").is_empty());
        assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
        assert_eq!(is_config_map_key("."), vec!["must not be '.'"]);
        assert_eq!(is_config_map_key("..a"), vec!["must not start with '..'"]);
        assert_eq!(
            is_config_map_key("a/b"),
            vec!["a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]
        );
        assert!(is_valid_percent("93%").is_empty());
        assert_eq!(
            is_valid_percent("93"),
            vec!["a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"]
        );
    }

    #[test]
    fn ports() {
        assert!(is_valid_port_num(1).is_empty());
        assert!(is_valid_port_num(65535).is_empty());
        assert_eq!(
            is_valid_port_num(0),
            vec!["must be between 1 and 65535, inclusive"]
        );
        assert_eq!(
            is_valid_port_num(65536),
            vec!["must be between 1 and 65535, inclusive"]
        );
        for good in [
            "telnet",
            "re-mail-ck",
            "pop3",
            "a",
            "a-1",
            "1-a",
            "a-1-b-2-c",
            "1-a-2-b-3",
        ] {
            assert!(is_valid_port_name(good).is_empty(), "{good}");
        }
        assert_eq!(
            is_valid_port_name("longerthan15characters"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(
            is_valid_port_name(""),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)"
            ]
        );
        assert_eq!(
            is_valid_port_name("12345"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            is_valid_port_name("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(
            is_valid_port_name("-ab"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(
            is_valid_port_name("Abc"),
            vec!["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
        );
        assert!(is_valid_group_id(0).is_empty());
        assert_eq!(
            is_valid_user_id(-1),
            vec!["must be between 0 and 2147483647, inclusive"]
        );
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ips() {
        let p = Path::new("ip");
        for good in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::1",
            "2001:db8::ffff",
            "fe80::1:2",
        ] {
            assert!(is_valid_ip(&p, good).is_empty(), "{good}");
        }
        assert_eq!(
            messages(&is_valid_ip(&p, "1.2.3")),
            vec![
                r#"ip: Invalid value: "1.2.3": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
            ]
        );
        for bad in [
            "",
            "a",
            "256.0.0.1",
            "1.2.3.4.5",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "fe80::1%eth0",
            " 1.2.3.4",
        ] {
            assert_eq!(is_valid_ip(&p, bad).len(), 1, "{bad}");
        }
        assert_eq!(
            messages(&is_valid_ip(&p, "010.2.3.4")),
            vec![r#"ip: Invalid value: "010.2.3.4": must not have leading 0s"#]
        );
        assert_eq!(
            messages(&is_valid_ip(&p, "00001::1")),
            vec![r#"ip: Invalid value: "00001::1": must not have leading 0s"#]
        );
        assert_eq!(
            messages(&is_valid_ip(&p, "::ffff:1.2.3.4")),
            vec![r#"ip: Invalid value: "::ffff:1.2.3.4": must not be an IPv4-mapped IPv6 address"#]
        );
        assert_eq!(
            messages(&is_valid_ip(&p, "2001:DB8::1")),
            vec![r#"ip: Invalid value: "2001:DB8::1": must be in canonical form ("2001:db8::1")"#]
        );
        assert_eq!(
            messages(&is_valid_ip(&p, "2001:db8:0:0:0:0:0:1")),
            vec![
                r#"ip: Invalid value: "2001:db8:0:0:0:0:0:1": must be in canonical form ("2001:db8::1")"#
            ]
        );
        assert_eq!(
            messages(&is_valid_ip(&p, "::1.2.3.4")),
            vec![r#"ip: Invalid value: "::1.2.3.4": must be in canonical form ("::102:304")"#]
        );
        assert!(is_valid_ip_for_legacy_field(&p, "010.2.3.4", false, &[]).is_empty());
        assert_eq!(
            is_valid_ip_for_legacy_field(&p, "010.2.3.4", true, &[]).len(),
            1
        );
        assert!(
            is_valid_ip_for_legacy_field(&p, "010.2.3.4", true, &["010.2.3.4".to_string()])
                .is_empty()
        );
    }

    #[test]
    fn cidrs() {
        let p = Path::new("cidr");
        for good in [
            "1.2.3.0/24",
            "0.0.0.0/0",
            "1.2.3.4/32",
            "::/0",
            "2001:db8::/64",
            "2001:db8::1/128",
        ] {
            assert!(is_valid_cidr(&p, good).is_empty(), "{good}");
        }
        assert_eq!(
            messages(&is_valid_cidr(&p, "1.2.3.4")),
            vec![
                r#"cidr: Invalid value: "1.2.3.4": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"#
            ]
        );
        for bad in ["1.2.3.0/33", "1.2.3.0/", "1.2.3.0/a", "::/129", "1.2.3/24"] {
            assert_eq!(is_valid_cidr(&p, bad).len(), 1, "{bad}");
        }
        assert_eq!(
            messages(&is_valid_cidr(&p, "1.2.3.4/24")),
            vec![
                r#"cidr: Invalid value: "1.2.3.4/24": must not have bits set beyond the prefix length"#
            ]
        );
        assert_eq!(
            messages(&is_valid_cidr(&p, "1.2.3.0/024")),
            vec![
                r#"cidr: Invalid value: "1.2.3.0/024": must not have leading 0s in IP or prefix length"#
            ]
        );
        assert_eq!(
            messages(&is_valid_cidr(&p, "01.2.3.0/24")),
            vec![
                r#"cidr: Invalid value: "01.2.3.0/24": must not have leading 0s in IP or prefix length"#
            ]
        );
        assert_eq!(
            messages(&is_valid_cidr(&p, "::ffff:1.2.3.0/120")),
            vec![
                r#"cidr: Invalid value: "::ffff:1.2.3.0/120": must not have an IPv4-mapped IPv6 address"#
            ]
        );
        assert_eq!(
            messages(&is_valid_cidr(&p, "2001:DB8::/64")),
            vec![
                r#"cidr: Invalid value: "2001:DB8::/64": must be in canonical form ("2001:db8::/64")"#
            ]
        );
        assert!(is_valid_cidr_for_legacy_field(&p, "1.2.3.4/24", false, &[]).is_empty());
        assert_eq!(
            is_valid_cidr_for_legacy_field(&p, "1.2.3.4/24", true, &[]).len(),
            1
        );
    }

    #[test]
    fn domain_names() {
        let p = Path::new("spec").child("group");
        assert!(is_fully_qualified_name(&p, "a.b.c").is_empty());
        assert_eq!(
            messages(&is_fully_qualified_name(&p, "a.b")),
            vec![
                r#"spec.group: Invalid value: "a.b": should be a domain with at least three segments separated by dots"#
            ]
        );
        assert_eq!(
            messages(&is_fully_qualified_name(&p, "")),
            vec!["spec.group: Required value"]
        );
        assert!(is_fully_qualified_domain_name(&p, "example.com.").is_empty());
        assert!(is_domain_prefixed_path(&p, "acme.io/foo").is_empty());
        assert_eq!(
            messages(&is_domain_prefixed_path(&p, "acme.io")),
            vec![
                r#"spec.group: Invalid value: "acme.io": must be a domain-prefixed path (such as "acme.io/foo")"#
            ]
        );
        assert!(is_wildcard_dns1123_subdomain("*.example.com").is_empty());
        assert_eq!(is_wildcard_dns1123_subdomain("example.com").len(), 1);
    }

    #[test]
    fn path_segment_names() {
        assert!(is_valid_path_segment_name("a:b").is_empty());
        assert_eq!(is_valid_path_segment_name("."), vec!["may not be '.'"]);
        assert_eq!(is_valid_path_segment_name(".."), vec!["may not be '..'"]);
        assert_eq!(
            is_valid_path_segment_name("a/b%c"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert!(validate_path_segment_name("..", true).is_empty());
        assert_eq!(
            validate_path_segment_name("a/", true),
            vec!["may not contain '/'"]
        );
    }

    #[test]
    fn generate_name_masks_trailing_dash() {
        assert!(name_is_dns_subdomain("web-", true).is_empty());
        assert_eq!(name_is_dns_subdomain("web-", false), vec![SUBDOMAIN_MSG]);
        assert!(name_is_dns_label("web-", true).is_empty());
        assert_eq!(mask_trailing_dash("abc-"), "aba");
        assert_eq!(mask_trailing_dash("-"), "-");
        assert!(name_is_dns1035_label("svc-", true).is_empty());
    }

    fn meta(name: &str, namespace: &str) -> ObjectMeta {
        ObjectMeta {
            name: (!name.is_empty()).then(|| name.to_string()),
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn object_meta_names_and_namespaces() {
        let p = Path::new("metadata");
        assert!(validate_object_meta(
            &meta("web", "default"),
            true,
            NameValidator::Dns1123Subdomain,
            &p
        )
        .is_empty());
        assert_eq!(
            messages(&validate_object_meta(
                &meta("", "default"),
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("Web", "default"),
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec![format!(
                r#"metadata.name: Invalid value: "Web": {SUBDOMAIN_MSG}"#
            )]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("web", ""),
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.namespace: Required value"]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("web", "a.b"),
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec![r#"metadata.namespace: Invalid value: "a.b": must not contain dots"#]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("node-1", "default"),
                false,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &meta("a/b", ""),
                false,
                NameValidator::PathSegment,
                &p
            )),
            vec![r#"metadata.name: Invalid value: "a/b": may not contain '/'"#]
        );
        let mut m = meta("", "default");
        m.generate_name = Some("Web-".to_string());
        assert_eq!(
            messages(&validate_object_meta(
                &m,
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec![
                format!(r#"metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}"#),
                "metadata.name: Required value: name or generateName is required".to_string(),
            ]
        );
        let mut m = meta("web", "default");
        m.generation = Some(-1);
        assert_eq!(
            messages(&validate_object_meta(
                &m,
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.generation: Invalid value: -1: must be greater than or equal to 0"]
        );
    }

    #[test]
    fn object_meta_labels_annotations() {
        let p = Path::new("metadata");
        let mut m = meta("web", "default");
        m.labels = Some(BTreeMap::from([
            ("-bad".to_string(), "ok".to_string()),
            ("good".to_string(), "bad value".to_string()),
        ]));
        let msgs = messages(&validate_object_meta(
            &m,
            true,
            NameValidator::Dns1123Subdomain,
            &p,
        ));
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            format!(r#"metadata.labels: Invalid value: "-bad": {NAME_PART_MSG}"#)
        );
        assert!(
            msgs[1].starts_with(
                r#"metadata.labels: Invalid value: "bad value": a valid label must be"#
            ),
            "{}",
            msgs[1]
        );

        let mut m = meta("web", "default");
        m.annotations = Some(BTreeMap::from([(
            "Example.COM/Key".to_string(),
            "v".to_string(),
        )]));
        assert!(validate_object_meta(&m, true, NameValidator::Dns1123Subdomain, &p).is_empty());
        m.annotations = Some(BTreeMap::from([(
            "a".to_string(),
            "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B),
        )]));
        assert_eq!(
            messages(&validate_object_meta(
                &m,
                true,
                NameValidator::Dns1123Subdomain,
                &p
            )),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        m.annotations = Some(BTreeMap::from([(
            "a".to_string(),
            "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_B - 1),
        )]));
        assert!(validate_object_meta(&m, true, NameValidator::Dns1123Subdomain, &p).is_empty());
    }

    fn owner(
        api_version: &str,
        kind: &str,
        name: &str,
        uid: &str,
        controller: Option<bool>,
    ) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            controller,
            block_owner_deletion: None,
        }
    }

    #[test]
    fn owner_references_and_finalizers() {
        let p = Path::new("metadata").child("ownerReferences");
        assert!(validate_owner_references(
            &[owner("apps/v1", "ReplicaSet", "rs", "u1", Some(true))],
            &p
        )
        .is_empty());
        assert_eq!(
            messages(&validate_owner_references(
                &[owner("apps/", "", "", "", None)],
                &p
            )),
            vec![
                r#"metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty"#,
                r#"metadata.ownerReferences.kind: Invalid value: "": kind must not be empty"#,
                r#"metadata.ownerReferences.name: Invalid value: "": name must not be empty"#,
                r#"metadata.ownerReferences.uid: Invalid value: "": uid must not be empty"#,
            ]
        );
        let errs = validate_owner_references(&[owner("v1", "Event", "e", "u", None)], &p);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].detail,
            "/v1, Kind=Event is disallowed from being an owner"
        );
        let errs = validate_owner_references(
            &[
                owner("apps/v1", "ReplicaSet", "a", "1", Some(true)),
                owner("apps/v1", "ReplicaSet", "b", "2", Some(true)),
            ],
            &p,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].detail,
            r#"Only one reference can have Controller set to true. Found "true" in references for ReplicaSet/a and ReplicaSet/b"#
        );

        let fp = Path::new("metadata").child("finalizers");
        assert!(validate_finalizers(&["kubernetes.io/pvc-protection".to_string()], &fp).is_empty());
        let errs = validate_finalizers(
            &["orphan".to_string(), "foregroundDeletion".to_string()],
            &fp,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].detail,
            "finalizer orphan and foregroundDeletion cannot be both set"
        );
        assert_eq!(
            messages(&validate_no_new_finalizers(
                &["b".into(), "a".into(), "c".into()],
                &["c".into()],
                &fp
            )),
            vec![
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"a", "b"}"#
            ]
        );
    }

    #[test]
    fn object_meta_update() {
        let p = Path::new("metadata");
        let mut old = meta("web", "default");
        old.uid = Some("u1".to_string());
        old.resource_version = Some("5".to_string());
        old.generation = Some(2);
        let mut new = old.clone();
        assert!(validate_object_meta_update(&new, &old, &p).is_empty());

        new.name = Some("web2".to_string());
        new.namespace = Some("other".to_string());
        new.uid = Some("u2".to_string());
        new.generation = Some(1);
        new.resource_version = None;
        new.creation_timestamp = Some(Time("2024-01-02T03:04:05.5Z".parse().expect("timestamp")));
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &p)),
            vec![
                r#"metadata.resourceVersion: Invalid value: "": must be specified for an update"#,
                "metadata.generation: Invalid value: 1: must not be decremented",
                r#"metadata.name: Invalid value: "web2": field is immutable"#,
                r#"metadata.namespace: Invalid value: "other": field is immutable"#,
                r#"metadata.uid: Invalid value: "u2": field is immutable"#,
                r#"metadata.creationTimestamp: Invalid value: "2024-01-02 03:04:05.5 +0000 UTC": field is immutable"#,
            ]
        );

        let mut old = meta("web", "default");
        old.resource_version = Some("1".to_string());
        old.deletion_timestamp = Some(Time("2024-01-02T03:04:05Z".parse().expect("timestamp")));
        old.finalizers = Some(vec!["a".to_string()]);
        let mut new = old.clone();
        new.finalizers = Some(vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &p)),
            vec![
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"b"}"#
            ]
        );
        new.finalizers = None;
        assert!(validate_object_meta_update(&new, &old, &p).is_empty());
        new.deletion_grace_period_seconds = Some(30);
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &p)),
            vec!["metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable"]
        );
    }

    #[test]
    fn object_meta_update_from_json() {
        let p = Path::new("metadata");
        let old = serde_json::json!({"name": "web", "resourceVersion": "1", "uid": "a"});
        let new = serde_json::json!({"name": "web", "resourceVersion": "1", "uid": "b"});
        assert_eq!(
            messages(&validate_object_meta_update_json(
                new.as_object(),
                old.as_object(),
                &p
            )),
            vec![r#"metadata.uid: Invalid value: "b": field is immutable"#]
        );
        let bad = serde_json::json!({"name": 5});
        assert_eq!(
            validate_object_meta_update_json(bad.as_object(), old.as_object(), &p).len(),
            1
        );
        assert_eq!(
            messages(&validate_object_meta_update_json(None, None, &p)),
            vec![r#"metadata.resourceVersion: Invalid value: "": must be specified for an update"#]
        );
    }

    #[test]
    fn name_validators() {
        assert!(
            NameValidator::Dns1123Label.validate("a.b", false) == vec!["must not contain dots"]
        );
        assert!(NameValidator::Dns1035Label.validate("1a", false).len() == 1);
        assert!(NameValidator::PathSegment
            .validate("system:node:a", false)
            .is_empty());
        let custom = NameValidator::Custom(|name, _| {
            if name == "bad" {
                vec!["is bad".to_string()]
            } else {
                Vec::new()
            }
        });
        assert_eq!(custom.validate("bad", false), vec!["is bad"]);
        assert!(custom.validate("good", true).is_empty());
    }

    #[test]
    fn managed_fields() {
        let p = Path::new("metadata").child("managedFields");
        let good = ManagedFieldsEntry {
            manager: Some("kubectl".to_string()),
            operation: Some("Apply".to_string()),
            fields_type: Some("FieldsV1".to_string()),
            ..Default::default()
        };
        assert!(validate_managed_fields(std::slice::from_ref(&good), &p).is_empty());
        let bad = ManagedFieldsEntry {
            manager: Some("a\u{7}".to_string()),
            operation: Some("Patch".to_string()),
            fields_type: Some("FieldsV2".to_string()),
            ..Default::default()
        };
        assert_eq!(
            messages(&validate_managed_fields(&[good, bad], &p)),
            vec![
                r#"metadata.managedFields[1].operation: Invalid value: "Patch": must be `Apply` or `Update`"#,
                r#"metadata.managedFields[1].fieldsType: Invalid value: "FieldsV2": must be `FieldsV1`"#,
                r#"metadata.managedFields[1].manager: Invalid value: "a\u{7}": invalid character U+0007 (at position 1)"#,
            ]
        );
    }

    #[test]
    fn label_selector_validation() {
        let p = Path::new("spec").child("selector");
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "a".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "b".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["x".into()]),
                },
                LabelSelectorRequirement {
                    key: "c".into(),
                    operator: "Foo".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            messages(&validate_label_selector(Some(&sel), LabelSelectorValidationOptions::default(), &p)),
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                r#"spec.selector.matchExpressions[2].operator: Invalid value: "Foo": not a valid selector operator"#,
            ]
        );
        assert!(
            validate_label_selector(None, LabelSelectorValidationOptions::default(), &p).is_empty()
        );
    }

    #[test]
    fn generated_names() {
        let name = simple_name_generator("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name[4..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
        let long = "x".repeat(100);
        let name = simple_name_generator(&long);
        assert_eq!(name.len(), 63);
        assert!(is_dns1123_label(&name).is_empty());
        // 27^5 possible suffixes: two draws colliding would mean the randomness is broken.
        assert_ne!(simple_name_generator("a-"), simple_name_generator("a-"));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{7f}\u{200b}é"), r#""\n\t\x7f\u200bé""#);
        assert_eq!(
            go_string_slice(&["a".into(), "b".into()]),
            r#"[]string{"a", "b"}"#
        );
        assert_eq!(go_string_slice(&[]), "[]string{}");
    }
}
