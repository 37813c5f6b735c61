"""Export a trained subnet for one device: weights, TorchScript, ONNX (checked with onnxruntime), int8, a C header
for MCUs, and a model card with predicted beside measured figures.

    from nas.export import export_bundle
    bundle = export_bundle("runs/fashion-mnist", arch, "cpu-host", "exports/")
"""

from nas.export.bundle import DEFAULT_FORMATS, FORMATS, arch_id, bundle_name, export_bundle, resolve_formats
from nas.export.errors import ExportError
from nas.export.load import load_bundle_net

__all__ = ["export_bundle", "ExportError", "load_bundle_net", "FORMATS", "DEFAULT_FORMATS", "resolve_formats",
           "arch_id", "bundle_name"]
