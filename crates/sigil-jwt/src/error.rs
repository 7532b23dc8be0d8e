use sigil_core::CoreError;
use thiserror::Error;
use time::OffsetDateTime;

/// Errors raised while creating keys, minting JWT-SVIDs or verifying them.
///
/// No variant carries a token, a signature or key material, so messages and `Debug` output are
/// safe to log. Values that come from an untrusted token appear only when they are short and
/// printable (see [`JwtError::UnknownKeyId`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The system random number generator or the key generator failed.
    #[error("failed to generate an ES256 signing key; check the system random number generator")]
    KeyGeneration,

    /// A private key could not be read as an ECDSA P-256 PKCS#8 key.
    #[error("invalid signing key: {reason}; provide a PKCS#8 `PRIVATE KEY` PEM of a P-256 key")]
    InvalidPrivateKey {
        /// The defect found in the key.
        reason: &'static str,
    },

    /// The ES256 signature or the random `jti` could not be produced by aws-lc-rs.
    #[error("failed to sign the JWT-SVID: ES256 signing or the random number generator failed")]
    Signing,

    /// A stored key set document is malformed or breaks a key set rule.
    #[error("invalid key set: {reason}")]
    InvalidKeySet {
        /// The rule that failed. Never contains key material.
        reason: String,
    },

    /// A key set operation would break a key set rule, such as making a retired key current.
    #[error("invalid key rotation: {reason}")]
    InvalidRotation {
        /// The rule that failed.
        reason: &'static str,
    },

    /// Two keys share one key ID, so a verifier could not tell which key signed a token.
    #[error("duplicate key ID `{kid}`; every key in a key set or JWKS needs its own `kid`")]
    DuplicateKeyId {
        /// The key ID that occurs twice.
        kid: String,
    },

    /// A mint request names an issuer that is empty or contains control characters.
    #[error("invalid issuer: {reason}")]
    InvalidIssuer {
        /// The rule that failed.
        reason: &'static str,
    },

    /// A mint request names an audience that is empty or contains control characters.
    #[error("invalid audience: {reason}")]
    InvalidAudience {
        /// The rule that failed.
        reason: &'static str,
    },

    /// A mint request has a lifetime outside 1 second to 1 hour.
    #[error(
        "invalid token lifetime of {seconds} s: a JWT-SVID lives at least 1 second and at most \
         1 hour"
    )]
    InvalidLifetime {
        /// The requested lifetime, in whole seconds.
        seconds: i64,
    },

    /// A time computed from a request is outside the range a JWT can carry.
    #[error("time out of range: {reason}")]
    TimeOutOfRange {
        /// The time that overflowed.
        reason: &'static str,
    },

    /// A token is longer than the limit, so it is rejected before it is parsed.
    #[error("token of {len} bytes is longer than the limit of {max} bytes")]
    TokenTooLarge {
        /// The token length in bytes.
        len: usize,
        /// The maximum length in bytes.
        max: usize,
    },

    /// A JWKS has no keys, so a verifier built from it could never accept a token.
    #[error("the JWKS has no keys; publish at least one ES256 key")]
    EmptyJwks,

    /// A JWKS entry is not an ES256 (EC P-256) signing key with a key ID.
    #[error("unsupported JWKS key at index {index}: {reason}; only EC P-256 ES256 keys are used")]
    UnsupportedJwk {
        /// The position of the key in the `keys` array.
        index: usize,
        /// The rule that failed.
        reason: &'static str,
    },

    /// A token is not a compact JWS made of a JSON object header and payload.
    #[error("malformed token: {reason}")]
    Malformed {
        /// The structural rule that failed.
        reason: &'static str,
    },

    /// The header or payload repeats a member name, which JSON parsers resolve differently.
    #[error("malformed token: the {part} repeats a member name; every name may occur once")]
    DuplicateMember {
        /// `header` or `payload`.
        part: &'static str,
    },

    /// The header says `alg: none`, so the token is unsigned.
    #[error("unsigned token (`alg: none`) rejected; JWT-SVIDs must be signed with ES256")]
    AlgorithmNone,

    /// The header names an HMAC algorithm. Public keys are never used as HMAC secrets.
    #[error("HMAC algorithm (`HS256`, `HS384` or `HS512`) rejected; JWT-SVIDs use ES256")]
    HmacAlgorithm,

    /// The header `alg` differs from the algorithm of the key that `kid` selects.
    #[error("header `alg` does not match the {expected} key selected by `kid`")]
    AlgorithmMismatch {
        /// The algorithm of the selected key.
        expected: &'static str,
    },

    /// The header has no `kid`, so the verifier cannot select a key.
    #[error("missing `kid` header; a JWT-SVID names its signing key")]
    MissingKeyId,

    /// The header `kid` names no key in the verifier's JWKS.
    #[error("unknown `kid` {kid}; refresh the JWKS if the issuer rotated its keys")]
    UnknownKeyId {
        /// The key ID in backticks when it is short and printable, otherwise a placeholder.
        kid: String,
    },

    /// The header carries `crit`. Sigil supports no JWS extension, so it must reject them all.
    #[error("`crit` header rejected; no JWS extension is supported")]
    CriticalHeader,

    /// The header `typ` is neither `JWT` nor `JOSE`.
    #[error("unsupported `typ` header; a JWT-SVID has `typ` `JWT`, `JOSE` or none")]
    UnsupportedType,

    /// The signature does not verify with the key selected by `kid`.
    #[error("invalid signature")]
    BadSignature,

    /// A required claim is absent.
    #[error("missing `{claim}` claim")]
    MissingClaim {
        /// The claim name.
        claim: &'static str,
    },

    /// A claim has the wrong JSON type.
    #[error("invalid `{claim}` claim: expected {expected}")]
    InvalidClaimType {
        /// The claim name.
        claim: &'static str,
        /// The JSON type the claim must have.
        expected: &'static str,
    },

    /// The verifier was called without any expected audience. This is a caller error.
    #[error("no expected audience given; pass the audience this service accepts")]
    NoExpectedAudience,

    /// The token's `aud` contains none of the expected audiences.
    #[error("audience mismatch: the token is meant for another service")]
    AudienceMismatch,

    /// The token expired before `now`, after allowing the clock skew leeway.
    #[error("token expired at {expired_at}; request a new token")]
    Expired {
        /// The `exp` claim.
        expired_at: OffsetDateTime,
    },

    /// `nbf` or `iat` lies in the future beyond the clock skew leeway.
    #[error("token not valid before {valid_from} (`{claim}` claim); check the clocks")]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// The time the claim names.
        valid_from: OffsetDateTime,
    },

    /// The `sub` claim is not a workload SPIFFE ID.
    #[error("invalid `sub` claim: {0}")]
    InvalidSubject(#[source] CoreError),

    /// The `sub` claim names a SPIFFE ID in a trust domain the verifier does not accept.
    #[error("subject in trust domain `{subject_trust_domain}` rejected; expected `{expected}`")]
    ForeignTrustDomain {
        /// The trust domain of the `sub` claim.
        subject_trust_domain: String,
        /// The verifier's trust domain.
        expected: String,
    },
}
