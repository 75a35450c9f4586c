//! Service account tokens, as upstream's `pkg/serviceaccount`: JWTs signed with
//! `--service-account-signing-key-file` (RS256 for RSA keys, ES256 for P-256 keys),
//! verified with the public keys of `--service-account-key-file` (public or private key
//! PEMs, several files allowed) and of the signing key, issued by the first
//! `--service-account-issuer` and accepted from any of them, for `--api-audiences`
//! (default: the issuers).
//!
//! Claims as upstream's bound tokens: `iss`, `sub` (`system:serviceaccount:<ns>:<name>`),
//! `aud`, `exp`, `iat`, `nbf`, `jti`, and `kubernetes.io` with `namespace`,
//! `serviceaccount {name, uid}` and the bound object (`pod`, `secret` or `node`, plus the
//! pod's `node`). A token authenticates while it is unexpired, its issuer and audience
//! match, and its service account and bound object still exist with the same uid.
//!
//! Deviation: without `--service-account-signing-key-file` (upstream refuses to start),
//! an ECDSA P-256 key is generated once into `<cert-dir>/sa.key` so tests and
//! local-up-cluster work without extra PKI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apimachinery::StatusError;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest as _;

use crate::registry::store::Store;
use crate::request::UserInfo;

pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The expiration the ServiceAccount admission plugin asks for, which a server with
/// `--service-account-extend-token-expiration` turns into a year (upstream's
/// `WarnOnlyBoundTokenExpirationSeconds`), so old clients that never re-read their token
/// keep working; `warnafter` records the real expiry.
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
/// Upstream's `ExpirationExtensionSeconds`: one year.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// Clock skew tolerated when checking `exp` and `nbf` (upstream's leeway).
const LEEWAY_SECONDS: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// A reference in the private claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<PrivateClaims>,
    pub nbf: i64,
    pub sub: String,
}

struct VerifyKey {
    kid: String,
    alg: Algorithm,
    key: DecodingKey,
}

/// The stores a token's references are checked against.
#[derive(Clone)]
pub struct Getters {
    pub service_accounts: Arc<Store>,
    pub pods: Arc<Store>,
    pub secrets: Arc<Store>,
    pub nodes: Arc<Store>,
}

/// Issues and verifies service account tokens.
pub struct ServiceAccountTokens {
    signing: EncodingKey,
    signing_alg: Algorithm,
    signing_kid: String,
    verify: Vec<VerifyKey>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    max_expiration: Option<i64>,
    extend_expiration: bool,
    getters: Option<Getters>,
}

/// What a token is issued for.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: ObjectRef,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub pod: Option<ObjectRef>,
    pub secret: Option<ObjectRef>,
    pub node: Option<ObjectRef>,
}

/// Options as flags name them.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    pub signing_key_file: Option<PathBuf>,
    pub key_files: Vec<PathBuf>,
    pub issuers: Vec<String>,
    pub api_audiences: Vec<String>,
    pub max_expiration_seconds: Option<i64>,
    pub extend_expiration: bool,
    /// Where a signing key is generated when none is configured.
    pub cert_dir: PathBuf,
}

fn kid_of(public: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(public))
}

fn parse_err(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Parse {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A private key PEM → (algorithm, signing key, verification key, kid).
fn load_private(
    path: &Path,
    pem_text: &[u8],
) -> Result<(Algorithm, EncodingKey, VerifyKey), KeyError> {
    let block = pem_blocks(path, pem_text)?
        .into_iter()
        .find(|(label, _)| label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| parse_err(path, "no private key found"))?;
    let (label, der) = block;
    let rng = ring::rand::SystemRandom::new();
    match label.as_str() {
        "RSA PRIVATE KEY" => {
            let pair = ring::rsa::KeyPair::from_der(&der)
                .map_err(|e| parse_err(path, format!("RSA key: {e}")))?;
            let public = pair.public().as_ref().to_vec();
            Ok((
                Algorithm::RS256,
                EncodingKey::from_rsa_der(&der),
                VerifyKey {
                    kid: kid_of(&public),
                    alg: Algorithm::RS256,
                    key: DecodingKey::from_rsa_der(&public),
                },
            ))
        }
        "PRIVATE KEY" => {
            if let Ok(pair) = ring::rsa::KeyPair::from_pkcs8(&der) {
                let public = pair.public().as_ref().to_vec();
                let signing = EncodingKey::from_rsa_pem(pem_text)
                    .map_err(|e| parse_err(path, format!("RSA key: {e}")))?;
                return Ok((
                    Algorithm::RS256,
                    signing,
                    VerifyKey {
                        kid: kid_of(&public),
                        alg: Algorithm::RS256,
                        key: DecodingKey::from_rsa_der(&public),
                    },
                ));
            }
            let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &der,
                &rng,
            )
            .map_err(|e| parse_err(path, format!("neither an RSA nor a P-256 ECDSA key: {e}")))?;
            use ring::signature::KeyPair as _;
            let public = pair.public_key().as_ref().to_vec();
            Ok((
                Algorithm::ES256,
                EncodingKey::from_ec_der(&der),
                VerifyKey {
                    kid: kid_of(&public),
                    alg: Algorithm::ES256,
                    key: DecodingKey::from_ec_der(&public),
                },
            ))
        }
        other => Err(parse_err(
            path,
            format!("unsupported key type {other:?}: use PKCS#1 RSA or PKCS#8 RSA/P-256 keys"),
        )),
    }
}

/// The verification keys of a PEM file of public or private keys.
fn load_public(path: &Path, pem_text: &[u8]) -> Result<Vec<VerifyKey>, KeyError> {
    let mut out = Vec::new();
    for (label, der) in pem_blocks(path, pem_text)? {
        match label.as_str() {
            "RSA PUBLIC KEY" => out.push(VerifyKey {
                kid: kid_of(&der),
                alg: Algorithm::RS256,
                key: DecodingKey::from_rsa_der(&der),
            }),
            "PUBLIC KEY" => {
                use x509_parser::prelude::FromDer as _;
                let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&der)
                    .map_err(|e| parse_err(path, format!("public key: {e}")))?;
                let bits = spki.subject_public_key.data.to_vec();
                let oid = spki.algorithm.algorithm.to_id_string();
                let alg = match oid.as_str() {
                    "1.2.840.113549.1.1.1" => Algorithm::RS256,
                    "1.2.840.10045.2.1" => Algorithm::ES256,
                    other => {
                        return Err(parse_err(
                            path,
                            format!("unsupported public key algorithm {other}"),
                        ))
                    }
                };
                let key = if alg == Algorithm::RS256 {
                    DecodingKey::from_rsa_der(&bits)
                } else {
                    DecodingKey::from_ec_der(&bits)
                };
                out.push(VerifyKey {
                    kid: kid_of(&bits),
                    alg,
                    key,
                });
            }
            l if l.ends_with("PRIVATE KEY") => {
                let block = format!(
                    "-----BEGIN {l}-----\n{}\n-----END {l}-----\n",
                    base64::engine::general_purpose::STANDARD.encode(&der)
                );
                out.push(load_private(path, block.as_bytes())?.2);
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(parse_err(path, "no public or private keys found"));
    }
    Ok(out)
}

fn pem_blocks(path: &Path, text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
        let pem = pem.map_err(|e| parse_err(path, format!("PEM: {e}")))?;
        out.push((pem.label, pem.contents));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The generated signing key: reused across restarts so issued tokens stay valid.
fn generated_key(cert_dir: &Path) -> Result<PathBuf, KeyError> {
    let path = cert_dir.join("sa.key");
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(cert_dir).map_err(|source| KeyError::Read {
        path: cert_dir.to_path_buf(),
        source,
    })?;
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| parse_err(&path, format!("generating a key: {e}")))?;
    pki::write_file(&path, pair.serialize_pem().as_bytes(), 0o600)
        .map_err(|e| parse_err(&path, e.to_string()))?;
    tracing::info!(path = %path.display(), "generated the service account signing key");
    Ok(path)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl ServiceAccountTokens {
    pub fn new(opts: &TokenOptions) -> Result<Self, KeyError> {
        let signing_path = match &opts.signing_key_file {
            Some(p) => p.clone(),
            None => generated_key(&opts.cert_dir)?,
        };
        let text = read(&signing_path)?;
        let (signing_alg, signing, own) = load_private(&signing_path, &text)?;
        let signing_kid = own.kid.clone();
        let mut verify = vec![own];
        for path in &opts.key_files {
            for key in load_public(path, &read(path)?)? {
                if !verify.iter().any(|k| k.kid == key.kid) {
                    verify.push(key);
                }
            }
        }
        let issuers = if opts.issuers.is_empty() {
            vec![DEFAULT_ISSUER.to_string()]
        } else {
            opts.issuers.clone()
        };
        let audiences = if opts.api_audiences.is_empty() {
            issuers.clone()
        } else {
            opts.api_audiences.clone()
        };
        Ok(ServiceAccountTokens {
            signing,
            signing_alg,
            signing_kid,
            verify,
            issuers,
            audiences,
            max_expiration: opts.max_expiration_seconds,
            extend_expiration: opts.extend_expiration,
            getters: None,
        })
    }

    pub fn with_getters(mut self, getters: Getters) -> Self {
        self.getters = Some(getters);
        self
    }

    /// The API server's audiences (the default of a TokenRequest).
    pub fn api_audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn max_expiration(&self) -> Option<i64> {
        self.max_expiration
    }

    /// Whether a pod-bound request of [`WARN_ONLY_EXPIRATION_SECONDS`] for the API
    /// server's audiences gets a year-long token.
    pub fn extends(&self, spec: &TokenSpec) -> bool {
        self.extend_expiration
            && spec.pod.is_some()
            && spec.expiration_seconds == WARN_ONLY_EXPIRATION_SECONDS
            && spec.audiences.iter().any(|a| self.audiences.contains(a))
    }

    /// Signs a token; returns it with its claims.
    pub fn issue(&self, spec: &TokenSpec) -> Result<(String, Claims), StatusError> {
        let iat = now();
        let mut exp = iat + spec.expiration_seconds;
        let mut warnafter = None;
        if self.extends(spec) {
            warnafter = Some(exp);
            exp = iat + EXTENDED_EXPIRATION_SECONDS;
        }
        let claims = Claims {
            aud: spec.audiences.clone(),
            exp,
            iat,
            iss: self.issuers[0].clone(),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            kubernetes: Some(PrivateClaims {
                namespace: spec.namespace.clone(),
                serviceaccount: spec.service_account.clone(),
                pod: spec.pod.clone(),
                secret: spec.secret.clone(),
                node: spec.node.clone(),
                warnafter,
            }),
            nbf: iat,
            sub: format!(
                "system:serviceaccount:{}:{}",
                spec.namespace, spec.service_account.name
            ),
        };
        let mut header = Header::new(self.signing_alg);
        header.kid = Some(self.signing_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing)
            .map_err(|e| StatusError::internal(format!("failed to generate token: {e}")))?;
        Ok((token, claims))
    }

    /// Verifies signature, issuer, audience and times. `None` when the token is not a
    /// service account JWT of ours (another authenticator may know it).
    pub fn verify(&self, token: &str) -> Option<Result<Claims, String>> {
        self.verify_for(token, &self.audiences)
    }

    /// [`Self::verify`] for other audiences (a TokenReview's `spec.audiences`).
    pub fn verify_for(&self, token: &str, audiences: &[String]) -> Option<Result<Claims, String>> {
        if token.split('.').count() != 3 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        // Issuer first, without the signature: a JWT of another issuer is not ours.
        let mut peek = Validation::new(header.alg);
        peek.insecure_disable_signature_validation();
        peek.validate_exp = false;
        peek.validate_aud = false;
        peek.set_required_spec_claims::<&str>(&[]);
        let unverified =
            jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(&[]), &peek).ok()?;
        let iss = unverified.claims.get("iss").and_then(Value::as_str)?;
        if !self.issuers.iter().any(|i| i == iss) {
            return None;
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&self.issuers);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let candidates = self.verify.iter().filter(|k| {
            k.alg == header.alg && header.kid.as_deref().is_none_or(|kid| kid == k.kid)
        });
        let mut last = String::from("no key matches the token");
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Some(Ok(data.claims)),
                Err(e) => last = e.to_string(),
            }
        }
        // A kid nobody knows: try every key of the algorithm (keys rotated by file).
        if header.kid.is_some() {
            for key in self.verify.iter().filter(|k| k.alg == header.alg) {
                if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                    return Some(Ok(data.claims));
                }
            }
        }
        Some(Err(last))
    }

    /// The user a bearer token stands for; `None` when it is not a service account token.
    pub async fn authenticate(&self, token: &str) -> Option<Result<UserInfo, StatusError>> {
        self.authenticate_for(token, &self.audiences).await
    }

    /// [`Self::authenticate`] for other audiences (a TokenReview's `spec.audiences`).
    pub async fn authenticate_for(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Option<Result<UserInfo, StatusError>> {
        let claims = match self.verify_for(token, audiences)? {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "service account token rejected");
                return Some(Err(StatusError::unauthorized("Unauthorized")));
            }
        };
        Some(self.user_of(&claims).await.map_err(|e| {
            tracing::debug!(error = %e, "service account token invalidated");
            StatusError::unauthorized("Unauthorized")
        }))
    }

    async fn user_of(&self, claims: &Claims) -> Result<UserInfo, String> {
        let private = claims
            .kubernetes
            .as_ref()
            .ok_or("legacy (secret-based) service account tokens are not supported")?;
        let ns = private.namespace.as_str();
        let sa = &private.serviceaccount;
        if claims.sub != format!("system:serviceaccount:{ns}:{}", sa.name) {
            return Err("sub does not match the service account claims".into());
        }
        let mut extra: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(getters) = &self.getters {
            check_ref(&getters.service_accounts, ns, sa, "ServiceAccount").await?;
            if let Some(pod) = &private.pod {
                check_ref(&getters.pods, ns, pod, "Pod").await?;
            }
            if let Some(secret) = &private.secret {
                check_ref(&getters.secrets, ns, secret, "Secret").await?;
            }
            // A pod-bound token names the pod's node for information only.
            if private.pod.is_none() {
                if let Some(node) = &private.node {
                    check_ref(&getters.nodes, "", node, "Node").await?;
                }
            }
        }
        if let Some(pod) = &private.pod {
            extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pod.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![pod.uid.clone()],
            );
        }
        if let Some(node) = &private.node {
            extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![node.name.clone()],
            );
            extra.insert(
                "authentication.kubernetes.io/node-uid".into(),
                vec![node.uid.clone()],
            );
        }
        if let Some(jti) = &claims.jti {
            extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={jti}")],
            );
        }
        Ok(UserInfo {
            name: claims.sub.clone(),
            uid: sa.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
            extra,
        })
    }
}

/// The referenced object must exist, with the same uid, and not be going away.
async fn check_ref(
    store: &Store,
    namespace: &str,
    r: &ObjectRef,
    kind: &str,
) -> Result<(), String> {
    let obj = store.get(namespace, &r.name).await.map_err(|e| {
        format!(
            "{kind} {namespace}/{} referenced by the token: {}",
            r.name, e.message
        )
    })?;
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !r.uid.is_empty() && uid != r.uid {
        return Err(format!(
            "{kind} UID ({uid}) does not match claim ({})",
            r.uid
        ));
    }
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null())
    {
        return Err(format!("{kind} {namespace}/{} is being deleted", r.name));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(dir: &Path, extra: impl FnOnce(&mut TokenOptions)) -> ServiceAccountTokens {
        let mut opts = TokenOptions {
            cert_dir: dir.to_path_buf(),
            extend_expiration: true,
            ..Default::default()
        };
        extra(&mut opts);
        ServiceAccountTokens::new(&opts).unwrap()
    }

    fn spec(aud: &[&str], seconds: i64) -> TokenSpec {
        TokenSpec {
            namespace: "ns".into(),
            service_account: ObjectRef {
                name: "bot".into(),
                uid: "sa-uid".into(),
            },
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            expiration_seconds: seconds,
            pod: None,
            secret: None,
            node: None,
        }
    }

    #[tokio::test]
    async fn issues_and_authenticates_with_a_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path(), |_| {});
        assert!(dir.path().join("sa.key").exists());
        let (token, claims) = t.issue(&spec(&[DEFAULT_ISSUER], 3600)).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:ns:bot");
        assert_eq!(claims.exp - claims.iat, 3600);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let user = t.authenticate(&token).await.unwrap().unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:bot");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
        // Same key after a restart.
        let again = tokens(dir.path(), |_| {});
        assert!(again.authenticate(&token).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn rejects_wrong_audience_issuer_key_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path(), |_| {});
        // An audience the API server does not accept (e.g. for vault).
        let (token, _) = t.issue(&spec(&["vault"], 3600)).unwrap();
        assert_eq!(t.authenticate(&token).await.unwrap().unwrap_err().code, 401);
        // Another issuer's JWT is not ours at all.
        let other_dir = tempfile::tempdir().unwrap();
        let other = tokens(other_dir.path(), |o| {
            o.issuers = vec!["https://elsewhere".into()]
        });
        let (foreign, _) = other.issue(&spec(&["https://elsewhere"], 3600)).unwrap();
        assert!(t.authenticate(&foreign).await.is_none());
        // Our issuer, someone else's key.
        let forged_dir = tempfile::tempdir().unwrap();
        let forger = tokens(forged_dir.path(), |_| {});
        let (forged, _) = forger.issue(&spec(&[DEFAULT_ISSUER], 3600)).unwrap();
        assert!(t.authenticate(&forged).await.unwrap().is_err());
        // Expired beyond the leeway.
        let (expired, _) = t.issue(&spec(&[DEFAULT_ISSUER], -120)).unwrap();
        assert!(t.authenticate(&expired).await.unwrap().is_err());
        // Not a JWT.
        assert!(t.authenticate("abc").await.is_none());
    }

    #[tokio::test]
    async fn verifies_with_key_files_and_extends_kubelet_tokens() {
        let dir = tempfile::tempdir().unwrap();
        // A signing key of another server, verified through its key file (rotation).
        let signer = tokens(dir.path(), |_| {});
        let verifier_dir = tempfile::tempdir().unwrap();
        let verifier = tokens(verifier_dir.path(), |o| {
            o.key_files = vec![dir.path().join("sa.key")];
        });
        let (token, _) = signer.issue(&spec(&[DEFAULT_ISSUER], 600)).unwrap();
        assert!(verifier.authenticate(&token).await.unwrap().is_ok());

        let mut s = spec(&[DEFAULT_ISSUER], WARN_ONLY_EXPIRATION_SECONDS);
        s.pod = Some(ObjectRef {
            name: "p".into(),
            uid: "pod-uid".into(),
        });
        let (_, claims) = signer.issue(&s).unwrap();
        assert_eq!(claims.exp - claims.iat, EXTENDED_EXPIRATION_SECONDS);
        let private = claims.kubernetes.unwrap();
        assert_eq!(
            private.warnafter,
            Some(claims.iat + WARN_ONLY_EXPIRATION_SECONDS)
        );
        assert_eq!(private.pod.unwrap().uid, "pod-uid");
    }

    /// kubeadm's keys are PKCS#1 RSA (`sa.key`) with an SPKI public key (`sa.pub`).
    #[tokio::test]
    async fn rsa_keys_as_kubeadm_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sa.key");
        let public = dir.path().join("sa.pub");
        let ok = std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&key)
            .arg("2048")
            .output();
        let Ok(out) = ok else { return };
        if !out.status.success() {
            return;
        }
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY"));
        let out = std::process::Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .output()
            .unwrap();
        assert!(out.status.success());
        let signer = ServiceAccountTokens::new(&TokenOptions {
            signing_key_file: Some(key.clone()),
            ..Default::default()
        })
        .unwrap();
        let (token, _) = signer.issue(&spec(&[DEFAULT_ISSUER], 600)).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().alg,
            Algorithm::RS256
        );
        // A server that only has the public key (and its own generated one) accepts it.
        let verifier_dir = tempfile::tempdir().unwrap();
        let verifier = tokens(verifier_dir.path(), |o| o.key_files = vec![public.clone()]);
        assert!(verifier.authenticate(&token).await.unwrap().is_ok());
        // Same kid from the private and the public form.
        let from_private = load_public(&key, &std::fs::read(&key).unwrap()).unwrap();
        let from_public = load_public(&public, &std::fs::read(&public).unwrap()).unwrap();
        assert_eq!(from_private[0].kid, from_public[0].kid);
    }

    #[test]
    fn loads_public_key_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pub_path = dir.path().join("sa.pub");
        std::fs::write(&pub_path, pair.public_key_pem()).unwrap();
        let keys = load_public(&pub_path, pair.public_key_pem().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].alg, Algorithm::ES256);
        let key_path = dir.path().join("sa.key");
        std::fs::write(&key_path, pair.serialize_pem()).unwrap();
        let t = ServiceAccountTokens::new(&TokenOptions {
            signing_key_file: Some(key_path),
            key_files: vec![pub_path],
            ..Default::default()
        })
        .unwrap();
        // The public key file names the same key as the signing key.
        assert_eq!(t.verify.len(), 1);
        assert!(load_public(&dir.path().join("x"), b"nothing").is_err());
    }
}
