"""The one record hilt is built around: a feedback event (x, y, h).

``x`` is the interaction (a prompt or a list of role-tagged messages), ``y`` one or more
responses, ``h`` the feedback, and ``context`` the versions that produced them. Everything
downstream (reviews, labels, dataset records, model versions, gate decisions) points back
to an event id, so the versions recorded here are never lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from hilt.canonical import content_hash
from hilt.jsonl import field_path, non_finite_path

CONSENT_SCOPES = ("review", "train", "eval")
ConsentScope = Literal["review", "train", "eval"]
Role = Literal["system", "user", "assistant", "tool"]


def _within_utc_range(value: datetime) -> datetime:
    """Refuse a time whose UTC instant falls outside 0001-01-01..9999-12-31.

    Times are stored and compared in UTC; "9999-12-31T23:30:00-01:00" is a valid ISO
    time whose UTC instant (year 10000) no Python datetime can hold, so it would be
    stored and then break every later read of it (builds, erasure). The value keeps its
    offset (the content hash and the derived id are those of the text as sent).
    """
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{value.isoformat()} is outside 0001-01-01..9999-12-31 in "
                             "UTC") from None
    return value


# An ISO time (naive times are UTC) whose UTC instant a datetime can hold.
UtcDatetime = Annotated[datetime, AfterValidator(_within_utc_range)]


def _finite_values(value: dict[str, Any]) -> dict[str, Any]:
    if value:
        path = non_finite_path(value)
        if path is not None:
            # ``path`` (below the field) completes the error's location: see
            # hilt.events.validate._error_field
            raise PydanticCustomError("finite_number", "Input should be a finite number",
                                      {"path": field_path(path)})
    return value


# A free-form object (metadata, decoder extras): any JSON, but numbers must be finite.
FreeForm = Annotated[dict[str, Any], AfterValidator(_finite_values)]


class _Strict(BaseModel):
    # NaN and ±Infinity (which JSON parsers accept, as they read 1e999) cannot be stored
    # as JSON: refuse them here, with the field, rather than store null or fail at the
    # write; float fields by allow_inf_nan, free-form objects by FreeForm
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


class Message(_Strict):
    role: Role
    content: str


class Interaction(_Strict):
    """Either a single ``prompt`` or a ``messages`` list (multi-turn), not both."""

    prompt: str | None = None
    messages: list[Message] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Interaction:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must not be empty")
        return self

    def as_messages(self) -> list[Message]:
        if self.messages is not None:
            return list(self.messages)
        return [Message(role="user", content=self.prompt or "")]

    def text(self) -> str:
        """The user-visible text of the interaction, for matching and deduplication."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m.content for m in self.messages or [])


class Response(_Strict):
    text: str
    id: str | None = None
    model_version: str | None = None


class DecoderSettings(_Strict):
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    stop: list[str] | None = None
    extra: FreeForm = Field(default_factory=dict)


class Context(_Strict):
    model_version: str | None = None
    prompt_template_id: str | None = None
    prompt_template_version: str | None = None
    role_format: str | None = None
    policy_version: str | None = None
    decoder: DecoderSettings = Field(default_factory=DecoderSettings)
    source: str | None = None
    subject_id: str | None = Field(default=None, description="pseudonymous subject id")
    consent: list[ConsentScope] = Field(
        default_factory=list, description="consent scopes: review, train, eval")
    tags: list[str] = Field(default_factory=list)
    metadata: FreeForm = Field(default_factory=dict)


class _FeedbackBase(_Strict):
    author: str | None = Field(default=None, description="pseudonymous author id")
    origin: Literal["human", "system"] = "human"
    created_at: UtcDatetime | None = None


class RatingFeedback(_FeedbackBase):
    kind: Literal["rating"] = "rating"
    value: float
    scale_min: float = 1
    scale_max: float = 5
    response_index: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _in_scale(self) -> RatingFeedback:
        if not self.scale_min <= self.value <= self.scale_max:
            raise PydanticCustomError(
                "rating_scale", "rating {value} outside [{low}, {high}]",
                {"value": self.value, "low": self.scale_min, "high": self.scale_max,
                 "path": "value"})
        return self


class ThumbsFeedback(_FeedbackBase):
    kind: Literal["thumbs"] = "thumbs"
    up: bool
    response_index: int = Field(default=0, ge=0)


class FlagFeedback(_FeedbackBase):
    kind: Literal["flag"] = "flag"
    reason: str = Field(min_length=1)
    category: str | None = None
    response_index: int = Field(default=0, ge=0)


class PreferenceFeedback(_FeedbackBase):
    kind: Literal["preference"] = "preference"
    chosen: int = Field(ge=0, description="index of the preferred response")
    rejected: int = Field(ge=0)
    strength: float | None = Field(default=None, ge=0, description="optional margin")

    @model_validator(mode="after")
    def _distinct(self) -> PreferenceFeedback:
        if self.chosen == self.rejected:
            raise ValueError("'chosen' and 'rejected' must differ")
        return self


class LabelFeedback(_FeedbackBase):
    kind: Literal["label"] = "label"
    name: str = Field(min_length=1)
    value: str
    response_index: int = Field(default=0, ge=0)


class TextFeedback(_FeedbackBase):
    kind: Literal["text"] = "text"
    text: str


class EditFeedback(_FeedbackBase):
    kind: Literal["edit"] = "edit"
    text: str = Field(description="the rewritten response")
    response_index: int = Field(default=0, ge=0)


Feedback = Annotated[
    RatingFeedback | ThumbsFeedback | FlagFeedback | PreferenceFeedback | LabelFeedback
    | TextFeedback | EditFeedback,
    Field(discriminator="kind"),
]


class FeedbackEvent(_Strict):
    """An interaction x, its response(s) y and feedback h, with the versions behind them."""

    id: str | None = Field(default=None, min_length=1, max_length=128,
                           description="unique id; derived from a content hash when absent")
    interaction: Interaction
    responses: list[Response] = Field(default_factory=list)
    feedback: list[Feedback] = Field(default_factory=list)
    context: Context = Field(default_factory=Context)
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="system scores, e.g. guardrail, reward, uncertainty; used by escalation")
    created_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _indices_exist(self) -> FeedbackEvent:
        n = len(self.responses)
        for i, fb in enumerate(self.feedback):
            if isinstance(fb, PreferenceFeedback):
                indices: tuple[tuple[str, int], ...] = (("chosen", fb.chosen),
                                                         ("rejected", fb.rejected))
            elif isinstance(fb, TextFeedback):
                continue
            else:
                indices = (("response_index", fb.response_index),)
            for name, idx in indices:
                if idx >= n:
                    # ``path`` names the index at fault (hilt.events.validate), where
                    # a check of the whole event would otherwise name no field
                    raise PydanticCustomError(
                        "response_index", "feedback[{i}] points at response {idx}, but "
                        "the event has {n} response(s)",
                        {"i": i, "idx": idx, "n": n, "path": f"feedback[{i}].{name}"})
        return self

    def with_id(self) -> FeedbackEvent:
        """The event with its id filled in: given, or ``ev_`` + a content hash."""
        if self.id is not None:
            return self
        body = self.model_dump(mode="json", exclude={"id"})
        return self.model_copy(update={"id": "ev_" + content_hash(body)[:32]})

    def occurred_at(self) -> datetime:
        return self.created_at or datetime.now(UTC)


def event_json_schema() -> dict[str, Any]:
    return FeedbackEvent.model_json_schema()
