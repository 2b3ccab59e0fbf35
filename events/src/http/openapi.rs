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
