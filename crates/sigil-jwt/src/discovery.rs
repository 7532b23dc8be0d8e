//! The OpenID Connect discovery document that points relying parties at the JWKS.

use serde_json::{Value, json};

/// Builds the document served at `/.well-known/openid-configuration`.
///
/// It lists the members OpenID Connect Discovery 1.0 requires (`issuer`, `jwks_uri`,
/// `response_types_supported`, `subject_types_supported` and
/// `id_token_signing_alg_values_supported`), so that generic OIDC libraries can fetch Sigil's
/// keys. Sigil signs only with ES256.
pub fn openid_configuration(issuer: &str, jwks_uri: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": jwks_uri,
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_required_members() {
        let document = openid_configuration(
            "https://sigil.example.org",
            "https://sigil.example.org/.well-known/jwks.json",
        );

        assert_eq!(
            document,
            json!({
                "issuer": "https://sigil.example.org",
                "jwks_uri": "https://sigil.example.org/.well-known/jwks.json",
                "id_token_signing_alg_values_supported": ["ES256"],
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
            })
        );
    }
}
