from flusher.persist import PERSIST_SQL, create_flusher_pool
from flusher.pg_arrays import array_literal
from shared.contract import typeid
from shared.contract.claims import LiveColumns


async def test_the_flusher_pool_writes_a_chunk_by_probing_the_primary_key_per_row(
    pool, database_url
):
    ids = [typeid.new_id(typeid.WORKER) for _ in range(3000)]
    await pool.execute("INSERT INTO organizations (id, name) VALUES ('org_x', 'x')")
    await pool.execute(
        "INSERT INTO workers (id, org_id, name) SELECT id, 'org_x', 'w' FROM unnest($1::text[]) id",
        ids,
    )
    await pool.execute("ANALYZE workers")
    chunk = [i.encode() for i in ids[:1000]]
    live = LiveColumns([chunk, [b"1700000000000"] * 1000, *[[b""] * 1000 for _ in range(4)]])
    arrays = [array_literal(column) for column in live.columns]

    flusher_pool = await create_flusher_pool(database_url)
    try:
        plan = "\n".join(r[0] for r in await flusher_pool.fetch("EXPLAIN " + PERSIST_SQL, *arrays))
    finally:
        await flusher_pool.close()

    assert "Nested Loop" in plan and "Index Scan using workers_pkey" in plan, plan
    assert "Hash Join" not in plan and "Merge Join" not in plan, plan
