"""Request and response bodies of the management routes: the Struct is the schema."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.worker_view import Worker
from shared.contract.wire import ApiKeyId, DateTime, UserId, WorkerId

# Postgres text cannot hold NUL characters: refuse them here (400) rather than fail the INSERT.
Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00]*[^\s\x00][^\x00]*$")
]
Text = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00]*$")]


class CreateWorker(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Text | None = None
    destination: Literal["local", "cloud"] = "local"
    imageVersion: Text | None = None
    workspacePath: Text | None = None
    sandboxBackend: Text | None = None


class CreateApiKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


create_worker_decoder = msgspec.json.Decoder(CreateWorker)
create_api_key_decoder = msgspec.json.Decoder(CreateApiKey)


# Response bodies of the management routes.
ShownOnce = Annotated[str, msgspec.Meta(description="Shown once.")]


class CreatedWorker(msgspec.Struct, gc=False):
    worker: Worker
    heartbeatToken: ShownOnce


class RotatedToken(msgspec.Struct, gc=False):
    workerId: WorkerId
    heartbeatToken: str
    tokenVersion: int


class ApiKey(msgspec.Struct, gc=False):
    id: ApiKeyId
    name: str
    createdByUserId: UserId | None
    createdAt: DateTime
    revokedAt: DateTime | None


class ApiKeyList(msgspec.Struct, gc=False):
    apiKeys: list[ApiKey]


class CreatedApiKey(msgspec.Struct, gc=False):
    apiKey: ApiKey
    secret: ShownOnce
