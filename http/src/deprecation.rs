//! Deprecated routes, declared once: each [`Deprecation`] names a route
//! (method and path template as the router matches it), when it was
//! deprecated, when it goes away and what replaces it. From that one entry
//! the route's every answer carries `Deprecation` (RFC 9745: `@` and the
//! Unix time), `Sunset` (RFC 8594: an HTTP date) and a `Link` to its
//! successor, and [`mark`] sets `deprecated: true` on its operation in the
//! OpenAPI document, so headers and document never disagree.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use utoipa::openapi::{Deprecated, OpenApi};

/// A route kept for existing clients, with its retirement plan.
#[derive(Clone, Debug)]
pub struct Deprecation {
    pub method: Method,
    /// The path template (`/api/v1/workspaces/{workspace_id}/...`).
    pub path: &'static str,
    /// Unix seconds since which the route is deprecated.
    pub since: i64,
    /// Unix seconds after which the route may stop answering.
    pub sunset: Option<i64>,
    /// The route that replaces it (a path, for the `Link` header).
    pub successor: Option<&'static str>,
}

impl Deprecation {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method == method && self.path == path
    }

    /// The `Deprecation` header's value.
    pub fn deprecation_header(&self) -> String {
        format!("@{}", self.since)
    }

    /// The `Sunset` header's value, if the route has a sunset.
    pub fn sunset_header(&self) -> Option<String> {
        let at = DateTime::<Utc>::from_timestamp(self.sunset?, 0)?;
        Some(at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    }
}

/// Middleware: adds the headers of a deprecated route to its answers.
pub async fn layer(
    State(deprecations): State<&'static [Deprecation]>,
    request: Request,
    next: Next,
) -> Response {
    let found = request.extensions().get::<MatchedPath>().and_then(|path| {
        deprecations
            .iter()
            .find(|entry| entry.matches(request.method(), path.as_str()))
    });
    let mut response = next.run(request).await;
    if let Some(entry) = found {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&entry.deprecation_header()) {
            headers.insert("deprecation", value);
        }
        if let Some(value) = entry
            .sunset_header()
            .and_then(|sunset| HeaderValue::from_str(&sunset).ok())
        {
            headers.insert("sunset", value);
        }
        if let Some(value) = entry.successor.and_then(|to| {
            HeaderValue::from_str(&format!("<{to}>; rel=\"successor-version\"")).ok()
        }) {
            headers.append(axum::http::header::LINK, value);
        }
    }
    response
}

/// Marks each deprecated route's operation `deprecated: true` in `doc`.
pub fn mark(doc: &mut OpenApi, deprecations: &[Deprecation]) {
    for entry in deprecations {
        let Some(item) = doc.paths.paths.get_mut(entry.path) else {
            continue;
        };
        let operation = match entry.method {
            Method::GET => item.get.as_mut(),
            Method::POST => item.post.as_mut(),
            Method::PUT => item.put.as_mut(),
            Method::PATCH => item.patch.as_mut(),
            Method::DELETE => item.delete.as_mut(),
            _ => None,
        };
        if let Some(operation) = operation {
            operation.deprecated = Some(Deprecated::True);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A test-only route: no route of the API is deprecated today.
    static OLD: &[Deprecation] = &[Deprecation {
        method: Method::GET,
        path: "/api/v1/old/{id}",
        since: 1_767_225_600,
        sunset: Some(1_782_864_000),
        successor: Some("/api/v1/new/{id}"),
    }];

    /// `GET /api/v1/old/{id}`, retired in favour of the new one.
    #[utoipa::path(get, path = "/api/v1/old/{id}", responses((status = 200)))]
    async fn old() -> &'static str {
        "old"
    }

    #[utoipa::path(get, path = "/api/v1/new/{id}", responses((status = 200)))]
    async fn new() -> &'static str {
        "new"
    }

    #[derive(utoipa::OpenApi)]
    #[openapi(paths(old, new))]
    struct Doc;

    fn app() -> axum::Router {
        axum::Router::new()
            .route("/api/v1/old/{id}", get(old))
            .route("/api/v1/new/{id}", get(new))
            .layer(axum::middleware::from_fn_with_state(OLD, layer))
    }

    async fn get_headers(path: &str) -> axum::http::HeaderMap {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
        response.headers().clone()
    }

    #[tokio::test]
    async fn a_deprecated_route_answers_deprecation_sunset_and_its_successor() {
        let headers = get_headers("/api/v1/old/7").await;
        assert_eq!(headers["deprecation"], "@1767225600");
        assert_eq!(headers["sunset"], "Wed, 01 Jul 2026 00:00:00 GMT");
        assert_eq!(
            headers["link"],
            "</api/v1/new/{id}>; rel=\"successor-version\""
        );
        let current = get_headers("/api/v1/new/7").await;
        assert!(!current.contains_key("deprecation"));
        assert!(!current.contains_key("sunset"));
    }

    #[test]
    fn the_document_marks_the_deprecated_operation_only() {
        let mut doc = <Doc as utoipa::OpenApi>::openapi();
        mark(&mut doc, OLD);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["paths"]["/api/v1/old/{id}"]["get"]["deprecated"], true);
        assert!(
            json["paths"]["/api/v1/new/{id}"]["get"]
                .get("deprecated")
                .is_none()
        );
    }
}
