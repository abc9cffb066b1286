"""Script calls on a Redis Cluster: one `RedisPipe` per primary, and all of a node's calls of
one batch in one write.

Two kinds of call. `run_script` routes each call by its keys' slot (one slot per call).
`run_on_node` sends a node calls with no declared keys, each carrying keys of any slots that
node serves: a script's cost per call is then spread over a node's share of the batch, not a
shard's. Such a script may touch keys of several slots of its node (Redis 7 allows it to a
script without a flags line, as Redis 6 does to every script); a key the node does not serve
fails the command that touches it, which the script catches and answers for.

redis-py's cluster pipeline routes, packs and parses every command on its own: through it,
ingest spent 1.6 times the CPU per beat it spends on one Redis (`python -m bench scale
--cluster 3`; 1.2 times with this). Here the slot table is read with CLUSTER SLOTS and kept
by hand: a MOVED reply corrects it at once (the call is resent to the named node, and the whole
table is read again in the background). An ASK reply (the slot is being migrated and the call's
keys have left this node) fails that call as TRYAGAIN would: a script run on the importing node
behind `ASKING` could create there a key the source still holds (one it touches without declaring
it), and the migration's next `MIGRATE` of that key would then fail with BUSYKEY. The call is
answered 503 until the slot is the importing node's, which MOVED then says. A node that cannot
be reached fails only its own calls; one that stopped answering fails them at once, not after a
timeout each batch, until it answers a PING again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import parse_url
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ClusterDownError, NoScriptError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.redis import resp
from shared.redis.lua import LuaScript
from shared.redis.pipe import RedisPipe

log = logging.getLogger("hb.redis")

Address = tuple[str, int]
Call = tuple[Sequence[str], Sequence[str]]  # one script run's keys (one slot) and args

CLUSTER_SLOTS = resp.command("CLUSTER", "SLOTS")
PING = resp.command("PING")
# Redirections one call may follow within a batch: a slot moves once (MOVED), or twice when the
# table was that much out of date. More is a table changing under us: the call fails as TRYAGAIN
# would (503, the client retries).
MAX_REDIRECTS = 3


class ClusterPipes:
    """The cluster's primaries, each behind its own pipelined connection, found from `url`'s
    node (any node of the cluster)."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        options = parse_url(url)
        self._seed: Address = (options.get("host", "localhost"), int(options.get("port", 6379)))
        self._pipes: dict[Address, RedisPipe] = {}
        self._slots: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self._loaded = False
        self._refreshing: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._refreshed_at = float("-inf")  # event-loop time of the last reading
        self._failing: set[Address] = set()  # nodes whose last write failed
        # Nodes that stopped answering (timed out), each with the task that pings it until it
        # answers again. Meanwhile their calls fail at once: waiting out a timeout on every
        # batch would hold the other nodes' beats up as long.
        self._stalled: dict[Address, asyncio.Task[None]] = {}

    def nodes(self) -> list[Address]:
        """The primaries the slot table names."""
        return sorted({node for node in self._slots if node is not None})

    def node_of(self, key: str) -> Address | None:
        return self.node_of_slot(key_slot(key.encode()))

    def node_of_slot(self, slot: int) -> Address | None:
        return self._slots[slot]

    def _pipe(self, node: Address) -> RedisPipe:
        pipe = self._pipes.get(node)
        if pipe is None:
            pipe = self._pipes[node] = RedisPipe(self._url, self._timeout, address=node)
        return pipe

    async def run_script(self, script: LuaScript, calls: Sequence[Call]) -> list[Any]:
        """The replies to `script` run once per call, in call order. Error replies, and the
        failure of a call's node, are returned as exceptions in that call's place."""
        if not self._loaded:
            try:
                await self.refresh()
            except Exception as exc:  # no node answered: nothing can be routed
                return [exc] * len(calls)
        packed = [resp.evalsha(script.sha, call_keys, args) for call_keys, args in calls]
        slots = [key_slot(call_keys[0].encode()) for call_keys, _ in calls]
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(MAX_REDIRECTS + 1):
            by_node: dict[Address, list[int]] = defaultdict(list)
            for i in todo:
                node = self._slots[slots[i]]
                if node is None:
                    replies[i] = ClusterDownError(f"Hash slot {slots[i]} is not served.")
                else:
                    by_node[node].append(i)
            sent = await self._send_all(
                {node: [packed[i] for i in idx] for node, idx in by_node.items()}
            )
            todo = []
            unscripted: dict[Address, list[int]] = defaultdict(list)
            for (node, idx), got in zip(by_node.items(), sent, strict=True):
                if isinstance(got, Exception):  # the node is down or stalled: only its calls fail
                    for i in idx:
                        replies[i] = got
                    self._failing.add(node)
                    self._refresh_soon(after_failure=True)  # a replica may take its slots over
                    continue
                self._failing.discard(node)
                for i, reply in zip(idx, got, strict=True):
                    redirect = _redirection(reply)
                    if redirect is not None:
                        moved, slot, target = redirect
                        if moved:
                            self._slots[slot] = target
                            self._refresh_soon()
                            todo.append(i)
                        else:  # not on the importing node: see the module's docstring
                            replies[i] = TryAgainError(
                                f"Hash slot {slot} is being migrated; try again."
                            )
                    elif isinstance(reply, NoScriptError):  # the node restarted or is new
                        unscripted[node].append(i)
                        todo.append(i)
                    else:
                        replies[i] = reply
            if unscripted:
                loaded = await asyncio.gather(
                    *(self._load(node, script) for node in unscripted), return_exceptions=True
                )
                for idx, error in zip(unscripted.values(), loaded, strict=True):
                    if error is not None:
                        for i in idx:
                            replies[i] = error
                            todo.remove(i)
            if not todo:
                return replies
        for i in todo:
            replies[i] = TryAgainError("The call's hash slot kept moving; try again.")
        return replies

    async def run_on_node(
        self, script: LuaScript, node: Address, calls: Sequence[Sequence[str]]
    ) -> list[Any]:
        """The replies to `script` run on `node` once per args, in order, with no declared keys
        (every key it touches must be one that node serves, or the script must answer for it).
        Error replies, and the node's failure, are returned as exceptions in the calls' places."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            packed = [resp.evalsha(script.sha, (), calls[i]) for i in todo]
            (got,) = await self._send_all({node: packed})
            if isinstance(got, Exception):  # the node is down or stalled: only its calls fail
                got = [got] * len(todo)
                self._failing.add(node)
                self._refresh_soon(after_failure=True)  # a replica may take its slots over
            else:
                self._failing.discard(node)
            unscripted = []
            for i, reply in zip(todo, got, strict=True):
                replies[i] = reply
                if attempt == 0 and isinstance(reply, NoScriptError):  # restarted, or new
                    unscripted.append(i)
            if not unscripted:
                break
            try:
                await self._load(node, script)
            except Exception as exc:
                for i in unscripted:
                    replies[i] = exc
                break
            todo = unscripted  # replayed
        return replies

    async def _send_all(self, writes: dict[Address, list[bytes]]) -> list[Any]:
        """Per node, its replies to its calls (each packed), or the exception that failed the
        node. Every node's write leaves before any reply is awaited."""
        under_way: list[Any] = []
        for node, calls in writes.items():
            if node in self._stalled:
                under_way.append(RedisTimeoutError(f"Redis node {node[0]}:{node[1]} is stalled."))
                continue
            packed = b"".join(calls)
            commands = len(calls)
            pipe = self._pipe(node)
            replies = pipe.write_many(packed, commands)
            if replies is None:  # to be connected first: meanwhile the other nodes' go out
                replies = asyncio.ensure_future(pipe.call_many(packed, commands))
            under_way.append((pipe, packed, commands, replies))
        results: list[Any] = []
        for entry, node in zip(under_way, writes, strict=True):
            if isinstance(entry, Exception):
                results.append(entry)
                continue
            pipe, packed, commands, replies = entry
            try:
                try:
                    got = await replies
                except RedisConnectionError:  # dropped under way (restarted?): once more, anew;
                    got = await pipe.call_many(packed, commands)  # the scripts are idempotent
            except Exception as exc:
                if isinstance(exc, RedisTimeoutError | TimeoutError) and node not in self._stalled:
                    self._stalled[node] = asyncio.get_running_loop().create_task(self._probe(node))
                results.append(exc)
                continue
            results.append(got)
        return results

    async def _probe(self, node: Address) -> None:
        """PING a stalled node until it answers (one try per timeout), then let calls reach it."""
        try:
            while True:
                try:
                    reply = await self._pipe(node).call(PING)
                except Exception:
                    reply = None
                if reply is not None and not isinstance(reply, Exception):
                    return
                await asyncio.sleep(self._timeout)
        finally:
            if self._stalled.get(node) is asyncio.current_task():
                del self._stalled[node]

    async def answering(self, node: Address) -> None:
        """Return once `node` is not known to be stalled (at once when it is not)."""
        probe = self._stalled.get(node)
        if probe is not None:
            await asyncio.shield(probe)

    async def _load(self, node: Address, script: LuaScript) -> None:
        reply = await self._pipe(node).call(resp.command("SCRIPT", "LOAD", script.source))
        if isinstance(reply, Exception):
            raise reply

    async def refresh(self) -> None:
        """Read the slot table from the first node that answers: known primaries first, those
        that failed last, then the URL's node."""
        candidates = sorted(self.nodes(), key=lambda node: node in self._failing)
        candidates.append(self._seed)
        failure: Exception = RedisConnectionError("No Redis Cluster node answered.")
        for node in dict.fromkeys(candidates):
            try:
                reply = await self._pipe(node).call(CLUSTER_SLOTS)
            except Exception as exc:
                failure = exc
                continue
            if isinstance(reply, Exception):
                failure = reply
                continue
            self._apply(node, reply)
            self._refreshed_at = asyncio.get_running_loop().time()
            return
        raise failure

    def _apply(self, asked: Address, reply: list[Any]) -> None:
        slots: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            host = primary[0].decode() if primary[0] else asked[0]  # "": the node asked
            node = (host, int(primary[1]))
            slots[start : end + 1] = [node] * (end - start + 1)
        self._slots, self._loaded = slots, True
        for gone in set(self._pipes) - set(slots) - {self._seed}:
            self._pipes.pop(gone).close()
        for gone in set(self._stalled) - set(slots):
            self._stalled[gone].cancel()

    def _refresh_soon(self, after_failure: bool = False) -> None:
        """Read the table again in the background: one reading at a time, and one more after it
        when a redirection asked meanwhile (the table may have changed since it was read). A
        failed node asks at most once per timeout: while it stays down every batch would."""
        if after_failure and (
            self._refreshing is not None
            or asyncio.get_running_loop().time() - self._refreshed_at < self._timeout
        ):
            return
        if self._refreshing is not None:
            self._refresh_again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh_in_background())

    async def _refresh_in_background(self) -> None:
        try:
            while True:
                self._refresh_again = False
                try:
                    await self.refresh()
                except Exception as exc:
                    log.warning("reading the cluster's slot table failed: %s", exc)
                    return  # the next failure or redirection asks again
                if not self._refresh_again:
                    return
        finally:
            self._refreshing = None

    def close(self) -> None:
        for probe in list(self._stalled.values()):
            probe.cancel()
        if self._refreshing is not None:
            self._refreshing.cancel()
            self._refreshing = None
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()


def _redirection(reply: Any) -> tuple[bool, int, Address] | None:
    """(moved, slot, node) of a MOVED or ASK error reply; None for any other reply."""
    if not isinstance(reply, ResponseError):
        return None
    text = str(reply)
    moved = text.startswith("MOVED ")
    if not moved and not text.startswith("ASK "):
        return None
    _, slot, node = text.split(" ")
    host, _, port = node.rpartition(":")
    return moved, int(slot), (host, int(port))
