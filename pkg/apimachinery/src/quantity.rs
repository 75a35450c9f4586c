//! Resource quantities (`100m`, `1Gi`, `1.5`, `2e3`) as upstream's
//! `k8s.io/apimachinery/pkg/api/resource.Quantity` parses, compares, adds and prints
//! them.
//!
//! A quantity is an exact decimal `mantissa × 10^exponent` held in an `i128` and an
//! exponent; parsing rounds up (away from zero) to nano units as upstream does, so
//! comparisons and sums are exact. Upstream keeps unbounded big decimals; here values
//! with more than 38 significant digits are rounded away from zero at the 38th digit,
//! which no real request or capacity comes near.
//!
//! Printing follows upstream's `Quantity.String()`: the string a quantity was parsed
//! from is kept when upstream keeps it (`100m`, `1Gi`, `1e3`), and otherwise the
//! canonical form is produced (`0.5` → `500m`, `1024Mi` → `1Gi`, `2000` → `2k`).
//!
//! Deliberate differences from Kubernetes 1.33:
//! - A DecimalSI value beyond the `E` suffix (10^21 and up) or a BinarySI value beyond
//!   `Ei` prints in exponent form (`1e21`) instead of losing its magnitude (`1`), as
//!   upstream does since it fixed that bug.
//! - [`Quantity::value`] and friends saturate at `i64::MIN`/`i64::MAX` where upstream
//!   returns 0 or a wrapped number.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression upstream names in its parse error.
pub const SPLIT_RE: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Why a string is not a quantity. The texts are upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

/// How a quantity prints, remembered from the suffix it was parsed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`.
    DecimalExponent,
    /// `12Mi` (12 × 2^20).
    BinarySI,
    /// `12M` (12 × 10^6).
    DecimalSI,
}

/// The largest BinarySI quantity a string can produce: upstream caps at int64's max.
const MAX_ALLOWED: i128 = i64::MAX as i128;
/// Parsed quantities are rounded up to nano units.
const NANO: i64 = -9;
/// Largest `k` with 10^k representable in u128.
const MAX_POW10: u32 = 38;
/// Upstream's `MaxMilliValue`: the largest value whose milli value fits an int64.
pub const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// A fixed-point number with a preferred printing format.
#[derive(Debug, Clone)]
pub struct Quantity {
    mantissa: i128,
    exponent: i64,
    format: Format,
    /// The text it was parsed from, when upstream prints that instead of the canonical
    /// form; cleared by any change of value.
    original: Option<String>,
}

fn pow10(k: u32) -> Option<u128> {
    10u128.checked_pow(k)
}

/// `m / 10^k`, rounded away from zero.
fn div_pow10_round_up(m: i128, k: u64) -> (i128, bool) {
    if m == 0 {
        return (0, true);
    }
    let Some(divisor) = u32::try_from(k)
        .ok()
        .filter(|k| *k <= MAX_POW10)
        .and_then(pow10)
    else {
        // |m| < 10^39 <= divisor: less than one unit, which rounds up to one.
        return (m.signum(), false);
    };
    let magnitude = m.unsigned_abs();
    let (q, r) = (magnitude / divisor, magnitude % divisor);
    let q = if r == 0 { q } else { q + 1 };
    // q <= |m|, so it fits back into i128.
    let q = i128::try_from(q).unwrap_or(i128::MAX);
    (if m < 0 { -q } else { q }, r == 0)
}

/// `m * 10^k` when it fits.
fn mul_pow10(m: i128, k: u64) -> Option<i128> {
    if m == 0 {
        return Some(0);
    }
    let factor = i128::try_from(pow10(u32::try_from(k).ok()?)?).ok()?;
    m.checked_mul(factor)
}

/// Bring `m × 10^e` to exponent `target >= e` (rounding away from zero).
fn rescale_up(m: i128, e: i64, target: i64) -> i128 {
    div_pow10_round_up(m, target.abs_diff(e)).0
}

/// Exact comparison of `m1 × 10^e1` and `m2 × 10^e2`.
fn cmp_values(m1: i128, e1: i64, m2: i128, e2: i64) -> Ordering {
    let (s1, s2) = (m1.signum(), m2.signum());
    if s1 != s2 || s1 == 0 {
        return s1.cmp(&s2);
    }
    let (a, b) = (m1.unsigned_abs(), m2.unsigned_abs());
    let scale = |x: u128, k: u64| {
        u32::try_from(k)
            .ok()
            .filter(|k| *k <= MAX_POW10)
            .and_then(pow10)
            .and_then(|p| x.checked_mul(p))
    };
    let magnitude = if e1 >= e2 {
        // A magnitude that overflows u128 exceeds any i128.
        scale(a, e1.abs_diff(e2)).map_or(Ordering::Greater, |a| a.cmp(&b))
    } else {
        scale(b, e2.abs_diff(e1)).map_or(Ordering::Less, |b| a.cmp(&b))
    };
    if s1 < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

/// `m1 × 10^e1 + m2 × 10^e2`, exact unless the operands span more than 38 digits.
fn add_values(m1: i128, e1: i64, m2: i128, e2: i64) -> (i128, i64) {
    if m2 == 0 {
        return (m1, e1);
    }
    if m1 == 0 {
        return (m2, e2);
    }
    let mut e = e1.min(e2);
    loop {
        let a = if e1 >= e {
            mul_pow10(m1, e1.abs_diff(e))
        } else {
            Some(rescale_up(m1, e1, e))
        };
        let b = if e2 >= e {
            mul_pow10(m2, e2.abs_diff(e))
        } else {
            Some(rescale_up(m2, e2, e))
        };
        if let Some(sum) = a.zip(b).and_then(|(a, b)| a.checked_add(b)) {
            return (sum, e);
        }
        // Give up the least significant digit and retry.
        e += 1;
    }
}

/// Digits (with an implied exponent) into a mantissa; digits beyond what an i128 holds
/// are dropped, rounding away from zero.
fn mantissa_from_digits(digits: &str, mut exponent: i64) -> (i128, i64) {
    let mut m: i128 = 0;
    let mut dropped_nonzero = false;
    for d in digits.bytes() {
        let digit = i128::from(d - b'0');
        match m.checked_mul(10).and_then(|x| x.checked_add(digit)) {
            Some(next) => m = next,
            None => {
                exponent += 1;
                dropped_nonzero |= digit != 0;
            }
        }
    }
    if dropped_nonzero {
        m += 1;
    }
    (m, exponent)
}

/// The parts of a quantity string, as upstream's `parseQuantityString` splits it.
struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

fn parse_quantity_string(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: &s[num_start..],
            denom: "",
            suffix: "",
        });
    }
    let num = if pos == num_start {
        "0"
    } else {
        &s[num_start..pos]
    };
    let mut denom = "";
    if b[pos] == b'.' {
        pos += 1;
        let denom_start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[denom_start..pos];
        if pos >= end {
            return Ok(Parts {
                positive,
                num,
                denom,
                suffix: "",
            });
        }
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num,
            denom,
            suffix: &s[suffix_start..],
        });
    }
    Err(QuantityError::FormatWrong)
}

/// (base, exponent, format) of a suffix.
fn interpret_suffix(suffix: &str) -> Option<(u32, i64, Format)> {
    let (base, exponent, format) = match suffix {
        "" => (10, 0, Format::DecimalSI),
        "n" => (10, -9, Format::DecimalSI),
        "u" => (10, -6, Format::DecimalSI),
        "m" => (10, -3, Format::DecimalSI),
        "k" => (10, 3, Format::DecimalSI),
        "M" => (10, 6, Format::DecimalSI),
        "G" => (10, 9, Format::DecimalSI),
        "T" => (10, 12, Format::DecimalSI),
        "P" => (10, 15, Format::DecimalSI),
        "E" => (10, 18, Format::DecimalSI),
        "Ki" => (2, 10, Format::BinarySI),
        "Mi" => (2, 20, Format::BinarySI),
        "Gi" => (2, 30, Format::BinarySI),
        "Ti" => (2, 40, Format::BinarySI),
        "Pi" => (2, 50, Format::BinarySI),
        "Ei" => (2, 60, Format::BinarySI),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            let parsed: i64 = s[1..].parse().ok()?;
            // Upstream narrows the exponent to int32 the same way.
            (10, i64::from(parsed as i32), Format::DecimalExponent)
        }
        _ => return None,
    };
    Some((base, exponent, format))
}

const DECIMAL_SUFFIXES: [(i64, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

impl Quantity {
    /// Parse upstream's syntax (`ParseQuantity`).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::FormatWrong);
        }
        if s == "0" {
            return Ok(Quantity {
                mantissa: 0,
                exponent: 0,
                format: Format::DecimalSI,
                original: Some(s.to_string()),
            });
        }
        let parts = parse_quantity_string(s)?;
        let (base, exponent, mut format) =
            interpret_suffix(parts.suffix).ok_or(QuantityError::Suffix)?;
        let keep_original = keeps_original(&parts, base, exponent, format);

        let denom_len = i64::try_from(parts.denom.len()).unwrap_or(i64::MAX);
        let digits = format!("{}{}", parts.num, parts.denom);
        let (mut m, mut e) = mantissa_from_digits(&digits, -denom_len);
        if base == 10 {
            e += exponent;
        } else {
            let factor = 1i128 << exponent;
            loop {
                if let Some(product) = m.checked_mul(factor) {
                    m = product;
                    break;
                }
                (m, _) = div_pow10_round_up(m, 1);
                e += 1;
            }
        }
        if e < NANO {
            (m, _) = div_pow10_round_up(m, e.abs_diff(NANO));
            e = NANO;
        }
        if format == Format::BinarySI && cmp_values(m, e, MAX_ALLOWED, 0) == Ordering::Greater {
            (m, e) = (MAX_ALLOWED, 0);
        }
        if format == Format::BinarySI && m != 0 && cmp_values(m, e, 1, 0) == Ordering::Less {
            format = Format::DecimalSI;
        }
        if !parts.positive {
            m = -m;
        }
        Ok(Quantity {
            mantissa: m,
            exponent: e,
            format,
            original: keep_original.then(|| s.to_string()),
        })
    }

    /// `value` units (upstream's `NewQuantity`).
    pub fn new(value: i64, format: Format) -> Self {
        Quantity::from_parts(i128::from(value), 0, format)
    }

    /// `value` thousandths (upstream's `NewMilliQuantity`).
    pub fn new_milli(value: i64, format: Format) -> Self {
        Quantity::from_parts(i128::from(value), -3, format)
    }

    /// `value × 10^scale`, DecimalSI (upstream's `NewScaledQuantity`).
    pub fn new_scaled(value: i64, scale: i32) -> Self {
        Quantity::from_parts(i128::from(value), i64::from(scale), Format::DecimalSI)
    }

    /// `mantissa × 10^exponent`.
    pub fn from_parts(mantissa: i128, exponent: i64, format: Format) -> Self {
        Quantity {
            mantissa,
            exponent,
            format,
            original: None,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Change how the quantity prints.
    pub fn set_format(&mut self, format: Format) {
        self.format = format;
        self.original = None;
    }

    /// The same value printed in `format`.
    pub fn with_format(mut self, format: Format) -> Self {
        self.set_format(format);
        self
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// -1, 0 or 1.
    pub fn sign(&self) -> i32 {
        self.mantissa.signum() as i32
    }

    /// Exact comparison of the values, whatever their formats.
    pub fn cmp_value(&self, other: &Quantity) -> Ordering {
        cmp_values(self.mantissa, self.exponent, other.mantissa, other.exponent)
    }

    /// Exact comparison with an integer.
    pub fn cmp_i64(&self, other: i64) -> Ordering {
        cmp_values(self.mantissa, self.exponent, i128::from(other), 0)
    }

    /// Add `other`; a zero quantity takes `other`'s format, as upstream.
    pub fn add(&mut self, other: &Quantity) {
        self.original = None;
        if self.is_zero() {
            self.format = other.format;
        }
        (self.mantissa, self.exponent) =
            add_values(self.mantissa, self.exponent, other.mantissa, other.exponent);
    }

    /// Subtract `other`; a zero quantity takes `other`'s format, as upstream.
    pub fn sub(&mut self, other: &Quantity) {
        self.original = None;
        if self.is_zero() {
            self.format = other.format;
        }
        (self.mantissa, self.exponent) = add_values(
            self.mantissa,
            self.exponent,
            -other.mantissa,
            other.exponent,
        );
    }

    /// Multiply by an integer.
    pub fn mul(&mut self, factor: i64) {
        self.original = None;
        let factor = i128::from(factor);
        loop {
            if let Some(product) = self.mantissa.checked_mul(factor) {
                self.mantissa = product;
                return;
            }
            (self.mantissa, _) = div_pow10_round_up(self.mantissa, 1);
            self.exponent += 1;
        }
    }

    /// Flip the sign.
    pub fn neg(&mut self) {
        self.original = None;
        self.mantissa = -self.mantissa;
    }

    /// Round up (away from zero) to a multiple of 10^scale; true when nothing was lost.
    pub fn round_up(&mut self, scale: i32) -> bool {
        let scale = i64::from(scale);
        if self.exponent >= scale {
            return true;
        }
        self.original = None;
        let (m, exact) = div_pow10_round_up(self.mantissa, scale.abs_diff(self.exponent));
        (self.mantissa, self.exponent) = (m, scale);
        exact
    }

    /// The value in units of 10^scale, rounded up (away from zero), saturating.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let scale = i64::from(scale);
        let scaled = if self.exponent >= scale {
            mul_pow10(self.mantissa, self.exponent.abs_diff(scale)).unwrap_or(
                if self.mantissa < 0 {
                    i128::MIN
                } else {
                    i128::MAX
                },
            )
        } else {
            div_pow10_round_up(self.mantissa, scale.abs_diff(self.exponent)).0
        };
        i64::try_from(scaled).unwrap_or(if scaled < 0 { i64::MIN } else { i64::MAX })
    }

    /// The value rounded up to an integer (upstream's `Value()`): `1500m` → 2.
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The value in thousandths, rounded up (upstream's `MilliValue()`).
    pub fn milli_value(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The value as an integer when it is one and fits.
    pub fn as_i64(&self) -> Option<i64> {
        let value = if self.exponent >= 0 {
            mul_pow10(self.mantissa, self.exponent.unsigned_abs())?
        } else {
            match div_pow10_round_up(self.mantissa, self.exponent.unsigned_abs()) {
                (v, true) => v,
                (_, false) => return None,
            }
        };
        i64::try_from(value).ok()
    }

    /// A float close to the value, for display and ratios only.
    pub fn as_approximate_f64(&self) -> f64 {
        let exponent = i32::try_from(self.exponent).unwrap_or(if self.exponent < 0 {
            i32::MIN
        } else {
            i32::MAX
        });
        self.mantissa as f64 * 10f64.powi(exponent)
    }

    /// Replace the value by `value` units.
    pub fn set(&mut self, value: i64) {
        self.set_scaled(value, 0);
    }

    /// Replace the value by `value` thousandths.
    pub fn set_milli(&mut self, value: i64) {
        self.set_scaled(value, -3);
    }

    /// Replace the value by `value × 10^scale`.
    pub fn set_scaled(&mut self, value: i64, scale: i32) {
        self.original = None;
        self.mantissa = i128::from(value);
        self.exponent = i64::from(scale);
    }

    /// Upstream's canonical form (`CanonicalizeBytes`), ignoring any kept original.
    pub fn canonical_string(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        if self.format == Format::BinarySI {
            let small =
                self.cmp_i64(-1024) == Ordering::Greater && self.cmp_i64(1024) == Ordering::Less;
            if !small {
                if let Some(integer) = self.exact_integer() {
                    return binary_string(integer).unwrap_or_else(|| {
                        decimal_string(self.mantissa, self.exponent, Format::DecimalExponent)
                    });
                }
            }
            return decimal_string(self.mantissa, self.exponent, Format::DecimalSI);
        }
        decimal_string(self.mantissa, self.exponent, self.format)
    }

    /// The integer value when rounding to units loses nothing (and it fits).
    fn exact_integer(&self) -> Option<i128> {
        if self.exponent >= 0 {
            return mul_pow10(self.mantissa, self.exponent.unsigned_abs());
        }
        match div_pow10_round_up(self.mantissa, self.exponent.unsigned_abs()) {
            (v, true) => Some(v),
            (_, false) => None,
        }
    }
}

/// The decimal canonical form: no trailing zeros in the mantissa, the exponent a
/// multiple of three, then the SI suffix or `eN`.
fn decimal_string(mantissa: i128, exponent: i64, format: Format) -> String {
    let (mut m, mut e) = (mantissa, exponent);
    while m % 10 == 0 && m != 0 {
        m /= 10;
        e += 1;
    }
    let mut digits = m.to_string();
    while e.rem_euclid(3) != 0 {
        digits.push('0');
        e -= 1;
    }
    if format == Format::DecimalSI {
        if let Some((_, suffix)) = DECIMAL_SUFFIXES.iter().find(|(exp, _)| *exp == e) {
            digits.push_str(suffix);
            return digits;
        }
    }
    if e != 0 {
        digits.push_str(&format!("e{e}"));
    }
    digits
}

/// The binary canonical form of an integer: as many factors of 1024 as possible moved
/// into the suffix. None when the suffix would be beyond `Ei`.
fn binary_string(value: i128) -> Option<String> {
    let mut magnitude = value.unsigned_abs();
    let mut times = 0;
    while magnitude >= 1024 && magnitude.is_multiple_of(1024) {
        magnitude /= 1024;
        times += 1;
    }
    let suffix = BINARY_SUFFIXES.get(times)?;
    let sign = if value < 0 { "-" } else { "" };
    Some(format!("{sign}{magnitude}{suffix}"))
}

/// Whether upstream's int64 fast path would have kept the input string as the printed
/// form: it does when the input already looks canonical.
fn keeps_original(parts: &Parts<'_>, base: u32, exponent: i64, format: Format) -> bool {
    let (num_len, denom_len) = (parts.num.len() as i64, parts.denom.len() as i64);
    match format {
        Format::DecimalExponent | Format::DecimalSI => {
            let scale = exponent - denom_len;
            if 18 - (num_len + denom_len) < 0 || scale < NANO {
                return false;
            }
            let shifted = format!("{}{}", parts.num, parts.denom);
            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
        }
        Format::BinarySI => {
            if base != 2 || !parts.denom.is_empty() || 15 - num_len - exponent * 3 / 10 - 1 < 0 {
                return false;
            }
            let Ok(value) = parts.num.parse::<i64>() else {
                return false;
            };
            // The fast path gives up when value × 2^exponent overflows int64.
            let fits = value.checked_mul(1i64 << exponent).is_some();
            fits && exponent % 10 == 0 && value & 0x07 != 0
        }
    }
}

impl Default for Quantity {
    fn default() -> Self {
        Quantity::from_parts(0, 0, Format::DecimalSI)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.original {
            Some(s) => f.write_str(s),
            None => f.write_str(&self.canonical_string()),
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

/// Equality of values, as upstream's `Quantity.Equal`: `1Gi == 1024Mi`.
impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_value(other)
    }
}

impl std::ops::Add for Quantity {
    type Output = Quantity;

    fn add(mut self, rhs: Quantity) -> Quantity {
        Quantity::add(&mut self, &rhs);
        self
    }
}

impl std::ops::Sub for Quantity {
    type Output = Quantity;

    fn sub(mut self, rhs: Quantity) -> Quantity {
        Quantity::sub(&mut self, &rhs);
        self
    }
}

impl std::ops::AddAssign<&Quantity> for Quantity {
    fn add_assign(&mut self, rhs: &Quantity) {
        Quantity::add(self, rhs);
    }
}

impl std::ops::SubAssign<&Quantity> for Quantity {
    fn sub_assign(&mut self, rhs: &Quantity) {
        Quantity::sub(self, rhs);
    }
}

impl std::ops::Neg for Quantity {
    type Output = Quantity;

    fn neg(mut self) -> Quantity {
        Quantity::neg(&mut self);
        self
    }
}

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

impl TryFrom<&ApiQuantity> for Quantity {
    type Error = QuantityError;

    /// Surrounding whitespace is ignored, as upstream's JSON decoding does.
    fn try_from(q: &ApiQuantity) -> Result<Self, Self::Error> {
        Quantity::parse(q.0.trim())
    }
}

impl TryFrom<ApiQuantity> for Quantity {
    type Error = QuantityError;

    fn try_from(q: ApiQuantity) -> Result<Self, Self::Error> {
        Quantity::try_from(&q)
    }
}

impl From<&Quantity> for ApiQuantity {
    fn from(q: &Quantity) -> Self {
        ApiQuantity(q.to_string())
    }
}

impl From<Quantity> for ApiQuantity {
    fn from(q: Quantity) -> Self {
        ApiQuantity(q.to_string())
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    /// A string, or a bare JSON number (upstream parses the number's text).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;

        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity string such as \"100m\" or \"1Gi\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v.trim()).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn dec(m: i128, e: i64, format: Format) -> Quantity {
        Quantity::from_parts(m, e, format)
    }

    use Format::{BinarySI, DecimalExponent, DecimalSI};

    #[test]
    fn parse_table_from_upstream() {
        let table: &[(&str, Quantity)] = &[
            ("0", dec(0, 0, DecimalSI)),
            ("0n", dec(0, 0, DecimalSI)),
            ("0u", dec(0, 0, DecimalSI)),
            ("0m", dec(0, 0, DecimalSI)),
            ("0Ki", dec(0, 0, BinarySI)),
            ("0k", dec(0, 0, DecimalSI)),
            ("0Mi", dec(0, 0, BinarySI)),
            ("0M", dec(0, 0, DecimalSI)),
            ("0Gi", dec(0, 0, BinarySI)),
            ("0G", dec(0, 0, DecimalSI)),
            ("0Ti", dec(0, 0, BinarySI)),
            ("0T", dec(0, 0, DecimalSI)),
            ("1", dec(1, 0, DecimalSI)),
            ("1Ki", dec(1024, 0, BinarySI)),
            ("8Ki", dec(8 * 1024, 0, BinarySI)),
            ("7Mi", dec(7 << 20, 0, BinarySI)),
            ("6Gi", dec(6 << 30, 0, BinarySI)),
            ("5Ti", dec(5 << 40, 0, BinarySI)),
            ("4Pi", dec(4 << 50, 0, BinarySI)),
            ("3Ei", dec(3 << 60, 0, BinarySI)),
            ("10Ti", dec(10 << 40, 0, BinarySI)),
            ("100Ti", dec(100 << 40, 0, BinarySI)),
            ("5n", dec(5, -9, DecimalSI)),
            ("4u", dec(4, -6, DecimalSI)),
            ("3m", dec(3, -3, DecimalSI)),
            ("9", dec(9, 0, DecimalSI)),
            ("8k", dec(8, 3, DecimalSI)),
            ("50k", dec(5, 4, DecimalSI)),
            ("7M", dec(7, 6, DecimalSI)),
            ("6G", dec(6, 9, DecimalSI)),
            ("5T", dec(5, 12, DecimalSI)),
            ("40T", dec(4, 13, DecimalSI)),
            ("300T", dec(3, 14, DecimalSI)),
            ("2P", dec(2, 15, DecimalSI)),
            ("1E", dec(1, 18, DecimalSI)),
            ("1E-3", dec(1, -3, DecimalExponent)),
            ("1e3", dec(1, 3, DecimalExponent)),
            ("1E6", dec(1, 6, DecimalExponent)),
            ("1e9", dec(1, 9, DecimalExponent)),
            ("1E12", dec(1, 12, DecimalExponent)),
            ("1e15", dec(1, 15, DecimalExponent)),
            ("1E18", dec(1, 18, DecimalExponent)),
            ("1e14", dec(1, 14, DecimalExponent)),
            ("1e13", dec(1, 13, DecimalExponent)),
            ("100.035k", dec(100035, 0, DecimalSI)),
            ("0.001", dec(1, -3, DecimalSI)),
            ("0.0005k", dec(5, -1, DecimalSI)),
            ("0.005", dec(5, -3, DecimalSI)),
            ("0.05", dec(5, -2, DecimalSI)),
            ("0.5", dec(5, -1, DecimalSI)),
            ("0.00050k", dec(5, -1, DecimalSI)),
            ("0.00500", dec(5, -3, DecimalSI)),
            ("0.05000", dec(5, -2, DecimalSI)),
            ("0.50000", dec(5, -1, DecimalSI)),
            ("0.5e0", dec(5, -1, DecimalExponent)),
            ("0.5e-1", dec(5, -2, DecimalExponent)),
            ("0.5e-2", dec(5, -3, DecimalExponent)),
            ("10.035M", dec(10035, 3, DecimalSI)),
            ("1.2e3", dec(12, 2, DecimalExponent)),
            ("1.3E+6", dec(13, 5, DecimalExponent)),
            ("1.40e9", dec(14, 8, DecimalExponent)),
            ("1.53E12", dec(153, 10, DecimalExponent)),
            ("1.6e15", dec(16, 14, DecimalExponent)),
            ("1.7E18", dec(17, 17, DecimalExponent)),
            ("9.01", dec(901, -2, DecimalSI)),
            ("8.1k", dec(81, 2, DecimalSI)),
            ("7.123456M", dec(7123456, 0, DecimalSI)),
            ("6.987654321G", dec(6987654321, 0, DecimalSI)),
            ("5.444T", dec(5444, 9, DecimalSI)),
            ("40.1T", dec(401, 11, DecimalSI)),
            ("300.2T", dec(3002, 11, DecimalSI)),
            ("2.5P", dec(25, 14, DecimalSI)),
            ("1.01E", dec(101, 16, DecimalSI)),
            ("3.001n", dec(4, -9, DecimalSI)),
            ("1.1E-9", dec(2, -9, DecimalExponent)),
            ("0.0000000001", dec(1, -9, DecimalSI)),
            ("0.0000000005", dec(1, -9, DecimalSI)),
            ("0.00000000050", dec(1, -9, DecimalSI)),
            ("0.5e-9", dec(1, -9, DecimalExponent)),
            ("0.9n", dec(1, -9, DecimalSI)),
            ("0.00000012345", dec(124, -9, DecimalSI)),
            ("0.00000012354", dec(124, -9, DecimalSI)),
            ("9Ei", dec(MAX_ALLOWED, 0, BinarySI)),
            ("9223372036854775807Ki", dec(MAX_ALLOWED, 0, BinarySI)),
            ("12E", dec(12, 18, DecimalSI)),
            ("100.035Ki", dec(10243584, -2, BinarySI)),
            ("0.5Mi", dec(512 * 1024, 0, BinarySI)),
            ("0.05Gi", dec(536870912, -1, BinarySI)),
            ("0.025Ti", dec(274877906944, -1, BinarySI)),
            ("0.000000000001Ki", dec(2, -9, DecimalSI)),
            (".001", dec(1, -3, DecimalSI)),
            (".0001k", dec(100, -3, DecimalSI)),
            ("1.", dec(1, 0, DecimalSI)),
            ("1.G", dec(1, 9, DecimalSI)),
        ];
        for (input, expect) in table {
            let got = q(input);
            assert_eq!(
                got.cmp_value(expect),
                Ordering::Equal,
                "{input}: got {got}, want {expect}"
            );
            assert_eq!(got.format(), expect.format(), "{input}");

            let negative = q(&format!("-{input}"));
            let mut want = expect.clone();
            want.neg();
            assert_eq!(negative.cmp_value(&want), Ordering::Equal, "-{input}");
            assert_eq!(negative.format(), expect.format(), "-{input}");

            let plus = q(&format!("+{input}"));
            assert_eq!(plus.cmp_value(expect), Ordering::Equal, "+{input}");
            assert_eq!(plus.format(), expect.format(), "+{input}");
        }
    }

    #[test]
    fn invalid_quantities() {
        for bad in [
            "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", " 1",
            "1 ", "",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Quantity::parse("").err(), Some(QuantityError::FormatWrong));
        assert_eq!(
            Quantity::parse("1 ").map_err(|e| e.to_string()),
            Err("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_string())
        );
        assert_eq!(
            Quantity::parse("aoeu").err(),
            Some(QuantityError::FormatWrong)
        );
        assert_eq!(Quantity::parse("1i").err(), Some(QuantityError::Suffix));
        assert_eq!(
            Quantity::parse("1K").map_err(|e| e.to_string()),
            Err("unable to parse quantity's suffix".to_string())
        );
        assert_eq!(Quantity::parse("1e").err(), Some(QuantityError::Suffix));
        assert_eq!(
            Quantity::parse("1KiB").err(),
            Some(QuantityError::FormatWrong)
        );
        assert_eq!(SPLIT_RE, "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$");
    }

    #[test]
    fn odd_but_valid_inputs() {
        // Upstream accepts these and reads them as zero.
        for zero in [".", "-", "+", "-.", "00", "000k"] {
            assert!(q(zero).is_zero(), "{zero}");
            assert_eq!(q(zero).to_string(), "0", "{zero}");
        }
        assert_eq!(
            q("1e1000").cmp_value(&dec(1, 1000, DecimalExponent)),
            Ordering::Equal
        );
    }

    #[test]
    fn canonical_strings_from_upstream() {
        let table: &[(Quantity, &str, &str)] = &[
            (dec(1 << 30, 0, BinarySI), "1Gi", "1024Mi"),
            (dec(300 << 20, 0, BinarySI), "300Mi", "307200Ki"),
            (dec(6 * 1024, 0, BinarySI), "6Ki", ""),
            (dec(1001 << 30, 0, BinarySI), "1001Gi", "1025024Mi"),
            (dec(1 << 40, 0, BinarySI), "1Ti", "1024Gi"),
            (dec(5, 0, BinarySI), "5", "5000m"),
            (dec(500, -3, BinarySI), "500m", "0.5"),
            (dec(1, 9, DecimalSI), "1G", "1000M"),
            (dec(1000, 6, DecimalSI), "1G", "0.001T"),
            (dec(1000000, 3, DecimalSI), "1G", ""),
            (dec(1000000000, 0, DecimalSI), "1G", ""),
            (dec(1, -3, DecimalSI), "1m", "1000u"),
            (dec(80, -3, DecimalSI), "80m", ""),
            (dec(1080, -3, DecimalSI), "1080m", "1.08"),
            (dec(108, -2, DecimalSI), "1080m", "1080000000n"),
            (dec(10800, -4, DecimalSI), "1080m", ""),
            (dec(300, 6, DecimalSI), "300M", ""),
            (dec(1, 12, DecimalSI), "1T", ""),
            (dec(1234567, 6, DecimalSI), "1234567M", ""),
            (dec(1234567, -3, BinarySI), "1234567m", ""),
            (dec(3, 3, DecimalSI), "3k", ""),
            (dec(1025, 0, BinarySI), "1025", ""),
            (dec(0, 0, DecimalSI), "0", ""),
            (dec(0, 0, BinarySI), "0", ""),
            (dec(1, 9, DecimalExponent), "1e9", ".001e12"),
            (dec(1, -3, DecimalExponent), "1e-3", "0.001e0"),
            (dec(1, -9, DecimalExponent), "1e-9", "1000e-12"),
            (dec(80, -3, DecimalExponent), "80e-3", ""),
            (dec(300, 6, DecimalExponent), "300e6", ""),
            (dec(1, 12, DecimalExponent), "1e12", ""),
            (dec(1, 3, DecimalExponent), "1e3", ""),
            (dec(3, 3, DecimalExponent), "3e3", ""),
            (dec(3, 3, DecimalSI), "3k", ""),
            (dec(0, 0, DecimalExponent), "0", "00"),
            (dec(1, -9, DecimalSI), "1n", ""),
            (dec(80, -9, DecimalSI), "80n", ""),
            (dec(1080, -9, DecimalSI), "1080n", ""),
            (dec(108, -8, DecimalSI), "1080n", ""),
            (dec(10800, -10, DecimalSI), "1080n", ""),
            (dec(1, -6, DecimalSI), "1u", ""),
            (dec(80, -6, DecimalSI), "80u", ""),
            (dec(1080, -6, DecimalSI), "1080u", ""),
        ];
        for (value, expect, alternate) in table {
            assert_eq!(value.to_string(), *expect, "{value:?}");
            let parsed = q(expect);
            assert_eq!(
                parsed.original.as_deref(),
                Some(*expect),
                "{expect} keeps its text"
            );
            if !alternate.is_empty() {
                let parsed = q(alternate);
                assert_eq!(parsed.original, None, "{alternate} is not canonical");
                assert_eq!(parsed.to_string(), *expect, "{alternate}");
            }
            if !value.is_zero() {
                assert_eq!(
                    (-value.clone()).to_string(),
                    format!("-{expect}"),
                    "{value:?}"
                );
            }
        }
    }

    #[test]
    fn parse_then_emit() {
        for (input, expect) in [
            ("1Ki", "1Ki"),
            ("1Mi", "1Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000M", "1G"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("2000", "2k"),
            ("1e3", "1e3"),
            ("100m", "100m"),
            ("500Mi", "500Mi"),
            ("1k", "1k"),
            ("1.5Gi", "1536Mi"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
            ("123Mi", "123Mi"),
            ("250m", "250m"),
            ("0.1", "100m"),
            ("01", "01"),
            ("+1", "+1"),
            ("1E3", "1E3"),
        ] {
            assert_eq!(q(input).to_string(), expect, "{input}");
            if input == "+1" {
                continue;
            }
            let negative = q(&format!("-{input}"));
            if !negative.is_zero() {
                let want = if negative.original.is_some() {
                    format!("-{input}")
                } else {
                    format!("-{expect}")
                };
                assert_eq!(negative.to_string(), want, "-{input}");
            }
        }
        // 2^63 - 1 itself has no factor of 1024.
        assert_eq!(q("9Ei").canonical_string(), "9223372036854775807");
    }

    #[test]
    fn large_values_keep_their_magnitude() {
        assert_eq!(q("1000E").to_string(), "1e21");
        assert_eq!(q("10000E").to_string(), "10e21");
        assert_eq!(q("1000000000000000000000").to_string(), "1e21");
        assert_eq!(dec(1, 70, BinarySI).to_string(), "10e69");
        assert_eq!(dec(1, -10, DecimalSI).to_string(), "100e-12");
        // Parsing caps BinarySI at 2^63-1, arithmetic does not.
        assert_eq!(q("8Ei").to_string(), "9223372036854775807");
        assert_eq!(q("7Ei").to_string(), "7Ei");
        let mut big = q("4Ei");
        big.add(&q("4Ei"));
        assert_eq!(big.to_string(), "8Ei");
        big.mul(1024);
        assert_eq!(big.to_string(), "9444732965739290427392");
    }

    #[test]
    fn comparisons() {
        for (x, y, want) in [
            ("0", "0", Ordering::Equal),
            ("100m", "50m", Ordering::Greater),
            ("50m", "100m", Ordering::Less),
            ("10000T", "100Gi", Ordering::Greater),
            ("1Gi", "1024Mi", Ordering::Equal),
            ("1G", "1Gi", Ordering::Less),
            ("1e3", "1k", Ordering::Equal),
            ("-1", "1n", Ordering::Less),
            ("-1", "-2", Ordering::Greater),
            ("1e100", "1n", Ordering::Greater),
            ("1n", "1e100", Ordering::Less),
            ("-1e100", "-1n", Ordering::Less),
            ("0.5", "500m", Ordering::Equal),
        ] {
            assert_eq!(q(x).cmp(&q(y)), want, "{x} vs {y}");
        }
        assert!(q("1Gi") == q("1024Mi"));
        assert!(q("100m") < q("1"));
        assert_eq!(q("1k").cmp_i64(1000), Ordering::Equal);
        assert_eq!(q("1001m").cmp_i64(1), Ordering::Greater);
    }

    #[test]
    fn arithmetic() {
        let mut a = q("100m");
        a.add(&q("0"));
        assert_eq!(a.to_string(), "100m");
        let mut z = q("0");
        z.add(&q("1Gi"));
        assert_eq!(z.to_string(), "1Gi");
        let mut z = q("0");
        z.sub(&q("1Gi"));
        assert_eq!(z.to_string(), "-1Gi");
        let mut a = q("1Gi");
        a.sub(&q("0"));
        assert_eq!(a.to_string(), "1Gi");

        let mut a = q("10");
        a.sub(&q("10"));
        assert!(a.is_zero());
        assert_eq!(a.to_string(), "0");

        assert_eq!((q("1") + q("500m")).to_string(), "1500m");
        assert_eq!((q("1Gi") + q("1Mi")).to_string(), "1025Mi");
        assert_eq!((q("1Gi") - q("1")).to_string(), "1073741823");
        assert_eq!((q("1") - q("2")).to_string(), "-1");
        assert_eq!((q("1e100") + q("1n")).cmp(&q("1e100")), Ordering::Greater);
        assert_eq!(-q("5m"), q("-5m"));
        let mut sum = Quantity::default();
        for s in ["100m", "200m", "1"] {
            sum += &q(s);
        }
        assert_eq!(sum.to_string(), "1300m");

        let mut m = q("1.5");
        m.mul(3);
        assert_eq!(m.to_string(), "4500m");
        let mut m = q("1Mi");
        m.mul(1024);
        assert_eq!(m.to_string(), "1Gi");

        // Add then subtract across scales round-trips exactly.
        let (a, b) = (q("1n"), q("1E"));
        assert_eq!(a.clone() + b.clone() - b, a);
    }

    #[test]
    fn values() {
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("1.0001m").milli_value(), 2);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1Ki").milli_value(), 1024000);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("9Ei").value(), i64::MAX);
        assert_eq!(q("9Ei").milli_value(), i64::MAX);
        assert_eq!(q("-1e30").value(), i64::MIN);
        assert_eq!(q("1n").value(), 1);
        assert_eq!(q("1n").scaled_value(-9), 1);
        for (from, to, want) in [
            (-9, -9, 1),
            (-9, -6, 1),
            (-9, -3, 1),
            (-9, 0, 1),
            (-6, -9, 1000),
            (-6, -6, 1),
            (-6, -3, 1),
            (-6, 0, 1),
            (-3, -9, 1_000_000),
            (-3, -6, 1000),
            (-3, -3, 1),
            (-3, 0, 1),
            (0, -9, 1_000_000_000),
            (0, -6, 1_000_000),
            (0, -3, 1000),
            (0, 0, 1),
            (2, -2, 10000),
        ] {
            assert_eq!(
                Quantity::new_scaled(1, from).scaled_value(to),
                want,
                "{from} -> {to}"
            );
        }
        assert_eq!(q("2k").as_i64(), Some(2000));
        assert_eq!(q("1500m").as_i64(), None);
        assert_eq!(q("1e30").as_i64(), None);
        assert!((q("1.5Gi").as_approximate_f64() - 1610612736.0).abs() < 1e-3);
    }

    #[test]
    fn constructors_and_setters() {
        for (value, format, expect) in [
            (1, DecimalSI, "1m"),
            (1000, DecimalSI, "1"),
            (1234000, DecimalSI, "1234"),
            (1024, BinarySI, "1024m"),
            (1000000, DecimalExponent, "1e3"),
            (1024 * 1024, BinarySI, "1048576m"),
        ] {
            assert_eq!(Quantity::new_milli(value, format).to_string(), expect);
            let mut q = Quantity::new(0, format);
            q.set_milli(value);
            assert_eq!(q.to_string(), expect);
        }
        for (value, format, expect) in [
            (1, DecimalSI, "1"),
            (1000, DecimalSI, "1k"),
            (1234000, DecimalSI, "1234k"),
            (1024, BinarySI, "1Ki"),
            (1000000, DecimalExponent, "1e6"),
            (1024 * 1024, BinarySI, "1Mi"),
        ] {
            let built = Quantity::new(value, format);
            assert_eq!(built.to_string(), expect);
            assert_eq!(q(expect).value(), value);
        }
        for (value, scale, expect) in [
            (1, -9, "1n"),
            (1000, -9, "1u"),
            (1, -6, "1u"),
            (1000, -6, "1m"),
            (1, -3, "1m"),
            (1000, -3, "1"),
            (1, 0, "1"),
            (0, -9, "0"),
            (0, 0, "0"),
        ] {
            let built = Quantity::new_scaled(value, scale);
            assert_eq!(built.to_string(), expect);
            assert_eq!(q(expect).scaled_value(scale), value);
            let mut set = Quantity::new(0, DecimalSI);
            set.set_scaled(value, scale);
            assert_eq!(set, built);
        }
        assert_eq!(q("1.5Gi").with_format(DecimalSI).to_string(), "1610612736");
        assert_eq!(q("1000").with_format(BinarySI).to_string(), "1k");
    }

    #[test]
    fn round_up() {
        for (input, scale, want, exact) in [
            ("9.01", -3, dec(901, -2, DecimalSI), true),
            ("9.01", -2, dec(901, -2, DecimalSI), true),
            ("9.01", -1, dec(91, -1, DecimalSI), false),
            ("9.01", 0, dec(10, 0, DecimalSI), false),
            ("9.01", 1, dec(10, 0, DecimalSI), false),
            ("9.01", 2, dec(100, 0, DecimalSI), false),
            ("-9.01", -3, dec(-901, -2, DecimalSI), true),
            ("-9.01", -2, dec(-901, -2, DecimalSI), true),
            ("-9.01", -1, dec(-91, -1, DecimalSI), false),
            ("-9.01", 0, dec(-10, 0, DecimalSI), false),
            ("-9.01", 1, dec(-10, 0, DecimalSI), false),
            ("-9.01", 2, dec(-100, 0, DecimalSI), false),
        ] {
            let mut got = q(input);
            assert_eq!(got.round_up(scale), exact, "{input} {scale}");
            assert_eq!(got, want, "{input} {scale}");
        }
    }

    #[test]
    fn conversions_and_serde() {
        let api = ApiQuantity(" 500Mi ".to_string());
        let parsed = Quantity::try_from(&api).expect("valid");
        assert_eq!(parsed.to_string(), "500Mi");
        assert_eq!(ApiQuantity::from(&q("0.5")).0, "500m");
        assert!(Quantity::try_from(ApiQuantity("1KiB".to_string())).is_err());

        assert_eq!(
            serde_json::to_string(&q("1024Mi")).expect("json"),
            r#""1Gi""#
        );
        let from_str: Quantity = serde_json::from_str(r#""100m""#).expect("string");
        assert_eq!(from_str.to_string(), "100m");
        let from_int: Quantity = serde_json::from_str("2000").expect("int");
        assert_eq!(from_int.to_string(), "2k");
        let from_float: Quantity = serde_json::from_str("0.5").expect("float");
        assert_eq!(from_float.to_string(), "500m");
        assert!(serde_json::from_str::<Quantity>(r#""abc""#).is_err());
        assert_eq!("2Gi".parse::<Quantity>().expect("parse"), q("2048Mi"));
    }
}
