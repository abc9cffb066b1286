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
