//! Tests of the storage backends: one conformance suite run against every backend
//! (memory, etcd, and the watch cache over each), plus tests of what only one backend has.
//! The etcd tests share one etcd per test binary, each under its own key prefix; tests
//! that compact or need a fresh revision counter start their own.

// A failing unwrap is a failing test, with the location in the message.
#![allow(clippy::unwrap_used)]

mod cache;
mod common;
mod conformance;
mod etcd;
mod memory;
