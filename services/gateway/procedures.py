"""The gateway's tRPC procedures: each validates its input and calls one upstream endpoint."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.gateway.trpc import NO_INPUT, TRPCError
from services.gateway.upstream import Upstream, UpstreamAnswer


class ScoreInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_id: str = Field(min_length=1, max_length=256)
    features: dict[str, float]


class SignalFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str | None = None
    end: str | None = None
    source: str | None = None
    name: str | None = None


class AggregateInput(SignalFilter):
    group_by: Literal["source", "name", "hour", "day"]
    limit: int | None = Field(default=None, ge=1)
    offset: int | None = Field(default=None, ge=0)


# A handler gets the validated input and, to revalidate, the upstream tag to send back.
Handler = Callable[[Any, str | None], Awaitable[UpstreamAnswer]]


@dataclass(frozen=True)
class Procedure:
    path: str
    kind: Literal["query", "mutation"]
    input_model: type[BaseModel]
    handler: Handler
    # Its upstream tags answers and honours If-None-Match, so a stored answer can be revalidated
    # there instead of fetched again.
    revalidates: bool = False

    def validate(self, raw_input: Any) -> BaseModel:
        """The input as the procedure's model; raises TRPCError BAD_REQUEST with the reasons."""
        return _validate(self.input_model, raw_input)

    async def __call__(
        self, request: BaseModel, *, if_none_match: str | None = None
    ) -> UpstreamAnswer:
        return await self.handler(request, if_none_match)

    def cache_key(self, request: BaseModel) -> tuple[str, str]:
        """The call's identity for stored validators: the path and the canonical input."""
        return (self.path, request.model_dump_json(exclude_none=True))


def build_procedures(scoring: Upstream, analytics: Upstream) -> dict[str, Procedure]:
    """The router: procedure path -> Procedure, bound to the given upstreams."""

    async def score(request: ScoreInput, _if_none_match: str | None) -> UpstreamAnswer:
        return await scoring.post_json("/score", request.model_dump())

    async def compute_score(request: ScoreInput, _if_none_match: str | None) -> UpstreamAnswer:
        # The scoring service's own switch: computed afresh, the cache left out.
        fresh = {"Cache-Control": "no-cache"}
        return await scoring.post_json("/score", request.model_dump(), headers=fresh)

    async def summary(request: SignalFilter, if_none_match: str | None) -> UpstreamAnswer:
        params = _query_params(request)
        return await analytics.get_json("/summary", params, if_none_match=if_none_match)

    async def aggregate(request: AggregateInput, if_none_match: str | None) -> UpstreamAnswer:
        params = _query_params(request)
        return await analytics.get_json("/aggregate", params, if_none_match=if_none_match)

    procedures = [
        Procedure("score.get", "query", ScoreInput, score),
        Procedure("score.compute", "mutation", ScoreInput, compute_score),
        Procedure("analytics.summary", "query", SignalFilter, summary, revalidates=True),
        Procedure("analytics.aggregate", "query", AggregateInput, aggregate, revalidates=True),
    ]
    return {procedure.path: procedure for procedure in procedures}


def _validate(model: type[BaseModel], raw_input: Any) -> BaseModel:
    try:
        return model.model_validate({} if raw_input is NO_INPUT else raw_input)
    except ValidationError as exc:
        raise TRPCError("BAD_REQUEST", _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        problems.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "invalid input: " + "; ".join(problems)


def _query_params(request: BaseModel) -> dict[str, Any]:
    return request.model_dump(exclude_none=True)
