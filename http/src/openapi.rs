//! Pieces of the OpenAPI document shared by every route: the problem+json
//! error responses, the sets of them operations answer (one line in a
//! handler's `responses(...)`: `CreateErrors`), and the bearer security
//! scheme. Each operation names the scope it needs in its security
//! requirement (`("bearer" = ["projects:write"])`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToResponse};

use super::problem::Problem;

/// The name of the security scheme operations refer to.
pub const BEARER: &str = "bearer";

/// A problem+json response the document describes once (under
/// `components/responses`) and operations refer to by status.
pub trait ProblemResponse {
    const STATUS: &'static str;
    const NAME: &'static str;
}

macro_rules! problem_response {
    ($($name:ident $status:literal => $description:literal;)*) => {$(
        #[derive(ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        #[allow(dead_code)]
        pub struct $name(Problem);

        impl ProblemResponse for $name {
            const STATUS: &'static str = $status;
            const NAME: &'static str = stringify!($name);
        }
    )*};
}

problem_response! {
    BadRequest "400" => "The request cannot be parsed (malformed JSON, a bad header)";
    Unauthenticated "401" => "No valid credentials (a missing, expired or revoked token or key)";
    Forbidden "403" => "Authenticated, but lacking the scope the operation needs";
    NotFound "404" => "No such resource, or it belongs to another workspace";
    Conflict "409" => "A duplicate slug or email, an invalid state transition, or a concurrent change";
    PreconditionFailed "412" => "If-Match does not match the resource's current version, or X-Consistency-Token is a position this server's log has not reached";
    PayloadTooLarge "413" => "The request body is over the limit";
    UnsupportedMediaType "415" => "The request body is not JSON";
    Unprocessable "422" => "Validation failed; `errors` names each field";
    TooManyRequests "429" => "Rate limited; see Retry-After";
    Unavailable "503" => "A dependency is down, or a read model has not caught up with the consistency token; nothing was half-written";
}

/// The references to these problem responses, keyed by status, for an
/// `IntoResponses` implementation.
pub fn problem_refs(
    names: &[(&'static str, &'static str)],
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>>
{
    names
        .iter()
        .map(|(status, name)| {
            (
                (*status).to_owned(),
                utoipa::openapi::RefOr::Ref(utoipa::openapi::Ref::from_response_name(*name)),
            )
        })
        .collect()
}

/// Declares sets of error responses: `IntoResponses` types a handler names
/// in one line of its `responses(...)`, beside its success responses.
/// Every operation can also answer 429 and 503, and 413 when it takes a
/// body; [`complete`] adds those to all of them.
#[macro_export]
macro_rules! error_responses {
    ($($(#[$meta:meta])* $name:ident => [$($problem:ident),* $(,)?];)*) => {$(
        $(#[$meta])*
        pub struct $name;

        impl $crate::utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                $crate::utoipa::openapi::RefOr<$crate::utoipa::openapi::response::Response>,
            > {
                use $crate::openapi::ProblemResponse as _;
                $crate::openapi::problem_refs(&[
                    $(($crate::openapi::$problem::STATUS, $crate::openapi::$problem::NAME)),*
                ])
            }
        }
    )*};
}

error_responses! {
    /// A read of one of a workspace's resources, or a page of them.
    ReadErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, Unprocessable];
    /// A command with a body that creates or acts (no `If-Match`).
    CreateErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Unprocessable];
    /// A command with a body on an existing resource, with `If-Match`.
    ChangeErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, PreconditionFailed, UnsupportedMediaType, Unprocessable];
    /// A command without a body on an existing resource, with `If-Match`.
    DeleteErrors => [Unauthenticated, Forbidden, NotFound, PreconditionFailed, Unprocessable];
}

/// Adds the bearer scheme: a JWT from `/auth/login` or an API key `tnt_...`.
pub struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A JWT access token from POST /api/v1/auth/login, or an API key (tnt_...). \
                         Operations list the scope they need.",
                    ))
                    .build(),
            ),
        );
    }
}

/// What every operation shares, added to the merged document: every
/// response carries `X-Request-ID` and the `X-RateLimit-*` headers, any
/// operation can answer 429 (rate limited) and 503 (a dependency down),
/// and an operation with a body can answer 413 (over the body limit).
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};

    let header = |description: &str, kind: Type| {
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(kind)))
                .description(Some(description))
                .build(),
        )
    };
    let shared = [
        (
            "X-Request-ID",
            header(
                "The request's id (echoed when the client sent one); also in problem bodies and in the audit log",
                Type::String,
            ),
        ),
        (
            "X-RateLimit-Limit",
            header("Requests allowed per minute for this caller", Type::Integer),
        ),
        (
            "X-RateLimit-Remaining",
            header(
                "Requests the caller may send now (tokens left in the bucket)",
                Type::Integer,
            ),
        ),
        (
            "X-RateLimit-Reset",
            header(
                "Seconds until the caller's bucket is full again (every request spent refilled), \
                 not a timestamp; after a 429, Retry-After says when the next request is allowed",
                Type::Integer,
            ),
        ),
    ];
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses
                .entry("429".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("TooManyRequests")));
            responses
                .entry("503".to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Unavailable")));
            // A consistency token is a condition on the state (the log has
            // reached it): one ahead of the log fails it, like a stale
            // If-Match.
            let waits = operation.parameters.iter().flatten().any(|parameter| {
                matches!(parameter, RefOr::T(parameter)
                    if parameter.name.eq_ignore_ascii_case("X-Consistency-Token"))
            });
            let conditional = operation.parameters.iter().flatten().any(|parameter| {
                matches!(parameter, RefOr::T(parameter)
                    if parameter.name.eq_ignore_ascii_case("If-Match"))
            });
            if conditional {
                responses
                    .entry("412".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("PreconditionFailed")));
            }
            if waits {
                // A token that is no position at all.
                responses
                    .entry("400".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("BadRequest")));
                responses
                    .entry("412".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("PreconditionFailed")));
            }
            if operation.request_body.is_some() {
                responses
                    .entry("413".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("PayloadTooLarge")));
            }
            for response in responses.values_mut() {
                if let RefOr::T(response) = response {
                    for (name, value) in &shared {
                        response
                            .headers
                            .entry((*name).to_owned())
                            .or_insert_with(|| value.clone());
                    }
                }
            }
        }
    }
}

/// The limits the extractors enforce on parameters every list or command
/// shares, stated on each operation that takes them (so a handler's
/// `IntoParams` cannot forget one): `limit` 1 to 100, `offset` 0 to
/// [`MAX_OFFSET`](super::pagination::MAX_OFFSET), positions from 0, `search`,
/// and the grammar of `If-Match`, `Last-Event-ID`, `X-Consistency-Token` and
/// `Idempotency-Key`.
pub fn constrain_parameters(openapi: &mut utoipa::openapi::OpenApi) {
    use serde_json::{Value, json};
    let constraint = |location: &str, name: &str| -> Option<Value> {
        match (location, name.to_ascii_lowercase().as_str()) {
            ("query", "limit") => Some(json!({
                "type": "integer", "minimum": 1, "maximum": super::pagination::MAX_LIMIT,
                "default": super::pagination::DEFAULT_LIMIT
            })),
            ("query", "offset") => Some(json!({
                "type": "integer", "minimum": 0, "maximum": super::pagination::MAX_OFFSET, "default": 0
            })),
            ("query", "after" | "after_position") => Some(json!({"type": "integer", "minimum": 0})),
            ("header", "if-match") => Some(json!({
                "type": "string", "pattern": "^(\\*|(W/)?\"[0-9]{1,18}\")$"
            })),
            // `query/src/search.rs`: 200 characters, no control characters
            // (and at most 10 words, which a pattern would state only at the
            // price of a backtracking one).
            ("query", "search") => Some(json!({
                "type": "string", "maxLength": 200, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
            })),
            // A position, or empty (as absent).
            ("header", "last-event-id") => {
                Some(json!({"type": "string", "pattern": "^([0-9]{1,18})?$"}))
            }
            ("header", "x-consistency-token") => {
                Some(json!({"type": "string", "pattern": "^[0-9]{1,18}$"}))
            }
            ("header", "idempotency-key") => Some(json!({
                "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"
            })),
            _ => None,
        }
    };
    use utoipa::openapi::path::ParameterIn;
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                let utoipa::openapi::RefOr::T(parameter) = parameter else {
                    continue;
                };
                let location = match parameter.parameter_in {
                    ParameterIn::Query => "query",
                    ParameterIn::Header => "header",
                    _ => continue,
                };
                if let Some(schema) = constraint(location, &parameter.name)
                    .and_then(|schema| serde_json::from_value(schema).ok())
                {
                    parameter.schema = Some(schema);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_parameters_get_their_limits() {
        let mut document: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/things": {"get": {
                "parameters": [
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
                    {"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"}}
                ],
                "responses": {}
            }}}
        }))
        .expect("document");
        constrain_parameters(&mut document);
        let document = serde_json::to_value(&document).expect("json");
        let parameters = &document["paths"]["/things"]["get"]["parameters"];
        assert_eq!(parameters[0]["schema"]["minimum"], 1);
        assert_eq!(parameters[0]["schema"]["maximum"], 100);
        assert!(parameters[1]["schema"]["pattern"].as_str().is_some());
    }
}
