//! OpenAPI for the API server: the schemas of every served type, the documents kubectl
//! downloads, strict field validation and strategic merge patch metadata.
//!
//! - [`Definitions`]: every schema, generated from k8s-openapi's `JsonSchema` impls (the
//!   descriptions are upstream's) and completed with upstream's vendor extensions that
//!   k8s-openapi leaves out: `x-kubernetes-group-version-kind` on kinds and lists, the patch
//!   strategies and merge keys, list and map types. Generate once: [`Definitions::global`].
//! - [`registry`]: the (group, version, kind) → definition table ([`BUILTIN_KINDS`]) and
//!   [`ServedResource`], the description of a REST resource the API server passes to the
//!   document builders ([`builtin_served_resources`] gives upstream's defaults).
//! - [`OpenApiDocuments`]: `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version>`,
//!   serialized once with their hashes.
//! - [`unknown_fields`], [`duplicate_fields`], [`strict_field_errors`]: `fieldValidation`.
//! - [`SchemaPatchMeta`]: the definitions as `apimachinery::strategicpatch::LookupPatchMeta`.
//!
//! # Use from the API server
//!
//! At startup, once:
//!
//! ```no_run
//! use openapi::{builtin_served_resources, Definitions, DocumentOptions, OpenApiDocuments};
//! let definitions = Definitions::global();
//! let options = DocumentOptions { version: "v1.33.0".into(), ..DocumentOptions::default() };
//! let documents = OpenApiDocuments::build(definitions, &builtin_served_resources(), &options)?;
//! # Ok::<(), openapi::OpenApiError>(())
//! ```
//!
//! Serving (as kube-openapi's handlers do):
//! - `GET /openapi/v3`: `documents.v3_index.bytes`, `Content-Type: application/json`.
//! - `GET /openapi/v3/{path}` (`api/v1`, `apis/apps/v1`): `documents.v3_group_version(path)`,
//!   404 if none. With `?hash=` equal to the document's hash, add
//!   `Cache-Control: public, immutable` and a far `Expires`; with a stale hash, answer 301
//!   to `/openapi/v3/{path}?hash=<current>`; without, `Cache-Control: no-cache`. Always
//!   `ETag: document.etag()`, and 304 on a matching `If-None-Match`.
//! - `GET /openapi/v2`: `documents.v2.bytes` for JSON; kubectl asks for protobuf there
//!   (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which is not produced
//!   here: answer 406 and kubectl uses v3.
//!
//! Per write request: `strict_field_errors(definition, raw_body)` (JSON bodies; document
//! order, as upstream words them: join with `", "` after `strict decoding error: `), or
//! `unknown_fields(definition, &value)` plus the YAML parser's duplicate keys for YAML
//! bodies. Strategic merge patch: `Definitions::global().patch_meta(definition)` with
//! `apimachinery::strategicpatch::strategic_merge_patch`.
//!
//! Deliberate differences from upstream: the list definitions (`PodList`, ...) carry
//! generic descriptions, since k8s-openapi has no schema for them; parameter descriptions
//! are shortened; connect subresources (`exec`, `log`, `proxy`, ...) are not documented.

pub mod definitions;
pub mod documents;
mod extensions;
pub mod patchmeta;
pub mod registry;
pub mod strict;

pub use definitions::{Definitions, V2_REF_PREFIX, V3_REF_PREFIX};
pub use documents::{CachedDocument, DocumentOptions, OpenApiDocuments, PATCH_CONTENT_TYPES};
pub use patchmeta::SchemaPatchMeta;
pub use registry::{
    builtin_served_resources, definition_for, find_kind, BuiltinKind, GroupVersionKind,
    ServedResource, ServedSubresource, BUILTIN_KINDS,
};
pub use strict::{duplicate_fields, strict_field_errors, unknown_fields, StrictFieldError};

/// Failures of document building.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("no schema definition named {0:?}")]
    UnknownDefinition(String),
    #[error("serializing an OpenAPI document: {0}")]
    Serialize(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests;
