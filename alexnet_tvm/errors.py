"""Typed errors. The CLI catches :class:`ToolkitError` once and prints one line."""


class ToolkitError(Exception):
    """Base of every error a user can cause with bad input."""


class DatasetError(ToolkitError):
    """A dataset is missing, unreadable or malformed."""


class CheckpointError(ToolkitError):
    """A checkpoint or its sidecar is unusable or does not match the model."""


class ExportError(ToolkitError):
    """An export failed or did not match the eager model."""


class ModelFormatError(ToolkitError):
    """A model file has an unknown format or an unexpected graph."""


class TargetError(ToolkitError):
    """targets.yaml is malformed or names an unknown target."""


class TuningError(ToolkitError):
    """Tuning failed or produced no valid measurement."""


class DatabaseError(ToolkitError):
    """A tuning database is corrupt or truncated."""


class ArtifactError(ToolkitError):
    """An artifact is incomplete, tampered with or built for something else."""


class VerifyError(ToolkitError):
    """Verification could not be carried out (not a failed gate)."""


class OutputExistsError(ToolkitError):
    """An output path exists and --force was not given."""


class AscendError(ToolkitError):
    """Ascend OM-path inputs or ais_bench results are malformed."""


class RegistryError(ToolkitError):
    """A pack or registry is unusable, tampered with or unreachable."""


class RPCError(ToolkitError):
    """An RPC tracker or board is unreachable or failed."""


class ServeError(ToolkitError):
    """A server cannot start: artifacts that disagree, an unsafe bind, a port in use."""


class ImageSizeError(ToolkitError):
    """An image, decoded or once resized, would hold more pixels than the limit (HTTP 413 when served)."""


class FlagClashError(ToolkitError):
    """Flags that cannot go together. The CLI edge prints it as click's own usage errors, after the
    command's path (``error: alexnet-tvm tune: ...``): the rule is the job's, the wording the edge's."""
