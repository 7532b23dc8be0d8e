//! Checks of the JOSE header that do not depend on the key.

use serde_json::{Map, Value};

use crate::JwtError;

/// The header members a verifier acts on, after the key-independent checks passed.
pub(crate) struct CheckedHeader<'h> {
    pub(crate) alg: &'h str,
    pub(crate) kid: &'h str,
}

/// Rejects unsigned and HMAC tokens, any `crit` member and an unexpected `typ`, and reads `kid`.
///
/// The header `alg` is returned only so that the caller can compare it with the algorithm of the
/// key that `kid` selects. It never chooses the algorithm. Other members, including `jku`,
/// `jwk`, `x5u` and `x5c`, are ignored, so a token cannot point the verifier at another key.
pub(crate) fn check_header(header: &Map<String, Value>) -> Result<CheckedHeader<'_>, JwtError> {
    let alg = match header.get("alg") {
        None => {
            return Err(JwtError::Malformed {
                reason: "the header has no `alg`",
            });
        }
        Some(Value::String(alg)) => alg.as_str(),
        Some(_) => {
            return Err(JwtError::Malformed {
                reason: "the header `alg` is not a string",
            });
        }
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgorithmNone);
    }
    if is_hmac(alg) {
        return Err(JwtError::HmacAlgorithm);
    }

    // RFC 7515, section 4.1.11: a recipient must reject a token whose `crit` lists an extension
    // it does not understand. Sigil understands none, so `crit` in any form is rejected.
    if header.contains_key("crit") {
        return Err(JwtError::CriticalHeader);
    }

    match header.get("typ") {
        None => {}
        Some(Value::String(typ)) if typ == "JWT" || typ == "JOSE" => {}
        Some(_) => return Err(JwtError::UnsupportedType),
    }

    let kid = match header.get("kid") {
        None => return Err(JwtError::MissingKeyId),
        Some(Value::String(kid)) => kid.as_str(),
        Some(_) => {
            return Err(JwtError::Malformed {
                reason: "the header `kid` is not a string",
            });
        }
    };

    Ok(CheckedHeader { alg, kid })
}

/// Returns true for `HS256`, `HS384`, `HS512` and any other `HS…` name, in any letter case.
fn is_hmac(alg: &str) -> bool {
    alg.get(..2)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("HS"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(header: Value) -> Result<(String, String), JwtError> {
        let Value::Object(map) = header else {
            panic!("test header is not an object");
        };
        check_header(&map).map(|checked| (checked.alg.to_owned(), checked.kid.to_owned()))
    }

    #[test]
    fn es256_header_accepted() {
        let checked = check(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})).unwrap();
        assert_eq!(checked, ("ES256".to_owned(), "k1".to_owned()));
        assert!(check(json!({"alg": "ES256", "kid": "k1"})).is_ok());
        assert!(check(json!({"alg": "ES256", "kid": "k1", "typ": "JOSE"})).is_ok());
    }

    #[test]
    fn none_rejected_in_any_case() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let err = check(json!({"alg": alg, "kid": "k1"})).unwrap_err();
            assert!(matches!(err, JwtError::AlgorithmNone), "{alg}: {err}");
        }
    }

    #[test]
    fn hmac_rejected() {
        for alg in ["HS256", "HS384", "HS512", "hs256", "HS1"] {
            let err = check(json!({"alg": alg, "kid": "k1"})).unwrap_err();
            assert!(matches!(err, JwtError::HmacAlgorithm), "{alg}: {err}");
        }
    }

    #[test]
    fn crit_rejected_in_any_form() {
        for crit in [json!(["exp"]), json!([]), json!("b64"), json!(null)] {
            let err = check(json!({"alg": "ES256", "kid": "k1", "crit": crit})).unwrap_err();
            assert!(matches!(err, JwtError::CriticalHeader), "{err}");
        }
    }

    #[test]
    fn unexpected_typ_rejected() {
        for typ in [json!("jwt+other"), json!("at+jwt"), json!(1), json!(null)] {
            let err = check(json!({"alg": "ES256", "kid": "k1", "typ": typ})).unwrap_err();
            assert!(matches!(err, JwtError::UnsupportedType), "{err}");
        }
    }

    #[test]
    fn kid_required() {
        let err = check(json!({"alg": "ES256"})).unwrap_err();
        assert!(matches!(err, JwtError::MissingKeyId), "{err}");

        let err = check(json!({"alg": "ES256", "kid": 7})).unwrap_err();
        assert!(matches!(err, JwtError::Malformed { .. }), "{err}");
    }

    #[test]
    fn alg_required_as_string() {
        let err = check(json!({"kid": "k1"})).unwrap_err();
        assert!(matches!(err, JwtError::Malformed { .. }), "{err}");

        let err = check(json!({"alg": ["ES256"], "kid": "k1"})).unwrap_err();
        assert!(matches!(err, JwtError::Malformed { .. }), "{err}");
    }
}
