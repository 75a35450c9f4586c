//! Authorization modes (`--authorization-mode`). RBAC and Node come with the kubeadm
//! work; until then AlwaysAllow is the default, as upstream's binary default is.

use apimachinery::errors::GroupResource;
use apimachinery::StatusError;

use crate::request::{RequestInfo, UserInfo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    AlwaysAllow,
    AlwaysDeny,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "AlwaysAllow" => Ok(Mode::AlwaysAllow),
            "AlwaysDeny" => Ok(Mode::AlwaysDeny),
            other => Err(format!("authorization mode {other:?} is not supported (supported: AlwaysAllow, AlwaysDeny)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    modes: Vec<Mode>,
}

impl Authorizer {
    pub fn new(modes: Vec<Mode>) -> Self {
        Authorizer { modes }
    }

    pub fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Result<(), StatusError> {
        // The first mode decides: both modes here always have an opinion.
        match self.modes.first() {
            Some(Mode::AlwaysAllow) => Ok(()),
            Some(Mode::AlwaysDeny) | None => Err(forbidden(user, info)),
        }
    }
}

/// Upstream's wording of a denied request.
pub fn forbidden(user: &UserInfo, info: &RequestInfo) -> StatusError {
    if !info.is_resource_request {
        return StatusError::forbidden(
            &GroupResource::default(),
            "",
            format!(
                "User {:?} cannot {} path {:?}",
                user.name, info.verb, info.path
            ),
        );
    }
    let resource = if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    let scope = if info.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", info.namespace)
    };
    StatusError::forbidden(
        &GroupResource::new(info.api_group.clone(), info.resource.clone()),
        &info.name,
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name, info.verb, resource, info.api_group
        ),
    )
}
