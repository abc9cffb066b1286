-- The counts, `worker.created` events and webhook deliveries of many rows inserted in one
-- statement, written once per statement rather than once per row. Row by row, an INSERT of
-- 100,000 workers updated its org's `worker_counts` row 100,000 times in one transaction (each
-- update a new version of that row for the next to step over) and took minutes. Updates keep
-- their row triggers: their WHEN clauses let the flusher's heartbeat UPDATEs through at no cost,
-- which a statement trigger's transition tables would not.

CREATE FUNCTION worker_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO worker_counts AS c (org_id, status, n)
    SELECT org_id, status, count(*) FROM inserted WHERE deleted_at IS NULL
     GROUP BY org_id, status
    ON CONFLICT (org_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

DROP TRIGGER worker_counts_insert ON workers;
CREATE TRIGGER worker_counts_insert AFTER INSERT ON workers
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION worker_counts_inserted();

CREATE FUNCTION events_workers_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(events_order_lock());
    INSERT INTO events (org_id, type, worker_id, at, data)
    SELECT org_id, 'worker.created', id, created_at, jsonb_build_object('name', name)
      FROM inserted ORDER BY created_at, id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

DROP TRIGGER events_worker_created ON workers;
CREATE TRIGGER events_worker_created AFTER INSERT ON workers
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION events_workers_created();

CREATE FUNCTION webhook_deliveries_fan_out_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT w.id, e.id FROM inserted e
      JOIN webhooks w ON w.org_id = e.org_id AND w.deleted_at IS NULL AND e.type = ANY(w.events)
     ORDER BY e.id, w.id;
    RETURN NULL;
END
$$;

DROP TRIGGER webhook_deliveries_fan_out ON events;
CREATE TRIGGER webhook_deliveries_fan_out AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_deliveries_fan_out_inserted();
