-- Review-console sign-ins, kept where every instance sees them: a restart no longer signs analysts
-- out, and behind a load balancer any instance serves any session. The cookie's token is never
-- stored, only its SHA-256; the API key is neither, only its name (its scopes are read from the
-- configuration on every request, so a key taken out of it ends its sessions).
CREATE TABLE console_sessions (
    token_sha256 bytea PRIMARY KEY,
    key_name     text NOT NULL,
    csrf         text NOT NULL,
    flash        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

-- The sweep of ended sessions at each sign-in.
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);

COMMENT ON TABLE console_sessions IS 'Review-console sign-ins: the SHA-256 of the cookie token, the API key''s name, the CSRF token, the next page''s message.';
