"""The typed error of exporting: what went wrong, and what is allowed."""

from __future__ import annotations

from supernet.errors import NasError


class ExportError(NasError):
    """A bundle cannot be exported: bad input (device, arch, formats, run) or a failed check (ONNX vs PyTorch)."""
