//! certificatesigningrequests: cluster-scoped requests for certificates. The requester is
//! recorded from the authenticated user on create (`spec.username`, `uid`, `groups`,
//! `extra`); after that, the spec never changes. Approval and denial are conditions set
//! only through `/approval`; signers write `status.certificate` through `/status`.
//!
//! The three write paths are upstream's three strategies: [`Csr`] (the main resource and
//! `/status`) and [`CsrApproval`] (`/approval`, served by `handlers::approval` with a
//! store of its own over the same storage, as upstream's `ApprovalREST`).

use std::collections::BTreeMap;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::{validation, StatusError};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use x509_parser::prelude::FromDer;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::{Typed, TypedStrategy};
use crate::registry::{ResourceInfo, SelectableField, Strategy, Subresource};
use crate::request::UserInfo;

pub const APPROVED: &str = "Approved";
pub const DENIED: &str = "Denied";
pub const FAILED: &str = "Failed";
/// The signer of v1beta1 requests that named none; v1 does not accept it.
const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Upstream's `allValidUsages`, sorted as its error messages list them.
const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

const ALL_STATUSES: &[&str] = &["False", "True", "Unknown"];
const TRUE_ONLY: &[&str] = &["True"];

const COLUMNS: &[Column] = &[
    NAME,
    AGE,
    Column::new(
        "SignerName",
        "string",
        "signerName indicates the requested signer, and is a qualified name.",
    ),
    Column::new(
        "Requestor",
        "string",
        "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block.",
    ),
    Column::new(
        "RequestedDuration",
        "string",
        "expirationSeconds is the requested duration of validity of the issued certificate.",
    ),
    Column::new(
        "Condition",
        "string",
        "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\".",
    ),
];

const FIELDS: &[SelectableField] = &[SelectableField::new("spec.signerName")];

/// Upstream's `certificateValidationOptions`: what a write path may change, and which
/// defects of a stored object are tolerated.
#[derive(Debug, Default, Clone, Copy)]
struct Options {
    allow_setting_approval_conditions: bool,
    allow_setting_certificate: bool,
    allow_both_approved_and_denied: bool,
    allow_legacy_signer_name: bool,
    allow_duplicate_condition_types: bool,
    allow_empty_condition_type: bool,
    allow_arbitrary_certificate: bool,
    allow_unknown_usages: bool,
    allow_duplicate_usages: bool,
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

fn certificate(csr: &CertificateSigningRequest) -> &[u8] {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .map_or(&[], |c| c.0.as_slice())
}

fn usages(csr: &CertificateSigningRequest) -> &[String] {
    csr.spec.usages.as_deref().unwrap_or_default()
}

fn has_duplicates<'a>(items: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    items.into_iter().any(|i| !seen.insert(i))
}

fn options(new: &CertificateSigningRequest, old: Option<&CertificateSigningRequest>) -> Options {
    let Some(old) = old else {
        return Options::default();
    };
    let has = |t: &str| conditions(old).iter().any(|c| c.type_ == t);
    Options {
        allow_both_approved_and_denied: has(APPROVED) && has(DENIED),
        allow_legacy_signer_name: old.spec.signer_name == LEGACY_UNKNOWN_SIGNER,
        allow_duplicate_condition_types: has_duplicates(
            conditions(old).iter().map(|c| c.type_.as_str()),
        ),
        allow_empty_condition_type: conditions(old).iter().any(|c| c.type_.is_empty()),
        allow_arbitrary_certificate: certificate(new) == certificate(old)
            || validate_certificate(certificate(old)).is_err(),
        allow_unknown_usages: usages(old).iter().any(|u| !USAGES.contains(&u.as_str())),
        allow_duplicate_usages: has_duplicates(usages(old).iter().map(String::as_str)),
        ..Options::default()
    }
}

/// The request must be a PEM `CERTIFICATE REQUEST` whose signature verifies.
fn validate_request(pem: &[u8]) -> Result<(), String> {
    const TYPE_ERROR: &str = "PEM block type must be CERTIFICATE REQUEST";
    let Some(Ok(block)) = x509_parser::pem::Pem::iter_from_buffer(pem).next() else {
        return Err(TYPE_ERROR.to_string());
    };
    if block.label != "CERTIFICATE REQUEST" {
        return Err(TYPE_ERROR.to_string());
    }
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|e| format!("x509: certificate request signature is invalid: {e}"))
}

/// `status.certificate`: empty, or PEM `CERTIFICATE` blocks only.
fn validate_certificate(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(data) {
        let block = block.map_err(|e| e.to_string())?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".to_string());
    }
    Ok(())
}

/// Upstream's `ValidateCertificateSigningRequestSignerName`: `<domain>/<path>`.
pub fn validate_signer_name(path: &Path, signer: &str) -> ErrorList {
    const MAX_DOMAIN: usize = validation::DNS1123_SUBDOMAIN_MAX_LENGTH;
    const MAX_PATH: usize =
        validation::DNS1123_SUBDOMAIN_MAX_LENGTH + validation::DNS1123_LABEL_MAX_LENGTH + 1;
    if signer.is_empty() {
        return vec![FieldError::required(path, "signerName must be provided")];
    }
    let segments: Vec<&str> = signer.split('/').collect();
    let [domain, rest] = segments.as_slice() else {
        return vec![FieldError::invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        )];
    };
    let mut errs = Vec::new();
    if domain.len() > MAX_DOMAIN {
        errs.push(FieldError::too_long(path, MAX_DOMAIN));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        let msgs = validation::is_dns1123_label(label);
        if !msgs.is_empty() {
            for msg in msgs {
                errs.push(FieldError::invalid(
                    path,
                    *domain,
                    format!("validating label {label:?}: {msg}"),
                ));
            }
            break;
        }
    }
    if labels.len() < 2 {
        errs.push(FieldError::invalid(
            path,
            *domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    for label in rest.split('.') {
        let msgs = validation::is_dns1123_subdomain(label);
        if !msgs.is_empty() {
            for msg in msgs {
                errs.push(FieldError::invalid(
                    path,
                    *rest,
                    format!("validating label {label:?}: {msg}"),
                ));
            }
            break;
        }
    }
    if signer.len() > MAX_DOMAIN + MAX_PATH + 1 {
        errs.push(FieldError::too_long(path, MAX_DOMAIN + MAX_PATH + 1));
    }
    errs
}

fn validate_conditions(csr: &CertificateSigningRequest, opts: Options) -> ErrorList {
    let path = Path::new("status").child("conditions");
    let mut errs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let (mut approved, mut denied) = (false, false);
    for (i, c) in conditions(csr).iter().enumerate() {
        let p = path.index(i);
        if !opts.allow_empty_condition_type && c.type_.is_empty() {
            errs.push(FieldError::required(&p.child("type"), ""));
        }
        let allowed = if [APPROVED, DENIED, FAILED].contains(&c.type_.as_str()) {
            TRUE_ONLY
        } else {
            ALL_STATUSES
        };
        if c.status.is_empty() {
            errs.push(FieldError::required(&p.child("status"), ""));
        } else if !allowed.contains(&c.status.as_str()) {
            errs.push(FieldError::not_supported(
                &p.child("status"),
                c.status.as_str(),
                allowed,
            ));
        }
        if !opts.allow_both_approved_and_denied {
            let exclusive = match c.type_.as_str() {
                APPROVED => {
                    approved = true;
                    denied
                }
                DENIED => {
                    denied = true;
                    approved
                }
                _ => false,
            };
            if exclusive {
                errs.push(FieldError::invalid(
                    &p.child("type"),
                    c.type_.as_str(),
                    "Approved and Denied conditions are mutually exclusive",
                ));
            }
        }
        if !opts.allow_duplicate_condition_types && !seen.insert(c.type_.as_str()) {
            errs.push(FieldError::duplicate(&p.child("type"), c.type_.as_str()));
        }
    }
    errs
}

/// Upstream's `validateCertificateSigningRequest`.
fn validate_csr(csr: &CertificateSigningRequest, opts: Options) -> ErrorList {
    let spec = Path::new("spec");
    let mut errs = Vec::new();
    if let Err(msg) = validate_request(&csr.spec.request.0) {
        errs.push(FieldError::invalid(
            &spec.child("request"),
            serde_json::to_value(&csr.spec.request).unwrap_or(Value::Null),
            msg,
        ));
    }
    if usages(csr).is_empty() {
        errs.push(FieldError::required(
            &spec.child("usages"),
            "usages must be provided",
        ));
    }
    if !opts.allow_unknown_usages {
        for (i, usage) in usages(csr).iter().enumerate() {
            if !USAGES.contains(&usage.as_str()) {
                errs.push(FieldError::not_supported(
                    &spec.child("usages").index(i),
                    usage.as_str(),
                    USAGES,
                ));
            }
        }
    }
    if !opts.allow_duplicate_usages {
        let mut seen = std::collections::BTreeSet::new();
        for (i, usage) in usages(csr).iter().enumerate() {
            if !seen.insert(usage.as_str()) {
                errs.push(FieldError::duplicate(
                    &spec.child("usages").index(i),
                    usage.as_str(),
                ));
            }
        }
    }
    let signer = csr.spec.signer_name.as_str();
    if !opts.allow_legacy_signer_name && signer == LEGACY_UNKNOWN_SIGNER {
        errs.push(FieldError::invalid(
            &spec.child("signerName"),
            signer,
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errs.extend(validate_signer_name(&spec.child("signerName"), signer));
    }
    if let Some(secs) = csr.spec.expiration_seconds.filter(|s| *s < 600) {
        errs.push(FieldError::invalid(
            &spec.child("expirationSeconds"),
            secs,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errs.extend(validate_conditions(csr, opts));
    if !opts.allow_arbitrary_certificate {
        if let Err(msg) = validate_certificate(certificate(csr)) {
            errs.push(FieldError::invalid(
                &Path::new("status").child("certificate"),
                "<certificate data>",
                msg,
            ));
        }
    }
    errs
}

fn of_type<'a>(
    csr: &'a CertificateSigningRequest,
    t: &str,
) -> Vec<&'a CertificateSigningRequestCondition> {
    conditions(csr).iter().filter(|c| c.type_ == t).collect()
}

/// Upstream's `validateCertificateSigningRequestUpdate`.
fn validate_csr_update(
    new: &CertificateSigningRequest,
    old: &CertificateSigningRequest,
    mut opts: Options,
) -> ErrorList {
    let extra = options(new, Some(old));
    opts.allow_both_approved_and_denied = extra.allow_both_approved_and_denied;
    opts.allow_legacy_signer_name = extra.allow_legacy_signer_name;
    opts.allow_duplicate_condition_types = extra.allow_duplicate_condition_types;
    opts.allow_empty_condition_type = extra.allow_empty_condition_type;
    opts.allow_arbitrary_certificate = extra.allow_arbitrary_certificate;
    opts.allow_unknown_usages = extra.allow_unknown_usages;
    opts.allow_duplicate_usages = extra.allow_duplicate_usages;
    let mut errs = validate_csr(new, opts);
    let conditions_path = Path::new("status").child("conditions");
    for t in [APPROVED, DENIED, FAILED] {
        if of_type(new, t).len() < of_type(old, t).len() {
            errs.push(FieldError::forbidden(
                &conditions_path,
                format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    if !opts.allow_setting_approval_conditions {
        for t in [APPROVED, DENIED] {
            let (new_c, old_c) = (of_type(new, t), of_type(old, t));
            if new_c.len() > old_c.len() {
                errs.push(FieldError::forbidden(
                    &conditions_path,
                    format!("updates may not add a condition of type {t:?}"),
                ));
            } else if new_c.len() == old_c.len() && new_c != old_c {
                errs.push(FieldError::forbidden(
                    &conditions_path,
                    format!("updates may not modify a condition of type {t:?}"),
                ));
            }
        }
    }
    if certificate(new) != certificate(old) {
        if !opts.allow_setting_certificate {
            errs.push(FieldError::forbidden(
                &Path::new("status").child("certificate"),
                "updates may not set certificate content",
            ));
        } else if !certificate(old).is_empty() {
            errs.push(FieldError::forbidden(
                &Path::new("status").child("certificate"),
                "updates may not modify existing certificate content",
            ));
        }
    }
    errs
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Upstream's `populateConditionTimestamps`: new conditions get the time of this write;
/// a transition time is kept while the condition keeps its status.
fn populate_condition_timestamps(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
) {
    let old_conditions = conditions(old).to_vec();
    let Some(conds) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    for c in conds {
        if c.last_update_time.is_none() {
            c.last_update_time = Some(now());
        }
        if c.last_transition_time.is_none() {
            c.last_transition_time = Some(
                old_conditions
                    .iter()
                    .find(|o| o.type_ == c.type_ && o.status == c.status)
                    .and_then(|o| o.last_transition_time.clone())
                    .unwrap_or_else(now),
            );
        }
    }
}

/// Upstream's `preserveConditionInstances`: when a write keeps the number of conditions of
/// type `t`, it keeps them exactly as they were.
fn preserve_conditions(
    new: &mut CertificateSigningRequest,
    old: &CertificateSigningRequest,
    t: &str,
) {
    let old_of_type: Vec<CertificateSigningRequestCondition> =
        of_type(old, t).into_iter().cloned().collect();
    let Some(conds) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    let indices: Vec<usize> = conds
        .iter()
        .enumerate()
        .filter(|(_, c)| c.type_ == t)
        .map(|(i, _)| i)
        .collect();
    if indices.len() != old_of_type.len() {
        return;
    }
    for (i, o) in indices.into_iter().zip(old_of_type) {
        conds[i] = o;
    }
}

/// Upstream's `extractCSRStatus`.
fn condition_cell(csr: &CertificateSigningRequest) -> String {
    let has = |t: &str| conditions(csr).iter().any(|c| c.type_ == t);
    let mut status = if has(DENIED) {
        "Denied".to_string()
    } else if has(APPROVED) {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has(FAILED) {
        status.push_str(",Failed");
    }
    if !certificate(csr).is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// The typed part of the CSR strategies: defaults, create/update preparation,
/// validation and printing.
pub struct CsrStrategy;

impl TypedStrategy for CsrStrategy {
    type Object = CertificateSigningRequest;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<CertificateSigningRequest>()
            .short_names(&["csr"])
            .with_status()
            .subresource(Subresource::Approval)
    }

    fn default(&self, csr: &mut CertificateSigningRequest) {
        for c in csr
            .status
            .iter_mut()
            .flat_map(|s| s.conditions.iter_mut().flatten())
        {
            if c.status.is_empty() {
                c.status = "True".into();
            }
        }
    }

    fn prepare_for_create(&self, csr: &mut CertificateSigningRequest) {
        // Only the server says who asked, and nobody creates a pre-approved request.
        csr.spec.username = None;
        csr.spec.uid = None;
        csr.spec.groups = None;
        csr.spec.extra = None;
        csr.status = Some(CertificateSigningRequestStatus::default());
    }

    fn prepare_for_update(
        &self,
        new: &mut CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) {
        new.spec = old.spec.clone();
        new.status = old.status.clone();
    }

    fn prepare_for_status_update(
        &self,
        new: &mut CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) {
        // Signers write the certificate and their own conditions; approval is not theirs.
        preserve_conditions(new, old, APPROVED);
        preserve_conditions(new, old, DENIED);
        populate_condition_timestamps(new, old);
    }

    fn validate(&self, csr: &CertificateSigningRequest) -> ErrorList {
        validate_csr(csr, Options::default())
    }

    /// Serves the main resource and `/status`: the main preparation keeps the stored
    /// status, so only a status write can change the certificate here.
    fn validate_update(
        &self,
        new: &CertificateSigningRequest,
        old: &CertificateSigningRequest,
    ) -> ErrorList {
        validate_csr_update(
            new,
            old,
            Options {
                allow_setting_certificate: true,
                ..Options::default()
            },
        )
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, csr: &CertificateSigningRequest, raw: &Value) -> Vec<Value> {
        let signer = match csr.spec.signer_name.as_str() {
            "" => "<none>",
            s => s,
        };
        let duration = match csr.spec.expiration_seconds {
            Some(secs) => apimachinery::duration::human_duration_seconds(i64::from(secs)),
            None => "<none>".to_string(),
        };
        vec![
            csr.metadata.name.clone().unwrap_or_default().into(),
            table::age(raw),
            signer.into(),
            csr.spec.username.clone().unwrap_or_default().into(),
            duration.into(),
            condition_cell(csr).into(),
        ]
    }
}

fn typed(obj: &Value) -> Option<CertificateSigningRequest> {
    serde_json::from_value(obj.clone()).ok()
}

fn to_json(csr: &CertificateSigningRequest) -> Value {
    serde_json::to_value(csr).unwrap_or(Value::Null)
}

/// Apply `f` to the typed forms of `new` and `old`.
fn edit(
    new: &mut Value,
    old: &Value,
    f: impl FnOnce(&mut CertificateSigningRequest, &CertificateSigningRequest),
) {
    if let (Some(mut n), Some(o)) = (typed(new), typed(old)) {
        f(&mut n, &o);
        *new = to_json(&n);
    }
}

/// The [`Strategy`] methods the CSR write paths share, forwarded to the typed strategy.
macro_rules! delegate_strategy {
    () => {
        fn info(&self) -> &ResourceInfo {
            self.typed.info()
        }
        fn decode(&self, obj: Value) -> Result<Value, StatusError> {
            self.typed.decode(obj)
        }
        fn prepare_for_create(&self, obj: &mut Value) {
            self.typed.prepare_for_create(obj)
        }
        fn validate(&self, obj: &Value) -> ErrorList {
            self.typed.validate(obj)
        }
        fn allow_create_on_update(&self) -> bool {
            false
        }
        fn allow_unconditional_update(&self) -> bool {
            true
        }
        fn selectable_fields(&self) -> &'static [SelectableField] {
            FIELDS
        }
        fn columns(&self) -> &[Column] {
            COLUMNS
        }
        fn row(&self, obj: &Value) -> Vec<Value> {
            self.typed.row(obj)
        }
    };
}

/// The strategy of the main resource and of `/status`.
pub struct Csr {
    typed: Typed<CsrStrategy>,
}

impl Csr {
    pub fn new() -> Self {
        Csr {
            typed: Typed::new(CsrStrategy),
        }
    }
}

impl Default for Csr {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for Csr {
    delegate_strategy!();

    fn prepare_for_create_by(&self, obj: &mut Value, user: &UserInfo) {
        self.typed.prepare_for_create(obj);
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.insert("username".into(), Value::String(user.name.clone()));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), Value::String(user.uid.clone()));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), serde_json::json!(user.groups));
        }
        if !user.extra.is_empty() {
            let extra: BTreeMap<&String, &Vec<String>> = user.extra.iter().collect();
            spec.insert("extra".into(), serde_json::json!(extra));
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        self.typed.prepare_for_update(new, old);
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        self.typed.prepare_for_status_update(new, old);
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        self.typed.validate_update(new, old)
    }
}

/// The strategy of `/approval`: only the conditions change, and Approved/Denied may.
pub struct CsrApproval {
    typed: Typed<CsrStrategy>,
}

impl CsrApproval {
    pub fn new() -> Self {
        CsrApproval {
            typed: Typed::new(CsrStrategy),
        }
    }
}

impl Default for CsrApproval {
    fn default() -> Self {
        Self::new()
    }
}

impl Strategy for CsrApproval {
    delegate_strategy!();

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        edit(new, old, |n, o| {
            n.spec = o.spec.clone();
            let conditions = n.status.as_ref().and_then(|s| s.conditions.clone());
            let mut status = o.status.clone().unwrap_or_default();
            status.conditions = conditions;
            n.status = Some(status);
            preserve_conditions(n, o, FAILED);
            populate_condition_timestamps(n, o);
        });
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        self.prepare_for_update(new, old);
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        match (typed(new), typed(old)) {
            (Some(n), Some(o)) => validate_csr_update(
                &n,
                &o,
                Options {
                    allow_setting_approval_conditions: true,
                    ..Options::default()
                },
            ),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CSR for CN=system:node:node-1, O=system:nodes, made with rcgen.
    fn csr_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:node-1");
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn csr(spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("request").is_none() {
            spec["request"] = json!(b64(&csr_pem()));
        }
        json!({
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": "node-csr-1"},
            "spec": spec,
        })
    }

    fn valid_spec() -> Value {
        json!({
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            "expirationSeconds": 86400,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn user() -> UserInfo {
        UserInfo {
            name: "system:bootstrap:abcdef".into(),
            uid: "".into(),
            groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
            extra: Default::default(),
        }
    }

    fn created(s: &Csr, spec: Value) -> Value {
        let mut obj = s.decode(csr(spec)).unwrap();
        s.prepare_for_create_by(&mut obj, &user());
        obj
    }

    fn approve(obj: &Value, t: &str) -> Value {
        let mut new = obj.clone();
        new["status"] = json!({"conditions": [{"type": t, "reason": "KubectlApprove"}]});
        new
    }

    #[test]
    fn create_records_the_requester_and_clears_status() {
        let s = Csr::new();
        let mut spec = valid_spec();
        spec["username"] = json!("someone-else");
        spec["groups"] = json!(["system:masters"]);
        let mut raw = csr(spec);
        raw["status"] = json!({"conditions": [{"type": "Approved", "status": "True"}]});
        let mut obj = s.decode(raw).unwrap();
        s.prepare_for_create_by(&mut obj, &user());
        assert_eq!(obj["spec"]["username"], json!("system:bootstrap:abcdef"));
        assert_eq!(
            obj["spec"]["groups"],
            json!(["system:bootstrappers", "system:authenticated"])
        );
        assert!(obj["spec"].get("uid").is_none());
        assert_eq!(obj["status"], json!({}));
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
    }

    #[test]
    fn request_must_be_a_csr() {
        let s = Csr::new();
        let mut spec = valid_spec();
        spec["request"] = json!(b64(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ));
        let obj = created(&s, spec);
        let msgs = messages(&s.validate(&obj));
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].starts_with("spec.request: Invalid value: "));
        assert!(msgs[0].ends_with(": PEM block type must be CERTIFICATE REQUEST"));
    }

    #[test]
    fn signer_usages_and_duration_are_checked() {
        let s = Csr::new();
        let obj = created(
            &s,
            json!({"signerName": "", "usages": ["client auth", "teleport", "client auth"], "expirationSeconds": 60}),
        );
        assert_eq!(
            messages(&s.validate(&obj))[..3],
            [
                r#"spec.usages[1]: Unsupported value: "teleport": supported values: "any", "cert sign", "client auth", "code signing", "content commitment", "crl sign", "data encipherment", "decipher only", "digital signature", "email protection", "encipher only", "ipsec end system", "ipsec tunnel", "ipsec user", "key agreement", "key encipherment", "microsoft sgc", "netscape sgc", "ocsp signing", "s/mime", "server auth", "signing", "timestamping""#.to_string(),
                r#"spec.usages[2]: Duplicate value: "client auth""#.to_string(),
                "spec.signerName: Required value: signerName must be provided".to_string(),
            ]
        );
        assert_eq!(
            messages(&s.validate(&obj))[3],
            "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)"
        );
        assert_eq!(
            messages(&validate_signer_name(
                &Path::new("spec.signerName"),
                "example/signer"
            )),
            vec![
                r#"spec.signerName: Invalid value: "example": should be a domain with at least two segments separated by dots"#
            ]
        );
        assert_eq!(
            messages(&validate_signer_name(
                &Path::new("spec.signerName"),
                "no-slash"
            )),
            vec![
                r#"spec.signerName: Invalid value: "no-slash": must be a fully qualified domain and path of the form 'example.com/signer-name'"#
            ]
        );
    }

    #[test]
    fn main_updates_keep_spec_and_status() {
        let s = Csr::new();
        let old = created(&s, valid_spec());
        let mut new = approve(&old, APPROVED);
        new["spec"]["usages"] = json!(["server auth"]);
        new["metadata"]["labels"] = json!({"a": "b"});
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"], old["spec"]);
        assert_eq!(new["status"], old["status"]);
        assert_eq!(new["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn status_writes_cannot_approve() {
        let s = Csr::new();
        let old = created(&s, valid_spec());
        let mut new = s.decode(approve(&old, APPROVED)).unwrap();
        s.prepare_for_status_update(&mut new, &old);
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                r#"status.conditions: Forbidden: updates may not add a condition of type "Approved""#
            ]
        );
    }

    #[test]
    fn approval_sets_conditions_with_timestamps() {
        let s = Csr::new();
        let approval = CsrApproval::new();
        let old = created(&s, valid_spec());
        let mut new = approval.decode(approve(&old, APPROVED)).unwrap();
        new["spec"]["usages"] = json!(["server auth"]);
        approval.prepare_for_update(&mut new, &old);
        assert_eq!(new["spec"], old["spec"]);
        let cond = &new["status"]["conditions"][0];
        assert_eq!(cond["type"], json!("Approved"));
        assert_eq!(cond["status"], json!("True"));
        assert!(cond["lastUpdateTime"].is_string() && cond["lastTransitionTime"].is_string());
        assert!(approval.validate_update(&new, &old).is_empty());
        assert_eq!(s.row(&new)[5], json!("Approved"));
        // Once approved, a denial is a second, exclusive decision.
        let mut denied = new.clone();
        denied["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Denied", "status": "True"}));
        let mut denied = approval.decode(denied).unwrap();
        approval.prepare_for_update(&mut denied, &new);
        assert_eq!(
            messages(&approval.validate_update(&denied, &new)),
            vec![
                r#"status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually exclusive"#
            ]
        );
    }

    #[test]
    fn signers_issue_through_status_once() {
        let s = Csr::new();
        let old = created(&s, valid_spec());
        let mut new = old.clone();
        new["status"] = json!({"certificate": b64("not a certificate")});
        s.prepare_for_status_update(&mut new, &old);
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                r#"status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block"#
            ]
        );
    }

    #[test]
    fn row_prints_signer_requestor_duration_condition() {
        let s = Csr::new();
        let obj = created(&s, valid_spec());
        let row = s.row(&obj);
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(row[2], json!("kubernetes.io/kube-apiserver-client-kubelet"));
        assert_eq!(row[3], json!("system:bootstrap:abcdef"));
        assert_eq!(row[4], json!("24h"));
        assert_eq!(row[5], json!("Pending"));
        assert_eq!(
            s.selectable_fields()[0].value(&obj),
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
    }
}
