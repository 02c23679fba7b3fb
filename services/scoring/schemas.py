"""What /score accepts and answers, and how a refused body is explained."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FeatureName = Annotated[str, Field(min_length=1)]


class ScoreRequest(BaseModel):
    """One entity and its features; numbers must be finite, names non-empty."""

    # strict: "1.5" and true are not numbers; allow_inf_nan: NaN, Infinity and 1e999 are refused.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    entity_id: Annotated[str, Field(min_length=1)]
    features: Annotated[dict[FeatureName, float], Field(min_length=1)]


class ScoreResponse(BaseModel):
    entity_id: str
    score: float
    model_version: str


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """The errors of a refused body, each naming its field as a path from the body.

    The offending input is left out: it can be up to a megabyte and is the client's own.
    """
    return [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
