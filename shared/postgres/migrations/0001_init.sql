-- Organizations, people and their credentials.
CREATE TABLE organizations (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          text PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL DEFAULT 'member',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

-- Secrets are random, so a plain SHA-256 (hex) is what we keep.
CREATE TABLE sessions (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    created_by_user_id text REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TYPE worker_status AS ENUM ('provisioning', 'healthy', 'failed', 'stopped');
CREATE TYPE worker_destination AS ENUM ('local', 'cloud');

CREATE TABLE workers (
    id                  text PRIMARY KEY,
    org_id              text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by_user_id  text REFERENCES users (id) ON DELETE SET NULL,
    name                text NOT NULL,
    description         text,
    destination         worker_destination NOT NULL DEFAULT 'local',
    status              worker_status NOT NULL DEFAULT 'provisioning',
    image_version       text,
    workspace_path      text,
    sandbox_backend     text,
    token_version       integer NOT NULL DEFAULT 1,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Heartbeat fields, written only by the flusher in batches.
    last_heartbeat_at   timestamptz,
    last_active_at      timestamptz,
    is_active_recently  boolean NOT NULL DEFAULT false,
    open_session_count  bigint,
    clock_skew_ms       bigint,
    reported_status     text,
    tasks_processed     bigint,
    current_task_id     text,
    environment_name    text,
    worker_metadata     jsonb,
    heartbeat_persisted_at timestamptz
);

-- The list's keyset order within an organization.
CREATE INDEX workers_org_created ON workers (org_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

CREATE TABLE worker_instances (
    id          text PRIMARY KEY,
    worker_id   text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    provider    text NOT NULL,
    region      text,
    url         text,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- "Latest instance of a worker" is one index probe.
CREATE INDEX worker_instances_latest ON worker_instances (worker_id, created_at DESC, id DESC);
