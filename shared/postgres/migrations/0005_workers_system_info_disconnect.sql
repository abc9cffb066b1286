-- Kubiya's per-worker route: the last system info a full beat reported, and the worker's last
-- disconnect (cleared by its next beat). Written only by the flusher, like the other heartbeat
-- fields. Nullable without a default: adding them rewrites nothing.
ALTER TABLE workers
    ADD COLUMN system_info       jsonb,
    ADD COLUMN disconnected_at   timestamptz,
    ADD COLUMN disconnect_reason text,
    ADD COLUMN exit_code         bigint,
    ADD COLUMN error_message     text;
