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

from alexnet_tvm.distribution.registry import DEFAULT_PUBLISH_TIMEOUT, DEFAULT_TIMEOUT
from alexnet_tvm.errors import ToolkitError
from alexnet_tvm.meta import PRECISIONS
from alexnet_tvm.model.quantize import DEFAULT_CALIB_IMAGES
from alexnet_tvm.target_choice import AUTO
from alexnet_tvm.targets import split_host_port

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
#: a tracker uses PORT and PORT+1, an RPC server the first free one of PORT..PORT+100 (TVM's port range)
TRACKER_PORT = click.IntRange(1, 65534)
SERVER_PORT = click.IntRange(1, 65535)
#: a registry or tracker request's deadline (no finiteness check: an infinite one is taken as given)
SECONDS = click.FloatRange(min=0, min_open=True)
#: what a server binds to unless told otherwise
LOOPBACK = "127.0.0.1"


class HostPort(click.ParamType):
    """``host:port`` with a port of 1..65535, parsed once for every rpc command."""

    name = "host:port"

    def convert(self, value, param, ctx) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        address = split_host_port(str(value))  # the one reading of host:port; the CLI is stricter on top
        if address is None or not address[0] or not 1 <= address[1] <= 65535:
            self.fail(f"{value!r}: give host:port with a port of 1..65535", param, ctx)
        return address


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


#: the registry commands' ``--timeout`` help, with distribution's defaults
REGISTRY_TIMEOUT_HELP = (f"Seconds a request may take in all (default {DEFAULT_TIMEOUT:g}, publish "
                         f"{DEFAULT_PUBLISH_TIMEOUT:g}; a download gets more per MiB, up to an hour).")


def timeout_option(default: float | None = None, help: str | None = REGISTRY_TIMEOUT_HELP, dest: str = "timeout",
                   type: click.ParamType = SECONDS) -> Decorator:
    """``--timeout S``: a request's deadline (default None: the registry's, which the help names);
    ``serve`` takes it per request, with its finite type."""
    return click.option("--timeout", dest, type=type, default=default, show_default=default is not None, help=help)


def host_option(help: str | None = None) -> Decorator:
    """``--host ADDR``: the address a server binds to (loopback unless told otherwise)."""
    return click.option("--host", default=LOOPBACK, show_default=True, help=help)


def port_option(default: int, type: click.IntRange = PORT, help: str | None = None) -> Decorator:
    """``--port N``: the port a server binds to (``type``: the range a command can use)."""
    return click.option("--port", type=type, default=default, show_default=True, help=help)


def tracker_option(default: str | None = None, required: bool = False, help: str | None = None) -> Decorator:
    """``--tracker host:port``: the RPC tracker, as a (host, port) pair."""
    return click.option("--tracker", "tracker_addr", type=HostPort(), default=default, required=required,
                        show_default=default is not None, help=help)


def token_file_option() -> Decorator:
    return click.option("--token-file", type=_path(), default=None,
                        help="File holding the upload bearer token. Default: $ALEXNET_TVM_TOKEN.")


def target_option(default: str | None = AUTO, help: str | None = None, dest: str = "target_name") -> Decorator:
    """``--target NAME`` of targets.yaml (``auto``: the first local CPU entry this host runs)."""
    return click.option("--target", dest, default=default, show_default=default is not None, help=help)


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


def calibrate_option(default: str | None = None,
                     help: str = "--precision int8: calibration images (an ImageFolder or flat folder; 'digits' for "
                                 "the embedded set).") -> Decorator:
    """``--calibrate DATA``: the int8 calibration images."""
    return click.option("--calibrate", "calibrate", default=default, show_default=default is not None, metavar="DATA",
                        help=help)


def calibrate_options(f: Callable) -> Callable:
    """int8 calibration (docs/int8.md): where the activation ranges come from."""
    for option in reversed([
        calibrate_option(),
        click.option("--calib-images", type=click.IntRange(min=1), default=DEFAULT_CALIB_IMAGES, show_default=True,
                     help="How many calibration images (spread evenly over DATA)."),
    ]):
        f = option(f)
    return f


def ascend_results_options(f: Callable) -> Callable:
    """What reading an ais_bench results folder may be told: the output size and the inputs it ran on."""
    for option in reversed([
        click.option("--classes", type=int, default=None, help="Output size to expect (default: from the first file)."),
        click.option("--inputs", type=_path(), default=None,
                     help="The preprocessed input folder: every input must have a result (and names old-layout "
                          "ones)."),
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
