//! The routes file: which action on which resource a request's method and path stand for.
//!
//! ```toml
//! [[route]]
//! path = "/v1/contacts/*"      # a prefix ending in `*`, or an exact path
//! method = "GET"               # optional; any method when absent
//! action = "read"
//! resource = "tool:crm/contacts"
//! ```
//!
//! Routes are tried in file order and the first match wins. A request that matches no route is
//! denied.

use std::path::Path;

use serde::Deserialize;

use crate::GatewayError;

/// Maximum size of a routes file; a larger file is almost certainly the wrong file.
const MAX_ROUTES_FILE_LEN: u64 = 1024 * 1024;

/// The parsed routes file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    routes: Vec<Route>,
}

/// One `[[route]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route's position in the file, from 0.
    index: usize,
    path: PathPattern,
    /// Upper-case method, or `None` for every method.
    method: Option<String>,
    /// The entitlement action requests on this route are authorised as.
    pub action: String,
    /// The resource requests on this route are authorised as.
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    Prefix(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesFile {
    #[serde(default)]
    route: Vec<RouteEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    path: String,
    #[serde(default)]
    method: Option<String>,
    action: String,
    resource: String,
}

impl Routes {
    /// Reads and parses a routes file.
    pub fn load(path: &Path) -> Result<Self, GatewayError> {
        let metadata = std::fs::metadata(path).map_err(|err| GatewayError::io(path, err))?;
        if metadata.len() > MAX_ROUTES_FILE_LEN {
            return Err(GatewayError::Routes(format!(
                "{} is {} bytes, more than the maximum of {MAX_ROUTES_FILE_LEN}",
                path.display(),
                metadata.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|err| GatewayError::io(path, err))?;
        Self::parse(&text).map_err(|err| match err {
            GatewayError::Routes(detail) => {
                GatewayError::Routes(format!("{}: {detail}", path.display()))
            }
            other => other,
        })
    }

    /// Parses the TOML text of a routes file.
    pub fn parse(text: &str) -> Result<Self, GatewayError> {
        let file: RoutesFile =
            toml::from_str(text).map_err(|err| GatewayError::Routes(err.to_string()))?;
        let routes = file
            .route
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                Route::from_entry(index, entry).map_err(|detail| {
                    GatewayError::Routes(format!("route {}: {detail}", index + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        reject_shadowed(&routes)?;
        Ok(Self { routes })
    }

    /// Returns the first route that matches `method` and `path`.
    pub fn find(&self, method: &str, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches(method, path))
    }

    /// Returns the number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Returns true when the file has no route, so that every request is denied.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Rejects a route with the same path and method as an earlier one, which could never match.
fn reject_shadowed(routes: &[Route]) -> Result<(), GatewayError> {
    for (index, route) in routes.iter().enumerate() {
        let earlier = routes[..index]
            .iter()
            .position(|other| other.path == route.path && other.method == route.method);
        if let Some(earlier) = earlier {
            return Err(GatewayError::Routes(format!(
                "route {} has the same path and method as route {}, so it could never match",
                index + 1,
                earlier + 1
            )));
        }
    }
    Ok(())
}

impl Route {
    /// Returns the route's position in the routes file, from 0, by which the verdict memo
    /// indexes.
    pub fn index(&self) -> usize {
        self.index
    }

    fn from_entry(index: usize, entry: RouteEntry) -> Result<Self, String> {
        if !entry.path.starts_with('/') {
            return Err(format!("`path` must start with `/`, not `{}`", entry.path));
        }
        // A route must be written in the form requests are matched in, or it would never match.
        let literal = entry.path.strip_suffix('*').unwrap_or(&entry.path);
        match crate::request_path::canonical_path(literal) {
            Ok(canonical) if canonical == literal => {}
            Ok(canonical) => {
                return Err(format!(
                    "`path` `{}` must be written in canonical form, as `{canonical}`",
                    entry.path
                ));
            }
            Err(reason) => return Err(format!("`path` `{}`: {reason}", entry.path)),
        }
        let star_count = entry.path.matches('*').count();
        let path = match entry.path.strip_suffix('*') {
            Some(prefix) if star_count == 1 => PathPattern::Prefix(prefix.to_owned()),
            None if star_count == 0 => PathPattern::Exact(entry.path),
            _ => {
                return Err(format!(
                    "`path` may contain `*` only as its last character, not `{}`",
                    entry.path
                ));
            }
        };

        let method = match entry.method {
            Some(method)
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                return Err(format!(
                    "`method` must be an HTTP method such as GET, not `{method}`"
                ));
            }
            Some(method) => Some(method.to_ascii_uppercase()),
            None => None,
        };

        if entry.action.is_empty() {
            return Err("`action` must not be empty".into());
        }
        // The same rule as an entitlement's action, so that a route can name any action an
        // entitlement can grant and nothing else.
        sigil_core::Entitlement::parse(&format!("{}:{}", entry.action, entry.resource))
            .map_err(|err| format!("`action` and `resource` do not form an entitlement: {err}"))?;

        Ok(Self {
            index,
            path,
            method,
            action: entry.action,
            resource: entry.resource,
        })
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        // HTTP methods are case-sensitive (RFC 9110 section 9.1): `get` is not `GET`.
        if let Some(expected) = &self.method
            && expected != method
        {
            return false;
        }
        match &self.path {
            PathPattern::Exact(exact) => path == exact,
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [[route]]
        path = "/v1/contacts/export"
        action = "export"
        resource = "tool:crm/contacts"

        [[route]]
        path = "/v1/contacts/*"
        method = "get"
        action = "read"
        resource = "tool:crm/contacts"

        [[route]]
        path = "/health"
        action = "read"
        resource = "tool:crm/health"
    "#;

    fn routes() -> Routes {
        Routes::parse(EXAMPLE).unwrap()
    }

    #[test]
    fn exact_path_matches_only_itself() {
        let routes = routes();
        assert_eq!(
            routes.find("GET", "/health").unwrap().resource,
            "tool:crm/health"
        );
        assert!(routes.find("GET", "/health/x").is_none());
        assert!(routes.find("GET", "/healthz").is_none());
    }

    #[test]
    fn prefix_matches_suffixes() {
        let routes = routes();
        assert_eq!(
            routes.find("GET", "/v1/contacts/42").unwrap().action,
            "read"
        );
        assert_eq!(routes.find("GET", "/v1/contacts/").unwrap().action, "read");
        assert!(routes.find("GET", "/v1/contacts").is_none());
    }

    #[test]
    fn first_match_wins() {
        let routes = routes();
        assert_eq!(
            routes.find("GET", "/v1/contacts/export").unwrap().action,
            "export"
        );
    }

    #[test]
    fn method_matches_case_sensitively() {
        let routes = routes();
        assert!(routes.find("POST", "/v1/contacts/42").is_none());
        assert!(
            routes.find("get", "/v1/contacts/42").is_none(),
            "`get` is not `GET`"
        );
        assert_eq!(
            routes.find("GET", "/v1/contacts/42").unwrap().action,
            "read",
            "the file's `get` is read as `GET`"
        );
    }

    #[test]
    fn non_canonical_route_paths_rejected() {
        for path in [
            "/v1/../admin/*",
            "/v1/./x",
            "/v1//x",
            "/v1/%65xport",
            "/a%2fb",
            "/a\\b",
        ] {
            let text =
                format!("[[route]]\npath = \"{path}\"\naction = \"read\"\nresource = \"r\"\n");
            assert!(Routes::parse(&text).is_err(), "{path} must be rejected");
        }
    }

    #[test]
    fn shadowed_route_rejected() {
        let text = r#"
            [[route]]
            path = "/v1/*"
            method = "GET"
            action = "read"
            resource = "r"

            [[route]]
            path = "/v1/*"
            method = "get"
            action = "write"
            resource = "r"
        "#;
        let error = Routes::parse(text).unwrap_err().to_string();
        assert!(error.contains("route 2"), "{error}");
    }

    #[test]
    fn empty_file_has_no_routes() {
        let routes = Routes::parse("").unwrap();
        assert!(routes.is_empty());
        assert!(routes.find("GET", "/").is_none());
    }

    #[test]
    fn invalid_routes_rejected() {
        let cases = [
            (
                "relative path",
                r#"[[route]]
                path = "v1/*"
                action = "read"
                resource = "r""#,
            ),
            (
                "inner star",
                r#"[[route]]
                path = "/v1/*/x"
                action = "read"
                resource = "r""#,
            ),
            (
                "two stars",
                r#"[[route]]
                path = "/v1/**"
                action = "read"
                resource = "r""#,
            ),
            (
                "bad method",
                r#"[[route]]
                path = "/v1"
                method = "GET /"
                action = "read"
                resource = "r""#,
            ),
            (
                "empty action",
                r#"[[route]]
                path = "/v1"
                action = ""
                resource = "r""#,
            ),
            (
                "bad action",
                r#"[[route]]
                path = "/v1"
                action = "re ad"
                resource = "r""#,
            ),
            (
                "missing resource",
                r#"[[route]]
                path = "/v1"
                action = "read""#,
            ),
            (
                "unknown key",
                r#"[[route]]
                path = "/v1"
                action = "read"
                resource = "r"
                host = "x""#,
            ),
        ];
        for (name, text) in cases {
            let err = Routes::parse(text).unwrap_err();
            assert!(matches!(err, GatewayError::Routes(_)), "{name}: {err}");
        }
    }

    #[test]
    fn error_names_route_number() {
        let text = r#"
            [[route]]
            path = "/ok"
            action = "read"
            resource = "r"

            [[route]]
            path = "bad"
            action = "read"
            resource = "r"
        "#;
        let err = Routes::parse(text).unwrap_err().to_string();
        assert!(err.contains("route 2"), "{err}");
    }
}
