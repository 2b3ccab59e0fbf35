//! Pieces of the OpenAPI document shared by every route: the problem+json
//! error responses (referenced as `response = NotFound` and so on) and the
//! bearer security scheme. Each operation names the scope it needs in its
//! security requirement (`("bearer" = ["projects:write"])`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToResponse};

use super::problem::Problem;

/// The name of the security scheme operations refer to.
pub const BEARER: &str = "bearer";

macro_rules! problem_response {
    ($($name:ident => $description:literal;)*) => {$(
        #[derive(ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        #[allow(dead_code)]
        pub struct $name(Problem);
    )*};
}

problem_response! {
    BadRequest => "The request cannot be parsed (malformed JSON, a bad header)";
    Unauthenticated => "No valid credentials (a missing, expired or revoked token or key)";
    Forbidden => "Authenticated, but lacking the scope the operation needs";
    NotFound => "No such resource, or it belongs to another workspace";
    Conflict => "A duplicate slug or email, an invalid state transition, or a concurrent change";
    PreconditionFailed => "If-Match does not match the resource's current version";
    PayloadTooLarge => "The request body is over the limit";
    UnsupportedMediaType => "The request body is not JSON";
    Unprocessable => "Validation failed; `errors` names each field";
    TooManyRequests => "Rate limited; see Retry-After";
    Unavailable => "A dependency is down, or a read model has not caught up with the consistency token; nothing was half-written";
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
            header("Requests left in the current window", Type::Integer),
        ),
        (
            "X-RateLimit-Reset",
            header("Seconds until the allowance is full again", Type::Integer),
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
