"""Click options that several commands share, declared once so that a flag means the same
thing (name, type, default, help) in every command that takes it.

Each is a factory returning the decorator: a command may word the help for its own
case or pick its default, never the option's name or type. Defaults that depend on the
machine (which targets.yaml, which tuning_logs/) are left as None here and resolved by
:mod:`alexnet_tvm.settings` when the command runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import click

from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.meta import PRECISIONS
from alexnet_tvm.target_choice import AUTO

Decorator = Callable[[Callable], Callable]


def _path() -> click.Path:
    return click.Path(path_type=Path)


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf (they pass every comparison a range makes)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


PORT = click.IntRange(0, 65535)
POSITIVE = FiniteFloat(min=0, min_open=True)
NON_NEGATIVE = FiniteFloat(min=0)
AT_LEAST_1 = click.IntRange(min=1)


def parse_counts(text: str, flag: str) -> list[int]:
    """``--batch 1,16`` -> [1, 16], ``--threads 1,2,4`` -> [1, 2, 4]: positive integers, in order, once
    each. The one reader of a comma-separated count list (bench, serve-bench, ascend atc-cmd)."""
    usage = "give comma-separated positive integers, e.g. 1,2,4"
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        counts = []
    if not counts:
        raise ToolkitError(f"{flag} {text!r}: {usage}")
    if min(counts) < 1:
        raise ToolkitError(f"{flag} {text!r}: {min(counts)} must be at least 1; {usage}")
    return list(dict.fromkeys(counts))


def _counts(ctx: click.Context, param: click.Parameter, value: Any) -> list[int] | None:
    """Click callback: :func:`parse_counts` of the value (a repeated option's values joined)."""
    if value is None:
        return None
    return parse_counts(",".join(value) if isinstance(value, tuple) else value, param.opts[0])


def counts_option(*decls: str, **kwargs: Any) -> Decorator:
    """An option that takes comma-separated positive integers (:func:`parse_counts`)."""
    return click.option(*decls, callback=_counts, **kwargs)


def registry_from_option(required: bool = False,
                         help: str = "Registry: a folder or an http(s):// base URL.") -> Decorator:
    """``--from URL``: the registry a pack is pulled from."""
    return click.option("--from", "registry", default=None, required=required, help=help)


def trust_option(help: str = "Accept only packs signed by a key in this .pub or trusted-keys file "
                             "(repeatable).") -> Decorator:
    """``--trust PUBKEY``: the keys a pulled pack must be signed with."""
    return click.option("--trust", type=_path(), multiple=True, metavar="PUBKEY", help=help)


def timeout_option() -> Decorator:
    """``--timeout S``: a registry request's deadline (each command's default is the distribution's)."""
    return click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
                        help="Seconds a request may take in all (default 10, publish 60; "
                             "a download gets more per MiB, up to an hour).")


def token_file_option() -> Decorator:
    return click.option("--token-file", type=_path(), default=None,
                        help="File holding the upload bearer token. Default: $ALEXNET_TVM_TOKEN.")


def target_option(default: str | None = AUTO, help: str | None = None) -> Decorator:
    """``--target NAME`` of targets.yaml (``auto``: the first local CPU entry this host runs)."""
    return click.option("--target", "target_name", default=default, show_default=default is not None, help=help)


def targets_file_option(help: str = "Default: targets.yaml of the project.") -> Decorator:
    return click.option("--targets-file", type=_path(), default=None, help=help)


def logs_dir_option(help: str = "Tuning databases: LOGS_DIR/<target>/<cpu>/, one record set per CPU. "
                                "Default: the project's tuning_logs/.") -> Decorator:
    return click.option("--logs-dir", type=_path(), default=None, help=help)


def precision_option() -> Decorator:
    return click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                        help="bf16: store the FC weights as bf16 (half the weight traffic; fp32 math). "
                             "fp16 (CUDA only): fp16 weights and activations on tensor cores, fp32 accumulation.")


def force_option(help: str | None = None) -> Decorator:
    return click.option("--force", is_flag=True, help=help)


def out_option(default: Path | None = None, help: str | None = None, required: bool = False,
               dest: str = "out") -> Decorator:
    """``-o/--out PATH``: the file or folder a command writes."""
    return click.option("-o", "--out", dest, type=_path(), default=default, required=required,
                        show_default=default is not None, help=help)


def batch_option(default: int | None = None, help: str | None = None) -> Decorator:
    return click.option("--batch", type=int, default=default, show_default=default is not None, help=help)


def threads_option(help: str = "Cores to compile for and run on (the target's num-cores). Default: "
                                "with --target auto, the cores this process may use (affinity, cgroup quota); "
                                "else targets.yaml's.") -> Decorator:
    return click.option("--threads", type=click.IntRange(1, 1024), default=None, metavar="N", help=help)


def seed_option() -> Decorator:
    return click.option("--seed", type=int, default=0, show_default=True, help="Random seed (reproducible runs).")


def model_options(f: Callable) -> Callable:
    """What a bare model file cannot tell (or what the user wants otherwise): input size,
    classes, class names and normalisation, over the file's own (model/describe.py)."""
    for option in reversed([
        click.option("--input-size", type=click.IntRange(min=1), default=None, metavar="PIXELS",
                     help="Square input size. Default: from the graph, or probed (224, 227, 32, ...)."),
        click.option("--classes", "num_classes", type=click.IntRange(min=2), default=None,
                     help="Class count; checked against the model's output."),
        click.option("--class-names", type=_path(), default=None, metavar="FILE",
                     help="One class name per line. Default: ImageNet's for 1000 classes, else class_N."),
        click.option("--mean", type=float, nargs=3, default=None, metavar="R G B",
                     help="Input normalisation mean. Default: ImageNet's."),
        click.option("--std", type=float, nargs=3, default=None, metavar="R G B",
                     help="Input normalisation std. Default: ImageNet's."),
    ]):
        f = option(f)
    return f


def calibrate_options(f: Callable) -> Callable:
    """int8 calibration (docs/int8.md): where the activation ranges come from."""
    for option in reversed([
        click.option("--calibrate", "calibrate", default=None, metavar="DATA",
                     help="--precision int8: calibration images (an ImageFolder or flat folder; 'digits' for the "
                          "embedded set)."),
        click.option("--calib-images", type=click.IntRange(min=1), default=100, show_default=True,
                     help="How many calibration images (spread evenly over DATA)."),
    ]):
        f = option(f)
    return f


def compile_options(f: Callable) -> Callable:
    """What ``tune`` and ``build`` both take after their own options, in this order: precision,
    calibration, cores, where targets and records are, and the model's own facts."""
    for option in reversed([precision_option(), calibrate_options, threads_option(), targets_file_option(),
                            logs_dir_option(), model_options]):
        f = option(f)
    return f
