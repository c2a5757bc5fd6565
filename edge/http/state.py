"""What every request handler reaches through `request.app.state.edge`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from edge.ingest.auth import KeyRing
from edge.runtime.config import Settings
from edge.runtime.deadline import Deadline
from edge.runtime.metrics import Metrics
from edge.pipeline.handler import Pipeline
from edge.pipeline.rulebook import Rulebook
from edge.pipeline.journeybook import Journeys
from edge.store.catalog import CatalogStore
from edge.store.journeys import JourneyStore
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
    journeys: Journeys | None = None  # the journey files, for the journey routes
    journey_store: JourneyStore | None = None
    # The site whose key the edge's own pages (the demo shop) use from the edge's origin.
    own_pages_site: str | None = None
    # The signer of tracking links (edge.ingest.tracking.Tokens), loaded on first use.
    tokens: Any = None
    # How long one event, and one batch, may wait on Redis before the caller gets 503.
    event_deadline: Deadline = field(init=False)
    batch_deadline: Deadline = field(init=False)

    def __post_init__(self) -> None:
        seconds = self.settings.redis.deadline_ms / 1000
        self.event_deadline = Deadline(seconds)
        self.batch_deadline = Deadline(seconds * 5)
