-- Sessions of the web console: an API key signed in once, then a cookie. Only the SHA-256 of
-- the cookie's token is stored (like the keys); the CSRF token is per session. A session ends at
-- `expires_at`, at sign-out, or when its key is revoked (every lookup joins api_keys).
CREATE TABLE console_sessions (
    token_hash  bytea       PRIMARY KEY,
    key_id      bigint      NOT NULL REFERENCES api_keys (id),
    csrf_token  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
