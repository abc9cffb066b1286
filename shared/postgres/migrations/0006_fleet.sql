-- Live workers per organization and lifecycle status, kept by triggers, so the fleet summary
-- reads a handful of rows instead of counting the fleet. The flusher's batched heartbeat UPDATEs
-- touch neither column: the trigger's WHEN clause skips them without calling the function.
CREATE TABLE worker_counts (
    org_id  text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    status  worker_status NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (org_id, status)
);

INSERT INTO worker_counts (org_id, status, n)
SELECT org_id, status, count(*) FROM workers WHERE deleted_at IS NULL GROUP BY org_id, status;

CREATE FUNCTION worker_counts_apply(p_org text, p_status worker_status, p_delta bigint)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO worker_counts AS c (org_id, status, n) VALUES (p_org, p_status, p_delta)
    ON CONFLICT (org_id, status) DO UPDATE SET n = c.n + EXCLUDED.n
$$;

CREATE FUNCTION worker_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL THEN
        PERFORM worker_counts_apply(OLD.org_id, OLD.status, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL THEN
        PERFORM worker_counts_apply(NEW.org_id, NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER worker_counts_insert AFTER INSERT ON workers
    FOR EACH ROW EXECUTE FUNCTION worker_counts_track();
CREATE TRIGGER worker_counts_update AFTER UPDATE OF status, deleted_at, org_id ON workers
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
                       OR OLD.org_id IS DISTINCT FROM NEW.org_id)
    EXECUTE FUNCTION worker_counts_track();
CREATE TRIGGER worker_counts_delete AFTER DELETE ON workers
    FOR EACH ROW EXECUTE FUNCTION worker_counts_track();

-- Fleet events: liveness transitions found by the flusher's sweep, and workers created and
-- deleted (by the triggers below). One row per transition: a sweep that runs twice, or two
-- flushers writing the same pending event, hit the unique key.
CREATE TABLE events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    type        text NOT NULL,
    worker_id   text NOT NULL,  -- no reference: a deleted worker's events stay
    at          timestamptz NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    UNIQUE (worker_id, type, at)
);
-- The org's events newest first, and the retention's deletes.
CREATE INDEX events_org ON events (org_id, id DESC);
CREATE INDEX events_at ON events (at);

-- Every writer of events takes this transaction lock before drawing an id, so ids become
-- visible in increasing order: a reader resuming after id N never misses a smaller one that
-- committed later. (Key: events_order_lock() below and flusher/event_store.py.)
CREATE FUNCTION events_order_lock() RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT 7265766574::bigint';

CREATE FUNCTION events_worker_lifecycle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(events_order_lock());
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (org_id, type, worker_id, at, data)
        VALUES (NEW.org_id, 'worker.created', NEW.id, NEW.created_at,
                jsonb_build_object('name', NEW.name))
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO events (org_id, type, worker_id, at, data)
        VALUES (NEW.org_id, 'worker.deleted', NEW.id, NEW.deleted_at,
                jsonb_build_object('name', NEW.name))
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_worker_created AFTER INSERT ON workers
    FOR EACH ROW EXECUTE FUNCTION events_worker_lifecycle();
CREATE TRIGGER events_worker_deleted AFTER UPDATE OF deleted_at ON workers
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION events_worker_lifecycle();

-- Webhooks: an org's subscriptions to event types, and one delivery row per matching event
-- (the outbox the flusher's delivery job works through). The secret signs deliveries, so it
-- is kept as is.
CREATE TABLE webhooks (
    id          text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[] NOT NULL,
    description text,
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX webhooks_org ON webhooks (org_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending',  -- pending, delivered, failed
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of ON webhook_deliveries (webhook_id, id DESC);

-- Every event becomes a delivery for each live webhook of its org that wants its type, in the
-- event's own transaction.
CREATE FUNCTION webhook_deliveries_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT id, NEW.id FROM webhooks
     WHERE org_id = NEW.org_id AND deleted_at IS NULL AND NEW.type = ANY(events);
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_fan_out AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION webhook_deliveries_fan_out();
