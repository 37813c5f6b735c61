"""GET /spaces: the search spaces this server knows, by name."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter

from nas.api.errors import NotFound
from nas.service.resolve import space_names
from nas.api.schemas import SpaceOut

router = APIRouter(prefix="/spaces", tags=["spaces"])


@lru_cache(maxsize=64)  # presets are data shipped with the package: read once per process
def _out(name: str) -> SpaceOut:
    from supernet import SearchSpace

    sp = SearchSpace.preset(name)
    return SpaceOut(name=name, description=sp.description, size=str(sp.size()), num_blocks=sp.num_blocks,
                    num_stages=sp.num_stages, kernel_choices=list(sp.kernel_choices),
                    expand_choices=list(sp.expand_choices), depth_choices=list(sp.depth_choices),
                    resolutions=list(sp.resolutions), num_classes=sp.num_classes, in_channels=sp.in_channels)


@router.get("", response_model=list[SpaceOut])
def list_spaces() -> list[SpaceOut]:
    return [_out(n) for n in space_names()]


@router.get("/{name}", response_model=SpaceOut)
def get_space(name: str) -> SpaceOut:
    if name not in space_names():
        raise NotFound("space", name)
    return _out(name)
