"""Online features from the Feast feature server (``feast serve``), over one persistent HTTP pool.

The model's metadata says which feature views of its feature service live in the online store
and by which join keys (``featurestore.service_layout``). The views that the bounded TTL cache
cannot answer are fetched with ``POST /get-online-features``: in one read, or in a few reads
sent side by side when that costs the server less (:meth:`FeatureClient.reads`); values are
mapped by the feature names the server returns (never by position: it does not keep schema order).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import urllib3

from serving.errors import FeatureServerUnavailableError

Values = tuple[float, ...]
NAN = float("nan")

READ_COST = 240.0
"""What one more read costs ``feast serve``, in feature values returned (see :meth:`FeatureClient.reads`).

Measured with Feast 0.67 on two cores: about 1.7 ms per read, 30 us per entity row and 7 us per
value returned (every value comes back with its own event timestamp as text)."""
ROW_COST = 4.0
"""What one more entity row of a read costs, in feature values returned."""


def _partitions(items: Sequence[str]) -> Iterator[list[list[str]]]:
    """Every way to split ``items`` into non-empty groups (a few views: 15 ways for four)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield [*partition[:i], [first, *partition[i]], *partition[i + 1 :]]


def _distinct(
    keys_per_row: Sequence[Mapping[str, str]], rows: Sequence[int], keys: Sequence[str]
) -> dict[tuple[str, ...], int]:
    """The distinct values of ``keys`` over ``rows``, each with its index, in first-seen order."""
    found: dict[tuple[str, ...], int] = {}
    for row in rows:
        found.setdefault(tuple(keys_per_row[row][k] for k in keys), len(found))
    return found


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return NAN
    return float(value)


class FeatureClient:
    """Fetches feature-view values per flight; cache keyed by (view, join key values)."""

    def __init__(
        self,
        url: str,
        views: Mapping[str, Mapping[str, Any]],
        timeout_s: float,
        ttl_s: float,
        max_entries: int,
        static_ttl_s: float = 0.0,
        read_cost: float = READ_COST,
    ) -> None:
        """``views``: ``{view: {"join_keys": [...], "features": [...], "ttl_s": ...}}`` from the model's layout.

        Values of a view are reused for ``ttl_s``, or ``static_ttl_s`` when the view has no TTL in
        Feast (``ttl_s`` 0: static attributes); 0 turns caching off for that kind of view.
        ``read_cost``: what one more read costs the server (:data:`READ_COST`); with 0 only the
        rows and values count, a very large value reads every view at once.
        """
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"feature_server_url must be http://host:port, got {url!r}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = urllib3.Timeout(total=timeout_s)
        self._ttl = {v: static_ttl_s if spec.get("ttl_s") == 0 else ttl_s for v, spec in views.items()}
        self._per_view = max(1, max_entries // max(1, len(views)))
        self.layout = views
        """The views as the model's metadata gave them (the model compares it to decide on a new client)."""
        self.views = {name: (tuple(v["join_keys"]), tuple(v["features"])) for name, v in views.items()}
        self._cache: dict[str, OrderedDict[tuple[str, ...], tuple[float, Values]]] = {v: OrderedDict() for v in views}
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._beside: ThreadPoolExecutor | None = None
        self._read_cost = read_cost
        self.hits = 0
        self.misses = 0

    def _http(self) -> urllib3.HTTPConnectionPool:
        # created lazily: Seldon forks its workers after building the model object
        if self._pool is None:
            self._pool = urllib3.HTTPConnectionPool(
                self._host, self._port, maxsize=2, block=False, timeout=self._timeout, retries=False
            )
        return self._pool

    def _thread(self) -> ThreadPoolExecutor:
        # one thread beside the caller's: two reads at once at most, as the pool keeps two connections
        if self._beside is None:
            self._beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-read")
        return self._beside

    def close(self) -> None:
        """Let go of the connections and the reading thread (a client replaced by another)."""
        if self._beside is not None:
            self._beside.shutdown(wait=False)
            self._beside = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One call to ``/get-online-features``; any failure is :class:`FeatureServerUnavailableError`."""
        try:
            response = self._http().request(
                "POST",
                "/get-online-features",
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of the timeout errors: first
            detail = str(exc).split(": ", 1)[-1]  # "Failed to establish a new connection: [Errno 111] ..."
            raise FeatureServerUnavailableError(f"feature server {self.url} unreachable: {detail}") from None
        except urllib3.exceptions.TimeoutError:
            raise FeatureServerUnavailableError(
                f"feature server {self.url} did not answer within {self._timeout.total:g} s (is its online store up?)"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise FeatureServerUnavailableError(f"feature server {self.url} unreachable: {reason}") from None
        if response.status != 200:
            detail = response.data[:300].decode("utf-8", "replace")
            raise FeatureServerUnavailableError(f"feature server {self.url} answered {response.status}: {detail}")
        try:
            answer: dict[str, Any] = json.loads(response.data)
        except ValueError:
            raise FeatureServerUnavailableError(f"feature server {self.url} sent a body that is not JSON") from None
        return answer

    def probe(self) -> None:
        """A real online read (unknown key: answered NOT_FOUND) that fails if the server or its store is down."""
        view, (keys, names) = next(iter(self.views.items()))
        self.post({"features": [f"{view}:{names[0]}"], "entities": {k: ["__probe__"] for k in keys}})

    def fetch(self, keys_per_row: Sequence[Mapping[str, str]]) -> list[dict[str, Values]]:
        """Per row, per view: the view's feature values (NaN where missing), in the view's feature order."""
        now = time.monotonic()
        out: list[dict[str, Values]] = [{} for _ in keys_per_row]
        missing: dict[str, list[int]] = {}
        for view, (join_keys, _) in self.views.items():
            cache = self._cache[view]
            cached = self._ttl[view] > 0
            for row, keys in enumerate(keys_per_row):
                hit = cache.get(tuple(keys[k] for k in join_keys)) if cached else None
                if hit is not None and hit[0] > now:
                    out[row][view] = hit[1]
                    self.hits += 1
                else:
                    missing.setdefault(view, []).append(row)
                    self.misses += 1
        if missing:
            self._fill(keys_per_row, missing, out, now)
        return out

    def _distinct_keys(
        self, keys_per_row: Sequence[Mapping[str, str]], missing: dict[str, list[int]]
    ) -> dict[str, dict[tuple[str, ...], int]]:
        """Per missing view, its distinct keys over its rows, each with its index (first seen first)."""
        return {view: _distinct(keys_per_row, rows, self.views[view][0]) for view, rows in missing.items()}

    def _request_rows(
        self,
        keys_per_row: Sequence[Mapping[str, str]],
        missing: dict[str, list[int]],
        distinct: Mapping[str, dict[tuple[str, ...], int]] | None = None,
    ) -> tuple[dict[str, list[str]], dict[str, dict[tuple[str, ...], int]]]:
        """The entity rows of one online read, and per view the row that holds each of its keys.

        Feast reads each view by its own join keys (each distinct key once), so row ``i`` can
        carry the ``i``-th distinct key of every view, padded with the view's first: a read has
        as many rows as the view with the most distinct keys, not one per flight (Feast's work
        grows with the rows). Views that share a join key but not all of them cannot be packed
        so: their rows are the flights' distinct key combinations. ``distinct``: each view's
        distinct keys (:meth:`_distinct_keys`), if already known.
        """
        known = distinct if distinct is not None else self._distinct_keys(keys_per_row, missing)
        slots = {view: known[view] for view in missing}
        size = max(len(slot) for slot in slots.values())
        entities: dict[str, list[str]] = {}
        packed = True
        for view, slot in slots.items():
            padded = [*slot, *[next(iter(slot))] * (size - len(slot))]
            for i, k in enumerate(self.views[view][0]):
                column = [key[i] for key in padded]
                packed = packed and entities.setdefault(k, column) == column
        if packed:
            return entities, slots
        join_keys = tuple(sorted({k for view in missing for k in self.views[view][0]}))
        rows = sorted({row for view_rows in missing.values() for row in view_rows})
        combos = _distinct(keys_per_row, rows, join_keys)
        entities = {k: [combo[i] for combo in combos] for i, k in enumerate(join_keys)}
        for view, view_rows in missing.items():
            keys = self.views[view][0]
            slots[view] = {}
            for row in view_rows:
                key = tuple(keys_per_row[row][k] for k in keys)
                slots[view].setdefault(key, combos[tuple(keys_per_row[row][k] for k in join_keys)])
        return entities, slots

    def reads(
        self,
        keys_per_row: Sequence[Mapping[str, str]],
        missing: dict[str, list[int]],
        distinct: Mapping[str, dict[tuple[str, ...], int]] | None = None,
    ) -> list[list[str]]:
        """How the missing views are grouped into reads: the grouping the server answers at least cost.

        A read's rows are as many as its views' most distinct keys (:meth:`_request_rows`), and
        ``feast serve`` returns every feature of every view for every row, each value with its
        event timestamp. An hour of flights has dozens of routes but three origins: read
        together, the weather's values come back once per route. Each grouping is priced at
        ``read_cost`` per read plus, per read, its rows times (:data:`ROW_COST` + its features);
        the cheapest wins, and of equal ones the one with the fewest reads. A read whose views
        share part of their join keys is priced at one row per flight. More than five views are
        read at once (the groupings to price grow too fast). ``distinct``: each view's distinct
        keys (:meth:`_distinct_keys`), if already known.
        """
        views = list(missing)
        if len(views) < 2 or len(views) > 5:
            return [views]
        known = distinct if distinct is not None else self._distinct_keys(keys_per_row, missing)

        def rows(group: list[str]) -> int:
            keys = [set(self.views[view][0]) for view in group]
            whole = all(a == b or not a & b for a in keys for b in keys)
            return max(len(known[view]) for view in group) if whole else len(keys_per_row)

        def cost(partition: list[list[str]]) -> tuple[float, int]:
            total = 0.0
            for group in partition:
                values = sum(len(self.views[view][1]) for view in group)
                total += self._read_cost + rows(group) * (ROW_COST + values)
            return total, len(partition)

        return min(_partitions(views), key=cost)

    def _read(
        self,
        keys_per_row: Sequence[Mapping[str, str]],
        missing: dict[str, list[int]],
        distinct: Mapping[str, dict[tuple[str, ...], int]],
    ) -> tuple[dict[str, list[Any]], dict[str, dict[tuple[str, ...], int]]]:
        """One read of the ``missing`` views: each returned feature's values, and where each view's keys are."""
        entities, slots = self._request_rows(keys_per_row, missing, distinct)
        refs = [f"{view}:{name}" for view in missing for name in self.views[view][1]]
        answer = self.post({"features": refs, "entities": entities})
        try:
            columns = {
                name: result["values"]
                for name, result in zip(answer["metadata"]["feature_names"], answer["results"], strict=True)
            }
        except (KeyError, TypeError, ValueError):
            raise FeatureServerUnavailableError(
                f"feature server {self.url} sent an unexpected response shape"
            ) from None
        return columns, slots

    def _fill(
        self,
        keys_per_row: Sequence[Mapping[str, str]],
        missing: dict[str, list[int]],
        out: list[dict[str, Values]],
        now: float,
    ) -> None:
        distinct = self._distinct_keys(keys_per_row, missing)  # what the grouping and the reads both need
        groups = [{view: missing[view] for view in group} for group in self.reads(keys_per_row, missing, distinct)]
        self._http()  # made here, not by the first of two reads at once
        # the other reads go out beside the first (a worker of the server each, when both are free)
        beside = [self._thread().submit(self._read, keys_per_row, group, distinct) for group in groups[1:]]
        columns, slots = self._read(keys_per_row, groups[0], distinct)
        for pending in beside:
            more_columns, more_slots = pending.result()
            columns.update(more_columns)
            slots.update(more_slots)
        for view, view_rows in missing.items():
            ttl_s = self._ttl[view]
            view_keys, names = self.views[view]
            if any(n not in columns for n in names):
                absent = sorted(n for n in names if n not in columns)
                raise FeatureServerUnavailableError(
                    f"feature server {self.url} did not return {view} features {absent}"
                )
            cache, slot = self._cache[view], slots[view]
            for row in view_rows:
                key = tuple(keys_per_row[row][k] for k in view_keys)
                values = tuple(_number(columns[n][slot[key]]) for n in names)
                out[row][view] = values
                if ttl_s > 0:
                    cache[key] = (now + ttl_s, values)
            while len(cache) > self._per_view:
                cache.popitem(last=False)
