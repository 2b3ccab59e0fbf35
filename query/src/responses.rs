//! The sets of error responses the read routes answer, beside the HTTP
//! kit's [`ReadErrors`](tenet_http::openapi::ReadErrors): one line in each
//! operation's `responses(...)`.

tenet_http::error_responses! {
    /// A read that needs a scope, of something that may not exist, with
    /// nothing in the request to misparse.
    ScopedErrors => [Unauthenticated, Forbidden, NotFound, Unprocessable];
    /// A platform admins' list.
    AdminErrors => [Unauthenticated, Forbidden, Unprocessable];
    /// A request for a rebuild of a projection.
    RebuildErrors => [Unauthenticated, Forbidden, NotFound, Conflict];
    /// A list of the caller's own.
    CallerErrors => [Unauthenticated, Unprocessable];
    /// One of the caller's own resources.
    CallerLookupErrors => [Unauthenticated, NotFound, Unprocessable];
    /// Anything that only needs the caller signed in.
    SignedInErrors => [Unauthenticated];
}
