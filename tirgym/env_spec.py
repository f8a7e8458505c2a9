"""`EnvSpec`: an env id at fixed kwargs under an optional display name.

Suites, the training mix, eval rows and rollout tasks all name an env this way, so they
share one type and one label: episodes, metrics and sampling streams are keyed by the
label, and the same env id at other settings (difficulties) stays apart by its name.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field


class EnvSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    """Display name, for the same env id at several settings (e.g. difficulties)."""

    @property
    def label(self) -> str:
        return self.name or self.id

    @classmethod
    def by_kwargs(cls, id: str, kwargs: dict[str, Any] | None = None, **fields: Any) -> Self:
        """The spec named `id[k=v,...]` after its kwargs (just `id` without any), so one id
        asked for at several settings gets one label per setting."""
        kw = dict(kwargs or {})
        name = id + "[" + ",".join(f"{k}={v}" for k, v in sorted(kw.items())) + "]" if kw else None
        return cls(id=id, kwargs=kw, name=name, **fields)
