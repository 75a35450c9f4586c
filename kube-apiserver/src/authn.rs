//! Authentication: x509 client certificates (CN is the user, O the groups) verified
//! against `--client-ca-file`, bearer tokens from `--token-auth-file`, service account
//! tokens ([`crate::serviceaccount`]), and anonymous requests when `--anonymous-auth`
//! allows them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use apimachinery::StatusError;
use http::HeaderMap;
use rustls::pki_types::CertificateDer;

use crate::request::UserInfo;
use crate::serviceaccount::ServiceAccountTokens;

#[derive(Debug, thiserror::Error)]
pub enum AuthnConfigError {
    #[error("reading token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("token file {path}, line {line}: {reason}")]
    Parse {
        path: String,
        line: usize,
        reason: String,
    },
}

#[derive(Default, Clone)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
    anonymous: bool,
    service_accounts: Option<Arc<ServiceAccountTokens>>,
}

impl Authenticator {
    pub fn new(anonymous: bool) -> Self {
        Authenticator {
            tokens: HashMap::new(),
            anonymous,
            service_accounts: None,
        }
    }

    /// Accept (and, for the TokenRequest API, issue) service account tokens.
    pub fn with_service_accounts(mut self, tokens: Arc<ServiceAccountTokens>) -> Self {
        self.service_accounts = Some(tokens);
        self
    }

    pub fn service_accounts(&self) -> Option<&Arc<ServiceAccountTokens>> {
        self.service_accounts.as_ref()
    }

    /// Load a static token file: CSV lines `token,user,uid[,"group1,group2"]`.
    pub fn load_token_file(&mut self, path: &Path) -> Result<(), AuthnConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthnConfigError::Read {
            path: p.clone(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 {
                return Err(AuthnConfigError::Parse {
                    path: p.clone(),
                    line: i + 1,
                    reason: "expected at least 3 columns: token,user,uid".into(),
                });
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            self.tokens.insert(
                fields[0].clone(),
                UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    pub fn add_token(&mut self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// Who sent a request: the client certificate wins, then a bearer token, then
    /// anonymous.
    /// `cert_user` is the connection's verified client certificate's user
    /// ([`certificate_user`]), parsed once per connection.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        cert_user: Option<&UserInfo>,
    ) -> Result<UserInfo, StatusError> {
        if let Some(user) = cert_user {
            return Ok(user.clone());
        }
        if let Some(auth) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(token) = auth.strip_prefix("Bearer ").map(str::trim) {
                if let Some(user) = self.tokens.get(token) {
                    return Ok(with_authenticated(user.clone()));
                }
                if let Some(sa) = &self.service_accounts {
                    if let Some(result) = sa.authenticate(token).await {
                        return result;
                    }
                }
                return Err(StatusError::unauthorized("Unauthorized"));
            }
        }
        if self.anonymous {
            return Ok(UserInfo::anonymous());
        }
        Err(StatusError::unauthorized("Unauthorized"))
    }
}

impl Authenticator {
    /// A TokenReview: who `token` is for `audiences` (the API server's when empty), and
    /// the audiences it is valid for. Static tokens carry no audience: they pass only for
    /// the API server's own.
    pub async fn review_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Option<(UserInfo, Vec<String>)> {
        let sa = self.service_accounts.as_ref();
        let api: Vec<String> = sa.map(|s| s.api_audiences().to_vec()).unwrap_or_default();
        let wanted = if audiences.is_empty() {
            api.clone()
        } else {
            audiences.to_vec()
        };
        if let Some(user) = self.tokens.get(token) {
            let matching: Vec<String> =
                wanted.iter().filter(|a| api.contains(a)).cloned().collect();
            if audiences.is_empty() || !matching.is_empty() {
                return Some((with_authenticated(user.clone()), matching));
            }
            return None;
        }
        let claims = sa?.verify_for(token, &wanted)?.ok()?;
        let user = sa?.authenticate_for(token, &wanted).await?.ok()?;
        let matching = wanted
            .into_iter()
            .filter(|a| claims.aud.contains(a))
            .collect();
        Some((user, matching))
    }
}

fn with_authenticated(mut user: UserInfo) -> UserInfo {
    if !user.in_group("system:authenticated") {
        user.groups.push("system:authenticated".into());
    }
    user
}

/// The authenticated user of a verified client certificate.
pub fn certificate_user(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    user_from_certificate(cert).map(with_authenticated)
}

/// The user a verified client certificate names.
pub fn user_from_certificate(cert: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}

/// Split one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "abc,alice,1001,\"dev,ops\"\n# comment\nxyz,bob,1002\n",
        )
        .unwrap();
        let mut a = Authenticator::new(false);
        a.load_token_file(&path).unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        let u = a.authenticate(&h, None).await.unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        h.insert(http::header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(a.authenticate(&h, None).await.unwrap_err().code, 401);
        assert_eq!(
            a.authenticate(&HeaderMap::new(), None)
                .await
                .unwrap_err()
                .code,
            401
        );
    }
}
