"""The reward server: a FastAPI app over one `Scorer`, fed by the dynamic batcher.

    create_app(rm, ServeConfig()) -> FastAPI       # `rewardsmith serve MODEL` runs it with uvicorn

Endpoints (request/response bodies in schemas.py, browsable at /docs):
    POST /score       {"items": [{"messages"|"prompt", "response"}]}  -> raw + calibrated rewards
    POST /compare     {"messages"|"prompt", "a", "b"}                  -> P(a better than b)
    POST /best-of-n   {"messages"|"prompt", "responses": [...]}        -> ranking, best first
    POST /get_reward  OpenRLHF's remote RM protocol {"query": [...]}   -> {"rewards": [...]}
    GET  /health, GET /metrics (Prometheus), GET /docs, GET /openapi.json

Every score comes from the Scorer on the worker thread (`encode_all`: the library's one input
format; `score_ids`: its forward pass and pooling), so the server returns the library's reward for
the same (conversation, response), up to floating-point noise from different batch-mates (the
tests hold it to 1e-6 in fp32); nothing here formats text. The calibrated score is
(reward - score_mean) / score_std from the model's manifest.

Bad input never reaches the worker: pydantic rejects wrong types, unknown fields and empty
responses (422), the per-server limits are checked next (413), and every error body is
`{"detail": "<field>: <what is wrong and how to fix it>", "errors": [{"field", "message"}]}`
(401 and 503 carry `detail` alone). Past `--max-pending` items in flight a request gets 503 with
Retry-After at once instead of queueing without limit.
With an API key set, POST endpoints need `Authorization: Bearer <key>`; GET endpoints stay open
so health checks and Prometheus need no secret.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from rewardsmith import __version__, allocator
from rewardsmith.errors import RewardsmithError
from rewardsmith.score import preference_probability
from rewardsmith.serve import schemas
from rewardsmith.serve.batcher import Batcher, Overloaded
from rewardsmith.serve.config import ServeConfig
from rewardsmith.serve.openrlhf import QueryParser

if TYPE_CHECKING:
    from rewardsmith.models import RewardModel

log = logging.getLogger(__name__)


# --- errors ----------------------------------------------------------------------------------------

def _field(loc: tuple | list) -> str:
    """("body", "items", 0, "response") -> "items[0].response"; a key that is no identifier is
    quoted, so an unknown key "items[0]" or "." is not read as a path: ("body", "a.b") -> '["a.b"]'."""
    path = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).isidentifier():
            path += f"[{json.dumps(str(part), ensure_ascii=False)}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def _error(status: int, errors: list[tuple[str, str]]) -> JSONResponse:
    detail = "; ".join(f"{f}: {m}" for f, m in errors)
    return JSONResponse({"detail": detail, "errors": [{"field": f, "message": m} for f, m in errors]}, status)


def _validation_errors(exc: RequestValidationError) -> JSONResponse:
    errors: list[tuple[str, str]] = []
    status = 422
    for e in exc.errors():
        kind, loc = e.get("type"), e.get("loc", ())
        if kind == "json_invalid":
            status = 400
            pos = loc[1] if len(loc) > 1 else "?"
            errors.append(("body", f"malformed JSON at character {pos}: {e.get('ctx', {}).get('error', e['msg'])}"))
        elif kind == "model_attributes_type" and tuple(loc) == ("body",) and isinstance(e.get("input"), (str, bytes)):
            errors.append(("body", "expected a JSON object; send JSON with the header Content-Type: application/json"))
        elif kind == "missing":
            errors.append((_field(loc), "field required"))
        elif kind == "extra_forbidden":
            errors.append((_field(loc), "unknown field; remove it (see /docs for the accepted fields)"))
        else:
            msg = e.get("msg", "invalid").removeprefix("Value error, ")
            errors.append((_field(loc), msg))
    return _error(status, errors)


class _Refused(Exception):
    """A request refused with `status`, naming the field: over a limit (413), unscorable (422)."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


_FIELD_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])?): (.+)$", re.S)


def _unscorable(error: RewardsmithError) -> _Refused:
    """A library error about the input as a 422; "query[2]: ..." names its field, anything else the body."""
    m = _FIELD_PREFIX.match(str(error))
    return _Refused(422, m[1], m[2]) if m else _Refused(422, "body", str(error))


# --- metrics ---------------------------------------------------------------------------------------

class _Metrics:
    """Prometheus series in a registry of their own (several apps can live in one process)."""

    def __init__(self, batcher_pending) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        self.registry = CollectorRegistry()
        # process_resident_memory_bytes and friends: the heap grows under mixed shapes (docs/benchmarks.md)
        ProcessCollector(registry=self.registry)
        self.requests = Counter("rewardsmith_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("rewardsmith_request_seconds", "Request latency by endpoint", ["endpoint"],
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120),
                                 registry=self.registry)
        self.items = Counter("rewardsmith_items_scored", "Items (conversation, response) scored",
                             registry=self.registry)
        self.batch_items = Histogram("rewardsmith_batch_items", "Sequences per forward pass",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry)
        self.batch_requests = Histogram("rewardsmith_batch_requests", "Requests sharing one forward pass",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.batch_seconds = Histogram("rewardsmith_batch_seconds", "Seconds per forward pass",
                                       buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30), registry=self.registry)
        self.unparsed = Counter("rewardsmith_get_reward_unparsed", "/get_reward queries not in the model's "
                                "chat template, scored as plain text", registry=self.registry)
        queued = Gauge("rewardsmith_pending_items", "Items queued or being scored", registry=self.registry)
        queued.set_function(batcher_pending)

    def on_batch(self, items: int, jobs: int, seconds: float) -> None:
        self.items.inc(items)
        self.batch_items.observe(items)
        self.batch_requests.observe(jobs)
        self.batch_seconds.observe(seconds)


def _too_large(max_bytes: int) -> JSONResponse:
    return _error(413, [("body", f"larger than {max_bytes} bytes; send fewer items per request "
                                 "or raise --max-body-bytes")])


class _BodyLimit:
    """Refuses bodies over `max_bytes` with a 413 naming the limit: at once when Content-Length says
    so, else while a chunked body streams in (nothing larger is ever held in memory)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(self.max_bytes)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        started = False

        async def watch(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except _TooLarge:
            if not started:
                await _too_large(self.max_bytes)(scope, receive, send)


class _TooLarge(HTTPException):
    # An HTTPException, so FastAPI's body parsing lets it through instead of turning it into a 400.
    def __init__(self) -> None:
        super().__init__(413)


_ENDPOINTS = {"/score", "/compare", "/best-of-n", "/get_reward", "/health", "/metrics"}


# --- the app ---------------------------------------------------------------------------------------

def create_app(rm: "RewardModel", config: ServeConfig | None = None, *, name: str | None = None) -> FastAPI:
    """The server for one loaded reward model. The batcher's worker starts and stops with the app."""
    from rewardsmith.score import Scorer

    config = (config or ServeConfig()).check()
    manifest = rm.manifest
    model_name = name or str(getattr(rm, "path", None) or manifest.base_model or "reward-model")
    scorer = Scorer(rm, token_budget=config.token_budget, precision=config.precision, compile=config.compile)
    mean, std = manifest.score_mean, manifest.score_std
    calibrate = mean is not None and std is not None and std > 0

    def calibrated(rewards: list[float]) -> list[float] | None:
        return [(r - mean) / std for r in rewards] if calibrate else None

    metrics = _Metrics(lambda: batcher.pending_items)
    batcher = Batcher(scorer.encode_all, scorer.score_ids, token_budget=scorer.token_budget,
                      max_wait_ms=config.max_wait_ms, max_pending=config.max_pending, on_batch=metrics.on_batch)
    queries = QueryParser(rm.tokenizer, manifest, policy_eos=config.policy_eos)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        log.info("allocator: %s", allocator.active())
        if config.compile:  # compile now, not on the first request (minutes: it would time out)
            log.info("compiling the forward pass (once; the port opens when done)")
            await asyncio.to_thread(scorer.score, [([{"role": "user", "content": "warm-up"}], "ok")])
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(
        title="rewardsmith reward server",
        version=__version__,
        description=f"Scores responses with the reward model `{model_name}` ({manifest.describe()}).",
        lifespan=lifespan,
    )
    app.add_middleware(_BodyLimit, max_bytes=config.max_body_bytes)
    app.state.batcher, app.state.scorer, app.state.config = batcher, scorer, config

    @app.exception_handler(RequestValidationError)
    async def _on_validation(_request: Request, exc: RequestValidationError):
        return _validation_errors(exc)

    @app.exception_handler(_Refused)
    async def _on_refused(_request: Request, exc: _Refused):
        return _error(exc.status, [(exc.field, exc.message)])

    @app.exception_handler(HTTPException)
    async def _on_http(_request: Request, exc: HTTPException):
        if isinstance(exc, _TooLarge):  # a chunked body went over the limit while being parsed
            return _too_large(config.max_body_bytes)
        if exc.status_code == 400:
            # FastAPI's "There was an error parsing the body": bytes that are not text in a JSON
            # encoding (invalid UTF-8, NUL bytes read as UTF-32); the cause says where.
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            return _error(400, [("body", f"not JSON text{cause}; send JSON encoded as UTF-8 with the header "
                                         "Content-Type: application/json")])
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.middleware("http")
    async def _observe(request: Request, call_next):
        start = time.perf_counter()
        endpoint = request.url.path if request.url.path in _ENDPOINTS else "other"
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            metrics.requests.labels(endpoint, str(status)).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    def authorize(request: Request) -> None:
        if config.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), config.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key; send the header Authorization: Bearer <key>",
                                headers={"WWW-Authenticate": "Bearer"})

    def check_count(field: str, count: int) -> None:
        if count > config.max_items:
            raise _Refused(413, field, f"{count} items; the limit is {config.max_items} per request "
                                     "(split the request or raise --max-items)")

    def check_chars(field: str, n: int) -> None:
        if n > config.max_chars:
            raise _Refused(413, field, f"{n} characters; the limit is {config.max_chars} per item "
                                     "(shorten it or raise --max-chars)")

    async def score(items: list[tuple[list[dict], str]]) -> list[float]:
        """Scores through the batcher, with the request time limit; errors become HTTP errors."""
        try:
            return await asyncio.wait_for(batcher.score(items), timeout=config.request_timeout)
        except Overloaded as e:
            raise HTTPException(503, f"overloaded: {e} (--max-pending); retry after {e.retry_after} s",
                                headers={"Retry-After": str(e.retry_after)}) from None
        except asyncio.TimeoutError:
            raise HTTPException(503, f"not scored within {config.request_timeout:g} s (the server is overloaded); "
                                     "retry later, send fewer items, or raise --request-timeout") from None
        except RewardsmithError as e:
            raise _unscorable(e) from None
        except Exception as e:
            log.exception("scoring failed")
            raise HTTPException(500, f"scoring failed: {type(e).__name__}: {e}") from None

    secured = [Depends(authorize)]
    errors = {code: {"model": schemas.ErrorBody, "description": text} for code, text in [
        (400, "Malformed JSON"), (401, "Missing or wrong API key"), (413, "Over a limit (items, characters, bytes)"),
        (422, "Invalid body: the message names the field"),
        (503, "Overloaded: over --max-pending (with Retry-After) or not scored within --request-timeout")]}

    @app.post("/score", response_model=schemas.ScoreResponse, dependencies=secured, responses=errors)
    async def score_endpoint(body: schemas.ScoreRequest) -> schemas.ScoreResponse:
        """Rewards for a batch of (conversation, response) items, in request order."""
        check_count("items", len(body.items))
        for i, it in enumerate(body.items):
            check_chars(f"items[{i}]", it.characters() + len(it.response))
        rewards = await score([(it.conversation(), it.response) for it in body.items])
        return schemas.ScoreResponse(rewards=rewards, calibrated=calibrated(rewards))

    @app.post("/compare", response_model=schemas.CompareResponse, dependencies=secured,
              responses=errors)
    async def compare_endpoint(body: schemas.CompareRequest) -> schemas.CompareResponse:
        """P(a is better than b) = sigmoid(reward_a - reward_b), the Bradley-Terry probability."""
        check_chars("a", body.characters() + len(body.a))
        check_chars("b", body.characters() + len(body.b))
        conversation = body.conversation()
        ra, rb = await score([(conversation, body.a), (conversation, body.b)])
        return schemas.CompareResponse(p_a_better=preference_probability(ra, rb), rewards=[ra, rb],
                                       calibrated=calibrated([ra, rb]))

    @app.post("/best-of-n", response_model=schemas.BestOfNResponse, dependencies=secured,
              responses=errors)
    async def best_of_n_endpoint(body: schemas.BestOfNRequest) -> schemas.BestOfNResponse:
        """All responses ranked best first (ties keep request order)."""
        check_count("responses", len(body.responses))
        for i, r in enumerate(body.responses):
            check_chars(f"responses[{i}]", body.characters() + len(r))
        conversation = body.conversation()
        rewards = await score([(conversation, r) for r in body.responses])
        cal = calibrated(rewards)
        order = sorted(range(len(rewards)), key=lambda i: -rewards[i])  # stable: ties keep request order
        ranking = [schemas.RankedResponse(index=i, reward=rewards[i], calibrated=cal[i] if cal else None)
                   for i in order]
        return schemas.BestOfNResponse(best=order[0], ranking=ranking)

    @app.post("/get_reward", response_model=schemas.GetRewardResponse, dependencies=secured,
              responses=errors)
    async def get_reward_endpoint(body: schemas.GetRewardRequest) -> schemas.GetRewardResponse:
        """OpenRLHF's remote reward model protocol; see rewardsmith.serve.openrlhf for the mapping."""
        check_count("query", len(body.query))
        for i, q in enumerate(body.query):
            check_chars(f"query[{i}]", len(q))
        try:
            items, unparsed = queries.items(body.query, body.prompts)
        except RewardsmithError as e:
            raise _unscorable(e) from None
        metrics.unparsed.inc(unparsed)
        rewards = await score(items)
        cal = calibrated(rewards)
        return schemas.GetRewardResponse(rewards=rewards, scores=rewards,
                                         extra_logs={"calibrated_rewards": cal} if cal else {})

    @app.get("/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        """Liveness and what the server is serving."""
        return schemas.Health(status="ok", model=model_name, input_format=manifest.input_format,
                              max_length=manifest.max_length, truncation_side=manifest.truncation_side,
                              calibrated=calibrate, queue_items=batcher.pending_items)

    @app.get("/metrics", response_class=PlainTextResponse)  # documented as text/plain, not JSON
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, pending items."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
