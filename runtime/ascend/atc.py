"""The ``atc`` command lines that turn the ONNX export into one static OM per batch size."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from alexnet_tvm.errors import AscendError
from alexnet_tvm.fsutil import atomic_path, refuse_existing

from .modelzoo import DEFAULT_BATCHES, DEFAULT_SOC, INPUT_NAME, INPUT_SIZE, KNOWN_SOCS

_SOC = re.compile(r"Ascend[0-9A-Za-z]+")


def check_soc(soc: str) -> str:
    if not _SOC.fullmatch(soc):
        raise AscendError(f"--soc {soc!r} is not an Ascend SoC name (e.g. {', '.join(KNOWN_SOCS)}; "
                          "see 'npu-smi info')")
    return soc


def check_batches(batches: Sequence[int]) -> list[int]:
    out: list[int] = []
    for b in batches:
        if int(b) < 1:
            raise AscendError(f"batch size {b} must be at least 1")
        if int(b) not in out:
            out.append(int(b))
    if not out:
        raise AscendError("no batch size given")
    return out


def atc_command(batch: int, soc: str = DEFAULT_SOC, model: str = "./alexnet.onnx",
                output_prefix: str = "./onnx_alexnet_bs", input_size: int = INPUT_SIZE,
                input_name: str = INPUT_NAME) -> str:
    """The ModelZoo's atc line for one static batch size (ATC builds no dynamic batch here)."""
    check_batches([batch])
    check_soc(soc)
    return (f"atc --model={model} --framework=5 --output={output_prefix}{batch} --input_format=NCHW "
            f"--input_shape=\"{input_name}:{batch},3,{input_size},{input_size}\" --log=debug "
            f"--soc_version={soc}")


def atc_script(batches: Sequence[int] = DEFAULT_BATCHES, soc: str = DEFAULT_SOC, model: str = "./alexnet.onnx",
               output_prefix: str = "./onnx_alexnet_bs", input_size: int = INPUT_SIZE,
               input_name: str = INPUT_NAME) -> str:
    """A pth2om.sh that builds one OM per batch size; ``set -e`` so a failed atc stops it."""
    lines = ["#!/bin/bash",
             "# ONNX -> OM for the Ascend ModelZoo AlexNet flow (written by 'alexnet-tvm ascend atc-cmd').",
             "# Source the CANN environment first (set_env.sh); the SoC name comes from 'npu-smi info'.",
             "set -e"]
    lines += [atc_command(b, soc, model, output_prefix, input_size, input_name) for b in check_batches(batches)]
    return "\n".join(lines) + "\n"


def write_atc_script(path: Path, text: str, force: bool = False) -> None:
    """Write the script whole and executable."""
    path = Path(path)
    refuse_existing(path, force)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        os.chmod(tmp, 0o755)
