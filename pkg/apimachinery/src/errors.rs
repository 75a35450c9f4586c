//! API errors as upstream's `k8s.io/apimachinery/pkg/api/errors` shapes them: every error a
//! client sees is a `metav1.Status` with an HTTP code, a machine-readable reason, a message
//! worded as upstream words it, and details naming the object.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};

use crate::field::{ErrorList, FieldError};

/// The machine-readable `reason` of a failure `Status` (upstream `metav1.StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusReason {
    Unknown,
    Unauthorized,
    Forbidden,
    NotFound,
    AlreadyExists,
    Conflict,
    Gone,
    Invalid,
    ServerTimeout,
    Timeout,
    TooManyRequests,
    BadRequest,
    MethodNotAllowed,
    NotAcceptable,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    InternalError,
    Expired,
    ServiceUnavailable,
}

impl StatusReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::Unknown => "",
            StatusReason::Unauthorized => "Unauthorized",
            StatusReason::Forbidden => "Forbidden",
            StatusReason::NotFound => "NotFound",
            StatusReason::AlreadyExists => "AlreadyExists",
            StatusReason::Conflict => "Conflict",
            StatusReason::Gone => "Gone",
            StatusReason::Invalid => "Invalid",
            StatusReason::ServerTimeout => "ServerTimeout",
            StatusReason::Timeout => "Timeout",
            StatusReason::TooManyRequests => "TooManyRequests",
            StatusReason::BadRequest => "BadRequest",
            StatusReason::MethodNotAllowed => "MethodNotAllowed",
            StatusReason::NotAcceptable => "NotAcceptable",
            StatusReason::RequestEntityTooLarge => "RequestEntityTooLarge",
            StatusReason::UnsupportedMediaType => "UnsupportedMediaType",
            StatusReason::InternalError => "InternalError",
            StatusReason::Expired => "Expired",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource qualified by its API group (`deployments.apps`, or just `pods` for core).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind qualified by its API group (`Deployment.apps`, or `Pod`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl GroupKind {
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        GroupKind {
            group: group.into(),
            kind: kind.into(),
        }
    }
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

const OBJECT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// An error that is sent to clients as a failure `Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    pub code: u16,
    pub reason: StatusReason,
    pub message: String,
    pub details: Option<StatusDetails>,
}

impl StatusError {
    pub fn new(code: u16, reason: StatusReason, message: impl Into<String>) -> Self {
        StatusError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    fn resource_details(resource: &GroupResource, name: &str) -> StatusDetails {
        StatusDetails {
            group: non_empty(&resource.group),
            kind: non_empty(&resource.resource),
            name: non_empty(name),
            ..Default::default()
        }
    }

    pub fn not_found(resource: &GroupResource, name: &str) -> Self {
        Self::new(
            404,
            StatusReason::NotFound,
            format!("{resource} {name:?} not found"),
        )
        .with_details(Self::resource_details(resource, name))
    }

    pub fn already_exists(resource: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            StatusReason::AlreadyExists,
            format!("{resource} {name:?} already exists"),
        )
        .with_details(Self::resource_details(resource, name))
    }

    /// The name made from `generateName` collided with an existing object.
    pub fn generate_name_conflict(resource: &GroupResource, name: &str) -> Self {
        let mut details = Self::resource_details(resource, name);
        details.retry_after_seconds = Some(1);
        Self::new(
            409,
            StatusReason::AlreadyExists,
            format!(
                "{resource} {name:?} already exists, the server was not able to generate a unique name for the object"
            ),
        )
        .with_details(details)
    }

    pub fn conflict(resource: &GroupResource, name: &str, cause: impl fmt::Display) -> Self {
        Self::new(
            409,
            StatusReason::Conflict,
            format!("Operation cannot be fulfilled on {resource} {name:?}: {cause}"),
        )
        .with_details(Self::resource_details(resource, name))
    }

    /// The optimistic-concurrency failure, worded as upstream's registry words it.
    pub fn object_modified(resource: &GroupResource, name: &str) -> Self {
        Self::conflict(resource, name, OBJECT_MODIFIED)
    }

    pub fn invalid(kind: &GroupKind, name: &str, errors: &ErrorList) -> Self {
        let causes = errors
            .iter()
            .map(|e| StatusCause {
                reason: Some(e.kind.cause_type().to_string()),
                message: Some(e.body()),
                field: Some(e.field.clone()),
            })
            .collect();
        let message = format!("{kind} {name:?} is invalid: {}", aggregate(errors));
        Self::new(422, StatusReason::Invalid, message).with_details(StatusDetails {
            group: non_empty(&kind.group),
            kind: non_empty(&kind.kind),
            name: non_empty(name),
            causes: Some(causes),
            ..Default::default()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, StatusReason::BadRequest, message)
    }

    pub fn method_not_supported(resource: &GroupResource, action: &str) -> Self {
        Self::new(
            405,
            StatusReason::MethodNotAllowed,
            format!(
                "{action} is not supported on resources of kind {:?}",
                resource.to_string()
            ),
        )
        .with_details(Self::resource_details(resource, ""))
    }

    pub fn forbidden(resource: &GroupResource, name: &str, cause: impl fmt::Display) -> Self {
        let message = match (resource.resource.is_empty(), name.is_empty()) {
            (true, _) => format!("forbidden: {cause}"),
            (false, true) => format!("{resource} is forbidden: {cause}"),
            (false, false) => format!("{resource} {name:?} is forbidden: {cause}"),
        };
        Self::new(403, StatusReason::Forbidden, message)
            .with_details(Self::resource_details(resource, name))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, StatusReason::Unauthorized, message)
    }

    /// A watch or list asked for a resourceVersion that has been compacted away.
    pub fn resource_expired(message: impl Into<String>) -> Self {
        Self::new(410, StatusReason::Expired, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, StatusReason::Gone, message)
    }

    pub fn request_entity_too_large(message: impl fmt::Display) -> Self {
        Self::new(
            413,
            StatusReason::RequestEntityTooLarge,
            format!("Request entity too large: {message}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml (content type {content_type:?})"
            ),
        )
    }

    pub fn not_acceptable(accepted: &[&str]) -> Self {
        Self::new(
            406,
            StatusReason::NotAcceptable,
            format!(
                "only the following media types are accepted: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn internal(cause: impl fmt::Display) -> Self {
        let cause = cause.to_string();
        Self::new(
            500,
            StatusReason::InternalError,
            format!("Internal error occurred: {cause}"),
        )
        .with_details(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(cause),
                ..Default::default()
            }]),
            ..Default::default()
        })
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(503, StatusReason::ServiceUnavailable, message)
    }

    pub fn timeout(message: impl fmt::Display, retry_after_seconds: i32) -> Self {
        Self::new(504, StatusReason::Timeout, format!("Timeout: {message}")).with_details(
            StatusDetails {
                retry_after_seconds: Some(retry_after_seconds),
                ..Default::default()
            },
        )
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        Self::new(429, StatusReason::TooManyRequests, message).with_details(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..Default::default()
        })
    }

    /// The `metav1.Status` object sent on the wire.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.clone(),
            message: Some(self.message.clone()),
            metadata: ListMeta::default(),
            reason: non_empty(self.reason.as_str()),
            status: Some("Failure".to_string()),
        }
    }

    /// Rebuild an error from a `Status` a server sent (used by clients and tests).
    pub fn from_status(status: &Status) -> Self {
        let reason = status
            .reason
            .as_deref()
            .map(reason_from_str)
            .unwrap_or(StatusReason::Unknown);
        StatusError {
            code: status
                .code
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500),
            reason,
            message: status.message.clone().unwrap_or_default(),
            details: status.details.clone(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.reason == StatusReason::NotFound
    }

    pub fn is_already_exists(&self) -> bool {
        self.reason == StatusReason::AlreadyExists
    }

    pub fn is_conflict(&self) -> bool {
        self.reason == StatusReason::Conflict
    }

    /// An optimistic-concurrency failure ([`StatusError::object_modified`]), as opposed to
    /// other conflicts such as server-side apply's field ownership.
    pub fn is_object_modified(&self) -> bool {
        self.is_conflict() && self.message.ends_with(OBJECT_MODIFIED)
    }
}

fn reason_from_str(s: &str) -> StatusReason {
    use StatusReason::*;
    [
        Unauthorized,
        Forbidden,
        NotFound,
        AlreadyExists,
        Conflict,
        Gone,
        Invalid,
        ServerTimeout,
        Timeout,
        TooManyRequests,
        BadRequest,
        MethodNotAllowed,
        NotAcceptable,
        RequestEntityTooLarge,
        UnsupportedMediaType,
        InternalError,
        Expired,
        ServiceUnavailable,
    ]
    .into_iter()
    .find(|r| r.as_str() == s)
    .unwrap_or(Unknown)
}

/// Upstream's `utilerrors.NewAggregate(...).Error()`: a single error prints bare, several
/// print as `[a, b]`.
fn aggregate(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Path;

    #[test]
    fn not_found_message_matches_upstream() {
        let e = StatusError::not_found(&GroupResource::new("", "pods"), "nginx");
        assert_eq!(e.message, r#"pods "nginx" not found"#);
        let e = StatusError::not_found(&GroupResource::new("apps", "deployments"), "web");
        assert_eq!(e.message, r#"deployments.apps "web" not found"#);
        let s = e.to_status();
        assert_eq!(s.code, Some(404));
        assert_eq!(s.reason.as_deref(), Some("NotFound"));
        let d = s.details.expect("details");
        assert_eq!(d.group.as_deref(), Some("apps"));
        assert_eq!(d.kind.as_deref(), Some("deployments"));
        assert_eq!(d.name.as_deref(), Some("web"));
    }

    #[test]
    fn conflict_message_matches_upstream() {
        let e = StatusError::object_modified(&GroupResource::new("", "configmaps"), "c");
        assert_eq!(
            e.message,
            r#"Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again"#
        );
        assert_eq!(e.code, 409);
    }

    #[test]
    fn invalid_aggregates_field_errors() {
        let kind = GroupKind::new("", "Pod");
        let one = vec![FieldError::required(
            &Path::new("spec").child("containers"),
            "",
        )];
        let e = StatusError::invalid(&kind, "p", &one);
        assert_eq!(
            e.message,
            r#"Pod "p" is invalid: spec.containers: Required value"#
        );
        let two = vec![
            FieldError::required(&Path::new("metadata").child("name"), ""),
            FieldError::invalid(
                &Path::new("spec").child("replicas"),
                -1,
                "must be greater than or equal to 0",
            ),
        ];
        let e = StatusError::invalid(&GroupKind::new("apps", "Deployment"), "d", &two);
        assert_eq!(
            e.message,
            r#"Deployment.apps "d" is invalid: [metadata.name: Required value, spec.replicas: Invalid value: -1: must be greater than or equal to 0]"#
        );
        let causes = e.details.and_then(|d| d.causes).expect("causes");
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[1].field.as_deref(), Some("spec.replicas"));
        assert_eq!(e.code, 422);
    }

    #[test]
    fn status_round_trips() {
        let e = StatusError::resource_expired("too old resource version: 1 (5)");
        assert_eq!(StatusError::from_status(&e.to_status()), e);
    }
}
