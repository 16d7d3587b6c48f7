-- Analysts are named people who sign in to the review console: local accounts (an argon2id hash
-- in PHC form, its parameters inside it, so they can be raised without a migration) and accounts
-- met through single sign-on (no password; the provider's subject, so another person given the
-- same name by the provider later is not taken for this one). A disabled analyst keeps the row:
-- the audit names them.
CREATE TABLE analysts (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._@-]{0,63}$'),
    role             text NOT NULL CHECK (role IN ('reviewer', 'lead', 'admin')),
    password_hash    text,
    oidc_issuer      text,
    oidc_subject     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    disabled_at      timestamptz,
    disabled_by      text,
    last_sign_in_at  timestamptz,
    CHECK ((password_hash IS NULL) <> (oidc_subject IS NULL))
);

COMMENT ON TABLE analysts IS 'Review-console accounts: local (argon2id password hash) or single sign-on (issuer and subject), each with a role.';

-- Failed sign-ins counted in the database, so every instance behind a load balancer shares the
-- count: one row per throttled key ("name:<name>" or "addr:<address>") and fixed window.
CREATE TABLE console_sign_in_failures (
    throttle_key  text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    failures      integer NOT NULL
);

COMMENT ON TABLE console_sign_in_failures IS 'Failed console sign-ins per name and per address in the current window (the throttle, shared by every instance).';

-- A console session is an API key's (key_name) or an analyst's (analyst); disabling or deleting
-- an analyst ends their sessions.
ALTER TABLE console_sessions ALTER COLUMN key_name DROP NOT NULL;
ALTER TABLE console_sessions ADD COLUMN analyst text REFERENCES analysts (name) ON DELETE CASCADE;
ALTER TABLE console_sessions ADD CONSTRAINT console_sessions_one_signer CHECK ((key_name IS NULL) <> (analyst IS NULL));
CREATE INDEX console_sessions_analyst_idx ON console_sessions (analyst) WHERE analyst IS NOT NULL;
