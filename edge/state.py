"""What every request handler reaches through `request.app.state.edge`."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from edge.auth import KeyRing
from edge.config import Settings
from edge.metrics import Metrics
from edge.pipeline import Pipeline
from edge.rulebook import Rulebook
from edge.store.catalog import CatalogStore
from edge.store.profiles import ProfileStore


@dataclass
class EdgeState:
    settings: Settings
    keyring: KeyRing
    redis: aioredis.Redis
    store: ProfileStore
    rulebook: Rulebook
    pipeline: Pipeline
    metrics: Metrics
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    catalog: CatalogStore | None = None
