//! The error responses of command operations that answer another set than
//! the shared ones of `tenet_http::openapi` (`CreateErrors`,
//! `ChangeErrors`, `DeleteErrors`). Every operation can also answer 429
//! and 503, and 413 when it takes a body: `openapi::complete` adds those.

tenet_http::error_responses! {
    /// Registration: anonymous (never 401 or 403); 409 for a taken email.
    RegisterErrors => [BadRequest, Conflict, UnsupportedMediaType, Unprocessable];
    /// Login and refresh: anonymous; 401 for credentials that do not work,
    /// 429 for too many attempts.
    TokenErrors => [BadRequest, Unauthenticated, UnsupportedMediaType, Unprocessable, TooManyRequests];
    /// Logout: no body, no resource in the path.
    LogoutErrors => [Unauthenticated, Unprocessable];
    /// A new workspace: no workspace in the path, so never 404.
    NewWorkspaceErrors => [BadRequest, Unauthenticated, Forbidden, Conflict, UnsupportedMediaType, Unprocessable];
    /// A command with a body that adds to a workspace and claims nothing
    /// (an API key, a comment): never 409.
    AddErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, UnsupportedMediaType, Unprocessable];
    /// A change with a body and `If-Match` that nothing can conflict with
    /// (a comment's body).
    EditErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, PreconditionFailed, UnsupportedMediaType, Unprocessable];
    /// A command without a body or `If-Match` (revoking an API key).
    RevokeErrors => [Unauthenticated, Forbidden, NotFound, Unprocessable];
    /// A command without a body, with `If-Match`, that the resource's
    /// state may refuse (archiving, restoring, removing a member).
    StateErrors => [Unauthenticated, Forbidden, NotFound, Conflict, PreconditionFailed, Unprocessable];
    /// A platform admin's action on an account or a session of the
    /// platform (deactivating, impersonating): 409 for what its state
    /// refuses.
    LifecycleErrors => [BadRequest, Unauthenticated, Forbidden, NotFound, Conflict, UnsupportedMediaType, Unprocessable];
}
