"""The triggers behind the fleet summary's counts, `worker.created` events and webhook
deliveries, for rows inserted many at a time (statement triggers, migration 0007) and one at
a time."""

from __future__ import annotations


async def _counts(pool) -> dict[tuple[str, str], int]:
    rows = await pool.fetch("SELECT org_id, status::text, n FROM worker_counts WHERE n <> 0")
    return {(r["org_id"], r["status"]): r["n"] for r in rows}


async def test_one_insert_of_many_workers_counts_them_and_announces_each(pool):
    await pool.execute("INSERT INTO organizations (id, name) VALUES ('org_a', 'a'), ('org_b', 'b')")
    await pool.execute(
        "INSERT INTO webhooks (id, org_id, url, events, secret) VALUES"
        " ('whk_a', 'org_a', 'https://example.invalid/a', '{worker.created}', 's'),"
        " ('whk_b', 'org_b', 'https://example.invalid/b', '{worker.deleted}', 's')"
    )

    await pool.execute(
        "INSERT INTO workers (id, org_id, name, status, deleted_at) VALUES"
        " ('w1', 'org_a', 'one', 'provisioning', NULL),"
        " ('w2', 'org_a', 'two', 'healthy', NULL),"
        " ('w3', 'org_a', 'three', 'healthy', NULL),"
        " ('w4', 'org_b', 'four', 'failed', NULL),"
        " ('w5', 'org_b', 'gone', 'failed', now())"
    )
    await pool.execute("INSERT INTO workers (id, org_id, name) VALUES ('w6', 'org_b', 'six')")

    assert await _counts(pool) == {
        ("org_a", "provisioning"): 1, ("org_a", "healthy"): 2,
        ("org_b", "failed"): 1, ("org_b", "provisioning"): 1,
    }  # fmt: skip
    created = await pool.fetch(
        "SELECT worker_id, data->>'name' AS name FROM events WHERE type = 'worker.created'"
        " ORDER BY id"
    )
    assert sorted((r["worker_id"], r["name"]) for r in created) == [
        ("w1", "one"), ("w2", "two"), ("w3", "three"), ("w4", "four"), ("w5", "gone"),
        ("w6", "six"),
    ]  # fmt: skip
    deliveries = await pool.fetch(
        "SELECT d.webhook_id, e.worker_id FROM webhook_deliveries d"
        " JOIN events e ON e.id = d.event_id ORDER BY e.worker_id"
    )
    assert [(r["webhook_id"], r["worker_id"]) for r in deliveries] == [
        ("whk_a", "w1"), ("whk_a", "w2"), ("whk_a", "w3"),
    ]  # fmt: skip

    # Updates still count row by row; a deletion is announced to the org's webhook.
    await pool.execute("UPDATE workers SET status = 'failed' WHERE id = 'w2'")
    await pool.execute("UPDATE workers SET deleted_at = now() WHERE id = 'w4'")
    assert await _counts(pool) == {
        ("org_a", "provisioning"): 1, ("org_a", "healthy"): 1, ("org_a", "failed"): 1,
        ("org_b", "provisioning"): 1,
    }  # fmt: skip
    assert (
        await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE webhook_id = 'whk_b'")
        == 1
    )
